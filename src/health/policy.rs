//! The health policy and its parts: cooldown rules, `Retry-After`, the
//! failure rate, ejection, slow start and what to do when nothing is
//! healthy, with the range checks every setting must pass.

use std::time::Duration;

use super::FailureKind;
use super::kind::KINDS;
use crate::Error;

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
        Self::check_failures(failures)?;
        Self::check_cooldown(cooldown)?;
        Ok(Self {
            failures,
            window,
            cooldown,
        })
    }

    /// Checks a rule's `failures`: from 1 to [`MAX_RULE_FAILURES`].
    pub(crate) fn check_failures(failures: u32) -> Result<(), Error> {
        if failures == 0 || failures > MAX_RULE_FAILURES {
            return invalid(
                "cooldown rule failures",
                format!("must be from 1 to {MAX_RULE_FAILURES}, got {failures}"),
            );
        }
        Ok(())
    }

    /// Checks a rule's `cooldown`: longer than zero.
    pub(crate) fn check_cooldown(cooldown: Duration) -> Result<(), Error> {
        if cooldown.is_zero() {
            return invalid("cooldown rule cooldown", "must be longer than zero".into());
        }
        Ok(())
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

/// What `Retry-After` on a rate-limited or overloaded report does.
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
/// p.cooldowns.failure_rate = Some(FailureRate::new(20, 0.5, Duration::from_secs(30)));
/// p.validate()?;
/// p.cooldowns.failure_rate = Some(FailureRate::new(20, 1.5, Duration::from_secs(30)));
/// assert!(p.validate().is_err());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct FailureRate {
    /// The smallest number of completed requests for the rule to apply.
    pub min_requests: u32,
    /// The failure share above which it cools (0.5 = more than half).
    pub ratio: f64,
    /// How long it cools.
    pub cooldown: Duration,
}

impl FailureRate {
    /// Cools for `cooldown` once more than `ratio` of at least
    /// `min_requests` completed requests failed. Checked by
    /// [`HealthPolicy::validate`], not here.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::FailureRate;
    /// let rate = FailureRate::new(20, 0.5, Duration::from_secs(30));
    /// assert_eq!((rate.min_requests, rate.ratio), (20, 0.5));
    /// ```
    #[must_use]
    pub const fn new(min_requests: u32, ratio: f64, cooldown: Duration) -> Self {
        Self {
            min_requests,
            ratio,
            cooldown,
        }
    }

    /// Checks `ratio`: from 0 to 1.
    pub(crate) fn check_ratio(ratio: f64) -> Result<(), Error> {
        if !(0.0..=1.0).contains(&ratio) {
            return invalid(
                "cooldowns.failure_rate.ratio",
                format!("must be from 0 to 1, got {ratio}"),
            );
        }
        Ok(())
    }
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

    /// No rule, no kind counted: what the presets build on.
    pub(super) fn none() -> Self {
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
            FailureKind::rate_limited(None),
            Some(CooldownRule::once(s(30))),
        );
        for k in [
            FailureKind::Timeout,
            FailureKind::ServerError,
            FailureKind::overloaded(None),
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
/// let mut ejection = Ejection::default();
/// ejection.consecutive_failures = 3;
/// ejection.max_percent = 50;
/// p.ejection = Some(ejection);
/// p.validate()?;
/// assert_eq!(p.ejection.unwrap().base, Duration::from_secs(30));
/// # Ok::<(), modelfleet::Error>(())
/// ```
///
/// Like [`FailureRate`] and [`SlowStart`], it may gain fields: start from
/// [`Ejection::default`] and set the fields you change, as above; a struct
/// expression does not compile outside this crate.
///
/// ```compile_fail,E0639
/// use modelfleet::health::Ejection;
/// let e = Ejection { consecutive_failures: 3, ..Ejection::default() };
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

impl Ejection {
    /// Checks `consecutive_failures`: at least 1.
    pub(crate) fn check_consecutive_failures(consecutive_failures: u32) -> Result<(), Error> {
        if consecutive_failures == 0 {
            return invalid("ejection.consecutive_failures", "must be at least 1".into());
        }
        Ok(())
    }

    /// Checks `base` against `max`: longer than zero and at most `max`.
    pub(crate) fn check_base(base: Duration, max: Duration) -> Result<(), Error> {
        if base.is_zero() || max < base {
            return invalid(
                "ejection.base",
                format!("must be longer than zero and at most max ({max:?}), got {base:?}"),
            );
        }
        Ok(())
    }

    /// Checks `max_percent`: at most 100 (taken as `u32`, so a setting read
    /// as a wider number is checked before it is narrowed).
    pub(crate) fn check_max_percent(max_percent: u32) -> Result<(), Error> {
        if max_percent > 100 {
            return invalid(
                "ejection.max_percent",
                format!("must be at most 100, got {max_percent}"),
            );
        }
        Ok(())
    }
}

/// Envoy-style slow start.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{HealthPolicy, SlowStart};
/// let mut p = HealthPolicy::default();
/// let mut ramp = SlowStart::new(Duration::from_secs(60));
/// ramp.aggression = 2.0;
/// p.slow_start = Some(ramp);
/// p.validate()?;
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct SlowStart {
    /// How long the ramp lasts.
    pub window: Duration,
    /// The ramp's shape: 1.0 is linear, larger ramps faster early.
    pub aggression: f64,
    /// The smallest share of the weight during the ramp, in percent.
    pub min_percent: f64,
}

impl SlowStart {
    /// A linear ramp over `window` from 10 % of the weight (Envoy's
    /// defaults: `aggression` 1.0, `min_weight_percent` 10); set the other
    /// fields to change its shape.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::SlowStart;
    /// let ramp = SlowStart::new(Duration::from_secs(60));
    /// assert_eq!((ramp.aggression, ramp.min_percent), (1.0, 10.0));
    /// ```
    #[must_use]
    pub const fn new(window: Duration) -> Self {
        Self {
            window,
            aggression: 1.0,
            min_percent: 10.0,
        }
    }

    /// The weight factor `t` after the ramp began: `max(min_percent/100,
    /// (t/window)^(1/aggression))`, 1 once the window is over.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::SlowStart;
    /// let ramp = SlowStart::new(Duration::from_secs(60));
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

    /// Checks `aggression`: a positive finite number.
    pub(crate) fn check_aggression(aggression: f64) -> Result<(), Error> {
        if !(aggression.is_finite() && aggression > 0.0) {
            return invalid(
                "slow_start.aggression",
                format!("must be a positive number, got {aggression}"),
            );
        }
        Ok(())
    }

    /// Checks `min_percent`: from 0 to 100.
    pub(crate) fn check_min_percent(min_percent: f64) -> Result<(), Error> {
        if !(0.0..=100.0).contains(&min_percent) {
            return invalid(
                "slow_start.min_percent",
                format!("must be from 0 to 100, got {min_percent}"),
            );
        }
        Ok(())
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
    /// them (limits still apply). Envoy's default threshold is 50
    /// ([`Unhealthy::panic_below`]).
    #[non_exhaustive]
    Panic {
        /// The healthy share, in percent, below which health is ignored (1–100).
        threshold_percent: u8,
    },
}

impl Unhealthy {
    /// Envoy's panic mode below `threshold_percent` healthy (checked by
    /// [`HealthPolicy::validate`]: 1–100).
    ///
    /// ```
    /// use modelfleet::health::{HealthPolicy, Unhealthy};
    /// let mut p = HealthPolicy::default();
    /// p.unhealthy = Unhealthy::panic_below(50);
    /// assert!(p.validated().is_ok());
    /// ```
    #[must_use]
    pub const fn panic_below(threshold_percent: u8) -> Self {
        Unhealthy::Panic { threshold_percent }
    }

    /// Checks a panic `threshold_percent`: from 1 to 100 (taken as `u32`,
    /// so a setting read as a wider number is checked before it is
    /// narrowed).
    pub(crate) fn check_threshold_percent(threshold_percent: u32) -> Result<(), Error> {
        if threshold_percent == 0 || threshold_percent > 100 {
            return invalid(
                "unhealthy.threshold_percent",
                format!("must be from 1 to 100, got {threshold_percent}"),
            );
        }
        Ok(())
    }
}

/// Everything the selector does with outcome reports.
///
/// See the [module docs](crate::health) for the state machine and the presets.
/// A selector takes a policy only once it is [validated](Self::validated)
/// (a [`ValidHealthPolicy`]), so an out-of-range setting is an error where
/// the policy is made, never a surprise in a running selector.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{HealthPolicy, Unhealthy};
/// use modelfleet::{Deployment, Registry, Selector};
///
/// let mut p = HealthPolicy::litellm();
/// p.unhealthy = Unhealthy::panic_below(50);
/// p.failure_penalty = Some(Duration::from_secs(2));
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let selector = Selector::builder(&reg).health(p.validated()?).build();
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

impl HealthPolicy {
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
    /// p.unhealthy = Unhealthy::panic_below(0);
    /// assert!(p.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(e) = &self.ejection {
            Ejection::check_consecutive_failures(e.consecutive_failures)?;
            Ejection::check_base(e.base, e.max)?;
            Ejection::check_max_percent(e.max_percent.into())?;
        }
        if let Some(s) = &self.slow_start {
            SlowStart::check_aggression(s.aggression)?;
            SlowStart::check_min_percent(s.min_percent)?;
        }
        if let Unhealthy::Panic { threshold_percent } = self.unhealthy {
            Unhealthy::check_threshold_percent(threshold_percent.into())?;
        }
        if let Some(r) = &self.cooldowns.failure_rate {
            FailureRate::check_ratio(r.ratio)?;
        }
        Ok(())
    }
}

impl HealthPolicy {
    /// The policy, [validated](Self::validate): what
    /// [`SelectorBuilder::health`](crate::SelectorBuilder::health) takes.
    /// O(1).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHealth`] naming the first bad setting, as
    /// [`validate`](Self::validate).
    ///
    /// ```
    /// use modelfleet::health::{Ejection, HealthPolicy};
    /// use modelfleet::Error;
    ///
    /// assert!(HealthPolicy::dify().validated().is_ok());
    /// let mut p = HealthPolicy::default();
    /// let mut ejection = Ejection::default();
    /// ejection.consecutive_failures = 0;
    /// p.ejection = Some(ejection);
    /// match p.validated() {
    ///     Err(Error::InvalidHealth { field, .. }) => assert_eq!(field, "ejection.consecutive_failures"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn validated(self) -> Result<ValidHealthPolicy, Error> {
        self.validate()?;
        Ok(ValidHealthPolicy(self))
    }
}

/// A [`HealthPolicy`] that passed [`validate`](HealthPolicy::validate):
/// the only kind a [`Selector`](crate::Selector) or
/// [`Fleet`](crate::Fleet) is built with, so neither can run with an
/// ejection after 0 failures or a `max_percent` of 250. Made by
/// [`HealthPolicy::validated`] (or `try_from`); read it back with
/// [`policy`](Self::policy), change it by taking it apart with
/// [`into_inner`](Self::into_inner) and validating again.
///
/// ```
/// use modelfleet::health::{HealthPolicy, ValidHealthPolicy};
///
/// let valid = ValidHealthPolicy::try_from(HealthPolicy::litellm())?;
/// assert_eq!(valid.policy(), &HealthPolicy::litellm());
/// assert_eq!(ValidHealthPolicy::default().policy(), &HealthPolicy::default());
/// let mut p = valid.into_inner();
/// p.ejection.get_or_insert_default().max_percent = 250;
/// assert!(p.validated().is_err());
/// # Ok::<(), modelfleet::Error>(())
/// ```
///
/// A selector builder does not take an unvalidated policy:
///
/// ```compile_fail,E0308
/// use modelfleet::health::HealthPolicy;
/// use modelfleet::{Deployment, Registry, Selector};
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build().unwrap()].into_iter().collect();
/// let _ = Selector::builder(&reg).health(HealthPolicy::default()).build();
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidHealthPolicy(HealthPolicy);

impl ValidHealthPolicy {
    /// The policy.
    ///
    /// See [`ValidHealthPolicy`] for an example.
    #[must_use]
    pub fn policy(&self) -> &HealthPolicy {
        &self.0
    }

    /// The policy, to change it (and [validate](HealthPolicy::validated) again).
    ///
    /// See [`ValidHealthPolicy`] for an example.
    #[must_use]
    pub fn into_inner(self) -> HealthPolicy {
        self.0
    }
}

impl TryFrom<HealthPolicy> for ValidHealthPolicy {
    type Error = Error;

    /// As [`HealthPolicy::validated`].
    fn try_from(policy: HealthPolicy) -> Result<Self, Error> {
        policy.validated()
    }
}

impl From<ValidHealthPolicy> for HealthPolicy {
    fn from(valid: ValidHealthPolicy) -> Self {
        valid.0
    }
}

impl AsRef<HealthPolicy> for ValidHealthPolicy {
    fn as_ref(&self) -> &HealthPolicy {
        &self.0
    }
}

/// The error of a setting out of range: `field` and what is wrong with it.
fn invalid(field: &'static str, problem: String) -> Result<(), Error> {
    Err(Error::InvalidHealth { field, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(r: Result<(), Error>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn each_check_names_its_field_and_states_the_range_and_the_value() {
        let s = Duration::from_secs;
        assert_eq!(
            shown(CooldownRule::check_failures(9)),
            "health: cooldown rule failures must be from 1 to 8, got 9"
        );
        assert_eq!(
            shown(CooldownRule::check_cooldown(Duration::ZERO)),
            "health: cooldown rule cooldown must be longer than zero"
        );
        assert_eq!(
            shown(Ejection::check_consecutive_failures(0)),
            "health: ejection.consecutive_failures must be at least 1"
        );
        assert_eq!(
            shown(Ejection::check_base(s(30), s(10))),
            "health: ejection.base must be longer than zero and at most max (10s), got 30s"
        );
        assert_eq!(
            shown(Ejection::check_max_percent(150)),
            "health: ejection.max_percent must be at most 100, got 150"
        );
        assert_eq!(
            shown(SlowStart::check_aggression(0.0)),
            "health: slow_start.aggression must be a positive number, got 0"
        );
        assert_eq!(
            shown(SlowStart::check_min_percent(101.0)),
            "health: slow_start.min_percent must be from 0 to 100, got 101"
        );
        assert_eq!(
            shown(Unhealthy::check_threshold_percent(0)),
            "health: unhealthy.threshold_percent must be from 1 to 100, got 0"
        );
        assert_eq!(
            shown(FailureRate::check_ratio(1.5)),
            "health: cooldowns.failure_rate.ratio must be from 0 to 1, got 1.5"
        );
    }

    #[test]
    fn validate_reports_the_first_bad_setting_in_order() {
        let mut p = HealthPolicy {
            unhealthy: Unhealthy::Panic {
                threshold_percent: 0,
            },
            slow_start: Some(SlowStart {
                window: Duration::from_secs(60),
                aggression: 1.0,
                min_percent: -1.0,
            }),
            ..HealthPolicy::default()
        };
        p.cooldowns.failure_rate = Some(FailureRate {
            min_requests: 5,
            ratio: 2.0,
            cooldown: Duration::from_secs(5),
        });
        assert_eq!(
            shown(p.validate()),
            "health: slow_start.min_percent must be from 0 to 100, got -1"
        );
        p.slow_start = None;
        assert_eq!(
            shown(p.validate()),
            "health: unhealthy.threshold_percent must be from 1 to 100, got 0"
        );
        p.unhealthy = Unhealthy::Fail;
        assert_eq!(
            shown(p.validate()),
            "health: cooldowns.failure_rate.ratio must be from 0 to 1, got 2"
        );
        p.ejection.as_mut().unwrap().max_percent = 101;
        assert_eq!(
            shown(p.validate()),
            "health: ejection.max_percent must be at most 100, got 101"
        );
    }
}
