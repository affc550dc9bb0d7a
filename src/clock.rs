//! [`Clock`]: where library times come from, when the caller wants a
//! component to read the time itself.
//!
//! Every time modelfleet takes is a [`Duration`] since an origin the caller
//! chooses ("library time"): requests carry one ([`Request::at`]), reports
//! carry one ([`Report::new`]), health answers in it
//! ([`Error::Unavailable::retry_at`](crate::Error::Unavailable)). The core
//! never reads a clock by itself. A [`Fleet`](crate::Fleet) given a clock
//! reads that clock, and only that one, for requests that carry no time.
//!
//! - [`MonotonicClock`] is the clock of a running service: library time is
//!   the time since the clock was made, measured with [`Instant`], and it
//!   converts library times to [`SystemTime`] (for `Retry-After` and
//!   `Date` headers, logs) and to [`Instant`] (for timers).
//! - [`ManualClock`] is the clock of tests: time moves only when told to.
//!
//! ```
//! use std::time::Duration;
//! use modelfleet::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! assert_eq!(clock.now(), Duration::ZERO);
//! clock.advance(Duration::from_secs(2));
//! assert_eq!(clock.now(), Duration::from_secs(2));
//! ```
//!
//! [`Request::at`]: crate::Request::at
//! [`Report::new`]: crate::health::Report::new

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::health::END;

/// A source of library time, and its link to the wall clock.
///
/// Implementations must be monotonic: [`now`](Self::now) never returns
/// less than it returned before. Health state assumes time does not go
/// backwards within one selector.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use modelfleet::{Clock, ManualClock};
///
/// let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let clock = ManualClock::starting_at(origin);
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.system_time(clock.now()), origin + Duration::from_secs(30));
/// assert_eq!(clock.at_system_time(origin + Duration::from_secs(90)), Duration::from_secs(90));
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current library time: the time since this clock's origin.
    fn now(&self) -> Duration;

    /// The wall-clock time of library time `at`.
    fn system_time(&self, at: Duration) -> SystemTime;

    /// The library time of wall-clock time `t`, read against the current
    /// time: `now() + (t − system_time(now()))`. Saturates at zero for times
    /// before the origin and at [`END`] for times beyond the range, so any
    /// `SystemTime` (a date from an HTTP header, say) gives a defined result.
    ///
    /// See [`Clock`] for an example.
    fn at_system_time(&self, t: SystemTime) -> Duration {
        let now = self.now();
        let wall = self.system_time(now);
        match t.duration_since(wall) {
            Ok(ahead) => now.checked_add(ahead).map_or(END, |at| at.min(END)),
            Err(behind) => now.saturating_sub(behind.duration()),
        }
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }

    fn system_time(&self, at: Duration) -> SystemTime {
        (**self).system_time(at)
    }

    fn at_system_time(&self, t: SystemTime) -> Duration {
        (**self).at_system_time(t)
    }
}

/// The clock of a running service: library time is the time elapsed since
/// the clock was made, read from [`Instant`] (monotonic), and the wall-clock
/// time read at that moment anchors conversions to [`SystemTime`].
///
/// Making one reads both system clocks once; [`now`](Clock::now) reads
/// `Instant::now()`. Clones share the origin. Cost: O(1), no allocation.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock::new();
/// let at = clock.now();
/// assert!(clock.now() >= at);
/// assert_eq!(clock.since(clock.instant(at)), at);
/// let wall = clock.system_time(at + Duration::from_secs(2)); // for a Retry-After date
/// assert!(wall > clock.system_time(at));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
    wall: SystemTime,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    ///
    /// See [`MonotonicClock`] for an example.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The [`Instant`] of library time `at` (for timers such as
    /// `tokio::time::sleep_until`). Saturates at the origin's range where
    /// the platform's `Instant` cannot go further.
    ///
    /// See [`MonotonicClock`] for an example.
    pub fn instant(&self, at: Duration) -> Instant {
        self.origin
            .checked_add(at)
            .or_else(|| self.origin.checked_add(ONE_CENTURY))
            .unwrap_or(self.origin)
    }

    /// The library time of `instant`: zero for instants before the origin.
    ///
    /// See [`MonotonicClock`] for an example.
    pub fn since(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.origin)
    }
}

/// How far [`MonotonicClock::instant`] goes when the platform's `Instant`
/// cannot represent a time: far enough to mean "never" for a timer.
const ONE_CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn system_time(&self, at: Duration) -> SystemTime {
        wall_at(self.wall, at)
    }
}

/// A clock that moves only when told to, for tests and simulations; shared
/// through an [`Arc`] (it is `Sync`: one thread may advance it while others
/// read it).
///
/// Library time starts at zero; the wall-clock time at zero is the
/// [`UNIX_EPOCH`](SystemTime::UNIX_EPOCH) unless given
/// ([`starting_at`](Self::starting_at)). Times saturate at
/// [`END`](crate::health::END).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use modelfleet::{Clock, ManualClock};
///
/// let clock = Arc::new(ManualClock::new());
/// let reader: Arc<dyn Clock> = clock.clone();
/// clock.set(Duration::from_millis(1_500));
/// assert_eq!(reader.now(), Duration::from_millis(1_500));
/// clock.set(Duration::from_millis(1_000)); // never backwards
/// assert_eq!(reader.now(), Duration::from_millis(1_500));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicU64,
    wall: SystemTime,
}

impl ManualClock {
    /// A clock at zero whose zero is the Unix epoch.
    ///
    /// See [`ManualClock`] for an example.
    #[must_use]
    pub fn new() -> Self {
        Self::starting_at(SystemTime::UNIX_EPOCH)
    }

    /// A clock at zero whose zero is the wall-clock time `wall`.
    ///
    /// See [`Clock`] for an example.
    #[must_use]
    pub fn starting_at(wall: SystemTime) -> Self {
        Self {
            nanos: AtomicU64::new(0),
            wall,
        }
    }

    /// Moves the clock to `at`, or leaves it where it is if it is already
    /// later: the clock never goes backwards.
    ///
    /// See [`ManualClock`] for an example.
    pub fn set(&self, at: Duration) {
        self.nanos.fetch_max(to_nanos(at), Ordering::AcqRel);
    }

    /// Moves the clock forward by `by`, saturating at
    /// [`END`](crate::health::END).
    ///
    /// See [`Clock`] for an example.
    pub fn advance(&self, by: Duration) {
        let by = to_nanos(by);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    fn system_time(&self, at: Duration) -> SystemTime {
        wall_at(self.wall, at)
    }
}

fn to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `wall + at`, or the latest representable time it would pass.
fn wall_at(wall: SystemTime, at: Duration) -> SystemTime {
    wall.checked_add(at)
        .or_else(|| wall.checked_add(ONE_CENTURY))
        .unwrap_or(wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_system_time_saturates_both_ways() {
        let clock = ManualClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        clock.set(Duration::from_secs(10));
        assert_eq!(clock.at_system_time(SystemTime::UNIX_EPOCH), Duration::ZERO);
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert_eq!(clock.at_system_time(far), END);
    }

    #[test]
    fn advance_saturates() {
        let clock = ManualClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Duration::from_nanos(u64::MAX));
    }
}
