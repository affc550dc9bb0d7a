//! The per-deployment cooldown override (`Deployment::cooldown`,
//! `cooldown_ms` in fleet files): what it replaces, what it leaves alone
//! (`Retry-After`, ejection), its zero meaning "never cools", and its
//! serialized form and errors.
//!
//! Every time is injected (`Report`); nothing reads a clock.

use std::time::Duration;

use modelfleet::health::{
    CooldownRule, Ejection, FailureKind, FailureRate, HealthPolicy, Report, RetryAfter, State,
};
use modelfleet::select::RoundRobin;
use modelfleet::{
    Change, Deployment, Error, Field, MAX_COOLDOWN, ModelKey, Policy, Registry, Request, Selector,
};
use proptest::prelude::*;

const S: u64 = 1_000_000_000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Deployments of `model` at `n0.test`, `n1.test`, …, each with its override.
fn registry(model: &str, overrides: &[Option<Duration>]) -> (Registry, Vec<ModelKey>) {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, o) in overrides.iter().enumerate() {
        let mut b = Deployment::builder("openai", model).endpoint(&format!("http://n{i}.test/v1"));
        if let Some(o) = o {
            b = b.cooldown(*o);
        }
        reg.insert(b.build().unwrap()).unwrap();
    }
    let keys = reg.iter().map(|(k, _)| k.clone()).collect();
    (reg, keys)
}

fn selector(reg: &Registry, policy: HealthPolicy) -> Selector {
    Selector::builder(reg)
        .strategy(RoundRobin)
        .health(policy.validated().unwrap())
        .build()
}

/// `(state, available_at)` of deployment `i` at `now`.
fn health(s: &Selector, keys: &[ModelKey], i: usize, now: Duration) -> (State, Option<Duration>) {
    let h = s.health(now);
    let h = h.iter().find(|h| h.key == keys[i]).unwrap();
    (h.state, h.available_at)
}

/// LiteLLM's router with `cooldown_time=300`: its preset, every cooldown
/// 300 s.
fn litellm_300() -> HealthPolicy {
    let mut p = HealthPolicy::litellm();
    let once = CooldownRule::new(1, Duration::ZERO, secs(300)).unwrap();
    for k in [
        FailureKind::rate_limited(None),
        FailureKind::AuthenticationError,
        FailureKind::NotFound,
    ] {
        p.cooldowns.set_rule(k, Some(once));
    }
    p.cooldowns.failure_rate = Some(FailureRate::new(5, 0.5, secs(300)));
    p
}

/// LiteLLM's `test_cooldown_time_zero_uses_zero_not_default`
/// (tests/local_testing/test_router_cooldowns.py): router `cooldown_time`
/// 300, a deployment with `cooldown_time: 0`, one rate-limit error; the
/// deployment is not cooled and stays the one healthy deployment. LiteLLM's
/// test puts it alone in its group, where LiteLLM cools nothing anyway; here
/// a twin without the override shares the group, so the test can fail.
#[test]
fn test_cooldown_time_zero_uses_zero_not_default() {
    let (reg, keys) = registry("gpt-3.5-turbo", &[Some(Duration::ZERO), None]);
    let s = selector(&reg, litellm_300());
    let t = secs(1);
    for k in &keys {
        assert!(s.report(k, Report::failure(t, FailureKind::rate_limited(None))));
    }
    assert_eq!(health(&s, &keys, 0, t), (State::Healthy, None));
    assert_eq!(
        health(&s, &keys, 1, t),
        (State::Cooling, Some(t + secs(300)))
    );
    // The deployment with cooldown 0 is the one healthy deployment.
    for _ in 0..4 {
        let pick = s.select(&Request::new("gpt-3.5-turbo").at(t)).unwrap();
        assert_eq!(pick.key(), &keys[0]);
    }
}

#[test]
fn the_override_replaces_the_rules_duration() {
    // Dify: a connection error cools for 10 s; overrides of 3 s and 40 s.
    let (reg, keys) = registry("gpt-4", &[Some(secs(3)), Some(secs(40)), None]);
    let s = selector(&reg, HealthPolicy::dify());
    let t = secs(5);
    for k in &keys {
        s.report(k, Report::failure(t, FailureKind::ConnectionError));
    }
    assert_eq!(health(&s, &keys, 0, t).1, Some(t + secs(3)));
    assert_eq!(health(&s, &keys, 1, t).1, Some(t + secs(40)));
    assert_eq!(health(&s, &keys, 2, t).1, Some(t + secs(10)));
    // A kind the policy does not cool is not cooled by an override.
    let (reg, keys) = registry("gpt-4", &[Some(secs(3))]);
    let s = selector(&reg, HealthPolicy::dify());
    s.report(&keys[0], Report::failure(t, FailureKind::ServerError));
    assert_eq!(health(&s, &keys, 0, t), (State::Healthy, None));
}

#[test]
fn the_override_replaces_the_failure_rates_duration() {
    // LiteLLM: server errors only count; above half of at least 5 requests
    // failed in the minute, the deployment cools (5 s; the override 20 s).
    let (reg, keys) = registry("gpt-4", &[Some(secs(20)), None]);
    let s = selector(&reg, HealthPolicy::litellm());
    let t = secs(100);
    for k in &keys {
        for i in 0..5 {
            s.report(k, Report::failure(t + secs(i), FailureKind::ServerError));
        }
    }
    let last = t + secs(4);
    assert_eq!(health(&s, &keys, 0, last).1, Some(last + secs(20)));
    assert_eq!(health(&s, &keys, 1, last).1, Some(last + secs(5)));
}

#[test]
fn retry_after_still_sets_the_end_but_not_at_zero() {
    let t = secs(2);
    let limited = |ra: u64| FailureKind::rate_limited(Some(secs(ra)));
    // `RetryAfter::Cools` (Dify): the server's 30 s beat the override's 3 s,
    // and its 1 s beats the override's 40 s.
    let (reg, keys) = registry(
        "gpt-4",
        &[Some(secs(3)), Some(secs(40)), Some(Duration::ZERO)],
    );
    let s = selector(&reg, HealthPolicy::dify());
    s.report(&keys[0], Report::failure(t, limited(30)));
    s.report(&keys[1], Report::failure(t, limited(1)));
    s.report(&keys[2], Report::failure(t, limited(30)));
    assert_eq!(health(&s, &keys, 0, t).1, Some(t + secs(30)));
    assert_eq!(health(&s, &keys, 1, t).1, Some(t + secs(1)));
    assert_eq!(health(&s, &keys, 2, t), (State::Healthy, None));

    // `RetryAfter::SetsEnd` (LiteLLM): the rule triggers, the server's time
    // sets the end; at zero nothing cools.
    let s = selector(&reg, HealthPolicy::litellm());
    assert_eq!(
        HealthPolicy::litellm().cooldowns.retry_after,
        RetryAfter::SetsEnd
    );
    s.report(&keys[0], Report::failure(t, limited(30)));
    s.report(&keys[2], Report::failure(t, limited(30)));
    assert_eq!(health(&s, &keys, 0, t).1, Some(t + secs(30)));
    assert_eq!(health(&s, &keys, 2, t), (State::Healthy, None));
}

#[test]
fn ejection_ignores_the_override() {
    let mut policy = HealthPolicy::disabled();
    let mut ejection = Ejection::default();
    ejection.consecutive_failures = 1;
    ejection.max_percent = 100;
    policy.ejection = Some(ejection);
    let base = Ejection::default().base;
    let (reg, keys) = registry("gpt-4", &[Some(Duration::ZERO), Some(secs(1)), None]);
    let s = selector(&reg, policy);
    let t = secs(7);
    for k in &keys {
        s.report(k, Report::failure(t, FailureKind::ServerError));
    }
    for i in 0..3 {
        assert_eq!(health(&s, &keys, i, t), (State::Ejected, Some(t + base)));
    }
}

#[test]
fn the_override_is_in_health_snapshots() {
    let (reg, keys) = registry("gpt-4", &[Some(Duration::ZERO), Some(secs(9)), None]);
    let s = selector(&reg, HealthPolicy::default());
    let h = s.health(Duration::ZERO);
    let of = |i: usize| h.iter().find(|h| h.key == keys[i]).unwrap().cooldown;
    assert_eq!(
        [of(0), of(1), of(2)],
        [Some(Duration::ZERO), Some(secs(9)), None]
    );
}

#[test]
fn a_rebuilt_version_uses_the_new_override() {
    let (reg, keys) = registry("gpt-4", &[None]);
    let s = selector(&reg, HealthPolicy::dify());
    let mut reg2 = reg.clone();
    let d = reg
        .get(&keys[0])
        .unwrap()
        .to_builder()
        .cooldown(Duration::ZERO);
    reg2.upsert(d.build().unwrap());
    let changes = reg.diff(&reg2);
    assert!(
        matches!(changes.iter().next(), Some(Change::Updated { .. })),
        "{changes:?}"
    );
    let s2 = s.rebuild(&reg2, Duration::ZERO);
    s2.report(
        &keys[0],
        Report::failure(secs(1), FailureKind::ConnectionError),
    );
    assert_eq!(health(&s2, &keys, 0, secs(1)), (State::Healthy, None));
}

#[test]
fn equality_sees_the_override() {
    let b = || Deployment::builder("openai", "gpt-4");
    let plain = b().build().unwrap();
    let zero = b().cooldown(Duration::ZERO).build().unwrap();
    let ten = b().cooldown(secs(10)).build().unwrap();
    assert_ne!(plain, zero);
    assert_ne!(zero, ten);
    assert_eq!(ten, b().cooldown(secs(10)).build().unwrap());
}

#[test]
fn builder_refuses_an_override_over_the_maximum() {
    let err = Deployment::builder("openai", "gpt-4")
        .cooldown(MAX_COOLDOWN + Duration::from_millis(1))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidNumber { .. }), "{err:?}");
    assert_eq!(err.field(), Some(Field::Cooldown));
    assert_eq!(
        err.to_string(),
        "deployment openai/gpt-4: cooldown_ms must be at most 86400000 ms, got 86400001 ms"
    );
    let err = Deployment::builder("openai", "gpt-4")
        .cooldown(Duration::MAX)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), Some(Field::Cooldown));
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trip() {
    for (o, text) in [
        (Some(Duration::ZERO), Some("0")),
        (Some(secs(10)), Some("10000")),
        (Some(MAX_COOLDOWN), Some("86400000")),
        (None, None),
    ] {
        let (reg, keys) = registry("gpt-4", &[o]);
        let d = reg.get(&keys[0]).unwrap();
        let json = serde_json::to_string(d).unwrap();
        match text {
            Some(t) => assert!(json.contains(&format!("\"cooldown_ms\":{t}")), "{json}"),
            None => assert!(!json.contains("cooldown"), "{json}"),
        }
        let back: Deployment = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, d, "reads back equal");
    }
    let json = r#"{"provider": "openai", "model": "gpt-4", "cooldown_ms": 2500}"#;
    let d: Deployment = serde_json::from_str(json).unwrap();
    assert_eq!(d.cooldown(), Some(Duration::from_millis(2500)));
    // A whole float is a whole number.
    let json = r#"{"provider": "openai", "model": "gpt-4", "cooldown_ms": 2500.0}"#;
    let d: Deployment = serde_json::from_str(json).unwrap();
    assert_eq!(d.cooldown(), Some(Duration::from_millis(2500)));
}

#[cfg(feature = "serde")]
#[test]
fn bad_overrides_name_the_field_of_the_deployment() {
    for (value, problem) in [
        ("-1", "-1 is negative"),
        ("-0.5", "-0.5 is negative"),
        ("1.5", "1.5 is not a whole number from 0 to 86400000"),
        ("86400001", "86400001 is larger than 86400000"),
        ("1e300", "1e300 is not a whole number from 0 to 86400000"),
        ("\"10s\"", "\"10s\" is not a number"),
    ] {
        let json = format!(r#"{{"provider": "openai", "model": "gpt-4", "cooldown_ms": {value}}}"#);
        let err = serde_json::from_str::<Deployment>(&json).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("deployment openai/gpt-4: cooldown_ms {problem}"),
            "{value}"
        );
        // A fleet file reports it at its place.
        let fleet = format!(
            r#"{{"deployments": [{{"provider": "openai", "model": "gpt-4"}},
                {{"provider": "openai", "model": "gpt-4", "endpoint": "http://h/", "cooldown_ms": {value}}}]}}"#
        );
        let config: modelfleet::config::FleetConfig = serde_json::from_str(&fleet).unwrap();
        let errs = config.build().unwrap_err();
        assert_eq!(
            errs.to_string(),
            format!("deployments[1].cooldown_ms: {problem}"),
            "{value}"
        );
    }
    // NaN, which TOML can write.
    let toml = "[[deployments]]\nprovider = \"openai\"\nmodel = \"gpt-4\"\ncooldown_ms = nan\n";
    let config: modelfleet::config::FleetConfig = toml::from_str(toml).unwrap();
    assert_eq!(
        config.build().unwrap_err().to_string(),
        "deployments[0].cooldown_ms: NaN is not a number"
    );
}

#[cfg(feature = "serde")]
#[test]
fn fleet_files_round_trip_the_override() {
    let toml = "[[deployments]]\nprovider = \"openai\"\nmodel = \"gpt-4\"\nendpoint = \"http://a/\"\ncooldown_ms = 0\n\n\
                [[deployments]]\nprovider = \"openai\"\nmodel = \"gpt-4\"\nendpoint = \"http://b/\"\ncooldown_ms = 1500\n";
    let config: modelfleet::config::FleetConfig = toml::from_str(toml).unwrap();
    let built = config.build().unwrap();
    let got: Vec<_> = built.registry.iter().map(|(_, d)| d.cooldown()).collect();
    assert_eq!(
        got,
        [Some(Duration::ZERO), Some(Duration::from_millis(1500))]
    );
    let again = toml::to_string(&built.to_config()).unwrap();
    let rebuilt: modelfleet::config::FleetConfig = toml::from_str(&again).unwrap();
    let got2: Vec<_> = rebuilt
        .build()
        .unwrap()
        .registry
        .iter()
        .map(|(_, d)| d.cooldown())
        .collect();
    assert_eq!(got, got2);
}

// ---------------------------------------------------------------------------
// Property: an override of zero never cools, whatever the failures.

fn kind() -> impl Strategy<Value = FailureKind> {
    let ra = prop_oneof![
        Just(None),
        (0u64..=120).prop_map(|s| Some(secs(s))),
        Just(Some(Duration::MAX)),
    ];
    (0..FailureKind::ALL.len(), ra).prop_map(|(i, ra)| match FailureKind::ALL[i] {
        FailureKind::RateLimited { .. } => FailureKind::rate_limited(ra),
        FailureKind::Overloaded { .. } => FailureKind::overloaded(ra),
        k => k,
    })
}

fn policy() -> impl Strategy<Value = HealthPolicy> {
    prop_oneof![
        Just({
            let mut p = HealthPolicy::default();
            p.ejection = None;
            p
        }),
        Just(HealthPolicy::dify()),
        Just(HealthPolicy::litellm()),
        Just(litellm_300()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Deployments 0 and 1 get the same reports; 0 has override zero, 1
    /// none, 2 (its own reports) any override. 0 never cools and counts its
    /// failures as 1 does; a closing burst of rate limits cools 1 (and 2
    /// unless its override is zero) but not 0.
    #[test]
    fn zero_override_never_cools(
        policy in policy(),
        events in prop::collection::vec(
            (prop::bool::ANY, kind(), prop_oneof![0u64..3 * S, Just(u64::MAX / 4)]),
            0..40,
        ),
        other in prop_oneof![
            Just(Duration::ZERO),
            (1u64..=MAX_COOLDOWN.as_millis() as u64).prop_map(Duration::from_millis),
        ],
    ) {
        let (reg, keys) = registry("gpt-4", &[Some(Duration::ZERO), None, Some(other)]);
        let s = selector(&reg, policy);
        let mut t = Duration::ZERO;
        for (twins, kind, step) in events {
            t = t.saturating_add(Duration::from_nanos(step));
            let report = Report::failure(t, kind);
            if twins {
                s.report(&keys[0], report);
                s.report(&keys[1], report);
            } else {
                s.report(&keys[2], report);
            }
            let h = s.health(t);
            prop_assert_eq!(h[0].state, State::Healthy);
            prop_assert_eq!(h[0].available_at, None);
            prop_assert_eq!(h[0].consecutive_failures, h[1].consecutive_failures);
        }
        t = t.saturating_add(secs(1));
        for _ in 0..6 {
            for k in &keys {
                s.report(k, Report::failure(t, FailureKind::rate_limited(None)));
            }
        }
        let h = s.health(t);
        prop_assert_eq!(h[0].state, State::Healthy);
        prop_assert_eq!(h[1].state, State::Cooling);
        let expected = if other.is_zero() { State::Healthy } else { State::Cooling };
        prop_assert_eq!(h[2].state, expected);
    }
}

/// An override is whole milliseconds, the form it is written in: a finer
/// one is refused, naming the field, so every deployment reads back equal.
#[test]
fn builder_refuses_an_override_finer_than_a_millisecond() {
    let err = Deployment::builder("openai", "gpt-4")
        .cooldown(Duration::from_micros(1_500))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "deployment openai/gpt-4: cooldown_ms must be whole milliseconds, got 1.5ms"
    );
}
