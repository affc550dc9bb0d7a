//! A deployment's health state: the public [`State`] names and the live
//! per-deployment state that moves between them (cooldowns, ejection, slow
//! start), updated from many threads, never locked.
//!
//! Every field of [`DeploymentState`] is an atomic. Reports are applied field by field, so two
//! reports for one deployment at the same instant from two threads may
//! interleave (a count may be off by one in that instant); one thread's
//! sequence of reports is applied exactly as specified.
//!
//! The same per-deployment state carries what selection reads beside
//! health, each in its own file: picks in flight ([`in_flight`]), the
//! latency estimate ([`latency`]) and usage over the rolling minute
//! ([`window`]).

mod in_flight;
mod latency;
mod window;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use crossbeam_utils::CachePadded;

use crate::health::{
    FailureKind, HealthPolicy, MAX_RULE_FAILURES, Outcome, Report, RetryAfter, SlowStart,
};
pub(crate) use in_flight::STRIPES;
use in_flight::Stripe;
use window::MinuteWindow;

/// A deployment's health state at one moment.
///
/// ```
/// use modelfleet::health::State;
/// assert_eq!(State::Healthy.as_str(), "healthy");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum State {
    /// A candidate at full weight.
    Healthy,
    /// Cooling down after failures.
    Cooling,
    /// Ejected as an outlier.
    Ejected,
    /// Back, with its weight ramping up.
    SlowStart,
}

impl State {
    /// The state's name.
    ///
    /// See [`State`] for an example.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Cooling => "cooling",
            State::Ejected => "ejected",
            State::SlowStart => "slow_start",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `d` in nanoseconds, the unit every time in the state is kept in
/// (saturating at [`END`]).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(END)
}

/// The last instant of the time range, in nanoseconds: later times are
/// taken as it. A state that lasts until `END` (a cooldown or ejection
/// whose end saturated) lasts for the rest of the range: `END` itself is
/// inside it, so a request at the end of the range cannot outlast it.
pub(crate) const END: u64 = u64::MAX;

/// Whether a state lasting until `until` (0: none) still holds at `now`:
/// `now < until`, and always when `until` is [`END`].
#[inline]
pub(crate) fn lasts(until: u64, now: u64) -> bool {
    until > now || until == END
}

/// Adds one to `counter`, stopping at `u32::MAX`; returns the new count.
fn increment(counter: &AtomicU32) -> u32 {
    match counter.fetch_update(Relaxed, Relaxed, |c| c.checked_add(1)) {
        Ok(previous) => previous + 1,
        Err(max) => max,
    }
}

/// The live state of one deployment. Each lives on its own cache line (see
/// `select::Slot`), so threads updating different deployments do not contend.
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
    /// Counted failures since the last success (saturating).
    consecutive: AtomicU32,
    /// Server-side failures since the last success (for ejection;
    /// saturating).
    server_run: AtomicU32,
    ejections: AtomicU32,
    last_eject_end: AtomicU64,
    /// Times of the last counted failures, a ring.
    recent: [AtomicU64; MAX_RULE_FAILURES as usize],
    /// Counted failures ever, the next position in `recent`: 64 bits, so
    /// that it never wraps (a wrap would make the ring look empty).
    recent_next: AtomicU64,
    window: MinuteWindow,
    totals: window::Totals,
    remote: window::Remote,
    /// The "disturbed until" flag of the tier this deployment is in, in the
    /// selector version built last: whichever version a report is applied
    /// through, it raises this flag too, so the newest version's fast path
    /// hears of it (see `Selector::apply`).
    flag: ArcSwapOption<CachePadded<AtomicU64>>,
}

/// What a report changed, for the tier's fast-path flag and for the
/// replicas that share health ([`share`](crate::share)).
pub(crate) struct Changed {
    /// The deployment is out until this time (ns).
    pub(crate) out_until: u64,
    /// A cooldown that now lasts longer: its end (ns) and its cause.
    pub(crate) cooled: Option<(u64, FailureKind)>,
    /// An ejection that began: its end (ns).
    pub(crate) ejected: Option<u64>,
}

/// What the rules need to know about the deployment's model.
pub(crate) struct GroupView<'a> {
    /// Deployments of the model.
    pub(crate) len: usize,
    /// How many of them are ejected at `now` (ns).
    pub(crate) ejected_at: &'a dyn Fn(u64) -> usize,
}

impl DeploymentState {
    /// Marks the deployment as new at `now`: slow start counts from there.
    pub(crate) fn started_at(&self, now: u64) {
        self.back_at.store(now.saturating_add(1), Relaxed);
    }

    /// Makes `flag` the one reports raise (the "disturbed until" flag of
    /// its tier in a version being built, `select::flags::Disturbed`).
    /// Stores only when it changes.
    pub(crate) fn track(&self, flag: &Arc<CachePadded<AtomicU64>>) {
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
        if lasts(e, now) && e >= c {
            Some((State::Ejected, e))
        } else if lasts(c, now) {
            Some((State::Cooling, c))
        } else {
            None
        }
    }

    /// The slow-start weight factor at `now` (1 when not ramping).
    pub(crate) fn slow_factor(&self, now: u64, slow: &SlowStart) -> f64 {
        match self.back_at.load(Relaxed) {
            // Never left, not back yet, or back only at the end of the range.
            0 | END => 1.0,
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

    /// Applies one report. Returns what changed when the deployment left
    /// the candidates (cooldown or ejection).
    ///
    /// `cooldown` is the deployment's override in nanoseconds: when set,
    /// a cooldown a rule or the failure rate starts lasts it instead of
    /// the rule's duration (a `Retry-After` still sets the end), and 0
    /// starts none at all, `Retry-After` included. Ejection ignores it.
    pub(crate) fn report(
        &self,
        report: &Report,
        policy: &HealthPolicy,
        tau: Duration,
        group: &GroupView<'_>,
        cooldown: Option<u64>,
    ) -> Option<Changed> {
        let now = nanos(report.time());
        if report.token_count() > 0 {
            self.count_tokens(now, report.token_count());
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
            increment(&self.consecutive);
            self.window.add(now, |b| &b.failures, 1);
            let i = self.recent_next.fetch_add(1, Relaxed) % u64::from(MAX_RULE_FAILURES);
            self.recent[i as usize].store(now.saturating_add(1), Relaxed);
            // A rate limit says "not now", not "slow": cooldowns handle it.
            if let (Some(penalty), false) = (
                policy.failure_penalty,
                matches!(kind, FailureKind::RateLimited { .. }),
            ) {
                self.observe_latency(latency.unwrap_or_default().max(penalty), now, tau);
            }
        }
        let retry_after = kind.retry_after().map(nanos);

        // Cooldown: a deployment whose override is zero never cools, so
        // nothing below runs for it; failures are still counted above.
        let mut cool_end = None;
        let cools = cooldown != Some(0);
        if let (Some(ra), RetryAfter::Cools, true) = (retry_after, c.retry_after, cools) {
            cool_end = Some(now.saturating_add(ra));
        }
        if group.len >= c.min_group_size as usize && counted && cools {
            if let Some(rule) = c.rule(kind)
                && self.failures_within(now, rule.failures(), nanos(rule.window()))
            {
                let d = retry_after.unwrap_or(cooldown.unwrap_or(nanos(rule.cooldown())));
                cool_end = cool_end.max(Some(now.saturating_add(d)));
            }
            if let Some(rate) = &c.failure_rate {
                let done = self.window.rolling(now, |b| &b.completed);
                let failed = self.window.rolling(now, |b| &b.failures);
                if done >= u64::from(rate.min_requests) && failed as f64 > rate.ratio * done as f64
                {
                    let d = retry_after.unwrap_or(cooldown.unwrap_or(nanos(rate.cooldown)));
                    cool_end = cool_end.max(Some(now.saturating_add(d)));
                }
            }
        }
        let mut changed = None;
        if let Some(end) = cool_end
            && end > self.cool_until.fetch_max(end, Relaxed)
        {
            self.set_back(end);
            changed = Some(Changed {
                out_until: end,
                cooled: Some((end, kind)),
                ejected: None,
            });
        }

        // Ejection.
        if let (Some(ej), true) = (&policy.ejection, kind.is_server_side()) {
            let run = increment(&self.server_run);
            let ejected_now = self.is_ejected_at(now);
            if run >= ej.consecutive_failures && !ejected_now {
                let allowed = (group.len.saturating_mul(usize::from(ej.max_percent)) / 100).max(1);
                if (group.ejected_at)(now) < allowed {
                    let times = self.ejections_at(now, Some(ej.interval)).saturating_add(1);
                    let length = ej.base.saturating_mul(times).min(ej.max);
                    let end = now.saturating_add(nanos(length));
                    self.ejections.store(times, Relaxed);
                    self.last_eject_end.store(end, Relaxed);
                    self.eject_until.store(end, Relaxed);
                    self.server_run.store(0, Relaxed);
                    self.set_back(end.max(self.cool_until.load(Relaxed)));
                    changed = Some(Changed {
                        out_until: changed.as_ref().map_or(end, |c| c.out_until.max(end)),
                        cooled: changed.and_then(|c| c.cooled),
                        ejected: Some(end),
                    });
                }
            }
        }
        changed
    }

    /// Takes a cooldown or an ejection another replica saw, lasting until
    /// `until` (ns): the later end wins, so taking one twice, or an older
    /// one after a newer, changes nothing. Counts and ejection history stay
    /// this replica's own. Returns what changed, if the deployment is now
    /// out longer than it was.
    pub(crate) fn absorb(&self, until: u64, ejected: bool) -> Option<Changed> {
        let field = if ejected {
            &self.eject_until
        } else {
            &self.cool_until
        };
        if until <= field.fetch_max(until, Relaxed) {
            return None;
        }
        self.set_back(until);
        Some(Changed {
            out_until: until,
            cooled: None,
            ejected: None,
        })
    }

    /// The ends (ns) of the current cooldown and ejection, 0 for none.
    pub(crate) fn out_ends(&self) -> (u64, u64) {
        (
            self.cool_until.load(Relaxed),
            self.eject_until.load(Relaxed),
        )
    }

    pub(crate) fn is_ejected_at(&self, now: u64) -> bool {
        lasts(self.eject_until.load(Relaxed), now)
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
        if next < u64::from(n) {
            return false;
        }
        // The n-th most recent failure.
        let i = (next - u64::from(n)) % u64::from(MAX_RULE_FAILURES);
        match self.recent[i as usize].load(Relaxed) {
            0 => false,
            t => now.saturating_sub(t - 1) <= window,
        }
    }
}
