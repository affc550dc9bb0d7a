//! The peak-EWMA latency estimate of one deployment.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::DeploymentState;

impl DeploymentState {
    /// The latency estimate, `None` before the first measurement.
    pub(crate) fn latency(&self) -> Option<Duration> {
        let ns = f64::from_bits(self.latency_bits.load(Relaxed));
        (ns > 0.0).then(|| Duration::from_nanos(ns as u64))
    }

    /// Folds a latency sample into the peak-EWMA estimate (as in tower and
    /// Finagle): a sample above the estimate replaces it at once; below it,
    /// the estimate decays toward the sample with weight `exp(-Δt/τ)`.
    pub(crate) fn observe_latency(&self, sample: Duration, now: u64, tau: Duration) {
        let sample_ns = (sample.as_nanos() as f64).max(1.0);
        let prev = f64::from_bits(self.latency_bits.load(Relaxed));
        let then = self.latency_at.swap(now, Relaxed);
        let next = if prev <= 0.0 || sample_ns > prev {
            sample_ns
        } else {
            let dt = now.saturating_sub(then) as f64;
            let w = (-dt / (tau.as_nanos() as f64).max(1.0)).exp();
            prev * w + sample_ns * (1.0 - w)
        };
        self.latency_bits.store(next.to_bits(), Relaxed);
    }
}
