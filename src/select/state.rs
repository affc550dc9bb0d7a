//! Per-deployment selection state: updated from many threads, never locked.
//!
//! Every field is an atomic. Reports are applied field by field, so two
//! reports for one deployment at the same instant from two threads may
//! interleave (a count may be off by one in that instant); one thread's
//! sequence of reports is applied exactly as specified.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use crossbeam_utils::CachePadded;

/// One stripe of an in-flight count, alone on a 64-byte cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe(AtomicU32);

impl std::ops::Deref for Stripe {
    type Target = AtomicU32;
    fn deref(&self) -> &AtomicU32 {
        &self.0
    }
}

use crate::health::{
    FailureKind, HealthPolicy, MAX_RULE_FAILURES, Outcome, Report, RetryAfter, SlowStart, State,
};

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

const MINUTE: u64 = 60_000_000_000;

/// How many stripes an in-flight count is split over. Handles `h` and
/// `h + 1` always count on different stripes; more threads than stripes
/// share them (correct, just slower).
pub(crate) const STRIPES: usize = 4;

/// The live state of one deployment. Each lives on its own cache line (see
/// `Slot`), so threads updating different deployments do not contend.
#[derive(Debug, Default)]
pub(crate) struct DeploymentState {
    /// Picks in flight on stripe 0: a handle counts on the stripe of its
    /// number, so two threads with their own handles picking the same
    /// deployment write different lines. The count is the sum of the
    /// stripes. Stripe 0 lives here, beside the health and latency a
    /// load-reading strategy also reads (such strategies count every
    /// handle on stripe 0).
    in_flight: AtomicU32,
    /// Stripes 1 to `STRIPES - 1`, each on its own cache line; boxed, so
    /// that scans over many deployments' state do not stride over them.
    stripes: Box<[Stripe; STRIPES - 1]>,
    /// Peak-EWMA latency estimate in nanoseconds as f64 bits; 0 = unmeasured.
    latency_bits: AtomicU64,
    /// When the estimate was last updated, in nanoseconds of the caller's clock.
    latency_at: AtomicU64,
    /// End of the current cooldown (ns); 0 = none.
    cool_until: AtomicU64,
    /// End of the current ejection (ns); 0 = none.
    eject_until: AtomicU64,
    /// 1 + the time it became (or becomes) a candidate again: the origin of
    /// slow start. 0 = never left.
    back_at: AtomicU64,
    /// Counted failures since the last success.
    consecutive: AtomicU32,
    /// Server-side failures since the last success (for ejection).
    server_run: AtomicU32,
    ejections: AtomicU32,
    last_eject_end: AtomicU64,
    /// Times of the last counted failures, a ring.
    recent: [AtomicU64; MAX_RULE_FAILURES as usize],
    recent_next: AtomicU32,
    window: MinuteWindow,
    /// The "disturbed until" flag of the tier this deployment is in, in the
    /// selector version built last: whichever version a report is applied
    /// through, it raises this flag too, so the newest version's fast path
    /// hears of it (see `Selector::apply`).
    flag: ArcSwapOption<CachePadded<AtomicU64>>,
}

/// Until when (ns) some deployment of one (model, priority) may be cooling,
/// ejected or ramping up; see `select::Tier`.
pub(crate) type Disturbed = Arc<CachePadded<AtomicU64>>;

/// Counts the reports that put a deployment out, in every selector version
/// that may share a deployment's state (a selector and every version
/// rebuilt from it, siblings included); advanced with release ordering
/// after the deployment's state is written. A tier's record of which
/// members a pick must test (`Suspects`) holds while this has not moved.
pub(crate) type Epoch = Arc<CachePadded<AtomicU64>>;

/// What a report changed, for the tier's fast-path flag.
pub(crate) struct Changed {
    /// The deployment is out until this time (ns).
    pub(crate) out_until: u64,
}

/// What the rules need to know about the deployment's model.
pub(crate) struct GroupView<'a> {
    /// Deployments of the model.
    pub(crate) len: usize,
    /// How many of them are ejected at `now` (ns).
    pub(crate) ejected_at: &'a dyn Fn(u64) -> usize,
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

    /// Marks the deployment as new at `now`: slow start counts from there.
    pub(crate) fn started_at(&self, now: u64) {
        self.back_at.store(now.saturating_add(1), Relaxed);
    }

    /// Makes `flag` the one reports raise (a version being built, for a
    /// deployment in its tier). Stores only when it changes.
    pub(crate) fn track(&self, flag: &Disturbed) {
        let current = self.flag.load();
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, flag)) {
            self.flag.store(Some(Arc::clone(flag)));
        }
    }

    /// Raises the tracked flag to `until`.
    pub(crate) fn raise_tracked(&self, until: u64) {
        if let Some(flag) = &*self.flag.load() {
            flag.fetch_max(until, Relaxed);
        }
    }

    /// Until when (ns) the deployment may be cooling, ejected or ramping
    /// up, with a slow-start window of `ramp` ns.
    pub(crate) fn busy_until(&self, ramp: u64) -> u64 {
        let out = self
            .cool_until
            .load(Relaxed)
            .max(self.eject_until.load(Relaxed));
        match self.back_at.load(Relaxed) {
            0 => out,
            b => out.max((b - 1).saturating_add(ramp)),
        }
    }

    /// Cooling or ejected at `now`: the state and when it ends.
    pub(crate) fn out_at(&self, now: u64) -> Option<(State, u64)> {
        let c = self.cool_until.load(Relaxed);
        let e = self.eject_until.load(Relaxed);
        if e > now && e >= c {
            Some((State::Ejected, e))
        } else if c > now {
            Some((State::Cooling, c))
        } else {
            None
        }
    }

    /// The slow-start weight factor at `now` (1 when not ramping).
    pub(crate) fn slow_factor(&self, now: u64, slow: &SlowStart) -> f64 {
        match self.back_at.load(Relaxed) {
            0 => 1.0,
            b if now < b - 1 => 1.0,
            b => slow.factor(Duration::from_nanos(now - (b - 1))),
        }
    }

    pub(crate) fn state_at(&self, now: u64, slow: Option<&SlowStart>) -> State {
        match self.out_at(now) {
            Some((s, _)) => s,
            None if slow.is_some_and(|s| self.slow_factor(now, s) < 1.0) => State::SlowStart,
            None => State::Healthy,
        }
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Relaxed)
    }

    pub(crate) fn ejections_at(&self, now: u64, interval: Option<Duration>) -> u32 {
        let n = self.ejections.load(Relaxed);
        let end = self.last_eject_end.load(Relaxed);
        match interval {
            Some(i) if !i.is_zero() && now > end => {
                let k = (now - end) / nanos(i).max(1);
                n.saturating_sub(u32::try_from(k).unwrap_or(u32::MAX))
            }
            _ => n,
        }
    }

    /// Picks in the rolling minute at `now`.
    pub(crate) fn picks_per_minute(&self, now: u64) -> u64 {
        self.window.rolling(now, |b| &b.picks)
    }

    /// Reported tokens in the rolling minute at `now`.
    pub(crate) fn tokens_per_minute(&self, now: u64) -> u64 {
        self.window.rolling(now, |b| &b.tokens)
    }

    pub(crate) fn count_pick(&self, now: u64) {
        self.window.add(now, |b| &b.picks, 1);
    }

    /// Applies one report. Returns what changed when the deployment left
    /// the candidates (cooldown or ejection).
    pub(crate) fn report(
        &self,
        report: &Report,
        policy: &HealthPolicy,
        tau: Duration,
        group: &GroupView<'_>,
    ) -> Option<Changed> {
        let now = nanos(report.time());
        if report.token_count() > 0 {
            self.window.add(now, |b| &b.tokens, report.token_count());
        }
        self.window.add(now, |b| &b.completed, 1);
        let (kind, latency) = match report.outcome() {
            Outcome::Success { latency } => {
                self.consecutive.store(0, Relaxed);
                self.server_run.store(0, Relaxed);
                self.observe_latency(latency, now, tau);
                return None;
            }
            Outcome::Failure { kind, latency } => (kind, latency),
        };
        let c = &policy.cooldowns;
        let counted = c.counts(kind);
        if counted {
            self.consecutive.fetch_add(1, Relaxed);
            self.window.add(now, |b| &b.failures, 1);
            let i = self.recent_next.fetch_add(1, Relaxed) % MAX_RULE_FAILURES;
            self.recent[i as usize].store(now.saturating_add(1), Relaxed);
            // A rate limit says "not now", not "slow": cooldowns handle it.
            if let (Some(penalty), false) = (
                policy.failure_penalty,
                matches!(kind, FailureKind::RateLimited { .. }),
            ) {
                self.observe_latency(latency.unwrap_or_default().max(penalty), now, tau);
            }
        }
        let retry_after = match kind {
            FailureKind::RateLimited { retry_after } => retry_after.map(nanos),
            _ => None,
        };

        // Cooldown.
        let mut cool_end = None;
        if let (Some(ra), RetryAfter::Cools) = (retry_after, c.retry_after) {
            cool_end = Some(now.saturating_add(ra));
        }
        if group.len >= c.min_group_size as usize && counted {
            if let Some(rule) = c.rule(kind)
                && self.failures_within(now, rule.failures(), nanos(rule.window()))
            {
                let d = retry_after.unwrap_or(nanos(rule.cooldown()));
                cool_end = cool_end.max(Some(now.saturating_add(d)));
            }
            if let Some(rate) = &c.failure_rate {
                let done = self.window.rolling(now, |b| &b.completed);
                let failed = self.window.rolling(now, |b| &b.failures);
                if done >= u64::from(rate.min_requests) && failed as f64 > rate.ratio * done as f64
                {
                    let d = retry_after.unwrap_or(nanos(rate.cooldown));
                    cool_end = cool_end.max(Some(now.saturating_add(d)));
                }
            }
        }
        let mut changed = None;
        if let Some(end) = cool_end
            && end > self.cool_until.fetch_max(end, Relaxed)
        {
            self.set_back(end);
            changed = Some(Changed { out_until: end });
        }

        // Ejection.
        if let (Some(ej), true) = (&policy.ejection, kind.is_server_side()) {
            let run = self.server_run.fetch_add(1, Relaxed) + 1;
            let ejected_now = self.eject_until.load(Relaxed) > now;
            if run >= ej.consecutive_failures && !ejected_now {
                let allowed = (group.len * usize::from(ej.max_percent) / 100).max(1);
                if (group.ejected_at)(now) < allowed {
                    let times = self.ejections_at(now, Some(ej.interval)) + 1;
                    let length = ej.base.saturating_mul(times).min(ej.max);
                    let end = now.saturating_add(nanos(length));
                    self.ejections.store(times, Relaxed);
                    self.last_eject_end.store(end, Relaxed);
                    self.eject_until.store(end, Relaxed);
                    self.server_run.store(0, Relaxed);
                    self.set_back(end.max(self.cool_until.load(Relaxed)));
                    changed = Some(Changed {
                        out_until: changed.map_or(end, |c| c.out_until.max(end)),
                    });
                }
            }
        }
        changed
    }

    pub(crate) fn is_ejected_at(&self, now: u64) -> bool {
        self.eject_until.load(Relaxed) > now
    }

    fn set_back(&self, end: u64) {
        self.back_at.fetch_max(end.saturating_add(1), Relaxed);
    }

    /// Whether the last `n` counted failures all fall within `window` of `now`.
    fn failures_within(&self, now: u64, n: u32, window: u64) -> bool {
        if n == 1 {
            return true;
        }
        let next = self.recent_next.load(Relaxed);
        if next < n {
            return false;
        }
        // The n-th most recent failure.
        let i = (next - n) % MAX_RULE_FAILURES;
        match self.recent[i as usize].load(Relaxed) {
            0 => false,
            t => now.saturating_sub(t - 1) <= window,
        }
    }
}

/// Counters over the current and the previous minute of the caller's clock.
#[derive(Debug, Default)]
struct MinuteWindow {
    /// The minute bucket `buckets[minute % 2]` holds.
    minute: AtomicU64,
    buckets: [Bucket; 2],
}

#[derive(Debug, Default)]
struct Bucket {
    picks: AtomicU64,
    completed: AtomicU64,
    failures: AtomicU64,
    tokens: AtomicU64,
}

impl Bucket {
    fn clear(&self) {
        for c in [&self.picks, &self.completed, &self.failures, &self.tokens] {
            c.store(0, Relaxed);
        }
    }
}

impl MinuteWindow {
    fn add(&self, now: u64, field: impl Fn(&Bucket) -> &AtomicU64, n: u64) {
        let m = now / MINUTE + 1; // +1: 0 means "never written"
        let stored = self.minute.load(Relaxed);
        if stored == m {
            field(&self.buckets[(m % 2) as usize]).fetch_add(n, Relaxed);
        } else if stored < m {
            if self
                .minute
                .compare_exchange(stored, m, Relaxed, Relaxed)
                .is_ok()
            {
                self.buckets[(m % 2) as usize].clear();
                if stored + 1 < m {
                    self.buckets[((m + 1) % 2) as usize].clear();
                }
            }
            field(&self.buckets[(m % 2) as usize]).fetch_add(n, Relaxed);
        } else if stored == m + 1 {
            // A late report for the previous minute.
            field(&self.buckets[(m % 2) as usize]).fetch_add(n, Relaxed);
        }
    }

    /// `current + previous × (share of the previous minute still within the last 60 s)`.
    fn rolling(&self, now: u64, field: impl Fn(&Bucket) -> &AtomicU64) -> u64 {
        let m = now / MINUTE + 1;
        let stored = self.minute.load(Relaxed);
        let get = |minute: u64| field(&self.buckets[(minute % 2) as usize]).load(Relaxed);
        let (cur, prev) = if stored == m {
            (get(m), get(m - 1))
        } else if stored + 1 == m {
            (0, get(stored))
        } else {
            (0, 0)
        };
        let elapsed = now % MINUTE;
        let carried = (u128::from(prev) * u128::from(MINUTE - elapsed) / u128::from(MINUTE)) as u64;
        cur + carried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_minute_carries_the_previous_minute() {
        let w = MinuteWindow::default();
        let s = |x: u64| x * 1_000_000_000;
        w.add(s(10), |b| &b.picks, 60);
        assert_eq!(w.rolling(s(10), |b| &b.picks), 60);
        // 30 s into the next minute half of the previous one still counts.
        assert_eq!(w.rolling(s(90), |b| &b.picks), 30);
        w.add(s(90), |b| &b.picks, 5);
        assert_eq!(w.rolling(s(90), |b| &b.picks), 35);
        // Two minutes later nothing is left.
        assert_eq!(w.rolling(s(200), |b| &b.picks), 0);
        w.add(s(200), |b| &b.picks, 1);
        assert_eq!(w.rolling(s(200), |b| &b.picks), 1);
    }

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
