//! [`Selector::explain`]: what the filters did to each deployment of a
//! model, as an [`Explanation`] of [`Verdict`]s.

use std::fmt;

use super::Selector;
use super::reason::{Reason, Removed};
use crate::{Error, ModelKey, Request};

impl Selector {
    /// What the filters did to every deployment of the requested model, and
    /// which tier a pick would come from. Changes no state; allocates.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`] if no deployment serves the model.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
    /// use modelfleet::select::{Reason, RoundRobin};
    ///
    /// let mut reg = Registry::new(Policy::NAME_TAG);
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").context_window(8_192).build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").context_window(128_000).build()?)?;
    /// let s = Selector::new(&reg, RoundRobin);
    /// let why = s.explain(&Request::new("gpt-4").tokens(20_000))?;
    /// assert_eq!(why.candidates()[0].removed(), Some(Reason::ContextWindow));
    /// assert_eq!(why.candidates()[1].removed(), None);
    /// assert_eq!(why.tier(), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn explain(&self, request: &Request) -> Result<Explanation, Error> {
        let (_, group) = self.group(request)?;
        let mut filter = self.filter(group, request, self.now(request));
        if self.should_panic(group, &filter) {
            filter.check_health = false;
        }
        let candidates: Vec<Verdict> = group
            .all
            .iter()
            .map(|&i| {
                let slot = &self.shared.slots[i as usize];
                Verdict {
                    key: (*slot.key).clone(),
                    priority: slot.deployment.priority(),
                    removed: filter.passes(slot).err(),
                    in_flight: slot.state.in_flight(),
                }
            })
            .collect();
        let tier = candidates
            .iter()
            .filter(|v| v.removed.is_none())
            .map(|v| v.priority)
            .min();
        Ok(Explanation {
            model: request.model().to_owned(),
            strategy: self.strategy_name().to_owned(),
            candidates,
            tier,
        })
    }
}

/// What [`Selector::explain`] found.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::{Reason, RoundRobin};
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").context_window(8_192).build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").priority(1).build()?)?;
/// let why = Selector::new(&reg, RoundRobin).explain(&Request::new("gpt-4").tokens(20_000))?;
/// assert_eq!(why.model(), "gpt-4");
/// assert_eq!(why.strategy(), "round_robin");
/// assert_eq!(why.candidates().len(), 2);
/// assert_eq!(why.tier(), Some(1));
/// assert_eq!(why.removed().count(Reason::ContextWindow), 1);
/// assert_eq!(why.removed().total(), 1);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Explanation {
    model: String,
    strategy: String,
    candidates: Vec<Verdict>,
    tier: Option<u32>,
}

impl Explanation {
    /// The requested model.
    ///
    /// See [`Explanation`] for an example.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The strategy that would choose.
    ///
    /// See [`Explanation`] for an example.
    pub fn strategy(&self) -> &str {
        &self.strategy
    }

    /// Every deployment of the model, in registry order, with its verdict.
    ///
    /// See [`Explanation`] for an example.
    pub fn candidates(&self) -> &[Verdict] {
        &self.candidates
    }

    /// The tier a pick would come from; `None` if nothing is eligible.
    ///
    /// See [`Explanation`] for an example.
    pub fn tier(&self) -> Option<u32> {
        self.tier
    }

    /// How many candidates each filter removed.
    ///
    /// See [`Explanation`] for an example.
    pub fn removed(&self) -> Removed {
        let mut r = Removed::default();
        for v in &self.candidates {
            if let Some(reason) = v.removed {
                r.add(reason);
            }
        }
        r
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model {:?}, strategy {}:", self.model, self.strategy)?;
        for v in &self.candidates {
            let verdict = match (v.removed, self.tier) {
                (Some(r), _) => format!("removed: {r}"),
                (None, Some(t)) if t == v.priority => "candidate".to_owned(),
                (None, _) => "eligible, but a lower tier has candidates".to_owned(),
            };
            writeln!(f, "  [tier {}] {} — {verdict}", v.priority, v.key)?;
        }
        Ok(())
    }
}

/// One deployment in an [`Explanation`].
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::{Reason, RoundRobin};
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").priority(2).build()?)?;
/// let s = Selector::new(&reg, RoundRobin);
/// let held = s.select(&Request::new("gpt-4"))?;
/// let why = s.explain(&Request::new("gpt-4").tag("b"))?;
/// let verdict = &why.candidates()[0];
/// assert_eq!(verdict.key().to_string(), "openai/gpt-4#a");
/// assert_eq!(verdict.priority(), 2);
/// assert_eq!(verdict.removed(), Some(Reason::Tags));
/// assert_eq!(verdict.in_flight(), 1);
/// drop(held);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Verdict {
    key: ModelKey,
    priority: u32,
    removed: Option<Reason>,
    in_flight: u32,
}

impl Verdict {
    /// The deployment's key.
    ///
    /// See [`Verdict`] for an example.
    pub fn key(&self) -> &ModelKey {
        &self.key
    }

    /// Its priority tier.
    ///
    /// See [`Verdict`] for an example.
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// Why it is not a candidate; `None` if it passed every filter.
    ///
    /// See [`Verdict`] for an example.
    pub fn removed(&self) -> Option<Reason> {
        self.removed
    }

    /// Its picks in flight when explained.
    ///
    /// See [`Verdict`] for an example.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }
}
