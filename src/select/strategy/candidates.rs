//! [`Candidates`]: the eligible members of one tier as a strategy sees
//! them, answered from the tier's tables and a bit mask; and [`Candidate`].

use std::fmt;
use std::time::Duration;

use crate::health::SlowStart;
use crate::select::filter::Filter;
use crate::select::index;
use crate::select::ring::Ring;
use crate::select::tables::{Slot, Tier};
use crate::{Deployment, ModelKey};

/// The eligible candidates of one priority tier, as a strategy sees them.
///
/// When the request has no filters, every member of the tier is a candidate
/// and the selector's precomputed tables answer [`len`](Self::len),
/// [`total_weight`](Self::total_weight), [`nth`](Self::nth) and
/// [`at_weight`](Self::at_weight) in O(1) (`at_weight` on average). With
/// filters, on a tier of up to 4,096 members, the candidates are a bit
/// mask: `len`, `is_empty`, `nth` and `get` cost O(n / 64) or less,
/// `total_weight` and `at_weight` O(k) for k candidates; on larger tiers
/// each walks the tier (O(n)). See the [module docs](crate::select#cost).
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
    slots: &'a [Slot],
    tier: &'a Tier,
    /// `None`: every member is a candidate.
    filter: Option<&'a Filter<'a>>,
    /// The members the tier index kept (provider, labels, tags,
    /// exclusions); `None`: no index narrowed the tier.
    mask: Option<&'a [u64]>,
    /// Whether members (in the mask) must also pass
    /// [`Filter::passes_member`]; if not, the mask is the whole answer and
    /// counting, ranking and weighing work on its bits.
    residual: bool,
    /// Passed to [`Filter::passes_member`].
    indexed: bool,
    /// Passed to [`Filter::passes_member`].
    check_state: bool,
    /// Slow start in force: effective weights are scaled by
    /// [`SLOW_START_SCALE`] and ramp with the slow-start factor.
    slow: Option<&'a SlowStart>,
}

/// Effective weights during slow start are `weight × 1000 × factor`, so a
/// ramping deployment can hold a fraction of a unit of weight.
const SLOW_START_SCALE: u64 = 1000;

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

    /// The members of `tier` that `mask` (narrowed by the tier's index,
    /// then by every test the index cannot answer) keeps: the mask is the
    /// whole answer. With `check_state`, the tier is disturbed.
    #[inline]
    pub(crate) fn masked(
        slots: &'a [Slot],
        tier: &'a Tier,
        filter: &'a Filter<'a>,
        mask: &'a [u64],
        check_state: bool,
    ) -> Self {
        Self {
            slots,
            tier,
            filter: Some(filter),
            mask: Some(mask),
            residual: false,
            indexed: true,
            check_state,
            slow: None,
        }
    }

    /// The members of `tier` (a tier without an index) that pass `filter`,
    /// each tested when asked for: with `indexed`, the request's provider,
    /// label, tag and exclusion filters are known to pass; with
    /// `check_state`, the tier is disturbed.
    #[inline]
    pub(crate) fn tested(
        slots: &'a [Slot],
        tier: &'a Tier,
        filter: &'a Filter<'a>,
        indexed: bool,
        check_state: bool,
    ) -> Self {
        Self {
            slots,
            tier,
            filter: Some(filter),
            mask: None,
            residual: true,
            indexed,
            check_state,
            slow: None,
        }
    }

    /// Scales the candidates' effective weights for `slow` start (a
    /// candidate is ramping up).
    #[inline]
    pub(crate) fn scale_for_slow_start(&mut self, slow: &'a SlowStart) {
        self.slow = Some(slow);
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

    /// The effective weight every candidate has, when every member of the
    /// tier has the same weight and none is ramping up
    /// ([slow start](crate::health::SlowStart)); `None` otherwise, even
    /// if the candidates a filter kept happen to share one. O(1).
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
    ///         assert_eq!(c.uniform_weight(), Some(3));
    ///         c.nth(0)
    ///     }
    /// }
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").weight(3).build()?].into_iter().collect();
    /// let selector = Selector::builder(&reg).custom_strategy(Box::new(Inspect)).build();
    /// selector.select(&Request::new("gpt-4"))?;
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[inline]
    pub fn uniform_weight(&self) -> Option<u64> {
        self.uniform()
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

    /// The stride of a weighted rotation over a weight line of length
    /// `total` (normally [`total_weight`](Self::total_weight)): the integer
    /// nearest `total / φ` (golden ratio) that is coprime with `total`, 1
    /// for totals up to 2. Turn `t` of a rotation takes the candidate
    /// [at weight](Self::at_weight) `t × stride mod total`: any `total`
    /// consecutive turns visit every point of the line once, so each
    /// candidate gets exactly its weight in turns, scattered through the
    /// window rather than in runs ([`rotation`](Self::rotation) takes this
    /// rotation wherever it has no precomputed schedule).
    ///
    /// O(1) for the whole tier's total (computed with the tier); otherwise
    /// O(1) when `total` is the last one asked of the tier, else a search
    /// that takes a few dozen divisions.
    ///
    /// ```
    /// use modelfleet::select::{Candidate, Candidates, Context, Strategy, WeightedRoundRobin};
    /// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
    ///
    /// /// The weighted rotation without a schedule, by hand.
    /// #[derive(Debug)]
    /// struct Rotation;
    ///
    /// impl Strategy for Rotation {
    ///     fn choose<'a>(&self, c: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
    ///         let total = c.total_weight();
    ///         if total == 0 {
    ///             return None;
    ///         }
    ///         let turn = ctx.next_turn() % total;
    ///         let point = u128::from(turn) * u128::from(c.rotation_stride(total)) % u128::from(total);
    ///         c.at_weight(point as u64)
    ///     }
    /// }
    ///
    /// let mut reg = Registry::new(Policy::NAME_TAG);
    /// for (tag, weight) in [("a", 5), ("b", 1), ("c", 1)] {
    ///     reg.insert(Deployment::builder("openai", "gpt-4").tag(tag).weight(weight).build()?)?;
    /// }
    /// let by_hand = Selector::builder(&reg).custom_strategy(Box::new(Rotation)).seed(3).build();
    /// let built_in = Selector::builder(&reg).strategy(WeightedRoundRobin::new()).seed(3).build();
    /// // A filtered request (candidates "a" and "b"): no schedule applies.
    /// let request = Request::new("gpt-4").tag("a").tag("b");
    /// for _ in 0..12 {
    ///     assert_eq!(by_hand.select(&request)?.key(), built_in.select(&request)?.key());
    /// }
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[inline]
    pub fn rotation_stride(&self, total: u64) -> u64 {
        if self.filter.is_none() && total == self.tier.total {
            self.tier.stride
        } else {
            self.tier.subset_stride.stride(total)
        }
    }

    /// Turn `turn` of the weighted rotation over the candidates: each
    /// candidate gets exactly its effective weight in turns in every
    /// [`total_weight`](Self::total_weight) consecutive turns, spread
    /// through them ([`WeightedRoundRobin`](super::WeightedRoundRobin) is
    /// this rotation over the turns of [`Context::next_turn`](super::Context::next_turn)).
    ///
    /// When the candidates are the whole tier at full weight (no request
    /// filter or health state removed one, none is ramping up) and the
    /// strategy [uses a schedule](super::Strategy::uses_schedule), the
    /// turn follows nginx's smooth weighted round robin over the tier's
    /// weights, precomputed with the tier for periods (`Σw` over the
    /// weights' gcd) up to 65,536. Otherwise turn `t` takes the candidate
    /// [at weight](Self::at_weight) `t × stride mod Σw`, with the
    /// [`rotation_stride`](Self::rotation_stride) of the candidates' total.
    ///
    /// O(1) on the precomputed schedule; otherwise as
    /// [`at_weight`](Self::at_weight) plus
    /// [`rotation_stride`](Self::rotation_stride).
    ///
    /// ```
    /// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
    /// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
    ///
    /// #[derive(Debug)]
    /// struct Smooth;
    ///
    /// impl Strategy for Smooth {
    ///     fn choose<'a>(&self, c: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
    ///         c.rotation(ctx.next_turn())
    ///     }
    ///     fn uses_schedule(&self) -> bool {
    ///         true
    ///     }
    /// }
    ///
    /// let mut reg = Registry::new(Policy::NAME_TAG);
    /// for (tag, weight) in [("a", 50), ("b", 30), ("c", 20)] {
    ///     reg.insert(Deployment::builder("openai", "gpt-4").tag(tag).weight(weight).build()?)?;
    /// }
    /// let selector = Selector::builder(&reg).custom_strategy(Box::new(Smooth)).build();
    /// let mut last_c = None;
    /// for t in 0..100 {
    ///     if selector.select(&Request::new("gpt-4"))?.deployment().tag() == Some("c") {
    ///         // As in nginx, "c" waits at most 5 picks for its next turn.
    ///         assert!(last_c.is_none_or(|l| t - l <= 5));
    ///         last_c = Some(t);
    ///     }
    /// }
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[inline]
    pub fn rotation(&self, turn: u64) -> Option<Candidate<'a>> {
        let total = self.total_weight();
        if total == 0 {
            return None;
        }
        // Every member weighs at least 1, so a set of members at full
        // weight has the tier's total only when it is the whole tier.
        if self.slow.is_none()
            && total == self.tier.total
            && let Some(schedule) = &self.tier.schedule
        {
            let entry = schedule[(turn % schedule.len() as u64) as usize];
            return Some(self.candidate(usize::from(entry)));
        }
        let stride = self.rotation_stride(total);
        let turn = turn % total;
        // `turn` and `stride` are below `total`: their product fits in 64
        // bits when `total` does in 32, and 64-bit division is much cheaper
        // than 128-bit.
        let point = if total <= u64::from(u32::MAX) {
            turn * stride % total
        } else {
            (u128::from(turn) * u128::from(stride) % u128::from(total)) as u64
        };
        self.at_weight(point)
    }

    /// The tier's hash ring, when the strategy [uses one](super::Strategy::uses_ring).
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

    /// The selection weight, as the strategy's
    /// [`WeightSource`](crate::select::WeightSource) derives it (at least 1:
    /// deployments of weight 0 are never candidates).
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
