//! [`OwnedPick`]: a pick that owns what it needs, for async code: it moves
//! into spawned tasks and response bodies and lives across `.await`.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::Selector;
use super::pick::{Holder, Lease};
use super::tables::Slot;
use crate::health::Report;
use crate::{Deployment, Error, ModelKey, Request};

impl Selector {
    /// [`select`](Self::select) for a selector shared through an [`Arc`]:
    /// the pick holds a reference to it (one atomic increment), so it is
    /// `Send + Sync + 'static` and can outlive the borrow, e.g. in a
    /// spawned task or a streaming response body.
    ///
    /// # Errors
    ///
    /// As [`select`](Self::select).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let selector = Arc::new(Selector::new(&reg, modelfleet::select::RoundRobin));
    /// let pick = selector.select_owned(&Request::new("gpt-4"))?;
    /// let key = pick.key().clone();
    /// std::thread::spawn(move || pick.succeed(Duration::from_secs(1), Duration::from_millis(50)))
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(selector.in_flight(&key), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn select_owned(self: &Arc<Self>, request: &Request) -> Result<OwnedPick, Error> {
        let (index, priority) = self.choose(request)?;
        Ok(OwnedPick::new(Arc::clone(self), None, index, priority))
    }
}

/// A chosen deployment that owns its selector version: `Send + Sync +
/// 'static`, from [`Selector::select_owned`], [`Fleet::select`],
/// [`FleetHandle::select`] and [`FleetPlan`].
///
/// It holds one in-flight slot until it is completed or dropped, exactly
/// once either way: [`complete`](Self::complete) (or
/// [`succeed`](Self::succeed)) reports the outcome and releases the slot;
/// dropping it without completing releases the slot and reports nothing (a
/// request abandoned by its client says nothing about the deployment).
///
/// A pick from a fleet stays valid across version swaps: it keeps the
/// version it came from alive, and its report goes to the fleet's current
/// version if that still holds the same deployment (same key, same live
/// state); a report for a deployment removed or replaced meanwhile is
/// ignored.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::{Deployment, Fleet, Registry, Request};
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").priority(1).build()?].into_iter().collect();
/// let fleet = Fleet::new(reg, |b| b);
/// let pick = fleet.select(&Request::new("gpt-4"))?;
/// assert_eq!(pick.key().to_string(), "openai/gpt-4@");
/// assert_eq!(pick.deployment().model(), "gpt-4");
/// assert_eq!(pick.priority(), 1);
/// assert_eq!(pick.strategy(), "weighted_round_robin");
/// assert_eq!(fleet.in_flight(pick.key()), Some(1));
/// let key = pick.key().clone();
/// drop(pick); // releases its in-flight slot, reports nothing
/// assert_eq!(fleet.in_flight(&key), Some(0));
/// # Ok::<(), modelfleet::Error>(())
/// ```
///
/// [`Fleet::select`]: crate::Fleet::select
/// [`FleetHandle::select`]: crate::FleetHandle::select
/// [`FleetPlan`]: crate::FleetPlan
pub struct OwnedPick {
    lease: Lease<Owned>,
}

/// How an [`OwnedPick`] holds its version: the handle (of the version it
/// came from) that picked it, which keeps the deployment reachable and says
/// whether and on which stripe it was counted; and, for a pick of a fleet's
/// shared handle, the fleet's current version, which its report goes to (a
/// fleet handle's version holds that itself).
struct Owned {
    version: Arc<Selector>,
    current: Option<Arc<ArcSwap<Selector>>>,
}

impl Deref for Owned {
    type Target = Selector;

    fn deref(&self) -> &Selector {
        &self.version
    }
}

impl Holder for Owned {
    type Ref<'a, T: ?Sized + 'static>
        = &'a T
    where
        Self: 'a;

    fn project<'a, T: ?Sized + 'static>(
        &'a self,
        part: impl for<'x> FnOnce(&'x Selector) -> &'x T,
    ) -> &'a T {
        part(&self.version)
    }

    fn report(&self, picked: &Slot, report: &Report) {
        let current = self
            .current
            .as_ref()
            .or(self.version.local.reports_to.as_ref());
        match current {
            None => self.version.apply(picked, report),
            Some(current) => {
                let current = current.load();
                if let Some(slot) = current.same_slot(&picked.key, &picked.state) {
                    current.apply(slot, report);
                }
            }
        }
    }
}

impl fmt::Debug for OwnedPick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPick")
            .field("key", &self.key())
            .field("priority", &self.priority())
            .field("strategy", &self.strategy())
            .finish()
    }
}

impl OwnedPick {
    /// The pick that `version`'s `choose` returned (and counted): `index`
    /// and `priority`; its report goes to `current`'s version when given.
    pub(crate) fn new(
        version: Arc<Selector>,
        current: Option<Arc<ArcSwap<Selector>>>,
        index: usize,
        priority: u32,
    ) -> Self {
        let holder = Owned { version, current };
        Self {
            lease: Lease::new(holder, index, priority),
        }
    }

    /// The chosen deployment's key.
    ///
    /// See [`OwnedPick`] for an example.
    pub fn key(&self) -> &ModelKey {
        self.lease.key()
    }

    /// The chosen deployment's key, shared with its version.
    pub(crate) fn shared_key(&self) -> Arc<ModelKey> {
        self.lease.shared_key()
    }

    /// The chosen deployment.
    ///
    /// See [`OwnedPick`] for an example.
    pub fn deployment(&self) -> &Deployment {
        self.lease.deployment()
    }

    /// The priority tier it came from.
    ///
    /// See [`OwnedPick`] for an example.
    pub fn priority(&self) -> u32 {
        self.lease.priority()
    }

    /// The name of the strategy that chose it.
    ///
    /// See [`OwnedPick`] for an example.
    pub fn strategy(&self) -> &str {
        self.lease.strategy()
    }

    /// Completes the pick with an outcome report and releases its in-flight
    /// slot (see [`OwnedPick`] for where the report goes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::Report;
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let pick = fleet.select(&Request::new("gpt-4"))?;
    /// pick.complete(Report::success(Duration::from_secs(1), Duration::from_millis(90)));
    /// assert_eq!(fleet.selector().latency(&"openai/gpt-4@".parse()?), Some(Duration::from_millis(90)));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn complete(self, report: Report) {
        self.lease.complete(report);
    }

    /// Completes the pick as a success at `now` that took `latency`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let pick = fleet.select(&Request::new("gpt-4"))?;
    /// let key = pick.key().clone();
    /// pick.succeed(Duration::from_secs(1), Duration::from_millis(90));
    /// assert_eq!(fleet.selector().latency(&key), Some(Duration::from_millis(90)));
    /// assert_eq!(fleet.in_flight(&key), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn succeed(self, now: Duration, latency: Duration) {
        self.lease.succeed(now, latency);
    }
}

impl Drop for OwnedPick {
    fn drop(&mut self) {
        self.lease.release();
    }
}
