//! Property tests of deployment selection.
//!
//! Fleets are small on purpose (1-3 models, 1-12 deployments each, weights
//! 0..5, priorities 0..3, a region label, a `tier=gold` label, a tag, a
//! version and a context window, each often absent) so that the request
//! filters remove deployments often. Every expectation is computed here by
//! hand from the documented rules, never by asking the selector.
//!
//! - every pick passes every filter, comes from the lowest tier that has an
//!   eligible deployment, and `NoEligible` / `explain` report exactly the
//!   reasons computed by hand (weight 0 is never picked, under every
//!   strategy);
//! - weighted round robin: every window of `Σw` consecutive picks holds
//!   exactly `w_i` picks of deployment i (plain and filtered);
//! - round robin: every `n` consecutive picks visit each candidate once;
//! - attempt plans: no key twice, each step a valid pick given what was
//!   tried, exactly the eligible deployments of the model then of the
//!   fallback models, tiers non-decreasing (newest-version rule modelled);
//! - consistent hashing: stability, minimal disruption on removal, about
//!   `1/n` of keys moved on addition;
//! - determinism of every strategy under a random sequence of selects,
//!   drops and completions, and in-flight counts that track held picks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use modelfleet::select::{BuiltinStrategy, ConsistentHash, Latency, Load, PowerOfTwo, Reason};
use modelfleet::select::{Candidate, Candidates, Context, Ring};
use modelfleet::select::{RoundRobin, WeightedRoundRobin};
use modelfleet::{
    Deployment, Error, ModelKey, Pick, Policy, Registry, Request, Selector, TagMatch,
    VersionPreference,
};
use proptest::prelude::*;
use proptest::sample::select;
use semver::Version;

mod support;

// ---------------------------------------------------------------------------
// Fleets

const PROVIDERS: [&str; 2] = ["openai", "azure"];
const TAGS: [&str; 3] = ["a", "b", "canary"];
const VERSIONS: [&str; 4] = ["1.0.0", "1.2.0", "1.10.0", "2.0.0"];
const WINDOWS: [Option<u32>; 3] = [None, Some(4_096), Some(32_768)];
const UNKNOWN_MODEL: &str = "no-such-model";

/// One generated deployment.
#[derive(Clone, Debug)]
struct Spec {
    provider: &'static str,
    weight: u32,
    priority: u32,
    region: Option<&'static str>,
    gold: bool,
    tag: Option<&'static str>,
    version: Option<&'static str>,
    window: Option<u32>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        select(PROVIDERS.to_vec()),
        0u32..5,
        0u32..3,
        prop::option::of(select(vec!["eu", "us"])),
        any::<bool>(),
        prop::option::of(select(TAGS.to_vec())),
        prop::option::of(select(VERSIONS.to_vec())),
        select(WINDOWS.to_vec()),
    )
        .prop_map(
            |(provider, weight, priority, region, gold, tag, version, window)| Spec {
                provider,
                weight,
                priority,
                region,
                gold,
                tag,
                version,
                window,
            },
        )
}

/// 1-3 models with 1-12 deployments each.
fn fleet() -> impl Strategy<Value = Vec<Vec<Spec>>> {
    prop::collection::vec(prop::collection::vec(spec(), 1..=12), 1..=3)
}

fn model_name(m: usize) -> String {
    format!("m{m}")
}

fn deployment(m: usize, i: usize, s: &Spec) -> Deployment {
    let mut b = Deployment::builder(s.provider, &model_name(m))
        .endpoint(&format!("http://m{m}-n{i}.test/v1"))
        .weight(s.weight)
        .priority(s.priority);
    if let Some(r) = s.region {
        b = b.label("region", r);
    }
    if s.gold {
        b = b.label("tier", "gold");
    }
    if let Some(t) = s.tag {
        b = b.tag(t);
    }
    if let Some(v) = s.version {
        b = b.version(v);
    }
    if let Some(w) = s.window {
        b = b.context_window(w);
    }
    b.build().expect("generated deployments are valid")
}

/// The registry of a fleet, keyed by name + endpoint (every endpoint differs).
/// Models are interleaved in registry order.
fn registry(fleet: &[Vec<Spec>]) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    let longest = fleet.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for (m, specs) in fleet.iter().enumerate() {
            if let Some(s) = specs.get(i) {
                reg.insert(deployment(m, i, s)).expect("keys are distinct");
            }
        }
    }
    reg
}

// ---------------------------------------------------------------------------
// Requests

/// One generated request; indices are resolved against the fleet.
#[derive(Clone, Debug)]
struct ReqSpec {
    /// An index into the fleet's models; out of range = an unknown model.
    model: usize,
    plain: bool,
    provider: Option<&'static str>,
    labels: Vec<(&'static str, &'static str)>,
    tags: Vec<&'static str>,
    tag_all: bool,
    version: Option<&'static str>,
    newest: bool,
    tokens: Option<u32>,
    /// Indices into the requested model's deployments.
    exclude: Vec<usize>,
    affinity: Option<u16>,
    /// Indices into the fleet's models; out of range = an unknown model.
    fallbacks: Vec<usize>,
}

fn req_spec() -> impl Strategy<Value = ReqSpec> {
    let filters = (
        prop::option::weighted(0.3, select(PROVIDERS.to_vec())),
        prop::collection::vec(
            select(vec![("region", "eu"), ("region", "us"), ("tier", "gold")]),
            0..=2,
        ),
        prop::collection::vec(select(TAGS.to_vec()), 0..=2),
        any::<bool>(),
        prop::option::weighted(
            0.35,
            select(vec!["^1", ">=1.2.0", "=2.0.0", "<1.1.0", "^3"]),
        ),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, select(vec![1_000u32, 4_096, 8_000, 40_000])),
        prop::collection::vec(0usize..12, 0..=3),
    );
    (
        0usize..4,
        prop::bool::weighted(0.3),
        filters,
        prop::option::of(any::<u16>()),
        prop::collection::vec(0usize..4, 0..=2),
    )
        .prop_map(
            |(
                model,
                plain,
                (provider, labels, tags, tag_all, version, newest, tokens, exclude),
                affinity,
                fallbacks,
            )| ReqSpec {
                model,
                plain,
                provider,
                labels,
                tags,
                tag_all,
                version,
                newest,
                tokens,
                exclude,
                affinity,
                fallbacks,
            },
        )
}

fn model_of(index: usize, models: usize) -> String {
    if index < models {
        model_name(index)
    } else {
        UNKNOWN_MODEL.to_owned()
    }
}

fn keys_of(reg: &Registry, model: &str) -> Vec<ModelKey> {
    reg.of_model(model).map(|(k, _)| k.clone()).collect()
}

fn request(reg: &Registry, models: usize, r: &ReqSpec) -> Request {
    let model = model_of(r.model, models);
    let mut req = Request::new(&model);
    if let Some(a) = r.affinity {
        req = req.affinity(&format!("user-{a}"));
    }
    for &f in &r.fallbacks {
        req = req.fallback(&model_of(f, models));
    }
    if r.plain {
        return req;
    }
    if let Some(p) = r.provider {
        req = req.provider(p);
    }
    for (k, v) in &r.labels {
        req = req.label(k, v);
    }
    for t in &r.tags {
        req = req.tag(t);
    }
    req = req.tag_match(if r.tag_all {
        TagMatch::All
    } else {
        TagMatch::Any
    });
    if let Some(v) = r.version {
        req = req.version(v.parse().expect("valid requirement"));
    }
    if r.newest {
        req = req.version_preference(VersionPreference::Newest);
    }
    if let Some(t) = r.tokens {
        req = req.tokens(t);
    }
    let keys = keys_of(reg, &model);
    if !keys.is_empty() {
        for &i in &r.exclude {
            req = req.exclude(keys[i % keys.len()].clone());
        }
    }
    req
}

// ---------------------------------------------------------------------------
// The filters, by hand

/// The first documented filter that `d` fails, in the order of
/// [`Reason::ALL`]. `extra` are keys excluded on top of the request's own
/// (what an attempt plan has already tried). With `newest = None` the
/// newest-version filter is skipped.
fn hand_reason(
    key: &ModelKey,
    d: &Deployment,
    req: &Request,
    extra: &[ModelKey],
    newest: Option<&Version>,
) -> Option<Reason> {
    if d.weight() == 0 {
        return Some(Reason::Drained);
    }
    if req.required_provider().is_some_and(|p| p != d.provider()) {
        return Some(Reason::Provider);
    }
    for (k, v) in req.required_labels() {
        if d.label(k) != Some(v.as_str()) {
            return Some(Reason::Labels);
        }
    }
    let tags = req.requested_tags();
    if !tags.is_empty() {
        let ok = match d.tag() {
            None => false,
            Some(t) => match req.tag_match_mode() {
                TagMatch::Any => tags.iter().any(|x| x == t),
                TagMatch::All => tags.iter().all(|x| x == t),
                other => panic!("unexpected tag match mode {other:?}"),
            },
        };
        if !ok {
            return Some(Reason::Tags);
        }
    }
    if let Some(vr) = req.version_req() {
        match d.version() {
            Some(v) if vr.matches(v) => {}
            _ => return Some(Reason::Version),
        }
    }
    if let Some(n) = newest
        && d.version() != Some(n)
    {
        return Some(Reason::NotNewest);
    }
    if let (Some(tokens), Some(window)) = (req.token_estimate(), d.context_window())
        && window < tokens
    {
        return Some(Reason::ContextWindow);
    }
    if req.excluded().contains(key) || extra.contains(key) {
        return Some(Reason::Excluded);
    }
    None
}

/// Every deployment of `model` with the first filter it fails.
///
/// The newest-version rule: the highest version among the deployments that
/// pass every *other* filter; when none of those has a version, the rule
/// removes nothing.
fn hand_verdicts<'r>(
    reg: &'r Registry,
    model: &str,
    req: &Request,
    extra: &[ModelKey],
) -> Vec<(&'r ModelKey, &'r Deployment, Option<Reason>)> {
    let newest = if req.version_preference_mode() == VersionPreference::Newest {
        reg.of_model(model)
            .filter(|(k, d)| hand_reason(k, d, req, extra, None).is_none())
            .filter_map(|(_, d)| d.version())
            .max()
            .cloned()
    } else {
        None
    };
    reg.of_model(model)
        .map(|(k, d)| (k, d, hand_reason(k, d, req, extra, newest.as_ref())))
        .collect()
}

/// The keys that may be picked (eligible and in the lowest eligible tier),
/// and that tier; `None` when nothing is eligible.
fn hand_pickable(
    reg: &Registry,
    model: &str,
    req: &Request,
    extra: &[ModelKey],
) -> Option<(u32, BTreeSet<ModelKey>)> {
    let verdicts = hand_verdicts(reg, model, req, extra);
    let tier = verdicts
        .iter()
        .filter(|(_, _, r)| r.is_none())
        .map(|(_, d, _)| d.priority())
        .min()?;
    let keys = verdicts
        .iter()
        .filter(|(_, d, r)| r.is_none() && d.priority() == tier)
        .map(|(k, _, _)| (*k).clone())
        .collect();
    Some((tier, keys))
}

/// Built-in strategies: every default one, plus the other settings.
fn strategies() -> Vec<BuiltinStrategy> {
    let mut all = BuiltinStrategy::all().to_vec();
    all.push(ConsistentHash::with_bounded_load(1.25).unwrap().into());
    all.push(PowerOfTwo::new(Load::InFlightPerWeight).into());
    all.push(PowerOfTwo::new(Load::PeakEwma).into());
    all.push(Latency::with_buffer(0.1).unwrap().into());
    all
}

/// Checks one `select` result against the hand-computed rules: a pick
/// passes every filter and comes from the lowest eligible tier; otherwise
/// the error is `UnknownModel` or `NoEligible` with the hand counts.
#[track_caller]
fn check_select(reg: &Registry, req: &Request, result: &Result<Pick<'_>, Error>, what: &str) {
    let model = req.model();
    if reg.of_model(model).next().is_none() {
        assert!(
            matches!(result, Err(Error::UnknownModel { model: m, .. }) if m == model),
            "{what}: expected UnknownModel, got {result:?}"
        );
        return;
    }
    match (hand_pickable(reg, model, req, &[]), result) {
        (Some((tier, keys)), Ok(pick)) => {
            let d = pick.deployment();
            assert!(d.weight() > 0, "{what}: picked a drained deployment");
            assert_eq!(d.model(), model, "{what}");
            assert_eq!(
                hand_reason(pick.key(), d, req, &[], None),
                None,
                "{what}: pick {} fails a filter",
                pick.key()
            );
            assert!(
                keys.contains(pick.key()),
                "{what}: pick {} (tier {}) is not among the pickable {keys:?} of tier {tier}",
                pick.key(),
                d.priority()
            );
            assert_eq!(pick.priority(), tier, "{what}: tier rule");
            assert_eq!(pick.priority(), d.priority(), "{what}");
            assert_eq!(reg.get(pick.key()), Some(d), "{what}");
        }
        (
            None,
            Err(Error::NoEligible {
                model: m, removed, ..
            }),
        ) => {
            assert_eq!(m, model, "{what}");
            for &reason in Reason::ALL {
                let expected = hand_verdicts(reg, model, req, &[])
                    .iter()
                    .filter(|(_, _, r)| *r == Some(reason))
                    .count() as u32;
                assert_eq!(removed.count(reason), expected, "{what}: {reason:?} count");
            }
        }
        (expected, got) => panic!("{what}: expected pickable {expected:?}, got {got:?}"),
    }
}

/// The in-flight counts of the keys a pick may come from, before the pick.
fn loads_before(reg: &Registry, sel: &Selector, req: &Request) -> BTreeMap<ModelKey, u32> {
    hand_pickable(reg, req.model(), req, &[])
        .map(|(_, keys)| {
            keys.into_iter()
                .map(|k| {
                    let load = sel.in_flight(&k).unwrap();
                    (k, load)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a load-aware strategy promises about its pick, given the pickable
/// keys' in-flight counts just before it.
#[track_caller]
fn check_strategy_rule(
    strategy: BuiltinStrategy,
    req: &Request,
    before: &BTreeMap<ModelKey, u32>,
    pick: &Pick<'_>,
) {
    let load = before[pick.key()];
    let min = before.values().copied().min().unwrap();
    match strategy {
        // Fewest in flight.
        BuiltinStrategy::LeastOutstanding(_) => {
            assert_eq!(
                load, min,
                "least_outstanding picked a busier one: {before:?}"
            );
        }
        // With two candidates both are drawn: the less loaded one wins.
        BuiltinStrategy::PowerOfTwo(p) if p.load() == Load::InFlight && before.len() == 2 => {
            assert_eq!(
                load, min,
                "power_of_two picked the busier of two: {before:?}"
            );
        }
        // Never at or above the cap ceil(c × (in-flight + 1) / n). (Without
        // an affinity key, consistent hashing is documented to fall back to
        // weighted random, which has no cap.)
        BuiltinStrategy::ConsistentHash(c)
            if c.bounded_load().is_some() && req.affinity_key().is_some() =>
        {
            let factor = c.bounded_load().unwrap();
            let total: u32 = before.values().sum();
            let cap = (factor * f64::from(total + 1) / before.len() as f64).ceil();
            assert!(
                f64::from(load) < cap,
                "bounded load: {load} >= cap {cap}, {before:?}"
            );
        }
        _ => {}
    }
}

#[track_caller]
fn check_explain(reg: &Registry, sel: &Selector, req: &Request) {
    let model = req.model();
    let Ok(ex) = sel.explain(req) else {
        assert!(
            reg.of_model(model).next().is_none(),
            "explain failed for a known model"
        );
        return;
    };
    let verdicts = hand_verdicts(reg, model, req, &[]);
    let got: Vec<_> = ex
        .candidates()
        .iter()
        .map(|v| (v.key().clone(), v.priority(), v.removed()))
        .collect();
    let expected: Vec<_> = verdicts
        .iter()
        .map(|(k, d, r)| ((*k).clone(), d.priority(), *r))
        .collect();
    assert_eq!(got, expected, "explain verdicts for {req:?}");
    assert_eq!(
        ex.tier(),
        hand_pickable(reg, model, req, &[]).map(|(t, _)| t),
        "explain tier for {req:?}"
    );
}

#[track_caller]
fn assert_all_idle(reg: &Registry, sel: &Selector) {
    for k in reg.keys() {
        assert_eq!(sel.in_flight(k), Some(0), "in flight on {k}");
    }
}

// ---------------------------------------------------------------------------
// Filters and tiers

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every pick of every strategy passes every filter and respects the
    /// tier rule; errors and explanations carry the hand-computed reasons.
    /// Some picks are held so that load-aware strategies see load.
    #[test]
    fn picks_pass_filters_and_tier_rule(
        fleet in fleet(),
        reqs in prop::collection::vec(req_spec(), 1..8),
        seed in any::<u64>(),
        hold in prop::collection::vec(any::<bool>(), 24),
    ) {
        let reg = registry(&fleet);
        let requests: Vec<Request> = reqs.iter().map(|r| request(&reg, fleet.len(), r)).collect();
        for strategy in strategies() {
            let sel = Selector::builder(&reg).strategy(strategy).seed(seed).build();
            let mut held = Vec::new();
            for (i, req) in requests.iter().enumerate() {
                check_explain(&reg, &sel, req);
                for round in 0..3 {
                    let before = loads_before(&reg, &sel, req);
                    let result = sel.select(req);
                    check_select(&reg, req, &result, &format!("{strategy}, {req:?}"));
                    if let Ok(pick) = &result {
                        check_strategy_rule(strategy, req, &before, pick);
                    }
                    if let Ok(pick) = result
                        && hold[(i * 3 + round) % hold.len()]
                    {
                        held.push(pick);
                    }
                }
            }
            drop(held);
            assert_all_idle(&reg, &sel);
        }
    }

    /// Weight 0 is never picked, by any strategy, with or without an
    /// affinity key, idle or loaded; a model whose deployments are all
    /// drained has no eligible deployment.
    #[test]
    fn drained_never_picked(
        weights in prop::collection::vec(0u32..3, 1..=8),
        seed in any::<u64>(),
    ) {
        let reg = support::weighted("m0", &weights);
        let all_drained = weights.iter().all(|w| *w == 0);
        for strategy in strategies() {
            let sel = Selector::builder(&reg).strategy(strategy).seed(seed).build();
            let mut held = Vec::new();
            for i in 0..40 {
                let req = if i % 2 == 0 {
                    Request::new("m0")
                } else {
                    Request::new("m0").affinity(&format!("k{i}"))
                };
                match sel.select(&req) {
                    Ok(pick) => {
                        prop_assert!(!all_drained);
                        prop_assert!(pick.deployment().weight() > 0, "{strategy}: {}", pick.key());
                        if i % 3 == 0 {
                            held.push(pick);
                        }
                    }
                    Err(Error::NoEligible { removed, .. }) => {
                        prop_assert!(all_drained, "{strategy}: {removed}");
                        prop_assert_eq!(removed.count(Reason::Drained), weights.len() as u32);
                    }
                    Err(e) => prop_assert!(false, "{strategy}: {e}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Rotations

/// `n` deployments of model `m0` with the given weights and regions.
fn simple_registry(weights: &[u32], regions: &[&str]) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, w) in weights.iter().enumerate() {
        let region = regions
            .get(i % regions.len().max(1))
            .copied()
            .unwrap_or("eu");
        reg.insert(
            Deployment::builder("openai", "m0")
                .endpoint(&format!("http://n{i}.test/v1"))
                .weight(*w)
                .label("region", region)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    reg
}

/// The registry positions of `count` consecutive picks.
fn pick_positions(reg: &Registry, sel: &Selector, req: &Request, count: usize) -> Vec<usize> {
    (0..count)
        .map(|_| {
            let pick = sel.select(req).expect("a candidate exists");
            reg.position(pick.key()).unwrap()
        })
        .collect()
}

/// Window starts to check in a sequence of at least `3 × w` picks: aligned
/// and unaligned, including `extra`.
fn window_starts(w: usize, extra: usize) -> Vec<usize> {
    let mut starts = vec![0, 1, w / 2, w.saturating_sub(1), w, w + 1, extra % (2 * w)];
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Counts per registry position in `window`.
fn counts(window: &[usize], n: usize) -> Vec<u32> {
    let mut c = vec![0; n];
    for &p in window {
        c[p] += 1;
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Smooth weighted round robin: every window of `W = Σw` consecutive
    /// picks holds exactly `w_i` picks of deployment i, wherever it starts.
    #[test]
    fn wrr_exact_windows(
        weights in prop::collection::vec(1u32..=20, 1..=8),
        seed in any::<u64>(),
        extra in any::<usize>(),
    ) {
        let reg = simple_registry(&weights, &["eu"]);
        let sel = Selector::with_seed(&reg, WeightedRoundRobin::new(), seed);
        let w: usize = weights.iter().map(|&x| x as usize).sum();
        let picks = pick_positions(&reg, &sel, &Request::new("m0"), 3 * w);
        for s in window_starts(w, extra) {
            let got = counts(&picks[s..s + w], weights.len());
            prop_assert_eq!(&got, &weights, "window starting at pick {}", s);
        }
    }

    /// The same exactness over a filtered subset: with `region=eu`, every
    /// window of `Σ w_eu` picks holds exactly `w_i` picks of each eu
    /// deployment and none of the others.
    #[test]
    fn wrr_exact_windows_filtered(
        deps in prop::collection::vec((1u32..=20, any::<bool>()), 1..=8),
        seed in any::<u64>(),
        extra in any::<usize>(),
    ) {
        prop_assume!(deps.iter().any(|(_, eu)| *eu));
        let weights: Vec<u32> = deps.iter().map(|(w, _)| *w).collect();
        let regions: Vec<&str> = deps.iter().map(|(_, eu)| if *eu { "eu" } else { "us" }).collect();
        let reg = simple_registry(&weights, &regions);
        let sel = Selector::with_seed(&reg, WeightedRoundRobin::new(), seed);
        let expected: Vec<u32> = deps.iter().map(|(w, eu)| if *eu { *w } else { 0 }).collect();
        let w: usize = expected.iter().map(|&x| x as usize).sum();
        let picks = pick_positions(&reg, &sel, &Request::new("m0").label("region", "eu"), 3 * w);
        for s in window_starts(w, extra) {
            let got = counts(&picks[s..s + w], weights.len());
            prop_assert_eq!(&got, &expected, "window starting at pick {}", s);
        }
    }

    /// Round robin: every `n` consecutive picks visit each of the `n`
    /// candidates exactly once (weights are ignored), plain and with a label
    /// filter (then over the eu deployments only).
    #[test]
    fn round_robin_cycles(
        deps in prop::collection::vec((1u32..=5, any::<bool>()), 1..=10),
        seed in any::<u64>(),
        extra in any::<usize>(),
        filtered in any::<bool>(),
    ) {
        let weights: Vec<u32> = deps.iter().map(|(w, _)| *w).collect();
        let regions: Vec<&str> = deps.iter().map(|(_, eu)| if *eu { "eu" } else { "us" }).collect();
        let reg = simple_registry(&weights, &regions);
        let sel = Selector::with_seed(&reg, RoundRobin, seed);
        let (req, expected): (Request, Vec<u32>) = if filtered {
            prop_assume!(deps.iter().any(|(_, eu)| *eu));
            (
                Request::new("m0").label("region", "eu"),
                deps.iter().map(|(_, eu)| u32::from(*eu)).collect(),
            )
        } else {
            (Request::new("m0"), vec![1; deps.len()])
        };
        let n: usize = expected.iter().map(|&x| x as usize).sum();
        let picks = pick_positions(&reg, &sel, &req, 3 * n);
        for s in window_starts(n, extra) {
            let got = counts(&picks[s..s + n], deps.len());
            prop_assert_eq!(&got, &expected, "cycle starting at pick {}", s);
        }
    }
}

// ---------------------------------------------------------------------------
// Attempt plans

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// An attempt plan never yields a key twice; each step is a valid pick
    /// for the request with everything tried so far excluded (lowest
    /// eligible tier of the first model, in request-then-fallback order,
    /// that still has an eligible deployment); it stops only when no model
    /// has one left. It yields exactly the eligible deployments of the
    /// model, then those of the fallbacks, tiers non-decreasing within a
    /// model. With the newest-version rule the set is every deployment that
    /// passes the other filters (each exhausted version lets the next one
    /// down become the newest), and the order goes by version, then tier.
    #[test]
    fn plan_order(
        fleet in fleet(),
        spec in req_spec(),
        seed in any::<u64>(),
        strategy in select(strategies()),
        hold in any::<bool>(),
    ) {
        let reg = registry(&fleet);
        let req = request(&reg, fleet.len(), &spec);
        let sel = Selector::builder(&reg).strategy(strategy).seed(seed).build();
        let mut models = vec![req.model().to_owned()];
        models.extend(req.fallbacks().iter().cloned());

        let mut tried: Vec<ModelKey> = Vec::new();
        let mut held = Vec::new();
        for pick in sel.plan(&req) {
            let key = pick.key().clone();
            prop_assert!(!tried.contains(&key), "{} yielded twice", key);
            let current = models
                .iter()
                .find_map(|m| hand_pickable(&reg, m, &req, &tried).map(|p| (m, p)));
            let Some((model, (tier, keys))) = current else {
                return Err(TestCaseError::fail(format!(
                    "plan yielded {key} after every model was exhausted"
                )));
            };
            prop_assert_eq!(pick.deployment().model(), model.as_str(), "model order");
            prop_assert!(keys.contains(&key), "{} not in pickable {:?}", key, keys);
            prop_assert_eq!(pick.priority(), tier);
            tried.push(key);
            if hold {
                held.push(pick);
            }
        }
        for m in &models {
            prop_assert_eq!(hand_pickable(&reg, m, &req, &tried), None, "plan stopped early on {}", m);
        }

        // The whole plan, as sets per model and tiers per model.
        let newest = req.version_preference_mode() == VersionPreference::Newest;
        let mut expected: Vec<ModelKey> = Vec::new();
        let mut seen_models = BTreeSet::new();
        for m in &models {
            if !seen_models.insert(m.clone()) {
                continue;
            }
            for (k, d, r) in hand_verdicts(&reg, m, &req, &[]) {
                // Newest: once the newest are tried, the next version down
                // is the newest, so everything passing the others comes.
                let ok = if newest {
                    hand_reason(k, d, &req, &[], None).is_none()
                } else {
                    r.is_none()
                };
                if ok {
                    expected.push(k.clone());
                }
            }
        }
        let got: BTreeSet<_> = tried.iter().cloned().collect();
        let want: BTreeSet<_> = expected.iter().cloned().collect();
        prop_assert_eq!(got, want);

        // Models in segments, in request-then-fallback order.
        let order: Vec<&str> = tried.iter().map(|k| k.model()).collect();
        let mut segments: Vec<&str> = order.clone();
        segments.dedup();
        let distinct: BTreeSet<&str> = segments.iter().copied().collect();
        prop_assert_eq!(distinct.len(), segments.len(), "a model came back: {:?}", order);
        let positions: Vec<usize> = segments
            .iter()
            .map(|s| models.iter().position(|m| m == s).unwrap())
            .collect();
        prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "model order {:?}", segments);

        if !newest {
            for seg in &segments {
                let tiers: Vec<u32> = tried
                    .iter()
                    .filter(|k| k.model() == *seg)
                    .map(|k| reg.get(k).unwrap().priority())
                    .collect();
                prop_assert!(tiers.windows(2).all(|w| w[0] <= w[1]), "tiers {:?}", tiers);
            }
        }
        drop(held);
        assert_all_idle(&reg, &sel);
    }
}

// ---------------------------------------------------------------------------
// Consistent hashing

/// `n` deployments of `m0` with the given weights, endpoints salted so that
/// ring positions vary between cases.
fn ring_registry(weights: &[u32], salt: u32, skip: Option<usize>) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, w) in weights.iter().enumerate() {
        if skip == Some(i) {
            continue;
        }
        reg.insert(
            Deployment::builder("openai", "m0")
                .endpoint(&format!("http://s{salt}-n{i}.test/v1"))
                .weight(*w)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    reg
}

#[track_caller]
fn sticky_pick(sel: &Selector, user: &str) -> ModelKey {
    sel.select(&Request::new("m0").affinity(user))
        .expect("a candidate exists")
        .key()
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The same affinity key gets the same deployment on every pick (held
    /// picks do not move it), on a clone, and on another selector built
    /// from the same registry with another seed.
    #[test]
    fn consistent_hash_stable(
        weights in prop::collection::vec(1u32..=5, 1..=10),
        salt in any::<u32>(),
        users in prop::collection::vec("[a-z0-9]{1,12}", 1..40),
        seeds in (any::<u64>(), any::<u64>()),
    ) {
        let reg = ring_registry(&weights, salt, None);
        let a = Selector::with_seed(&reg, ConsistentHash::default(), seeds.0);
        let a2 = a.clone();
        let b = Selector::with_seed(&reg, ConsistentHash::default(), seeds.1);
        let mut held = Vec::new();
        for u in &users {
            let req = Request::new("m0").affinity(u);
            let first = a.select(&req).unwrap();
            let key = first.key().clone();
            held.push(first);
            for _ in 0..3 {
                let again = a.select(&req).unwrap();
                prop_assert_eq!(again.key(), &key, "repeat for {:?}", u);
                held.push(again);
            }
            prop_assert_eq!(&sticky_pick(&a2, u), &key, "clone, {:?}", u);
            prop_assert_eq!(&sticky_pick(&b, u), &key, "other selector, {:?}", u);
        }
    }

    /// Removing one equal-weight deployment moves only the keys it held.
    #[test]
    fn consistent_hash_removal_equal_weights(
        n in 2usize..=10,
        w in 1u32..=5,
        salt in any::<u32>(),
        removed in any::<prop::sample::Index>(),
    ) {
        check_removal(&vec![w; n], salt, removed.index(n))?;
    }

    /// Removing one deployment moves only the keys it held, whatever the
    /// weights of the others (a member's points depend only on its own key
    /// and weight).
    #[test]
    fn consistent_hash_removal_any_weights(
        weights in prop::collection::vec(1u32..=5, 2..=10),
        salt in any::<u32>(),
        removed in any::<prop::sample::Index>(),
    ) {
        check_removal(&weights, salt, removed.index(weights.len()))?;
    }

    /// A filtered-out (excluded) deployment's keys move, and only those:
    /// the ring is the same, the others keep their keys.
    #[test]
    fn consistent_hash_exclusion_moves_only_its_keys(
        weights in prop::collection::vec(1u32..=5, 2..=10),
        salt in any::<u32>(),
        excluded in any::<prop::sample::Index>(),
    ) {
        let reg = ring_registry(&weights, salt, None);
        let gone = reg.keys().nth(excluded.index(weights.len())).unwrap().clone();
        let sel = Selector::new(&reg, ConsistentHash::default());
        for u in 0..300 {
            let user = format!("user-{u}");
            let before = sticky_pick(&sel, &user);
            let after = sel
                .select(&Request::new("m0").affinity(&user).exclude(gone.clone()))
                .unwrap()
                .key()
                .clone();
            prop_assert_ne!(&after, &gone);
            if before != gone {
                prop_assert_eq!(&after, &before, "{} moved", user);
            }
        }
    }

    /// Adding one equal-weight deployment to `n` moves about `1/(n+1)` of
    /// the keys, all of them to the new deployment. Tolerance: the moved
    /// fraction must stay below `2/n + 0.05`. The expected fraction is
    /// `1/(n+1)`; the new member's share of a 160-points-per-member ring
    /// varies by roughly ±8% of itself (1/√160) and 2000 keys add a
    /// sampling error of under 0.007, so the bound (about twice the
    /// expectation, plus 5 points) is never reached by chance.
    #[test]
    fn consistent_hash_addition_moves_about_one_nth(
        n in 4usize..12,
        w in 1u32..=3,
        salt in any::<u32>(),
    ) {
        let small = ring_registry(&vec![w; n], salt, None);
        let big = ring_registry(&vec![w; n + 1], salt, None);
        let added = big.keys().last().unwrap().clone();
        prop_assert!(!small.contains(&added));
        let a = Selector::new(&small, ConsistentHash::default());
        let b = Selector::new(&big, ConsistentHash::default());
        let keys = 2000;
        let mut moved = 0;
        for u in 0..keys {
            let user = format!("user-{u}");
            let (before, after) = (sticky_pick(&a, &user), sticky_pick(&b, &user));
            if before != after {
                prop_assert_eq!(&after, &added, "{} moved between old members", user);
                moved += 1;
            }
        }
        let fraction = f64::from(moved) / f64::from(keys);
        let bound = 2.0 / n as f64 + 0.05;
        prop_assert!(fraction < bound, "n = {}: {} moved > {}", n, fraction, bound);
        prop_assert!(moved > 0, "n = {}: adding a deployment moved no key", n);
    }
}

/// Selector A over `weights`, selector B over the same minus `removed`:
/// every key whose A-pick was not the removed deployment keeps its pick.
fn check_removal(weights: &[u32], salt: u32, removed: usize) -> Result<(), TestCaseError> {
    let full = ring_registry(weights, salt, None);
    let less = ring_registry(weights, salt, Some(removed));
    let gone = full.keys().nth(removed).unwrap().clone();
    prop_assert!(!less.contains(&gone));
    let a = Selector::new(&full, ConsistentHash::default());
    let b = Selector::new(&less, ConsistentHash::default());
    for u in 0..400 {
        let user = format!("user-{u}");
        let before = sticky_pick(&a, &user);
        let after = sticky_pick(&b, &user);
        if before != gone {
            prop_assert_eq!(&after, &before, "{} moved though {} held it", user, before);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Determinism and in-flight accounting

#[derive(Clone, Debug)]
enum Op {
    /// Select request `req` on handle number `handle` (0 = the original,
    /// else one of its clones) and hold the pick.
    Select { handle: usize, req: usize },
    /// Drop the held pick at this index (modulo the number held).
    Drop(usize),
    /// Complete the held pick at this index with a latency in ms.
    Succeed(usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..HANDLES, 0usize..6).prop_map(|(handle, req)| Op::Select { handle, req }),
        2 => any::<usize>().prop_map(Op::Drop),
        1 => (any::<usize>(), 1u64..500).prop_map(|(i, ms)| Op::Succeed(i, ms)),
    ]
}

/// Handles in `run_ops`: more than the in-flight stripes (4), so that
/// handles share stripes as well as use their own.
const HANDLES: usize = 6;

/// Runs `ops` on a selector and its clones; returns every pick's key (or
/// error text) in order, and checks after each step that in-flight counts,
/// read through every handle, equal the number of held picks per key. With `explain`, every select is
/// preceded by an `explain` and an unused `plan` of the same request.
fn run_ops(
    reg: &Registry,
    sel: &Selector,
    requests: &[Request],
    ops: &[Op],
    explain: bool,
) -> Result<Vec<String>, TestCaseError> {
    let clones: Vec<Selector> = (1..HANDLES).map(|_| sel.clone()).collect();
    let handles: Vec<&Selector> = std::iter::once(sel).chain(&clones).collect();
    let mut out = Vec::new();
    let mut held: Vec<Pick<'_>> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Select { handle, req } => {
                let handle = handles[*handle];
                let req = &requests[req % requests.len()];
                if explain {
                    // Neither explaining nor making (not running) a plan
                    // changes any state: the picks must not differ.
                    let _ = handle.explain(req);
                    drop(handle.plan(req));
                }
                match handle.select(req) {
                    Ok(pick) => {
                        out.push(pick.key().to_string());
                        held.push(pick);
                    }
                    Err(e) => out.push(format!("error: {e}")),
                }
            }
            Op::Drop(i) if !held.is_empty() => {
                let n = held.len();
                drop(held.remove(i % n));
            }
            Op::Succeed(i, ms) if !held.is_empty() => {
                let n = held.len();
                held.remove(i % n).succeed(
                    Duration::from_millis(step as u64),
                    Duration::from_millis(*ms),
                );
            }
            Op::Drop(_) | Op::Succeed(..) => {}
        }
        let mut expected: BTreeMap<&ModelKey, u32> = BTreeMap::new();
        for p in &held {
            *expected.entry(p.key()).or_default() += 1;
        }
        for k in reg.keys() {
            let want = expected.get(k).copied().unwrap_or(0);
            for (h, handle) in handles.iter().enumerate() {
                prop_assert_eq!(
                    handle.in_flight(k),
                    Some(want),
                    "handle {}, step {}: {}",
                    h,
                    step,
                    k
                );
            }
        }
    }
    drop(held);
    for k in reg.keys() {
        prop_assert_eq!(sel.in_flight(k), Some(0), "after dropping all: {}", k);
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two selectors with the same registry, strategy and seed, given the
    /// same sequence of selects (on the selector and on a clone), drops and
    /// completions, make the same picks, even though only the first also
    /// explains and plans each request; in-flight counts equal the held
    /// picks at every step and return to zero.
    #[test]
    fn same_seed_same_picks(
        fleet in fleet(),
        reqs in prop::collection::vec(req_spec(), 1..6),
        ops in prop::collection::vec(op(), 1..60),
        seed in any::<u64>(),
    ) {
        let reg = registry(&fleet);
        let requests: Vec<Request> = reqs.iter().map(|r| request(&reg, fleet.len(), r)).collect();
        for strategy in strategies() {
            let a = Selector::builder(&reg).strategy(strategy).seed(seed).build();
            let b = Selector::builder(&reg).strategy(strategy).seed(seed).build();
            let first = run_ops(&reg, &a, &requests, &ops, true)?;
            let second = run_ops(&reg, &b, &requests, &ops, false)?;
            prop_assert_eq!(first, second, "{}", strategy);
        }
    }
}

/// A removal that changes the gcd of the tier's weights, spelled out:
/// weights 5, 5, 1, the weight-1 deployment removed (the gcd goes from 1 to
/// 5). Points follow each member's own weight, not the weights divided by
/// their gcd, so the survivors keep all 800 points each, and every key they
/// held.
#[test]
fn consistent_hash_removal_weights_5_5_1() {
    check_removal(&[5, 5, 1], 0, 2).unwrap();
}

/// A custom strategy that asks for rings and records the number of points
/// of the ring it is shown.
#[derive(Debug)]
struct RingSize(Arc<AtomicUsize>);

impl modelfleet::select::Strategy for RingSize {
    fn choose<'a>(&self, candidates: &Candidates<'a>, _ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let len = candidates.ring().map_or(0, Ring::len);
        self.0.store(len, Ordering::Relaxed);
        candidates.nth(0)
    }

    fn uses_ring(&self) -> bool {
        true
    }
}

/// A member heavier than `Ring::MAX_WEIGHT` has the points of that weight
/// (4,096 blocks of 160, documented on `Ring`), whatever the weights: here
/// 1,500,000 and `u32::MAX` units beside 1.
#[test]
fn ring_points_are_capped() {
    for heavy in [1_500_000, u32::MAX] {
        let reg = ring_registry(&[heavy, 1], 0, None);
        let seen = Arc::new(AtomicUsize::new(0));
        let sel = Selector::builder(&reg)
            .custom_strategy(Box::new(RingSize(Arc::clone(&seen))))
            .build();
        drop(sel.select(&Request::new("m0")).unwrap());
        assert_eq!(Ring::MAX_WEIGHT, 65_536);
        assert_eq!(
            seen.load(Ordering::Relaxed),
            4_096 * 160 + 160,
            "weight {heavy}"
        );
    }
}

/// The probe sees 160 points per started block of 16 units of weight, for
/// each member on its own.
#[test]
fn ring_points_per_weight() {
    for (weights, expected) in [
        (vec![2, 4, 6], 160 * 3),
        (vec![5; 7], 160 * 7),
        (vec![16, 17, 100], 160 * (1 + 2 + 7)),
    ] {
        let reg = ring_registry(&weights, 0, None);
        let seen = Arc::new(AtomicUsize::new(0));
        let sel = Selector::builder(&reg)
            .custom_strategy(Box::new(RingSize(Arc::clone(&seen))))
            .build();
        drop(sel.select(&Request::new("m0")).unwrap());
        assert_eq!(seen.load(Ordering::Relaxed), expected, "{weights:?}");
    }
}

// ---------------------------------------------------------------------------
// The candidate views (count, n-th, weights) on large filtered tiers

/// What a strategy saw of its candidates: positions in order (through
/// `nth`), `len`, `is_empty`, `total_weight`, and the owner of every point
/// of the weight line (through `at_weight`), or of a sample of points.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    positions: Vec<usize>,
    len: usize,
    empty: bool,
    total: u64,
    owners: Vec<(u64, Option<usize>)>,
}

#[derive(Debug)]
struct Views(Arc<std::sync::Mutex<Option<Seen>>>);

impl modelfleet::select::Strategy for Views {
    fn choose<'a>(&self, c: &Candidates<'a>, _ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let total = c.total_weight();
        let step = (total / 997).max(1);
        let seen = Seen {
            positions: (0..=c.len())
                .filter_map(|i| c.nth(i))
                .map(|x| x.position())
                .collect(),
            len: c.len(),
            empty: c.is_empty(),
            total,
            owners: (0..=total)
                .step_by(step as usize)
                .chain([total.saturating_sub(1)])
                .map(|p| (p, c.at_weight(p).map(|x| x.position())))
                .collect(),
        };
        *self.0.lock().unwrap() = Some(seen);
        c.nth(0)
    }
}

/// Deployment `i` of the large-tier fleet: its weight (0 = drained), zone
/// label, tag, provider and context window, all from `i`'s seeded hash.
fn large_member(
    i: usize,
    salt: u64,
) -> (u32, &'static str, Option<&'static str>, &'static str, u32) {
    let mut h = (i as u64 ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    // One salt in three: every member weighs 3 (or is drained), which the
    // selector answers by counting instead of summing.
    let weight = if salt.is_multiple_of(3) {
        3 * u32::from(!h.is_multiple_of(5))
    } else {
        (h % 5) as u32
    };
    let zone = ["a", "b", "c"][(h >> 8) as usize % 3];
    let tag = [Some("x"), Some("y"), None][(h >> 16) as usize % 3];
    let provider = ["p", "q"][(h >> 24) as usize % 2];
    let window = [8_000, 32_000][(h >> 32) as usize % 2];
    (weight, zone, tag, provider, window)
}

fn large_registry(n: usize, salt: u64) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for i in 0..n {
        let (weight, zone, tag, provider, window) = large_member(i, salt);
        let mut b = Deployment::builder(provider, "m")
            .endpoint(&format!("http://n{i}/v1"))
            .weight(weight)
            .label("zone", zone)
            .context_window(window);
        if let Some(t) = tag {
            b = b.tag(t);
        }
        reg.insert(b.build().unwrap()).unwrap();
    }
    reg
}

/// The request filters of the large-tier test, chosen by bits of `f`.
fn large_request(reg: &Registry, f: u32, excluded: &[usize]) -> Request {
    let mut r = Request::new("m");
    if f & 1 != 0 {
        r = r.label("zone", "a");
    }
    if f & 2 != 0 {
        r = r.tag("x").tag("y");
    }
    if f & 4 != 0 {
        r = r.tag("x").tag_match(TagMatch::All);
    }
    if f & 8 != 0 {
        r = r.provider("q");
    }
    if f & 16 != 0 {
        r = r.tokens(16_000);
    }
    let keys: Vec<&ModelKey> = reg.keys().collect();
    for &e in excluded {
        r = r.exclude(keys[e % keys.len()].clone());
    }
    r
}

/// Checks the views a strategy gets against the candidates computed by hand
/// (members of weight > 0 in registry order, each filter applied to its
/// fields), for one fleet of `n` and one request.
fn check_views(n: usize, salt: u64, f: u32, excluded: &[usize]) -> Result<(), TestCaseError> {
    let reg = large_registry(n, salt);
    let req = large_request(&reg, f, excluded);
    let excluded: BTreeSet<ModelKey> = req.excluded().iter().cloned().collect();
    let mut eligible = Vec::new(); // (tier position, weight)
    let mut position = 0;
    for (i, (key, d)) in reg.iter().enumerate() {
        let (weight, zone, tag, provider, window) = large_member(i, salt);
        assert_eq!(d.weight(), weight);
        if weight == 0 {
            continue;
        }
        // Tags x and y with "all" (bits 2 and 4): no deployment has both.
        let tags_ok = match (f & 2 != 0, f & 4 != 0) {
            (false, false) => true,
            (true, false) => matches!(tag, Some("x" | "y")),
            (false, true) => tag == Some("x"),
            (true, true) => false,
        };
        let ok = (f & 1 == 0 || zone == "a")
            && tags_ok
            && (f & 8 == 0 || provider == "q")
            && (f & 16 == 0 || window >= 16_000)
            && !excluded.contains(key);
        if ok {
            eligible.push((position, u64::from(weight)));
        }
        position += 1;
    }
    let total: u64 = eligible.iter().map(|e| e.1).sum();
    let owner = |p: u64| {
        let mut acc = 0;
        eligible
            .iter()
            .find(|e| {
                acc += e.1;
                p < acc
            })
            .map(|e| e.0)
    };
    let slot = Arc::new(std::sync::Mutex::new(None));
    let sel = Selector::builder(&reg)
        .custom_strategy(Box::new(Views(Arc::clone(&slot))))
        .build();
    let result = sel.select(&req);
    if eligible.is_empty() {
        prop_assert!(
            result.is_err(),
            "a pick though no candidate: {:?}",
            result.map(|p| p.key().clone())
        );
        return Ok(());
    }
    prop_assert!(result.is_ok(), "{:?}", result.err());
    let seen = slot.lock().unwrap().take().expect("the strategy ran");
    let step = (total / 997).max(1);
    let want = Seen {
        positions: eligible.iter().map(|e| e.0).collect(),
        len: eligible.len(),
        empty: false,
        total,
        owners: (0..=total)
            .step_by(step as usize)
            .chain([total.saturating_sub(1)])
            .map(|p| (p, owner(p)))
            .collect(),
    };
    prop_assert_eq!(seen, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Tiers of 1 to 300 members (masks of one to five words) under every
    /// mix of label, tag (any/all), provider, context-window and exclusion
    /// filters (exclusions alone leave whole words set, which are weighed
    /// from the prefix sums): `len`, `nth`, `is_empty`, `total_weight` and `at_weight`
    /// equal the hand-computed candidates.
    #[test]
    fn candidate_views_on_filtered_tiers(
        n in 1usize..300,
        salt in any::<u64>(),
        f in 0u32..32,
        excluded in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        check_views(n, salt, f, &excluded)?;
    }
}

/// The same on tiers around the index's limit (4,096 members): indexed
/// below it, tested member by member above it.
#[test]
fn candidate_views_around_the_index_limit() {
    let tier_len = |n: usize| (0..n).filter(|&i| large_member(i, 7).0 > 0).count();
    let (below, above) = (4_900, 5_300);
    assert!(tier_len(below) <= 4_096 && tier_len(above) > 4_096);
    for n in [below, above] {
        for f in [0, 1, 9, 17, 26] {
            check_views(n, 7, f, &[3, 5]).unwrap();
        }
    }
}
