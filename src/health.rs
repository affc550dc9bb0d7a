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
//!   included), the deployment cools for `cooldown`. A rate-limited report
//!   with `Retry-After` cools it until then whatever the count
//!   ([`RetryAfter::Cools`], the default), and `Retry-After` always sets the
//!   end of a cooldown it triggers. A deployment cooling until `t` is not a
//!   candidate at any time `< t` and is one again at `t` exactly.
//! - **Ejected** ([`Ejection`], Envoy's outlier detection):
//!   `consecutive_failures` server-side failures in a row (server error,
//!   timeout, connection error; a success resets the run) eject the
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
//!   share of it still inside the last 60 s).
//!
//! When no eligible deployment is healthy, [`Unhealthy`] decides: fail with
//! [`Error::Unavailable`] carrying the earliest
//! time one returns, or pick among all eligible deployments (Envoy's panic
//! mode) when the healthy share is below a threshold.
//!
//! # Presets
//!
//! | preset | reproduces |
//! |---|---|
//! | [`HealthPolicy::default`] | rate limit: 1 failure → 30 s; timeout, server, connection, other: 3 within 60 s → 30 s; authentication, not found: 1 → 60 s; bad request, context window, content filter: never; Envoy ejection defaults (5 consecutive, 30 s base, 300 s max, 10%, 10 s interval); fail when nothing is healthy; 5 s latency penalty for failures |
//! | [`HealthPolicy::dify`] | Dify's credential cooldown: rate limit 60 s, authentication and connection errors 10 s, after one failure; fail when all are cooling |
//! | [`HealthPolicy::litellm`] | LiteLLM's router defaults: 5 s cooldowns; a 429 cools at once when the model has more than one deployment; 401 and 404 cool at once; 408 and 5xx count toward a failure rate that cools above 50% with at least 5 requests in the minute; 400 never counts; a model with one deployment is never cooled |
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
//! let selector = Selector::builder(&reg).health(HealthPolicy::dify()).build();
//! let s = Duration::from_secs;
//!
//! let pick = selector.select(&Request::new("gpt-4").at(s(0)))?;
//! pick.complete(Report::failure(s(1), FailureKind::RateLimited { retry_after: None }));
//! match selector.select(&Request::new("gpt-4").at(s(30))) {
//!     Err(Error::Unavailable { retry_at, .. }) => assert_eq!(retry_at, Some(s(61))),
//!     other => panic!("{other:?}"),
//! }
//! assert!(selector.select(&Request::new("gpt-4").at(s(61))).is_ok());
//! # Ok::<(), modelfleet::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use crate::Error;
use crate::names::names;

/// Why a request failed, as far as routing cares.
///
/// ```
/// use modelfleet::health::FailureKind;
/// let k: FailureKind = "server_error".parse()?;
/// assert_eq!(k, FailureKind::ServerError);
/// assert_eq!(k.to_string(), "server_error");
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// 429: rate limited, with the server's `Retry-After` if it sent one.
    RateLimited {
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
    /// 408 or a client-side timeout.
    Timeout,
    /// 5xx.
    ServerError,
    /// The connection failed (refused, reset, DNS, TLS).
    ConnectionError,
    /// 401/403: the credential was refused.
    AuthenticationError,
    /// 404: the model or route does not exist there.
    NotFound,
    /// 400: the request itself was bad.
    BadRequest,
    /// The prompt did not fit the context window.
    ContextWindowExceeded,
    /// The provider's content filter refused the request.
    ContentFiltered,
    /// Anything else.
    Other,
}

/// The number of failure kinds.
pub(crate) const KINDS: usize = FailureKind::ALL.len();

names! {
    FailureKind;
    /// Every kind (rate limited without `Retry-After`), in index order.
    ///
    /// ```
    /// use modelfleet::health::FailureKind;
    /// assert_eq!(FailureKind::ALL.len(), 10);
    /// assert_eq!(FailureKind::ALL[1], FailureKind::Timeout);
    /// ```
    pub const ALL;
    /// The kind's name (`rate_limited`, `timeout`, …).
    ///
    /// ```
    /// assert_eq!(modelfleet::health::FailureKind::NotFound.as_str(), "not_found");
    /// ```
    pub fn as_str;
    parse_error(input, expected) => Error::UnknownName { what: "failure kind", input, expected };
    {
        FailureKind::RateLimited { .. } => "rate_limited" = FailureKind::RateLimited { retry_after: None },
        FailureKind::Timeout => "timeout" = FailureKind::Timeout,
        FailureKind::ServerError => "server_error" = FailureKind::ServerError,
        FailureKind::ConnectionError => "connection_error" = FailureKind::ConnectionError,
        FailureKind::AuthenticationError => "authentication_error" = FailureKind::AuthenticationError,
        FailureKind::NotFound => "not_found" = FailureKind::NotFound,
        FailureKind::BadRequest => "bad_request" = FailureKind::BadRequest,
        FailureKind::ContextWindowExceeded => "context_window_exceeded" = FailureKind::ContextWindowExceeded,
        FailureKind::ContentFiltered => "content_filtered" = FailureKind::ContentFiltered,
        FailureKind::Other => "other" = FailureKind::Other,
    }
}

impl FailureKind {
    /// Whether the kind counts toward Envoy-style consecutive-failure
    /// ejection: server errors, timeouts and connection errors.
    ///
    /// ```
    /// use modelfleet::health::FailureKind;
    /// assert!(FailureKind::Timeout.is_server_side());
    /// assert!(!FailureKind::BadRequest.is_server_side());
    /// ```
    pub const fn is_server_side(self) -> bool {
        matches!(
            self,
            FailureKind::ServerError | FailureKind::Timeout | FailureKind::ConnectionError
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a pick ended.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{FailureKind, Outcome};
/// let ok = Outcome::Success { latency: Duration::from_millis(120) };
/// let failed = Outcome::Failure { kind: FailureKind::Timeout, latency: None };
/// assert!(ok.is_success() && !failed.is_success());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The request succeeded and took `latency`.
    Success {
        /// How long the request took.
        latency: Duration,
    },
    /// The request failed.
    Failure {
        /// Why.
        kind: FailureKind,
        /// How long it took to fail, if known.
        latency: Option<Duration>,
    },
}

impl Outcome {
    /// Whether this is a success.
    ///
    /// See [`Outcome`] for an example.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success { .. })
    }
}

/// One outcome report: what happened, when, and the tokens it used.
///
/// `at` is time since any fixed origin of your choosing (e.g. when your
/// process started); it must not go backwards within one selector.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{FailureKind, Outcome, Report};
/// let ms = Duration::from_millis;
/// let ok = Report::success(ms(1_000), ms(240)).tokens(1_850);
/// let limited = Report::failure(ms(1_500), FailureKind::RateLimited { retry_after: Some(ms(5_000)) });
/// let slow_fail = Report::new(ms(2_000), Outcome::Failure { kind: FailureKind::Timeout, latency: Some(ms(30_000)) });
/// assert_eq!(ok.token_count(), 1_850);
/// assert_eq!(ok.outcome(), Outcome::Success { latency: ms(240) });
/// assert_eq!(limited.time(), ms(1_500));
/// assert_eq!(limited.token_count(), 0);
/// assert!(!slow_fail.outcome().is_success());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    at: Duration,
    outcome: Outcome,
    tokens: u64,
}

impl Report {
    /// A report of `outcome` at `at`.
    ///
    /// See [`Report`] for an example.
    pub fn new(at: Duration, outcome: Outcome) -> Self {
        Self {
            at,
            outcome,
            tokens: 0,
        }
    }

    /// A success at `at` that took `latency`.
    ///
    /// See [`Report`] for an example.
    pub fn success(at: Duration, latency: Duration) -> Self {
        Self::new(at, Outcome::Success { latency })
    }

    /// A failure of `kind` at `at`.
    ///
    /// See [`Report`] for an example.
    pub fn failure(at: Duration, kind: FailureKind) -> Self {
        Self::new(
            at,
            Outcome::Failure {
                kind,
                latency: None,
            },
        )
    }

    /// The tokens the request used (prompt + completion), for `tpm` limits.
    ///
    /// See [`Report`] for an example.
    #[must_use]
    pub fn tokens(mut self, tokens: u64) -> Self {
        self.tokens = tokens;
        self
    }

    /// When it happened.
    ///
    /// See [`Report`] for an example.
    pub fn time(&self) -> Duration {
        self.at
    }

    /// What happened.
    ///
    /// See [`Report`] for an example.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The tokens it used.
    ///
    /// See [`Report`] for an example.
    pub fn token_count(&self) -> u64 {
        self.tokens
    }
}

/// `failures` counted failures within `window` cool a deployment for `cooldown`.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::CooldownRule;
/// let rule = CooldownRule::new(3, Duration::from_secs(60), Duration::from_secs(30))?;
/// assert_eq!(rule.failures(), 3);
/// assert_eq!(rule.window(), Duration::from_secs(60));
/// assert_eq!(rule.cooldown(), Duration::from_secs(30));
/// assert!(CooldownRule::new(0, Duration::from_secs(60), Duration::from_secs(30)).is_err());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CooldownRule {
    failures: u32,
    window: Duration,
    cooldown: Duration,
}

/// The largest `failures` a [`CooldownRule`] may ask for: each deployment
/// remembers the times of its last this-many counted failures.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{CooldownRule, MAX_RULE_FAILURES};
/// let s = Duration::from_secs;
/// assert!(CooldownRule::new(MAX_RULE_FAILURES, s(60), s(30)).is_ok());
/// assert!(CooldownRule::new(MAX_RULE_FAILURES + 1, s(60), s(30)).is_err());
/// ```
pub const MAX_RULE_FAILURES: u32 = 8;

impl CooldownRule {
    /// A rule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHealth`] if `failures` is 0 or above
    /// [`MAX_RULE_FAILURES`], or `cooldown` is zero.
    ///
    /// See [`CooldownRule`] for an example.
    pub fn new(failures: u32, window: Duration, cooldown: Duration) -> Result<Self, Error> {
        if failures == 0 || failures > MAX_RULE_FAILURES {
            return Err(Error::InvalidHealth {
                field: "cooldown rule failures",
                problem: format!("must be from 1 to {MAX_RULE_FAILURES}, got {failures}"),
            });
        }
        if cooldown.is_zero() {
            return Err(Error::InvalidHealth {
                field: "cooldown rule cooldown",
                problem: "must be longer than zero".into(),
            });
        }
        Ok(Self {
            failures,
            window,
            cooldown,
        })
    }

    /// One failure cools for `cooldown`.
    pub(crate) const fn once(cooldown: Duration) -> Self {
        Self {
            failures: 1,
            window: Duration::ZERO,
            cooldown,
        }
    }

    /// How many failures trigger it.
    ///
    /// See [`CooldownRule`] for an example.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Within how long.
    ///
    /// See [`CooldownRule`] for an example.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long it cools.
    ///
    /// See [`CooldownRule`] for an example.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }
}

/// What `Retry-After` on a rate-limited report does.
///
/// ```
/// use modelfleet::health::RetryAfter;
/// assert_eq!(RetryAfter::default(), RetryAfter::Cools);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryAfter {
    /// Cools the deployment until then, whatever the failure count (the
    /// server said when to come back). The default.
    #[default]
    Cools,
    /// Only sets the end of a cooldown that a rule triggers.
    SetsEnd,
}

/// A failure-rate rule: above `ratio` failures among at least
/// `min_requests` completed requests in the rolling minute, cool for `cooldown`.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{FailureRate, HealthPolicy};
/// let mut p = HealthPolicy::default();
/// p.cooldowns.failure_rate = Some(FailureRate { min_requests: 20, ratio: 0.5, cooldown: Duration::from_secs(30) });
/// p.validate()?;
/// p.cooldowns.failure_rate = Some(FailureRate { min_requests: 20, ratio: 1.5, cooldown: Duration::from_secs(30) });
/// assert!(p.validate().is_err());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailureRate {
    /// The smallest number of completed requests for the rule to apply.
    pub min_requests: u32,
    /// The failure share above which it cools (0.5 = more than half).
    pub ratio: f64,
    /// How long it cools.
    pub cooldown: Duration,
}

/// Cooldown rules per failure kind.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{CooldownRule, Cooldowns, FailureKind};
/// let mut c = Cooldowns::default();
/// c.set_rule(FailureKind::BadRequest, Some(CooldownRule::new(5, Duration::from_secs(10), Duration::from_secs(5))?));
/// assert!(c.rule(FailureKind::BadRequest).is_some());
/// assert!(c.counts(FailureKind::BadRequest)); // a kind with a rule counts
/// c.set_counted(FailureKind::BadRequest, false);
/// assert!(c.rule(FailureKind::BadRequest).is_none()); // and loses its rule when it does not
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Cooldowns {
    rules: [Option<CooldownRule>; KINDS],
    counted: [bool; KINDS],
    /// What `Retry-After` does.
    pub retry_after: RetryAfter,
    /// Cool only models with at least this many deployments (LiteLLM never
    /// cools the only deployment of a model: 2). `Retry-After` with
    /// [`RetryAfter::Cools`] applies whatever the size.
    pub min_group_size: u32,
    /// An optional failure-rate rule.
    pub failure_rate: Option<FailureRate>,
}

impl Cooldowns {
    /// The rule for `kind`.
    ///
    /// See [`Cooldowns`] for an example.
    pub fn rule(&self, kind: FailureKind) -> Option<&CooldownRule> {
        self.rules[kind.index()].as_ref()
    }

    /// Sets the rule for `kind` (`None`: that kind never cools); a kind
    /// with a rule is counted.
    ///
    /// See [`Cooldowns`] for an example.
    pub fn set_rule(&mut self, kind: FailureKind, rule: Option<CooldownRule>) {
        self.rules[kind.index()] = rule;
        if rule.is_some() {
            self.counted[kind.index()] = true;
        }
    }

    /// Whether failures of `kind` count (toward rules and the failure rate).
    ///
    /// See [`Cooldowns`] for an example.
    pub fn counts(&self, kind: FailureKind) -> bool {
        self.counted[kind.index()]
    }

    /// Sets whether failures of `kind` count; a kind that does not count
    /// loses its rule.
    ///
    /// See [`Cooldowns`] for an example.
    pub fn set_counted(&mut self, kind: FailureKind, counted: bool) {
        self.counted[kind.index()] = counted;
        if !counted {
            self.rules[kind.index()] = None;
        }
    }

    fn none() -> Self {
        Self {
            rules: [None; KINDS],
            counted: [false; KINDS],
            retry_after: RetryAfter::Cools,
            min_group_size: 1,
            failure_rate: None,
        }
    }
}

impl Default for Cooldowns {
    fn default() -> Self {
        let s = Duration::from_secs;
        let three = CooldownRule {
            failures: 3,
            window: s(60),
            cooldown: s(30),
        };
        let mut c = Self::none();
        c.set_rule(
            FailureKind::RateLimited { retry_after: None },
            Some(CooldownRule::once(s(30))),
        );
        for k in [
            FailureKind::Timeout,
            FailureKind::ServerError,
            FailureKind::ConnectionError,
            FailureKind::Other,
        ] {
            c.set_rule(k, Some(three));
        }
        for k in [FailureKind::AuthenticationError, FailureKind::NotFound] {
            c.set_rule(k, Some(CooldownRule::once(s(60))));
        }
        c
    }
}

/// Envoy-style outlier ejection.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{Ejection, HealthPolicy};
/// let mut p = HealthPolicy::default();
/// assert_eq!(p.ejection, Some(Ejection::default()));
/// p.ejection = Some(Ejection { consecutive_failures: 3, max_percent: 50, ..Ejection::default() });
/// p.validate()?;
/// assert_eq!(p.ejection.unwrap().base, Duration::from_secs(30));
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ejection {
    /// Server-side failures in a row that eject (Envoy `consecutive_5xx`: 5).
    pub consecutive_failures: u32,
    /// The first ejection's length (Envoy `base_ejection_time`: 30 s).
    pub base: Duration,
    /// The longest ejection (Envoy `max_ejection_time`: 300 s).
    pub max: Duration,
    /// The most of a model's deployments ejected at once, in percent
    /// (Envoy `max_ejection_percent`: 10); at least one may always be.
    pub max_percent: u8,
    /// Each full interval without an ejection takes one off the multiplier
    /// (Envoy `interval`: 10 s).
    pub interval: Duration,
}

impl Default for Ejection {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base: Duration::from_secs(30),
            max: Duration::from_secs(300),
            max_percent: 10,
            interval: Duration::from_secs(10),
        }
    }
}

/// Envoy-style slow start.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{HealthPolicy, SlowStart};
/// let mut p = HealthPolicy::default();
/// p.slow_start = Some(SlowStart { window: Duration::from_secs(60), aggression: 1.0, min_percent: 10.0 });
/// p.validate()?;
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowStart {
    /// How long the ramp lasts.
    pub window: Duration,
    /// The ramp's shape: 1.0 is linear, larger ramps faster early.
    pub aggression: f64,
    /// The smallest share of the weight during the ramp, in percent.
    pub min_percent: f64,
}

impl SlowStart {
    /// The weight factor `t` after the ramp began: `max(min_percent/100,
    /// (t/window)^(1/aggression))`, 1 once the window is over.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::SlowStart;
    /// let ramp = SlowStart { window: Duration::from_secs(60), aggression: 1.0, min_percent: 10.0 };
    /// assert_eq!(ramp.factor(Duration::from_secs(30)), 0.5);
    /// assert_eq!(ramp.factor(Duration::from_secs(1)), 0.1);
    /// assert_eq!(ramp.factor(Duration::from_secs(60)), 1.0);
    /// ```
    pub fn factor(&self, since: Duration) -> f64 {
        if since >= self.window || self.window.is_zero() {
            return 1.0;
        }
        let t = since.as_secs_f64() / self.window.as_secs_f64();
        let ramp = t.powf(1.0 / self.aggression.max(f64::MIN_POSITIVE));
        ramp.max(self.min_percent / 100.0).min(1.0)
    }
}

/// What to do when no eligible deployment is healthy.
///
/// ```
/// use modelfleet::health::Unhealthy;
/// assert_eq!(Unhealthy::default(), Unhealthy::Fail);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unhealthy {
    /// Fail with [`Error::Unavailable`], carrying
    /// the earliest time a deployment returns. The default.
    #[default]
    Fail,
    /// Envoy's panic mode: when fewer than `threshold_percent` of the
    /// eligible deployments are healthy, ignore health and pick among all of
    /// them (limits still apply). Envoy's default threshold is 50.
    Panic {
        /// The healthy share, in percent, below which health is ignored (1–100).
        threshold_percent: u8,
    },
}

/// Everything the selector does with outcome reports.
///
/// See the [module docs](self) for the state machine and the presets.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{HealthPolicy, Unhealthy};
/// use modelfleet::{Deployment, Registry, Selector};
///
/// let mut p = HealthPolicy::litellm();
/// p.unhealthy = Unhealthy::Panic { threshold_percent: 50 };
/// p.failure_penalty = Some(Duration::from_secs(2));
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let selector = Selector::builder(&reg).health(p).try_build()?;
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HealthPolicy {
    /// Cooldown rules.
    pub cooldowns: Cooldowns,
    /// Outlier ejection, if any.
    pub ejection: Option<Ejection>,
    /// Slow start, if any.
    pub slow_start: Option<SlowStart>,
    /// What to do when nothing is healthy.
    pub unhealthy: Unhealthy,
    /// The latency sample a failure of a counted kind other than a rate
    /// limit feeds into the latency estimate (at least this, or the
    /// failure's own latency if longer), so a deployment that fails fast
    /// does not look fast. Rate limits are left to the cooldown rules.
    pub failure_penalty: Option<Duration>,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            cooldowns: Cooldowns::default(),
            ejection: Some(Ejection::default()),
            slow_start: None,
            unhealthy: Unhealthy::Fail,
            failure_penalty: Some(Duration::from_secs(5)),
        }
    }
}

impl HealthPolicy {
    /// No cooldowns, no ejection, no slow start, no penalty: reports only
    /// feed latency estimates and `tpm` usage.
    ///
    /// ```
    /// let p = modelfleet::health::HealthPolicy::disabled();
    /// assert!(p.ejection.is_none());
    /// ```
    pub fn disabled() -> Self {
        let mut cooldowns = Cooldowns::none();
        // No rule ever triggers, so `Retry-After` has nothing to set.
        cooldowns.retry_after = RetryAfter::SetsEnd;
        Self {
            cooldowns,
            ejection: None,
            slow_start: None,
            unhealthy: Unhealthy::Fail,
            failure_penalty: None,
        }
    }

    /// Dify's behaviour: a rate limit cools for 60 s, an authentication or
    /// connection error for 10 s, after one failure; fail when all cool.
    /// No ejection; the default failure penalty for latency estimates.
    ///
    /// ```
    /// use modelfleet::health::{FailureKind, HealthPolicy};
    /// let p = HealthPolicy::dify();
    /// assert_eq!(p.cooldowns.rule(FailureKind::ConnectionError).unwrap().cooldown().as_secs(), 10);
    /// ```
    pub fn dify() -> Self {
        let s = Duration::from_secs;
        let mut cooldowns = Cooldowns::none();
        cooldowns.set_rule(
            FailureKind::RateLimited { retry_after: None },
            Some(CooldownRule::once(s(60))),
        );
        cooldowns.set_rule(
            FailureKind::AuthenticationError,
            Some(CooldownRule::once(s(10))),
        );
        cooldowns.set_rule(
            FailureKind::ConnectionError,
            Some(CooldownRule::once(s(10))),
        );
        Self {
            cooldowns,
            failure_penalty: Self::default().failure_penalty,
            ..Self::disabled()
        }
    }

    /// LiteLLM's router defaults (see the [module docs](self#presets)); no
    /// ejection; the default failure penalty for latency estimates.
    ///
    /// ```
    /// use modelfleet::health::{FailureKind, HealthPolicy};
    /// let p = HealthPolicy::litellm();
    /// assert!(!p.cooldowns.counts(FailureKind::BadRequest));
    /// assert_eq!(p.cooldowns.min_group_size, 2);
    /// ```
    pub fn litellm() -> Self {
        let five = Duration::from_secs(5);
        let mut cooldowns = Cooldowns::none();
        for k in [
            FailureKind::RateLimited { retry_after: None },
            FailureKind::AuthenticationError,
            FailureKind::NotFound,
        ] {
            cooldowns.set_rule(k, Some(CooldownRule::once(five)));
        }
        for k in [
            FailureKind::Timeout,
            FailureKind::ServerError,
            FailureKind::ConnectionError,
        ] {
            cooldowns.set_counted(k, true);
        }
        cooldowns.retry_after = RetryAfter::SetsEnd;
        cooldowns.min_group_size = 2;
        cooldowns.failure_rate = Some(FailureRate {
            min_requests: 5,
            ratio: 0.5,
            cooldown: five,
        });
        Self {
            cooldowns,
            failure_penalty: Self::default().failure_penalty,
            ..Self::disabled()
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHealth`] naming the setting: an ejection with 0
    /// consecutive failures, a zero base, `max < base` or `max_percent` above
    /// 100; a slow start with a NaN or non-positive aggression or a
    /// `min_percent` outside 0–100; a panic threshold of 0 or above 100; a
    /// failure rate with a ratio outside 0–1.
    ///
    /// ```
    /// use modelfleet::health::{HealthPolicy, Unhealthy};
    /// let mut p = HealthPolicy::default();
    /// p.unhealthy = Unhealthy::Panic { threshold_percent: 0 };
    /// assert!(p.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, problem: String| Err(Error::InvalidHealth { field, problem });
        if let Some(e) = &self.ejection {
            if e.consecutive_failures == 0 {
                return bad("ejection.consecutive_failures", "must be at least 1".into());
            }
            if e.base.is_zero() || e.max < e.base {
                return bad(
                    "ejection.base",
                    format!(
                        "must be longer than zero and at most max ({:?}), got {:?}",
                        e.max, e.base
                    ),
                );
            }
            if e.max_percent > 100 {
                return bad(
                    "ejection.max_percent",
                    format!("must be at most 100, got {}", e.max_percent),
                );
            }
        }
        if let Some(s) = &self.slow_start {
            if !(s.aggression.is_finite() && s.aggression > 0.0) {
                return bad(
                    "slow_start.aggression",
                    format!("must be a positive number, got {}", s.aggression),
                );
            }
            if !(0.0..=100.0).contains(&s.min_percent) {
                return bad(
                    "slow_start.min_percent",
                    format!("must be from 0 to 100, got {}", s.min_percent),
                );
            }
        }
        if let Unhealthy::Panic { threshold_percent } = self.unhealthy
            && (threshold_percent == 0 || threshold_percent > 100)
        {
            return bad(
                "unhealthy.threshold_percent",
                format!("must be from 1 to 100, got {threshold_percent}"),
            );
        }
        if let Some(r) = &self.cooldowns.failure_rate
            && !(0.0..=1.0).contains(&r.ratio)
        {
            return bad(
                "cooldowns.failure_rate.ratio",
                format!("must be from 0 to 1, got {}", r.ratio),
            );
        }
        Ok(())
    }
}

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
    /// When it is a candidate again, if cooling or ejected (time since your origin).
    #[cfg_attr(feature = "serde", serde(with = "opt_millis"))]
    pub available_at: Option<Duration>,
    /// How many times it has been ejected (decayed as described in [`Ejection`]).
    pub ejections: u32,
    /// Counted failures (see [`Cooldowns::counts`]) since the last success.
    /// Ejection keeps its own run of server-side failures.
    pub consecutive_failures: u32,
    /// Picks in flight.
    pub in_flight: u32,
    /// The peak-EWMA latency estimate.
    #[cfg_attr(feature = "serde", serde(with = "opt_millis"))]
    pub latency: Option<Duration>,
    /// Picks in the rolling minute (counted for deployments with an `rpm` limit).
    pub requests_per_minute: u64,
    /// Reported tokens in the rolling minute.
    pub tokens_per_minute: u64,
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
