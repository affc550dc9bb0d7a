//! [`Selector::plan`]: the order in which to try deployments for retries
//! and fallbacks, and [`Attempts`], the walk that a fleet's plan shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Selector;
use super::pick::Pick;
use crate::health::state::nanos;
use crate::{Error, ModelKey, Request};

impl Selector {
    /// The order in which to try deployments for `request`: picks that
    /// never repeat a deployment, going through the tiers in order (each
    /// attempt excludes the deployments tried before), then through the
    /// request's [fallback models](Request::fallback) the same way. Unknown
    /// fallback models are skipped.
    ///
    /// Each attempt is judged at its own time: [`Plan::next_at`] takes it
    /// (a deployment whose cooldown ended since the last attempt is offered
    /// again), and says why when nothing is left. As an iterator, every
    /// attempt is at the request's time ([`Request::at`]).
    ///
    /// Each pick holds its in-flight guard until you drop it, so drop (or
    /// complete) a failed attempt before asking for the next one. To retry
    /// across registry versions, use [`Fleet::plan`](crate::Fleet::plan).
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
    /// use modelfleet::select::RoundRobin;
    ///
    /// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").priority(1).build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4o-mini").endpoint("http://c/v1").build()?)?;
    /// let s = Selector::new(&reg, RoundRobin);
    /// let order: Vec<String> = s
    ///     .plan(&Request::new("gpt-4").fallback("gpt-4o-mini"))
    ///     .map(|pick| pick.key().to_string())
    ///     .collect();
    /// assert_eq!(order, [
    ///     "openai/gpt-4@http://a/v1",
    ///     "openai/gpt-4@http://b/v1",
    ///     "openai/gpt-4o-mini@http://c/v1",
    /// ]);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn plan(&self, request: &Request) -> Plan<'_> {
        Plan {
            selector: self,
            attempts: Attempts::new(request),
        }
    }
}

/// The attempt plan of [`Selector::plan`]: picks in the order to try them.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::{Deployment, Error, Policy, Registry, Request, Selector};
///
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
/// let s = Selector::new(&reg, modelfleet::select::RoundRobin);
/// let mut plan = s.plan(&Request::new("gpt-4"));
/// let first = plan.next_at(Duration::from_secs(1))?.key().clone();
/// let second = plan.next_at(Duration::from_secs(2))?.key().clone();
/// assert_ne!(first, second); // never the same deployment twice
/// assert!(plan.tried().eq([&first, &second]));
/// // Out of deployments: the error says so (every one was excluded).
/// assert!(matches!(plan.next_at(Duration::from_secs(3)), Err(Error::NoEligible { .. })));
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Plan<'s> {
    selector: &'s Selector,
    attempts: Attempts,
}

impl fmt::Debug for Plan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<'s> Plan<'s> {
    /// The next attempt, judged at `now`: the first deployment not tried
    /// yet, in tier order, of the requested model, else of its fallbacks in
    /// order. Costs one select per model it has to look at.
    ///
    /// # Errors
    ///
    /// When no untried deployment of any of the models can serve at `now`:
    /// the [`Error::Unavailable`] with the earliest `retry_at` any model
    /// gave (when one of them is only cooling or ejected), else the error
    /// of the requested model ([`Error::NoEligible`] once every deployment
    /// was tried, [`Error::UnknownModel`], …). A later attempt may succeed:
    /// a deployment that comes back is offered again.
    ///
    /// See [`Plan`] for an example.
    pub fn next_at(&mut self, now: Duration) -> Result<Pick<'s>, Error> {
        let (selector, at) = (self.selector, Some(nanos(now)));
        self.attempts.next(|r| selector.select_at(r, at), key_of)
    }

    /// The deployments tried so far, in order.
    ///
    /// See [`Plan`] for an example.
    pub fn tried(&self) -> impl Iterator<Item = &ModelKey> + '_ {
        self.attempts.tried()
    }
}

impl<'s> Iterator for Plan<'s> {
    type Item = Pick<'s>;

    /// The next attempt at the request's own time; `None` when
    /// [`next_at`](Plan::next_at) would fail. Not fused: a deployment that
    /// comes back (a report restored it) is offered by a later call.
    fn next(&mut self) -> Option<Pick<'s>> {
        let selector = self.selector;
        self.attempts.next(|r| selector.select(r), key_of).ok()
    }
}

fn key_of(pick: &Pick<'_>) -> Arc<ModelKey> {
    pick.shared_key()
}

/// The walk of an attempt plan, whatever picks it: the request, with the
/// deployments tried so far excluded; its models are the requested one,
/// then its fallbacks. Each attempt looks at every model again, so a
/// deployment of the requested model that came back is preferred to the
/// fallbacks.
///
/// Cheap when the first attempt is the last: the request is cloned once
/// (by the plan), a pick's key is added to the exclusions only when a next
/// attempt is asked for, and only a fallback model's attempt copies the
/// request.
pub(crate) struct Attempts {
    request: Request,
    /// How many exclusions the request came with: the plan's own follow.
    given: usize,
    /// The key of the last pick, not yet among the request's exclusions.
    last: Option<Arc<ModelKey>>,
}

impl fmt::Debug for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempts")
            .field("model", &self.request.model())
            .field("fallbacks", &self.request.fallbacks())
            .field("tried", &self.tried().collect::<Vec<_>>())
            .finish()
    }
}

impl Attempts {
    pub(crate) fn new(request: &Request) -> Self {
        Self {
            request: request.clone(),
            given: request.excluded().len(),
            last: None,
        }
    }

    /// The request the plan was made for, with its exclusions so far.
    pub(crate) fn request(&self) -> &Request {
        &self.request
    }

    /// The plan's picks so far, in order (not the request's own
    /// exclusions).
    pub(crate) fn tried(&self) -> impl Iterator<Item = &ModelKey> + '_ {
        let plan = &self.request.excluded()[self.given..];
        plan.iter().chain(self.last.as_deref())
    }

    /// The first pick that `select` gives for the models in order, recorded
    /// as tried (`key` gives its key); or the most useful of the errors
    /// (see [`Plan::next_at`]).
    pub(crate) fn next<T>(
        &mut self,
        mut select: impl FnMut(&Request) -> Result<T, Error>,
        key: impl Fn(&T) -> Arc<ModelKey>,
    ) -> Result<T, Error> {
        if let Some(last) = self.last.take() {
            self.request.exclude_mut().push(Arc::unwrap_or_clone(last));
        }
        let mut best: Option<Error> = None;
        let fallbacks = self.request.fallbacks().len();
        for model in 0..=fallbacks {
            let found = if model == 0 {
                select(&self.request)
            } else {
                let fallback = &self.request.fallbacks()[model - 1];
                select(&self.request.with_model(fallback))
            };
            match found {
                Ok(pick) => {
                    self.last = Some(key(&pick));
                    return Ok(pick);
                }
                Err(e) => {
                    if best.as_ref().is_none_or(|b| retry_at(&e) < retry_at(b)) {
                        best = Some(e);
                    }
                }
            }
        }
        Err(best.unwrap_or_else(|| Error::UnknownModel {
            model: self.request.model().to_owned(),
        }))
    }
}

/// The order in which errors explain an exhausted plan: an error that says
/// when something returns, the earliest first, before one that does not.
fn retry_at(error: &Error) -> u64 {
    match error {
        Error::Unavailable {
            retry_at: Some(at), ..
        } => nanos(*at),
        _ => u64::MAX,
    }
}
