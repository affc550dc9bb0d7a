//! Per-deployment selection state: updated from many threads, never locked.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The live state of one deployment. Each lives on its own cache line (see
/// `Slot`), so threads updating different deployments do not contend.
#[derive(Debug, Default)]
pub(crate) struct DeploymentState {
    in_flight: AtomicU32,
    /// Peak-EWMA latency estimate in nanoseconds as f64 bits; 0 = unmeasured.
    latency_bits: AtomicU64,
    /// When the estimate was last updated, in nanoseconds of the caller's clock.
    latency_at: AtomicU64,
}

impl DeploymentState {
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn acquire(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn release(&self) {
        // Saturating: a count can never go below zero, whatever the caller does.
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// The latency estimate, `None` before the first measurement.
    pub(crate) fn latency(&self) -> Option<Duration> {
        let ns = f64::from_bits(self.latency_bits.load(Ordering::Relaxed));
        (ns > 0.0).then(|| Duration::from_nanos(ns as u64))
    }

    /// Folds a latency sample into the peak-EWMA estimate (as in tower and
    /// Finagle): a sample above the estimate replaces it at once; below it,
    /// the estimate decays toward the sample with weight `exp(-Δt/τ)`.
    ///
    /// Two threads reporting at once may lose one sample; an estimate is a
    /// smoothed guess, and a lost sample does not make it wrong.
    pub(crate) fn observe_latency(&self, sample: Duration, now: Duration, tau: Duration) {
        let sample_ns = (sample.as_nanos() as f64).max(1.0);
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let prev = f64::from_bits(self.latency_bits.load(Ordering::Relaxed));
        let then = self.latency_at.swap(now_ns, Ordering::Relaxed);
        let next = if prev <= 0.0 || sample_ns > prev {
            sample_ns
        } else {
            let dt = now_ns.saturating_sub(then) as f64;
            let w = (-dt / (tau.as_nanos() as f64).max(1.0)).exp();
            prev * w + sample_ns * (1.0 - w)
        };
        self.latency_bits.store(next.to_bits(), Ordering::Relaxed);
    }
}
