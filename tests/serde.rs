//! serde_json round trips of deployments and registries (policy included,
//! order kept), and credentials that never leave: not in serialized output,
//! not in `Debug`, not in `Display`.

#![cfg(feature = "serde")]

use modelfleet::{Credential, Deployment, Error, IdentityPolicy, ModelKey, Policy, Registry};
use proptest::prelude::*;
use proptest::sample::select;

mod support;

/// Deployments with every serialized field exercised, without credentials
/// (credentials are read but never written, so they cannot round-trip).
fn deployment() -> impl Strategy<Value = Deployment> {
    let names = (
        select(vec!["openai", "azure", "a/b#c"]),
        select(vec![
            "gpt-4",
            "meta-llama/Llama-3-8B",
            "llama3:8b",
            "模型 x",
        ]),
        prop::option::of(select(vec!["gpt4-prod-eu", "gpt-4-0613"])),
        prop::option::of(select(vec![
            "http://10.0.0.1/v1",
            "HTTPS://Example.com:443/v1/",
            "http://[::1]:8080/",
        ])),
        prop::option::of(select(vec!["canary", "node#1"])),
        prop::option::of(select(vec!["1.0.0", "2.0.0-rc.1+b5"])),
    );
    let numbers = (
        prop::collection::btree_map(
            select(vec!["region", "tier", "zone"]),
            select(vec!["eu", "", "gold"]),
            0..3,
        ),
        0u32..=4,
        0u32..3,
        prop::option::of(1u32..1000),
        prop::option::of(1u32..100_000),
        prop::option::of(1u64..u64::MAX),
        prop::option::of(1u32..=200_000),
    );
    (names, numbers).prop_map(
        |(
            (provider, model, upstream, endpoint, tag, version),
            (labels, weight, priority, max_in_flight, rpm, tpm, context_window),
        )| {
            let mut b = Deployment::builder(provider, model)
                .labels(labels)
                .weight(weight)
                .priority(priority);
            if let Some(u) = upstream {
                b = b.upstream_model(u);
            }
            b = support::with_parts(b, endpoint, tag, version);
            if let Some(n) = max_in_flight {
                b = b.max_in_flight(n);
            }
            if let Some(n) = rpm {
                b = b.rpm(n);
            }
            if let Some(n) = tpm {
                b = b.tpm(n);
            }
            if let Some(n) = context_window {
                b = b.context_window(n);
            }
            b.build().unwrap()
        },
    )
}

fn registry() -> impl Strategy<Value = Registry> {
    (
        select(Policy::all().to_vec()),
        prop::collection::vec(deployment(), 0..16),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    )
        .prop_map(|(policy, ds, removals)| {
            let mut reg = Registry::new(policy);
            reg.extend(ds);
            // Removals so that order is not just insertion order.
            for i in removals {
                if reg.is_empty() {
                    break;
                }
                let key = reg.keys().nth(i.index(reg.len())).unwrap().clone();
                let d = reg.remove(&key).unwrap();
                if i.index(2) == 0 {
                    reg.insert(d).unwrap();
                }
            }
            reg
        })
}

#[track_caller]
fn round_trip_registry(reg: &Registry) -> Registry {
    let json = serde_json::to_string(reg).unwrap();
    match serde_json::from_str::<Registry>(&json) {
        Ok(back) => back,
        Err(e) => panic!("{json} does not read back: {e}"),
    }
}

proptest! {
    #[test]
    fn deployment_round_trip(d in deployment()) {
        let json = serde_json::to_string(&d).unwrap();
        let back: Deployment = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &d);
        // Pretty or compact, same value.
        let pretty = serde_json::to_string_pretty(&d).unwrap();
        prop_assert_eq!(serde_json::from_str::<Deployment>(&pretty).unwrap(), d);
    }

    #[test]
    fn registry_round_trip(reg in registry()) {
        let back = round_trip_registry(&reg);
        prop_assert_eq!(&back, &reg);
        prop_assert_eq!(back.policy(), reg.policy());
        prop_assert!(back.keys().eq(reg.keys()), "order is kept");
        for model in reg.models() {
            prop_assert!(back.of_model(model).eq(reg.of_model(model)));
        }
        // The JSON is the policy's text form and the deployments in order.
        let value = serde_json::to_value(&reg).unwrap();
        let policy = reg.policy().to_string();
        prop_assert_eq!(value["policy"].as_str(), Some(policy.as_str()));
        let listed = value["deployments"].as_array().unwrap();
        prop_assert_eq!(listed.len(), reg.len());
        for (v, d) in listed.iter().zip(reg.deployments()) {
            prop_assert_eq!(v, &serde_json::to_value(d).unwrap());
        }
        // Keys serialize as their text form.
        for k in reg.keys() {
            prop_assert_eq!(serde_json::to_value(k).unwrap(), serde_json::Value::String(k.to_string()));
        }
    }

    /// A registry read back under another policy is that policy's registry
    /// of the same deployments, or a duplicate error.
    #[test]
    fn registry_json_under_another_policy(reg in registry(), q in select(Policy::all().to_vec())) {
        let mut value = serde_json::to_value(&reg).unwrap();
        value["policy"] = serde_json::Value::String(q.to_string());
        let read = serde_json::from_value::<Registry>(value);
        prop_assert_eq!(read.is_ok(), reg.collisions(&q).is_empty());
        if let Ok(read) = read {
            prop_assert_eq!(read, reg.rekey(q).unwrap());
        }
    }
}

#[test]
fn policies_serialize_as_text() {
    for &p in Policy::all() {
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{p}\""));
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
    }
    // Any order of discriminators reads; it writes in canonical order.
    let p: Policy = serde_json::from_str("\"name+version+endpoint\"").unwrap();
    assert_eq!(p, Policy::NAME_ENDPOINT_VERSION);
    assert!(serde_json::from_str::<Policy>("\"name+region\"").is_err());
    assert!(serde_json::from_str::<Policy>("3").is_err());
}

#[test]
fn minimal_json_deployment_gets_defaults() {
    let d: Deployment = serde_json::from_str(r#"{"provider":"openai","model":"gpt-4"}"#).unwrap();
    assert_eq!(d, Deployment::builder("openai", "gpt-4").build().unwrap());
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"provider":"openai","model":"gpt-4","weight":1,"priority":0}"#
    );
}

#[test]
fn json_is_validated_and_normalized() {
    let d: Deployment = serde_json::from_str(
        r#"{"provider":"openai","model":"gpt-4","endpoint":"HTTP://H:80/v1/","limits":{"rpm":60}}"#,
    )
    .unwrap();
    assert_eq!(d.endpoint().unwrap().as_str(), "http://h/v1");
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"provider":"openai","model":"gpt-4","endpoint":"http://h/v1","weight":1,"priority":0,"limits":{"rpm":60}}"#
    );
    assert!(serde_json::from_str::<Deployment>(r#"{"provider":" ","model":"gpt-4"}"#).is_err());
    assert!(serde_json::from_str::<ModelKey>("\"openai/gpt-4@http://H/\"").is_err());
}

const SECRET: &str = "sk-live-T0PS3CR3T-9f8e7d";

fn with_secret() -> Deployment {
    Deployment::builder("openai", "gpt-4")
        .endpoint("http://10.0.0.1/v1")
        .tag("canary")
        .version("1.2.0")
        .label("region", "eu")
        .credential(SECRET)
        .build()
        .unwrap()
}

#[track_caller]
fn assert_hidden(what: &str, shown: &str) {
    assert!(
        !shown.contains(SECRET),
        "{what} shows the credential: {shown}"
    );
    assert!(
        !shown.contains("T0PS3CR3T"),
        "{what} shows part of the credential: {shown}"
    );
}

#[test]
fn credentials_are_never_shown_or_written() {
    let d = with_secret();
    assert_eq!(d.credential().map(Credential::expose), Some(SECRET));
    assert_hidden("Debug", &format!("{d:?}"));
    assert_hidden("pretty Debug", &format!("{d:#?}"));
    assert_hidden("Display", &d.to_string());
    assert_hidden("JSON", &serde_json::to_string(&d).unwrap());
    assert_hidden("pretty JSON", &serde_json::to_string_pretty(&d).unwrap());
    assert_hidden(
        "Credential Debug",
        &format!("{:?}", d.credential().unwrap()),
    );
    assert_hidden("Credential Display", &d.credential().unwrap().to_string());
    assert_hidden("builder Debug", &format!("{:?}", d.to_builder()));

    let mut reg = Registry::new(Policy::NAME);
    reg.insert(d.clone()).unwrap();
    assert_hidden("registry Debug", &format!("{reg:?} {reg:#?}"));
    assert_hidden("registry JSON", &serde_json::to_string(&reg).unwrap());
    for (k, _) in reg.iter() {
        assert_hidden("key", &format!("{k} {k:?}"));
    }
    for &p in Policy::all() {
        assert_hidden("key under a policy", &p.key(&d).to_string());
    }

    // Errors that name the deployment do not show it either.
    let err = reg.insert(d.clone()).unwrap_err();
    assert!(matches!(err, Error::Duplicate { .. }));
    assert_hidden("duplicate error", &format!("{err} {err:?}"));
    let mut fine = Registry::new(Policy::NAME_TAG);
    fine.insert(d.clone()).unwrap();
    fine.insert(d.to_builder().tag("b").build().unwrap())
        .unwrap();
    let err = fine.rekey(Policy::NAME).unwrap_err();
    assert_hidden("collision error", &format!("{err} {err:?}"));
    assert_hidden(
        "collisions",
        &format!("{:?}", fine.collisions(&Policy::NAME)),
    );
}

#[test]
fn credentials_are_read_but_not_written() {
    let json = format!(r#"{{"provider":"openai","model":"gpt-4","credential":"{SECRET}"}}"#);
    let d: Deployment = serde_json::from_str(&json).unwrap();
    assert_eq!(d.credential().map(Credential::expose), Some(SECRET));
    let out = serde_json::to_string(&d).unwrap();
    assert_hidden("JSON", &out);
    // So the round trip drops it, and only it.
    let back: Deployment = serde_json::from_str(&out).unwrap();
    assert_eq!(back.credential(), None);
    assert_eq!(
        back,
        Deployment::builder("openai", "gpt-4").build().unwrap()
    );

    // A registry read from JSON with credentials keeps them in memory and
    // writes none.
    let reg_json = format!(r#"{{"policy":"name","deployments":[{json}]}}"#);
    let reg: Registry = serde_json::from_str(&reg_json).unwrap();
    assert_eq!(
        reg.deployments()
            .next()
            .unwrap()
            .credential()
            .map(Credential::expose),
        Some(SECRET)
    );
    assert_hidden("registry JSON", &serde_json::to_string(&reg).unwrap());
}

#[test]
fn bad_credentials_in_json_are_not_echoed() {
    let json = format!(r#"{{"provider":"openai","model":"gpt-4","credential":"{SECRET}\u0007"}}"#);
    let err = serde_json::from_str::<Deployment>(&json).unwrap_err();
    assert_hidden("error", &format!("{err} {err:?}"));
    assert_eq!(
        err.to_string(),
        "deployment openai/gpt-4: credential \"<redacted>\" holds a control character at byte 24"
    );
}

/// A key given twice in any map or table of a serialized deployment,
/// registry, change list or fleet file is refused, and the error names the
/// repeated key and where it is; nothing is kept last-wins.
#[test]
fn repeated_keys_are_refused_with_their_place() {
    use modelfleet::Changes;
    use modelfleet::config::FleetConfig;

    let d = |rest: &str| format!(r#"{{"provider": "openai", "model": "gpt-4", {rest}}}"#);
    let labels = d(r#""labels": {"region": "eu", "tier": "gold", "region": "us"}"#);
    let deployment_cases = [
        (labels.clone(), "`region`", "labels"),
        (d(r#""weight": 1, "weight": 2"#), "`weight`", "weight"),
        (d(r#""limits": {"rpm": 1, "rpm": 2}"#), "`rpm`", "rpm"),
    ];
    for (json, key, place) in &deployment_cases {
        let e = serde_json::from_str::<Deployment>(json)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("duplicate") && e.contains(key) && e.contains(place),
            "{e}: {json}"
        );
        let reg = format!(r#"{{"policy": "name", "deployments": [{json}]}}"#);
        let e = serde_json::from_str::<Registry>(&reg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate") && e.contains(key), "{e}: {reg}");
        let fleet = format!(r#"{{"deployments": [{json}]}}"#);
        let e = serde_json::from_str::<FleetConfig>(&fleet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate") && e.contains(key), "{e}: {fleet}");
    }
    let change = format!(r#"[{{"op": "added", "key": "openai/gpt-4@", "deployment": {labels}}}]"#);
    let e = serde_json::from_str::<Changes>(&change)
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate") && e.contains("`region`"), "{e}");

    let fleet_cases = [
        (
            r#"{"fallbacks": {"gpt-4": ["a"], "gpt-3": [], "gpt-4": ["b"]}}"#,
            "`gpt-4`",
            "fallbacks",
        ),
        (
            r#"{"health": {"cooldowns": {"timeout": null, "timeout": {"cooldown_ms": 5}}}}"#,
            "`timeout`",
            "health.cooldowns",
        ),
        (r#"{"seed": 1, "seed": 2}"#, "`seed`", "seed"),
        (
            r#"{"strategy": {"name": "round_robin", "name": "latency"}}"#,
            "`name`",
            "name",
        ),
    ];
    for (json, key, place) in fleet_cases {
        let e = serde_json::from_str::<FleetConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("duplicate") && e.contains(key) && e.contains(place),
            "{e}: {json}"
        );
    }
}
