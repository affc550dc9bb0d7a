//! The tables a selector version is made of: one [`Slot`] per deployment,
//! a [`Group`] per model with its priority [`Tier`]s, the [`Shared`] part
//! every handle reads, and each handle's [`Local`] cursors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use indexmap::IndexMap;

use super::InFlight;
use super::flags::{Disturbed, Epoch};
use super::index::TierIndex;
use super::ring::Ring;
use super::rng::{Rng, mix};
use super::search::Sorted;
use super::strategy::{BuiltinStrategy, Strategy};
use super::stride;
use super::suspects::Suspects;
use crate::hash::FixedState;
use crate::health::HealthPolicy;
use crate::health::state::{self, DeploymentState};
use crate::{Deployment, ModelKey};

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
    pub(crate) group: u32,
    /// Index of its tier in the group; `None` when drained (weight 0).
    pub(crate) tier: Option<u32>,
    /// Its position among the tier's members.
    pub(crate) position: u32,
    /// Whether picks count toward an `rpm` limit.
    pub(crate) rpm_limited: bool,
    /// Whether the deployment has any limit (`max_in_flight`, `rpm`, `tpm`).
    pub(crate) limited: bool,
    /// Whether handles count in flight on their own stripes (see
    /// [`Shared::striped`]).
    pub(crate) striped: bool,
    /// The deployment's weight. This and `rpm_limited` are read on every
    /// pick; kept here so the hot path does not reach through the shared
    /// deployment pointer (one more cache miss per candidate).
    pub(crate) weight: u32,
    /// The deployment's cooldown override in nanoseconds, read only on the
    /// report path; kept here so a report does not convert it each time.
    pub(crate) cooldown: Option<u64>,
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
    /// The rotation stride for `total` (see [`stride`](mod@stride)).
    pub(crate) stride: u64,
    /// The last rotation stride computed for a subset of the members
    /// ([`stride::Cache`]): a filtered or disturbed tier usually keeps one
    /// candidate total from pick to pick.
    pub(crate) subset_stride: stride::Cache,
    /// One period of nginx's smooth weighted round robin over the members
    /// (see `select/schedule.rs`), when the strategy
    /// [uses one](super::Strategy::uses_schedule) and the period is at most
    /// `schedule::MAX_PERIOD`.
    pub(crate) schedule: Option<Box<[u16]>>,
    pub(crate) ring: Option<Ring>,
    /// Members by provider, label and tag, for filtered requests; `None`
    /// for tiers too large to index.
    pub(crate) index: Option<TierIndex>,
    /// Whether any member has limits (then every pick checks them).
    pub(crate) limited: bool,
    /// Which members a pick must test while the tier is disturbed (indexed
    /// tiers only): a record kept across picks until a report changes it.
    pub(crate) suspects: Suspects,
    /// Until when (ns) some member may be cooling, ejected or ramping up:
    /// before that time picks from the tier check health. Raised by
    /// reports, never lowered. The flag of the tier's (model, priority), from
    /// [`Group::flags`].
    ///
    /// Reports reach it through whichever version they are applied: the
    /// flag is carried over by [`Selector::rebuild`](crate::Selector::rebuild) to later versions
    /// while the (model, priority) stays, and every deployment's shared
    /// state tracks the flag of its tier in the version built last
    /// ([`DeploymentState::track`]), which each report raises too.
    pub(crate) disturbed_until: Disturbed,
}

impl Tier {
    /// Whether every member is a healthy candidate at full weight at `now`.
    pub(crate) fn is_clear(&self, now: u64) -> bool {
        !self.limited && !state::lasts(self.disturbed_until.load(Ordering::Relaxed), now)
    }
}

/// The deployments of one model.
#[derive(Debug)]
pub(crate) struct Group {
    /// Every deployment of the model (drained ones too), registry order.
    pub(crate) all: Box<[u32]>,
    /// Non-empty tiers, lowest priority first.
    pub(crate) tiers: Box<[Tier]>,
    /// The "disturbed until" flag of every priority any deployment of the
    /// model has (drained ones too), by priority ascending; each tier holds
    /// a clone of its own (see [`Tier::disturbed_until`]).
    pub(crate) flags: Box<[(u32, Disturbed)]>,
}

impl Group {
    /// The flag of `priority`, if a deployment of the model has it.
    pub(crate) fn flag(&self, priority: u32) -> Option<&Disturbed> {
        let i = self.flags.binary_search_by_key(&priority, |f| f.0).ok()?;
        Some(&self.flags[i].1)
    }
}

/// The strategy of a selector: a built-in one, dispatched statically, or
/// your own.
#[derive(Clone)]
pub(crate) enum Chooser {
    Builtin(BuiltinStrategy),
    Custom(Arc<dyn Strategy>),
}

impl Chooser {
    pub(crate) fn get(&self) -> &dyn Strategy {
        match self {
            Chooser::Builtin(b) => b,
            Chooser::Custom(c) => c.as_ref(),
        }
    }
}

/// What every handle of one selector version shares.
pub(crate) struct Shared {
    pub(crate) slots: Box<[Slot]>,
    pub(crate) groups: Box<[Group]>,
    pub(crate) models: IndexMap<Box<str>, u32, FixedState>,
    /// The policy's model-name normalization, if it has one
    /// ([`IdentityPolicy::model_normalizer`](crate::IdentityPolicy::model_normalizer)):
    /// `models` holds normal names.
    pub(crate) normalize: Option<fn(&str) -> std::borrow::Cow<'_, str>>,
    pub(crate) by_key: IndexMap<Arc<ModelKey>, u32, FixedState>,
    pub(crate) chooser: Chooser,
    pub(crate) seed: u64,
    pub(crate) latency_decay: Duration,
    pub(crate) health: HealthPolicy,
    pub(crate) handles: AtomicU64,
    /// Whether picks are counted in flight.
    pub(crate) counted: bool,
    /// Whether each handle counts on the stripe of its number, so threads
    /// with their own handles write different cache lines. Not when the
    /// strategy reads the load: then every handle counts on stripe 0, and
    /// a strategy reads one counter per candidate instead of four (the
    /// counters' lines move between the threads' cores either way, since
    /// each thread reads what the others write).
    pub(crate) striped: bool,
    pub(crate) in_flight: InFlight,
    /// The latest report time seen (ns): the time of a request that carries
    /// none. Written by reports only, on its own cache line.
    pub(crate) latest: CachePadded<AtomicU64>,
    /// Reports that put a deployment out, in this selector and every
    /// version rebuilt from it (or from which it was rebuilt): the versions
    /// that may share a deployment's state. Tiers' `suspects` records are
    /// made at one value of it.
    pub(crate) epoch: Epoch,
    /// Where reports put the transitions other replicas should hear, when
    /// the fleet shares health ([`share`](crate::share)); carried to every
    /// version rebuilt from this one.
    pub(crate) outbox: Option<Arc<crate::share::Outbox>>,
}

/// Per-handle state: rotation cursors (one per model) and the random source.
///
/// Padded to whole cache lines: two handles created side by side (or their
/// cursor arrays) would otherwise share a line that both threads write.
pub(crate) struct Local {
    pub(crate) rng: CachePadded<Rng>,
    pub(crate) cursors: Box<[CachePadded<AtomicU64>]>,
    /// The in-flight stripe this handle counts on: its number modulo
    /// [`state::STRIPES`], or 0 when the selector is not
    /// [striped](Shared::striped).
    pub(crate) stripe: usize,
    /// For a fleet handle's handle of a version: the fleet's current
    /// version, where its picks' reports go. Held here, once per handle,
    /// so a pick need not take a reference every handle's picks would
    /// write.
    pub(crate) reports_to: Option<Arc<arc_swap::ArcSwap<super::Selector>>>,
    /// For a fleet handle's handle of a version: the fleet generation it
    /// was made at (its version is at least that generation's).
    pub(crate) generation: u64,
}

impl Local {
    /// Handle number `handle` of the selector whose shared part is `shared`.
    pub(crate) fn new(shared: &Shared, handle: u64) -> Self {
        let (seed, models) = (shared.seed, &shared.models);
        let s = mix(seed ^ mix(handle.wrapping_add(0x5EED)));
        // Each model's rotation starts at a seeded position derived from its
        // name, so it does not depend on the order models were added in.
        let mut cursors: Box<[CachePadded<AtomicU64>]> = (0..models.len())
            .map(|_| CachePadded::new(AtomicU64::new(0)))
            .collect();
        for (model, &gi) in models {
            let h = crate::hash::stable(model.as_bytes());
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
            reports_to: None,
            generation: 0,
        }
    }

    /// Takes over the rotation positions (by model name) of `old`, a handle
    /// of the selector `from`.
    pub(crate) fn carry(&self, to: &Shared, old: &Local, from: &Shared) {
        for (model, &gi) in &to.models {
            if let Some(&old_gi) = from.models.get(model) {
                let turn = old.cursors[old_gi as usize].load(Ordering::Relaxed);
                self.cursors[gi as usize].store(turn, Ordering::Relaxed);
            }
        }
    }
}
