//! The weighted strategies weighing by rpm or tpm (`WeightSource`), as
//! LiteLLM's `simple-shuffle` does when no weight is set.
//!
//! Every statistical test runs with a FIXED seed, so it is deterministic,
//! and states its tolerance: LiteLLM's own bound where the test is named
//! after one of LiteLLM's, and chi-square goodness of fit at significance
//! p = 0.001 otherwise.

use std::time::Duration;

use modelfleet::select::{Reason, Strategy, WeightSource, WeightedRandom, WeightedRoundRobin};
use modelfleet::{Deployment, Fleet, Policy, Registry, Request, Selector};

const SEED: u64 = 0x5EED_2026;

/// A deployment of `model` tagged `tag`, with the rpm and tpm limits given.
fn deployment(model: &str, tag: &str, rpm: Option<u32>, tpm: Option<u64>) -> Deployment {
    let mut b = Deployment::builder("openai", model).tag(tag);
    if let Some(r) = rpm {
        b = b.rpm(r);
    }
    if let Some(t) = tpm {
        b = b.tpm(t);
    }
    b.build().unwrap()
}

fn registry(ds: impl IntoIterator<Item = Deployment>) -> Registry {
    let mut reg = Registry::new(Policy::NAME_TAG);
    for d in ds {
        reg.insert(d).unwrap();
    }
    reg
}

/// Picks of each tag among `picks` picks of `model`, in `tags`' order.
/// The picks are a minute and a second apart, so that no rpm or tpm limit
/// binds: these tests measure the strategy's shares, not the limits.
fn counts(sel: &Selector, model: &str, tags: &[&str], picks: usize) -> Vec<u64> {
    // One clock for every call, so a selector asked twice never sees time
    // go back.
    static MINUTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut counts = vec![0u64; tags.len()];
    for _ in 0..picks {
        let i = MINUTES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let req = Request::new(model).at(Duration::from_secs(61 * i));
        let pick = sel.select(&req).unwrap();
        let tag = pick.deployment().tag().unwrap();
        counts[tags.iter().position(|t| *t == tag).unwrap()] += 1;
    }
    counts
}

fn chi_square(observed: &[u64], weights: &[f64]) -> f64 {
    let n = observed.iter().sum::<u64>() as f64;
    let total: f64 = weights.iter().sum();
    observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let e = n * w / total;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

/// LiteLLM's `test_weighted_selection_router`: deployments with rpm 6 and
/// 1440 and no weight; of 1,000 picks the rpm-1440 one takes more than 89%
/// (LiteLLM's bound; the exact share is 1440/1446 ≈ 99.6%).
#[test]
fn test_weighted_selection_router() {
    let reg = registry([
        deployment("gpt-3.5-turbo", "low", Some(6), None),
        deployment("gpt-3.5-turbo", "high", Some(1440), None),
    ]);
    for source in [WeightSource::Rpm, WeightSource::LiteLlm] {
        let sel = Selector::with_seed(&reg, WeightedRandom::with_weights(source), SEED);
        let c = counts(&sel, "gpt-3.5-turbo", &["low", "high"], 1000);
        assert!(c[1] as f64 / 1000.0 > 0.89, "{source}: {c:?}");
        // Tighter: within 1 point of 99.6% (5 standard deviations).
        assert!(
            (c[1] as f64 / 1000.0 - 1440.0 / 1446.0).abs() < 0.01,
            "{source}: {c:?}"
        );
    }
    // At the default source both weigh 1: about half each.
    let sel = Selector::with_seed(&reg, WeightedRandom::new(), SEED);
    let c = counts(&sel, "gpt-3.5-turbo", &["low", "high"], 1000);
    assert!((400..600).contains(&c[1]), "{c:?}");
}

/// LiteLLM's `test_weighted_selection_router_tpm`: tpm 5 and 90, more than
/// 89% to the tpm-90 one (exactly 90/95 ≈ 94.7%).
#[test]
fn test_weighted_selection_router_tpm() {
    let reg = registry([
        deployment("gpt-3.5-turbo", "low", None, Some(5)),
        deployment("gpt-3.5-turbo", "high", None, Some(90)),
    ]);
    for source in [WeightSource::Tpm, WeightSource::LiteLlm] {
        let sel = Selector::with_seed(&reg, WeightedRandom::with_weights(source), SEED);
        let c = counts(&sel, "gpt-3.5-turbo", &["low", "high"], 1000);
        assert!(c[1] as f64 / 1000.0 > 0.89, "{source}: {c:?}");
    }
}

/// LiteLLM's `test_weighted_selection_router_rpm_as_router_param` sets rpm
/// and tpm alike (5 and 90 each); rpm comes first in LiteLLM's order.
#[test]
fn test_weighted_selection_router_rpm_as_router_param() {
    let reg = registry([
        deployment("gpt-3.5-turbo", "low", Some(5), Some(90)),
        deployment("gpt-3.5-turbo", "high", Some(90), Some(5)),
    ]);
    let sel = Selector::with_seed(
        &reg,
        WeightedRandom::with_weights(WeightSource::LiteLlm),
        SEED,
    );
    let c = counts(&sel, "gpt-3.5-turbo", &["low", "high"], 1000);
    assert!(c[1] as f64 / 1000.0 > 0.89, "{c:?}");
}

/// LiteLLM's `test_weighted_selection_router_no_rpm_set`: with neither
/// weight, rpm nor tpm, every deployment is picked.
#[test]
fn test_weighted_selection_router_no_rpm_set() {
    let reg = registry([
        deployment("shared", "low", None, None),
        deployment("shared", "high", None, None),
        deployment("unrelated", "unrelated", Some(1440), None),
    ]);
    for source in [WeightSource::Rpm, WeightSource::Tpm, WeightSource::LiteLlm] {
        let sel = Selector::with_seed(&reg, WeightedRandom::with_weights(source), SEED);
        let c = counts(&sel, "shared", &["low", "high"], 100);
        assert!(c.iter().all(|&n| n > 0), "{source}: {c:?}");
    }
}

/// Many rpm values fit `rpm_i / Σrpm` (chi-square, 4 degrees of freedom,
/// critical value 18.47 at p = 0.001).
#[test]
fn weighted_random_fits_rpm() {
    let rpms = [6u32, 60, 100, 600, 1440];
    let tags = ["a", "b", "c", "d", "e"];
    let reg = registry(
        rpms.iter()
            .zip(tags)
            .map(|(&r, t)| deployment("gpt-4", t, Some(r), None)),
    );
    let sel = Selector::with_seed(&reg, WeightedRandom::with_weights(WeightSource::Rpm), SEED);
    let c = counts(&sel, "gpt-4", &tags, 100_000);
    let w: Vec<f64> = rpms.iter().map(|&r| f64::from(r)).collect();
    let chi = chi_square(&c, &w);
    assert!(chi < 18.47, "chi-square {chi} for {c:?}");
}

/// Weighted round robin by rpm is exact: every window of Σrpm consecutive
/// picks holds each deployment's rpm.
#[test]
fn weighted_round_robin_by_rpm_is_exact() {
    let reg = registry([
        deployment("gpt-4", "low", Some(6), None),
        deployment("gpt-4", "high", Some(1440), None),
    ]);
    let sel = Selector::builder(&reg)
        .strategy(WeightedRoundRobin::with_weights(WeightSource::Rpm))
        .seed(SEED)
        .build();
    for _ in 0..3 {
        assert_eq!(counts(&sel, "gpt-4", &["low", "high"], 1446), [6, 1440]);
    }
}

/// Tpm values far beyond `u32::MAX` are scaled, in proportion: u64::MAX
/// against a third of it takes 3/4 of the picks (chi-square, 1 degree of
/// freedom, critical value 10.83 at p = 0.001).
#[test]
fn huge_tpm_keeps_its_proportion() {
    let reg = registry([
        deployment("gpt-4", "full", None, Some(u64::MAX)),
        deployment("gpt-4", "third", None, Some(u64::MAX / 3)),
    ]);
    let sel = Selector::with_seed(&reg, WeightedRandom::with_weights(WeightSource::Tpm), SEED);
    let c = counts(&sel, "gpt-4", &["full", "third"], 100_000);
    let chi = chi_square(&c, &[3.0, 1.0]);
    assert!(chi < 10.83, "chi-square {chi} for {c:?}");
}

/// A deployment without rpm in a tier where others set it takes no picks,
/// as in LiteLLM (its rpm counts as 0); another tier decides for itself.
#[test]
fn a_deployment_without_the_field_weighs_zero_in_its_tier() {
    let reg = registry([
        deployment("gpt-4", "rpm", Some(10), None),
        deployment("gpt-4", "none", None, None),
    ]);
    let sel = Selector::with_seed(&reg, WeightedRandom::with_weights(WeightSource::Rpm), SEED);
    assert_eq!(counts(&sel, "gpt-4", &["rpm", "none"], 200), [200, 0]);
    // `explain` says why: it weighs 0, as a drained deployment does.
    let why = sel.explain(&Request::new("gpt-4")).unwrap();
    let none = why
        .candidates()
        .iter()
        .find(|v| v.key().tag() == modelfleet::Discriminator::Present("none"))
        .unwrap();
    assert_eq!(none.removed(), Some(Reason::Drained));
}

/// A drain still takes a deployment out, whatever its rpm; the rest of
/// the tier keeps weighing by rpm.
#[test]
fn a_drained_deployment_takes_no_picks_under_rpm() {
    let reg = registry([
        deployment("gpt-4", "a", Some(1440), None),
        deployment("gpt-4", "b", Some(6), None),
        deployment("gpt-4", "c", Some(12), None),
    ]);
    let strategy = WeightedRoundRobin::with_weights(WeightSource::Rpm);
    assert_eq!(Strategy::weight_source(&strategy), WeightSource::Rpm);
    let fleet = Fleet::new(reg.clone(), |b| b.strategy(strategy).seed(SEED));
    let a = reg.keys().next().unwrap().clone();
    let _drain = fleet.drain(&a, Duration::ZERO).unwrap();
    let mut seen = [0u64; 2];
    for i in 0..18 {
        let req = Request::new("gpt-4").at(Duration::from_secs(61 * i));
        let pick = fleet.select(&req).unwrap();
        match pick.deployment().tag() {
            Some("b") => seen[0] += 1,
            Some("c") => seen[1] += 1,
            other => panic!("picked {other:?}"),
        }
    }
    assert_eq!(seen, [6, 12]);
}
