//! Health: outcome reports, cooldowns, outlier ejection, limits and slow start.
//!
//! The selector learns about deployments only from what the caller reports:
//! every [`Pick`](crate::Pick) is completed with a [`Report`] (success with a
//! latency, or a [`FailureKind`]), carrying the time it happened. Nothing
//! here reads a clock.
//!
//! # The life of one deployment
//!
//! ```text
//!            failures meet a cooldown rule            time reaches the end
//! healthy ───────────────────────────────▶ cooling ──────────────────────┐
//!    ▲       consecutive server failures                                  ▼
//!    │  ─────────────────────────────────▶ ejected ─────────────▶ slow start ──▶ healthy
//!    └──────────────────────────────────────────────────────────── (window over)
//! ```
//!
//! - **Cooling** ([`Cooldowns`]): a failure of kind K is counted; when the
//!   rule for K sees `failures` counted failures within `window` (this one
//!   included), the deployment cools for `cooldown`. A rate-limited or
//!   overloaded report with `Retry-After` cools it until then whatever the
//!   count ([`RetryAfter::Cools`], the default), and `Retry-After` always
//!   sets the end of a cooldown it triggers. A deployment cooling until `t` is not a
//!   candidate at any time `< t` and is one again at `t` exactly.
//! - **Ejected** ([`Ejection`], Envoy's outlier detection):
//!   `consecutive_failures` server-side failures in a row (server error,
//!   overload, timeout, connection error; a success resets the run) eject the
//!   deployment for `base × n`, capped at `max`, where `n` counts its
//!   ejections; `n` drops by one for every `interval` it stays un-ejected.
//!   At most `max_percent` of a model's deployments are ejected at once (at
//!   least one may always be).
//! - **Slow start** ([`SlowStart`], Envoy's formula): for `window` after it
//!   returns (or after [`SelectorBuilder::started_at`](crate::SelectorBuilder::started_at)
//!   for new deployments), its weight is
//!   `weight × max(min_percent/100, (t/window)^(1/aggression))` in the
//!   weighted strategies.
//! - **Limits** ([`Limits`](crate::Limits)) are filters: `max_in_flight` is
//!   hard; `rpm` counts picks and `tpm` counts reported tokens over a
//!   rolling minute (two one-minute buckets, the older one weighted by the
//!   share of it still inside the last 60 s). A deployment is skipped when
//!   its picks reach `rpm`, or when its tokens plus the request's
//!   [estimate](crate::Request::tokens) (at least 1) exceed `tpm`. Counts
//!   saturate at `u64::MAX` instead of wrapping.
//!
//! # Cooldown override
//!
//! A deployment may carry its own cooldown time
//! ([`DeploymentBuilder::cooldown`](crate::DeploymentBuilder::cooldown),
//! `cooldown_ms` in fleet files), as LiteLLM's per-deployment
//! `cooldown_time` replaces the router's for that deployment:
//!
//! - **Set to `d` > 0**: every cooldown a [rule](CooldownRule) or the
//!   [failure rate](FailureRate) starts for the deployment lasts `d`
//!   instead of the rule's `cooldown`. Which failures count and when a
//!   rule triggers do not change.
//! - **Zero**: the deployment never cools. Its failures are still counted
//!   (consecutive failures, the rolling minute's failure rate).
//! - **`Retry-After`**: a server's `Retry-After` is more precise than a
//!   configured time, so it keeps its place: with [`RetryAfter::Cools`] it
//!   cools the deployment until then, and it sets the end of a cooldown a
//!   rule triggers, override or not. The one exception is an override of
//!   zero: such a deployment does not cool for `Retry-After` either (zero
//!   means "never"; this is modelfleet's rule, LiteLLM may let a
//!   `Retry-After` cool it).
//! - **Ejection** is Envoy's outlier detection, separate from cooldowns:
//!   the override does not touch it, and an ejected deployment is out for
//!   [`Ejection`]'s lengths whatever its override.
//!
//! The override is read once per selector version, when the version is
//! built; a report reads it from the deployment's slot: O(1), and the
//! request path never reads it.
//!
//! # Time range
//!
//! Times (of [reports](Report::new), [requests](crate::Request::at), and the
//! ends of cooldowns and ejections) are kept in nanoseconds as a `u64`:
//! the range runs from your clock's origin to [`END`], `u64::MAX` ns (about
//! 584 years); a later time, `Duration::MAX` included, is taken as `END`.
//! A cooldown or ejection that would end at or past `END` lasts for the
//! rest of the range: the deployment is out at `END` too, and its
//! `available_at` or `retry_at` reads `END`.
//!
//! # Nothing healthy
//!
//! When no eligible deployment is healthy, [`Unhealthy`] decides: fail with
//! [`Error::Unavailable`](crate::Error::Unavailable) carrying the earliest
//! time one returns, or pick among all eligible deployments (Envoy's panic
//! mode) when the healthy share is below a threshold.
//!
//! # Presets
//!
//! | preset | reproduces |
//! |---|---|
//! | [`HealthPolicy::default`] | rate limit: 1 failure → 30 s; timeout, server, overloaded, connection, other: 3 within 60 s → 30 s; authentication, not found: 1 → 60 s; bad request, context window, content filter: never; Envoy ejection defaults (5 consecutive, 30 s base, 300 s max, 10%, 10 s interval); fail when nothing is healthy; 5 s latency penalty for failures |
//! | [`HealthPolicy::dify`] | Dify's credential cooldown: rate limit 60 s, authentication and connection errors 10 s, after one failure; fail when all are cooling |
//! | [`HealthPolicy::litellm`] | LiteLLM's router defaults: 5 s cooldowns; a 429 cools at once when the model has more than one deployment; 401 and 404 cool at once; 408 and 5xx count toward a failure rate that cools above 50% with at least 5 requests in the minute; 400 and connection errors never count; a model with one deployment is never cooled |
//! | [`HealthPolicy::disabled`] | no health at all: only filters and limits (`Retry-After` ignored, no latency penalty) |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use modelfleet::health::{FailureKind, HealthPolicy, Report};
//! use modelfleet::{Deployment, Error, Policy, Registry, Request, Selector};
//!
//! let mut reg = Registry::new(Policy::NAME_ENDPOINT);
//! reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
//! let selector = Selector::builder(&reg).health(HealthPolicy::dify().validated()?).build();
//! let s = Duration::from_secs;
//!
//! let pick = selector.select(&Request::new("gpt-4").at(s(0)))?;
//! pick.complete(Report::failure(s(1), FailureKind::rate_limited(None)));
//! match selector.select(&Request::new("gpt-4").at(s(30))) {
//!     Err(Error::Unavailable { retry_at, .. }) => assert_eq!(retry_at, Some(s(61))),
//!     other => panic!("{other:?}"),
//! }
//! assert!(selector.select(&Request::new("gpt-4").at(s(61))).is_ok());
//! # Ok::<(), modelfleet::Error>(())
//! ```

mod kind;
mod policy;
mod presets;
mod report;
mod snapshot;
pub(crate) mod state;

pub use kind::FailureKind;
pub use policy::{
    CooldownRule, Cooldowns, Ejection, FailureRate, HealthPolicy, MAX_RULE_FAILURES, RetryAfter,
    SlowStart, Unhealthy, ValidHealthPolicy,
};
pub use report::{Outcome, Report};
pub use snapshot::HealthSnapshot;
pub use state::State;

/// The last instant of the [time range](self#time-range): later times are
/// taken as it, and a cooldown or ejection that ends at it lasts for the
/// rest of the range.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{END, FailureKind, HealthPolicy, Report, State};
/// use modelfleet::{Deployment, Registry, Request, Selector};
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let s = Selector::builder(&reg).build();
/// let key = s.select(&Request::new("gpt-4"))?.key().clone();
/// let limited = FailureKind::rate_limited(Some(Duration::from_secs(60)));
/// s.report(&key, Report::failure(END - Duration::from_secs(1), limited));
/// assert_eq!(s.health(Duration::MAX)[0].state, State::Cooling);
/// assert_eq!(s.health(Duration::MAX)[0].available_at, Some(END));
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub const END: std::time::Duration = std::time::Duration::from_nanos(state::END);
