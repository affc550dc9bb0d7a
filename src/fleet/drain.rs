//! [`Drain`]: a deployment taking no new picks while its picks in flight
//! finish.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::Fleet;
use crate::health::state::DeploymentState;
use crate::{Changes, Error, IdentityPolicy, ModelKey};

/// A drained deployment, from [`Fleet::drain`]: it takes no new picks;
/// this tells when its last pick in flight ended, then removes it (or
/// undoes the drain).
///
/// The count covers every pick of the deployment, from every version and
/// handle, made before the drain. Polling it is O(1) (a few atomic loads);
/// nothing here blocks or sleeps: wait on your runtime's timer between
/// polls, e.g. `while !drain.is_idle() { tokio::time::sleep(interval).await }`.
///
/// See [`Fleet::drain`] for an example.
pub struct Drain<P> {
    fleet: Fleet<P>,
    key: ModelKey,
    state: Arc<CachePadded<DeploymentState>>,
}

impl<P> fmt::Debug for Drain<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("key", &self.key)
            .field("in_flight", &self.state.in_flight())
            .finish_non_exhaustive()
    }
}

impl<P: IdentityPolicy + Clone> Drain<P> {
    pub(super) fn new(
        fleet: Fleet<P>,
        key: ModelKey,
        state: Arc<CachePadded<DeploymentState>>,
    ) -> Self {
        Self { fleet, key, state }
    }

    /// The drained deployment's key.
    ///
    /// See [`Fleet::drain`] for an example.
    pub fn key(&self) -> &ModelKey {
        &self.key
    }

    /// Its picks still in flight.
    ///
    /// See [`Fleet::drain`] for an example.
    pub fn in_flight(&self) -> u32 {
        self.state.in_flight()
    }

    /// Whether no pick of it is in flight any more.
    ///
    /// See [`Fleet::drain`] for an example.
    pub fn is_idle(&self) -> bool {
        self.in_flight() == 0
    }

    /// Removes the deployment from the fleet's registry and installs the
    /// result (O(n log n), like [`Fleet::install`]); returns the changes. Picks still in flight (if you remove
    /// before [`is_idle`](Self::is_idle)) stay valid; their reports are
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownDeployment`] if the deployment was removed meanwhile
    /// (by an install without it).
    ///
    /// See [`Fleet::drain`] for an example.
    pub fn remove(self, now: Duration) -> Result<Changes, Error> {
        self.fleet.undrain(&self.key, now, true)
    }

    /// Undoes the drain: the deployment takes picks again (a new version:
    /// O(n log n), like [`Fleet::install`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let drain = fleet.drain(&"openai/gpt-4@".parse()?, Duration::ZERO)?;
    /// assert!(fleet.select(&Request::new("gpt-4")).is_err());
    /// drain.cancel(Duration::ZERO);
    /// assert!(fleet.select(&Request::new("gpt-4")).is_ok());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn cancel(self, now: Duration) {
        // Without removal, undraining cannot fail.
        let _ = self.fleet.undrain(&self.key, now, false);
    }
}
