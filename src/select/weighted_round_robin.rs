//! `weighted_round_robin`: exact weighted shares in every window, interleaved.

use std::sync::atomic::{AtomicU64, Ordering};

use super::strategy::{Candidate, Candidates, Context, Strategy};

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
/// nearest `W/φ` (golden ratio) that is coprime with `W`. Because `k` is
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
/// candidates' weights (see the [cost model](super#cost)).
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
        let stride = if candidates.is_complete() {
            candidates.tier.stride
        } else {
            subset_stride(&candidates.tier.subset_stride, total)
        };
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
        "weighted_round_robin"
    }

    fn reads_load(&self) -> bool {
        false
    }
}

/// [`stride`] for `total`, through a one-entry cache (`total << 32 |
/// stride`, both below 2^32; larger totals are not cached).
fn subset_stride(cache: &AtomicU64, total: u64) -> u64 {
    let cached = cache.load(Ordering::Relaxed);
    if cached >> 32 == total {
        return cached & u64::from(u32::MAX);
    }
    let k = stride(total);
    if total <= u64::from(u32::MAX) {
        cache.store(total << 32 | k, Ordering::Relaxed);
    }
    k
}

/// The integer nearest `total/φ` that is coprime with `total` (1 for
/// totals up to 2).
pub(crate) fn stride(total: u64) -> u64 {
    if total <= 2 {
        return 1;
    }
    let k0 = ((total as f64) * 0.618_033_988_749_894_8).round() as u64;
    for d in 0..total {
        for k in [k0.saturating_add(d), k0.saturating_sub(d)] {
            if k > 0 && k < total && gcd(k, total) == 1 {
                return k;
            }
        }
    }
    1
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_stride_is_the_stride_of_its_total() {
        let cache = AtomicU64::new(0);
        for total in [7u64, 7, 3_000, 7, 1 << 40, 3_000, 1, 2] {
            assert_eq!(subset_stride(&cache, total), stride(total), "{total}");
        }
    }

    #[test]
    fn stride_is_coprime_and_near_golden() {
        for total in 1..2000u64 {
            let k = stride(total);
            assert_eq!(gcd(k, total), 1, "{total}");
            if total > 100 {
                let ratio = k as f64 / total as f64;
                assert!((ratio - 0.618).abs() < 0.05, "{total}: {k}");
            }
        }
    }
}
