//! Fleet files: a whole fleet (identity policy, strategy, seed, health,
//! fallbacks and deployments) as plain serde types, validated with the place
//! of every problem.
//!
//! The types here are format-agnostic: read them with any serde format
//! (JSON, TOML, YAML, …). [`FleetConfig::build`] checks everything and
//! returns a [`BuiltFleet`]: the [`Registry`], the [`BuiltinStrategy`], the
//! seed, the [`HealthPolicy`] and the fallbacks, ready for a [`Selector`].
//! [`BuiltFleet::to_config`] and [`FleetConfig::from_registry`] go the other
//! way, so config → registry → config round-trips.
//!
//! # Schema
//!
//! Every field is optional except the deployments' `provider` and `model`.
//! Names are exactly the strings the library parses: identity policies
//! ([`Policy`]), strategy names ([`BuiltinStrategy`]) and failure kind names
//! ([`FailureKind`]).
//!
//! | field | value | default |
//! |---|---|---|
//! | `identity` | an identity policy: `"name"`, `"name+endpoint"`, `"name+tag+version"`, … | `"name+endpoint"` |
//! | `strategy` | a strategy name, or a table `{name, buffer, bounded_load, load}` ([`StrategyConfig`]) | `"weighted_round_robin"` |
//! | `seed` | the selector's random seed | `0` |
//! | `health` | a `preset` and overrides ([`HealthConfig`]) | preset `"default"` |
//! | `on_duplicate` | `"reject"`: deployments that share a key are an error; `"replace"`: the later one wins | `"reject"` |
//! | `fallbacks` | model → models to fall back to, in order | none |
//! | `deployments` | deployments, with the fields of a serialized [`Deployment`] | none |
//!
//! `health` ([`HealthConfig`]) starts from a `preset` (`"default"`, `"dify"`,
//! `"litellm"`, `"disabled"`, see [`health`](crate::health#presets)) and
//! overrides any part of it. Durations are whole milliseconds (`_ms`).
//!
//! | `health` field | value |
//! |---|---|
//! | `cooldowns.<failure kind>` | a rule `{failures, window_ms, cooldown_ms}`, `"counted"` (counts toward the failure rate, never cools by itself), or `false`/`null` (neither counts nor cools) |
//! | `retry_after` | `"cools"` or `"sets_end"` ([`RetryAfter`]) |
//! | `min_group_size` | cool only models with at least this many deployments |
//! | `failure_rate` | `{min_requests, ratio, cooldown_ms}`, or `false`/`null` |
//! | `ejection` | `{consecutive_failures, base_ms, max_ms, max_percent, interval_ms}`, or `false`/`null` |
//! | `slow_start` | `{window_ms, aggression, min_percent}`, or `false`/`null` |
//! | `unhealthy` | `"fail"`, or `{panic = threshold_percent}` |
//! | `failure_penalty_ms` | a number, or `false`/`null` |
//!
//! A table overrides only the fields it names; the others come from the
//! preset (see each type for the defaults when the preset has none). TOML
//! has no `null`: write `false`, which every format reads the same way.
//!
//! Unknown fields are refused everywhere. Structural problems (an unknown
//! field outside a deployment, a wrong type) are the format's errors and
//! stop parsing; every other problem is collected by
//! [`FleetConfig::build`] into [`ConfigErrors`], one [`ConfigError`] per
//! problem, each naming its place: `deployments[3].endpoint`,
//! `health.ejection.max_percent`, `identity`.
//!
//! # Example
//!
//! ```
//! use modelfleet::config::FleetConfig;
//! use modelfleet::Request;
//!
//! let json = r#"{
//!   "identity": "name+endpoint",
//!   "strategy": "weighted_round_robin",
//!   "seed": 7,
//!   "health": {
//!     "preset": "dify",
//!     "cooldowns": { "server_error": { "failures": 3, "window_ms": 60000, "cooldown_ms": 30000 } },
//!     "ejection": { "consecutive_failures": 5, "max_percent": 50 },
//!     "unhealthy": { "panic": 50 }
//!   },
//!   "on_duplicate": "reject",
//!   "fallbacks": { "gpt-4": ["gpt-4o-mini"] },
//!   "deployments": [
//!     { "provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.1/v1", "weight": 3 },
//!     { "provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.2/v1" },
//!     { "provider": "openai", "model": "gpt-4o-mini", "labels": { "region": "eu" } }
//!   ]
//! }"#;
//! let config: FleetConfig = serde_json::from_str(json)?;
//! let fleet = config.build()?;
//! assert_eq!(fleet.registry.len(), 3);
//!
//! let selector = fleet.selector();
//! let pick = selector.select(&fleet.request("gpt-4"))?;
//! assert_eq!(pick.deployment().model(), "gpt-4");
//! assert_eq!(fleet.fallbacks_of("gpt-4"), ["gpt-4o-mini"]);
//!
//! // Back to a config, and to the same fleet.
//! let again = fleet.to_config().build()?;
//! assert_eq!(again.registry, fleet.registry);
//! assert_eq!(again.health, fleet.health);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every problem is reported, each with its place:
//!
//! ```
//! use modelfleet::config::FleetConfig;
//!
//! let json = r#"{
//!   "identity": "name+region",
//!   "health": { "ejection": { "max_percent": 150 } },
//!   "deployments": [
//!     { "provider": "openai", "model": "gpt-4", "endpoint": "http://10.0.0.1/v1?key=1" },
//!     { "provider": "openai", "model": "gpt-4", "weight": -1 }
//!   ]
//! }"#;
//! let config: FleetConfig = serde_json::from_str(json)?;
//! let errors = config.build().unwrap_err();
//! assert_eq!(errors.to_string(), "\
//! identity: unknown identity policy \"name+region\": discriminators are \"endpoint\", \"tag\" and \"version\"
//! health.ejection.max_percent: must be at most 100, got 150
//! deployments[0].endpoint: has a query string; endpoints may not carry one (it often holds secrets)
//! deployments[1].weight: -1 is negative");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::deployment::serde_impl::{FIELDS, LIMITS_FIELDS, Repr};
use crate::error::{Error, Field};
use crate::health::{
    CooldownRule, Ejection, FailureKind, FailureRate, HealthPolicy, MAX_RULE_FAILURES, RetryAfter,
    SlowStart, Unhealthy,
};
use crate::name::{check_free_text, check_name};
use crate::select::{BuiltinStrategy, ConsistentHash, Latency, Load, PowerOfTwo};
use crate::{
    Deployment, Fleet, IdentityPolicy, ModelKey, Policy, Registry, Request, Selector,
    SelectorBuilder,
};

// ---------------------------------------------------------------------------
// The fleet
// ---------------------------------------------------------------------------

/// A whole fleet as written in a file. See the [module docs](self) for the
/// schema and a complete example.
///
/// Build it with [`build`](Self::build); make one from a registry with
/// [`from_registry`](Self::from_registry) or from a built fleet with
/// [`BuiltFleet::to_config`].
///
/// ```
/// use modelfleet::config::FleetConfig;
///
/// let config: FleetConfig = serde_json::from_str(r#"{
///   "identity": "name",
///   "deployments": [{ "provider": "openai", "model": "gpt-4" }]
/// }"#)?;
/// assert_eq!(config.identity, "name");
/// assert_eq!(config.build()?.registry.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FleetConfig {
    /// The identity policy, as [`Policy`] parses it (default `"name+endpoint"`).
    #[serde(default = "default_identity")]
    pub identity: String,
    /// The strategy (default `"weighted_round_robin"`).
    #[serde(default)]
    pub strategy: StrategyConfig,
    /// The selector's random seed (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Health: a preset and overrides (default: preset `"default"`).
    #[serde(default, skip_serializing_if = "HealthConfig::is_default")]
    pub health: HealthConfig,
    /// What deployments sharing a key mean (default [`OnDuplicate::Reject`]).
    #[serde(default, skip_serializing_if = "OnDuplicate::is_reject")]
    pub on_duplicate: OnDuplicate,
    /// Model → models to fall back to, in order, when no deployment of the
    /// model can serve a request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// The deployments, in registry order.
    #[serde(default)]
    pub deployments: Vec<DeploymentEntry>,
}

fn default_identity() -> String {
    Policy::default().to_string()
}

impl Default for FleetConfig {
    /// An empty fleet with every default.
    ///
    /// ```
    /// let c = modelfleet::config::FleetConfig::default();
    /// assert_eq!(c.identity, "name+endpoint");
    /// assert!(c.deployments.is_empty());
    /// ```
    fn default() -> Self {
        Self {
            identity: default_identity(),
            strategy: StrategyConfig::default(),
            seed: 0,
            health: HealthConfig::default(),
            on_duplicate: OnDuplicate::Reject,
            fallbacks: BTreeMap::new(),
            deployments: Vec::new(),
        }
    }
}

/// What deployments that share a key under the identity policy mean.
///
/// ```
/// use modelfleet::config::{FleetConfig, OnDuplicate};
///
/// let json = r#"{"identity": "name", "on_duplicate": "replace", "deployments": [
///   {"provider": "openai", "model": "gpt-4", "endpoint": "http://a/v1"},
///   {"provider": "openai", "model": "gpt-4", "endpoint": "http://b/v1"}
/// ]}"#;
/// let config: FleetConfig = serde_json::from_str(json)?;
/// assert_eq!(config.on_duplicate, OnDuplicate::Replace);
/// let fleet = config.build()?;
/// assert_eq!(fleet.replaced.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnDuplicate {
    /// A deployment whose key an earlier one already has is an error naming
    /// both (the default).
    #[default]
    Reject,
    /// The later deployment replaces the earlier one in its place
    /// ([`Registry::upsert`]); [`BuiltFleet::replaced`] lists each.
    Replace,
}

impl OnDuplicate {
    fn is_reject(&self) -> bool {
        *self == OnDuplicate::Reject
    }
}

/// A fleet built from a [`FleetConfig`]: everything a [`Selector`] or a
/// [`Fleet`] needs.
///
/// ```
/// use modelfleet::config::FleetConfig;
///
/// let config: FleetConfig = serde_json::from_str(r#"{
///   "strategy": "round_robin",
///   "seed": 3,
///   "deployments": [{ "provider": "openai", "model": "gpt-4" }]
/// }"#)?;
/// let fleet = config.build()?;
/// assert_eq!(fleet.strategy.to_string(), "round_robin");
/// assert_eq!(fleet.seed, 3);
/// assert_eq!(fleet.selector().strategy_name(), "round_robin");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BuiltFleet {
    /// The deployments under the identity policy.
    pub registry: Registry<Policy>,
    /// The strategy.
    pub strategy: BuiltinStrategy,
    /// The selector's seed.
    pub seed: u64,
    /// The health policy.
    pub health: HealthPolicy,
    /// Model → fallback models, in order.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// With [`OnDuplicate::Replace`], each replacement, in file order.
    pub replaced: Vec<Replaced>,
}

/// One deployment replaced by a later one with the same key
/// ([`OnDuplicate::Replace`]).
///
/// ```
/// use modelfleet::config::FleetConfig;
///
/// let json = r#"{"identity": "name", "on_duplicate": "replace", "deployments": [
///   {"provider": "openai", "model": "gpt-4", "endpoint": "http://a/v1"},
///   {"provider": "openai", "model": "gpt-4", "endpoint": "http://b/v1"}
/// ]}"#;
/// let fleet = serde_json::from_str::<FleetConfig>(json)?.build()?;
/// let r = &fleet.replaced[0];
/// assert_eq!((r.earlier, r.later), (0, 1));
/// assert_eq!(r.to_string(), "deployments[1] replaced deployments[0] under key openai/gpt-4");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replaced {
    /// The key both share.
    pub key: ModelKey,
    /// The index (in `deployments`) of the entry that was replaced.
    pub earlier: usize,
    /// The index of the entry that replaced it.
    pub later: usize,
}

impl fmt::Display for Replaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deployments[{}] replaced deployments[{}] under key {}",
            self.later, self.earlier, self.key
        )
    }
}

impl FleetConfig {
    /// Checks the whole config and builds the fleet.
    ///
    /// Deployments go into the registry in file order. With
    /// [`OnDuplicate::Replace`] a later deployment with a taken key replaces
    /// the earlier one in its position.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] listing every problem, in the order identity,
    /// strategy, health, deployments (each with the entries whose key it
    /// repeats), fallbacks.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let json = r#"{"identity": "name", "deployments": [
    ///   {"provider": "openai", "model": "gpt-4", "endpoint": "http://192.168.0.1/v1"},
    ///   {"provider": "openai", "model": "gpt-4", "endpoint": "http://192.168.0.2/v1"}
    /// ]}"#;
    /// let errors = serde_json::from_str::<FleetConfig>(json)?.build().unwrap_err();
    /// assert_eq!(errors.len(), 1);
    /// assert_eq!(errors.iter().next().unwrap().path(), "deployments[1]");
    /// assert_eq!(
    ///     errors.to_string(),
    ///     "deployments[1]: openai/gpt-4@http://192.168.0.2/v1 has the same key, openai/gpt-4, \
    ///      as deployments[0] (openai/gpt-4@http://192.168.0.1/v1) under identity \"name\"; \
    ///      identity \"name+endpoint\" keeps both, on_duplicate \"replace\" keeps the later"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(&self) -> Result<BuiltFleet, ConfigErrors> {
        let mut errs = Errors::default();
        let root = Path::root();

        let policy = match self.identity.parse::<Policy>() {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(&root.key("identity"), e.to_string());
                None
            }
        };
        let strategy = self.strategy.check(&root.key("strategy"), &mut errs);
        let health = self.health.check(&root.key("health"), &mut errs);

        // Each entry is checked, then its key compared with the earlier ones,
        // so problems come in file order.
        let mut registry =
            Registry::with_capacity(policy.unwrap_or_default(), self.deployments.len());
        let mut replaced = Vec::new();
        let mut built: Vec<Option<Deployment>> = Vec::with_capacity(self.deployments.len());
        let mut holder: HashMap<ModelKey, usize> = HashMap::new();
        for (i, entry) in self.deployments.iter().enumerate() {
            let at = root.key("deployments").index(i);
            let d = entry.check(&at, &mut errs);
            if let (Some(d), Some(policy)) = (&d, &policy) {
                let key = policy.key(d);
                match (holder.get(&key), self.on_duplicate) {
                    (Some(&earlier), OnDuplicate::Reject) => {
                        let first = built[earlier].as_ref().unwrap_or(d);
                        errs.push(&at, duplicate_message(policy, &key, earlier, first, d));
                    }
                    (earlier, _) => {
                        if let Some(&earlier) = earlier {
                            replaced.push(Replaced {
                                key: key.clone(),
                                earlier,
                                later: i,
                            });
                        }
                        holder.insert(key, i);
                        registry.upsert(d.clone());
                    }
                }
            }
            built.push(d);
        }

        let served: std::collections::BTreeSet<&str> = self
            .deployments
            .iter()
            .map(DeploymentEntry::model)
            .collect();
        let fallbacks_path = root.key("fallbacks");
        for (model, list) in &self.fallbacks {
            let at = fallbacks_path.key(model);
            if !served.contains(model.as_str()) {
                errs.push(&at, format!("no deployment serves model {model:?}"));
            }
            for (j, to) in list.iter().enumerate() {
                let at = at.index(j);
                if to == model {
                    errs.push(&at, "a model cannot fall back to itself".to_owned());
                } else if let Some(first) = list[..j].iter().position(|m| m == to) {
                    errs.push(&at, format!("{to:?} is listed twice (first at [{first}])"));
                } else if !served.contains(to.as_str()) {
                    errs.push(&at, format!("no deployment serves model {to:?}"));
                }
            }
        }

        match (errs.into_result(), strategy, health) {
            (Ok(()), Some(strategy), Some(health)) => Ok(BuiltFleet {
                registry,
                strategy,
                seed: self.seed,
                health,
                fallbacks: self.fallbacks.clone(),
                replaced,
            }),
            (Err(e), _, _) => Err(e),
            // Every `None` above pushed an error.
            (Ok(()), _, _) => Err(ConfigErrors(vec![ConfigError {
                path: Vec::new(),
                message: "invalid fleet".to_owned(),
            }])),
        }
    }

    /// A config holding `registry`'s identity policy and deployments, with
    /// every other setting at its default. Credentials are not written when
    /// the config is serialized.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// use modelfleet::{Deployment, Policy, Registry};
    ///
    /// let mut reg = Registry::new(Policy::NAME_TAG);
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").build()?)?;
    /// let config = FleetConfig::from_registry(&reg);
    /// assert_eq!(config.identity, "name+tag");
    /// assert_eq!(config.build()?.registry, reg);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_registry(registry: &Registry<Policy>) -> Self {
        Self {
            identity: registry.policy().to_string(),
            deployments: registry.deployments().cloned().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// The message for a deployment whose key an earlier one already has.
fn duplicate_message(
    policy: &Policy,
    key: &ModelKey,
    earlier: usize,
    first: &Deployment,
    later: &Deployment,
) -> String {
    // The coarsest built-in policy finer than this one that tells them apart.
    let finer = Policy::all()
        .into_iter()
        .find(|p| p.refines(policy) && p.key(first) != p.key(later));
    let advice = match finer {
        Some(p) => format!("identity {:?} keeps both", p.to_string()),
        None => "they are the same deployment".to_owned(),
    };
    format!(
        "{later} has the same key, {key}, as deployments[{earlier}] ({first}) under identity \
         {:?}; {advice}, on_duplicate \"replace\" keeps the later",
        policy.to_string()
    )
}

impl BuiltFleet {
    /// A selector over the fleet with its strategy, seed and health policy.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let fleet = serde_json::from_str::<FleetConfig>(
    ///     r#"{"seed": 9, "deployments": [{ "provider": "openai", "model": "gpt-4" }]}"#,
    /// )?
    /// .build()?;
    /// let selector = fleet.selector();
    /// let pick = selector.select(&fleet.request("gpt-4"))?;
    /// assert_eq!(pick.key().to_string(), "openai/gpt-4@");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn selector(&self) -> Selector {
        self.selector_builder().build()
    }

    /// A selector builder set up with the fleet's strategy, seed and health
    /// policy, for further settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::config::FleetConfig;
    ///
    /// let fleet = serde_json::from_str::<FleetConfig>(
    ///     r#"{"deployments": [{ "provider": "openai", "model": "gpt-4" }]}"#,
    /// )?
    /// .build()?;
    /// let selector = fleet.selector_builder().latency_decay(Duration::from_secs(5)).build();
    /// assert_eq!(selector.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn selector_builder(&self) -> SelectorBuilder<'_, Policy> {
        self.configure(Selector::builder(&self.registry))
    }

    /// Sets the fleet's strategy, seed and health policy on `builder`, a
    /// builder over this or another registry (e.g. for [`Fleet::new`]).
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// use modelfleet::{Fleet, Request};
    ///
    /// let fleet = serde_json::from_str::<FleetConfig>(
    ///     r#"{"strategy": "round_robin", "deployments": [{ "provider": "openai", "model": "gpt-4" }]}"#,
    /// )?
    /// .build()?;
    /// let live = Fleet::new(fleet.registry.clone(), |b| fleet.configure(b));
    /// assert_eq!(live.selector().strategy_name(), "round_robin");
    /// assert!(live.select(&Request::new("gpt-4")).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn configure<'r, P: IdentityPolicy>(
        &self,
        builder: SelectorBuilder<'r, P>,
    ) -> SelectorBuilder<'r, P> {
        builder
            .strategy(self.strategy)
            .seed(self.seed)
            .health(self.health.clone())
    }

    /// A [`Fleet`] serving the registry with the fleet's settings: a
    /// selector that many threads share while new registry versions are
    /// installed.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// use modelfleet::Request;
    ///
    /// let fleet = serde_json::from_str::<FleetConfig>(
    ///     r#"{"deployments": [{ "provider": "openai", "model": "gpt-4" }]}"#,
    /// )?
    /// .build()?
    /// .fleet();
    /// assert!(fleet.select(&Request::new("gpt-4")).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fleet(&self) -> Fleet<Policy> {
        Fleet::new(self.registry.clone(), |b| self.configure(b))
    }

    /// The fallback models of `model`, in order (empty if none).
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let fleet = serde_json::from_str::<FleetConfig>(r#"{
    ///   "fallbacks": { "gpt-4": ["gpt-4o-mini"] },
    ///   "deployments": [
    ///     { "provider": "openai", "model": "gpt-4" },
    ///     { "provider": "openai", "model": "gpt-4o-mini" }
    ///   ]
    /// }"#)?
    /// .build()?;
    /// assert_eq!(fleet.fallbacks_of("gpt-4"), ["gpt-4o-mini"]);
    /// assert!(fleet.fallbacks_of("gpt-4o-mini").is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fallbacks_of(&self, model: &str) -> &[String] {
        self.fallbacks.get(model).map_or(&[], Vec::as_slice)
    }

    /// A request for `model` with the fleet's fallbacks for it.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let fleet = serde_json::from_str::<FleetConfig>(r#"{
    ///   "fallbacks": { "gpt-4": ["gpt-4o-mini"] },
    ///   "deployments": [
    ///     { "provider": "openai", "model": "gpt-4" },
    ///     { "provider": "openai", "model": "gpt-4o-mini" }
    ///   ]
    /// }"#)?
    /// .build()?;
    /// assert_eq!(fleet.request("gpt-4").fallbacks(), ["gpt-4o-mini"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(&self, model: &str) -> Request {
        self.fallbacks_of(model)
            .iter()
            .fold(Request::new(model), |r, m| r.fallback(m))
    }

    /// The fleet as a config: building it gives the same registry,
    /// strategy, seed, health policy and fallbacks (durations are written
    /// in whole milliseconds; credentials are not written when the config
    /// is serialized).
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let fleet = serde_json::from_str::<FleetConfig>(r#"{
    ///   "identity": "name+tag",
    ///   "strategy": {"name": "latency", "buffer": 0.2},
    ///   "health": {"preset": "litellm", "unhealthy": {"panic": 30}},
    ///   "deployments": [{ "provider": "openai", "model": "gpt-4", "tag": "a" }]
    /// }"#)?
    /// .build()?;
    /// let written = serde_json::to_string(&fleet.to_config())?;
    /// assert_eq!(
    ///     written,
    ///     r#"{"identity":"name+tag","strategy":{"name":"latency","buffer":0.2},"seed":0,"health":{"preset":"litellm","unhealthy":{"panic":30}},"deployments":[{"provider":"openai","model":"gpt-4","tag":"a","weight":1,"priority":0}]}"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_config(&self) -> FleetConfig {
        FleetConfig {
            identity: self.registry.policy().to_string(),
            strategy: StrategyConfig::from_strategy(&self.strategy),
            seed: self.seed,
            health: HealthConfig::from_policy(&self.health),
            on_duplicate: OnDuplicate::Reject,
            fallbacks: self.fallbacks.clone(),
            deployments: self
                .registry
                .deployments()
                .cloned()
                .map(Into::into)
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------------

/// One deployment as written in a fleet file: the fields of a serialized
/// [`Deployment`], checked by [`build`](Self::build) (or
/// [`FleetConfig::build`]) so that every problem is reported with its field.
///
/// Unknown fields are kept until then, so they too are reported with their
/// place. The credential is read but never written.
///
/// ```
/// use modelfleet::config::DeploymentEntry;
/// use modelfleet::Deployment;
///
/// let entry: DeploymentEntry = serde_json::from_str(
///     r#"{"provider": "openai", "model": "gpt-4", "tag": " ", "wieght": 2, "limits": {"rpm": 0}}"#,
/// )?;
/// assert_eq!(entry.build().unwrap_err().to_string(), "\
/// wieght: unknown field, expected one of `provider`, `model`, `upstream_model`, `endpoint`, `tag`, `version`, `labels`, `weight`, `priority`, `limits`, `context_window`, `credential`
/// tag: is empty
/// limits.rpm: must be at least 1 (leave it unset for no limit)");
///
/// let entry = DeploymentEntry::from(Deployment::builder("openai", "gpt-4").build()?);
/// assert_eq!(entry.model(), "gpt-4");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DeploymentEntry(Entry);

#[derive(Clone)]
enum Entry {
    Raw(Box<Repr>),
    Built(Box<Deployment>),
}

impl fmt::Debug for DeploymentEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Entry::Built(d) => f.debug_tuple("DeploymentEntry").field(d).finish(),
            // The raw input may hold a credential: show only the names.
            Entry::Raw(r) => f
                .debug_struct("DeploymentEntry")
                .field("provider", &r.provider)
                .field("model", &r.model)
                .finish_non_exhaustive(),
        }
    }
}

impl From<Deployment> for DeploymentEntry {
    fn from(d: Deployment) -> Self {
        Self(Entry::Built(Box::new(d)))
    }
}

impl DeploymentEntry {
    /// The provider, as written.
    ///
    /// ```
    /// let e: modelfleet::config::DeploymentEntry =
    ///     serde_json::from_str(r#"{"provider": "azure", "model": "gpt-4"}"#)?;
    /// assert_eq!(e.provider(), "azure");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn provider(&self) -> &str {
        match &self.0 {
            Entry::Raw(r) => &r.provider,
            Entry::Built(d) => d.provider(),
        }
    }

    /// The model, as written.
    ///
    /// ```
    /// let e: modelfleet::config::DeploymentEntry =
    ///     serde_json::from_str(r#"{"provider": "azure", "model": "gpt-4"}"#)?;
    /// assert_eq!(e.model(), "gpt-4");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn model(&self) -> &str {
        match &self.0 {
            Entry::Raw(r) => &r.model,
            Entry::Built(d) => d.model(),
        }
    }

    /// Checks the entry and builds the deployment.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] with every problem, each at its field (`endpoint`,
    /// `limits.rpm`, `labels.region`, …).
    ///
    /// ```
    /// use modelfleet::config::DeploymentEntry;
    ///
    /// let entry: DeploymentEntry = serde_json::from_str(
    ///     r#"{"provider": "openai", "model": "gpt-4", "endpoint": "HTTP://Node1:80/v1/"}"#,
    /// )?;
    /// assert_eq!(entry.build()?.endpoint().unwrap().as_str(), "http://node1/v1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(&self) -> Result<Deployment, ConfigErrors> {
        let mut errs = Errors::default();
        let d = self.check(&Path::root(), &mut errs);
        errs.into_result()?;
        d.ok_or_else(|| ConfigErrors(Vec::new()))
    }

    fn check(&self, at: &Path, errs: &mut Errors) -> Option<Deployment> {
        match &self.0 {
            Entry::Built(d) => Some((**d).clone()),
            Entry::Raw(r) => check_repr(r, at, errs),
        }
    }
}

/// Checks a raw deployment, reporting every problem at its field.
///
/// The builder reports the first problem it meets; each problem found is
/// recorded and its field cleared (or, for the provider and model,
/// replaced by a valid stand-in; messages never name the deployment), and
/// the build is tried again.
fn check_repr(r: &Repr, at: &Path, errs: &mut Errors) -> Option<Deployment> {
    let before = errs.len();
    for field in r.unknown.keys() {
        errs.push(
            &at.key(field),
            format!("unknown field, expected one of {FIELDS}"),
        );
    }
    for field in r.limits.unknown.keys() {
        errs.push(
            &at.key("limits").key(field),
            format!("unknown field, expected one of {LIMITS_FIELDS}"),
        );
    }
    let mut r = r.clone();
    let labels = std::mem::take(&mut r.labels);
    for (k, v) in labels {
        let mut ok = true;
        if let Err(problem) = check_name(&k) {
            errs.push(&at.key("labels"), format!("key {problem}"));
            ok = false;
        } else if let Err(problem) = check_free_text(&v) {
            errs.push(&at.key("labels").key(&k), problem.to_string());
            ok = false;
        }
        if ok {
            r.labels.insert(k, v);
        }
    }
    // Each round clears one field, so this ends; the bound is a safeguard.
    for _ in 0..32 {
        let e = match r.build() {
            Ok(d) => return (errs.len() == before).then_some(d),
            Err(e) => e,
        };
        let Some(field) = e.field() else {
            errs.push(at, e.to_string());
            return None;
        };
        let mut place = at.clone();
        for part in field.as_str().split('.') {
            place = place.key(part);
        }
        let message = match &e {
            Error::InvalidName { problem, .. } => problem.to_string(),
            Error::InvalidEndpoint { problem, .. } => problem.to_string(),
            Error::InvalidVersion { input, .. } => format!("{input:?} is not a semantic version"),
            Error::InvalidNumber { problem, .. } => problem.clone(),
            other => other.to_string(),
        };
        errs.push(&place, message);
        match field {
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
        }
    }
    None
}

impl Serialize for DeploymentEntry {
    /// Writes the deployment as [`Deployment`] serializes (without the
    /// credential); an entry that does not build is an error.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Entry::Built(d) => d.serialize(s),
            Entry::Raw(_) => match self.build() {
                Ok(d) => d.serialize(s),
                Err(e) => Err(serde::ser::Error::custom(format_args!(
                    "deployment {}/{} is not valid: {}",
                    self.provider(),
                    self.model(),
                    e.iter().next().map(ToString::to_string).unwrap_or_default()
                ))),
            },
        }
    }
}

impl<'de> Deserialize<'de> for DeploymentEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Repr::deserialize(d).map(|r| Self(Entry::Raw(Box::new(r))))
    }
}

// ---------------------------------------------------------------------------
// Strategy
// ---------------------------------------------------------------------------

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

const LOADS: &str = "in_flight, in_flight_per_weight, peak_ewma";

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
            BuiltinStrategy::PowerOfTwo(p) if p.load() != Load::default() => {
                c.load = Some(load_name(p.load()).to_owned());
            }
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
        self.buffer.is_some() || self.bounded_load.is_some() || self.load.is_some()
    }

    fn check(&self, at: &Path, errs: &mut Errors) -> Option<BuiltinStrategy> {
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
            match parse_load(l) {
                Some(load) if matches!(out, Some(BuiltinStrategy::PowerOfTwo(_))) => {
                    out = Some(PowerOfTwo::new(load).into());
                }
                Some(_) => {}
                None => errs.push(
                    &at.key("load"),
                    format!("unknown load {l:?}: expected one of {LOADS}"),
                ),
            }
        }
        out.filter(|_| errs.len() == before)
    }
}

fn parse_load(s: &str) -> Option<Load> {
    [Load::InFlight, Load::InFlightPerWeight, Load::PeakEwma]
        .into_iter()
        .find(|l| load_name(*l) == s)
}

fn load_name(l: Load) -> &'static str {
    match l {
        Load::InFlight => "in_flight",
        Load::InFlightPerWeight => "in_flight_per_weight",
        Load::PeakEwma => "peak_ewma",
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
                })
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------

/// The health policy: a preset, and overrides of any part of it.
///
/// Every field but `preset` is an override; left out, the preset's value
/// holds. See the [module docs](self#schema) for the fields and
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
/// let limited = FailureKind::RateLimited { retry_after: None };
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
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

/// A health preset (see [`health`](crate::health#presets)).
///
/// ```
/// use modelfleet::config::HealthPreset;
/// use modelfleet::health::HealthPolicy;
///
/// assert_eq!(HealthPreset::Dify.policy(), HealthPolicy::dify());
/// assert_eq!(HealthPreset::Litellm.to_string(), "litellm");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HealthPreset {
    /// [`HealthPolicy::default`].
    #[default]
    Default,
    /// [`HealthPolicy::dify`].
    Dify,
    /// [`HealthPolicy::litellm`].
    Litellm,
    /// [`HealthPolicy::disabled`].
    Disabled,
}

impl HealthPreset {
    const ALL: [HealthPreset; 4] = [
        HealthPreset::Default,
        HealthPreset::Dify,
        HealthPreset::Litellm,
        HealthPreset::Disabled,
    ];

    /// The preset's policy.
    ///
    /// ```
    /// use modelfleet::config::HealthPreset;
    /// assert!(HealthPreset::Disabled.policy().ejection.is_none());
    /// assert!(HealthPreset::Default.policy().ejection.is_some());
    /// ```
    pub fn policy(self) -> HealthPolicy {
        match self {
            HealthPreset::Default => HealthPolicy::default(),
            HealthPreset::Dify => HealthPolicy::dify(),
            HealthPreset::Litellm => HealthPolicy::litellm(),
            HealthPreset::Disabled => HealthPolicy::disabled(),
        }
    }
}

impl fmt::Display for HealthPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthPreset::Default => "default",
            HealthPreset::Dify => "dify",
            HealthPreset::Litellm => "litellm",
            HealthPreset::Disabled => "disabled",
        })
    }
}

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

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl HealthConfig {
    fn is_default(&self) -> bool {
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
    ///
    /// let c: HealthConfig = serde_json::from_str(r#"{
    ///   "cooldowns": {"rate_limted": {"cooldown_ms": 1000}},
    ///   "ejection": {"base_ms": 0},
    ///   "unhealthy": {"panic": 0}
    /// }"#)?;
    /// assert_eq!(c.resolve().unwrap_err().to_string(), "\
    /// cooldowns.rate_limted: unknown failure kind \"rate_limted\": expected one of rate_limited, timeout, server_error, connection_error, authentication_error, not_found, bad_request, context_window_exceeded, content_filtered, other
    /// ejection.base_ms: must be more than 0
    /// unhealthy.panic: must be from 1 to 100, got 0");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn resolve(&self) -> Result<HealthPolicy, ConfigErrors> {
        let mut errs = Errors::default();
        let p = self.check(&Path::root(), &mut errs);
        errs.into_result()?;
        p.ok_or_else(|| ConfigErrors(Vec::new()))
    }

    fn check(&self, at: &Path, errs: &mut Errors) -> Option<HealthPolicy> {
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
                    if failures == 0 || failures > MAX_RULE_FAILURES {
                        errs.push(
                            &at.key("failures"),
                            format!("must be from 1 to {MAX_RULE_FAILURES}, got {failures}"),
                        );
                    } else if failures > 1 && window == 0 {
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
                if !(0.0..=1.0).contains(&rate.ratio) {
                    errs.push(
                        &at.key("ratio"),
                        format!("must be from 0 to 1, got {}", rate.ratio),
                    );
                }
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
                if e.consecutive_failures == 0 {
                    errs.push(
                        &at.key("consecutive_failures"),
                        "must be at least 1".to_owned(),
                    );
                }
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
                if percent > 100 {
                    errs.push(
                        &at.key("max_percent"),
                        format!("must be at most 100, got {percent}"),
                    );
                }
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
                if !(s.aggression.is_finite() && s.aggression > 0.0) {
                    errs.push(
                        &at.key("aggression"),
                        format!("must be a positive number, got {}", s.aggression),
                    );
                }
                if !(0.0..=100.0).contains(&s.min_percent) {
                    errs.push(
                        &at.key("min_percent"),
                        format!("must be from 0 to 100, got {}", s.min_percent),
                    );
                }
                p.slow_start = Some(s);
            }
        }
        match self.unhealthy {
            None => {}
            Some(UnhealthyConfig::Fail) => p.unhealthy = Unhealthy::Fail,
            Some(UnhealthyConfig::Panic { threshold_percent }) => {
                if threshold_percent == 0 || threshold_percent > 100 {
                    errs.push(
                        &at.key("unhealthy").key("panic"),
                        format!("must be from 1 to 100, got {threshold_percent}"),
                    );
                } else {
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
        // Everything above is checked; this only guards against a check
        // the library adds later.
        if let Err(e) = p.validate() {
            errs.push(at, e.to_string());
            return None;
        }
        Some(p)
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
            .into_iter()
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
    for kind in FailureKind::ALL {
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
            _ => RetryAfterMode::Cools,
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
            _ => UnhealthyConfig::Fail,
        });
    }
    if base.failure_penalty != policy.failure_penalty {
        c.failure_penalty_ms = policy
            .failure_penalty
            .map_or(Override::Off, |d| Override::Set(ms(d)));
    }
    c
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One step of a [`ConfigError`]'s place: a field or table key, or an
/// index in a list.
///
/// ```
/// use modelfleet::config::{FleetConfig, PathSegment};
///
/// let c: FleetConfig = serde_json::from_str(r#"{"deployments": [{"provider": "openai", "model": "gpt-4", "tag": ""}]}"#)?;
/// let errors = c.build().unwrap_err();
/// assert_eq!(errors.iter().next().unwrap().segments(), [
///     PathSegment::Key("deployments".into()),
///     PathSegment::Index(0),
///     PathSegment::Key("tag".into()),
/// ]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathSegment {
    /// A field or table key.
    Key(String),
    /// An index in a list.
    Index(usize),
}

#[derive(Clone, Debug, Default)]
struct Path(Vec<PathSegment>);

impl Path {
    fn root() -> Self {
        Self::default()
    }

    fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(k.to_owned()));
        p
    }

    fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(i));
        p
    }
}

/// A problem in a fleet config, and where it is.
///
/// `Display` writes `place: problem`, e.g. `deployments[3].endpoint: has a
/// query string; …`. A key that is not a plain name is quoted:
/// `fallbacks["gpt-4.1"][0]`.
///
/// ```
/// use modelfleet::config::FleetConfig;
///
/// let c: FleetConfig = serde_json::from_str(r#"{"identity": "name+region"}"#)?;
/// let errors = c.build().unwrap_err();
/// let e = errors.iter().next().unwrap();
/// assert_eq!(e.path(), "identity");
/// assert!(e.message().starts_with("unknown identity policy"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    path: Vec<PathSegment>,
    message: String,
}

impl ConfigError {
    /// Where the problem is, as text: `deployments[3].endpoint`; empty when
    /// it is about the whole value.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let c: FleetConfig = serde_json::from_str(
    ///     r#"{"deployments": [{"provider": "openai", "model": "gpt-4", "limits": {"rpm": 0}}]}"#,
    /// )?;
    /// let errors = c.build().unwrap_err();
    /// assert_eq!(errors.iter().next().unwrap().path(), "deployments[0].limits.rpm");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn path(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            match seg {
                PathSegment::Index(i) => s.push_str(&format!("[{i}]")),
                PathSegment::Key(k) if is_plain(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                PathSegment::Key(k) => s.push_str(&format!("[{k:?}]")),
            }
        }
        s
    }

    /// Where the problem is, step by step.
    ///
    /// ```
    /// use modelfleet::config::{FleetConfig, PathSegment};
    ///
    /// let c: FleetConfig = serde_json::from_str(r#"{"seed": 1, "identity": "x"}"#)?;
    /// let errors = c.build().unwrap_err();
    /// assert_eq!(errors.iter().next().unwrap().segments(), [PathSegment::Key("identity".into())]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn segments(&self) -> &[PathSegment] {
        &self.path
    }

    /// What is wrong.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let c: FleetConfig = serde_json::from_str(r#"{"health": {"unhealthy": {"panic": 0}}}"#)?;
    /// let errors = c.build().unwrap_err();
    /// assert_eq!(errors.iter().next().unwrap().message(), "must be from 1 to 100, got 0");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

fn is_plain(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path(), self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a fleet config, in order. `Display` writes one
/// line per problem.
///
/// ```
/// use modelfleet::config::FleetConfig;
///
/// let c: FleetConfig = serde_json::from_str(
///     r#"{"identity": "id", "strategy": "fastest", "fallbacks": {"gpt-4": ["gpt-4"]}}"#,
/// )?;
/// let errors = c.build().unwrap_err();
/// assert_eq!(errors.len(), 4);
/// let places: Vec<String> = errors.iter().map(|e| e.path()).collect();
/// assert_eq!(places, ["identity", "strategy", "fallbacks.gpt-4", "fallbacks.gpt-4[0]"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// The number of problems.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// let c: FleetConfig = serde_json::from_str(r#"{"identity": "x", "strategy": "y"}"#)?;
    /// assert_eq!(c.build().unwrap_err().len(), 2);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no problem (never, for an error returned here).
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// let c: FleetConfig = serde_json::from_str(r#"{"identity": "x"}"#)?;
    /// assert!(!c.build().unwrap_err().is_empty());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in order.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// let c: FleetConfig = serde_json::from_str(r#"{"identity": "x", "strategy": "y"}"#)?;
    /// let places: Vec<String> = c.build().unwrap_err().iter().map(|e| e.path()).collect();
    /// assert_eq!(places, ["identity", "strategy"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, at: &Path, message: String) {
        self.0.push(ConfigError {
            path: at.0.clone(),
            message,
        });
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}
