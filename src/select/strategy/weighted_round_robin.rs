//! `weighted_round_robin`: exact weighted shares in every window, in nginx's smooth order.

use super::{Candidate, Candidates, Context, Strategy, WeightSource};

/// Weighted round robin with nginx's smoothness: over an unchanged
/// candidate set, every window of `W = Σw` consecutive picks holds exactly
/// `w_i` picks of candidate i, spread through the window rather than in
/// runs.
///
/// # Algorithm
///
/// nginx's smooth weighted round robin keeps a running "current weight" per
/// upstream and mutates all of them on every pick; shared between threads
/// that state needs a lock. Its sequence is periodic, though, so the
/// selector computes one period per tier when it is built and turn `t`
/// takes entry `t mod P` ([`Candidates::rotation`]): the same picks, in
/// the same order from a seeded start, with one turn counter per model and
/// per selector [handle](crate::Selector#threads-and-handles) as the only
/// state. The period is `P = W / gcd(w)`; the schedule stores `P` entries
/// of 2 bytes and is built for `P` up to 65,536 (128 KiB per tier, built
/// in O(P × d) for d distinct weights). For weights `{a: 5, b: 1, c: 1}`
/// one window is `a a b a c a a`; for `50/30/20` the lightest waits at
/// most 5 picks between turns.
///
/// Where there is no schedule, turn `t` picks the candidate owning point
/// `(t · k) mod W` of the candidates' weights laid end to end on `[0, W)`,
/// where the stride `k` is the integer nearest `W/φ` (golden ratio) that is
/// coprime with `W` ([`Candidates::rotation_stride`]): any `W` consecutive
/// turns visit every point once, so windows stay exact, and the
/// golden-ratio stride scatters consecutive points across the line (the
/// three-distance theorem), which interleaves the picks, though with longer
/// gaps than nginx's for some weights. That is the rotation of tiers whose
/// period exceeds 65,536, and of any other candidate set: a filtered
/// request, members out of health or ramping up (slow start). Such a
/// subset needs no state of its own: the same formula runs over its
/// candidates.
///
/// Exact windows hold per handle; threads that share one handle share the
/// counter and together still receive exact windows.
///
/// Cost: O(1) per pick without request filters (a table entry, or a search
/// of the precomputed cumulative weights through a bucket index, O(log n)
/// at worst, above the schedule's bound); with filters, O(k) over the k
/// candidates' weights (see the [cost model](crate::select#cost)).
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::WeightedRoundRobin;
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("big").weight(3).build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("small").weight(1).build()?)?;
/// let selector = Selector::builder(&reg).strategy(WeightedRoundRobin::new()).build();
/// let req = Request::new("gpt-4");
/// let big = (0..4)
///     .filter(|_| selector.select(&req).unwrap().deployment().tag() == Some("big"))
///     .count();
/// assert_eq!(big, 3);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WeightedRoundRobin {
    weights: WeightSource,
}

impl WeightedRoundRobin {
    /// Weighing by each deployment's `weight` (the default).
    ///
    /// ```
    /// use modelfleet::select::{WeightSource, WeightedRoundRobin};
    /// assert_eq!(WeightedRoundRobin::new().weight_source(), WeightSource::Weight);
    /// assert_eq!(WeightedRoundRobin::new(), WeightedRoundRobin::default());
    /// ```
    pub const fn new() -> Self {
        Self::with_weights(WeightSource::Weight)
    }

    /// Weighing by the field `weights` names: the weight, the rpm or tpm
    /// limit, or LiteLLM's order of the three (see [`WeightSource`] for
    /// deployments without the field and for very large values).
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
    /// use modelfleet::select::{WeightSource, WeightedRoundRobin};
    ///
    /// let mut reg = Registry::new(Policy::NAME_TAG);
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").rpm(900).build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").rpm(100).build()?)?;
    /// let strategy = WeightedRoundRobin::with_weights(WeightSource::Rpm);
    /// assert_eq!(strategy.weight_source(), WeightSource::Rpm);
    /// let selector = Selector::builder(&reg).strategy(strategy).seed(7).build();
    /// let req = Request::new("gpt-4");
    /// // 10 picks: 9 to rpm 900 and 1 to rpm 100, well within both limits.
    /// let a = (0..10)
    ///     .filter(|_| selector.select(&req).unwrap().deployment().tag() == Some("a"))
    ///     .count();
    /// assert_eq!(a, 9);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub const fn with_weights(weights: WeightSource) -> Self {
        Self { weights }
    }

    /// What the strategy weighs by.
    ///
    /// See [`WeightedRoundRobin::with_weights`] for an example.
    pub const fn weight_source(&self) -> WeightSource {
        self.weights
    }
}

impl Strategy for WeightedRoundRobin {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        candidates.rotation(ctx.next_turn())
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn uses_schedule(&self) -> bool {
        true
    }

    fn reads_load(&self) -> bool {
        false
    }

    fn weight_source(&self) -> WeightSource {
        self.weights
    }
}
