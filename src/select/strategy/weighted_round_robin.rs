//! `weighted_round_robin`: exact weighted shares in every window, interleaved.

use super::{Candidate, Candidates, Context, Strategy};

/// Weighted round robin with nginx's guarantee: over an unchanged candidate
/// set, every window of `W = Σw` consecutive picks holds exactly `w_i` picks
/// of candidate i, spread through the window rather than in runs.
///
/// # Algorithm
///
/// nginx's smooth weighted round robin keeps a running "current weight" per
/// upstream and mutates all of them on every pick; shared between threads
/// that state needs a lock, and it is only defined for one fixed set. We get
/// the same per-window exactness from a stateless sequence instead: lay the
/// candidates' weights end to end on `[0, W)`, and let turn `t` pick the
/// candidate owning point `(t · k) mod W`, where the stride `k` is the integer
/// nearest `W/φ` (golden ratio) that is coprime with `W`
/// ([`Candidates::rotation_stride`]). Because `k` is
/// coprime with `W`, any `W` consecutive turns visit every point of `[0, W)`
/// exactly once, so each candidate gets exactly `w_i` picks per window; the
/// golden-ratio stride scatters consecutive points across the line (the
/// three-distance theorem), which interleaves the picks. For weights
/// `{a: 5, b: 1, c: 1}` one window is `a a a b a c a` (nginx: `a a b a c a a`).
///
/// The only state is one turn counter per model and per selector
/// [handle](crate::Selector#threads-and-handles), so a filtered request
/// (another candidate subset) needs no state of its own: the same formula
/// runs over its candidates. Exact windows hold per handle; threads that
/// share one handle share the counter and together still receive exact
/// windows.
///
/// Cost: O(1) on average per pick without request filters (a search of
/// the precomputed cumulative weights through a bucket index; O(log n) at
/// worst, when weights are very uneven); with filters, O(k) over the k
/// candidates' weights (see the [cost model](crate::select#cost)).
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::WeightedRoundRobin;
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("big").weight(3).build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("small").weight(1).build()?)?;
/// let selector = Selector::builder(&reg).strategy(WeightedRoundRobin).build();
/// let req = Request::new("gpt-4");
/// let big = (0..4)
///     .filter(|_| selector.select(&req).unwrap().deployment().tag() == Some("big"))
///     .count();
/// assert_eq!(big, 3);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WeightedRoundRobin;

impl Strategy for WeightedRoundRobin {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let total = candidates.total_weight();
        if total == 0 {
            return None;
        }
        let stride = candidates.rotation_stride(total);
        let turn = ctx.next_turn() % total;
        // `turn` and `stride` are below `total`: their product fits in 64
        // bits when `total` does in 32, and 64-bit division is much cheaper
        // than 128-bit.
        let point = if total <= u64::from(u32::MAX) {
            turn * stride % total
        } else {
            (u128::from(turn) * u128::from(stride) % u128::from(total)) as u64
        };
        candidates.at_weight(point)
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn reads_load(&self) -> bool {
        false
    }
}
