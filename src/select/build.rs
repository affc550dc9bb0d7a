//! [`SelectorBuilder`]: a selector's settings, and the build of its tables
//! from a registry snapshot.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use indexmap::IndexMap;

use super::Selector;
use super::flags::{Disturbed, Epoch};
use super::index::TierIndex;
use super::ring::Ring;
use super::schedule;
use super::search::Sorted;
use super::strategy::{
    BuiltinStrategy, Strategy, WeightSource, WeightedRoundRobin, derive_weights,
};
use super::stride;
use super::suspects::Suspects;
use super::tables::{Chooser, Group, Local, Shared, Slot, Tier};
use crate::hash::FixedState;
use crate::health::state::{DeploymentState, nanos};
use crate::health::{HealthPolicy, ValidHealthPolicy};
use crate::{Deployment, IdentityPolicy, Limits, ModelKey, Registry};

/// Members per bucket of a tier's weight-line index, on average (see
/// [`Sorted`]): about two bytes a member.
const WEIGHTS_PER_BUCKET: usize = 2;

/// Model names to their group's index, in order of first appearance.
type Models = IndexMap<Box<str>, u32, FixedState>;

/// Whether a selector counts picks in flight.
///
/// Counting costs two atomic writes per pick on the chosen deployment's
/// counter. Counters are striped by handle, so threads with their own
/// handles do not write the same cache line (with more than four threads,
/// handles share stripes), unless the strategy reads the load: then each
/// pick reads counters the other threads write, and one stripe serves every
/// handle. Strategies that never read the load (round robin, weighted round
/// robin, weighted random, latency, consistent hashing without bounded
/// load) can skip it.
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
    /// Deployments that take no new picks, as if their weight were 0
    /// ([`Fleet::drain`](crate::Fleet::drain)).
    drained: Option<&'r Drained>,
}

/// The keys of drained deployments.
pub(crate) type Drained = indexmap::IndexSet<ModelKey, FixedState>;

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
    /// let a = Selector::builder(&reg).strategy(WeightedRandom::new()).seed(42).build();
    /// let b = Selector::builder(&reg).strategy(WeightedRandom::new()).seed(42).build();
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
    /// [`HealthPolicy::default`]); see [`health`](crate::health). The
    /// policy is [validated](HealthPolicy::validated) before it gets here,
    /// so a built selector never runs with an out-of-range setting.
    ///
    /// ```
    /// use modelfleet::health::HealthPolicy;
    /// use modelfleet::{Deployment, Registry, Selector};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).health(HealthPolicy::litellm().validated()?).build();
    /// assert_eq!(s.len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn health(mut self, policy: ValidHealthPolicy) -> Self {
        self.health = policy.into_inner();
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
    /// policy.slow_start = Some(SlowStart::new(Duration::from_secs(60)));
    /// let s = Selector::builder(&reg).health(policy.validated()?).started_at(Duration::from_secs(100)).build();
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
    /// Cannot fail: the one setting that could be out of range, the
    /// [health policy](Self::health), was validated when it was made.
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
        let strategy = self.chooser.get();
        let striped = !strategy.reads_load();
        let uses = Uses {
            ring: strategy.uses_ring(),
            schedule: strategy.uses_schedule(),
            weights: strategy.weight_source(),
        };
        let (models, members_of, mut slots) = self.slots(striped);
        let by_key = by_key(&slots);
        let mut groups = Vec::with_capacity(members_of.len());
        for (gi, all) in members_of.into_iter().enumerate() {
            groups.push(self.group(gi, all.into_boxed_slice(), &models, &mut slots, uses));
        }
        let previous = self.previous;
        let shared = self.shared(slots.into_boxed_slice(), groups, models, by_key, striped);
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

impl<'r, P: IdentityPolicy> SelectorBuilder<'r, P> {
    /// The default settings over `registry`.
    pub(crate) fn new(registry: &'r Registry<P>) -> Self {
        SelectorBuilder {
            registry,
            chooser: Chooser::Builtin(WeightedRoundRobin::new().into()),
            seed: 0,
            latency_decay: Duration::from_secs(10),
            health: HealthPolicy::default(),
            started_at: None,
            previous: None,
            in_flight: InFlight::Counted,
            drained: None,
        }
    }

    /// The settings of `previous` over `registry`, keeping its live state;
    /// deployments new to `registry` start at `now`.
    pub(crate) fn rebuilding(
        previous: &'r Selector,
        registry: &'r Registry<P>,
        now: Duration,
    ) -> Self {
        SelectorBuilder {
            registry,
            chooser: previous.shared.chooser.clone(),
            seed: previous.shared.seed,
            latency_decay: previous.shared.latency_decay,
            health: previous.shared.health.clone(),
            started_at: Some(now),
            previous: Some(previous),
            in_flight: previous.shared.in_flight,
            drained: None,
        }
    }

    /// Takes `drained` as drained (see [`Drained`]).
    pub(crate) fn draining(mut self, drained: &'r Drained) -> Self {
        self.drained = Some(drained);
        self
    }

    /// One pass in registry order: slots share the registry's keys and
    /// deployments (and, from the previous version, the live state of
    /// those that stay), and models are grouped in order of first
    /// appearance. Returns the models, each group's members and the slots.
    fn slots(&self, striped: bool) -> (Models, Vec<Vec<u32>>, Vec<Slot>) {
        let reg = self.registry;
        let mut models: Models = IndexMap::default();
        let mut members_of: Vec<Vec<u32>> = Vec::new();
        let mut slots: Vec<Slot> = Vec::with_capacity(reg.len());
        let normalize = reg.policy().model_normalizer();
        for (i, (k, d)) in reg.shared_entries().enumerate() {
            // Requests find a model through the policy's normalization, so
            // deployments group by the normal name too.
            let model = normalize.map_or(Cow::Borrowed(d.model()), |n| n(d.model()));
            let gi = match models.get(&*model) {
                Some(&gi) => gi,
                None => {
                    let gi = members_of.len() as u32;
                    models.insert(model.into(), gi);
                    members_of.push(Vec::new());
                    gi
                }
            };
            members_of[gi as usize].push(i as u32);
            let kept = self.previous.and_then(|p| kept_state(p, i, k, d));
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
                weight: if self.drained.is_some_and(|set| set.contains(&**k)) {
                    0
                } else {
                    d.weight()
                },
                cooldown: d.cooldown().map(nanos),
            });
        }
        (models, members_of, slots)
    }

    /// The group of model `gi` (`all`: its deployments): its priorities'
    /// flags, its tiers, and each member's tier and position in `slots`.
    fn group(
        &self,
        gi: usize,
        all: Box<[u32]>,
        models: &Models,
        slots: &mut [Slot],
        uses: Uses,
    ) -> Group {
        let flags = self.flags(gi, &all, models, slots);
        let tiers = flags
            .iter()
            .filter_map(|(priority, flag)| {
                weigh(slots, &all, *priority, uses.weights);
                tier(slots, &all, *priority, flag, uses)
            })
            .collect::<Box<[Tier]>>();
        // Every deployment's shared state tracks its tier's flag in this
        // version before the state is read below; `Selector::apply` is
        // the other side of the fence.
        track(slots, &all, &flags);
        fence(Ordering::SeqCst);
        self.place(slots, &tiers);
        Group { all, tiers, flags }
    }

    /// The "disturbed until" flag of every priority among `all` (the
    /// deployments of model `gi`), by priority ascending. Each priority's
    /// flag is carried over from the previous version, so reports still
    /// applied through it reach this one.
    fn flags(
        &self,
        gi: usize,
        all: &[u32],
        models: &Models,
        slots: &[Slot],
    ) -> Box<[(u32, Disturbed)]> {
        let mut priorities: Vec<u32> = all
            .iter()
            .map(|&i| slots[i as usize].deployment.priority())
            .collect();
        priorities.sort_unstable();
        priorities.dedup();
        let old_group = self.previous.and_then(|p| {
            let (model, _) = models.get_index(gi)?;
            let &old = p.shared.models.get(model)?;
            Some(&p.shared.groups[old as usize])
        });
        priorities
            .iter()
            .map(|&priority| {
                let flag = old_group
                    .and_then(|g| g.flag(priority))
                    .map_or_else(Disturbed::default, Arc::clone);
                (priority, flag)
            })
            .collect()
    }

    /// Records each tier member's tier and position in its slot, and keeps
    /// the tier on the checked path while a member is busy.
    fn place(&self, slots: &mut [Slot], tiers: &[Tier]) {
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
    }

    /// The part every handle of the new version shares, with the settings,
    /// and the report clock and epoch of the previous version.
    fn shared(
        self,
        slots: Box<[Slot]>,
        groups: Vec<Group>,
        models: Models,
        by_key: IndexMap<Arc<ModelKey>, u32, FixedState>,
        striped: bool,
    ) -> Shared {
        let counted = self.counts_in_flight(&slots);
        let previous = self.previous;
        Shared {
            slots,
            groups: groups.into_boxed_slice(),
            models,
            by_key,
            normalize: self.registry.policy().model_normalizer(),
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
            outbox: previous.and_then(|p| p.shared.outbox.clone()),
        }
    }

    /// Whether picks are counted in flight: when asked to, or when
    /// something needs the count (a strategy that reads the load, a
    /// `max_in_flight` limit).
    fn counts_in_flight(&self, slots: &[Slot]) -> bool {
        self.in_flight == InFlight::Counted
            || self.chooser.get().reads_load()
            || slots
                .iter()
                .any(|s| s.deployment.limits().max_in_flight.is_some())
    }
}

/// Every slot's index, by key.
fn by_key(slots: &[Slot]) -> IndexMap<Arc<ModelKey>, u32, FixedState> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| (Arc::clone(&s.key), i as u32))
        .collect()
}

/// The per-tier tables the strategy asks for.
#[derive(Clone, Copy)]
struct Uses {
    ring: bool,
    schedule: bool,
    weights: WeightSource,
}

/// Makes the weights of `priority`'s members among `all` (a model's
/// deployments) the ones `source` derives, before any table reads them.
fn weigh(slots: &mut [Slot], all: &[u32], priority: u32, source: WeightSource) {
    if source == WeightSource::Weight {
        return;
    }
    let members: Vec<usize> = all
        .iter()
        .map(|&i| i as usize)
        .filter(|&i| slots[i].deployment.priority() == priority)
        .collect();
    let mut weights: Vec<u32> = members.iter().map(|&i| slots[i].weight).collect();
    let deployments: Vec<&Deployment> = members.iter().map(|&i| &*slots[i].deployment).collect();
    derive_weights(source, &mut weights, &deployments);
    for (&i, w) in members.iter().zip(weights) {
        slots[i].weight = w;
    }
}

/// The tier of `priority` among `all` (a model's deployments), with its
/// tables; `None` if no deployment of that priority has weight > 0.
fn tier(slots: &[Slot], all: &[u32], priority: u32, flag: &Disturbed, uses: Uses) -> Option<Tier> {
    let members: Box<[u32]> = all
        .iter()
        .copied()
        .filter(|&i| {
            let slot = &slots[i as usize];
            slot.deployment.priority() == priority && slot.weight > 0
        })
        .collect();
    if members.is_empty() {
        return None;
    }
    let cumulative: Box<[u64]> = members
        .iter()
        .scan(0u64, |acc, &i| {
            *acc += u64::from(slots[i as usize].weight);
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
    let ring = uses.ring.then(|| Ring::build(slots, &members));
    let schedule = uses.schedule.then(|| {
        let weights: Vec<u64> = members
            .iter()
            .map(|&i| u64::from(slots[i as usize].weight))
            .collect();
        schedule::smooth(&weights)
    });
    let index = TierIndex::build(slots, &members);
    let suspects = Suspects::new(if index.is_some() { members.len() } else { 0 });
    let limited = members
        .iter()
        .any(|&i| *slots[i as usize].deployment.limits() != Limits::default());
    Some(Tier {
        priority,
        stride: stride::stride(total),
        subset_stride: stride::Cache::default(),
        schedule: schedule.flatten(),
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
}

/// Makes every deployment's shared state among `all` track the flag of its
/// priority in this version.
fn track(slots: &[Slot], all: &[u32], flags: &[(u32, Disturbed)]) {
    for &i in all {
        let state = &slots[i as usize].state;
        let priority = slots[i as usize].deployment.priority();
        if let Ok(f) = flags.binary_search_by_key(&priority, |f| f.0) {
            state.track(&flags[f].1);
        }
    }
}

/// The state a selector rebuilt from `previous` keeps for `deployment`
/// under `key`. `position` is the deployment's place in the new
/// registry: when `previous` holds the very same key there (registry
/// versions derived from one another share keys), no lookup is needed.
fn kept_state(
    previous: &Selector,
    position: usize,
    key: &Arc<ModelKey>,
    deployment: &Deployment,
) -> Option<Arc<CachePadded<DeploymentState>>> {
    let slot = match previous.shared.slots.get(position) {
        Some(s) if Arc::ptr_eq(&s.key, key) => s,
        _ => previous.slot(key)?,
    };
    (slot.deployment.endpoint() == deployment.endpoint()).then(|| Arc::clone(&slot.state))
}
