//! `BuiltinStrategy`'s serde form keeps its settings, reads back what it
//! writes, and is the form fleet files write (`StrategyConfig`): a plain
//! name at the default settings, else a table of the name and the settings.
#![cfg(feature = "serde")]

use modelfleet::config::StrategyConfig;
use modelfleet::select::{
    BuiltinStrategy, ConsistentHash, Latency, LeastOutstanding, Load, PowerOfTwo, RoundRobin,
    WeightSource, WeightedRandom, WeightedRoundRobin,
};
use proptest::prelude::*;
use proptest::sample::select;

/// Finite numbers of at least `min`: the bounds themselves, the extremes,
/// and ordinary values.
fn at_least(min: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        select(vec![
            min,
            min + f64::EPSILON,
            min + 5e-324,
            min + 0.1,
            f64::MAX,
            1e300
        ]),
        (0.0f64..1e9).prop_map(move |x| min + x),
        any::<f64>().prop_filter_map("finite, at least min", move |x| {
            (x.is_finite() && x >= min).then_some(x)
        }),
    ]
}

/// Every built-in with settings anywhere in their ranges, defaults included.
fn strategy() -> impl Strategy<Value = BuiltinStrategy> {
    prop_oneof![
        Just(RoundRobin.into()),
        Just(WeightedRoundRobin::new().into()),
        Just(WeightedRandom::new().into()),
        select(vec![
            WeightSource::Weight,
            WeightSource::Rpm,
            WeightSource::Tpm,
            WeightSource::LiteLlm
        ])
        .prop_flat_map(|w| prop_oneof![
            Just(WeightedRandom::with_weights(w).into()),
            Just(WeightedRoundRobin::with_weights(w).into()),
        ]),
        Just(LeastOutstanding.into()),
        select(vec![
            Load::InFlight,
            Load::InFlightPerWeight,
            Load::PeakEwma
        ])
        .prop_map(|l| PowerOfTwo::new(l).into()),
        (
            select(vec![
                Load::InFlight,
                Load::InFlightPerWeight,
                Load::PeakEwma
            ]),
            prop_oneof![Just(0.0), Just(1.0), at_least(0.0)],
        )
            .prop_map(|(l, b)| PowerOfTwo::new(l)
                .with_active_request_bias(b)
                .unwrap()
                .into()),
        prop_oneof![Just(0.0), at_least(0.0)].prop_map(|b| Latency::with_buffer(b).unwrap().into()),
        Just(ConsistentHash::default().into()),
        at_least(1.0).prop_map(|f| ConsistentHash::with_bounded_load(f).unwrap().into()),
    ]
}

proptest! {
    #[test]
    fn settings_round_trip(s in strategy()) {
        let json = serde_json::to_string(&s).unwrap();
        let back: BuiltinStrategy = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, s, "{}", json);
        // The same form as a fleet file's strategy, read the same way.
        let config = StrategyConfig::from_strategy(&s);
        prop_assert_eq!(&json, &serde_json::to_string(&config).unwrap());
        let read: StrategyConfig = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(read.resolve().unwrap(), s);
        // And through a format with its own number syntax.
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct File { strategy: BuiltinStrategy }
        let toml_text = toml::to_string(&File { strategy: s }).unwrap();
        let file: File = toml::from_str(&toml_text).unwrap();
        prop_assert_eq!(file.strategy, s, "{}", toml_text);
    }
}

#[test]
fn defaults_are_written_as_plain_names() {
    for &s in BuiltinStrategy::all() {
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        let back: BuiltinStrategy = serde_json::from_str(&format!("\"{s}\"")).unwrap();
        assert_eq!(back, s);
    }
}

#[test]
fn settings_are_written_beside_the_name() {
    let cases: [(BuiltinStrategy, &str); 3] = [
        (
            ConsistentHash::with_bounded_load(1.25).unwrap().into(),
            r#"{"name":"consistent_hash","bounded_load":1.25}"#,
        ),
        (
            Latency::with_buffer(0.1).unwrap().into(),
            r#"{"name":"latency","buffer":0.1}"#,
        ),
        (
            PowerOfTwo::new(Load::PeakEwma).into(),
            r#"{"name":"power_of_two","load":"peak_ewma"}"#,
        ),
    ];
    for (s, json) in cases {
        assert_eq!(serde_json::to_string(&s).unwrap(), json);
        assert_eq!(serde_json::from_str::<BuiltinStrategy>(json).unwrap(), s);
    }
}

#[test]
fn bad_settings_are_refused_as_fleet_files_refuse_them() {
    for (json, want) in [
        (
            r#"{"name":"round_robin","buffer":0.1}"#,
            "buffer: only the latency strategy takes a buffer, not round_robin",
        ),
        (
            r#"{"name":"consistent_hash","bounded_load":0.5}"#,
            "bounded_load: must be a finite number of at least 1, got 0.5",
        ),
        (
            r#"{"name":"power_of_two","load":"fastest"}"#,
            "load: unknown load \"fastest\"",
        ),
        (r#"{"name":"fastest"}"#, "unknown strategy \"fastest\""),
        (r#""fastest""#, "unknown strategy \"fastest\""),
        (r#"{"name":"latency","bufer":0.1}"#, "unknown field `bufer`"),
        (r#"{"buffer":0.1}"#, "missing field `name`"),
    ] {
        let err = serde_json::from_str::<BuiltinStrategy>(json).unwrap_err();
        assert!(err.to_string().contains(want), "{json}: {err}");
    }
}

/// The weight source is a table setting of the two weighted strategies: a
/// plain name at the default, `weights` otherwise, and an error naming the
/// setting for any other strategy or an unknown source.
#[test]
fn weight_sources_round_trip_and_are_checked() {
    let by_rpm: BuiltinStrategy = WeightedRandom::with_weights(WeightSource::Rpm).into();
    let json = serde_json::to_string(&by_rpm).unwrap();
    assert_eq!(json, r#"{"name":"weighted_random","weights":"rpm"}"#);
    assert_eq!(
        serde_json::from_str::<BuiltinStrategy>(&json).unwrap(),
        by_rpm
    );
    let litellm: BuiltinStrategy = WeightedRoundRobin::with_weights(WeightSource::LiteLlm).into();
    let json = serde_json::to_string(&litellm).unwrap();
    assert_eq!(
        json,
        r#"{"name":"weighted_round_robin","weights":"litellm"}"#
    );
    assert_eq!(
        serde_json::from_str::<BuiltinStrategy>(&json).unwrap(),
        litellm
    );
    // The default source is the plain name, and reads back from a table too.
    let plain: BuiltinStrategy = WeightedRandom::with_weights(WeightSource::Weight).into();
    assert_eq!(
        serde_json::to_string(&plain).unwrap(),
        r#""weighted_random""#
    );
    let table = r#"{"name":"weighted_random","weights":"weight"}"#;
    assert_eq!(
        serde_json::from_str::<BuiltinStrategy>(table).unwrap(),
        plain
    );

    let wrong: StrategyConfig =
        serde_json::from_str(r#"{"name":"round_robin","weights":"rpm"}"#).unwrap();
    assert_eq!(
        wrong.resolve().unwrap_err().to_string(),
        "weights: only the weighted_random and weighted_round_robin strategies take weights, not round_robin"
    );
    let unknown: StrategyConfig =
        serde_json::from_str(r#"{"name":"weighted_random","weights":"rps"}"#).unwrap();
    assert_eq!(
        unknown.resolve().unwrap_err().to_string(),
        r#"weights: unknown weight source "rps": expected one of weight, rpm, tpm, litellm"#
    );
}
