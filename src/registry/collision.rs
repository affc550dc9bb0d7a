//! [`Collision`]: deployments that another identity policy would merge.

use std::fmt;

use crate::error::Cut;
use crate::key::ModelKey;

/// Deployments that would share one key under another policy.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry};
///
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
/// let collisions = reg.collisions(&Policy::NAME);
/// assert_eq!(collisions[0].key().to_string(), "openai/gpt-4");
/// assert_eq!(collisions[0].deployments().len(), 2);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Collision {
    pub(super) key: ModelKey,
    pub(super) deployments: Vec<ModelKey>,
}

impl Collision {
    /// The key the deployments would share under the new policy.
    ///
    /// See [`Collision`] for an example.
    #[must_use]
    pub fn key(&self) -> &ModelKey {
        &self.key
    }

    /// The colliding deployments, by their keys under the current policy, in
    /// registry order (at least two).
    ///
    /// See [`Collision`] for an example.
    #[must_use]
    pub fn deployments(&self) -> &[ModelKey] {
        &self.deployments
    }
}

impl fmt::Display for Collision {
    /// `new key <- old key, …`, with at most ten old keys shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <- {}", self.key, Cut::new(&self.deployments, ", "))
    }
}
