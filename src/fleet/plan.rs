//! [`FleetPlan`]: attempts for retries and fallbacks, each on the fleet's
//! version current at that attempt.

use std::fmt;
use std::time::Duration;

use super::Picker;
use crate::select::{Attempts, OwnedPick};
use crate::{Error, ModelKey, Request};

/// The attempt plan of [`Fleet::plan`](crate::Fleet::plan) or
/// [`FleetHandle::plan`](crate::FleetHandle::plan): `Send + Sync +
/// 'static`, so it can live in the future that retries a request.
///
/// Each attempt:
///
/// - selects on the fleet's version current at that attempt, so a retry
///   after an [`install`](crate::Fleet::install) never reaches a removed
///   (or drained) deployment;
/// - is judged at its own time ([`next_at`](Self::next_at), or the fleet's
///   clock with [`next_now`](Self::next_now)), so a deployment whose
///   cooldown ended since the last attempt is offered again;
/// - never picks a deployment the plan picked before (by key, across
///   versions);
/// - walks the requested model's tiers in order, then its fallback models
///   in order, and prefers the requested model whenever it has an untried
///   deployment that can serve;
/// - when nothing is left, says why: the [`Error::Unavailable`] with the
///   earliest `retry_at` that any of the models gave, else the requested
///   model's error ([`Error::NoEligible`] once all were tried).
///
/// Drop (or complete) a failed attempt's pick before asking for the next,
/// so its in-flight slot does not count against the next choice.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{FailureKind, Report};
/// use modelfleet::{Deployment, Error, Fleet, ModelKey, Policy, Registry, Request};
///
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
/// let fleet = Fleet::new(reg, |b| b);
/// let (s, limited) = (Duration::from_secs, |secs| FailureKind::rate_limited(Some(Duration::from_secs(secs))));
/// let b: ModelKey = "openai/gpt-4@http://b/v1".parse()?;
/// fleet.report(&b, Report::failure(s(0), limited(10))); // b cools until 10 s
///
/// let mut plan = fleet.plan(&Request::new("gpt-4"));
/// let first = plan.next_at(s(1))?;
/// assert_eq!(first.key().to_string(), "openai/gpt-4@http://a/v1");
/// first.complete(Report::failure(s(1), limited(30)));
/// match plan.next_at(s(2)) {
///     // a was tried; b returns at 10 s: a `Retry-After` for the client.
///     Err(Error::Unavailable { retry_at, .. }) => assert_eq!(retry_at, Some(s(10))),
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(plan.next_at(s(11))?.key(), &b); // its cooldown is over
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct FleetPlan {
    picker: Picker,
    attempts: Attempts,
}

impl fmt::Debug for FleetPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetPlan")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl FleetPlan {
    pub(super) fn new(picker: Picker, request: &Request) -> Self {
        Self {
            picker,
            attempts: Attempts::new(request),
        }
    }

    /// The next attempt, judged at `now`. Costs one select per model it
    /// looks at.
    ///
    /// # Errors
    ///
    /// When no untried deployment of the requested model or its fallbacks
    /// can serve at `now`: see [`FleetPlan`] for which error.
    ///
    /// See [`FleetPlan`] for an example.
    pub fn next_at(&mut self, now: Duration) -> Result<OwnedPick, Error> {
        let picker = &self.picker;
        self.attempts
            .next(|r| picker.select(r, Some(now)), OwnedPick::shared_key)
    }

    /// The next attempt, judged at the fleet clock's time; without a clock,
    /// at the request's time ([`Request::at`]), else at the latest report
    /// time.
    ///
    /// # Errors
    ///
    /// As [`next_at`](Self::next_at).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use modelfleet::{Deployment, Fleet, ManualClock, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::builder(reg).clock(Arc::new(ManualClock::new())).build();
    /// let mut plan = fleet.plan(&Request::new("gpt-4"));
    /// assert!(plan.next_now().is_ok());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn next_now(&mut self) -> Result<OwnedPick, Error> {
        let picker = &self.picker;
        let now = picker.clock().map(|c| c.now());
        self.attempts
            .next(|r| picker.select(r, now), OwnedPick::shared_key)
    }

    /// The deployments tried so far, in order.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let mut plan = fleet.plan(&Request::new("gpt-4"));
    /// let key = plan.next_at(Duration::ZERO)?.key().clone();
    /// assert!(plan.tried().eq([&key]));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn tried(&self) -> impl Iterator<Item = &ModelKey> + '_ {
        self.attempts.tried()
    }

    /// The request the plan was made for.
    ///
    /// ```
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let plan = Fleet::new(reg, |b| b).plan(&Request::new("gpt-4").tokens(500));
    /// assert_eq!(plan.request().token_estimate(), Some(500));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn request(&self) -> &Request {
        self.attempts.request()
    }
}

impl Iterator for FleetPlan {
    type Item = OwnedPick;

    /// [`next_now`](FleetPlan::next_now), `None` when it fails. Not fused:
    /// a deployment that comes back is offered by a later call.
    fn next(&mut self) -> Option<OwnedPick> {
        self.next_now().ok()
    }
}
