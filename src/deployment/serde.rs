//! Deployments deserialize through the builder, so serde cannot skip
//! validation; the credential is accepted on input and never written.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use semver::Version;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use super::builder::DeploymentBuilder;
use super::{Deployment, Limits, MAX_COOLDOWN};
use crate::error::{Error, Field};
use crate::name::describe;

/// A deployment as serialized, before validation (also read by
/// [`config`](crate::config), which reports every problem with its
/// place). Unknown fields are collected, not refused on sight, so that
/// the error can name the deployment they belong to.
#[derive(Clone, Deserialize)]
pub(crate) struct Repr {
    pub(crate) provider: String,
    pub(crate) model: String,
    #[serde(default)]
    pub(crate) upstream_model: Option<String>,
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    #[serde(default)]
    pub(crate) tag: Option<String>,
    #[serde(default)]
    pub(crate) version: Option<String>,
    #[serde(default, deserialize_with = "crate::unique_keys::labels")]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) weight: Option<Num>,
    #[serde(default)]
    pub(crate) priority: Option<Num>,
    #[serde(default)]
    pub(crate) limits: LimitsRepr,
    #[serde(default)]
    pub(crate) context_window: Option<Num>,
    #[serde(default)]
    pub(crate) cooldown_ms: Option<Num>,
    #[serde(default)]
    pub(crate) credential: Option<String>,
    #[serde(flatten)]
    pub(crate) unknown: BTreeMap<String, de::IgnoredAny>,
}

pub(crate) const FIELDS: &str = "`provider`, `model`, `upstream_model`, `endpoint`, `tag`, `version`, \
    `labels`, `weight`, `priority`, `limits`, `context_window`, `cooldown_ms`, `credential`";
pub(crate) const LIMITS_FIELDS: &str = "`max_in_flight`, `rpm`, `tpm`";

#[derive(Clone, Deserialize, Default)]
pub(crate) struct LimitsRepr {
    #[serde(default)]
    pub(crate) max_in_flight: Option<Num>,
    #[serde(default)]
    pub(crate) rpm: Option<Num>,
    #[serde(default)]
    pub(crate) tpm: Option<Num>,
    #[serde(flatten)]
    pub(crate) unknown: BTreeMap<String, de::IgnoredAny>,
}

impl Limits {
    fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }
}

#[derive(Serialize)]
struct Out<'a> {
    provider: &'a str,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    weight: u32,
    priority: u32,
    #[serde(skip_serializing_if = "Limits::is_unlimited")]
    limits: &'a Limits,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_window: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cooldown_ms: Option<u64>,
}

/// `d` in whole milliseconds, rounded up: a cooldown under a millisecond
/// must not be written as 0, which would mean "never cools".
fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

impl Serialize for Deployment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Out {
            provider: &self.provider,
            model: &self.model,
            upstream_model: self.upstream_model(),
            endpoint: self.endpoint.as_ref().map(Url::as_str),
            tag: self.tag(),
            version: self.version.as_ref().map(Version::to_string),
            labels: &self.labels,
            weight: self.weight,
            priority: self.priority,
            limits: &self.limits,
            context_window: self.context_window(),
            cooldown_ms: self.cooldown.map(ceil_millis),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Deployment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = Repr::deserialize(d)?;
        let unknown = (r.unknown.keys().next())
            .map(|f| (f, "", FIELDS))
            .or_else(|| (r.limits.unknown.keys().next()).map(|f| (f, "limits.", LIMITS_FIELDS)));
        if let Some((field, prefix, expected)) = unknown {
            return Err(de::Error::custom(format_args!(
                "deployment {}: unknown field `{prefix}{field}`, expected one of {expected}",
                describe(&r.provider, &r.model)
            )));
        }
        r.build().map_err(de::Error::custom)
    }
}

impl Repr {
    /// Builds the deployment (unknown fields aside): the first problem
    /// is reported, as by [`DeploymentBuilder::build`].
    pub(crate) fn build(&self) -> Result<Deployment, Error> {
        self.builder().build()
    }

    /// A builder given every field (unknown fields aside): names,
    /// endpoint, tag, version, labels, weight, priority, context window,
    /// limits, cooldown, credential, in that order, so that its problems come in
    /// that order too. The numbers are checked on the way.
    pub(crate) fn builder(&self) -> DeploymentBuilder {
        let r = self;
        let mut b = Deployment::builder(&r.provider, &r.model);
        if let Some(v) = &r.upstream_model {
            b = b.upstream_model(v);
        }
        if let Some(v) = &r.endpoint {
            b = b.endpoint(v);
        }
        if let Some(v) = &r.tag {
            b = b.tag(v);
        }
        if let Some(v) = &r.version {
            b = b.version(v);
        }
        b = b.labels(&r.labels);
        if let Some(v) = b.whole(Field::Weight, r.weight.clone(), u32::MAX.into()) {
            b = b.weight(v as u32);
        }
        if let Some(v) = b.whole(Field::Priority, r.priority.clone(), u32::MAX.into()) {
            b = b.priority(v as u32);
        }
        if let Some(v) = b.whole(
            Field::ContextWindow,
            r.context_window.clone(),
            u32::MAX.into(),
        ) {
            b = b.context_window(v as u32);
        }
        if let Some(v) = b.whole(
            Field::MaxInFlight,
            r.limits.max_in_flight.clone(),
            u32::MAX.into(),
        ) {
            b = b.max_in_flight(v as u32);
        }
        if let Some(v) = b.whole(Field::Rpm, r.limits.rpm.clone(), u32::MAX.into()) {
            b = b.rpm(v as u32);
        }
        if let Some(v) = b.whole(Field::Tpm, r.limits.tpm.clone(), u64::MAX) {
            b = b.tpm(v);
        }
        let max_ms = u64::try_from(MAX_COOLDOWN.as_millis()).unwrap_or(u64::MAX);
        if let Some(v) = b.whole(Field::Cooldown, r.cooldown_ms.clone(), max_ms) {
            b = b.cooldown(Duration::from_millis(v));
        }
        if let Some(v) = &r.credential {
            b = b.credential(v);
        }
        b
    }
}

impl DeploymentBuilder {
    /// Checks a number from a serialized deployment, recording an error
    /// that names the field and the deployment.
    fn whole(&mut self, field: Field, n: Option<Num>, max: u64) -> Option<u64> {
        let problem = match n? {
            Num::U(v) if v <= max => return Some(v),
            Num::U(v) => format!("{v} is larger than {max}"),
            Num::I(v) => format!("{v} is negative"),
            Num::F(v) if v.is_nan() => "NaN is not a number".to_owned(),
            Num::F(v) if v < 0.0 => format!("{v} is negative"),
            Num::F(v) if v.fract() == 0.0 && v <= max as f64 => return Some(v as u64),
            // A huge float in plain notation would be hundreds of digits.
            Num::F(v) if v.abs() >= 1e16 => format!("{v:e} is not a whole number from 0 to {max}"),
            Num::F(v) => format!("{v} is not a whole number from 0 to {max}"),
            Num::Other(v) => format!("{v} is not a number"),
        };
        self.fail(Error::InvalidNumber {
            deployment: self.who.clone(),
            field,
            problem,
        });
        None
    }
}

/// Any number, checked later where the deployment's name is known.
#[derive(Clone)]
pub(crate) enum Num {
    U(u64),
    I(i64),
    F(f64),
    /// A string or a boolean, reported with the field it was found in.
    Other(String),
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num::U(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(if v < 0 { Num::I(v) } else { Num::U(v as u64) })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num::F(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                let shown: String = v.chars().take(40).collect();
                Ok(Num::Other(format!("{shown:?}")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Num, E> {
                Ok(Num::Other(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems found by building, clearing the field of the first
    /// problem and building again, until the build succeeds.
    fn one_at_a_time(r: &Repr) -> Vec<Error> {
        let mut r = r.clone();
        let mut found = Vec::new();
        while let Err(e) = r.build() {
            match e.field().expect("a builder error names its field") {
                Field::Provider => r.provider = "provider".into(),
                Field::Model => r.model = "model".into(),
                Field::UpstreamModel => r.upstream_model = None,
                Field::Endpoint => r.endpoint = None,
                Field::Tag => r.tag = None,
                Field::Version => r.version = None,
                Field::LabelKey | Field::LabelValue => r.labels.clear(),
                Field::Weight => r.weight = None,
                Field::Priority => r.priority = None,
                Field::MaxInFlight => r.limits.max_in_flight = None,
                Field::Rpm => r.limits.rpm = None,
                Field::Tpm => r.limits.tpm = None,
                Field::ContextWindow => r.context_window = None,
                Field::Credential => r.credential = None,
                Field::Cooldown => r.cooldown_ms = None,
            }
            found.push(e);
        }
        found
    }

    #[test]
    fn one_build_collects_what_rebuilding_finds() {
        let r: Repr = serde_json::from_str(
            r#"{"provider": "openai", "model": "gpt-4", "upstream_model": "",
                "endpoint": "http://u:pw@h/", "tag": " t", "version": "1",
                "labels": {"": "x"}, "weight": -1, "priority": 1.5,
                "context_window": 0, "credential": "", "cooldown_ms": -5,
                "limits": {"max_in_flight": "many", "rpm": 0, "tpm": -3}}"#,
        )
        .unwrap();
        let rebuilt = one_at_a_time(&r);
        let collected = r.builder().build_collecting_errors().unwrap_err();
        assert_eq!(collected.len(), 13);
        let show = |es: &[Error]| es.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>();
        assert_eq!(show(&collected), show(&rebuilt));

        let r: Repr = serde_json::from_str(r#"{"provider": "", "model": " ", "rpm": 1}"#).unwrap();
        let fields = |es: &[Error]| es.iter().map(Error::field).collect::<Vec<_>>();
        let collected = r.builder().build_collecting_errors().unwrap_err();
        assert_eq!(fields(&collected), fields(&one_at_a_time(&r)));
        assert_eq!(
            fields(&collected),
            [Some(Field::Provider), Some(Field::Model)]
        );
    }
}
