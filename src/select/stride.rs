//! The stride of a weighted rotation over a weight line of length `total`:
//! the integer nearest `total / φ` (golden ratio) that is coprime with
//! `total`. Turns `t · stride mod total`, for any `total` consecutive `t`,
//! visit every point of `[0, total)` once, scattered across the line (see
//! [`WeightedRoundRobin`](super::WeightedRoundRobin)).

use std::sync::atomic::{AtomicU64, Ordering};

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

/// The last stride computed, with its total: `total << 32 | stride` (0:
/// none). Finding a stride takes a few dozen divisions, and a filtered or
/// disturbed tier usually keeps one candidate total from pick to pick.
#[derive(Debug, Default)]
pub(crate) struct Cache(AtomicU64);

impl Cache {
    /// [`stride`] for `total`, from the cache when it holds `total` (totals
    /// of 2^32 and more are not cached).
    pub(crate) fn stride(&self, total: u64) -> u64 {
        // The empty cache reads as total 0: small totals never use it.
        if total <= 2 {
            return stride(total);
        }
        let cached = self.0.load(Ordering::Relaxed);
        if cached >> 32 == total {
            return cached & u64::from(u32::MAX);
        }
        let k = stride(total);
        if total <= u64::from(u32::MAX) {
            self.0.store(total << 32 | k, Ordering::Relaxed);
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_stride_is_the_stride_of_its_total() {
        let cache = Cache::default();
        for total in [0u64, 7, 7, 3_000, 0, 7, 1 << 40, 3_000, 1, 2, 0] {
            assert_eq!(cache.stride(total), stride(total), "{total}");
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
