//! [`FleetHandle`]: a fleet's selects with rotation cursors and a random
//! source of their own.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::{FleetPlan, Picker};
use crate::select::OwnedPick;
use crate::{Error, Request, Selector};

/// A view of a [`Fleet`](crate::Fleet) with its own rotation cursors,
/// random source and in-flight stripe, from
/// [`Fleet::handle`](crate::Fleet::handle).
///
/// `Send + Sync + 'static`, and `Clone` is cheap (reference counts):
/// clones are the same handle and share its cursors. What holds:
///
/// - **one handle, any threads**: picks through a handle (and its clones)
///   take consecutive turns of one rotation per model, whichever thread or
///   task makes them and however tasks migrate between threads, so
///   weighted round robin is exact over every window of Σw consecutive
///   turns of the handle. Tasks on different threads contend on its
///   cursors' cache lines.
/// - **one handle per worker**: handles never write each other's cache
///   lines on the hot path, and each handle's own sequence of turns is
///   exact; the fleet's traffic as a whole is then the sum of the handles'
///   rotations, each starting at its own seeded position.
///
/// A handle notices a new version with one atomic load per select and
/// follows it: the first select after an install makes its handle of the
/// new version (lock-free; racing selects agree on one), taking over the
/// rotation position per model. Turns taken on the old version while the
/// new one is being made are not carried over, so exactness holds within a
/// version, and across an install up to those turns.
/// Until then it keeps the last version it used alive.
///
/// ```
/// use modelfleet::{Deployment, Fleet, Policy, Registry, Request};
///
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
/// let fleet = Fleet::new(reg, |b| b);
/// let handle = fleet.handle();
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         let handle = handle.clone(); // the same handle
///         s.spawn(move || {
///             let pick = handle.select(&Request::new("gpt-4")).unwrap();
///             assert_eq!(pick.key().to_string(), "openai/gpt-4@http://a/v1");
///         });
///     }
/// });
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone)]
pub struct FleetHandle {
    picker: Picker,
}

impl fmt::Debug for FleetHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.picker.own.as_ref().map(|o| o.number);
        f.debug_struct("FleetHandle")
            .field("number", &number)
            .finish_non_exhaustive()
    }
}

impl FleetHandle {
    pub(super) fn new(picker: Picker) -> Self {
        Self { picker }
    }

    /// Picks a deployment for `request` with this handle's cursors and
    /// random source. No lock; no allocation except in the first select
    /// after a new version was installed (the handle's handle of it).
    ///
    /// # Errors
    ///
    /// As [`Selector::select`].
    ///
    /// See [`FleetHandle`] for an example.
    pub fn select(&self, request: &Request) -> Result<OwnedPick, Error> {
        self.picker.select(request, None)
    }

    /// The attempt plan for `request`, picking with this handle (see
    /// [`Fleet::plan`](crate::Fleet::plan)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let handle = Fleet::new(reg, |b| b).handle();
    /// let mut plan = handle.plan(&Request::new("gpt-4"));
    /// assert!(plan.next_at(Duration::ZERO).is_ok());
    /// assert!(plan.next_at(Duration::ZERO).is_err()); // tried them all
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn plan(&self, request: &Request) -> FleetPlan {
        FleetPlan::new(self.picker.clone(), request)
    }
}

/// A handle's own part: its number, and its handle of the version it last
/// used (its cursors, random source and stripe), which records the fleet
/// generation it was made at.
pub(crate) struct Own {
    number: u64,
    mine: ArcSwapOption<Selector>,
}

impl Own {
    pub(super) fn new(number: u64) -> Self {
        Self {
            number,
            mine: ArcSwapOption::empty(),
        }
    }

    /// This handle's handle of the current version: a load of the fleet's
    /// generation and of the handle's version while nothing was installed.
    /// The first select that notices an install makes the new one (from the
    /// previous one, whose rotation positions it takes over), lock-free:
    /// racing selects agree through a compare-and-swap that never replaces
    /// a version made at a later generation, so a select that read an older
    /// version cannot put it back.
    pub(super) fn version(
        &self,
        fleet: &Arc<ArcSwap<Selector>>,
        generation: &AtomicU64,
    ) -> Arc<Selector> {
        // The generation first: a version made at it (from a `current`
        // loaded after it) is at least that generation's.
        let now = generation.load(Ordering::Acquire);
        let mine = self.mine.load();
        if let Some(v) = &*mine
            && v.local.generation >= now
        {
            return Arc::clone(v);
        }
        let current = fleet.load();
        let mut mine = mine;
        loop {
            // Made afresh even when `mine` is of the same version: its
            // generation would stay behind, and every select check again.
            let fresh = Arc::new(current.handle_of(self.number, mine.as_deref(), (fleet, now)));
            let before = self.mine.compare_and_swap(&mine, Some(Arc::clone(&fresh)));
            let swapped = match (&*before, &*mine) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if swapped {
                return fresh;
            }
            // Another select got there first: take its version if it was
            // made at this generation or later, else try again over it.
            match &*before {
                Some(v) if v.local.generation >= now => return Arc::clone(v),
                _ => mine = self.mine.load(),
            }
        }
    }
}
