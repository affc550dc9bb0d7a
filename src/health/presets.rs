//! The preset policies: the default, Dify's, LiteLLM's and none at all.

use std::time::Duration;

use super::{
    CooldownRule, Cooldowns, Ejection, FailureKind, FailureRate, HealthPolicy, RetryAfter,
    Unhealthy,
};

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
    /// Server errors and overload (Dify's "server unavailable") never cool.
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

    /// LiteLLM's router defaults (see the [module docs](crate::health#presets));
    /// no ejection; the default failure penalty for latency estimates.
    ///
    /// ```
    /// use modelfleet::health::{FailureKind, HealthPolicy};
    /// let p = HealthPolicy::litellm();
    /// assert!(!p.cooldowns.counts(FailureKind::BadRequest));
    /// assert!(!p.cooldowns.counts(FailureKind::ConnectionError));
    /// assert!(p.cooldowns.counts(FailureKind::ServerError));
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
        // LiteLLM cools on 408 and 5xx (503 and 529 included) but never on
        // a connection error alone (there is no status to judge the
        // deployment by), so connection errors count toward nothing here.
        for k in [
            FailureKind::Timeout,
            FailureKind::ServerError,
            FailureKind::overloaded(None),
        ] {
            cooldowns.set_counted(k, true);
        }
        cooldowns.retry_after = RetryAfter::SetsEnd;
        cooldowns.min_group_size = 2;
        cooldowns.failure_rate = Some(FailureRate::new(5, 0.5, five));
        Self {
            cooldowns,
            failure_penalty: Self::default().failure_penalty,
            ..Self::disabled()
        }
    }
}
