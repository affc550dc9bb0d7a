//! The health policy of a fleet file: a preset and its overrides, resolved
//! into a [`HealthPolicy`] and written back from one.

mod overrides;
mod preset;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use overrides::{
    CooldownSetting, EjectionConfig, FailureRateConfig, Override, RetryAfterMode, RuleConfig,
    SlowStartConfig, UnhealthyConfig,
};
pub use preset::HealthPreset;

use super::error::{ConfigErrors, Errors, Path};
use crate::Error;
use crate::health::{
    CooldownRule, Ejection, FailureKind, FailureRate, HealthPolicy, RetryAfter, SlowStart,
    Unhealthy, ValidHealthPolicy,
};

/// The health policy: a preset, and overrides of any part of it.
///
/// Every field but `preset` is an override; left out, the preset's value
/// holds. See the [module docs](crate::config#schema) for the fields and
/// [`health`](crate::health) for what they do.
///
/// ```
/// use modelfleet::config::HealthConfig;
/// use modelfleet::health::{FailureKind, HealthPolicy};
///
/// let c: HealthConfig = serde_json::from_str(r#"{
///   "preset": "dify",
///   "cooldowns": { "rate_limited": { "cooldown_ms": 5000 }, "connection_error": null },
///   "unhealthy": { "panic": 50 }
/// }"#)?;
/// let policy = c.resolve()?;
/// let limited = FailureKind::rate_limited(None);
/// assert_eq!(policy.cooldowns.rule(limited).unwrap().cooldown().as_millis(), 5000);
/// assert!(policy.cooldowns.rule(FailureKind::ConnectionError).is_none());
///
/// // Any policy can be written back.
/// assert_eq!(HealthConfig::from_policy(&policy).resolve()?, policy);
/// assert_eq!(HealthConfig::from_policy(&HealthPolicy::litellm()).preset.to_string(), "litellm");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HealthConfig {
    /// The preset the overrides apply to (default [`HealthPreset::Default`]).
    #[serde(default)]
    pub preset: HealthPreset,
    /// Per failure kind name (`rate_limited`, `timeout`, …): its rule.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "cooldowns"
    )]
    pub cooldowns: BTreeMap<String, CooldownSetting>,
    /// What `Retry-After` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<RetryAfterMode>,
    /// Cool only models with at least this many deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_group_size: Option<u32>,
    /// The failure-rate rule.
    #[serde(default, skip_serializing_if = "Override::is_keep")]
    pub failure_rate: Override<FailureRateConfig>,
    /// Outlier ejection.
    #[serde(default, skip_serializing_if = "Override::is_keep")]
    pub ejection: Override<EjectionConfig>,
    /// Slow start.
    #[serde(default, skip_serializing_if = "Override::is_keep")]
    pub slow_start: Override<SlowStartConfig>,
    /// What to do when nothing is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy: Option<UnhealthyConfig>,
    /// The latency a counted failure feeds into the estimate, in milliseconds.
    #[serde(default, skip_serializing_if = "Override::is_keep")]
    pub failure_penalty_ms: Override<u64>,
}

/// Reports at `at` what a health check found wrong, in the check's own
/// words (the one set of range checks lives with the policy, in
/// [`crate::health`]); `true` when the check passed.
fn report(errs: &mut Errors, at: &Path, checked: Result<(), Error>) -> bool {
    match checked {
        Ok(()) => true,
        Err(Error::InvalidHealth { problem, .. }) => {
            errs.push(at, problem);
            false
        }
        Err(other) => {
            errs.push(at, other.to_string());
            false
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn cooldowns<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, CooldownSetting>, D::Error> {
    crate::unique_keys::map(d, "health.cooldowns")
}

impl HealthConfig {
    pub(crate) fn is_default(&self) -> bool {
        *self == HealthConfig::default()
    }

    /// Applies the overrides to the preset and checks the result.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] with every setting out of range and every unknown
    /// failure kind, each at its place (`ejection.max_percent`,
    /// `cooldowns.timeout.failures`, …).
    ///
    /// ```
    /// use modelfleet::config::HealthConfig;
    /// use modelfleet::health::FailureKind;
    ///
    /// let c: HealthConfig = serde_json::from_str(r#"{
    ///   "cooldowns": {"rate_limted": {"cooldown_ms": 1000}},
    ///   "ejection": {"base_ms": 0},
    ///   "unhealthy": {"panic": 0}
    /// }"#)?;
    /// let kinds: Vec<&str> = FailureKind::ALL.iter().map(|k| k.as_str()).collect();
    /// assert_eq!(c.resolve().unwrap_err().to_string(), format!("\
    /// cooldowns.rate_limted: unknown failure kind \"rate_limted\": expected one of {}
    /// ejection.base_ms: must be more than 0
    /// unhealthy.panic: must be from 1 to 100, got 0", kinds.join(", ")));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn resolve(&self) -> Result<HealthPolicy, ConfigErrors> {
        let mut errs = Errors::default();
        let p = self.check(&Path::root(), &mut errs);
        errs.into_result()?;
        p.map(ValidHealthPolicy::into_inner)
            .ok_or_else(|| ConfigErrors(Vec::new()))
    }

    pub(crate) fn check(&self, at: &Path, errs: &mut Errors) -> Option<ValidHealthPolicy> {
        let before = errs.len();
        let preset = self.preset.policy();
        let mut p = preset.clone();
        let positive = |errs: &mut Errors, at: &Path, v: u64| {
            if v == 0 {
                errs.push(at, "must be more than 0".to_owned());
            }
        };

        for (name, setting) in &self.cooldowns {
            let at = at.key("cooldowns").key(name);
            let kind = match name.parse::<FailureKind>() {
                Ok(k) => k,
                Err(e) => {
                    errs.push(&at, e.to_string());
                    continue;
                }
            };
            match setting {
                CooldownSetting::Off => p.cooldowns.set_counted(kind, false),
                CooldownSetting::Counted => {
                    p.cooldowns.set_rule(kind, None);
                    p.cooldowns.set_counted(kind, true);
                }
                CooldownSetting::Rule(r) => {
                    let base = preset.cooldowns.rule(kind);
                    let failures = r.failures.or(base.map(CooldownRule::failures)).unwrap_or(1);
                    let window = r.window_ms.or(base.map(|b| ms(b.window()))).unwrap_or(0);
                    let cooldown = r.cooldown_ms.or(base.map(|b| ms(b.cooldown())));
                    let before = errs.len();
                    let checked = CooldownRule::check_failures(failures);
                    if report(errs, &at.key("failures"), checked) && failures > 1 && window == 0 {
                        errs.push(
                            &at.key("window_ms"),
                            "must be more than 0 when failures is more than 1".to_owned(),
                        );
                    }
                    match cooldown {
                        None => errs.push(
                            &at.key("cooldown_ms"),
                            format!(
                                "required: preset {:?} has no rule for {kind} to take it from",
                                self.preset.to_string()
                            ),
                        ),
                        Some(c) => positive(errs, &at.key("cooldown_ms"), c),
                    }
                    if errs.len() == before
                        && let Some(c) = cooldown
                        && let Ok(rule) = CooldownRule::new(
                            failures,
                            Duration::from_millis(window),
                            Duration::from_millis(c),
                        )
                    {
                        p.cooldowns.set_rule(kind, Some(rule));
                    }
                }
            }
        }
        if let Some(mode) = self.retry_after {
            p.cooldowns.retry_after = match mode {
                RetryAfterMode::Cools => RetryAfter::Cools,
                RetryAfterMode::SetsEnd => RetryAfter::SetsEnd,
            };
        }
        if let Some(n) = self.min_group_size {
            p.cooldowns.min_group_size = n;
        }
        match &self.failure_rate {
            Override::Keep => {}
            Override::Off => p.cooldowns.failure_rate = None,
            Override::Set(c) => {
                let at = at.key("failure_rate");
                let base = preset.cooldowns.failure_rate.unwrap_or(FailureRate {
                    min_requests: 5,
                    ratio: 0.5,
                    cooldown: Duration::from_secs(5),
                });
                let rate = FailureRate {
                    min_requests: c.min_requests.unwrap_or(base.min_requests),
                    ratio: c.ratio.unwrap_or(base.ratio),
                    cooldown: c.cooldown_ms.map_or(base.cooldown, Duration::from_millis),
                };
                if rate.min_requests == 0 {
                    errs.push(&at.key("min_requests"), "must be at least 1".to_owned());
                }
                report(errs, &at.key("ratio"), FailureRate::check_ratio(rate.ratio));
                positive(errs, &at.key("cooldown_ms"), ms(rate.cooldown));
                p.cooldowns.failure_rate = Some(rate);
            }
        }
        match &self.ejection {
            Override::Keep => {}
            Override::Off => p.ejection = None,
            Override::Set(c) => {
                let at = at.key("ejection");
                let base = preset.ejection.unwrap_or_default();
                let percent = c.max_percent.unwrap_or(base.max_percent.into());
                let e = Ejection {
                    consecutive_failures: c
                        .consecutive_failures
                        .unwrap_or(base.consecutive_failures),
                    base: c.base_ms.map_or(base.base, Duration::from_millis),
                    max: c.max_ms.map_or(base.max, Duration::from_millis),
                    max_percent: u8::try_from(percent.min(100)).unwrap_or(100),
                    interval: c.interval_ms.map_or(base.interval, Duration::from_millis),
                };
                report(
                    errs,
                    &at.key("consecutive_failures"),
                    Ejection::check_consecutive_failures(e.consecutive_failures),
                );
                positive(errs, &at.key("base_ms"), ms(e.base));
                if !e.base.is_zero() && e.max < e.base {
                    errs.push(
                        &at.key("max_ms"),
                        format!(
                            "must be at least base_ms ({}), got {}",
                            ms(e.base),
                            ms(e.max)
                        ),
                    );
                }
                report(
                    errs,
                    &at.key("max_percent"),
                    Ejection::check_max_percent(percent),
                );
                positive(errs, &at.key("interval_ms"), ms(e.interval));
                p.ejection = Some(e);
            }
        }
        match &self.slow_start {
            Override::Keep => {}
            Override::Off => p.slow_start = None,
            Override::Set(c) => {
                let at = at.key("slow_start");
                let base = preset.slow_start;
                let window = c.window_ms.or(base.map(|b| ms(b.window)));
                let s = SlowStart {
                    window: Duration::from_millis(window.unwrap_or(0)),
                    aggression: c.aggression.or(base.map(|b| b.aggression)).unwrap_or(1.0),
                    min_percent: c
                        .min_percent
                        .or(base.map(|b| b.min_percent))
                        .unwrap_or(10.0),
                };
                match window {
                    None => errs.push(
                        &at.key("window_ms"),
                        format!(
                            "required: preset {:?} has no slow start to take it from",
                            self.preset.to_string()
                        ),
                    ),
                    Some(w) => positive(errs, &at.key("window_ms"), w),
                }
                report(
                    errs,
                    &at.key("aggression"),
                    SlowStart::check_aggression(s.aggression),
                );
                report(
                    errs,
                    &at.key("min_percent"),
                    SlowStart::check_min_percent(s.min_percent),
                );
                p.slow_start = Some(s);
            }
        }
        match self.unhealthy {
            None => {}
            Some(UnhealthyConfig::Fail) => p.unhealthy = Unhealthy::Fail,
            Some(UnhealthyConfig::Panic { threshold_percent }) => {
                let at = at.key("unhealthy").key("panic");
                let checked = Unhealthy::check_threshold_percent(threshold_percent);
                if report(errs, &at, checked) {
                    p.unhealthy = Unhealthy::Panic {
                        threshold_percent: threshold_percent as u8,
                    };
                }
            }
        }
        match self.failure_penalty_ms {
            Override::Keep => {}
            Override::Off => p.failure_penalty = None,
            Override::Set(v) => p.failure_penalty = Some(Duration::from_millis(v)),
        }
        if errs.len() != before {
            return None;
        }
        // Each check of `validate` is made above, at its place; this
        // reports, at the health table, any check made only there.
        match p.validated() {
            Ok(valid) => Some(valid),
            Err(e) => {
                errs.push(at, e.to_string());
                None
            }
        }
    }

    /// A config that resolves to `policy`: the preset it differs least
    /// from, and the overrides (durations in whole milliseconds).
    ///
    /// ```
    /// use modelfleet::config::{HealthConfig, HealthPreset, Override};
    /// use modelfleet::health::HealthPolicy;
    ///
    /// let mut policy = HealthPolicy::dify();
    /// policy.ejection = None;
    /// policy.failure_penalty = Some(std::time::Duration::from_secs(2));
    /// let c = HealthConfig::from_policy(&policy);
    /// assert_eq!(c.preset, HealthPreset::Dify);
    /// assert_eq!(c.failure_penalty_ms, Override::Set(2000));
    /// assert_eq!(c.resolve()?, policy);
    /// # Ok::<(), modelfleet::config::ConfigErrors>(())
    /// ```
    pub fn from_policy(policy: &HealthPolicy) -> Self {
        HealthPreset::ALL
            .iter()
            .copied()
            .map(|preset| overrides(preset, policy))
            .min_by_key(HealthConfig::override_count)
            .unwrap_or_default()
    }

    fn override_count(&self) -> usize {
        self.cooldowns.len()
            + usize::from(self.retry_after.is_some())
            + usize::from(self.min_group_size.is_some())
            + usize::from(!self.failure_rate.is_keep())
            + usize::from(!self.ejection.is_keep())
            + usize::from(!self.slow_start.is_keep())
            + usize::from(self.unhealthy.is_some())
            + usize::from(!self.failure_penalty_ms.is_keep())
    }
}

/// The overrides that turn `preset` into `policy`.
fn overrides(preset: HealthPreset, policy: &HealthPolicy) -> HealthConfig {
    let base = preset.policy();
    let (b, p) = (&base.cooldowns, &policy.cooldowns);
    let mut c = HealthConfig {
        preset,
        ..HealthConfig::default()
    };
    for &kind in FailureKind::ALL {
        if (b.rule(kind), b.counts(kind)) == (p.rule(kind), p.counts(kind)) {
            continue;
        }
        let setting = match p.rule(kind) {
            Some(r) => CooldownSetting::Rule(RuleConfig {
                failures: Some(r.failures()),
                window_ms: Some(ms(r.window())),
                cooldown_ms: Some(ms(r.cooldown())),
            }),
            None if p.counts(kind) => CooldownSetting::Counted,
            None => CooldownSetting::Off,
        };
        c.cooldowns.insert(kind.to_string(), setting);
    }
    if b.retry_after != p.retry_after {
        c.retry_after = Some(match p.retry_after {
            RetryAfter::SetsEnd => RetryAfterMode::SetsEnd,
            RetryAfter::Cools => RetryAfterMode::Cools,
        });
    }
    if b.min_group_size != p.min_group_size {
        c.min_group_size = Some(p.min_group_size);
    }
    if b.failure_rate != p.failure_rate {
        c.failure_rate = p.failure_rate.map_or(Override::Off, |r| {
            Override::Set(FailureRateConfig {
                min_requests: Some(r.min_requests),
                ratio: Some(r.ratio),
                cooldown_ms: Some(ms(r.cooldown)),
            })
        });
    }
    if base.ejection != policy.ejection {
        c.ejection = policy.ejection.map_or(Override::Off, |e| {
            Override::Set(EjectionConfig {
                consecutive_failures: Some(e.consecutive_failures),
                base_ms: Some(ms(e.base)),
                max_ms: Some(ms(e.max)),
                max_percent: Some(e.max_percent.into()),
                interval_ms: Some(ms(e.interval)),
            })
        });
    }
    if base.slow_start != policy.slow_start {
        c.slow_start = policy.slow_start.map_or(Override::Off, |s| {
            Override::Set(SlowStartConfig {
                window_ms: Some(ms(s.window)),
                aggression: Some(s.aggression),
                min_percent: Some(s.min_percent),
            })
        });
    }
    if base.unhealthy != policy.unhealthy {
        c.unhealthy = Some(match policy.unhealthy {
            Unhealthy::Panic { threshold_percent } => UnhealthyConfig::Panic {
                threshold_percent: threshold_percent.into(),
            },
            Unhealthy::Fail => UnhealthyConfig::Fail,
        });
    }
    if base.failure_penalty != policy.failure_penalty {
        c.failure_penalty_ms = policy
            .failure_penalty
            .map_or(Override::Off, |d| Override::Set(ms(d)));
    }
    c
}
