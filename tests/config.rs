//! Fleet files: config → registry → config round trips (JSON and TOML),
//! every validation problem pinned word for word with its place, duplicate
//! keys rejected or replaced, unknown fields refused, and a loader that
//! never panics on any input.

#![cfg(feature = "serde")]

use std::time::Duration;

use modelfleet::config::{
    BuiltFleet, ConfigErrors, CooldownSetting, FleetConfig, HealthConfig, HealthPreset,
    OnDuplicate, Override, PathSegment, StrategyConfig,
};
use modelfleet::health::{FailureKind, HealthPolicy, Unhealthy};
use modelfleet::select::{BuiltinStrategy, ConsistentHash, Latency, Load, PowerOfTwo};
use modelfleet::{Deployment, Policy, Registry, Request};
use proptest::prelude::*;
use proptest::sample::select;

mod support;

fn json(text: &str) -> FleetConfig {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn built(text: &str) -> BuiltFleet {
    json(text)
        .build()
        .unwrap_or_else(|e| panic!("{text}:\n{e}"))
}

#[track_caller]
fn problems(text: &str) -> String {
    match json(text).build() {
        Ok(f) => panic!("{text} built: {:?}", f.registry),
        Err(e) => e.to_string(),
    }
}

/// A config with every section used.
const FULL: &str = r#"{
  "identity": "name+endpoint+tag",
  "strategy": { "name": "consistent_hash", "bounded_load": 1.25 },
  "seed": 42,
  "health": {
    "preset": "litellm",
    "cooldowns": {
      "timeout": { "failures": 2, "window_ms": 10000, "cooldown_ms": 7000 },
      "bad_request": "counted",
      "not_found": false,
      "rate_limited": { "cooldown_ms": 9000 }
    },
    "retry_after": "cools",
    "min_group_size": 1,
    "failure_rate": { "ratio": 0.25 },
    "ejection": { "consecutive_failures": 4, "base_ms": 1000, "max_ms": 8000, "max_percent": 50, "interval_ms": 2000 },
    "slow_start": { "window_ms": 30000, "aggression": 2.0, "min_percent": 5.0 },
    "unhealthy": { "panic": 40 },
    "failure_penalty_ms": 2500
  },
  "on_duplicate": "reject",
  "fallbacks": { "gpt-4": ["gpt-4o-mini", "llama3:8b"] },
  "deployments": [
    { "provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.1/v1",
      "tag": "node1", "version": "1.2.0", "labels": { "region": "eu", "tier": "gold" },
      "weight": 3, "priority": 0, "limits": { "max_in_flight": 8, "rpm": 600, "tpm": 90000 },
      "context_window": 8192, "upstream_model": "gpt-4-0613", "credential": "env:NODE1_KEY" },
    { "provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "HTTP://192.168.0.2:80/v1/",
      "tag": "node2", "weight": 0 },
    { "provider": "openai", "model": "gpt-4o-mini", "priority": 1 },
    { "provider": "ollama", "model": "llama3:8b", "tag": "gpu" }
  ]
}"#;

#[test]
fn a_full_config_builds_what_it_says() {
    let fleet = built(FULL);
    assert_eq!(*fleet.registry.policy(), Policy::NAME_ENDPOINT_TAG);
    assert_eq!(
        fleet.strategy,
        BuiltinStrategy::from(ConsistentHash::with_bounded_load(1.25).unwrap())
    );
    assert_eq!(fleet.seed, 42);
    assert!(fleet.replaced.is_empty());
    let keys: Vec<String> = fleet.registry.keys().map(ToString::to_string).collect();
    assert_eq!(
        keys,
        [
            "openai-api-compatible/gpt-4#node1@http://192.168.0.1/v1",
            "openai-api-compatible/gpt-4#node2@http://192.168.0.2/v1",
            "openai/gpt-4o-mini#@",
            "ollama/llama3:8b#gpu@",
        ]
    );
    let first = fleet.registry.deployments().next().unwrap();
    assert_eq!(
        first.credential().map(|c| c.expose()),
        Some("env:NODE1_KEY")
    );
    assert_eq!(first.limits().tpm.map(|n| n.get()), Some(90_000));

    let h = fleet.health.policy();
    let s = Duration::from_millis;
    let timeout = h.cooldowns.rule(FailureKind::Timeout).unwrap();
    assert_eq!(
        (timeout.failures(), timeout.window(), timeout.cooldown()),
        (2, s(10_000), s(7_000))
    );
    let limited = FailureKind::rate_limited(None);
    // Fields left out come from the preset's rule (LiteLLM: one failure).
    let rl = h.cooldowns.rule(limited).unwrap();
    assert_eq!((rl.failures(), rl.cooldown()), (1, s(9_000)));
    assert!(h.cooldowns.counts(FailureKind::BadRequest));
    assert!(h.cooldowns.rule(FailureKind::BadRequest).is_none());
    assert!(!h.cooldowns.counts(FailureKind::NotFound));
    assert_eq!(h.cooldowns.min_group_size, 1);
    let rate = h.cooldowns.failure_rate.unwrap();
    assert_eq!(
        (rate.min_requests, rate.ratio, rate.cooldown),
        (5, 0.25, s(5_000))
    );
    let e = h.ejection.unwrap();
    assert_eq!(
        (
            e.consecutive_failures,
            e.base,
            e.max,
            e.max_percent,
            e.interval
        ),
        (4, s(1_000), s(8_000), 50, s(2_000))
    );
    let ramp = h.slow_start.unwrap();
    assert_eq!(
        (ramp.window, ramp.aggression, ramp.min_percent),
        (s(30_000), 2.0, 5.0)
    );
    assert_eq!(h.unhealthy, Unhealthy::panic_below(40));
    assert_eq!(h.failure_penalty, Some(s(2_500)));

    assert_eq!(fleet.fallbacks_of("gpt-4"), ["gpt-4o-mini", "llama3:8b"]);
    assert_eq!(
        fleet.request("gpt-4").fallbacks(),
        ["gpt-4o-mini", "llama3:8b"]
    );
    assert!(fleet.fallbacks_of("gpt-4o-mini").is_empty());
    let selector = fleet.selector();
    let pick = selector
        .select(&fleet.request("gpt-4").affinity("user-1"))
        .unwrap();
    assert_eq!(pick.deployment().tag(), Some("node1")); // node2 is drained
}

/// The parts of a built fleet that must survive a round trip.
fn same_fleet(a: &BuiltFleet, b: &BuiltFleet) {
    assert_eq!(a.registry, b.registry);
    assert_eq!(a.strategy, b.strategy);
    assert_eq!(a.seed, b.seed);
    assert_eq!(a.health, b.health);
    assert_eq!(a.fallbacks, b.fallbacks);
}

/// Deployments compared without their credential, which is never written.
fn without_credentials(reg: &Registry) -> Vec<String> {
    reg.deployments()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect()
}

#[test]
fn round_trip_config_registry_config_json_and_toml() {
    let fleet = built(FULL);
    let config = fleet.to_config();

    let text = serde_json::to_string_pretty(&config).unwrap();
    let again = json(&text).build().unwrap();
    assert_eq!(again.registry.len(), fleet.registry.len());
    assert_eq!(
        without_credentials(&again.registry),
        without_credentials(&fleet.registry)
    );
    assert_eq!(again.strategy, fleet.strategy);
    assert_eq!(again.health, fleet.health);
    assert_eq!(again.fallbacks, fleet.fallbacks);
    // A second trip writes the same text.
    assert_eq!(
        serde_json::to_string_pretty(&again.to_config()).unwrap(),
        text
    );

    let toml_text = toml::to_string(&config).unwrap();
    let from_toml: FleetConfig = toml::from_str(&toml_text).unwrap();
    let again = from_toml.build().unwrap();
    assert_eq!(
        without_credentials(&again.registry),
        without_credentials(&fleet.registry)
    );
    assert_eq!(again.health, fleet.health);
    assert_eq!(again.strategy, fleet.strategy);
    assert_eq!(toml::to_string(&again.to_config()).unwrap(), toml_text);

    // In memory, credentials stay with their deployments.
    same_fleet(&fleet, &config.build().unwrap());
}

#[test]
fn round_trip_from_registry() {
    let mut reg = Registry::new(Policy::NAME_TAG_VERSION);
    for (tag, version) in [("a", "1.0.0"), ("a", "2.0.0"), ("b", "1.0.0")] {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .tag(tag)
                .version(version)
                .label("region", "eu")
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    let config = FleetConfig::from_registry(&reg);
    assert_eq!(config.identity, "name+tag+version");
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(
        text,
        r#"{"identity":"name+tag+version","strategy":"weighted_round_robin","seed":0,"deployments":[{"provider":"openai","model":"gpt-4","tag":"a","version":"1.0.0","labels":{"region":"eu"},"weight":1,"priority":0},{"provider":"openai","model":"gpt-4","tag":"a","version":"2.0.0","labels":{"region":"eu"},"weight":1,"priority":0},{"provider":"openai","model":"gpt-4","tag":"b","version":"1.0.0","labels":{"region":"eu"},"weight":1,"priority":0}]}"#
    );
    assert_eq!(json(&text).build().unwrap().registry, reg);
    let toml_text = toml::to_string(&config).unwrap();
    let back: FleetConfig = toml::from_str(&toml_text).unwrap();
    assert_eq!(back.build().unwrap().registry, reg);
}

#[test]
fn defaults_of_an_empty_file() {
    let fleet = built("{}");
    assert_eq!(*fleet.registry.policy(), Policy::default());
    assert!(fleet.registry.is_empty());
    assert_eq!(fleet.strategy.to_string(), "weighted_round_robin");
    assert_eq!(fleet.seed, 0);
    assert_eq!(fleet.health.policy(), &HealthPolicy::default());
    let c = FleetConfig::default();
    assert_eq!(c.on_duplicate, OnDuplicate::Reject);
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        r#"{"identity":"name+endpoint","strategy":"weighted_round_robin","seed":0,"deployments":[]}"#
    );
    let t: FleetConfig = toml::from_str("").unwrap();
    assert!(t.build().unwrap().registry.is_empty());
}

#[test]
fn health_presets_and_their_round_trips() {
    for (preset, policy) in [
        (HealthPreset::Default, HealthPolicy::default()),
        (HealthPreset::Dify, HealthPolicy::dify()),
        (HealthPreset::Litellm, HealthPolicy::litellm()),
        (HealthPreset::Disabled, HealthPolicy::disabled()),
    ] {
        let text = format!(r#"{{"health": {{"preset": "{preset}"}}}}"#);
        assert_eq!(built(&text).health.policy(), &policy, "{preset}");
        let c = HealthConfig::from_policy(&policy);
        assert_eq!(c.preset, preset);
        let mut bare = HealthConfig::default();
        bare.preset = preset;
        assert_eq!(c, bare);
        assert_eq!(c.resolve().unwrap(), policy);
    }
    // `null` (JSON) and `false` (any format) turn a part off.
    let off = built(
        r#"{"health": {"ejection": null, "failure_penalty_ms": false, "cooldowns": {"timeout": null}}}"#,
    );
    assert_eq!(off.health.policy().ejection, None);
    assert_eq!(off.health.policy().failure_penalty, None);
    assert!(!off.health.policy().cooldowns.counts(FailureKind::Timeout));
    let t: FleetConfig = toml::from_str(
        "[health]\nejection = false\nfailure_penalty_ms = false\ncooldowns = { timeout = false }\n",
    )
    .unwrap();
    assert_eq!(t.build().unwrap().health, off.health);
    assert_eq!(t.health.ejection, Override::Off);
    assert_eq!(t.health.cooldowns["timeout"], CooldownSetting::Off);
}

#[test]
fn strategies_and_their_settings() {
    for (text, expected) in [
        (
            r#""round_robin""#,
            BuiltinStrategy::from(modelfleet::select::RoundRobin),
        ),
        (
            r#"{"name": "latency", "buffer": 0.1}"#,
            Latency::with_buffer(0.1).unwrap().into(),
        ),
        (r#"{"name": "latency"}"#, Latency::default().into()),
        (
            r#"{"name": "power_of_two", "load": "peak_ewma"}"#,
            PowerOfTwo::new(Load::PeakEwma).into(),
        ),
        (
            r#"{"name": "power_of_two", "load": "in_flight_per_weight"}"#,
            PowerOfTwo::new(Load::InFlightPerWeight).into(),
        ),
        (
            r#"{"name": "consistent_hash", "bounded_load": 2}"#,
            ConsistentHash::with_bounded_load(2.0).unwrap().into(),
        ),
        (
            r#"{"name": "power_of_two", "load": "in_flight_per_weight", "active_request_bias": 0.5}"#,
            PowerOfTwo::new(Load::InFlightPerWeight)
                .with_active_request_bias(0.5)
                .unwrap()
                .into(),
        ),
        (
            r#"{"name": "power_of_two", "active_request_bias": 0}"#,
            PowerOfTwo::default()
                .with_active_request_bias(0.0)
                .unwrap()
                .into(),
        ),
        (
            r#"{"name": "power_of_two", "active_request_bias": 1}"#,
            PowerOfTwo::default().into(),
        ),
    ] {
        let c: StrategyConfig = serde_json::from_str(text).unwrap();
        let s = c.resolve().unwrap();
        assert_eq!(s, expected, "{text}");
        assert_eq!(StrategyConfig::from_strategy(&s).resolve().unwrap(), s);
    }
    for &s in BuiltinStrategy::all() {
        let c = StrategyConfig::from_strategy(&s);
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{s}\""));
    }
}

/// Every semantic problem, word for word, at its place. The base config is
/// valid; each case changes one part of it.
#[test]
fn every_problem_is_pinned_with_its_place() {
    let cases: &[(&str, &str)] = &[
        // identity
        (
            r#""identity": "name+region""#,
            r#"identity: unknown identity policy "name+region": discriminators are "endpoint", "tag" and "version""#,
        ),
        (
            r#""identity": "endpoint""#,
            r#"identity: unknown identity policy "endpoint": a policy starts with "name", e.g. "name", "name+endpoint", "name+tag+version""#,
        ),
        (
            r#""identity": "name+tag+tag""#,
            r#"identity: unknown identity policy "name+tag+tag": a discriminator is named twice"#,
        ),
        // strategy
        (
            r#""strategy": "fastest""#,
            r#"strategy: unknown strategy "fastest": expected one of {strategies}"#,
        ),
        (
            r#""strategy": {"name": "fastest", "buffer": 0.1}"#,
            r#"strategy.name: unknown strategy "fastest": expected one of {strategies}"#,
        ),
        (
            r#""strategy": {"name": "round_robin", "buffer": 0.1}"#,
            "strategy.buffer: only the latency strategy takes a buffer, not round_robin",
        ),
        (
            r#""strategy": {"name": "latency", "buffer": -0.5}"#,
            "strategy.buffer: must be a finite number of at least 0, got -0.5",
        ),
        (
            r#""strategy": {"name": "latency", "bounded_load": 2}"#,
            "strategy.bounded_load: only the consistent_hash strategy takes a bounded load, not latency",
        ),
        (
            r#""strategy": {"name": "consistent_hash", "bounded_load": 0.5}"#,
            "strategy.bounded_load: must be a finite number of at least 1, got 0.5",
        ),
        (
            r#""strategy": {"name": "power_of_two", "load": "latency"}"#,
            r#"strategy.load: unknown load "latency": expected one of in_flight, in_flight_per_weight, peak_ewma"#,
        ),
        (
            r#""strategy": {"name": "weighted_random", "load": "in_flight"}"#,
            "strategy.load: only the power_of_two strategy takes a load, not weighted_random",
        ),
        (
            r#""strategy": {"name": "power_of_two", "active_request_bias": -1}"#,
            "strategy.active_request_bias: must be a finite number of at least 0, got -1",
        ),
        (
            r#""strategy": {"name": "latency", "active_request_bias": 2}"#,
            "strategy.active_request_bias: only the power_of_two strategy takes an active request bias, not latency",
        ),
        // health: cooldowns
        (
            r#""health": {"cooldowns": {"rate_limted": {"cooldown_ms": 1000}}}"#,
            r#"health.cooldowns.rate_limted: unknown failure kind "rate_limted": expected one of {kinds}"#,
        ),
        (
            r#""health": {"cooldowns": {"timeout": {"failures": 0}}}"#,
            "health.cooldowns.timeout.failures: must be from 1 to 8, got 0",
        ),
        (
            r#""health": {"cooldowns": {"timeout": {"failures": 9}}}"#,
            "health.cooldowns.timeout.failures: must be from 1 to 8, got 9",
        ),
        (
            r#""health": {"cooldowns": {"timeout": {"window_ms": 0}}}"#,
            "health.cooldowns.timeout.window_ms: must be more than 0 when failures is more than 1",
        ),
        (
            r#""health": {"cooldowns": {"timeout": {"cooldown_ms": 0}}}"#,
            "health.cooldowns.timeout.cooldown_ms: must be more than 0",
        ),
        (
            r#""health": {"cooldowns": {"bad_request": {"failures": 2, "window_ms": 1000}}}"#,
            r#"health.cooldowns.bad_request.cooldown_ms: required: preset "default" has no rule for bad_request to take it from"#,
        ),
        // health: failure rate
        (
            r#""health": {"failure_rate": {"min_requests": 0}}"#,
            "health.failure_rate.min_requests: must be at least 1",
        ),
        (
            r#""health": {"failure_rate": {"ratio": 1.5}}"#,
            "health.failure_rate.ratio: must be from 0 to 1, got 1.5",
        ),
        (
            r#""health": {"failure_rate": {"cooldown_ms": 0}}"#,
            "health.failure_rate.cooldown_ms: must be more than 0",
        ),
        // health: ejection
        (
            r#""health": {"ejection": {"consecutive_failures": 0}}"#,
            "health.ejection.consecutive_failures: must be at least 1",
        ),
        (
            r#""health": {"ejection": {"base_ms": 0}}"#,
            "health.ejection.base_ms: must be more than 0",
        ),
        (
            r#""health": {"ejection": {"base_ms": 60000, "max_ms": 1000}}"#,
            "health.ejection.max_ms: must be at least base_ms (60000), got 1000",
        ),
        (
            r#""health": {"ejection": {"max_percent": 150}}"#,
            "health.ejection.max_percent: must be at most 100, got 150",
        ),
        (
            r#""health": {"ejection": {"interval_ms": 0}}"#,
            "health.ejection.interval_ms: must be more than 0",
        ),
        // health: slow start
        (
            r#""health": {"slow_start": {"aggression": 2}}"#,
            r#"health.slow_start.window_ms: required: preset "default" has no slow start to take it from"#,
        ),
        (
            r#""health": {"slow_start": {"window_ms": 0}}"#,
            "health.slow_start.window_ms: must be more than 0",
        ),
        (
            r#""health": {"slow_start": {"window_ms": 1000, "aggression": 0}}"#,
            "health.slow_start.aggression: must be a positive number, got 0",
        ),
        (
            r#""health": {"slow_start": {"window_ms": 1000, "min_percent": 101}}"#,
            "health.slow_start.min_percent: must be from 0 to 100, got 101",
        ),
        // health: unhealthy
        (
            r#""health": {"unhealthy": {"panic": 0}}"#,
            "health.unhealthy.panic: must be from 1 to 100, got 0",
        ),
        (
            r#""health": {"unhealthy": {"panic": 101}}"#,
            "health.unhealthy.panic: must be from 1 to 100, got 101",
        ),
        // fallbacks
        (
            r#""fallbacks": {"gpt-5": ["gpt-4"]}"#,
            r#"fallbacks.gpt-5: no deployment serves model "gpt-5""#,
        ),
        (
            r#""fallbacks": {"gpt-4": ["gpt-4o-mini", "gpt-9"]}"#,
            r#"fallbacks.gpt-4[1]: no deployment serves model "gpt-9""#,
        ),
        (
            r#""fallbacks": {"gpt-4": ["gpt-4"]}"#,
            "fallbacks.gpt-4[0]: a model cannot fall back to itself",
        ),
        (
            r#""fallbacks": {"gpt-4": ["gpt-4o-mini", "gpt-4o-mini"]}"#,
            r#"fallbacks.gpt-4[1]: "gpt-4o-mini" is listed twice (first at [0])"#,
        ),
        (
            r#""fallbacks": {"gpt-4.1": ["gpt-4"]}"#,
            r#"fallbacks["gpt-4.1"]: no deployment serves model "gpt-4.1""#,
        ),
    ];
    let deployments = r#""deployments": [
        {"provider": "openai", "model": "gpt-4"},
        {"provider": "openai", "model": "gpt-4o-mini"}
    ]"#;
    assert!(json(&format!("{{{deployments}}}")).build().is_ok());
    for (part, expected) in cases {
        let text = format!("{{{part}, {deployments}}}");
        assert_eq!(problems(&text), support::names(expected), "{part}");
    }
}

#[track_caller]
fn deployment_problems(fields: &str) -> String {
    problems(&format!(
        r#"{{"deployments": [{{"provider": "openai", "model": "gpt-4", "endpoint": "http://a/v1"}}, {{{fields}}}]}}"#
    ))
}

#[test]
fn every_deployment_problem_is_pinned_with_its_field() {
    let base = r#""provider": "openai", "model": "gpt-4""#;
    let cases: &[(&str, &str)] = &[
        (
            r#""provider": "", "model": "gpt-4""#,
            "deployments[1].provider: is empty",
        ),
        (
            r#""provider": "openai", "model": " gpt-4""#,
            r#"deployments[1].model: " gpt-4" starts or ends with white space"#,
        ),
        (
            r#""upstream_model": "a\u0001b""#,
            r#"deployments[1].upstream_model: "a\u{1}b" holds a control character at byte 1"#,
        ),
        (
            r#""endpoint": "http://10.0.0.1/v1?api_key=secret""#,
            "deployments[1].endpoint: has a query string; endpoints may not carry one (it often holds secrets)",
        ),
        (
            r#""endpoint": "http://user:hunter2@10.0.0.1/v1""#,
            "deployments[1].endpoint: carries credentials (user or password); keep secrets out of endpoints",
        ),
        (
            r#""endpoint": "ftp://10.0.0.1/""#,
            r#"deployments[1].endpoint: scheme "ftp" is not supported; use http or https"#,
        ),
        (
            r#""endpoint": "not a url""#,
            "deployments[1].endpoint: is not a valid URL (9 characters, starting with a letter); \
             the value is not shown, it may be a secret",
        ),
        (
            r#""endpoint": "http://a/v1#top""#,
            "deployments[1].endpoint: has a fragment (#…); endpoints may not carry one",
        ),
        (r#""tag": "   ""#, "deployments[1].tag: is empty"),
        (
            r#""version": "1.2""#,
            r#"deployments[1].version: "1.2" is not a semantic version"#,
        ),
        (
            r#""labels": {"": "eu"}"#,
            "deployments[1].labels: key is empty",
        ),
        (
            r#""labels": {"region": "e\tu"}"#,
            r#"deployments[1].labels.region: "e\tu" holds a control character at byte 1"#,
        ),
        (r#""weight": -1"#, "deployments[1].weight: -1 is negative"),
        (
            r#""weight": 1.5"#,
            "deployments[1].weight: 1.5 is not a whole number from 0 to 4294967295",
        ),
        (
            r#""weight": 4294967296"#,
            "deployments[1].weight: 4294967296 is larger than 4294967295",
        ),
        (
            r#""weight": "heavy""#,
            r#"deployments[1].weight: "heavy" is not a number"#,
        ),
        (
            r#""priority": -2"#,
            "deployments[1].priority: -2 is negative",
        ),
        (
            r#""limits": {"max_in_flight": 0}"#,
            "deployments[1].limits.max_in_flight: must be at least 1 (leave it unset for no limit)",
        ),
        (
            r#""limits": {"rpm": 0}"#,
            "deployments[1].limits.rpm: must be at least 1 (leave it unset for no limit)",
        ),
        (
            r#""limits": {"tpm": -5}"#,
            "deployments[1].limits.tpm: -5 is negative",
        ),
        (
            r#""context_window": 0"#,
            "deployments[1].context_window: must be at least 1 (leave it unset for no limit)",
        ),
        (r#""credential": """#, "deployments[1].credential: is empty"),
        (
            r#""credential": "sk-\u0007secret""#,
            r#"deployments[1].credential: "<redacted>" holds a control character at byte 3"#,
        ),
        (
            r#""wieght": 2"#,
            "deployments[1].wieght: unknown field, expected one of `provider`, `model`, `upstream_model`, `endpoint`, `tag`, `version`, `labels`, `weight`, `priority`, `limits`, `context_window`, `cooldown_ms`, `credential`",
        ),
        (
            r#""limits": {"rmp": 60}"#,
            "deployments[1].limits.rmp: unknown field, expected one of `max_in_flight`, `rpm`, `tpm`",
        ),
    ];
    for (fields, expected) in cases {
        let fields = if fields.starts_with(r#""provider""#) {
            fields.to_string()
        } else {
            format!("{base}, {fields}")
        };
        assert_eq!(deployment_problems(&fields), *expected, "{fields}");
    }
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let text = r#"{
      "identity": "name+region",
      "strategy": {"name": "latency", "buffer": -1, "load": "x"},
      "health": {
        "cooldowns": {"timeout": {"failures": 0, "cooldown_ms": 0}, "nope": false},
        "ejection": {"max_percent": 150, "base_ms": 0},
        "unhealthy": {"panic": 0}
      },
      "fallbacks": {"gpt-4": ["gpt-5"]},
      "deployments": [
        {"provider": "", "model": " gpt-4", "endpoint": "http://a/v1?k=1", "tag": "",
         "version": "x", "labels": {"": "a", "ok": "b\u0000"}, "weight": -1, "priority": 1.5,
         "limits": {"max_in_flight": 0, "rpm": 0, "tpm": 0, "extra": 1}, "context_window": 0,
         "credential": "", "upstream_model": "", "color": "red"},
        {"provider": "openai", "model": "gpt-4"}
      ]
    }"#;
    let errors = json(text).build().unwrap_err();
    assert_eq!(
        errors.to_string(),
        support::names(
            r#"identity: unknown identity policy "name+region": discriminators are "endpoint", "tag" and "version"
strategy.buffer: must be a finite number of at least 0, got -1
strategy.load: only the power_of_two strategy takes a load, not latency
strategy.load: unknown load "x": expected one of in_flight, in_flight_per_weight, peak_ewma
health.cooldowns.nope: unknown failure kind "nope": expected one of {kinds}
health.cooldowns.timeout.failures: must be from 1 to 8, got 0
health.cooldowns.timeout.cooldown_ms: must be more than 0
health.ejection.base_ms: must be more than 0
health.ejection.max_percent: must be at most 100, got 150
health.unhealthy.panic: must be from 1 to 100, got 0
deployments[0].color: unknown field, expected one of `provider`, `model`, `upstream_model`, `endpoint`, `tag`, `version`, `labels`, `weight`, `priority`, `limits`, `context_window`, `cooldown_ms`, `credential`
deployments[0].limits.extra: unknown field, expected one of `max_in_flight`, `rpm`, `tpm`
deployments[0].labels: key is empty
deployments[0].labels.ok: "b\0" holds a control character at byte 1
deployments[0].provider: is empty
deployments[0].model: " gpt-4" starts or ends with white space
deployments[0].upstream_model: is empty
deployments[0].endpoint: has a query string; endpoints may not carry one (it often holds secrets)
deployments[0].tag: is empty
deployments[0].version: "x" is not a semantic version
deployments[0].weight: -1 is negative
deployments[0].priority: 1.5 is not a whole number from 0 to 4294967295
deployments[0].context_window: must be at least 1 (leave it unset for no limit)
deployments[0].limits.max_in_flight: must be at least 1 (leave it unset for no limit)
deployments[0].limits.rpm: must be at least 1 (leave it unset for no limit)
deployments[0].limits.tpm: must be at least 1 (leave it unset for no limit)
deployments[0].credential: is empty
fallbacks.gpt-4[0]: no deployment serves model "gpt-5""#
        )
    );
    assert_eq!(errors.len(), 28);
    // Places are structured too.
    let e = errors
        .iter()
        .find(|e| e.path() == "deployments[0].limits.rpm")
        .unwrap();
    assert_eq!(
        e.segments(),
        [
            PathSegment::Key("deployments".into()),
            PathSegment::Index(0),
            PathSegment::Key("limits".into()),
            PathSegment::Key("rpm".into()),
        ]
    );
    assert_eq!(
        e.message(),
        "must be at least 1 (leave it unset for no limit)"
    );
    // ConfigErrors is a std error, one line per problem.
    let boxed: Box<dyn std::error::Error> = Box::new(errors.clone());
    assert_eq!(boxed.to_string().lines().count(), 28);
    let owned: Vec<_> = errors.into_iter().collect();
    assert_eq!(owned.len(), 28);
}

#[test]
fn duplicates_are_rejected_naming_both_entries_and_their_key() {
    let text = r#"{"identity": "name", "deployments": [
        {"provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.1/v1"},
        {"provider": "openai", "model": "gpt-4o-mini"},
        {"provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.2/v1"},
        {"provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.3/v1"},
        {"provider": "openai", "model": "gpt-4o-mini", "tag": "b"}
    ]}"#;
    assert_eq!(
        problems(text),
        r#"deployments[2]: openai-api-compatible/gpt-4@http://192.168.0.2/v1 has the same key, openai-api-compatible/gpt-4, as deployments[0] (openai-api-compatible/gpt-4@http://192.168.0.1/v1) under identity "name"; identity "name+endpoint" keeps both, on_duplicate "replace" keeps the later
deployments[3]: openai-api-compatible/gpt-4@http://192.168.0.3/v1 has the same key, openai-api-compatible/gpt-4, as deployments[0] (openai-api-compatible/gpt-4@http://192.168.0.1/v1) under identity "name"; identity "name+endpoint" keeps both, on_duplicate "replace" keeps the later
deployments[4]: openai/gpt-4o-mini#b has the same key, openai/gpt-4o-mini, as deployments[1] (openai/gpt-4o-mini) under identity "name"; identity "name+tag" keeps both, on_duplicate "replace" keeps the later"#
    );
    // Two entries that are the same deployment under every policy.
    let same = r#"{"deployments": [
        {"provider": "openai", "model": "gpt-4", "weight": 1},
        {"provider": "openai", "model": "gpt-4", "weight": 2}
    ]}"#;
    assert_eq!(
        problems(same),
        r#"deployments[1]: openai/gpt-4 has the same key, openai/gpt-4@, as deployments[0] (openai/gpt-4) under identity "name+endpoint"; they are the same deployment, on_duplicate "replace" keeps the later"#
    );
    // Under a finer identity all are kept.
    let fine = built(&text.replace(
        r#""identity": "name""#,
        r#""identity": "name+endpoint+tag""#,
    ));
    assert_eq!(fine.registry.len(), 5);
    assert!(fine.replaced.is_empty());
}

#[test]
fn duplicates_with_replace_keep_the_later_entry_in_the_earlier_place() {
    let text = r#"{"identity": "name", "on_duplicate": "replace", "deployments": [
        {"provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.1/v1"},
        {"provider": "openai", "model": "gpt-4o-mini"},
        {"provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.2/v1"},
        {"provider": "openai-api-compatible", "model": "gpt-4", "endpoint": "http://192.168.0.3/v1", "weight": 4}
    ]}"#;
    let fleet = built(text);
    assert_eq!(fleet.registry.len(), 2);
    let replaced: Vec<String> = fleet.replaced.iter().map(ToString::to_string).collect();
    assert_eq!(
        replaced,
        [
            "deployments[2] replaced deployments[0] under key openai-api-compatible/gpt-4",
            "deployments[3] replaced deployments[2] under key openai-api-compatible/gpt-4",
        ]
    );
    assert_eq!((fleet.replaced[1].earlier, fleet.replaced[1].later), (2, 3));
    assert_eq!(
        fleet.replaced[0].key,
        "openai-api-compatible/gpt-4".parse().unwrap()
    );
    // Upsert semantics: the last one wins, in the first one's place.
    let first = fleet.registry.deployments().next().unwrap();
    assert_eq!(first.endpoint().unwrap().as_str(), "http://192.168.0.3/v1");
    assert_eq!(first.weight(), 4);
    // Writing it back keeps what was kept, and nothing collides any more.
    let again = fleet.to_config().build().unwrap();
    assert_eq!(again.registry, fleet.registry);
    assert!(again.replaced.is_empty());
}

#[test]
fn unknown_fields_are_refused_everywhere() {
    let cases = [
        (r#"{"identiy": "name"}"#, "unknown field `identiy`"),
        (
            r#"{"health": {"presets": "dify"}}"#,
            "unknown field `presets`",
        ),
        (
            r#"{"health": {"ejection": {"max_pct": 5}}}"#,
            "unknown field `max_pct`",
        ),
        (
            r#"{"health": {"slow_start": {"window": 5}}}"#,
            "unknown field `window`",
        ),
        (
            r#"{"health": {"failure_rate": {"rate": 0.5}}}"#,
            "unknown field `rate`",
        ),
        (
            r#"{"health": {"cooldowns": {"timeout": {"cooldown": 5}}}}"#,
            "unknown field `cooldown`",
        ),
        (
            r#"{"health": {"unhealthy": {"panik": 50}}}"#,
            "unknown field `panik`",
        ),
        (
            r#"{"strategy": {"name": "latency", "bufer": 0.1}}"#,
            "unknown field `bufer`",
        ),
        (r#"{"on_duplicate": "replce"}"#, "unknown variant `replce`"),
        (
            r#"{"health": {"preset": "envoy"}}"#,
            "unknown variant `envoy`",
        ),
        (
            r#"{"health": {"retry_after": "ignores"}}"#,
            "unknown variant `ignores`",
        ),
        (
            r#"{"health": {"unhealthy": "panic"}}"#,
            r#"invalid value: string "panic", expected "fail" or a table {panic = threshold_percent}"#,
        ),
        (
            r#"{"health": {"cooldowns": {"timeout": "cool"}}}"#,
            r#"invalid value: string "cool", expected a rule {failures, window_ms, cooldown_ms}, "counted", or false or null"#,
        ),
        (
            r#"{"health": {"ejection": true}}"#,
            "invalid value: boolean `true`, expected a value, or false or null to turn it off",
        ),
        (
            r#"{"seed": -1}"#,
            "invalid value: integer `-1`, expected u64",
        ),
    ];
    for (text, start) in cases {
        let err = serde_json::from_str::<FleetConfig>(text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(start), "{text}: {err}");
    }
    // In TOML too.
    for (text, needle) in [
        ("identiy = \"name\"\n", "unknown field `identiy`"),
        ("[health]\npresets = \"dify\"\n", "unknown field `presets`"),
        (
            "[health.ejection]\nmax_pct = 5\n",
            "unknown field `max_pct`",
        ),
        (
            "[[deployments]]\nprovider = \"openai\"\nmodel = \"gpt-4\"\n[deployments.limits]\nrmp = 5\n",
            "",
        ),
    ] {
        match toml::from_str::<FleetConfig>(text) {
            Err(e) => assert!(e.to_string().contains(needle), "{text}: {e}"),
            // A deployment's unknown fields are reported with its place.
            Ok(c) => assert_eq!(
                c.build().unwrap_err().to_string(),
                "deployments[0].limits.rmp: unknown field, expected one of `max_in_flight`, `rpm`, `tpm`"
            ),
        }
    }
}

#[test]
fn config_errors_quote_keys_that_are_not_plain_names() {
    let text = r#"{"deployments": [{"provider": "openai", "model": "gpt-4", "labels": {"zone.a b": "x\u0001"}}]}"#;
    assert_eq!(
        problems(text),
        r#"deployments[0].labels["zone.a b"]: "x\u{1}" holds a control character at byte 1"#
    );
}

#[test]
fn a_built_fleet_serves_requests() {
    let fleet = built(
        r#"{"strategy": "round_robin", "seed": 5,
            "fallbacks": {"gpt-4": ["gpt-4o-mini"]},
            "deployments": [
              {"provider": "openai", "model": "gpt-4", "endpoint": "http://a/v1"},
              {"provider": "openai", "model": "gpt-4", "endpoint": "http://b/v1"},
              {"provider": "openai", "model": "gpt-4o-mini"}]}"#,
    );
    let selector = fleet.selector();
    let order: Vec<String> = selector
        .plan(&fleet.request("gpt-4"))
        .map(|p| p.key().to_string())
        .collect();
    assert_eq!(order.len(), 3);
    assert_eq!(order[2], "openai/gpt-4o-mini@");
    let live = fleet.fleet();
    assert!(live.select(&Request::new("gpt-4")).is_ok());
}

fn errors_never_empty(r: Result<BuiltFleet, ConfigErrors>) {
    if let Err(e) = r {
        assert!(!e.is_empty());
        assert!(!e.to_string().is_empty());
    }
}

/// Plausible keys and values, to reach past the first structural error.
fn fuzz_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e3f64..1e3).prop_map(|f| json!(f)),
        select(vec![
            "name",
            "name+endpoint",
            "name+tag+version",
            "latency",
            "consistent_hash",
            "power_of_two",
            "peak_ewma",
            "dify",
            "litellm",
            "disabled",
            "default",
            "fail",
            "counted",
            "reject",
            "replace",
            "cools",
            "sets_end",
            "gpt-4",
            "openai",
            "http://10.0.0.1/v1",
            "http://u:p@h/?q#f",
            "1.2.0",
            "",
            " ",
            "\u{0}",
        ])
        .prop_map(|s| json!(s)),
    ];
    let keys = select(vec![
        "identity",
        "strategy",
        "seed",
        "health",
        "on_duplicate",
        "fallbacks",
        "deployments",
        "name",
        "buffer",
        "bounded_load",
        "load",
        "preset",
        "cooldowns",
        "retry_after",
        "min_group_size",
        "failure_rate",
        "ejection",
        "slow_start",
        "unhealthy",
        "failure_penalty_ms",
        "rate_limited",
        "timeout",
        "failures",
        "window_ms",
        "cooldown_ms",
        "consecutive_failures",
        "base_ms",
        "max_ms",
        "max_percent",
        "interval_ms",
        "aggression",
        "min_percent",
        "panic",
        "min_requests",
        "ratio",
        "provider",
        "model",
        "endpoint",
        "tag",
        "version",
        "labels",
        "weight",
        "priority",
        "limits",
        "rpm",
        "tpm",
        "max_in_flight",
        "context_window",
        "credential",
        "upstream_model",
        "gpt-4",
    ]);
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Garbage never panics the loader, in either format.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        if let Ok(c) = serde_json::from_str::<FleetConfig>(&text) {
            errors_never_empty(c.build());
        }
        if let Ok(c) = toml::from_str::<FleetConfig>(&text) {
            errors_never_empty(c.build());
        }
    }

    /// Nor do structured values with the schema's keys, written as JSON and
    /// as TOML; whatever builds also writes back and builds again alike.
    #[test]
    fn arbitrary_documents_never_panic(value in fuzz_value()) {
        let text = value.to_string();
        if let Ok(c) = serde_json::from_str::<FleetConfig>(&text) {
            if let Ok(fleet) = c.build() {
                let again = fleet.to_config().build().unwrap();
                prop_assert_eq!(&again.registry, &fleet.registry);
                prop_assert_eq!(&again.health, &fleet.health);
            } else {
                errors_never_empty(c.build());
            }
        }
        if let Ok(toml_text) = toml::to_string(&value)
            && let Ok(c) = toml::from_str::<FleetConfig>(&toml_text)
        {
            errors_never_empty(c.build());
        }
    }

    /// Any health policy reachable from a file is written back exactly.
    #[test]
    fn health_round_trips(
        preset in select(vec!["default", "dify", "litellm", "disabled"]),
        kind in select(FailureKind::ALL.to_vec()),
        setting in 0..4u8,
        failures in 1u32..=8,
        window_ms in 1u64..100_000,
        cooldown_ms in 1u64..100_000,
        ejection in prop::option::of((1u32..10, 1u64..10_000, 0u32..=100)),
        slow in prop::option::of((1u64..100_000, 0.1f64..4.0, 0.0f64..=100.0)),
        panic in prop::option::of(1u32..=100),
        penalty in prop::option::of(0u64..10_000),
        retry_sets_end in any::<bool>(),
        min_group in 0u32..4,
    ) {
        let rule = match setting {
            0 => "false".to_owned(),
            1 => "\"counted\"".to_owned(),
            _ => format!(r#"{{"failures": {failures}, "window_ms": {window_ms}, "cooldown_ms": {cooldown_ms}}}"#),
        };
        let mut parts = vec![
            format!(r#""preset": "{preset}""#),
            format!(r#""cooldowns": {{"{kind}": {rule}}}"#),
            format!(r#""retry_after": "{}""#, if retry_sets_end { "sets_end" } else { "cools" }),
            format!(r#""min_group_size": {min_group}"#),
        ];
        if let Some((n, base, pct)) = ejection {
            parts.push(format!(r#""ejection": {{"consecutive_failures": {n}, "base_ms": {base}, "max_ms": {}, "max_percent": {pct}}}"#, base * 4));
        }
        if let Some((w, a, m)) = slow {
            parts.push(format!(r#""slow_start": {{"window_ms": {w}, "aggression": {a}, "min_percent": {m}}}"#));
        }
        if let Some(p) = panic {
            parts.push(format!(r#""unhealthy": {{"panic": {p}}}"#));
        }
        match penalty {
            Some(p) => parts.push(format!(r#""failure_penalty_ms": {p}"#)),
            None => parts.push(r#""failure_penalty_ms": null"#.to_owned()),
        }
        let text = format!("{{{}}}", parts.join(", "));
        let config: HealthConfig = serde_json::from_str(&text).unwrap();
        let policy = config.resolve().unwrap();
        let written = HealthConfig::from_policy(&policy);
        prop_assert_eq!(&written.resolve().unwrap(), &policy);
        let through_toml: HealthConfig = toml::from_str(&toml::to_string(&written).unwrap()).unwrap();
        prop_assert_eq!(through_toml.resolve().unwrap(), policy);
    }
}

#[test]
fn an_active_request_bias_round_trips_through_the_config_form() {
    let p2c = PowerOfTwo::new(Load::InFlightPerWeight)
        .with_active_request_bias(2.5)
        .unwrap();
    let c = StrategyConfig::from_strategy(&p2c.into());
    assert_eq!(c.active_request_bias, Some(2.5));
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(
        json,
        r#"{"name":"power_of_two","load":"in_flight_per_weight","active_request_bias":2.5}"#
    );
    let back: StrategyConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.resolve().unwrap(), p2c.into());
    // Infinite and NaN biases are refused by the strategy itself.
    assert!(
        PowerOfTwo::default()
            .with_active_request_bias(f64::INFINITY)
            .is_err()
    );
    let err = PowerOfTwo::default()
        .with_active_request_bias(f64::NAN)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "strategy power_of_two: active_request_bias must be a finite number of at least 0, got NaN"
    );
}

/// A fleet file's weighted strategy can weigh by rpm: the table's
/// `weights` key reaches the selector, and weighted round robin then gives
/// each deployment exactly its rpm of every Σrpm picks.
#[test]
fn a_fleet_file_weighs_by_rpm() {
    let fleet = built(
        r#"{
      "identity": "name+tag",
      "strategy": { "name": "weighted_round_robin", "weights": "rpm" },
      "deployments": [
        { "provider": "openai", "model": "gpt-4", "tag": "low", "limits": { "rpm": 6 } },
        { "provider": "openai", "model": "gpt-4", "tag": "high", "limits": { "rpm": 1440 } }
      ]
    }"#,
    );
    assert_eq!(
        StrategyConfig::from_strategy(&fleet.strategy)
            .weights
            .as_deref(),
        Some("rpm")
    );
    let sel = fleet.selector();
    let mut high = 0;
    for i in 0..1446u64 {
        // A minute and a second apart: the rpm limits never bind.
        let req = Request::new("gpt-4").at(Duration::from_secs(61 * i));
        if sel.select(&req).unwrap().deployment().tag() == Some("high") {
            high += 1;
        }
    }
    assert_eq!(high, 1440);
}
