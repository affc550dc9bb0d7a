//! [`Fleet`]: a live registry that many threads and tasks select from while
//! it changes; its handles, plans and drains.

mod drain;
mod handle;
mod plan;
mod share;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;

pub use drain::Drain;
pub use handle::FleetHandle;
pub use plan::FleetPlan;

use crate::health::state::nanos;
use crate::health::{HealthSnapshot, Report};
use crate::select::{Drained, OwnedPick};
use crate::{
    Changes, Clock, Error, IdentityPolicy, ModelKey, Policy, Registry, Request, Selector,
    SelectorBuilder,
};

/// A registry and its selector, shared by many threads and tasks while
/// deployments come and go.
///
/// `Fleet` is a handle to shared state: `Clone` is cheap (two reference
/// counts) and every clone is the same fleet, so it can be an async
/// server's state. Readers call [`select`](Self::select),
/// [`plan`](Self::plan), or a [`FleetHandle`]'s; a writer calls
/// [`install`](Self::install), [`apply`](Self::apply) or
/// [`drain`](Self::drain). The writer builds the new selector off the
/// request path with [`Selector::rebuild`], which keeps the live state of
/// every deployment that stays, then swaps it in atomically
/// ([`arc_swap`]):
///
/// - readers never block on the writer and never see half an update: each
///   `select` runs entirely on one version;
/// - once `install` returns, no `select` picks a removed deployment;
/// - a pick taken from an old version stays valid ([`OwnedPick`]): it keeps
///   its version alive, and its in-flight count is shared with the new
///   version when the deployment stayed;
/// - writers are serialized among themselves.
///
/// Time: a request that carries no time ([`Request::at`]) is judged at the
/// fleet's [clock](FleetBuilder::clock) when it has one, else at the
/// latest report time. The fleet reads no other clock.
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
/// let reader = fleet.clone();
/// let worker = std::thread::spawn(move || {
///     for _ in 0..100 {
///         let pick = reader.select(&Request::new("gpt-4")).unwrap();
///         drop(pick);
///     }
/// });
/// reg.insert(node("10.0.0.2")?)?;
/// fleet.install(reg.clone(), Duration::from_secs(1));
/// worker.join().unwrap();
/// assert_eq!(fleet.registry().len(), 2);
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Fleet<P = Policy> {
    /// The current version: the fleet's shared handle of it.
    current: Arc<ArcSwap<Selector>>,
    /// How many versions were swapped in: one relaxed load tells a
    /// [`FleetHandle`] whether its handle of a version is still current.
    generation: Arc<AtomicU64>,
    clock: Option<Arc<dyn Clock>>,
    control: Arc<Control<P>>,
    /// Present when the fleet shares health and usage with other replicas.
    share: Option<Arc<share::Sharing>>,
}

/// What only writers touch.
struct Control<P> {
    stored: Mutex<Stored<P>>,
    /// Numbers for new handles (their random sources and stripes).
    handles: AtomicU64,
}

/// The registry as installed, and the deployments drained in it.
struct Stored<P> {
    registry: Registry<P>,
    drained: Drained,
    /// The registry's version as a control plane numbers it
    /// ([`Fleet::apply_version`]); 0 until one is given.
    version: u64,
}

impl<P> Clone for Fleet<P> {
    /// The same fleet (not a copy): clones share every version, handle
    /// number and drain.
    fn clone(&self) -> Self {
        Self {
            current: Arc::clone(&self.current),
            generation: Arc::clone(&self.generation),
            clock: self.clock.clone(),
            control: Arc::clone(&self.control),
            share: self.share.clone(),
        }
    }
}

impl<P> fmt::Debug for Fleet<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("selector", &**self.current.load())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Fleet`]: the selector's settings and the clock.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use modelfleet::{Deployment, Fleet, ManualClock, Registry, Request};
/// use modelfleet::select::RoundRobin;
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let clock = Arc::new(ManualClock::new());
/// let fleet = Fleet::builder(reg).selector(|b| b.strategy(RoundRobin).seed(7)).clock(clock.clone()).build();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(fleet.now(), Some(Duration::from_secs(5)));
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct FleetBuilder<P> {
    registry: Registry<P>,
    /// Built by [`selector`](Self::selector), else at `build` with the
    /// defaults.
    selector: Option<Selector>,
    clock: Option<Arc<dyn Clock>>,
    replica: Option<crate::share::ReplicaId>,
}

impl<P> fmt::Debug for FleetBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBuilder")
            .field("deployments", &self.registry.len())
            .field("selector", &self.selector)
            .field("clock", &self.clock)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl<P: IdentityPolicy + Clone> FleetBuilder<P> {
    /// Shares health and usage with other replicas as `replica`, with
    /// wall-clock times read through `clock`, which also becomes the
    /// fleet's [clock](Self::clock) (events carry wall-clock times, so a
    /// sharing fleet needs one). See [`crate::share`].
    ///
    /// See [`crate::share`] for an example.
    pub fn share(mut self, replica: crate::share::ReplicaId, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self.replica = Some(replica);
        self
    }

    /// Configures the selector (default: [`Selector::builder`]'s
    /// defaults), and builds it.
    ///
    /// See [`FleetBuilder`] for an example.
    pub fn selector(
        mut self,
        configure: impl for<'r> FnOnce(SelectorBuilder<'r, P>) -> SelectorBuilder<'r, P>,
    ) -> Self {
        self.selector = Some(configure(Selector::builder(&self.registry)).build());
        self
    }

    /// The clock that requests without a time are judged at, and that
    /// [`FleetPlan::next_now`] and adapters read (default: none). Report
    /// times must come from the same clock: give the fleet the clock your
    /// reports use.
    ///
    /// See [`FleetBuilder`] for an example.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The fleet. Cannot fail: the selector builder takes a health policy
    /// only once it is [validated](crate::health::HealthPolicy::validated).
    ///
    /// See [`FleetBuilder`] for an example.
    pub fn build(self) -> Fleet<P> {
        let mut selector = self
            .selector
            .unwrap_or_else(|| Selector::builder(&self.registry).build());
        let share = match (self.replica, &self.clock) {
            (Some(replica), Some(clock)) => {
                let sharing = share::Sharing::new(replica, Arc::clone(clock));
                // The selector was built here and is not shared yet.
                let set = selector.set_outbox(Arc::clone(&sharing.outbox));
                debug_assert!(set);
                Some(Arc::new(sharing))
            }
            _ => None,
        };
        Fleet {
            share,
            current: Arc::new(ArcSwap::from_pointee(selector)),
            generation: Arc::default(),
            clock: self.clock,
            control: Arc::new(Control {
                stored: Mutex::new(Stored {
                    registry: self.registry,
                    drained: Drained::default(),
                    version: 0,
                }),
                handles: AtomicU64::new(1),
            }),
        }
    }
}

impl<P: IdentityPolicy + Clone> Fleet<P> {
    /// A fleet serving `registry` with a selector configured by
    /// `configure`, and no clock. Cannot fail: the builder takes a health
    /// policy only once it is
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
        Self::builder(registry).selector(configure).build()
    }

    /// Starts configuring a fleet over `registry`.
    ///
    /// See [`FleetBuilder`] for an example.
    pub fn builder(registry: Registry<P>) -> FleetBuilder<P> {
        FleetBuilder {
            registry,
            selector: None,
            clock: None,
            replica: None,
        }
    }
}

impl<P: IdentityPolicy + Clone> Fleet<P> {
    /// Picks a deployment for `request` on the fleet's shared handle. No
    /// lock; the pick holds references to its version and to the fleet (two
    /// atomic increments, and decrements on drop).
    ///
    /// Clones of the fleet share this handle: its rotation is one sequence
    /// of turns over every thread and task that selects through it, so
    /// weighted round robin is exact over every window of Σw consecutive
    /// turns. Threads selecting at once contend on its cursor and reference
    /// counts: give busy workers their own [`handle`](Self::handle).
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
    pub fn select(&self, request: &Request) -> Result<OwnedPick, Error> {
        self.picker(None).select(request, None)
    }

    /// The attempt plan for `request` on the fleet's shared handle: each
    /// attempt selects on the version current at that attempt, at the time
    /// given for it, and never repeats a deployment tried before in the
    /// plan, across versions too. See [`FleetPlan`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Policy, Registry, Request};
    ///
    /// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
    /// let fleet = Fleet::new(reg.clone(), |b| b);
    /// let mut plan = fleet.plan(&Request::new("gpt-4"));
    /// let first = plan.next_at(Duration::from_secs(1))?.key().clone();
    /// // A new version between attempts: the other deployment is gone.
    /// let other = reg.keys().find(|k| **k != first).unwrap().clone();
    /// reg.remove(&other);
    /// fleet.install(reg, Duration::from_secs(1));
    /// assert!(plan.next_at(Duration::from_secs(2)).is_err()); // never the removed one
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn plan(&self, request: &Request) -> FleetPlan {
        FleetPlan::new(self.picker(None), request)
    }

    /// A handle with its own rotation cursors, random source (seeded from
    /// the fleet's seed and the handle's number) and in-flight stripe over
    /// the fleet's shared state, so workers with their own handles never
    /// write the same cache line on the hot path. See [`FleetHandle`].
    ///
    /// ```
    /// use modelfleet::{Deployment, Fleet, Registry, Request};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(reg, |b| b);
    /// let handle = fleet.handle();
    /// assert_eq!(handle.select(&Request::new("gpt-4"))?.key().to_string(), "openai/gpt-4@");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn handle(&self) -> FleetHandle {
        let number = self.control.handles.fetch_add(1, Ordering::Relaxed) + (1 << 32);
        FleetHandle::new(self.picker(Some(Arc::new(handle::Own::new(number)))))
    }

    /// Installs a new registry version and returns the changes from the
    /// previous one. The new selector keeps the live state of every
    /// deployment that stays ([`Selector::rebuild`]); deployments new in
    /// `registry` start at `now` (slow start, if configured). Drained
    /// deployments that stay stay drained.
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
        let mut stored = self.stored();
        let changes = stored.registry.diff(&registry);
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
    /// let remove = vec![Change::removed("openai/gpt-4@".parse()?)].into();
    /// fleet.apply(&remove, Duration::from_secs(5))?;
    /// assert!(fleet.registry().is_empty());
    /// assert!(fleet.apply(&remove, Duration::from_secs(6)).is_err());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn apply(&self, changes: &Changes, now: Duration) -> Result<(), Error> {
        let mut stored = self.stored();
        let mut next = stored.registry.clone();
        next.apply(changes)?;
        self.swap(&mut stored, next, now);
        Ok(())
    }

    /// Applies `changes`, which lead the registry from version `version - 1`
    /// to `version`, as a control plane numbers them, and installs the
    /// result (see [`apply`](Self::apply)). A replica that receives
    /// versioned changes through a store applies them in order with this,
    /// and after a refused gap installs a full snapshot with
    /// [`install_version`](Self::install_version), so it ends equal to the
    /// source registry whatever the store duplicated, reordered or lost.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfOrder`] if `version` is not the fleet's version + 1
    /// (stale: already applied; gapped: versions missing between); else as
    /// [`Registry::apply`]. The fleet is then unchanged.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Change, Deployment, Error, Fleet, IdentityPolicy, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let d = Deployment::builder("openai", "gpt-4o").build()?;
    /// let add = vec![Change::added(reg.policy().key(&d), d)].into();
    /// let fleet = Fleet::new(reg, |b| b);
    /// fleet.apply_version(1, &add, Duration::ZERO)?;
    /// assert_eq!(fleet.version(), 1);
    /// assert!(matches!(fleet.apply_version(1, &add, Duration::ZERO), Err(Error::OutOfOrder { have: 1, got: 1, .. })));
    /// assert!(matches!(fleet.apply_version(3, &add, Duration::ZERO), Err(Error::OutOfOrder { have: 1, got: 3, .. })));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn apply_version(
        &self,
        version: u64,
        changes: &Changes,
        now: Duration,
    ) -> Result<(), Error> {
        let mut stored = self.stored();
        if stored.version.checked_add(1) != Some(version) {
            return Err(Error::OutOfOrder {
                have: stored.version,
                got: version,
            });
        }
        let mut next = stored.registry.clone();
        next.apply(changes)?;
        self.swap(&mut stored, next, now);
        stored.version = version;
        Ok(())
    }

    /// Installs `registry` as version `version` (see
    /// [`install`](Self::install)): a full snapshot, which a replica takes
    /// when it joins or after [`apply_version`](Self::apply_version)
    /// refused a gap. Returns the changes from the previous registry.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfOrder`] if `version` is older than the fleet's (a
    /// stale snapshot); the same version is installed again, so a
    /// repeated snapshot is harmless.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let fleet = Fleet::new(Registry::default(), |b| b);
    /// fleet.install_version(7, reg.clone(), Duration::ZERO)?;
    /// assert_eq!((fleet.version(), fleet.registry()), (7, reg.clone()));
    /// assert!(fleet.install_version(6, reg, Duration::ZERO).is_err());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn install_version(
        &self,
        version: u64,
        registry: Registry<P>,
        now: Duration,
    ) -> Result<Changes, Error> {
        let mut stored = self.stored();
        if version < stored.version {
            return Err(Error::OutOfOrder {
                have: stored.version,
                got: version,
            });
        }
        let changes = stored.registry.diff(&registry);
        self.swap(&mut stored, registry, now);
        stored.version = version;
        Ok(changes)
    }

    /// The registry's version as a control plane numbers it: the last one
    /// [`apply_version`](Self::apply_version) or
    /// [`install_version`](Self::install_version) reached; 0 before.
    ///
    /// See [`apply_version`](Self::apply_version) for an example.
    pub fn version(&self) -> u64 {
        self.stored().version
    }

    /// Drains the deployment under `key`: no select or plan that begins
    /// after this returns picks it (its weight counts as 0, in this version
    /// and the versions installed after it while it stays), and picks
    /// already made go on and are reported as usual. The [`Drain`] tells
    /// when the last of them ended and then removes the deployment; drop it
    /// to keep the deployment drained, [`cancel`](Drain::cancel) it to
    /// undo.
    ///
    /// A select already running on an older version when this is called
    /// may still pick the deployment; its pick counts in flight before that
    /// select returns. So [`Drain::is_idle`] is exact once every select
    /// that began before the drain returned has returned: poll it on a
    /// timer rather than once.
    ///
    /// Builds a new version: O(n log n) on the calling thread, like
    /// [`install`](Self::install).
    ///
    /// Needs in-flight counting (the default,
    /// [`InFlight::Counted`](crate::select::InFlight)): without it a drain
    /// looks idle at once.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownDeployment`] if the current registry has no
    /// deployment under `key`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Fleet, Policy, Registry, Request};
    ///
    /// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
    /// let fleet = Fleet::new(reg, |b| b);
    /// let a: modelfleet::ModelKey = "openai/gpt-4@http://a/v1".parse()?;
    /// let held = fleet.select(&Request::new("gpt-4").exclude("openai/gpt-4@http://b/v1".parse()?))?;
    /// assert_eq!(held.key(), &a);
    ///
    /// let drain = fleet.drain(&a, Duration::from_secs(1))?;
    /// for _ in 0..10 {
    ///     assert_ne!(fleet.select(&Request::new("gpt-4"))?.key(), &a); // no new picks
    /// }
    /// assert_eq!(drain.in_flight(), 1); // the held one goes on
    /// held.succeed(Duration::from_secs(2), Duration::from_millis(300));
    /// assert!(drain.is_idle());
    /// drain.remove(Duration::from_secs(2))?;
    /// assert_eq!(fleet.registry().len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn drain(&self, key: &ModelKey, now: Duration) -> Result<Drain<P>, Error> {
        let mut stored = self.stored();
        if !stored.registry.contains(key) {
            return Err(Error::UnknownDeployment {
                key: Box::new(key.clone()),
            });
        }
        stored.drained.insert(key.clone());
        let registry = stored.registry.clone();
        self.swap(&mut stored, registry, now);
        let state = self
            .current
            .load()
            .slot(key)
            .map(|slot| Arc::clone(&slot.state))
            .ok_or_else(|| Error::UnknownDeployment {
                key: Box::new(key.clone()),
            })?;
        Ok(Drain::new(self.clone(), key.clone(), state))
    }

    /// Takes `key` out of the drained set and installs the result.
    fn undrain(&self, key: &ModelKey, now: Duration, remove: bool) -> Result<Changes, Error> {
        let mut stored = self.stored();
        stored.drained.shift_remove(key);
        let mut registry = stored.registry.clone();
        if remove && registry.remove(key).is_none() {
            return Err(Error::UnknownDeployment {
                key: Box::new(key.clone()),
            });
        }
        let changes = stored.registry.diff(&registry);
        self.swap(&mut stored, registry, now);
        Ok(changes)
    }

    fn stored(&self) -> MutexGuard<'_, Stored<P>> {
        self.control
            .stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Builds the version for `registry` and swaps it in; drains of keys no
    /// longer there are forgotten.
    fn swap(&self, stored: &mut Stored<P>, registry: Registry<P>, now: Duration) {
        stored.drained.retain(|k| registry.contains(k));
        let next = self
            .current
            .load()
            .rebuild_draining(&registry, now, &stored.drained);
        self.current.store(Arc::new(next));
        self.generation.fetch_add(1, Ordering::Release);
        stored.registry = registry;
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
        self.stored().registry.clone()
    }

    /// The current selector version (for [`explain`](Selector::explain),
    /// counters). It stays usable, and keeps its version alive, while you
    /// hold it.
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

    /// Picks of the deployment under `key` in flight now, from every
    /// version and handle; `None` if the current version has no such
    /// deployment.
    ///
    /// See [`OwnedPick`] for an example.
    pub fn in_flight(&self, key: &ModelKey) -> Option<u32> {
        self.current.load().in_flight(key)
    }

    /// The fleet's clock, if it was given one.
    ///
    /// ```
    /// use modelfleet::{Deployment, Fleet, MonotonicClock, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// assert!(Fleet::new(reg.clone(), |b| b).clock().is_none());
    /// assert!(Fleet::builder(reg).clock(MonotonicClock::new()).build().clock().is_some());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn clock(&self) -> Option<&Arc<dyn Clock>> {
        self.clock.as_ref()
    }

    /// The fleet clock's current time, if it has a clock.
    ///
    /// See [`FleetBuilder`] for an example.
    pub fn now(&self) -> Option<Duration> {
        self.clock.as_ref().map(|c| c.now())
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

    /// The fleet's shared handle (`own` `None`), or a handle of its own.
    fn picker(&self, own: Option<Arc<handle::Own>>) -> Picker {
        Picker {
            current: Arc::clone(&self.current),
            generation: Arc::clone(&self.generation),
            clock: self.clock.clone(),
            own,
        }
    }
}

/// What selects for a fleet, a handle or a plan: the fleet's current
/// version and clock, and the handle whose cursors it uses (the version's
/// own, shared by the fleet's clones, when `None`).
#[derive(Clone)]
pub(crate) struct Picker {
    current: Arc<ArcSwap<Selector>>,
    generation: Arc<AtomicU64>,
    clock: Option<Arc<dyn Clock>>,
    own: Option<Arc<handle::Own>>,
}

impl Picker {
    /// A pick for `request` at `at` when given, else at the request's time,
    /// else at the clock's, else at the latest report time.
    pub(crate) fn select(
        &self,
        request: &Request,
        at: Option<Duration>,
    ) -> Result<OwnedPick, Error> {
        let at = at
            .or_else(|| request.time())
            .or_else(|| self.clock.as_ref().map(|c| c.now()))
            .map(nanos);
        // A handle's version knows where reports go; the fleet's own
        // version is the one in `current`, which cannot point at itself.
        let (version, reports_to) = match &self.own {
            None => (self.current.load_full(), Some(Arc::clone(&self.current))),
            Some(own) => (own.version(&self.current, &self.generation), None),
        };
        let (index, priority) = version.choose_at(request, at)?;
        Ok(OwnedPick::new(version, reports_to, index, priority))
    }

    pub(crate) fn clock(&self) -> Option<&Arc<dyn Clock>> {
        self.clock.as_ref()
    }
}
