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
//! | `strategy` | a strategy name, or a table `{name, buffer, bounded_load, load, active_request_bias, weights}` ([`StrategyConfig`]) | `"weighted_round_robin"` |
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
//! A deployment's `cooldown_ms` (whole milliseconds, from 0 to
//! [`MAX_COOLDOWN`](crate::MAX_COOLDOWN)) overrides how long its
//! cooldowns last; `0` means it never cools (see
//! [`health`](crate::health#cooldown-override)). A negative, fractional,
//! NaN or larger value is an error at `deployments[i].cooldown_ms`.
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

mod deployment;
mod error;
mod fleet;
mod health;
mod strategy;

pub use deployment::DeploymentEntry;
pub use error::{ConfigError, ConfigErrors, PathSegment};
pub use fleet::{BuiltFleet, FleetConfig, OnDuplicate, Replaced};
pub use health::{
    CooldownSetting, EjectionConfig, FailureRateConfig, HealthConfig, HealthPreset, Override,
    RetryAfterMode, RuleConfig, SlowStartConfig, UnhealthyConfig,
};
pub use strategy::StrategyConfig;

#[cfg(doc)]
use crate::health::{FailureKind, HealthPolicy, RetryAfter};
#[cfg(doc)]
use crate::select::{BuiltinStrategy, Selector};
#[cfg(doc)]
use crate::{Deployment, Policy, Registry};
