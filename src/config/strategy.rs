//! The strategy of a fleet file: a name, or a name and its settings.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::error::{ConfigErrors, Errors, Path};
use crate::select::{
    BuiltinStrategy, ConsistentHash, Latency, Load, PowerOfTwo, WeightSource, WeightedRandom,
    WeightedRoundRobin,
};

/// The strategy: a built-in name, with the settings some strategies take.
///
/// Written as a plain name (`"latency"`) when it has no settings, else as a
/// table: `{ "name": "latency", "buffer": 0.1 }`.
///
/// | setting | strategy | value |
/// |---|---|---|
/// | `buffer` | `latency` | a fraction ≥ 0: candidates that much slower than the fastest count as equals |
/// | `bounded_load` | `consistent_hash` | a factor ≥ 1: no deployment holds more than that × the average in flight |
/// | `load` | `power_of_two` | `"in_flight"`, `"in_flight_per_weight"` or `"peak_ewma"` ([`Load`]) |
/// | `weights` | `weighted_random`, `weighted_round_robin` | `"weight"` (the default), `"rpm"`, `"tpm"` or `"litellm"` ([`WeightSource`]): the field weighed by |
/// | `active_request_bias` | `power_of_two` | a number ≥ 0 (default 1): how strongly picks in flight lower an effective weight under `in_flight_per_weight` ([`PowerOfTwo::with_active_request_bias`]) |
///
/// ```
/// use modelfleet::config::StrategyConfig;
///
/// let s: StrategyConfig = serde_json::from_str(r#"{"name": "consistent_hash", "bounded_load": 1.25}"#)?;
/// assert_eq!(s.resolve()?.to_string(), "consistent_hash");
/// let plain: StrategyConfig = serde_json::from_str(r#""round_robin""#)?;
/// assert_eq!(serde_json::to_string(&plain)?, r#""round_robin""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StrategyConfig {
    /// The strategy's name, as [`BuiltinStrategy`] parses it.
    pub name: String,
    /// `latency`'s buffer.
    pub buffer: Option<f64>,
    /// `consistent_hash`'s bounded load factor.
    pub bounded_load: Option<f64>,
    /// `power_of_two`'s load measure.
    pub load: Option<String>,
    /// `power_of_two`'s active request bias.
    pub active_request_bias: Option<f64>,
    /// The weighted strategies' [`WeightSource`], by name.
    pub weights: Option<String>,
}

impl Default for StrategyConfig {
    /// `weighted_round_robin`, the selector's default.
    ///
    /// ```
    /// assert_eq!(modelfleet::config::StrategyConfig::default().name, "weighted_round_robin");
    /// ```
    fn default() -> Self {
        Self::named("weighted_round_robin")
    }
}

impl StrategyConfig {
    /// The strategy `name` with no settings.
    ///
    /// ```
    /// use modelfleet::config::StrategyConfig;
    /// assert_eq!(StrategyConfig::named("latency").resolve()?.to_string(), "latency");
    /// # Ok::<(), modelfleet::config::ConfigErrors>(())
    /// ```
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            buffer: None,
            bounded_load: None,
            load: None,
            active_request_bias: None,
            weights: None,
        }
    }

    /// The config of a built-in strategy: its name and its settings where
    /// they differ from the defaults.
    ///
    /// ```
    /// use modelfleet::config::StrategyConfig;
    /// use modelfleet::select::Latency;
    ///
    /// let s = StrategyConfig::from_strategy(&Latency::with_buffer(0.1)?.into());
    /// assert_eq!((s.name.as_str(), s.buffer), ("latency", Some(0.1)));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn from_strategy(strategy: &BuiltinStrategy) -> Self {
        let mut c = Self::named(&strategy.to_string());
        match strategy {
            BuiltinStrategy::Latency(l) if l.buffer() != 0.0 => c.buffer = Some(l.buffer()),
            BuiltinStrategy::ConsistentHash(h) => c.bounded_load = h.bounded_load(),
            BuiltinStrategy::PowerOfTwo(p) => {
                if p.load() != Load::default() {
                    c.load = Some(p.load().as_str().to_owned());
                }
                let bias = p.active_request_bias();
                if bias != PowerOfTwo::default().active_request_bias() {
                    c.active_request_bias = Some(bias);
                }
            }
            BuiltinStrategy::WeightedRandom(w) => c.weights = source(w.weight_source()),
            BuiltinStrategy::WeightedRoundRobin(w) => c.weights = source(w.weight_source()),
            _ => {}
        }
        c
    }

    /// Checks the settings and makes the strategy.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`]: an unknown name, a setting out of range, or a
    /// setting the strategy does not take.
    ///
    /// ```
    /// use modelfleet::config::StrategyConfig;
    ///
    /// let mut s = StrategyConfig::named("round_robin");
    /// s.buffer = Some(0.1);
    /// assert_eq!(
    ///     s.resolve().unwrap_err().to_string(),
    ///     "buffer: only the latency strategy takes a buffer, not round_robin"
    /// );
    /// ```
    pub fn resolve(&self) -> Result<BuiltinStrategy, ConfigErrors> {
        let mut errs = Errors::default();
        let s = self.check(&Path::root(), &mut errs);
        errs.into_result()?;
        s.ok_or_else(|| ConfigErrors(Vec::new()))
    }

    fn has_settings(&self) -> bool {
        self.buffer.is_some()
            || self.bounded_load.is_some()
            || self.load.is_some()
            || self.active_request_bias.is_some()
            || self.weights.is_some()
    }

    pub(crate) fn check(&self, at: &Path, errs: &mut Errors) -> Option<BuiltinStrategy> {
        let name_at = if self.has_settings() {
            at.key("name")
        } else {
            at.clone()
        };
        let base = match self.name.parse::<BuiltinStrategy>() {
            Ok(s) => Some(s),
            Err(e) => {
                errs.push(&name_at, e.to_string());
                None
            }
        };
        let before = errs.len();
        let name = base.map(|b| b.to_string());
        let only = |errs: &mut Errors, setting: &str, strategy: &str, what: &str| {
            if let Some(n) = &name
                && n != strategy
            {
                errs.push(
                    &at.key(setting),
                    format!("only the {strategy} strategy takes {what}, not {n}"),
                );
            }
        };
        let mut out = base;
        if let Some(b) = self.buffer {
            only(errs, "buffer", "latency", "a buffer");
            match Latency::with_buffer(b) {
                Ok(l) if matches!(out, Some(BuiltinStrategy::Latency(_))) => out = Some(l.into()),
                Ok(_) => {}
                Err(_) => errs.push(
                    &at.key("buffer"),
                    format!("must be a finite number of at least 0, got {b}"),
                ),
            }
        }
        if let Some(f) = self.bounded_load {
            only(errs, "bounded_load", "consistent_hash", "a bounded load");
            match ConsistentHash::with_bounded_load(f) {
                Ok(h) if matches!(out, Some(BuiltinStrategy::ConsistentHash(_))) => {
                    out = Some(h.into());
                }
                Ok(_) => {}
                Err(_) => errs.push(
                    &at.key("bounded_load"),
                    format!("must be a finite number of at least 1, got {f}"),
                ),
            }
        }
        if let Some(l) = &self.load {
            only(errs, "load", "power_of_two", "a load");
            match Load::from_name(l) {
                Some(load) if matches!(out, Some(BuiltinStrategy::PowerOfTwo(_))) => {
                    out = Some(PowerOfTwo::new(load).into());
                }
                Some(_) => {}
                None => errs.push(
                    &at.key("load"),
                    format!("unknown load {l:?}: expected one of {}", Load::EXPECTED),
                ),
            }
        }
        if let Some(bias) = self.active_request_bias {
            only(
                errs,
                "active_request_bias",
                "power_of_two",
                "an active request bias",
            );
            match (PowerOfTwo::DEFAULT.with_active_request_bias(bias), out) {
                (Err(_), _) => errs.push(
                    &at.key("active_request_bias"),
                    format!("must be a finite number of at least 0, got {bias}"),
                ),
                (Ok(_), Some(BuiltinStrategy::PowerOfTwo(p))) => {
                    out = p.with_active_request_bias(bias).ok().map(Into::into);
                }
                (Ok(_), _) => {}
            }
        }
        if let Some(w) = &self.weights {
            const BOTH: [&str; 2] = [WeightedRandom::NAME, WeightedRoundRobin::NAME];
            if let Some(n) = &name
                && !BOTH.contains(&n.as_str())
            {
                errs.push(
                    &at.key("weights"),
                    format!("only the weighted_random and weighted_round_robin strategies take weights, not {n}"),
                );
            }
            match w.parse::<WeightSource>() {
                Ok(source) => match out {
                    Some(BuiltinStrategy::WeightedRandom(_)) => {
                        out = Some(WeightedRandom::with_weights(source).into());
                    }
                    Some(BuiltinStrategy::WeightedRoundRobin(_)) => {
                        out = Some(WeightedRoundRobin::with_weights(source).into());
                    }
                    _ => {}
                },
                Err(_) => errs.push(
                    &at.key("weights"),
                    format!(
                        "unknown weight source {w:?}: expected one of {}",
                        WeightSource::EXPECTED
                    ),
                ),
            }
        }
        out.filter(|_| errs.len() == before)
    }
}

/// The name of `source` where it differs from the default.
fn source(source: WeightSource) -> Option<String> {
    (source != WeightSource::default()).then(|| source.as_str().to_owned())
}

/// A built-in strategy is written as its [`StrategyConfig`]: a plain name at
/// the default settings, else a table of the name and the settings that
/// differ; it reads back through [`StrategyConfig::resolve`], so the same
/// checks apply and nothing is dropped.
///
/// ```
/// use modelfleet::select::{BuiltinStrategy, ConsistentHash};
///
/// let s: BuiltinStrategy = ConsistentHash::with_bounded_load(1.25)?.into();
/// let json = serde_json::to_string(&s)?;
/// assert_eq!(json, r#"{"name":"consistent_hash","bounded_load":1.25}"#);
/// assert_eq!(serde_json::from_str::<BuiltinStrategy>(&json)?, s);
/// assert_eq!(serde_json::to_string(&BuiltinStrategy::all()[0])?, r#""round_robin""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl Serialize for BuiltinStrategy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StrategyConfig::from_strategy(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for BuiltinStrategy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StrategyConfig::deserialize(d)?
            .resolve()
            .map_err(de::Error::custom)
    }
}

impl Serialize for StrategyConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.has_settings() {
            return s.serialize_str(&self.name);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &self.name)?;
        if let Some(b) = self.buffer {
            m.serialize_entry("buffer", &b)?;
        }
        if let Some(f) = self.bounded_load {
            m.serialize_entry("bounded_load", &f)?;
        }
        if let Some(l) = &self.load {
            m.serialize_entry("load", l)?;
        }
        if let Some(b) = self.active_request_bias {
            m.serialize_entry("active_request_bias", &b)?;
        }
        if let Some(w) = &self.weights {
            m.serialize_entry("weights", w)?;
        }
        m.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyTable {
    name: String,
    #[serde(default)]
    buffer: Option<f64>,
    #[serde(default)]
    bounded_load: Option<f64>,
    #[serde(default)]
    load: Option<String>,
    #[serde(default)]
    active_request_bias: Option<f64>,
    #[serde(default)]
    weights: Option<String>,
}

impl<'de> Deserialize<'de> for StrategyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrategyConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a strategy name or a table with `name` and its settings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrategyConfig, E> {
                Ok(StrategyConfig::named(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StrategyConfig, A::Error> {
                let t = StrategyTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(StrategyConfig {
                    name: t.name,
                    buffer: t.buffer,
                    bounded_load: t.bounded_load,
                    load: t.load,
                    active_request_bias: t.active_request_bias,
                    weights: t.weights,
                })
            }
        }
        d.deserialize_any(V)
    }
}
