//! [`Selector::plan`]: the order in which to try deployments for retries
//! and fallbacks.

use std::fmt;

use super::Selector;
use super::pick::Pick;
use crate::Request;

impl Selector {
    /// The order in which to try deployments for `request`: an iterator of
    /// picks that never yields the same deployment twice, goes through the
    /// tiers in order (each pick excludes the ones before it), then through
    /// the request's [fallback models](Request::fallback) the same way.
    /// Unknown fallback models are skipped.
    ///
    /// Each pick holds its in-flight guard until you drop it, so drop (or
    /// complete) a failed attempt before asking for the next one.
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
        let mut models = vec![request.model().to_owned()];
        models.extend(request.fallbacks().iter().cloned());
        Plan {
            selector: self,
            request: request.clone(),
            models,
            current: 0,
        }
    }
}

/// The attempt plan of [`Selector::plan`]: picks in the order to try them.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
///
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
/// let s = Selector::new(&reg, modelfleet::select::RoundRobin);
/// let mut plan = s.plan(&Request::new("gpt-4"));
/// let first = plan.next().unwrap().key().clone();
/// let second = plan.next().unwrap().key().clone();
/// assert_ne!(first, second); // never the same deployment twice
/// assert!(plan.next().is_none());
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Plan<'s> {
    selector: &'s Selector,
    request: Request,
    models: Vec<String>,
    current: usize,
}

impl fmt::Debug for Plan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("models", &self.models)
            .field("current", &self.current)
            .field("tried", &self.request.excluded().len())
            .finish()
    }
}

impl<'s> Iterator for Plan<'s> {
    type Item = Pick<'s>;

    fn next(&mut self) -> Option<Pick<'s>> {
        while let Some(model) = self.models.get(self.current) {
            let request = self.request.with_model(model);
            match self.selector.select(&request) {
                Ok(pick) => {
                    self.request.exclude_mut().push(pick.key().clone());
                    return Some(pick);
                }
                Err(_) => self.current += 1,
            }
        }
        None
    }
}

impl std::iter::FusedIterator for Plan<'_> {}
