//! A counter-based random source that many threads may share without a lock.
//!
//! Each draw atomically advances a counter by the SplitMix64 increment and
//! mixes the new value with the SplitMix64 finalizer (Steele, Lea and Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014). Same seed
//! and same order of draws give the same numbers; no state but one `u64`.

use std::sync::atomic::{AtomicU64, Ordering};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finalizer: a bijective mix of 64 bits.
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug)]
pub(crate) struct Rng(AtomicU64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(AtomicU64::new(mix(seed)))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        mix(self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA))
    }
}

/// A uniform number in `0..n` from 64 random bits (Lemire's multiply-shift;
/// the bias is at most n / 2^64). `n` must be at least 1.
pub(crate) fn below(random: u64, n: u64) -> u64 {
    ((u128::from(random) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let (a, b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            for n in [1, 2, 3, 1000, u64::MAX] {
                assert!(below(r, n) < n);
            }
        }
    }
}
