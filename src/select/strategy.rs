//! The [`Strategy`] trait and what a strategy sees: [`Candidates`] and a [`Context`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::filter::Filter;
use super::index;
use super::rng::{Rng, below, mix};
use super::search::Sorted;
use super::{ConsistentHash, Latency, LeastOutstanding, PowerOfTwo, RoundRobin, Slot, Tier};
use super::{WeightedRandom, WeightedRoundRobin};
use crate::health::SlowStart;
use crate::{Deployment, Error, ModelKey};

/// Chooses one deployment among the eligible candidates of one priority tier.
///
/// The selector has already applied the request's filters and picked the
/// tier; a strategy only decides *which* candidate. Return `None` only when
/// no candidate is acceptable (the selector then reports no eligible
/// deployment). "Better" is the strategy's own notion: fewer requests in
/// flight, lower latency, a turn in the rotation.
///
/// Object-safe: a `Box<dyn Strategy>` can be given to
/// [`SelectorBuilder::custom_strategy`](crate::SelectorBuilder::custom_strategy).
///
/// # A custom strategy
///
/// ```
/// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
///
/// /// Prefers the deployment with the largest context window.
/// #[derive(Debug)]
/// struct LargestWindow;
///
/// impl Strategy for LargestWindow {
///     fn choose<'a>(&self, candidates: &Candidates<'a>, _ctx: &Context<'_>) -> Option<Candidate<'a>> {
///         candidates
///             .iter()
///             .max_by_key(|c| c.deployment().context_window().unwrap_or(0))
///     }
/// }
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("s").context_window(8_192).build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("l").context_window(128_000).build()?)?;
/// let selector = Selector::builder(&reg).custom_strategy(Box::new(LargestWindow)).build();
/// let pick = selector.select(&Request::new("gpt-4"))?;
/// assert_eq!(pick.deployment().tag(), Some("l"));
/// assert_eq!(pick.strategy(), "custom"); // the default name
/// assert!(!LargestWindow.uses_ring());
/// assert!(LargestWindow.reads_load());
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub trait Strategy: fmt::Debug + Send + Sync {
    /// Chooses one of `candidates`.
    ///
    /// See [`Strategy`] for an example.
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>>;

    /// The strategy's name, shown in [`Pick`](crate::Pick)s and explanations.
    ///
    /// See [`Strategy`] for an example.
    fn name(&self) -> &str {
        "custom"
    }

    /// Whether the selector should build a [`Ring`] per tier for this strategy.
    ///
    /// See [`Strategy`] for an example.
    fn uses_ring(&self) -> bool {
        false
    }

    /// Whether the strategy reads [`Candidate::in_flight`]; if so the
    /// selector counts picks in flight even when told not to
    /// ([`InFlight::Uncounted`](crate::select::InFlight::Uncounted)). The
    /// default, `true`, is the safe answer for a strategy you write.
    ///
    /// See [`Strategy`] for an example.
    fn reads_load(&self) -> bool {
        true
    }
}

/// The eligible candidates of one priority tier, as a strategy sees them.
///
/// When the request has no filters, every member of the tier is a candidate
/// and the selector's precomputed tables answer [`len`](Self::len),
/// [`total_weight`](Self::total_weight), [`nth`](Self::nth) and
/// [`at_weight`](Self::at_weight) in O(1) (`at_weight` on average). With
/// filters, on a tier of up to 4,096 members, the candidates are a bit
/// mask: `len`, `is_empty`, `nth` and `get` cost O(n / 64) or less,
/// `total_weight` and `at_weight` O(k) for k candidates; on larger tiers
/// each walks the tier (O(n)). See the [module docs](super#cost).
///
/// ```
/// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
///
/// #[derive(Debug)]
/// struct Inspect;
///
/// impl Strategy for Inspect {
///     fn choose<'a>(&self, c: &Candidates<'a>, _ctx: &Context<'_>) -> Option<Candidate<'a>> {
///         // Tier 0 holds "a" (weight 1) and "b" (weight 3); the request's tag removes "a".
///         assert_eq!(c.priority(), 0);
///         assert!(!c.is_complete());
///         assert_eq!(c.tier_len(), 2);
///         assert_eq!(c.len(), 1);
///         assert!(!c.is_empty());
///         assert!(c.get(0).is_none());
///         let b = c.get(1)?;
///         assert_eq!(c.nth(0)?.key(), b.key());
///         assert_eq!(c.iter().count(), 1);
///         assert_eq!(c.total_weight(), 3);
///         assert_eq!(c.at_weight(2)?.key(), b.key());
///         assert!(c.ring().is_none());
///         Some(b)
///     }
/// }
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").weight(3).build()?)?;
/// let selector = Selector::builder(&reg).custom_strategy(Box::new(Inspect)).build();
/// let pick = selector.select(&Request::new("gpt-4").tag("b"))?;
/// assert_eq!(pick.deployment().tag(), Some("b"));
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Candidates<'a> {
    pub(crate) slots: &'a [Slot],
    pub(crate) tier: &'a Tier,
    /// `None`: every member is a candidate.
    pub(crate) filter: Option<&'a Filter<'a>>,
    /// The members the tier index kept (provider, labels, tags,
    /// exclusions); `None`: no index narrowed the tier.
    pub(crate) mask: Option<&'a [u64]>,
    /// Whether members (in the mask) must also pass
    /// [`Filter::passes_member`]; if not, the mask is the whole answer and
    /// counting, ranking and weighing work on its bits.
    pub(crate) residual: bool,
    /// Passed to [`Filter::passes_member`].
    pub(crate) indexed: bool,
    /// Passed to [`Filter::passes_member`].
    pub(crate) check_state: bool,
    /// Slow start in force: effective weights are scaled by
    /// [`SLOW_START_SCALE`] and ramp with the slow-start factor.
    pub(crate) slow: Option<&'a SlowStart>,
}

/// Effective weights during slow start are `weight × 1000 × factor`, so a
/// ramping deployment can hold a fraction of a unit of weight.
pub(crate) const SLOW_START_SCALE: u64 = 1000;

impl fmt::Debug for Candidates<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidates")
            .field("priority", &self.tier.priority)
            .field("members", &self.tier.members.len())
            .field("filtered", &self.filter.is_some())
            .finish()
    }
}

impl<'a> Candidates<'a> {
    /// Every member of `tier`, at full weight.
    pub(crate) fn complete(slots: &'a [Slot], tier: &'a Tier) -> Self {
        Self {
            slots,
            tier,
            filter: None,
            mask: None,
            residual: false,
            indexed: true,
            check_state: false,
            slow: None,
        }
    }

    /// The mask, when it alone says who is a candidate.
    fn exact_mask(&self) -> Option<&'a [u64]> {
        self.mask.filter(|_| !self.residual)
    }

    /// The weight every candidate has, when the tier's members share one
    /// and slow start is not in force.
    fn uniform(&self) -> Option<u64> {
        self.tier.uniform.filter(|_| self.slow.is_none())
    }

    /// The effective weight of the member at `position`: from the tier's
    /// prefix sums, unless slow start is in force.
    fn weight_at(&self, position: usize) -> u64 {
        if self.slow.is_some() {
            return self.candidate(position).effective;
        }
        let c = self.tier.cumulative.values();
        c[position] - position.checked_sub(1).map_or(0, |p| c[p])
    }

    /// The tier positions in word `w` of a mask: the first, the last, and
    /// the word with all of them set (all 64 but in the tier's last word).
    fn word_span(&self, w: usize) -> (usize, usize, u64) {
        let (first, last) = (w * 64, (w * 64 + 63).min(self.tier.members.len() - 1));
        (first, last, u64::MAX >> (63 - (last - first)))
    }

    /// The summed effective weight of the members set in `word` (word `w`
    /// of a mask).
    fn word_weight(&self, w: usize, word: u64) -> u64 {
        let members = |word: u64| {
            index::positions(&[word])
                .map(|b| self.weight_at(w * 64 + b))
                .sum()
        };
        if self.slow.is_some() {
            return members(word);
        }
        let (first, last, all) = self.word_span(w);
        let c = self.tier.cumulative.values();
        let range = || c[last] - first.checked_sub(1).map_or(0, |p| c[p]);
        if word == all {
            return range();
        }
        // Mostly set: the word's range from the prefix sums, less the
        // members missing from it. (Checked after the full word: counting
        // bits takes a dozen instructions on baseline x86-64.)
        let missing = all & !word;
        if missing.count_ones() < word.count_ones() {
            return range() - members(missing);
        }
        members(word)
    }

    #[inline]
    fn candidate(&self, position: usize) -> Candidate<'a> {
        let slot = &self.slots[self.tier.members[position] as usize];
        let weight = u64::from(slot.weight);
        let effective = match (self.slow, self.filter) {
            (Some(slow), Some(f)) => {
                let factor = slot.state.slow_factor(f.now, slow);
                ((weight * SLOW_START_SCALE) as f64 * factor)
                    .ceil()
                    .max(1.0) as u64
            }
            _ => weight,
        };
        Candidate {
            position,
            slot,
            effective,
        }
    }

    #[inline]
    fn eligible(&self, position: usize) -> bool {
        if self.mask.is_some_and(|m| !index::has(m, position)) {
            return false;
        }
        match self.filter {
            Some(f) if self.residual => f
                .passes_member(
                    &self.slots[self.tier.members[position] as usize],
                    self.indexed,
                    self.check_state,
                )
                .is_ok(),
            _ => true,
        }
    }

    /// Whether every member of the tier is a candidate (no filter removed any).
    ///
    /// See [`Candidates`] for an example.
    pub fn is_complete(&self) -> bool {
        self.filter.is_none()
    }

    /// The priority of the tier.
    ///
    /// See [`Candidates`] for an example.
    pub fn priority(&self) -> u32 {
        self.tier.priority
    }

    /// The number of members of the tier, eligible or not: the bound of
    /// [`get`](Self::get)'s positions.
    ///
    /// See [`Candidates`] for an example.
    pub fn tier_len(&self) -> usize {
        self.tier.members.len()
    }

    /// The candidates in registry order.
    ///
    /// See [`Candidates`] for an example.
    pub fn iter(&self) -> impl Iterator<Item = Candidate<'a>> + '_ {
        // Complete: no per-member test at all (the O(n) strategies walk
        // every member, so this is their inner loop).
        let complete = self.filter.is_none();
        (0..self.tier.members.len())
            .filter(move |&p| complete || self.eligible(p))
            .map(|p| self.candidate(p))
    }

    /// The number of candidates. O(1) when [complete](Self::is_complete),
    /// else O(n / 64) (O(n) on tiers of more than 4,096 members).
    ///
    /// See [`Candidates`] for an example.
    #[inline]
    pub fn len(&self) -> usize {
        match self.filter {
            None => self.tier.members.len(),
            Some(_) => self.filtered_len(),
        }
    }

    fn filtered_len(&self) -> usize {
        match self.exact_mask() {
            Some(mask) => index::count(mask),
            None => self.iter().count(),
        }
    }

    /// Whether there is no candidate.
    ///
    /// See [`Candidates`] for an example.
    pub fn is_empty(&self) -> bool {
        match self.exact_mask() {
            Some(mask) => mask.iter().all(|&w| w == 0),
            None => self.iter().next().is_none(),
        }
    }

    /// The member at tier position `position`, if it is a candidate.
    ///
    /// See [`Candidates`] for an example.
    pub fn get(&self, position: usize) -> Option<Candidate<'a>> {
        (position < self.tier.members.len() && self.eligible(position))
            .then(|| self.candidate(position))
    }

    /// The `n`-th candidate in registry order. O(1) when complete, else
    /// O(n / 64) (O(n) on tiers of more than 4,096 members).
    ///
    /// See [`Candidates`] for an example.
    #[inline]
    pub fn nth(&self, n: usize) -> Option<Candidate<'a>> {
        match self.filter {
            None => (n < self.tier.members.len()).then(|| self.candidate(n)),
            Some(_) => self.filtered_nth(n),
        }
    }

    fn filtered_nth(&self, n: usize) -> Option<Candidate<'a>> {
        match self.exact_mask() {
            Some(mask) => index::nth(mask, n).map(|p| self.candidate(p)),
            None => self.iter().nth(n),
        }
    }

    /// The sum of the candidates' [effective weights](Candidate::effective_weight).
    /// O(1) when complete, else O(k) for k candidates (O(n) on tiers of
    /// more than 4,096 members).
    ///
    /// See [`Candidates`] for an example.
    #[inline]
    pub fn total_weight(&self) -> u64 {
        match self.filter {
            None => self.tier.total,
            Some(_) => self.filtered_total_weight(),
        }
    }

    fn filtered_total_weight(&self) -> u64 {
        match self.exact_mask() {
            Some(mask) => match self.uniform() {
                Some(w) => index::count(mask) as u64 * w,
                None => mask
                    .iter()
                    .enumerate()
                    .map(|(w, &word)| self.word_weight(w, word))
                    .sum(),
            },
            None => self.iter().map(|c| c.effective).sum(),
        }
    }

    /// The candidate whose share of the weight line `[0, total_weight)`
    /// holds `point`: candidates own consecutive ranges as long as their
    /// effective weights, in registry order. O(1) on average when complete
    /// (a bucket index over the tier's cumulative weights; O(log n) at
    /// worst), else O(k) for k candidates (O(n) on tiers of more than 4,096
    /// members).
    ///
    /// See [`Candidates`] for an example.
    #[inline]
    pub fn at_weight(&self, point: u64) -> Option<Candidate<'a>> {
        match self.filter {
            None => {
                if point >= self.tier.total {
                    return None;
                }
                // The first prefix sum above `point`.
                let p = self.tier.cumulative.lower_bound(point + 1);
                Some(self.candidate(p))
            }
            Some(_) => self.filtered_at_weight(point),
        }
    }

    fn filtered_at_weight(&self, point: u64) -> Option<Candidate<'a>> {
        match self.exact_mask() {
            Some(mask) => {
                if let Some(w) = self.uniform() {
                    let n = usize::try_from(point / w).ok()?;
                    return index::nth(mask, n).map(|p| self.candidate(p));
                }
                let mut acc = 0u64;
                for (w, &word) in mask.iter().enumerate() {
                    let sum = self.word_weight(w, word);
                    if point >= acc + sum {
                        acc += sum;
                        continue;
                    }
                    let (first, last, all) = self.word_span(w);
                    if word == all && self.slow.is_none() {
                        // A full word: search its prefix sums.
                        let c = self.tier.cumulative.values();
                        let base = first.checked_sub(1).map_or(0, |p| c[p]);
                        let target = point - acc + base;
                        let p = first + c[first..=last].partition_point(|&x| x <= target);
                        return Some(self.candidate(p));
                    }
                    for b in index::positions(&[word]) {
                        acc += self.weight_at(w * 64 + b);
                        if point < acc {
                            return Some(self.candidate(w * 64 + b));
                        }
                    }
                }
                None
            }
            None => {
                let mut acc = 0u64;
                self.iter().find(|c| {
                    acc += c.effective;
                    point < acc
                })
            }
        }
    }

    /// The tier's hash ring, when the strategy [uses one](Strategy::uses_ring).
    ///
    /// See [`Candidates`] for an example.
    pub fn ring(&self) -> Option<&'a Ring> {
        self.tier.ring.as_ref()
    }
}

/// One eligible deployment, as a strategy sees it.
///
/// ```
/// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
/// use modelfleet::{Deployment, Registry, Request, Selector};
///
/// #[derive(Debug)]
/// struct Inspect;
///
/// impl Strategy for Inspect {
///     fn choose<'a>(&self, c: &Candidates<'a>, _ctx: &Context<'_>) -> Option<Candidate<'a>> {
///         let first = c.nth(0)?;
///         assert_eq!(first.position(), 0);
///         assert_eq!(first.key().to_string(), "openai/gpt-4@");
///         assert_eq!(first.deployment().model(), "gpt-4");
///         assert_eq!(first.weight(), 2);
///         assert_eq!(first.effective_weight(), 2); // no slow start
///         assert_eq!(first.in_flight(), 0);
///         assert_eq!(first.latency(), None); // nothing completed yet
///         Some(first)
///     }
/// }
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").weight(2).build()?].into_iter().collect();
/// let selector = Selector::builder(&reg).custom_strategy(Box::new(Inspect)).build();
/// selector.select(&Request::new("gpt-4"))?;
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Candidate<'a> {
    position: usize,
    slot: &'a Slot,
    effective: u64,
}

impl fmt::Debug for Candidate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate")
            .field("key", &self.slot.key)
            .field("position", &self.position)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl<'a> Candidate<'a> {
    /// The position in the tier (registry order among the tier's members).
    ///
    /// See [`Candidate`] for an example.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The deployment's key.
    ///
    /// See [`Candidate`] for an example.
    pub fn key(&self) -> &'a ModelKey {
        &self.slot.key
    }

    /// The deployment.
    ///
    /// See [`Candidate`] for an example.
    pub fn deployment(&self) -> &'a Deployment {
        &self.slot.deployment
    }

    /// Whether it is ramping up under `slow` at `now`.
    pub(crate) fn ramping(&self, now: u64, slow: &SlowStart) -> bool {
        self.slot.state.slow_factor(now, slow) < 1.0
    }

    /// The selection weight (at least 1: drained deployments are never candidates).
    ///
    /// See [`Candidate`] for an example.
    pub fn weight(&self) -> u32 {
        self.slot.weight
    }

    /// The weight the weighted strategies use: the weight itself, or while
    /// any candidate of the tier is in [slow start](crate::health::SlowStart),
    /// `weight × 1000 × factor` (at least 1) for every candidate.
    ///
    /// See [`Candidate`] for an example.
    pub fn effective_weight(&self) -> u64 {
        self.effective
    }

    /// Picks of this deployment still in flight (across every selector handle).
    ///
    /// See [`Candidate`] for an example.
    pub fn in_flight(&self) -> u32 {
        self.slot.state.load(self.slot.striped)
    }

    /// The peak-EWMA latency estimate, `None` before the first completed pick.
    ///
    /// See [`Candidate`] for an example.
    pub fn latency(&self) -> Option<Duration> {
        self.slot.state.latency()
    }
}

/// Per-request context: randomness, the rotation cursor, the affinity key.
///
/// Randomness and the cursor belong to the selector *handle* (see
/// [`Selector`](crate::Selector)): one handle, one seed, one sequence.
///
/// ```
/// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
/// use modelfleet::{Deployment, Registry, Request, Selector};
///
/// #[derive(Debug)]
/// struct Inspect;
///
/// impl Strategy for Inspect {
///     fn choose<'a>(&self, c: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
///         assert_eq!(ctx.affinity(), Some("user-42"));
///         assert_eq!(ctx.affinity_hash(), ctx.affinity_hash()); // stable
///         let _bits: u64 = ctx.random();
///         assert!(ctx.random_below(10) < 10);
///         assert!(ctx.sampler().below(3) < 3);
///         let turn = ctx.next_turn();
///         assert_eq!(ctx.next_turn(), turn + 1);
///         c.nth(0)
///     }
/// }
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let selector = Selector::builder(&reg).custom_strategy(Box::new(Inspect)).build();
/// selector.select(&Request::new("gpt-4").affinity("user-42"))?;
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Context<'a> {
    pub(crate) rng: &'a Rng,
    pub(crate) cursor: &'a AtomicU64,
    pub(crate) affinity: Option<&'a str>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("affinity", &self.affinity.map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// 64 random bits from the handle's seeded source.
    ///
    /// See [`Context`] for an example.
    pub fn random(&self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform random number in `0..n` (`n` ≥ 1).
    ///
    /// See [`Context`] for an example.
    pub fn random_below(&self, n: u64) -> u64 {
        below(self.rng.next_u64(), n.max(1))
    }

    /// A small generator seeded from one draw of the handle's source, for
    /// strategies that need many random numbers per pick (tie-breaking over
    /// a whole tier): one atomic step here, plain arithmetic after.
    ///
    /// See [`Context`] for an example.
    pub fn sampler(&self) -> Sampler {
        Sampler(self.rng.next_u64())
    }

    /// The next turn of this model's rotation on this handle: 0, 1, 2, …
    /// (the first value depends on the seed, so handles do not all start on
    /// the same deployment).
    ///
    /// See [`Context`] for an example.
    pub fn next_turn(&self) -> u64 {
        self.cursor.fetch_add(1, Ordering::Relaxed)
    }

    /// The request's affinity key.
    ///
    /// See [`Context`] for an example.
    pub fn affinity(&self) -> Option<&str> {
        self.affinity
    }

    /// The stable 64-bit hash of the affinity key (xxh3, seed 0): the same on
    /// every platform, run and crate version.
    ///
    /// See [`Context`] for an example.
    pub fn affinity_hash(&self) -> Option<u64> {
        self.affinity.map(|a| crate::hash::stable(a.as_bytes()))
    }
}

/// A non-atomic SplitMix64 generator for one pick, from [`Context::sampler`].
///
/// ```
/// use modelfleet::select::Sampler;
/// let mut a = Sampler::new(7);
/// let mut b = Sampler::new(7);
/// assert_eq!(a.below(10), b.below(10));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(3) < 3);
/// ```
#[derive(Clone, Debug)]
pub struct Sampler(u64);

impl Sampler {
    /// A generator from `seed`.
    ///
    /// See [`Sampler`] for an example.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// 64 random bits.
    ///
    /// See [`Sampler`] for an example.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A uniform number in `0..n` (`n` ≥ 1).
    ///
    /// See [`Sampler`] for an example.
    pub fn below(&mut self, n: u64) -> u64 {
        below(self.next_u64(), n.max(1))
    }
}

/// A consistent-hash ring over one tier: points on a 64-bit circle, each
/// owned by a tier member.
///
/// Each member gets 160 points per unit of weight, placed at
/// `xxh3_64_with_seed(key text, point index)`. A member's points depend only
/// on its own key and weight, so adding or removing a member moves only the
/// hashes that land on its points. Rings are capped at about 1,000,000
/// points: above 6,250 units of weight in one tier, every member's share is
/// scaled down (at least one point each), which moves points of every member
/// when the total crosses the cap; keep weights small (they are ratios) to
/// stay below it.
///
/// ```
/// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
///
/// /// Consistent hashing without bounded load, by hand.
/// #[derive(Debug)]
/// struct OnRing;
///
/// impl Strategy for OnRing {
///     fn choose<'a>(&self, c: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
///         let ring = c.ring()?;
///         assert_eq!(ring.len(), 2 * 160); // two members of weight 1
///         assert!(!ring.is_empty());
///         ring.successors(ctx.affinity_hash()?).find_map(|p| c.get(p))
///     }
///
///     fn uses_ring(&self) -> bool {
///         true
///     }
/// }
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").build()?)?;
/// let selector = Selector::builder(&reg).custom_strategy(Box::new(OnRing)).build();
/// let req = Request::new("gpt-4").affinity("user-42");
/// let first = selector.select(&req)?.key().clone();
/// assert_eq!(selector.select(&req)?.key(), &first);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone)]
pub struct Ring {
    /// Point hashes, ascending, with a bucket index: finding a key's point
    /// costs about two cache misses instead of one per level of a binary
    /// search over up to a million points.
    hashes: Sorted,
    /// The tier position owning each point.
    owners: Box<[u32]>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring").field("points", &self.len()).finish()
    }
}

/// Points per bucket of the ring's index, on average.
const POINTS_PER_BUCKET: usize = 4;

/// Points per unit of weight.
const POINTS_PER_WEIGHT: u64 = 160;
/// The points of one tier's ring, at most (plus one per member when scaled).
const MAX_RING_POINTS: u64 = 1_000_000;

impl Ring {
    pub(crate) fn build(slots: &[Slot], members: &[u32]) -> Self {
        let weight = |i: u32| u64::from(slots[i as usize].deployment.weight());
        let units: u64 = members.iter().map(|&i| weight(i)).sum();
        let points_of = |w: u64| -> u64 {
            if units.saturating_mul(POINTS_PER_WEIGHT) <= MAX_RING_POINTS {
                w * POINTS_PER_WEIGHT
            } else {
                ((u128::from(w) * u128::from(MAX_RING_POINTS) / u128::from(units)) as u64).max(1)
            }
        };
        let total: u64 = members.iter().map(|&i| points_of(weight(i))).sum();
        let mut points = Vec::with_capacity(total as usize);
        for (pos, &i) in members.iter().enumerate() {
            let slot = &slots[i as usize];
            let name = slot.key.to_string();
            for k in 0..points_of(weight(i)) {
                let h = crate::hash::stable_with_seed(name.as_bytes(), k);
                points.push((h, pos as u32));
            }
        }
        // Ties (vanishingly rare) resolve by position, so the ring is a pure
        // function of the members.
        points.sort_unstable();
        Self::from_sorted(&points)
    }

    /// A ring over `points` (hash, owner), sorted.
    fn from_sorted(points: &[(u64, u32)]) -> Self {
        Self {
            hashes: Sorted::new(points.iter().map(|&(h, _)| h).collect(), POINTS_PER_BUCKET),
            owners: points.iter().map(|&(_, p)| p).collect(),
        }
    }

    /// The first point whose hash is at least `hash` (the number of points
    /// if none).
    fn first_at_or_after(&self, hash: u64) -> usize {
        self.hashes.lower_bound(hash)
    }

    /// The number of points.
    ///
    /// See [`Ring`] for an example.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether the ring has no points.
    ///
    /// See [`Ring`] for an example.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Tier positions of the points at or after `hash`, clockwise, once
    /// around the circle (a member appears once per point it owns).
    /// Finding the start is O(1) on average: an index of the ring's buckets
    /// narrows the search to a few points.
    ///
    /// See [`Ring`] for an example.
    pub fn successors(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.first_at_or_after(hash);
        self.owners[start..]
            .iter()
            .chain(&self.owners[..start])
            .map(|&p| p as usize)
    }
}

/// The built-in strategies, by name.
///
/// | name | picks | cost per pick (no filters / filters) |
/// |---|---|---|
/// | `round_robin` | each candidate in turn | O(1) / O(n/64) |
/// | `weighted_round_robin` | exactly `w_i` of every `Σw` consecutive picks, interleaved | O(1) on average / O(k) |
/// | `weighted_random` | candidate i with probability `w_i/Σw` | O(1) on average / O(k) |
/// | `least_outstanding` | fewest picks in flight, ties at random | O(n) |
/// | `power_of_two` | the less loaded of two random candidates | O(1) / O(n/64) |
/// | `latency` | lowest latency estimate, within a buffer | O(n) |
/// | `consistent_hash` | the same deployment for the same affinity key | O(1) / O(1 + skipped points) |
///
/// With filters (or while a member of the tier is cooling, ejected, ramping
/// up or limited), k is the number of candidates and building the
/// candidates costs O(n/64), plus one O(k) pass when health, limits,
/// versions or context windows must be tested; tiers of more than 4,096
/// members cost O(n) (see the [module docs](super#cost)).
///
/// ```
/// use modelfleet::select::BuiltinStrategy;
///
/// let s: BuiltinStrategy = "weighted_round_robin".parse()?;
/// assert_eq!(s.to_string(), "weighted_round_robin");
/// assert!("fastest".parse::<BuiltinStrategy>().is_err());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum BuiltinStrategy {
    /// [`RoundRobin`].
    RoundRobin(RoundRobin),
    /// [`WeightedRoundRobin`].
    WeightedRoundRobin(WeightedRoundRobin),
    /// [`WeightedRandom`].
    WeightedRandom(WeightedRandom),
    /// [`LeastOutstanding`].
    LeastOutstanding(LeastOutstanding),
    /// [`PowerOfTwo`].
    PowerOfTwo(PowerOfTwo),
    /// [`Latency`].
    Latency(Latency),
    /// [`ConsistentHash`].
    ConsistentHash(ConsistentHash),
}

const NAMES: &str = "round_robin, weighted_round_robin, weighted_random, least_outstanding, power_of_two, latency, consistent_hash";

impl BuiltinStrategy {
    /// Every built-in strategy with its default settings.
    ///
    /// ```
    /// use modelfleet::select::BuiltinStrategy;
    /// let names: Vec<String> = BuiltinStrategy::all().iter().map(|s| s.to_string()).collect();
    /// assert_eq!(names.len(), 7);
    /// assert_eq!(names[0], "round_robin");
    /// assert!(names.contains(&"consistent_hash".to_owned()));
    /// ```
    pub fn all() -> [BuiltinStrategy; 7] {
        [
            RoundRobin.into(),
            WeightedRoundRobin.into(),
            WeightedRandom.into(),
            LeastOutstanding.into(),
            PowerOfTwo::default().into(),
            Latency::default().into(),
            ConsistentHash::default().into(),
        ]
    }

    fn inner(&self) -> &dyn Strategy {
        match self {
            BuiltinStrategy::RoundRobin(s) => s,
            BuiltinStrategy::WeightedRoundRobin(s) => s,
            BuiltinStrategy::WeightedRandom(s) => s,
            BuiltinStrategy::LeastOutstanding(s) => s,
            BuiltinStrategy::PowerOfTwo(s) => s,
            BuiltinStrategy::Latency(s) => s,
            BuiltinStrategy::ConsistentHash(s) => s,
        }
    }
}

impl Strategy for BuiltinStrategy {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        // Static dispatch for the built-ins.
        match self {
            BuiltinStrategy::RoundRobin(s) => s.choose(candidates, ctx),
            BuiltinStrategy::WeightedRoundRobin(s) => s.choose(candidates, ctx),
            BuiltinStrategy::WeightedRandom(s) => s.choose(candidates, ctx),
            BuiltinStrategy::LeastOutstanding(s) => s.choose(candidates, ctx),
            BuiltinStrategy::PowerOfTwo(s) => s.choose(candidates, ctx),
            BuiltinStrategy::Latency(s) => s.choose(candidates, ctx),
            BuiltinStrategy::ConsistentHash(s) => s.choose(candidates, ctx),
        }
    }

    fn name(&self) -> &str {
        self.inner().name()
    }

    fn uses_ring(&self) -> bool {
        self.inner().uses_ring()
    }

    fn reads_load(&self) -> bool {
        self.inner().reads_load()
    }
}

impl fmt::Display for BuiltinStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BuiltinStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        BuiltinStrategy::all()
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| Error::UnknownStrategy {
                input: s.chars().take(100).collect(),
                expected: NAMES,
            })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for BuiltinStrategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for BuiltinStrategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! from_builtin {
    ($($t:ident),*) => {$(
        impl From<$t> for BuiltinStrategy {
            fn from(s: $t) -> Self {
                BuiltinStrategy::$t(s)
            }
        }
    )*};
}

from_builtin!(
    RoundRobin,
    WeightedRoundRobin,
    WeightedRandom,
    LeastOutstanding,
    PowerOfTwo,
    Latency,
    ConsistentHash
);

#[cfg(test)]
mod tests {
    use super::Ring;
    use proptest::prelude::*;

    proptest! {
        /// The bucket index finds exactly the point a search over the whole
        /// ring finds, for rings of 0 to 3,000 points (one bucket to 1,024),
        /// and for hashes at, between and around the points.
        #[test]
        fn indexed_lookup_equals_full_search(
            mut hashes in prop::collection::vec(any::<u64>(), 0..3_000),
            probes in prop::collection::vec(any::<u64>(), 1..64),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 1..16),
        ) {
            hashes.sort_unstable();
            let points: Vec<(u64, u32)> =
                hashes.iter().enumerate().map(|(i, &h)| (h, i as u32)).collect();
            let ring = Ring::from_sorted(&points);
            let mut probes = probes;
            if !hashes.is_empty() {
                for i in &picks {
                    let h = hashes[i.index(hashes.len())];
                    probes.extend([h, h.wrapping_sub(1), h.wrapping_add(1)]);
                }
            }
            probes.extend([0, u64::MAX]);
            for h in probes {
                let want = hashes.partition_point(|&x| x < h);
                prop_assert_eq!(ring.first_at_or_after(h), want, "hash {}", h);
                let first = ring.successors(h).next();
                prop_assert_eq!(first, (!hashes.is_empty()).then(|| want % hashes.len()));
            }
        }
    }
}
