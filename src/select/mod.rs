//! Picking a deployment per request.
//!
//! A [`Selector`] is built from a [`Registry`] and a [`Strategy`]. For each
//! [`Request`] it runs one pipeline:
//!
//! 1. **candidates**: the deployments of the requested model;
//! 2. **filters**: drained (weight 0), provider, labels, tags, version,
//!    newest version, context window, excluded keys — each removed
//!    candidate has a [`Reason`];
//! 3. **tier**: the lowest [priority](crate::Deployment::priority) that still
//!    has a candidate (a tier-k deployment is picked only when every tier
//!    below k is empty after filtering);
//! 4. **strategy**: one of that tier's candidates.
//!
//! The result is a [`Pick`]: the deployment, its key and tier, and an
//! in-flight guard that counts the request as outstanding until the pick is
//! dropped or [completed](Pick::succeed). [`Selector::explain`] reports what
//! each filter did to each candidate; [`Selector::plan`] yields the order in
//! which to try deployments for retries and fallbacks.
//!
//! # Cost
//!
//! `select` takes no lock and allocates nothing: the model is found in a
//! fixed-seed hash map, tiers, cumulative weights and hash rings are
//! precomputed, and per-deployment counters are atomics on their own cache
//! lines. A request with no filter ([`Request::is_plain`]) on a tier where
//! every member is healthy and unlimited uses the precomputed tables
//! directly: O(1), on average for the searches of a weight line or a hash
//! ring (a bucket index narrows each to a few entries).
//!
//! Otherwise (request filters, or a member of the tier cooling, ejected,
//! ramping up or limited) the candidates are a bit mask over the tier,
//! built on the stack:
//!
//! - the provider, labels, tags and excluded keys come from an inverted
//!   index built with the tier: O(n / 64) word operations, whatever the
//!   number of labels;
//! - version requirements, the newest version and context windows are
//!   tested in one pass over the members the index kept (k);
//! - health and limits are tested only for the tier's suspects: the
//!   members that were cooling, ejected or ramping up when the tier's
//!   record was made, and the limited ones. The record is made in one pass
//!   over the tier's states (O(n)) by the first pick after a report that
//!   put a deployment out, then kept, without a lock, for every later pick
//!   until the next such report;
//! - then round robin and power of two rank candidates by counting bits
//!   (O(n / 64)), and the weighted strategies walk the kept members'
//!   weights from the tier's prefix sums (O(k), whole words at once, a
//!   mostly full word as its range less the members missing from it).
//!
//! Tiers of more than 4,096 members have no index: each member is tested
//! through its deployment, in a few passes (O(n)). At 1,000 members a label
//! filter costs about 115 ns with round robin and one cooling member about
//! 130 ns, plus about 3.5 µs for the pass after each report that puts a
//! deployment out (BENCHMARKS.md).
//!
//! # Threads and handles
//!
//! `Selector` is `Send + Sync`; `select(&self, …)` may be called from many
//! threads at once. Its state is in two parts:
//!
//! - **shared** by every handle: the deployments, their latency estimates
//!   and health (one cache line per deployment), and their in-flight counts,
//!   each split over four stripes on their own cache lines: a handle counts
//!   on the stripe of its number, so handles `h` and `h + 1` never write the
//!   same line, and a count is the sum of its stripes. With a strategy that
//!   [reads the load](Strategy::reads_load) every handle counts on one
//!   stripe instead, so that reading a candidate's load is one load, not
//!   four (the threads read each other's writes either way);
//! - **per handle**: the rotation cursors, the random source and the
//!   in-flight stripe. A
//!   [`clone`](Clone::clone) is a new handle over the same shared part with
//!   its own cursors and a random source derived from the seed and the
//!   handle's number.
//!
//! Give each thread its own handle (as Envoy gives each worker its own
//! load-balancer state): threads then never write the same cache line on the
//! hot path, and each handle's rotation is exact. Threads sharing one handle
//! are correct too, but contend on its cursor and interleave their turns.
//!
//! # Determinism
//!
//! Same registry, strategy, seed and sequence of calls on one handle ⇒ the
//! same picks. The selector reads no clock; latency reports carry the time.

mod consistent_hash;
mod filter;
mod flags;
mod index;
mod latency;
mod least_outstanding;
mod power_of_two;
mod rng;
mod round_robin;
mod search;
mod strategy;
mod suspects;
mod weighted_random;
mod weighted_round_robin;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use indexmap::IndexMap;

pub use consistent_hash::ConsistentHash;
pub use filter::{Reason, Removed};
pub use latency::Latency;
pub use least_outstanding::LeastOutstanding;
pub use power_of_two::{Load, PowerOfTwo};
pub use round_robin::RoundRobin;
pub use strategy::{BuiltinStrategy, Candidate, Candidates, Context, Ring, Sampler, Strategy};

pub use weighted_random::WeightedRandom;
pub use weighted_round_robin::WeightedRoundRobin;

use crate::hash::FixedState;
use crate::health::state::{self, DeploymentState, GroupView, nanos};
use crate::health::{HealthPolicy, HealthSnapshot, Report, Unhealthy};
use crate::{
    Deployment, Error, IdentityPolicy, Limits, ModelKey, Registry, Request, VersionPreference,
};
use filter::Filter;
use flags::{Disturbed, Epoch};
use index::{MASK_WORDS, Mask, TierIndex};
use rng::{Rng, mix};
use search::Sorted;
use suspects::Suspects;

/// Members per bucket of a tier's weight-line index, on average (see
/// [`Sorted`]): about two bytes a member.
const WEIGHTS_PER_BUCKET: usize = 2;

/// How long (ns) before a pick's time its tier's record of suspects is
/// made for (see [`Selector::suspects`]).
const RECORD_LEEWAY: u64 = 1_000_000_000;

/// One deployment as the selector holds it.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Shared with the registry the selector was built from.
    pub(crate) key: Arc<ModelKey>,
    /// Shared with the registry the selector was built from.
    pub(crate) deployment: Arc<Deployment>,
    /// Shared with later selector versions that keep this deployment.
    pub(crate) state: Arc<CachePadded<DeploymentState>>,
    /// Index of the model's group.
    group: u32,
    /// Index of its tier in the group; `None` when drained (weight 0).
    tier: Option<u32>,
    /// Its position among the tier's members.
    position: u32,
    /// Whether picks count toward an `rpm` limit.
    rpm_limited: bool,
    /// Whether the deployment has any limit (`max_in_flight`, `rpm`, `tpm`).
    pub(crate) limited: bool,
    /// Whether handles count in flight on their own stripes (see
    /// [`Shared::striped`]).
    pub(crate) striped: bool,
    /// The deployment's weight. This and `rpm_limited` are read on every
    /// pick; kept here so the hot path does not reach through the shared
    /// deployment pointer (one more cache miss per candidate).
    pub(crate) weight: u32,
}

/// The members of one priority tier with weight > 0, and tables built once.
#[derive(Debug)]
pub(crate) struct Tier {
    pub(crate) priority: u32,
    /// Slot indices, registry order.
    pub(crate) members: Box<[u32]>,
    /// Inclusive prefix sums of the members' weights, indexed for the
    /// search of the member whose share of the weight line holds a point.
    pub(crate) cumulative: Sorted,
    /// The members' weight when they all have the same one: then the
    /// weight of a set of candidates is their number times it.
    pub(crate) uniform: Option<u64>,
    pub(crate) total: u64,
    /// The weighted-round-robin stride for `total`.
    pub(crate) stride: u64,
    /// The last stride computed for a subset of the members, with its
    /// total: `total << 32 | stride` (0: none). A filtered or disturbed
    /// tier usually keeps one candidate total from pick to pick, and
    /// finding a stride takes a few dozen divisions.
    pub(crate) subset_stride: AtomicU64,
    pub(crate) ring: Option<Ring>,
    /// Members by provider, label and tag, for filtered requests; `None`
    /// for tiers too large to index.
    index: Option<TierIndex>,
    /// Whether any member has limits (then every pick checks them).
    limited: bool,
    /// Which members a pick must test while the tier is disturbed (indexed
    /// tiers only): a record kept across picks until a report changes it.
    suspects: Suspects,
    /// Until when (ns) some member may be cooling, ejected or ramping up:
    /// before that time picks from the tier check health. Raised by
    /// reports, never lowered. The flag of the tier's (model, priority), from
    /// [`Group::flags`].
    ///
    /// Reports reach it through whichever version they are applied: the
    /// flag is carried over by [`Selector::rebuild`] to later versions
    /// while the (model, priority) stays, and every deployment's shared
    /// state tracks the flag of its tier in the version built last
    /// ([`DeploymentState::track`]), which each report raises too.
    disturbed_until: Disturbed,
}

impl Tier {
    /// Whether every member is a healthy candidate at full weight at `now`.
    fn is_clear(&self, now: u64) -> bool {
        !self.limited && now >= self.disturbed_until.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Group {
    /// Every deployment of the model (drained ones too), registry order.
    all: Box<[u32]>,
    /// Non-empty tiers, lowest priority first.
    tiers: Box<[Tier]>,
    /// The "disturbed until" flag of every priority any deployment of the
    /// model has (drained ones too), by priority ascending; each tier holds
    /// a clone of its own (see [`Tier::disturbed_until`]).
    flags: Box<[(u32, Disturbed)]>,
}

impl Group {
    /// The flag of `priority`, if a deployment of the model has it.
    fn flag(&self, priority: u32) -> Option<&Disturbed> {
        let i = self.flags.binary_search_by_key(&priority, |f| f.0).ok()?;
        Some(&self.flags[i].1)
    }
}

/// Whether a selector counts picks in flight.
///
/// Counting costs two atomic writes per pick on the chosen deployment's
/// counter (9–15 ns from one thread; see BENCHMARKS.md). Counters are
/// striped by handle, so threads with their own handles do not write the
/// same cache line (with more than four threads, handles share stripes),
/// unless the strategy reads the load: then each pick reads counters the
/// other threads write, and one stripe serves every handle.
/// Strategies that never read the load (round robin, weighted round robin,
/// weighted random, latency, consistent hashing without bounded load) can
/// skip it.
///
/// ```
/// use modelfleet::select::{InFlight, RoundRobin};
/// use modelfleet::{Deployment, Registry, Request, Selector};
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let s = Selector::builder(&reg).strategy(RoundRobin).in_flight(InFlight::Uncounted).build();
/// let pick = s.select(&Request::new("gpt-4"))?;
/// assert_eq!(s.in_flight(pick.key()), Some(0));
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InFlight {
    /// Every pick counts until it is dropped or completed (the default).
    #[default]
    Counted,
    /// Picks are not counted, unless something needs the count: a strategy
    /// that [reads the load](Strategy::reads_load) or a deployment with a
    /// `max_in_flight` limit. In-flight counts then read 0.
    Uncounted,
}

#[derive(Clone)]
enum Chooser {
    Builtin(BuiltinStrategy),
    Custom(Arc<dyn Strategy>),
}

impl Chooser {
    fn get(&self) -> &dyn Strategy {
        match self {
            Chooser::Builtin(b) => b,
            Chooser::Custom(c) => c.as_ref(),
        }
    }
}

struct Shared {
    slots: Box<[Slot]>,
    groups: Box<[Group]>,
    models: IndexMap<Box<str>, u32, FixedState>,
    by_key: IndexMap<Arc<ModelKey>, u32, FixedState>,
    chooser: Chooser,
    seed: u64,
    latency_decay: Duration,
    health: HealthPolicy,
    handles: AtomicU64,
    /// Whether picks are counted in flight.
    counted: bool,
    /// Whether each handle counts on the stripe of its number, so threads
    /// with their own handles write different cache lines. Not when the
    /// strategy reads the load: then every handle counts on stripe 0, and
    /// a strategy reads one counter per candidate instead of four (the
    /// counters' lines move between the threads' cores either way, since
    /// each thread reads what the others write).
    striped: bool,
    in_flight: InFlight,
    /// The latest report time seen (ns): the time of a request that carries
    /// none. Written by reports only, on its own cache line.
    latest: CachePadded<AtomicU64>,
    /// Reports that put a deployment out, in this selector and every
    /// version rebuilt from it (or from which it was rebuilt): the versions
    /// that may share a deployment's state. Tiers' `suspects` records are
    /// made at one value of it.
    epoch: Epoch,
}

/// Per-handle state: rotation cursors (one per model) and the random source.
///
/// Padded to whole cache lines: two handles created side by side (or their
/// cursor arrays) would otherwise share a line that both threads write.
pub(crate) struct Local {
    rng: CachePadded<Rng>,
    cursors: Box<[CachePadded<AtomicU64>]>,
    /// The in-flight stripe this handle counts on: its number modulo
    /// [`state::STRIPES`], or 0 when the selector is not
    /// [striped](Shared::striped).
    stripe: usize,
}

impl Local {
    /// Handle number `handle` of the selector whose shared part is `shared`.
    fn new(shared: &Shared, handle: u64) -> Self {
        let (seed, models) = (shared.seed, &shared.models);
        let s = mix(seed ^ mix(handle.wrapping_add(0x5EED)));
        // Each model's rotation starts at a seeded position derived from its
        // name, so it does not depend on the order models were added in.
        let mut cursors: Box<[CachePadded<AtomicU64>]> = (0..models.len())
            .map(|_| CachePadded::new(AtomicU64::new(0)))
            .collect();
        for (model, &gi) in models {
            let h = xxhash_rust::xxh3::xxh3_64(model.as_bytes());
            cursors[gi as usize] = CachePadded::new(AtomicU64::new(mix(s ^ h) >> 1));
        }
        Self {
            rng: CachePadded::new(Rng::new(s)),
            cursors,
            // Truncation is fine: only the remainder matters.
            #[allow(clippy::cast_possible_truncation)]
            stripe: if shared.striped {
                (handle % state::STRIPES as u64) as usize
            } else {
                0
            },
        }
    }
}

impl Local {
    /// Takes over the rotation positions (by model name) of `old`, a handle
    /// of the selector `from`.
    fn carry(&self, to: &Shared, old: &Local, from: &Shared) {
        for (model, &gi) in &to.models {
            if let Some(&old_gi) = from.models.get(model) {
                let turn = old.cursors[old_gi as usize].load(Ordering::Relaxed);
                self.cursors[gi as usize].store(turn, Ordering::Relaxed);
            }
        }
    }
}

/// Picks a deployment for each request. See the [module docs](self) for the
/// pipeline, the cost and the threading model.
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
/// let selector = Selector::builder(&reg).strategy(WeightedRoundRobin).seed(42).build();
/// let pick = selector.select(&Request::new("gpt-4"))?;
/// assert_eq!(pick.priority(), 0); // the backup tier is used only when tier 0 is empty
/// assert_eq!(pick.deployment().provider(), "openai");
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Selector {
    shared: Arc<Shared>,
    local: Local,
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

/// Configures a [`Selector`].
///
/// ```
/// use std::time::Duration;
/// use modelfleet::{Deployment, Policy, Registry, Selector};
/// use modelfleet::select::ConsistentHash;
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let selector = Selector::builder(&reg)
///     .strategy(ConsistentHash::with_bounded_load(1.25)?)
///     .seed(7)
///     .latency_decay(Duration::from_secs(5))
///     .build();
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct SelectorBuilder<'r, P> {
    registry: &'r Registry<P>,
    chooser: Chooser,
    seed: u64,
    latency_decay: Duration,
    health: HealthPolicy,
    started_at: Option<Duration>,
    previous: Option<&'r Selector>,
    in_flight: InFlight,
}

impl<P> fmt::Debug for SelectorBuilder<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectorBuilder")
            .field("strategy", &self.chooser.get().name())
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl<'r, P: IdentityPolicy> SelectorBuilder<'r, P> {
    /// A built-in strategy (default: [`WeightedRoundRobin`]).
    ///
    /// ```
    /// use modelfleet::{Deployment, Registry, Selector};
    /// use modelfleet::select::LeastOutstanding;
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).strategy(LeastOutstanding).build();
    /// assert_eq!(s.strategy_name(), "least_outstanding");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn strategy(mut self, strategy: impl Into<BuiltinStrategy>) -> Self {
        self.chooser = Chooser::Builtin(strategy.into());
        self
    }

    /// Your own strategy.
    ///
    /// ```
    /// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    ///
    /// #[derive(Debug)]
    /// struct First;
    /// impl Strategy for First {
    ///     fn choose<'a>(&self, c: &Candidates<'a>, _: &Context<'_>) -> Option<Candidate<'a>> {
    ///         c.iter().next()
    ///     }
    ///     fn name(&self) -> &str {
    ///         "first"
    ///     }
    /// }
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).custom_strategy(Box::new(First)).build();
    /// assert_eq!(s.select(&Request::new("gpt-4"))?.strategy(), "first");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn custom_strategy(mut self, strategy: Box<dyn Strategy>) -> Self {
        self.chooser = Chooser::Custom(Arc::from(strategy));
        self
    }

    /// The seed of the random source (default 0). Same seed, same picks.
    ///
    /// ```
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    /// use modelfleet::select::WeightedRandom;
    /// let reg: Registry = (1..=3)
    ///     .map(|i| Deployment::builder("openai", "gpt-4").endpoint(&format!("http://n{i}/v1")).build())
    ///     .collect::<Result<_, _>>()?;
    /// let a = Selector::builder(&reg).strategy(WeightedRandom).seed(42).build();
    /// let b = Selector::builder(&reg).strategy(WeightedRandom).seed(42).build();
    /// for _ in 0..10 {
    ///     let req = Request::new("gpt-4");
    ///     assert_eq!(a.select(&req)?.key(), b.select(&req)?.key());
    /// }
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The time constant of the peak-EWMA latency estimate (default 10 s,
    /// as tower's): a faster sample counts with weight `1 - exp(-Δt/τ)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Registry, Selector};
    /// use modelfleet::select::Latency;
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg)
    ///     .strategy(Latency::default())
    ///     .latency_decay(Duration::from_secs(30))
    ///     .build();
    /// assert_eq!(s.strategy_name(), "latency");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn latency_decay(mut self, tau: Duration) -> Self {
        self.latency_decay = tau;
        self
    }

    /// What the selector does with outcome reports (default
    /// [`HealthPolicy::default`]); see [`health`](crate::health).
    ///
    /// ```
    /// use modelfleet::health::HealthPolicy;
    /// use modelfleet::{Deployment, Registry, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).health(HealthPolicy::litellm()).try_build()?;
    /// assert_eq!(s.len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn health(mut self, policy: HealthPolicy) -> Self {
        self.health = policy;
        self
    }

    /// Whether picks are counted in flight (default [`InFlight::Counted`]).
    ///
    /// ```
    /// use modelfleet::select::{InFlight, RoundRobin};
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).strategy(RoundRobin).in_flight(InFlight::Uncounted).build();
    /// let pick = s.select(&Request::new("gpt-4"))?;
    /// assert_eq!(s.in_flight(pick.key()), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn in_flight(mut self, in_flight: InFlight) -> Self {
        self.in_flight = in_flight;
        self
    }

    /// Treats every deployment new to this selector as starting at `now`:
    /// with a [slow start](crate::health::SlowStart), its weight ramps up
    /// from there. Without a [previous](Selector::rebuild) selector every
    /// deployment is new.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::{HealthPolicy, SlowStart, State};
    /// use modelfleet::{Deployment, Registry, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let mut policy = HealthPolicy::default();
    /// policy.slow_start = Some(SlowStart { window: Duration::from_secs(60), aggression: 1.0, min_percent: 10.0 });
    /// let s = Selector::builder(&reg).health(policy).started_at(Duration::from_secs(100)).build();
    /// assert_eq!(s.health(Duration::from_secs(130))[0].state, State::SlowStart);
    /// assert_eq!(s.health(Duration::from_secs(160))[0].state, State::Healthy);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn started_at(mut self, now: Duration) -> Self {
        self.started_at = Some(now);
        self
    }

    /// Builds the selector over a snapshot of the registry.
    ///
    /// Computes in O(n log n) (O(points log points) with a hash ring).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHealth`] if the [health policy](Self::health) does not
    /// [validate](HealthPolicy::validate).
    ///
    /// ```
    /// use modelfleet::health::{HealthPolicy, Unhealthy};
    /// use modelfleet::{Deployment, Error, Registry, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let mut policy = HealthPolicy::default();
    /// policy.unhealthy = Unhealthy::Panic { threshold_percent: 0 };
    /// let err = Selector::builder(&reg).health(policy).try_build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidHealth { .. }));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn try_build(self) -> Result<Selector, Error> {
        self.health.validate()?;
        Ok(self.build())
    }

    /// Builds the selector over a snapshot of the registry.
    ///
    /// Computes in O(n log n) (O(points log points) with a hash ring). A
    /// health policy that does not [validate](HealthPolicy::validate) is
    /// used as given (out-of-range values are clamped where they are used);
    /// use [`try_build`](Self::try_build) to reject it instead.
    ///
    /// ```
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).build();
    /// assert_eq!(s.strategy_name(), "weighted_round_robin");
    /// assert_eq!(s.select(&Request::new("gpt-4"))?.deployment().model(), "gpt-4");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn build(self) -> Selector {
        let reg = self.registry;
        let uses_ring = self.chooser.get().uses_ring();
        let striped = !self.chooser.get().reads_load();
        // One pass in registry order: slots share the registry's keys and
        // deployments, and models are grouped in order of first appearance.
        let mut models: IndexMap<Box<str>, u32, FixedState> = IndexMap::default();
        let mut members_of: Vec<Vec<u32>> = Vec::new();
        let mut slots: Vec<Slot> = Vec::with_capacity(reg.len());
        for (i, (k, d)) in reg.shared_entries().enumerate() {
            let gi = match models.get(d.model()) {
                Some(&gi) => gi,
                None => {
                    let gi = members_of.len() as u32;
                    models.insert(d.model().into(), gi);
                    members_of.push(Vec::new());
                    gi
                }
            };
            members_of[gi as usize].push(i as u32);
            let kept = self.previous.and_then(|p| p.kept_state(i, k, d));
            let is_new = kept.is_none();
            let state = kept.unwrap_or_default();
            if let (true, Some(at)) = (is_new, self.started_at) {
                state.started_at(nanos(at));
            }
            slots.push(Slot {
                key: Arc::clone(k),
                deployment: Arc::clone(d),
                state,
                group: gi,
                tier: None,
                position: 0,
                rpm_limited: d.limits().rpm.is_some(),
                limited: *d.limits() != Limits::default(),
                striped,
                weight: d.weight(),
            });
        }
        let by_key: IndexMap<Arc<ModelKey>, u32, FixedState> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (Arc::clone(&s.key), i as u32))
            .collect();
        let mut groups = Vec::with_capacity(members_of.len());
        for (gi, all) in members_of.into_iter().enumerate() {
            let all: Box<[u32]> = all.into_boxed_slice();
            let mut priorities: Vec<u32> = all
                .iter()
                .map(|&i| slots[i as usize].deployment.priority())
                .collect();
            priorities.sort_unstable();
            priorities.dedup();
            // Each priority's flag is carried over from the previous
            // version, so reports still applied through it reach this one.
            let old_group = self.previous.and_then(|p| {
                let (model, _) = models.get_index(gi)?;
                let &old = p.shared.models.get(model)?;
                Some(&p.shared.groups[old as usize])
            });
            let flags: Box<[(u32, Disturbed)]> = priorities
                .iter()
                .map(|&priority| {
                    let flag = old_group
                        .and_then(|g| g.flag(priority))
                        .map_or_else(Disturbed::default, Arc::clone);
                    (priority, flag)
                })
                .collect();
            let tiers = flags
                .iter()
                .filter_map(|(priority, flag)| {
                    let priority = *priority;
                    let members: Box<[u32]> = all
                        .iter()
                        .copied()
                        .filter(|&i| {
                            let d = &slots[i as usize].deployment;
                            d.priority() == priority && d.weight() > 0
                        })
                        .collect();
                    if members.is_empty() {
                        return None;
                    }
                    let cumulative: Box<[u64]> = members
                        .iter()
                        .scan(0u64, |acc, &i| {
                            *acc += u64::from(slots[i as usize].deployment.weight());
                            Some(*acc)
                        })
                        .collect();
                    let total = *cumulative.last().unwrap_or(&0);
                    let cumulative = Sorted::new(cumulative, WEIGHTS_PER_BUCKET);
                    let first = slots[members[0] as usize].weight;
                    let uniform = members
                        .iter()
                        .all(|&i| slots[i as usize].weight == first)
                        .then_some(u64::from(first));
                    let ring = uses_ring.then(|| Ring::build(&slots, &members));
                    let index = TierIndex::build(&slots, &members);
                    let suspects = Suspects::new(if index.is_some() { members.len() } else { 0 });
                    let limited = members
                        .iter()
                        .any(|&i| *slots[i as usize].deployment.limits() != Limits::default());
                    Some(Tier {
                        priority,
                        stride: weighted_round_robin::stride(total),
                        subset_stride: AtomicU64::new(0),
                        members,
                        cumulative,
                        uniform,
                        total,
                        ring,
                        index,
                        limited,
                        suspects,
                        disturbed_until: Arc::clone(flag),
                    })
                })
                .collect::<Box<[Tier]>>();
            // Every deployment's shared state tracks its tier's flag in this
            // version before the state is read below; `Selector::apply` is
            // the other side of the fence.
            for &i in all.iter() {
                let state = &slots[i as usize].state;
                let priority = slots[i as usize].deployment.priority();
                if let Ok(f) = flags.binary_search_by_key(&priority, |f| f.0) {
                    state.track(&flags[f].1);
                }
            }
            fence(Ordering::SeqCst);
            let ramp = self.health.slow_start.map_or(0, |s| nanos(s.window));
            for (ti, tier) in tiers.iter().enumerate() {
                for (position, &i) in tier.members.iter().enumerate() {
                    let slot = &mut slots[i as usize];
                    slot.tier = Some(ti as u32);
                    slot.position = position as u32;
                    // Carried-over cooldowns, ejections and slow starts keep
                    // the tier on the checked path until they are over.
                    tier.disturbed_until
                        .fetch_max(slot.state.busy_until(ramp), Ordering::Relaxed);
                }
            }
            groups.push(Group { all, tiers, flags });
        }
        let slots: Box<[Slot]> = slots.into_boxed_slice();
        let previous = self.previous;
        let counted = self.in_flight == InFlight::Counted
            || self.chooser.get().reads_load()
            || slots
                .iter()
                .any(|s| s.deployment.limits().max_in_flight.is_some());
        let shared = Shared {
            slots,
            groups: groups.into_boxed_slice(),
            models,
            by_key,
            chooser: self.chooser,
            seed: self.seed,
            latency_decay: self.latency_decay,
            health: self.health,
            handles: AtomicU64::new(1),
            counted,
            striped,
            in_flight: self.in_flight,
            latest: CachePadded::new(AtomicU64::new(
                previous.map_or(0, |p| p.shared.latest.load(Ordering::Relaxed)),
            )),
            epoch: previous.map_or_else(Epoch::default, |p| Arc::clone(&p.shared.epoch)),
        };
        let local = Local::new(&shared, 0);
        if let Some(p) = previous {
            local.carry(&shared, &p.local, &p.shared);
            shared
                .handles
                .store(p.shared.handles.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        Selector {
            local,
            shared: Arc::new(shared),
        }
    }
}

impl Selector {
    /// Starts configuring a selector over `registry`.
    ///
    /// See [`SelectorBuilder`] for an example.
    pub fn builder<P: IdentityPolicy>(registry: &Registry<P>) -> SelectorBuilder<'_, P> {
        SelectorBuilder {
            registry,
            chooser: Chooser::Builtin(WeightedRoundRobin.into()),
            seed: 0,
            latency_decay: Duration::from_secs(10),
            health: HealthPolicy::default(),
            started_at: None,
            previous: None,
            in_flight: InFlight::Counted,
        }
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
    ///     let s = Selector::with_seed(&reg, WeightedRandom, seed);
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
    /// first [`succeed`](Pick::succeed) or if there is no such deployment.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::new(&reg, modelfleet::select::RoundRobin);
    /// let pick = s.select(&Request::new("gpt-4"))?;
    /// let key = pick.key().clone();
    /// pick.succeed(Duration::from_millis(80), Duration::ZERO);
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
        SelectorBuilder {
            registry,
            chooser: self.shared.chooser.clone(),
            seed: self.shared.seed,
            latency_decay: self.shared.latency_decay,
            health: self.shared.health.clone(),
            started_at: Some(now),
            previous: Some(self),
            in_flight: self.shared.in_flight,
        }
        .build()
    }

    /// Whether this selector counts picks in flight.
    pub(crate) fn counts_in_flight(&self) -> bool {
        self.shared.counted
    }

    /// The shared handle's per-handle state.
    pub(crate) fn local(&self) -> &Local {
        &self.local
    }

    /// Handle `number` of this selector's version: its own cursors, random
    /// source and in-flight stripe, over the same deployments and state.
    /// Rotation positions are carried over (by model name) from `previous`,
    /// the same handle on an older version.
    pub(crate) fn handle_of(&self, number: u64, previous: Option<&Selector>) -> Selector {
        let local = Local::new(&self.shared, number);
        if let Some(old) = previous {
            local.carry(&self.shared, &old.local, &old.shared);
        }
        Selector {
            shared: Arc::clone(&self.shared),
            local,
        }
    }

    /// Whether `other` is a handle of the same version as this one.
    pub(crate) fn same_version(&self, other: &Selector) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The state a rebuilt selector keeps for `deployment` under `key`.
    /// `position` is the deployment's place in the new registry: when this
    /// selector holds the very same key there (registry versions derived
    /// from one another share keys), no lookup is needed.
    fn kept_state(
        &self,
        position: usize,
        key: &Arc<ModelKey>,
        deployment: &Deployment,
    ) -> Option<Arc<CachePadded<DeploymentState>>> {
        let slot = match self.shared.slots.get(position) {
            Some(s) if Arc::ptr_eq(&s.key, key) => s,
            _ => self.slot(key)?,
        };
        (slot.deployment.endpoint() == deployment.endpoint()).then(|| Arc::clone(&slot.state))
    }

    fn slot(&self, key: &ModelKey) -> Option<&Slot> {
        let i = *self.shared.by_key.get(key)?;
        self.shared.slots.get(i as usize)
    }

    /// Picks a deployment for `request`.
    ///
    /// No lock, no allocation on success. Cost: O(1) to find the model, then
    /// the strategy's cost (see [`BuiltinStrategy`]) when the request has no
    /// filters and the lowest tier is healthy and unlimited; otherwise each
    /// tier inspected is narrowed to a mask first (see the
    /// [module docs](self#cost)).
    ///
    /// Health is judged at the request's [time](Request::at), or at the
    /// latest report time the selector has seen when the request has none.
    ///
    /// # Errors
    ///
    /// - [`Error::UnknownModel`] if no deployment serves the model;
    /// - [`Error::Unavailable`] if deployments pass the request's filters but
    ///   all are cooling, ejected or at a limit (with the earliest time one
    ///   returns), and the [health policy](crate::health::Unhealthy) says fail;
    /// - [`Error::NoEligible`] if the request's filters removed every
    ///   deployment (with the count each filter removed), or the strategy
    ///   refused every candidate.
    ///
    /// ```
    /// use modelfleet::{Deployment, Error, Registry, Request, Selector};
    /// use modelfleet::select::{Reason, RoundRobin};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").label("region", "us").build()?]
    ///     .into_iter()
    ///     .collect();
    /// let s = Selector::new(&reg, RoundRobin);
    /// match s.select(&Request::new("gpt-4").label("region", "eu")) {
    ///     Err(Error::NoEligible { removed, .. }) => assert_eq!(removed.count(Reason::Labels), 1),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(matches!(s.select(&Request::new("gpt-5")), Err(Error::UnknownModel { .. })));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn select(&self, request: &Request) -> Result<Pick<'_>, Error> {
        let (index, priority) = self.choose(&self.local, request)?;
        Ok(Pick {
            selector: self,
            slot: &self.shared.slots[index],
            priority,
        })
    }

    /// The pipeline behind [`select`](Self::select), with the rotation
    /// cursors, random source and in-flight stripe of `local` (a handle).
    /// Counts the chosen deployment in flight; returns its index in
    /// [`slots`](Self::slot_at) and its priority.
    pub(crate) fn choose(&self, local: &Local, request: &Request) -> Result<(usize, u32), Error> {
        let (gi, group) = self.group(request)?;
        let now = self.now(request);
        let ctx = Context {
            rng: &local.rng,
            cursor: &local.cursors[gi],
            affinity: request.affinity_key(),
        };
        let strategy = self.shared.chooser.get();
        let slots = &self.shared.slots[..];
        if request.is_plain()
            && let Some(tier) = group.tiers.first().filter(|t| t.is_clear(now))
        {
            let candidates = Candidates::complete(slots, tier);
            return match strategy.choose(&candidates, &ctx) {
                Some(c) => Ok(self.pick(tier, c.position(), now, local.stripe)),
                None => Err(self.refused(group, request, now)),
            };
        }
        let mut filter = self.filter(group, request, now);
        if self.should_panic(group, &filter) {
            filter.check_health = false;
        }
        let slow = self.shared.health.slow_start.as_ref();
        // Whether the request filters on fields the tier index answers, and
        // on fields it does not (tested per member).
        let indexable = request.required_provider().is_some()
            || !request.required_labels().is_empty()
            || !request.requested_tags().is_empty()
            || !request.excluded().is_empty();
        let unindexed = request.version_req().is_some()
            || filter.newest.is_some()
            || request.token_estimate().is_some();
        let mut buffer: Mask;
        for (ti, tier) in group.tiers.iter().enumerate() {
            let clear = tier.is_clear(now);
            let ramp_policy = slow.filter(|_| !clear);
            let mut ramping = false;
            let mut candidates = match &tier.index {
                // Indexed tier: the candidates become a mask, narrowed by the
                // index, then by one pass over the members it kept for what
                // the index cannot answer (state, versions, context window).
                Some(ix) => {
                    let words;
                    (buffer, words) = index::full(tier.members.len());
                    let mask = &mut buffer[..words];
                    if indexable {
                        ix.narrow(request, mask);
                        self.exclude(gi, ti, request, mask);
                    }
                    if !clear || unindexed {
                        // Tested one by one: in a disturbed tier, the
                        // members whose state may exclude them (suspects);
                        // with a request filter the index cannot answer,
                        // every member the mask kept.
                        let mut suspects = [0u64; MASK_WORDS];
                        let suspects = &mut suspects[..words];
                        if !clear {
                            self.suspects(tier, now, suspects);
                        }
                        let test =
                            |w: usize, word: u64| if unindexed { word } else { word & suspects[w] };
                        index::retain_in(mask, test, |p| {
                            let suspect = index::has(suspects, p);
                            let slot = &slots[tier.members[p] as usize];
                            let kept = filter.passes_member(slot, true, suspect).is_ok();
                            if kept
                                && suspect
                                && !ramping
                                && let Some(s) = ramp_policy
                            {
                                ramping = slot.state.slow_factor(now, s) < 1.0;
                            }
                            kept
                        });
                    }
                    Candidates {
                        slots,
                        tier,
                        filter: Some(&filter),
                        mask: Some(&*mask),
                        residual: false,
                        indexed: true,
                        check_state: !clear,
                        slow: None,
                    }
                }
                // A tier too large to index: every member is tested.
                None => Candidates {
                    slots,
                    tier,
                    filter: Some(&filter),
                    mask: None,
                    residual: true,
                    indexed: !indexable,
                    check_state: !clear,
                    slow: None,
                },
            };
            // Weights are scaled for slow start only while a candidate is
            // ramping up: otherwise they are the plain weights, and weighted
            // round robin keeps its exact windows of Σw picks.
            if let Some(s) = ramp_policy
                && (ramping
                    || candidates.mask.is_none() && candidates.iter().any(|c| c.ramping(now, s)))
            {
                candidates.slow = Some(s);
            }
            if candidates.is_empty() {
                continue;
            }
            return match strategy.choose(&candidates, &ctx) {
                Some(c) => Ok(self.pick(tier, c.position(), now, local.stripe)),
                None => Err(self.refused(group, request, now)),
            };
        }
        Err(self.nothing_left(group, &filter))
    }

    /// Fills `out` with the members of `tier` (disturbed: some member may be
    /// out, ramping up or limited) that a pick at `now` must test: those
    /// busy at the time of the tier's record, or limited. The record is
    /// computed here, in one pass over the tier's states, when a report
    /// that put a deployment out (through any version that may share its
    /// state) has advanced the epoch since it was last computed, or when it
    /// was computed for a later time. The epoch is read before the states:
    /// a report seen in it is seen in them.
    fn suspects(&self, tier: &Tier, now: u64, out: &mut [u64]) {
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        if tier.suspects.read(epoch, now, out) {
            return;
        }
        let ramp = self.shared.health.slow_start.map_or(0, |s| nanos(s.window));
        // Made for a moment a little before `now`, so that picks on other
        // threads whose requests carry slightly earlier times can use it
        // too (at the cost of testing members that came back within it).
        let at = now.saturating_sub(RECORD_LEEWAY);
        out.fill(0);
        for (p, &i) in tier.members.iter().enumerate() {
            let slot = &self.shared.slots[i as usize];
            if slot.limited || slot.state.busy_until(ramp) > at {
                out[p / 64] |= 1 << (p % 64);
            }
        }
        tier.suspects.offer(epoch, at, out);
    }

    /// Clears from `mask` (over tier `ti` of group `gi`) the members the
    /// request excludes.
    fn exclude(&self, gi: usize, ti: usize, request: &Request, mask: &mut [u64]) {
        for key in request.excluded() {
            if let Some(&i) = self.shared.by_key.get(key) {
                let slot = &self.shared.slots[i as usize];
                if slot.group as usize == gi && slot.tier == Some(ti as u32) {
                    let p = slot.position as usize;
                    mask[p / 64] &= !(1 << (p % 64));
                }
            }
        }
    }

    fn now(&self, request: &Request) -> u64 {
        request
            .time()
            .map_or_else(|| self.shared.latest.load(Ordering::Relaxed), nanos)
    }

    fn group(&self, request: &Request) -> Result<(usize, &Group), Error> {
        match self.shared.models.get(request.model()) {
            Some(&gi) => Ok((gi as usize, &self.shared.groups[gi as usize])),
            None => Err(Error::UnknownModel {
                model: request.model().chars().take(256).collect(),
            }),
        }
    }

    fn filter<'a>(&'a self, group: &Group, request: &'a Request, now: u64) -> Filter<'a> {
        let mut filter = Filter {
            request,
            newest: None,
            now,
            check_health: true,
            plain: request.is_plain(),
        };
        if request.version_preference_mode() == VersionPreference::Newest {
            filter.newest = group
                .all
                .iter()
                .map(|&i| &self.shared.slots[i as usize])
                .filter(|s| {
                    filter.passes_before_newest(s).is_ok() && filter.passes_after_newest(s).is_ok()
                })
                .filter_map(|s| s.deployment.version())
                .max();
        }
        filter
    }

    /// Envoy's panic mode: below the threshold share of healthy eligible
    /// deployments (all tiers), health is ignored. O(n).
    fn should_panic(&self, group: &Group, filter: &Filter<'_>) -> bool {
        let Unhealthy::Panic { threshold_percent } = self.shared.health.unhealthy else {
            return false;
        };
        let (mut eligible, mut healthy) = (0u64, 0u64);
        for &i in &group.all {
            let slot = &self.shared.slots[i as usize];
            if filter.passes_request(slot).is_ok() {
                eligible += 1;
                if slot.state.out_at(filter.now).is_none() {
                    healthy += 1;
                }
            }
        }
        eligible > 0 && healthy * 100 < u64::from(threshold_percent) * eligible
    }

    fn pick(&self, tier: &Tier, position: usize, now: u64, stripe: usize) -> (usize, u32) {
        let index = tier.members[position] as usize;
        let slot = &self.shared.slots[index];
        if self.shared.counted {
            slot.state.acquire(stripe);
        }
        if slot.rpm_limited {
            slot.state.count_pick(now);
        }
        (index, tier.priority)
    }

    /// The deployment at `index` (as [`choose`](Self::choose) returns it).
    pub(crate) fn slot_at(&self, index: usize) -> &Slot {
        &self.shared.slots[index]
    }

    /// The in-flight stripe of this handle.
    pub(crate) fn stripe(&self) -> usize {
        self.local.stripe
    }

    fn removed(&self, group: &Group, filter: &Filter<'_>) -> (Removed, Option<u64>) {
        let mut removed = Removed::default();
        let mut retry_at: Option<u64> = None;
        for &i in &group.all {
            let slot = &self.shared.slots[i as usize];
            if let Err(r) = filter.passes(slot) {
                removed.add(r);
                if matches!(r, Reason::Cooling | Reason::Ejected)
                    && let Some((_, until)) = slot.state.out_at(filter.now)
                {
                    retry_at = Some(retry_at.map_or(until, |t| t.min(until)));
                }
            }
        }
        (removed, retry_at)
    }

    fn nothing_left(&self, group: &Group, filter: &Filter<'_>) -> Error {
        let (removed, retry_at) = self.removed(group, filter);
        let model = filter.request.model().to_owned();
        if removed.iter().any(|(r, _)| r.is_transient()) {
            Error::Unavailable {
                model,
                retry_at: retry_at.map(Duration::from_nanos),
                removed,
            }
        } else {
            Error::NoEligible { model, removed }
        }
    }

    fn refused(&self, group: &Group, request: &Request, now: u64) -> Error {
        let filter = self.filter(group, request, now);
        Error::NoEligible {
            model: request.model().to_owned(),
            removed: self.removed(group, &filter).0,
        }
    }

    /// Applies an outcome report to the deployment under `key`; returns
    /// `false` (and changes nothing) if the selector has no such deployment,
    /// e.g. one removed since the pick. Use it when the [`Pick`] is gone;
    /// otherwise [`Pick::complete`] also releases the in-flight slot.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::{FailureKind, HealthPolicy, Report};
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).health(HealthPolicy::dify()).build();
    /// let key = s.select(&Request::new("gpt-4"))?.key().clone();
    /// let limited = Report::failure(Duration::from_secs(1), FailureKind::RateLimited { retry_after: None });
    /// assert!(s.report(&key, limited));
    /// assert!(!s.report(&"openai/gone@".parse()?, limited));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn report(&self, key: &ModelKey, report: Report) -> bool {
        match self.shared.by_key.get(key) {
            Some(&i) => {
                self.apply(&self.shared.slots[i as usize], &report);
                true
            }
            None => false,
        }
    }

    /// The slot under `key` in this version, if it shares `state`.
    pub(crate) fn same_slot(
        &self,
        key: &ModelKey,
        state: &Arc<CachePadded<DeploymentState>>,
    ) -> Option<&Slot> {
        self.slot(key).filter(|s| Arc::ptr_eq(&s.state, state))
    }

    pub(crate) fn apply(&self, slot: &Slot, report: &Report) {
        // Load first: most reports do not move the clock forward enough to
        // matter, and a load does not take the cache line from other cores.
        let t = nanos(report.time());
        if t > self.shared.latest.load(Ordering::Relaxed) {
            self.shared.latest.fetch_max(t, Ordering::Relaxed);
        }
        let shared = &*self.shared;
        let group = &shared.groups[slot.group as usize];
        let ejected_at = |now: u64| {
            group
                .all
                .iter()
                .filter(|&&i| shared.slots[i as usize].state.is_ejected_at(now))
                .count()
        };
        let view = GroupView {
            len: group.all.len(),
            ejected_at: &ejected_at,
        };
        let changed = slot
            .state
            .report(report, &shared.health, shared.latency_decay, &view);
        // Raised for a drained deployment too: in a newer version sharing
        // its priority's flag it may be a candidate again.
        if let Some(changed) = changed {
            let ramp = shared.health.slow_start.map_or(0, |s| nanos(s.window));
            let until = changed.out_until.saturating_add(ramp);
            if let Some(flag) = group.flag(slot.deployment.priority()) {
                flag.fetch_max(until, Ordering::Relaxed);
            }
            // The state was written above; the build of a newer version
            // makes its flag the tracked one, then reads the state. With a
            // fence on both sides, either the build sees this report's
            // state or this report sees the newer flag (or both).
            fence(Ordering::SeqCst);
            slot.state.raise_tracked(until);
            // After the state is written: a pick that sees this advance
            // sees the state, and makes its tier's record anew.
            shared.epoch.fetch_add(1, Ordering::Release);
        }
    }

    /// The health of every deployment at `now`, in registry order: a
    /// read-only view for dashboards and logs. Allocates.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::{FailureKind, HealthPolicy, Report, State};
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).health(HealthPolicy::dify()).build();
    /// let pick = s.select(&Request::new("gpt-4"))?;
    /// pick.complete(Report::failure(Duration::from_secs(1), FailureKind::ConnectionError));
    /// let health = s.health(Duration::from_secs(5));
    /// assert_eq!(health[0].state, State::Cooling);
    /// assert_eq!(health[0].available_at, Some(Duration::from_secs(11)));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn health(&self, now: Duration) -> Vec<HealthSnapshot> {
        let t = nanos(now);
        let h = &self.shared.health;
        self.shared
            .slots
            .iter()
            .map(|slot| {
                let st = &slot.state;
                HealthSnapshot {
                    key: (*slot.key).clone(),
                    state: st.state_at(t, h.slow_start.as_ref()),
                    available_at: st.out_at(t).map(|(_, u)| Duration::from_nanos(u)),
                    ejections: st.ejections_at(t, h.ejection.map(|e| e.interval)),
                    consecutive_failures: st.consecutive_failures(),
                    in_flight: st.in_flight(),
                    latency: st.latency(),
                    requests_per_minute: st.picks_per_minute(t),
                    tokens_per_minute: st.tokens_per_minute(t),
                }
            })
            .collect()
    }

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
    selector: &'s Selector,
    slot: &'s Slot,
    priority: u32,
}

impl fmt::Debug for Pick<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("key", &self.slot.key)
            .field("priority", &self.priority)
            .field("strategy", &self.strategy())
            .finish()
    }
}

impl<'s> Pick<'s> {
    /// The chosen deployment's key.
    ///
    /// See [`Pick`] for an example.
    pub fn key(&self) -> &'s ModelKey {
        &self.slot.key
    }

    /// The chosen deployment.
    ///
    /// See [`Pick`] for an example.
    pub fn deployment(&self) -> &'s Deployment {
        &self.slot.deployment
    }

    /// The priority tier it came from.
    ///
    /// See [`Pick`] for an example.
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// The name of the strategy that chose it.
    ///
    /// See [`Pick`] for an example.
    pub fn strategy(&self) -> &'s str {
        self.selector.shared.chooser.get().name()
    }

    /// Completes the pick as a success that took `latency`, observed at
    /// `now` (time since any fixed origin of your choosing; it must not go
    /// backwards). Feeds the deployment's latency estimate and releases the
    /// in-flight slot.
    ///
    /// See [`Selector::latency`] for an example.
    pub fn succeed(self, latency: Duration, now: Duration) {
        self.complete(Report::success(now, latency));
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
        self.selector.apply(self.slot, &report);
    }
}

impl Drop for Pick<'_> {
    fn drop(&mut self) {
        if self.selector.shared.counted {
            self.slot.state.release(self.selector.local.stripe);
        }
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
