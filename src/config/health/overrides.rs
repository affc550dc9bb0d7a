//! The parts of a health preset a fleet file overrides, each with its
//! format.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

#[cfg(doc)]
use crate::health::{
    CooldownRule, Ejection, FailureRate, MAX_RULE_FAILURES, RetryAfter, SlowStart, Unhealthy,
};

/// An override of a part of a preset that can be turned off.
///
/// Left out of the file: [`Keep`](Self::Keep). `false` or `null`:
/// [`Off`](Self::Off) (written as `false`, which TOML can hold). A value:
/// [`Set`](Self::Set).
///
/// ```
/// use modelfleet::config::{HealthConfig, Override};
///
/// let c: HealthConfig = serde_json::from_str(r#"{"ejection": null, "failure_penalty_ms": 2000}"#)?;
/// assert_eq!(c.ejection, Override::Off);
/// assert_eq!(c.failure_penalty_ms, Override::Set(2000));
/// assert_eq!(c.slow_start, Override::Keep);
/// assert_eq!(serde_json::to_string(&c)?, r#"{"preset":"default","ejection":false,"failure_penalty_ms":2000}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Override<T> {
    /// The preset's value holds.
    #[default]
    Keep,
    /// Turned off.
    Off,
    /// Set to this (a table overrides only the fields it names).
    Set(T),
}

impl<T> Override<T> {
    /// Whether this is [`Override::Keep`].
    ///
    /// ```
    /// assert!(modelfleet::config::Override::<u64>::Keep.is_keep());
    /// ```
    pub fn is_keep(&self) -> bool {
        matches!(self, Override::Keep)
    }
}

impl<T: Serialize> Serialize for Override<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Override::Keep => s.serialize_none(),
            Override::Off => s.serialize_bool(false),
            Override::Set(v) => v.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Override<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Override<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value, or false or null to turn it off")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Override<T>, E> {
                Ok(Override::Off)
            }
            fn visit_none<E: de::Error>(self) -> Result<Override<T>, E> {
                Ok(Override::Off)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Override<T>, D2::Error> {
                Override::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Override<T>, E> {
                if v {
                    Err(E::invalid_value(de::Unexpected::Bool(true), &self))
                } else {
                    Ok(Override::Off)
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Override<T>, E> {
                T::deserialize(v.into_deserializer()).map(Override::Set)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Override<T>, E> {
                T::deserialize(v.into_deserializer()).map(Override::Set)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Override<T>, E> {
                T::deserialize(v.into_deserializer()).map(Override::Set)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Override<T>, E> {
                T::deserialize(v.into_deserializer()).map(Override::Set)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Override<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Override::Set)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// What a failure kind does: a cooldown rule, counted only, or nothing.
///
/// ```
/// use modelfleet::config::{CooldownSetting, HealthConfig};
///
/// let c: HealthConfig = serde_json::from_str(r#"{"cooldowns": {
///   "timeout": {"failures": 2, "window_ms": 10000, "cooldown_ms": 5000},
///   "server_error": "counted",
///   "other": false
/// }}"#)?;
/// assert_eq!(c.cooldowns["server_error"], CooldownSetting::Counted);
/// assert_eq!(c.cooldowns["other"], CooldownSetting::Off);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CooldownSetting {
    /// `false` or `null`: failures of this kind neither cool nor count.
    Off,
    /// `"counted"`: they count toward the failure rate, and never cool by
    /// themselves.
    Counted,
    /// A rule (fields left out come from the preset's rule for the kind).
    Rule(RuleConfig),
}

impl Serialize for CooldownSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CooldownSetting::Off => s.serialize_bool(false),
            CooldownSetting::Counted => s.serialize_str("counted"),
            CooldownSetting::Rule(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for CooldownSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CooldownSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a rule {failures, window_ms, cooldown_ms}, \"counted\", or false or null",
                )
            }
            fn visit_unit<E: de::Error>(self) -> Result<CooldownSetting, E> {
                Ok(CooldownSetting::Off)
            }
            fn visit_none<E: de::Error>(self) -> Result<CooldownSetting, E> {
                Ok(CooldownSetting::Off)
            }
            fn visit_some<D2: Deserializer<'de>>(
                self,
                d: D2,
            ) -> Result<CooldownSetting, D2::Error> {
                CooldownSetting::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<CooldownSetting, E> {
                if v {
                    Err(E::invalid_value(de::Unexpected::Bool(true), &self))
                } else {
                    Ok(CooldownSetting::Off)
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CooldownSetting, E> {
                match v {
                    "counted" => Ok(CooldownSetting::Counted),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CooldownSetting, A::Error> {
                RuleConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(CooldownSetting::Rule)
            }
        }
        d.deserialize_any(V)
    }
}

/// A cooldown rule: `failures` counted failures within `window_ms` cool
/// the deployment for `cooldown_ms` ([`CooldownRule`]).
///
/// Fields left out come from the preset's rule for the kind; if it has
/// none, `failures` is 1, `window_ms` 0 and `cooldown_ms` is required.
///
/// ```
/// use modelfleet::config::RuleConfig;
///
/// let r: RuleConfig = serde_json::from_str(r#"{"failures": 3, "window_ms": 60000, "cooldown_ms": 30000}"#)?;
/// assert_eq!(r.failures, Some(3));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleConfig {
    /// Counted failures that trigger it (1 to [`MAX_RULE_FAILURES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    /// Within how long, in milliseconds (more than 0 when `failures` > 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// How long it cools, in milliseconds (more than 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<u64>,
}

/// Outlier ejection settings ([`Ejection`]); fields left out come from the
/// preset's ejection, or Envoy's defaults if it has none (5 failures, 30 s
/// base, 300 s max, 10%, 10 s interval).
///
/// ```
/// use modelfleet::config::HealthConfig;
///
/// let c: HealthConfig = serde_json::from_str(r#"{"preset": "disabled", "ejection": {"max_percent": 50}}"#)?;
/// let ejection = c.resolve()?.ejection.unwrap();
/// assert_eq!((ejection.max_percent, ejection.consecutive_failures), (50, 5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EjectionConfig {
    /// Server-side failures in a row that eject (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// The first ejection's length, in milliseconds (more than 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ms: Option<u64>,
    /// The longest ejection, in milliseconds (at least `base_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
    /// The most of a model's deployments ejected at once, in percent (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_percent: Option<u32>,
    /// Each interval without an ejection takes one off the multiplier, in
    /// milliseconds (more than 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

/// Slow start settings ([`SlowStart`]); fields left out come from the
/// preset's slow start, or else `aggression` is 1.0, `min_percent` 10 and
/// `window_ms` is required.
///
/// ```
/// use modelfleet::config::HealthConfig;
///
/// let c: HealthConfig = serde_json::from_str(r#"{"slow_start": {"window_ms": 60000}}"#)?;
/// let ramp = c.resolve()?.slow_start.unwrap();
/// assert_eq!((ramp.window.as_secs(), ramp.aggression, ramp.min_percent), (60, 1.0, 10.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SlowStartConfig {
    /// How long the ramp lasts, in milliseconds (more than 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// The ramp's shape (a positive number; 1.0 is linear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
    /// The smallest share of the weight during the ramp, in percent (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_percent: Option<f64>,
}

/// Failure-rate settings ([`FailureRate`]); fields left out come from the
/// preset's rule, or else LiteLLM's (5 requests, ratio 0.5, 5 s).
///
/// ```
/// use modelfleet::config::HealthConfig;
///
/// let c: HealthConfig = serde_json::from_str(r#"{"failure_rate": {"ratio": 0.25}}"#)?;
/// let rate = c.resolve()?.cooldowns.failure_rate.unwrap();
/// assert_eq!((rate.min_requests, rate.ratio), (5, 0.25));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FailureRateConfig {
    /// The smallest number of completed requests in the minute (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u32>,
    /// The failure share above which it cools (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// How long it cools, in milliseconds (more than 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<u64>,
}

/// What `Retry-After` on a rate-limited report does ([`RetryAfter`]).
///
/// ```
/// use modelfleet::config::{HealthConfig, RetryAfterMode};
/// let c: HealthConfig = serde_json::from_str(r#"{"retry_after": "sets_end"}"#)?;
/// assert_eq!(c.retry_after, Some(RetryAfterMode::SetsEnd));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetryAfterMode {
    /// `"cools"`: [`RetryAfter::Cools`].
    Cools,
    /// `"sets_end"`: [`RetryAfter::SetsEnd`].
    SetsEnd,
}

/// What to do when no eligible deployment is healthy ([`Unhealthy`]):
/// `"fail"`, or `{"panic": threshold_percent}`.
///
/// ```
/// use modelfleet::config::{HealthConfig, UnhealthyConfig};
/// let c: HealthConfig = serde_json::from_str(r#"{"unhealthy": {"panic": 50}}"#)?;
/// assert_eq!(c.unhealthy, Some(UnhealthyConfig::Panic { threshold_percent: 50 }));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnhealthyConfig {
    /// `"fail"`: [`Unhealthy::Fail`].
    Fail,
    /// `{"panic": n}`: [`Unhealthy::Panic`] below `n`% healthy (1–100).
    Panic {
        /// The healthy share, in percent, below which health is ignored.
        threshold_percent: u32,
    },
}

impl Serialize for UnhealthyConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UnhealthyConfig::Fail => s.serialize_str("fail"),
            UnhealthyConfig::Panic { threshold_percent } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("panic", threshold_percent)?;
                m.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PanicTable {
    panic: u32,
}

impl<'de> Deserialize<'de> for UnhealthyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UnhealthyConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"fail\" or a table {panic = threshold_percent}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UnhealthyConfig, E> {
                match v {
                    "fail" => Ok(UnhealthyConfig::Fail),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UnhealthyConfig, A::Error> {
                let t = PanicTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(UnhealthyConfig::Panic {
                    threshold_percent: t.panic,
                })
            }
        }
        d.deserialize_any(V)
    }
}
