//! The fleet file as a whole, and the fleet it builds.

use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::error::{ConfigError, ConfigErrors, Errors, Path};
use super::{DeploymentEntry, HealthConfig, StrategyConfig};
use crate::hash::FixedState;
use crate::health::ValidHealthPolicy;
use crate::select::BuiltinStrategy;
use crate::{
    Deployment, Fleet, IdentityPolicy, ModelKey, Policy, Registry, Request, Selector,
    SelectorBuilder,
};

/// A whole fleet as written in a file. See the [module docs](crate::config) for the
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
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "fallbacks"
    )]
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// The deployments, in registry order.
    #[serde(default)]
    pub deployments: Vec<DeploymentEntry>,
}

fn fallbacks<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    crate::unique_keys::map(d, "fallbacks")
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
    /// The health policy, validated.
    pub health: ValidHealthPolicy,
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
        let mut holder: IndexMap<ModelKey, usize, FixedState> = IndexMap::default();
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
        .iter()
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
            health: HealthConfig::from_policy(self.health.policy()),
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
