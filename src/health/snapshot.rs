//! Health snapshots: a read-only view of one deployment's health.

use std::time::Duration;

use super::State;

/// A read-only view of one deployment's health, from
/// [`Selector::health`](crate::Selector::health), for dashboards and logs.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{FailureKind, Report, State};
/// use modelfleet::{Deployment, Registry, Request, Selector};
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let s = Selector::new(&reg, modelfleet::select::RoundRobin);
/// let pick = s.select(&Request::new("gpt-4"))?;
/// let key = pick.key().clone();
/// pick.complete(Report::failure(Duration::from_secs(1), FailureKind::Timeout));
/// let snapshot = &s.health(Duration::from_secs(1))[0];
/// assert_eq!(snapshot.key, key);
/// assert_eq!(snapshot.state, State::Healthy); // one timeout does not cool it
/// assert_eq!(snapshot.consecutive_failures, 1);
/// assert_eq!(snapshot.in_flight, 0);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HealthSnapshot {
    /// The deployment's key.
    pub key: crate::ModelKey,
    /// Its state at the snapshot's time.
    pub state: State,
    /// When it is a candidate again, if cooling or ejected (time since your
    /// origin); [`END`](super::END) when it is out for the rest of the
    /// [time range](super#time-range).
    #[cfg_attr(feature = "serde", serde(with = "opt_millis"))]
    pub available_at: Option<Duration>,
    /// How many times it has been ejected (decayed as described in [`Ejection`](super::Ejection)).
    pub ejections: u32,
    /// Counted failures (see [`Cooldowns::counts`](super::Cooldowns::counts)) since the last success.
    /// Ejection keeps its own run of server-side failures.
    pub consecutive_failures: u32,
    /// Picks in flight.
    pub in_flight: u32,
    /// The peak-EWMA latency estimate.
    #[cfg_attr(feature = "serde", serde(with = "opt_millis"))]
    pub latency: Option<Duration>,
    /// Picks in the rolling minute (counted for deployments with an `rpm`
    /// limit), other replicas' included when the fleet
    /// [shares](crate::share).
    pub requests_per_minute: u64,
    /// Reported tokens in the rolling minute, other replicas' included
    /// when the fleet shares.
    pub tokens_per_minute: u64,
    /// The deployment's cooldown override ([`Deployment::cooldown`](crate::Deployment::cooldown)):
    /// how long its cooldowns last; zero: it never cools; `None`: the
    /// policy's durations.
    #[cfg_attr(feature = "serde", serde(with = "opt_millis"))]
    pub cooldown: Option<Duration>,
}

#[cfg(feature = "serde")]
mod opt_millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }
}
