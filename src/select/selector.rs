//! [`Selector`]: one handle of a selector version, its accessors and
//! [`rebuild`](Selector::rebuild).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::SelectorBuilder;
use super::strategy::BuiltinStrategy;
use super::tables::{Local, Shared, Slot};
use crate::{IdentityPolicy, ModelKey, Registry};

/// Picks a deployment for each request. See the
/// [module docs](crate::select) for the pipeline, the cost and the
/// threading model.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::WeightedRoundRobin;
///
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://10.0.0.1/v1").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://10.0.0.2/v1").build()?)?;
/// reg.insert(
///     Deployment::builder("azure", "gpt-4")
///         .endpoint("https://backup.example/v1")
///         .priority(1)
///         .build()?,
/// )?;
///
/// let selector = Selector::builder(&reg).strategy(WeightedRoundRobin::new()).seed(42).build();
/// let pick = selector.select(&Request::new("gpt-4"))?;
/// assert_eq!(pick.priority(), 0); // the backup tier is used only when tier 0 is empty
/// assert_eq!(pick.deployment().provider(), "openai");
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Selector {
    pub(crate) shared: Arc<Shared>,
    pub(crate) local: Local,
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("strategy", &self.shared.chooser.get().name())
            .field("deployments", &self.shared.slots.len())
            .field("models", &self.shared.models.len())
            .field("seed", &self.shared.seed)
            .finish()
    }
}

impl Clone for Selector {
    /// A new handle: same deployments and shared counters, its own rotation
    /// cursors and a random source derived from the seed and the handle's
    /// number (handles are numbered in the order they are cloned).
    fn clone(&self) -> Self {
        let handle = self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            local: Local::new(&self.shared, handle),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Selector {
    /// Starts configuring a selector over `registry`.
    ///
    /// See [`SelectorBuilder`] for an example.
    pub fn builder<P: IdentityPolicy>(registry: &Registry<P>) -> SelectorBuilder<'_, P> {
        SelectorBuilder::new(registry)
    }

    /// A selector with `strategy` and seed 0.
    ///
    /// ```
    /// use modelfleet::{Deployment, Registry, Selector};
    /// use modelfleet::select::RoundRobin;
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let selector = Selector::new(&reg, RoundRobin);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn new<P: IdentityPolicy>(
        registry: &Registry<P>,
        strategy: impl Into<BuiltinStrategy>,
    ) -> Selector {
        Self::builder(registry).strategy(strategy).build()
    }

    /// A selector with `strategy` and a seeded random source.
    ///
    /// ```
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    /// use modelfleet::select::WeightedRandom;
    /// let reg: Registry = (1..=3)
    ///     .map(|i| Deployment::builder("openai", "gpt-4").endpoint(&format!("http://n{i}/v1")).build())
    ///     .collect::<Result<_, _>>()?;
    /// let picks = |seed| {
    ///     let s = Selector::with_seed(&reg, WeightedRandom::new(), seed);
    ///     (0..10).map(|_| s.select(&Request::new("gpt-4")).unwrap().key().clone()).collect::<Vec<_>>()
    /// };
    /// assert_eq!(picks(1), picks(1));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn with_seed<P: IdentityPolicy>(
        registry: &Registry<P>,
        strategy: impl Into<BuiltinStrategy>,
        seed: u64,
    ) -> Selector {
        Self::builder(registry)
            .strategy(strategy)
            .seed(seed)
            .build()
    }

    /// The strategy's name.
    ///
    /// ```
    /// use modelfleet::{Registry, Selector};
    /// let s = Selector::new(&Registry::<modelfleet::Policy>::default(), modelfleet::select::RoundRobin);
    /// assert_eq!(s.strategy_name(), "round_robin");
    /// ```
    pub fn strategy_name(&self) -> &str {
        self.shared.chooser.get().name()
    }

    /// The number of deployments.
    ///
    /// ```
    /// use modelfleet::{Registry, Selector};
    /// let s = Selector::new(&Registry::<modelfleet::Policy>::default(), modelfleet::select::RoundRobin);
    /// assert_eq!(s.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.shared.slots.len()
    }

    /// Whether the selector has no deployment.
    ///
    /// ```
    /// use modelfleet::{Registry, Selector};
    /// let s = Selector::new(&Registry::<modelfleet::Policy>::default(), modelfleet::select::RoundRobin);
    /// assert!(s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.shared.slots.is_empty()
    }

    /// Picks of the deployment under `key` in flight now (across handles);
    /// `None` if the selector has no such deployment.
    ///
    /// ```
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::new(&reg, modelfleet::select::RoundRobin);
    /// let pick = s.select(&Request::new("gpt-4"))?;
    /// assert_eq!(s.in_flight(pick.key()), Some(1));
    /// let key = pick.key().clone();
    /// drop(pick);
    /// assert_eq!(s.in_flight(&key), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn in_flight(&self, key: &ModelKey) -> Option<u32> {
        self.slot(key).map(|s| s.state.in_flight())
    }

    /// The latency estimate of the deployment under `key`, `None` before its
    /// first [`succeed`](crate::Pick::succeed) or if there is no such deployment.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::new(&reg, modelfleet::select::RoundRobin);
    /// let pick = s.select(&Request::new("gpt-4"))?;
    /// let key = pick.key().clone();
    /// pick.succeed(Duration::ZERO, Duration::from_millis(80));
    /// assert_eq!(s.latency(&key), Some(Duration::from_millis(80)));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn latency(&self, key: &ModelKey) -> Option<Duration> {
        self.slot(key).and_then(|s| s.state.latency())
    }

    /// A new selector over `registry` with this one's strategy, seed and
    /// health policy, that keeps the live state of every deployment still
    /// there: in-flight counts (picks held from this selector are counted
    /// and released in the new one too), latency estimates, cooldowns,
    /// ejections, usage windows, and each model's rotation position.
    ///
    /// A deployment whose key is kept but whose endpoint changed starts
    /// fresh (it is another server). Deployments new to `registry` start at
    /// `now`: with a [slow start](crate::health::SlowStart) their weight
    /// ramps up from there. Removed deployments are gone from the new
    /// selector; picks still held for them release their own count when
    /// dropped.
    ///
    /// Computes in O(n log n), off the request path; this selector keeps
    /// serving meanwhile. [`Fleet`](crate::Fleet) swaps the result in for
    /// many threads at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
    ///
    /// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
    /// let v1 = Selector::new(&reg, modelfleet::select::RoundRobin);
    /// let held = v1.select(&Request::new("gpt-4"))?;
    ///
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
    /// let v2 = v1.rebuild(&reg, Duration::from_secs(60));
    /// assert_eq!(v2.in_flight(held.key()), Some(1)); // carried over
    /// drop(held);
    /// assert_eq!(v2.in_flight(&"openai/gpt-4@http://a/v1".parse()?), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn rebuild<P: IdentityPolicy>(&self, registry: &Registry<P>, now: Duration) -> Selector {
        SelectorBuilder::rebuilding(self, registry, now).build()
    }

    /// [`rebuild`](Self::rebuild) with the deployments under `drained`
    /// taking no new picks.
    pub(crate) fn rebuild_draining<P: IdentityPolicy>(
        &self,
        registry: &Registry<P>,
        now: Duration,
        drained: &super::build::Drained,
    ) -> Selector {
        SelectorBuilder::rebuilding(self, registry, now)
            .draining(drained)
            .build()
    }

    /// Makes reports through this version, and every version rebuilt from
    /// it, leave their transitions in `outbox`. Only before the selector is
    /// shared: `false` (and nothing set) otherwise.
    pub(crate) fn set_outbox(&mut self, outbox: Arc<crate::share::Outbox>) -> bool {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => {
                shared.outbox = Some(outbox);
                true
            }
            None => false,
        }
    }

    /// Whether this selector counts picks in flight.
    #[inline]
    pub(crate) fn counts_in_flight(&self) -> bool {
        self.shared.counted
    }

    /// Handle `number` of this selector's version: its own cursors, random
    /// source and in-flight stripe, over the same deployments and state.
    /// Rotation positions are carried over (by model name) from `previous`,
    /// the same handle on an older version; reports go to `reports_to`,
    /// the fleet's current version, read at fleet `generation`.
    pub(crate) fn handle_of(
        &self,
        number: u64,
        previous: Option<&Selector>,
        (reports_to, generation): (&Arc<arc_swap::ArcSwap<Selector>>, u64),
    ) -> Selector {
        let mut local = Local::new(&self.shared, number);
        local.reports_to = Some(Arc::clone(reports_to));
        local.generation = generation;
        if let Some(old) = previous {
            local.carry(&self.shared, &old.local, &old.shared);
        }
        Selector {
            shared: Arc::clone(&self.shared),
            local,
        }
    }

    /// The deployment under `key`, if any.
    pub(crate) fn slot(&self, key: &ModelKey) -> Option<&Slot> {
        let i = *self.shared.by_key.get(key)?;
        self.shared.slots.get(i as usize)
    }

    /// The deployment at `index` (as [`choose`](Self::choose) returns it).
    #[inline]
    pub(crate) fn slot_at(&self, index: usize) -> &Slot {
        &self.shared.slots[index]
    }

    /// The in-flight stripe of this handle.
    #[inline]
    pub(crate) fn stripe(&self) -> usize {
        self.local.stripe
    }
}
