//! Picks in flight on one deployment, counted on stripes so that threads
//! with their own handles do not write the same cache line.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::DeploymentState;

/// How many stripes an in-flight count is split over. Handles `h` and
/// `h + 1` always count on different stripes; more threads than stripes
/// share them (correct, just slower).
pub(crate) const STRIPES: usize = 4;

/// One stripe of an in-flight count, alone on a 64-byte cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(super) struct Stripe(AtomicU32);

impl std::ops::Deref for Stripe {
    type Target = AtomicU32;
    fn deref(&self) -> &AtomicU32 {
        &self.0
    }
}

impl DeploymentState {
    /// Picks in flight as a load-reading strategy sees them: with
    /// `striped` false every handle counts on stripe 0, so that stripe
    /// alone is the count (one load instead of four).
    pub(crate) fn load(&self, striped: bool) -> u32 {
        if striped {
            self.in_flight()
        } else {
            self.in_flight.load(Relaxed)
        }
    }

    /// Picks in flight: the sum of the stripes.
    pub(crate) fn in_flight(&self) -> u32 {
        self.stripes
            .iter()
            .fold(self.in_flight.load(Relaxed), |n, s| {
                n.saturating_add(s.load(Relaxed))
            })
    }

    /// The counter of `stripe` (taken modulo [`STRIPES`]).
    fn stripe(&self, stripe: usize) -> &AtomicU32 {
        match stripe % STRIPES {
            0 => &self.in_flight,
            s => &self.stripes[s - 1],
        }
    }

    /// Counts one pick on `stripe` (taken modulo [`STRIPES`]).
    pub(crate) fn acquire(&self, stripe: usize) {
        self.stripe(stripe).fetch_add(1, Relaxed);
    }

    /// Releases one pick counted on `stripe`: every release pairs with an
    /// acquire on the same stripe, so a stripe never goes below zero.
    pub(crate) fn release(&self, stripe: usize) {
        let old = self.stripe(stripe).fetch_sub(1, Relaxed);
        debug_assert!(old > 0, "in-flight release without an acquire");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_the_sum_of_the_stripes() {
        let s = DeploymentState::default();
        assert_eq!(s.in_flight(), 0);
        for stripe in 0..2 * STRIPES {
            s.acquire(stripe);
        }
        assert_eq!(s.in_flight(), 2 * STRIPES as u32);
        s.release(1);
        s.release(1 + STRIPES);
        assert_eq!(s.in_flight(), 2 * STRIPES as u32 - 2);
        for stripe in (0..2 * STRIPES).filter(|&t| t % STRIPES != 1) {
            s.release(stripe);
        }
        assert_eq!(s.in_flight(), 0);
    }
}
