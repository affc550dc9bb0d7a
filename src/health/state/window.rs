//! Usage over the rolling minute: picks, completed and failed requests and
//! reported tokens, in two one-minute buckets. Counts saturate at
//! `u64::MAX`: a wrapped count would let a huge report reopen a limit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::DeploymentState;

const MINUTE: u64 = 60_000_000_000;

impl DeploymentState {
    /// Picks in the rolling minute at `now`, other replicas' included
    /// (see [`share`](crate::share)).
    pub(crate) fn picks_per_minute(&self, now: u64) -> u64 {
        let local = self.window.rolling(now, |b| &b.picks);
        local.saturating_add(self.remote.at(now).0)
    }

    /// Reported tokens in the rolling minute at `now`, other replicas'
    /// included.
    pub(crate) fn tokens_per_minute(&self, now: u64) -> u64 {
        let local = self.window.rolling(now, |b| &b.tokens);
        local.saturating_add(self.remote.at(now).1)
    }

    pub(crate) fn count_pick(&self, now: u64) {
        self.window.add(now, |b| &b.picks, 1);
        saturating_add(&self.totals.picks, 1);
    }

    pub(crate) fn count_tokens(&self, now: u64, n: u64) {
        self.window.add(now, |b| &b.tokens, n);
        saturating_add(&self.totals.tokens, n);
    }

    /// This replica's picks (of an rpm-limited deployment) and reported
    /// tokens ever, saturating: what [`share`](crate::share) exports as
    /// usage, by difference.
    pub(crate) fn usage_totals(&self) -> (u64, u64) {
        (
            self.totals.picks.load(Relaxed),
            self.totals.tokens.load(Relaxed),
        )
    }

    /// Sets the other replicas' usage over the rolling minute, as of `at`.
    pub(crate) fn set_remote_usage(&self, at: u64, requests: u64, tokens: u64) {
        self.remote.set(at, requests, tokens);
    }
}

/// Counts that only grow.
#[derive(Debug, Default)]
pub(super) struct Totals {
    picks: AtomicU64,
    tokens: AtomicU64,
}

/// The other replicas' usage over the rolling minute, as last merged: it
/// counts for a minute after it was set, then lapses, so usage heard from
/// replicas that went quiet stops holding back local picks.
#[derive(Debug, Default)]
pub(super) struct Remote {
    /// 1 + when it was set (ns); 0: never.
    at: AtomicU64,
    requests: AtomicU64,
    tokens: AtomicU64,
}

impl Remote {
    fn set(&self, at: u64, requests: u64, tokens: u64) {
        self.requests.store(requests, Relaxed);
        self.tokens.store(tokens, Relaxed);
        self.at.store(at.saturating_add(1), Relaxed);
    }

    #[inline]
    fn at(&self, now: u64) -> (u64, u64) {
        match self.at.load(Relaxed) {
            0 => (0, 0),
            set if now.saturating_sub(set - 1) >= MINUTE => (0, 0),
            _ => (self.requests.load(Relaxed), self.tokens.load(Relaxed)),
        }
    }
}

/// Counters over the current and the previous minute of the caller's clock.
#[derive(Debug, Default)]
pub(super) struct MinuteWindow {
    /// The minute bucket `buckets[minute % 2]` holds.
    minute: AtomicU64,
    buckets: [Bucket; 2],
}

#[derive(Debug, Default)]
pub(super) struct Bucket {
    pub(super) picks: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) failures: AtomicU64,
    pub(super) tokens: AtomicU64,
}

impl Bucket {
    fn clear(&self) {
        for c in [&self.picks, &self.completed, &self.failures, &self.tokens] {
            c.store(0, Relaxed);
        }
    }
}

impl MinuteWindow {
    pub(super) fn add(&self, now: u64, field: impl Fn(&Bucket) -> &AtomicU64, n: u64) {
        let m = now / MINUTE + 1; // +1: 0 means "never written"
        let stored = self.minute.load(Relaxed);
        if stored == m {
            saturating_add(field(&self.buckets[(m % 2) as usize]), n);
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
            saturating_add(field(&self.buckets[(m % 2) as usize]), n);
        } else if stored == m + 1 {
            // A late report for the previous minute.
            saturating_add(field(&self.buckets[(m % 2) as usize]), n);
        }
    }

    /// `current + previous × (share of the previous minute still within the last 60 s)`.
    pub(super) fn rolling(&self, now: u64, field: impl Fn(&Bucket) -> &AtomicU64) -> u64 {
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
        cur.saturating_add(carried)
    }
}

/// Adds `n` to `counter`, stopping at `u64::MAX`. Lock-free: a
/// compare-and-swap loop, which contention on one counter can only retry.
fn saturating_add(counter: &AtomicU64, n: u64) {
    // The closure always returns `Some`, so the update cannot fail.
    let _ = counter.fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_add(n)));
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
    fn counts_saturate_in_a_bucket_and_across_the_two() {
        let w = MinuteWindow::default();
        let s = |x: u64| x * 1_000_000_000;
        w.add(s(30), |b| &b.tokens, u64::MAX - 1);
        w.add(s(31), |b| &b.tokens, 5);
        assert_eq!(w.rolling(s(31), |b| &b.tokens), u64::MAX);
        w.add(s(70), |b| &b.tokens, u64::MAX);
        assert_eq!(w.rolling(s(70), |b| &b.tokens), u64::MAX);
        // At the last minute of the range.
        w.add(u64::MAX, |b| &b.tokens, u64::MAX);
        assert_eq!(w.rolling(u64::MAX, |b| &b.tokens), u64::MAX);
    }
}
