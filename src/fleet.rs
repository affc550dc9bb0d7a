//! [`Fleet`]: a live registry that many threads select from while it changes.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwap, Cache};

use crate::health::{HealthSnapshot, Report};
use crate::select::{Holder, Lease, Slot};
use crate::{
    Changes, Deployment, Error, IdentityPolicy, ModelKey, Policy, Registry, Request, Selector,
    SelectorBuilder,
};

/// A registry and its selector, shared by many threads while deployments
/// come and go.
///
/// Readers call [`select`](Self::select) (or, to scale across threads,
/// [`FleetHandle::select`] on a handle per thread); a writer calls
/// [`install`](Self::install) or [`apply`](Self::apply) with a new registry
/// version. The writer builds the new selector off the request path with
/// [`Selector::rebuild`], which keeps the live state of every deployment that
/// stays, then swaps it in atomically ([`arc_swap`]):
///
/// - readers never block on the writer and never see half an update: each
///   `select` runs entirely on one version;
/// - once `install` returns, no `select` picks a removed deployment;
/// - a pick taken from an old version stays valid: it keeps the version it
///   came from alive (a [`FleetHandle`]'s pick through the handle's own
///   reference to it, whose count no other handle writes; a pick of
///   [`Fleet::select`] through the version's shared reference), and its
///   in-flight count is shared with the new version when the deployment
///   stayed;
/// - writers are serialized among themselves.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::{Deployment, Fleet, Policy, Registry, Request};
/// use modelfleet::select::RoundRobin;
///
/// let node = |ip: &str| Deployment::builder("openai", "gpt-4").endpoint(&format!("http://{ip}/v1")).build();
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// reg.insert(node("10.0.0.1")?)?;
/// let fleet = Fleet::new(reg.clone(), |b| b.strategy(RoundRobin));
///
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         let handle = fleet.handle();
///         for _ in 0..100 {
///             let pick = handle.select(&Request::new("gpt-4")).unwrap();
///             drop(pick);
///         }
///     });
///     reg.insert(node("10.0.0.2").unwrap()).unwrap();
///     fleet.install(reg.clone(), Duration::from_secs(1));
/// });
/// assert_eq!(fleet.registry().len(), 2);
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Fleet<P = Policy> {
    current: ArcSwap<Selector>,
    registry: Mutex<Registry<P>>,
    handles: AtomicU64,
}

impl<P: fmt::Debug> fmt::Debug for Fleet<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("selector", &**self.current.load())
            .finish_non_exhaustive()
    }
}

impl<P: IdentityPolicy + Clone> Fleet<P> {
    /// A fleet serving `registry` with a selector configured by `configure`.
    /// Cannot fail: the builder takes a health policy only once it is
    /// [validated](crate::health::HealthPolicy::validated), so an invalid
    /// one is an error where it is made, before the fleet.
    ///
    /// ```
    /// use modelfleet::health::HealthPolicy;
    /// use modelfleet::{Deployment, Fleet, Registry};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let health = HealthPolicy::litellm().validated()?;
    /// let fleet = Fleet::new(reg, move |b| b.health(health));
    /// assert_eq!(fleet.registry().len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn new(
        registry: Registry<P>,
        configure: impl for<'r> FnOnce(SelectorBuilder<'r, P>) -> SelectorBuilder<'r, P>,
    ) -> Self {
        let selector = configure(Selector::builder(&registry)).build();
        Self {
            current: ArcSwap::from_pointee(selector),
            registry: Mutex::new(registry),
            handles: AtomicU64::new(1),
        }
    }

    /// Picks a deployment for `request` on the fleet's shared handle. No
    /// lock; the pick holds a reference to the current version (one atomic
    /// increment of its reference count, and a decrement on drop).
    ///
    /// Threads selecting at once through the shared handle contend on its
    /// rotation cursor and on that reference count: give busy threads their
    /// own [`handle`](Self::handle).
    ///
    /// # Errors
    ///
    /// As [`Selector::select`].
    ///
    /// ```
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// assert_eq!(fleet.select(&Request::new("gpt-4"))?.deployment().model(), "gpt-4");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn select(&self, request: &Request) -> Result<FleetPick<'_>, Error> {
        // A full reference at once: turning a short-term guard into one
        // costs more than taking it.
        let current = self.current.load_full();
        let (index, priority) = current.choose(request)?;
        let holder = Picked {
            current: &self.current,
            version: current,
        };
        Ok(FleetPick {
            lease: Lease::new(holder, index, priority),
        })
    }

    /// A handle for one thread: its own rotation cursors, random source
    /// (seeded from the fleet's seed and the handle's number) and in-flight
    /// stripe over the fleet's shared state, so threads with their own
    /// handle never write the same cache line on the hot path. It notices a
    /// new version with one relaxed load per select (an
    /// [`arc_swap::Cache`]) and follows it, keeping its rotation position
    /// per model. Until its next select (or its drop), a handle keeps the
    /// last version it used alive.
    ///
    /// See [`Fleet`] for an example.
    pub fn handle(&self) -> FleetHandle<'_, P> {
        FleetHandle {
            fleet: self,
            number: self.handles.fetch_add(1, Ordering::Relaxed) + (1 << 32),
            cache: RefCell::new((Cache::new(&self.current), None)),
        }
    }

    /// Installs a new registry version and returns the changes from the
    /// previous one. The new selector keeps the live state of every
    /// deployment that stays ([`Selector::rebuild`]); deployments new in
    /// `registry` start at `now` (slow start, if configured).
    ///
    /// Computes in O(n log n) on the calling thread; readers keep serving
    /// from the previous version meanwhile.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let empty = Registry::default();
    /// let changes = fleet.install(empty, Duration::from_secs(5));
    /// assert_eq!(changes.len(), 1);
    /// assert!(fleet.select(&Request::new("gpt-4")).is_err());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn install(&self, registry: Registry<P>, now: Duration) -> Changes {
        let mut stored = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let changes = stored.diff(&registry);
        self.swap(&mut stored, registry, now);
        changes
    }

    /// Applies `changes` to the current registry and installs the result
    /// (see [`install`](Self::install)); all or nothing.
    ///
    /// # Errors
    ///
    /// As [`Registry::apply`]; the fleet is then unchanged.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Change, Deployment, Fleet, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let drain = vec![Change::removed("openai/gpt-4@".parse()?)].into();
    /// fleet.apply(&drain, Duration::from_secs(5))?;
    /// assert!(fleet.registry().is_empty());
    /// assert!(fleet.apply(&drain, Duration::from_secs(6)).is_err());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn apply(&self, changes: &Changes, now: Duration) -> Result<(), Error> {
        let mut stored = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = stored.clone();
        next.apply(changes)?;
        self.swap(&mut stored, next, now);
        Ok(())
    }

    fn swap(&self, stored: &mut Registry<P>, registry: Registry<P>, now: Duration) {
        let next = self.current.load().rebuild(&registry, now);
        self.current.store(Arc::new(next));
        *stored = registry;
    }

    /// A copy of the current registry.
    ///
    /// ```
    /// use modelfleet::{Deployment, Fleet, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// assert_eq!(Fleet::new(reg.clone(), |b| b).registry(), reg);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn registry(&self) -> Registry<P> {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current selector version (for [`explain`](Selector::explain),
    /// [`plan`](Selector::plan), counters). It stays usable, and keeps its
    /// version alive, while you hold it.
    ///
    /// ```
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let why = fleet.selector().explain(&Request::new("gpt-4"))?;
    /// assert_eq!(why.tier(), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn selector(&self) -> Arc<Selector> {
        self.current.load_full()
    }

    /// Applies an outcome report to the deployment under `key` in the
    /// current version; `false` if it is not there.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::Report;
    /// use modelfleet::{Deployment, Fleet, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let ok = Report::success(Duration::from_secs(1), Duration::from_millis(80));
    /// assert!(fleet.report(&"openai/gpt-4@".parse()?, ok));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn report(&self, key: &ModelKey, report: Report) -> bool {
        self.current.load().report(key, report)
    }

    /// The health of every deployment of the current version at `now`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// assert_eq!(Fleet::new(reg, |b| b).health(Duration::ZERO).len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn health(&self, now: Duration) -> Vec<HealthSnapshot> {
        self.current.load().health(now)
    }
}

/// One thread's view of a [`Fleet`], from [`Fleet::handle`].
///
/// `Send` but not `Sync`: move it into the thread that uses it.
///
/// ```
/// use modelfleet::{Deployment, Fleet, Policy, Registry, Request};
///
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
/// let fleet = Fleet::new(reg, |b| b);
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         let handle = fleet.handle();
///         s.spawn(move || {
///             let pick = handle.select(&Request::new("gpt-4")).unwrap();
///             assert_eq!(pick.key().to_string(), "openai/gpt-4@http://a/v1");
///         });
///     }
/// });
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct FleetHandle<'f, P = Policy> {
    fleet: &'f Fleet<P>,
    number: u64,
    /// The fleet's current version (checked with one relaxed load per
    /// select), and this handle's own handle of it: its cursors, random
    /// source and in-flight stripe. Picks hold a clone of the latter, whose
    /// count only this handle's thread writes.
    cache: RefCell<HandleCache<'f>>,
}

/// What a [`FleetHandle`] keeps between selects: the fleet's version as of
/// the last select, and this handle's own handle of it.
type HandleCache<'f> = (
    Cache<&'f ArcSwap<Selector>, Arc<Selector>>,
    Option<Arc<Selector>>,
);

impl<P> fmt::Debug for FleetHandle<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetHandle")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl<'f, P: IdentityPolicy + Clone> FleetHandle<'f, P> {
    /// Picks a deployment for `request` with this handle's cursors and
    /// random source. No lock; allocates only on the first call after a new
    /// version was installed (its handle of that version).
    ///
    /// # Errors
    ///
    /// As [`Selector::select`].
    ///
    /// See [`Fleet`] for an example.
    pub fn select(&self, request: &Request) -> Result<FleetPick<'f>, Error> {
        let mut cache = self.cache.borrow_mut();
        let (fleet, mine) = &mut *cache;
        let current = fleet.load();
        let version = match mine {
            Some(v) if v.same_version(current) => v,
            _ => mine.insert(Arc::new(current.handle_of(self.number, mine.as_deref()))),
        };
        let (index, priority) = version.choose(request)?;
        let holder = Picked {
            current: &self.fleet.current,
            version: Arc::clone(version),
        };
        Ok(FleetPick {
            lease: Lease::new(holder, index, priority),
        })
    }
}

/// A deployment picked from a [`Fleet`]: valid across version swaps, holding
/// one in-flight slot until dropped or completed. `Send`.
///
/// ```
/// use modelfleet::{Deployment, Fleet, Registry, Request};
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").priority(1).build()?].into_iter().collect();
/// let fleet = Fleet::new(reg, |b| b);
/// let pick = fleet.select(&Request::new("gpt-4"))?;
/// assert_eq!(pick.key().to_string(), "openai/gpt-4@");
/// assert_eq!(pick.deployment().model(), "gpt-4");
/// assert_eq!(pick.priority(), 1);
/// assert_eq!(fleet.selector().in_flight(pick.key()), Some(1));
/// drop(pick); // releases its in-flight slot
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct FleetPick<'f> {
    lease: Lease<Picked<'f>>,
}

/// How a [`FleetPick`] holds its version: the handle (of the version it
/// came from) that picked it, which keeps the deployment alive across swaps
/// and says whether and on which stripe it was counted in flight; and the
/// fleet's current version, which its report goes to.
struct Picked<'f> {
    current: &'f ArcSwap<Selector>,
    version: Arc<Selector>,
}

impl Deref for Picked<'_> {
    type Target = Selector;

    fn deref(&self) -> &Selector {
        &self.version
    }
}

impl Holder for Picked<'_> {
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

    /// The report reaches the current version's deployment if it is the
    /// one picked (same key, same live state); a report for a deployment
    /// removed or replaced meanwhile is ignored.
    fn report(&self, picked: &Slot, report: &Report) {
        let current = self.current.load();
        if let Some(slot) = current.same_slot(&picked.key, &picked.state) {
            current.apply(slot, report);
        }
    }
}

impl fmt::Debug for FleetPick<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetPick")
            .field("key", &self.key())
            .field("priority", &self.priority())
            .finish()
    }
}

impl FleetPick<'_> {
    /// The chosen deployment's key.
    ///
    /// See [`FleetPick`] for an example.
    pub fn key(&self) -> &ModelKey {
        self.lease.key()
    }

    /// The chosen deployment.
    ///
    /// See [`FleetPick`] for an example.
    pub fn deployment(&self) -> &Deployment {
        self.lease.deployment()
    }

    /// The priority tier it came from.
    ///
    /// See [`FleetPick`] for an example.
    pub fn priority(&self) -> u32 {
        self.lease.priority()
    }

    /// Completes the pick with an outcome report and releases its in-flight
    /// slot. The report reaches the current version's deployment if it is
    /// the same one (same key, same endpoint); a report for a deployment
    /// that was removed or replaced meanwhile is ignored.
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
    /// See [`Pick::succeed`](crate::Pick::succeed).
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
    /// assert_eq!(fleet.selector().in_flight(&key), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn succeed(self, now: Duration, latency: Duration) {
        self.lease.succeed(now, latency);
    }
}

impl Drop for FleetPick<'_> {
    fn drop(&mut self) {
        self.lease.release();
    }
}
