//! [`Pick`], and the in-flight [`Lease`] it shares with
//! [`OwnedPick`](super::OwnedPick).
//!
//! A pick counts its deployment in flight (when the selector counts) from
//! the moment the pipeline chooses it until the pick is dropped or
//! completed. [`Lease`] is that count, with what every kind of pick reads
//! (key, deployment, tier, strategy), how it completes and how it is
//! released; the kinds differ
//! only in how they hold the selector version ([`Holder`]): a `Pick`
//! borrows it, an `OwnedPick` holds a reference to it and, when it came
//! from a fleet, sends its report to the fleet's current version.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use super::Selector;
use super::tables::Slot;
use crate::health::Report;
use crate::{Deployment, ModelKey};

/// A chosen deployment, holding one in-flight slot until it is dropped or
/// completed.
///
/// `Pick` is `Send`: it may complete on another thread than the one that
/// selected.
///
/// ```
/// use modelfleet::{Deployment, Registry, Request, Selector};
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let s = Selector::new(&reg, modelfleet::select::RoundRobin);
/// let pick = s.select(&Request::new("gpt-4"))?;
/// assert_eq!(pick.key().to_string(), "openai/gpt-4@");
/// assert_eq!(pick.deployment().provider(), "openai");
/// assert_eq!(pick.priority(), 0);
/// assert_eq!(pick.strategy(), "round_robin");
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Pick<'s> {
    lease: Lease<&'s Selector>,
}

impl fmt::Debug for Pick<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("key", &self.key())
            .field("priority", &self.priority())
            .field("strategy", &self.strategy())
            .finish()
    }
}

impl<'s> Pick<'s> {
    /// The pick `lease` holds.
    #[inline]
    pub(crate) fn new(lease: Lease<&'s Selector>) -> Self {
        Self { lease }
    }

    /// The chosen deployment's key.
    ///
    /// See [`Pick`] for an example.
    #[inline]
    pub fn key(&self) -> &'s ModelKey {
        self.lease.key()
    }

    /// The chosen deployment.
    ///
    /// See [`Pick`] for an example.
    #[inline]
    pub fn deployment(&self) -> &'s Deployment {
        self.lease.deployment()
    }

    /// The priority tier it came from.
    ///
    /// See [`Pick`] for an example.
    #[inline]
    pub fn priority(&self) -> u32 {
        self.lease.priority()
    }

    /// The chosen deployment's key, shared with its version.
    pub(crate) fn shared_key(&self) -> std::sync::Arc<ModelKey> {
        self.lease.shared_key()
    }

    /// The name of the strategy that chose it.
    ///
    /// See [`Pick`] for an example.
    pub fn strategy(&self) -> &'s str {
        self.lease.strategy()
    }

    /// Completes the pick as a success observed at `now` (time since any
    /// fixed origin of your choosing; it must not go backwards) that took
    /// `latency`. Times come first, as in [`Report::success`]. Feeds the deployment's latency estimate and releases the
    /// in-flight slot.
    ///
    /// See [`Selector::latency`] for an example.
    pub fn succeed(self, now: Duration, latency: Duration) {
        self.lease.succeed(now, latency);
    }

    /// Completes the pick with an outcome report and releases its
    /// in-flight slot. See [`health`](crate::health) for what reports do.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::{FailureKind, Report};
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::new(&reg, modelfleet::select::RoundRobin);
    /// let pick = s.select(&Request::new("gpt-4"))?;
    /// pick.complete(Report::failure(Duration::from_secs(3), FailureKind::Timeout));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn complete(self, report: Report) {
        self.lease.complete(report);
    }
}

impl Drop for Pick<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lease.release();
    }
}

/// How a [`Lease`] holds the selector version (its picking handle) the
/// pick came from, and where the pick's report goes.
pub(crate) trait Holder: Deref<Target = Selector> {
    /// A part of the held version, borrowed through `&'a self`: for as long
    /// as the version is borrowed when the holder is a borrow (`&'s T` for
    /// `&'s Selector`), for `'a` when the holder owns its reference.
    type Ref<'a, T: ?Sized + 'static>
    where
        Self: 'a;

    /// The part of the held version that `part` finds, for as long as
    /// [`Ref`](Self::Ref) allows.
    fn project<'a, T: ?Sized + 'static>(
        &'a self,
        part: impl for<'x> FnOnce(&'x Selector) -> &'x T,
    ) -> Self::Ref<'a, T>;

    /// Applies `report` for a pick of `slot` (a slot of the held version).
    fn report(&self, slot: &Slot, report: &Report);
}

/// A [`Pick`]'s holder: the selector it was picked from, whose deployment
/// takes the report.
impl<'s> Holder for &'s Selector {
    type Ref<'a, T: ?Sized + 'static>
        = &'s T
    where
        Self: 'a;

    #[inline]
    fn project<'a, T: ?Sized + 'static>(
        &'a self,
        part: impl for<'x> FnOnce(&'x Selector) -> &'x T,
    ) -> &'s T {
        part(self)
    }

    fn report(&self, slot: &Slot, report: &Report) {
        self.apply(slot, report);
    }
}

/// One pick counted in flight on the handle that made it: the part every
/// kind of pick shares. Its owner's `drop` [releases](Self::release) it.
pub(crate) struct Lease<H: Holder> {
    /// The picking handle: says whether and on which stripe the pick was
    /// counted, and keeps the deployment's slot reachable.
    holder: H,
    /// Index of the deployment among the version's slots.
    index: usize,
    priority: u32,
}

impl<H: Holder> Lease<H> {
    /// The lease of the pick that `holder`'s [`choose`](Selector::choose)
    /// returned (and counted): `index` and `priority`.
    #[inline]
    pub(crate) fn new(holder: H, index: usize, priority: u32) -> Self {
        Self {
            holder,
            index,
            priority,
        }
    }

    #[inline]
    fn slot(&self) -> &Slot {
        self.holder.slot_at(self.index)
    }

    /// The chosen deployment's key.
    #[inline]
    pub(crate) fn key(&self) -> H::Ref<'_, ModelKey> {
        let index = self.index;
        self.holder.project(move |s| &*s.slot_at(index).key)
    }

    /// The chosen deployment's key, shared with its version.
    pub(crate) fn shared_key(&self) -> std::sync::Arc<ModelKey> {
        std::sync::Arc::clone(&self.slot().key)
    }

    /// The chosen deployment.
    #[inline]
    pub(crate) fn deployment(&self) -> H::Ref<'_, Deployment> {
        let index = self.index;
        self.holder.project(move |s| &*s.slot_at(index).deployment)
    }

    /// The name of the strategy that chose it.
    pub(crate) fn strategy(&self) -> H::Ref<'_, str> {
        self.holder.project(Selector::strategy_name)
    }

    /// The priority tier it came from.
    pub(crate) fn priority(&self) -> u32 {
        self.priority
    }

    /// Reports the pick's outcome (see [`Holder::report`]); the owner then
    /// drops the pick, which releases it.
    pub(crate) fn complete(&self, report: Report) {
        self.holder.report(self.slot(), &report);
    }

    /// Reports the pick as a success at `now` that took `latency`.
    pub(crate) fn succeed(&self, now: Duration, latency: Duration) {
        self.complete(Report::success(now, latency));
    }

    /// Releases the pick's in-flight count, if it was counted. Called once,
    /// by the owner's `drop`.
    #[inline]
    pub(crate) fn release(&mut self) {
        if self.holder.counts_in_flight() {
            self.slot().state.release(self.holder.stripe());
        }
    }
}
