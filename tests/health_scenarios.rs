//! Health scenarios: data-driven fixtures (`tests/fixtures/health/*.json`,
//! one scenario per file) and plain tests of limits, the health snapshot,
//! unknown keys and policy validation.
//!
//! # Fixture schema
//!
//! ```text
//! {
//!   "description": "what the scenario shows",
//!   "preset": "default" | "dify" | "litellm" | "disabled",
//!   "slow_start": {"window_ms": 60000, "aggression": 1.0, "min_percent": 10.0},  // optional
//!   "panic_threshold_percent": 50,                                               // optional
//!   "strategy": "round_robin",            // any built-in strategy name
//!   "seed": 7,
//!   "deployments": [
//!     {"id": "a", "provider": "openai", "model": "gpt-4",
//!      "endpoint": "http://a/v1", "weight": 1, "priority": 0}
//!   ],
//!   "steps": [ ... ]
//! }
//! ```
//!
//! Steps (times in milliseconds since the scenario's origin; they never go
//! backwards):
//!
//! - select: `{"at_ms": 0, "select": "gpt-4", "expect": ...}` — `expect` is
//!   a deployment id (one pick), a list of ids (that many picks, in order,
//!   all at `at_ms`), `{"error": "unavailable", "retry_at_ms": 61000 | null,
//!   "removed": {"cooling": 2}}` or `{"error": "no_eligible"}`; without
//!   `expect` one pick is made and not checked. Every pick is held and
//!   numbered (0, 1, …) in the order made.
//! - report: `{"at_ms": .., "report": "a" | 3, "outcome": "success" |
//!   "rate_limited" | "timeout" | … , "latency_ms": .., "retry_after_ms": ..,
//!   "tokens": .., "times": 1}` — a string reports on that deployment by key
//!   (`Selector::report`, no pick involved; `times` repeats it); a number
//!   completes the held pick with that number.
//! - drop: `{"at_ms": .., "drop": 3}` — drops held pick 3 without a report.
//! - traffic: `{"at_ms": .., "traffic": "gpt-4", "picks": 100, "step_ms": 0,
//!   "complete": {"a": {"outcome": "connection_error", "latency_ms": 5},
//!   "*": {"outcome": "success", "latency_ms": 200}}, "expect_counts":
//!   {"a": 1}, "expect_share": {"a": {"min": 0.0, "max": 0.05}}}` — `picks`
//!   picks, the k-th at `at_ms + k × step_ms`, each completed at once with
//!   the outcome given for its deployment (or `*`; neither: dropped).
//! - health: `{"at_ms": .., "health": {"a": {"state": "cooling",
//!   "available_at_ms": 61000 | null, "in_flight": 0, "ejections": 1,
//!   "consecutive_failures": 0}}}` — each given field of `Selector::health`
//!   at that time must match.
//!
//! At the end every held pick is dropped and every in-flight count must be 0.

#![cfg(feature = "serde")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use modelfleet::health::{
    CooldownRule, Ejection, FailureKind, FailureRate, HealthPolicy, Outcome, Report, SlowStart,
    State, Unhealthy, ValidHealthPolicy,
};
use modelfleet::select::{BuiltinStrategy, Latency, Reason, RoundRobin, WeightedRoundRobin};
use modelfleet::{Deployment, Error, Fleet, ModelKey, Pick, Policy, Registry, Request, Selector};
use serde::{Deserialize, Deserializer};

mod support;
use support::{key, ms, node, node_at, pick_key, secs};

// ---------------------------------------------------------------------------
// Fixture schema

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    description: String,
    preset: String,
    #[serde(default)]
    slow_start: Option<SlowStartSpec>,
    #[serde(default)]
    panic_threshold_percent: Option<u8>,
    strategy: String,
    seed: u64,
    deployments: Vec<DeploymentSpec>,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowStartSpec {
    window_ms: u64,
    aggression: f64,
    min_percent: f64,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentSpec {
    id: String,
    provider: String,
    model: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    priority: u32,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Step {
    Select(SelectStep),
    Report(ReportStep),
    Drop(DropStep),
    Traffic(TrafficStep),
    Health(HealthStep),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectStep {
    at_ms: u64,
    select: String,
    #[serde(default)]
    expect: Option<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expect {
    One(String),
    Sequence(Vec<String>),
    Error(ErrorExpect),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorExpect {
    error: String,
    /// Checked exactly when the error is `unavailable` (`null`: no retry time).
    #[serde(default)]
    retry_at_ms: Option<u64>,
    /// Reason name → count, checked when given.
    #[serde(default)]
    removed: Option<BTreeMap<String, u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Target {
    Pick(usize),
    Deployment(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportStep {
    at_ms: u64,
    report: Target,
    outcome: String,
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
    #[serde(default)]
    tokens: Option<u64>,
    #[serde(default = "one")]
    times: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropStep {
    at_ms: u64,
    drop: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeSpec {
    outcome: String,
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
    #[serde(default)]
    tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Share {
    #[serde(default)]
    min: f64,
    #[serde(default = "full")]
    max: f64,
}

fn full() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficStep {
    at_ms: u64,
    traffic: String,
    picks: u32,
    #[serde(default)]
    step_ms: u64,
    #[serde(default)]
    complete: BTreeMap<String, OutcomeSpec>,
    #[serde(default)]
    expect_counts: BTreeMap<String, u32>,
    #[serde(default)]
    expect_share: BTreeMap<String, Share>,
}

/// `Some(None)` for an explicit `null`, `None` when the field is missing.
fn explicit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthExpect {
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "explicit")]
    available_at_ms: Option<Option<u64>>,
    #[serde(default)]
    in_flight: Option<u32>,
    #[serde(default)]
    ejections: Option<u32>,
    #[serde(default)]
    consecutive_failures: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthStep {
    at_ms: u64,
    health: BTreeMap<String, HealthExpect>,
}

impl Step {
    fn at_ms(&self) -> u64 {
        match self {
            Step::Select(s) => s.at_ms,
            Step::Report(s) => s.at_ms,
            Step::Drop(s) => s.at_ms,
            Step::Traffic(s) => s.at_ms,
            Step::Health(s) => s.at_ms,
        }
    }
}

// ---------------------------------------------------------------------------
// Running a fixture

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/health")
}

#[track_caller]
fn load(name: &str) -> Fixture {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {name}: {e}"))
}

#[track_caller]
fn preset(name: &str) -> HealthPolicy {
    match name {
        "default" => HealthPolicy::default(),
        "dify" => HealthPolicy::dify(),
        "litellm" => HealthPolicy::litellm(),
        "disabled" => HealthPolicy::disabled(),
        other => panic!("unknown preset {other:?}"),
    }
}

#[track_caller]
fn report_of(
    at_ms: u64,
    outcome: &str,
    latency_ms: Option<u64>,
    retry_after_ms: Option<u64>,
    tokens: Option<u64>,
) -> Report {
    let report = if outcome == "success" {
        Report::success(
            ms(at_ms),
            ms(latency_ms.expect("a success needs latency_ms")),
        )
    } else {
        let kind = match outcome
            .parse::<FailureKind>()
            .unwrap_or_else(|e| panic!("{e}"))
        {
            FailureKind::RateLimited { .. } => FailureKind::rate_limited(retry_after_ms.map(ms)),
            FailureKind::Overloaded { .. } => FailureKind::overloaded(retry_after_ms.map(ms)),
            k => {
                assert!(retry_after_ms.is_none(), "retry_after_ms on {outcome}");
                k
            }
        };
        Report::new(ms(at_ms), Outcome::failure(kind, latency_ms.map(ms)))
    };
    report.tokens(tokens.unwrap_or(0))
}

struct Scenario<'f> {
    name: &'f str,
    fixture: &'f Fixture,
    ids: BTreeMap<String, ModelKey>,
}

impl Scenario<'_> {
    #[track_caller]
    fn key(&self, id: &str) -> &ModelKey {
        self.ids
            .get(id)
            .unwrap_or_else(|| panic!("{}: unknown deployment id {id:?}", self.name))
    }

    fn id(&self, key: &ModelKey) -> &str {
        self.ids
            .iter()
            .find(|(_, k)| *k == key)
            .map_or("<unknown>", |(id, _)| id)
    }

    fn describe(&self, r: &Result<Pick<'_>, Error>) -> String {
        match r {
            Ok(p) => format!("pick {:?}", self.id(p.key())),
            Err(e) => format!("error {e}"),
        }
    }
}

/// Runs every step of the fixture `name`, asserting each expectation.
#[track_caller]
fn run(name: &str) {
    let fixture = load(name);
    let mut registry = Registry::new(Policy::NAME_ENDPOINT);
    let mut ids = BTreeMap::new();
    for d in &fixture.deployments {
        let mut b = Deployment::builder(&d.provider, &d.model)
            .weight(d.weight)
            .priority(d.priority);
        if let Some(e) = &d.endpoint {
            b = b.endpoint(e);
        }
        let dep = b.build().unwrap_or_else(|e| panic!("{name}: {e}"));
        let key = registry
            .insert(dep)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            ids.insert(d.id.clone(), key.clone()).is_none(),
            "{name}: id {} twice",
            d.id
        );
    }
    let mut policy = preset(&fixture.preset);
    if let Some(s) = &fixture.slow_start {
        policy.slow_start = Some({
            let mut ramp = SlowStart::new(ms(s.window_ms));
            ramp.aggression = s.aggression;
            ramp.min_percent = s.min_percent;
            ramp
        });
    }
    if let Some(t) = fixture.panic_threshold_percent {
        policy.unhealthy = Unhealthy::panic_below(t);
    }
    let strategy: BuiltinStrategy = fixture
        .strategy
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let selector = Selector::builder(&registry)
        .strategy(strategy)
        .seed(fixture.seed)
        .health(policy.validated().unwrap_or_else(|e| panic!("{name}: {e}")))
        .build();
    let sc = Scenario {
        name,
        fixture: &fixture,
        ids,
    };
    assert!(!sc.fixture.description.is_empty(), "{name}: no description");
    let mut held: Vec<Option<Pick<'_>>> = Vec::new();
    let mut last = 0;
    for (n, step) in fixture.steps.iter().enumerate() {
        let at_ms = step.at_ms();
        assert!(at_ms >= last, "{name} step {n}: time goes backwards");
        last = at_ms;
        let ctx = format!("{name} step {n} (at {at_ms} ms)");
        match step {
            Step::Select(s) => run_select(&sc, &selector, s, &mut held, &ctx),
            Step::Report(r) => match &r.report {
                Target::Pick(i) => {
                    assert_eq!(r.times, 1, "{ctx}: times on a pick");
                    let pick = held
                        .get_mut(*i)
                        .and_then(Option::take)
                        .unwrap_or_else(|| panic!("{ctx}: no held pick {i}"));
                    pick.complete(report_of(
                        at_ms,
                        &r.outcome,
                        r.latency_ms,
                        r.retry_after_ms,
                        r.tokens,
                    ));
                }
                Target::Deployment(id) => {
                    for _ in 0..r.times {
                        let report =
                            report_of(at_ms, &r.outcome, r.latency_ms, r.retry_after_ms, r.tokens);
                        assert!(selector.report(sc.key(id), report), "{ctx}: report refused");
                    }
                }
            },
            Step::Drop(d) => {
                let pick = held.get_mut(d.drop).and_then(Option::take);
                assert!(pick.is_some(), "{ctx}: no held pick {}", d.drop);
            }
            Step::Traffic(t) => run_traffic(&sc, &selector, t, &ctx),
            Step::Health(h) => check_health(&sc, &selector, h, &ctx),
        }
    }
    drop(held);
    for (id, key) in &sc.ids {
        assert_eq!(selector.in_flight(key), Some(0), "{name}: {id} in flight");
    }
}

#[track_caller]
fn run_select<'s>(
    sc: &Scenario<'_>,
    selector: &'s Selector,
    s: &SelectStep,
    held: &mut Vec<Option<Pick<'s>>>,
    ctx: &str,
) {
    let req = Request::new(&s.select).at(ms(s.at_ms));
    let wanted: Vec<Option<&str>> = match &s.expect {
        None => vec![None],
        Some(Expect::One(id)) => vec![Some(id.as_str())],
        Some(Expect::Sequence(ids)) => ids.iter().map(|i| Some(i.as_str())).collect(),
        Some(Expect::Error(e)) => {
            let got = selector.select(&req);
            let removed = match (e.error.as_str(), &got) {
                (
                    "unavailable",
                    Err(Error::Unavailable {
                        retry_at, removed, ..
                    }),
                ) => {
                    assert_eq!(*retry_at, e.retry_at_ms.map(ms), "{ctx}: retry_at");
                    removed
                }
                ("no_eligible", Err(Error::NoEligible { removed, .. })) => removed,
                (want, _) => panic!("{ctx}: expected {want}, got {}", sc.describe(&got)),
            };
            if let Some(counts) = &e.removed {
                let named: BTreeMap<String, u32> = removed
                    .iter()
                    .map(|(r, n)| (r.as_str().to_owned(), n))
                    .collect();
                assert_eq!(&named, counts, "{ctx}: removed");
            }
            return;
        }
    };
    let got: Vec<String> = wanted
        .iter()
        .map(|_| {
            let r = selector.select(&req);
            let text = match &r {
                Ok(p) => sc.id(p.key()).to_owned(),
                Err(_) => sc.describe(&r),
            };
            held.push(r.ok());
            text
        })
        .collect();
    if wanted.iter().all(Option::is_some) {
        let wanted: Vec<&str> = wanted.iter().flatten().copied().collect();
        assert_eq!(got, wanted, "{ctx}: picks");
    }
}

#[track_caller]
fn run_traffic(sc: &Scenario<'_>, selector: &Selector, t: &TrafficStep, ctx: &str) {
    let mut counts: BTreeMap<String, u32> = sc.ids.keys().map(|id| (id.clone(), 0)).collect();
    for k in 0..u64::from(t.picks) {
        let now = t.at_ms + k * t.step_ms;
        let pick = selector
            .select(&Request::new(&t.traffic).at(ms(now)))
            .unwrap_or_else(|e| panic!("{ctx}: pick {k}: {e}"));
        let id = sc.id(pick.key()).to_owned();
        *counts.get_mut(&id).expect("known id") += 1;
        if let Some(o) = t.complete.get(&id).or_else(|| t.complete.get("*")) {
            pick.complete(report_of(
                now,
                &o.outcome,
                o.latency_ms,
                o.retry_after_ms,
                o.tokens,
            ));
        }
    }
    for (id, want) in &t.expect_counts {
        assert_eq!(
            counts[id.as_str()],
            *want,
            "{ctx}: picks of {id}: {counts:?}"
        );
    }
    for (id, range) in &t.expect_share {
        let share = f64::from(counts[id.as_str()]) / f64::from(t.picks);
        assert!(
            (range.min..=range.max).contains(&share),
            "{ctx}: share of {id} {share:.4} outside [{}, {}]: {counts:?}",
            range.min,
            range.max
        );
    }
}

#[track_caller]
fn check_health(sc: &Scenario<'_>, selector: &Selector, h: &HealthStep, ctx: &str) {
    let health = selector.health(ms(h.at_ms));
    for (id, want) in &h.health {
        let key = sc.key(id);
        let got = health
            .iter()
            .find(|s| &s.key == key)
            .unwrap_or_else(|| panic!("{ctx}: no snapshot for {id}"));
        if let Some(state) = &want.state {
            assert_eq!(got.state.as_str(), state, "{ctx}: state of {id}: {got:?}");
        }
        if let Some(avail) = want.available_at_ms {
            assert_eq!(
                got.available_at,
                avail.map(ms),
                "{ctx}: available_at of {id}"
            );
        }
        if let Some(n) = want.in_flight {
            assert_eq!(got.in_flight, n, "{ctx}: in_flight of {id}");
        }
        if let Some(n) = want.ejections {
            assert_eq!(got.ejections, n, "{ctx}: ejections of {id}");
        }
        if let Some(n) = want.consecutive_failures {
            assert_eq!(
                got.consecutive_failures, n,
                "{ctx}: consecutive_failures of {id}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The fixtures, one test each

/// Every fixture file, each run by the test of the same name below.
const FIXTURES: [&str; 8] = [
    "all_cooling.json",
    "dify_rate_limit.json",
    "ejection.json",
    "fast_failing_latency.json",
    "litellm_429_group.json",
    "litellm_failure_rate.json",
    "litellm_single_group.json",
    "slow_start.json",
];

#[test]
fn every_fixture_has_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, FIXTURES, "fixtures on disk vs. fixtures run");
    for name in FIXTURES {
        let f = load(name);
        assert!(!f.steps.is_empty(), "{name}: no steps");
    }
}

#[test]
fn dify_rate_limit() {
    run("dify_rate_limit.json");
}

#[test]
fn all_cooling() {
    run("all_cooling.json");
}

#[test]
fn fast_failing_latency() {
    run("fast_failing_latency.json");
}

#[test]
fn litellm_single_group() {
    run("litellm_single_group.json");
}

#[test]
fn litellm_429_group() {
    run("litellm_429_group.json");
}

#[test]
fn litellm_failure_rate() {
    run("litellm_failure_rate.json");
}

#[test]
fn ejection() {
    run("ejection.json");
}

#[test]
fn slow_start() {
    run("slow_start.json");
}

// ---------------------------------------------------------------------------
// Plain tests

/// Deployments of `openai/gpt-4` at `http://{name}/v1`, one per name, in
/// one tier with weight 1, and their keys.
#[track_caller]
fn nodes<const N: usize>(names: [&str; N]) -> (Registry, [ModelKey; N]) {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    let keys = names.map(|name| reg.insert(node(name)).unwrap());
    (reg, keys)
}

/// `a` in tier 0 with `limits` applied by `f`, `b` as its tier-1 backup.
#[track_caller]
fn primary_and_backup(
    f: impl FnOnce(modelfleet::DeploymentBuilder) -> modelfleet::DeploymentBuilder,
) -> (Registry, ModelKey, ModelKey) {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    let a = reg
        .insert(
            f(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1"))
                .build()
                .unwrap(),
        )
        .unwrap();
    let b = reg.insert(node_at("b", 1)).unwrap();
    (reg, a, b)
}

#[track_caller]
fn removed_reason(s: &Selector, t: Duration, key: &ModelKey) -> Option<Reason> {
    let why = s.explain(&Request::new("gpt-4").at(t)).unwrap();
    why.candidates()
        .iter()
        .find(|v| v.key() == key)
        .expect("candidate listed")
        .removed()
}

#[test]
fn rpm_limit_sends_the_third_pick_elsewhere() {
    let (reg, a, b) = primary_and_backup(|d| d.rpm(2));
    let s = Selector::new(&reg, RoundRobin);
    assert_eq!(pick_key(&s, secs(0)), a);
    assert_eq!(removed_reason(&s, secs(5), &a), None);
    assert_eq!(pick_key(&s, secs(10)), a);
    // Two picks in the rolling minute: the third goes to the backup.
    assert_eq!(removed_reason(&s, secs(20), &a), Some(Reason::RpmLimit));
    assert_eq!(pick_key(&s, secs(20)), b);
    assert_eq!(pick_key(&s, secs(59)), b);
    assert_eq!(s.health(secs(59))[0].requests_per_minute, 2);
    // At 60 s the whole previous minute is still inside the last 60 s.
    assert_eq!(removed_reason(&s, secs(60), &a), Some(Reason::RpmLimit));
    // At 61 s, 59/60 of it is: 2 × 59/60 < 2.
    assert_eq!(removed_reason(&s, secs(61), &a), None);
    assert_eq!(pick_key(&s, secs(61)), a);
    // Picks of the backup (no rpm limit) do not count toward a's.
    assert_eq!(s.health(secs(61))[1].requests_per_minute, 0);
}

#[test]
fn rpm_limit_everywhere_is_unavailable_without_a_retry_time() {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    reg.insert(
        Deployment::builder("openai", "gpt-4")
            .rpm(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    let s = Selector::new(&reg, RoundRobin);
    drop(s.select(&Request::new("gpt-4").at(secs(1))).unwrap());
    match s.select(&Request::new("gpt-4").at(secs(2))) {
        Err(Error::Unavailable {
            retry_at, removed, ..
        }) => {
            assert_eq!(retry_at, None, "only a limit stands in the way");
            assert_eq!(removed.count(Reason::RpmLimit), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tpm_limit_counts_reported_tokens() {
    let (reg, a, b) = primary_and_backup(|d| d.tpm(1_000));
    let s = Selector::new(&reg, RoundRobin);
    let p = s.select(&Request::new("gpt-4").at(secs(0))).unwrap();
    assert_eq!(p.key(), &a);
    p.complete(Report::success(secs(1), ms(300)).tokens(600));
    assert_eq!(s.health(secs(1))[0].tokens_per_minute, 600);
    let p = s.select(&Request::new("gpt-4").at(secs(2))).unwrap();
    assert_eq!(p.key(), &a, "600 of 1000 tokens used");
    p.complete(Report::success(secs(3), ms(300)).tokens(400));
    assert_eq!(s.health(secs(3))[0].tokens_per_minute, 1_000);
    assert_eq!(removed_reason(&s, secs(4), &a), Some(Reason::TpmLimit));
    assert_eq!(pick_key(&s, secs(4)), b);
    // A report without tokens (a failure) adds none.
    assert!(s.report(&a, Report::failure(secs(5), FailureKind::BadRequest)));
    assert_eq!(s.health(secs(5))[0].tokens_per_minute, 1_000);
    // Two minutes later the window is empty.
    assert_eq!(removed_reason(&s, secs(125), &a), None);
    assert_eq!(pick_key(&s, secs(125)), a);
}

#[test]
fn max_in_flight_counts_held_picks() {
    let (reg, a, b) = primary_and_backup(|d| d.max_in_flight(2));
    let s = Selector::new(&reg, RoundRobin);
    let t = secs(1);
    let first = s.select(&Request::new("gpt-4").at(t)).unwrap();
    let second = s.select(&Request::new("gpt-4").at(t)).unwrap();
    assert_eq!((first.key(), second.key()), (&a, &a));
    assert_eq!(removed_reason(&s, t, &a), Some(Reason::InFlightLimit));
    let third = s.select(&Request::new("gpt-4").at(t)).unwrap();
    assert_eq!(third.key(), &b);
    assert_eq!(s.in_flight(&a), Some(2));
    drop(first);
    assert_eq!(s.in_flight(&a), Some(1));
    assert_eq!(pick_key(&s, t), a);
    second.complete(Report::success(t, ms(10)));
    assert_eq!(s.in_flight(&a), Some(0));
    drop(third);
    assert_eq!(s.in_flight(&b), Some(0));
}

#[test]
fn max_in_flight_everywhere_is_unavailable() {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    reg.insert(
        Deployment::builder("openai", "gpt-4")
            .max_in_flight(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    let s = Selector::new(&reg, RoundRobin);
    let held = s.select(&Request::new("gpt-4").at(secs(1))).unwrap();
    match s.select(&Request::new("gpt-4").at(secs(1))) {
        Err(Error::Unavailable {
            retry_at, removed, ..
        }) => {
            assert_eq!(retry_at, None);
            assert_eq!(removed.count(Reason::InFlightLimit), 1);
        }
        other => panic!("{other:?}"),
    }
    drop(held);
    assert!(s.select(&Request::new("gpt-4").at(secs(1))).is_ok());
}

#[test]
fn health_snapshot_serializes() {
    let (reg, [a, b]) = nodes(["a", "b"]);
    let s = Selector::builder(&reg)
        .strategy(RoundRobin)
        .health(HealthPolicy::dify().validated().unwrap())
        .build();
    assert!(s.report(&a, Report::failure(secs(1), FailureKind::ConnectionError)));
    let held = s.select(&Request::new("gpt-4").at(secs(2))).unwrap();
    assert_eq!(held.key(), &b);
    let value = serde_json::to_value(s.health(secs(5))).unwrap();
    let rows = value.as_array().expect("an array");
    assert_eq!(rows.len(), 2);
    let fields = [
        "available_at",
        "consecutive_failures",
        "cooldown",
        "ejections",
        "in_flight",
        "key",
        "latency",
        "requests_per_minute",
        "state",
        "tokens_per_minute",
    ];
    for row in rows {
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, fields);
    }
    assert_eq!(rows[0]["key"], a.to_string());
    assert_eq!(rows[0]["state"], "cooling");
    assert_eq!(rows[0]["available_at"].as_f64(), Some(11_000.0));
    assert_eq!(rows[0]["in_flight"], 0);
    assert_eq!(rows[1]["key"], b.to_string());
    assert_eq!(rows[1]["state"], "healthy");
    assert!(rows[1]["available_at"].is_null());
    assert!(rows[1]["cooldown"].is_null());
    assert_eq!(rows[1]["in_flight"], 1);
    assert!(rows[1]["latency"].is_null());
    held.complete(Report::success(secs(6), ms(250)));
    let value = serde_json::to_value(s.health(secs(12))).unwrap();
    assert_eq!(value[0]["state"], "healthy");
    assert!(value[0]["available_at"].is_null());
    assert_eq!(value[1]["in_flight"], 0);
    assert_eq!(value[1]["latency"].as_f64(), Some(250.0));
}

#[test]
fn report_for_an_unknown_key_changes_nothing() {
    let (reg, [a, _]) = nodes(["a", "b"]);
    let build = || {
        Selector::builder(&reg)
            .strategy(RoundRobin)
            .seed(3)
            .health(HealthPolicy::dify().validated().unwrap())
            .build()
    };
    let (s, twin) = (build(), build());
    // Both see a cool for 10 s from 1 s.
    for sel in [&s, &twin] {
        assert!(sel.report(&a, Report::failure(secs(1), FailureKind::ConnectionError)));
    }
    let unknown: ModelKey = "openai/gpt-4@http://c/v1".parse().unwrap();
    let other_model: ModelKey = "openai/gpt-5@http://a/v1".parse().unwrap();
    let before = s.health(secs(5));
    for key in [&unknown, &other_model] {
        for kind in [
            FailureKind::rate_limited(Some(secs(100))),
            FailureKind::ConnectionError,
        ] {
            assert!(!s.report(key, Report::failure(secs(30), kind)));
        }
        assert!(!s.report(key, Report::success(secs(30), ms(5)).tokens(50)));
    }
    assert_eq!(s.health(secs(5)), before);
    // A request without a time is judged at the latest report time seen on
    // the handle: still 1 s (a cooling) on both, not the refused reports' 30 s.
    let plain = |sel: &Selector| sel.select(&Request::new("gpt-4")).unwrap().key().clone();
    for _ in 0..4 {
        let (x, y) = (plain(&s), plain(&twin));
        assert_eq!(x, y);
        assert_ne!(x, a, "judged after a's cooldown");
    }
    // Picks are those of a selector that never saw the reports.
    for t in [5, 11, 11, 12, 50] {
        assert_eq!(pick_key(&s, secs(t)), pick_key(&twin, secs(t)));
    }
}

/// Slow start for new deployments (`SelectorBuilder::started_at`) and
/// after an ejection: the state machine's `ejected → slow start → healthy`.
#[test]
fn slow_start_after_start_and_after_ejection() {
    let (reg, [a, _]) = nodes(["a", "b"]);
    let mut policy = HealthPolicy::default();
    policy.slow_start = Some(slow(1.0, 10.0));
    let s = Selector::builder(&reg)
        .strategy(WeightedRoundRobin::new())
        .health(policy.validated().unwrap())
        .started_at(secs(10))
        .build();
    let states = |t: u64| {
        s.health(secs(t))
            .iter()
            .map(|h| h.state)
            .collect::<Vec<_>>()
    };
    assert_eq!(states(10), [State::SlowStart; 2]);
    assert_eq!(states(69), [State::SlowStart; 2]);
    assert_eq!(states(70), [State::Healthy; 2]);
    // 5 consecutive server errors eject a for 30 s (the default), then it ramps.
    for _ in 0..5 {
        assert!(s.report(&a, Report::failure(secs(100), FailureKind::ServerError)));
    }
    assert_eq!(state_of(&s, secs(129)), (State::Ejected, Some(secs(130))));
    assert_eq!(state_of(&s, secs(130)), (State::SlowStart, None));
    assert_eq!(state_of(&s, secs(189)), (State::SlowStart, None));
    assert_eq!(state_of(&s, secs(190)), (State::Healthy, None));
    // At 136 s its factor is 0.1: about 1 pick in 11.
    let got = (0..1_100).filter(|_| pick_key(&s, secs(136)) == a).count();
    assert!((80..=120).contains(&got), "{got} of 1100");
}

/// Spoils one setting of a valid policy.
type Spoil = fn(&mut HealthPolicy);

#[test]
fn validate_names_the_bad_field() {
    let cases: [(&str, Spoil); 16] = [
        ("ejection.consecutive_failures", |p| {
            p.ejection.as_mut().unwrap().consecutive_failures = 0
        }),
        ("ejection.base", |p| {
            p.ejection.as_mut().unwrap().base = Duration::ZERO
        }),
        ("ejection.base", |p| {
            let e = p.ejection.as_mut().unwrap();
            e.max = e.base - Duration::from_nanos(1);
        }),
        ("ejection.max_percent", |p| {
            p.ejection.as_mut().unwrap().max_percent = 101
        }),
        ("slow_start.aggression", |p| {
            p.slow_start = Some(slow(f64::NAN, 10.0))
        }),
        ("slow_start.aggression", |p| {
            p.slow_start = Some(slow(0.0, 10.0))
        }),
        ("slow_start.aggression", |p| {
            p.slow_start = Some(slow(-1.0, 10.0))
        }),
        ("slow_start.aggression", |p| {
            p.slow_start = Some(slow(f64::INFINITY, 10.0))
        }),
        ("slow_start.min_percent", |p| {
            p.slow_start = Some(slow(1.0, -0.5))
        }),
        ("slow_start.min_percent", |p| {
            p.slow_start = Some(slow(1.0, 100.5))
        }),
        ("slow_start.min_percent", |p| {
            p.slow_start = Some(slow(1.0, f64::NAN))
        }),
        ("unhealthy.threshold_percent", |p| {
            p.unhealthy = Unhealthy::panic_below(0)
        }),
        ("unhealthy.threshold_percent", |p| {
            p.unhealthy = Unhealthy::panic_below(101)
        }),
        ("cooldowns.failure_rate.ratio", |p| {
            p.cooldowns.failure_rate = Some(rate(1.5))
        }),
        ("cooldowns.failure_rate.ratio", |p| {
            p.cooldowns.failure_rate = Some(rate(-0.1))
        }),
        ("cooldowns.failure_rate.ratio", |p| {
            p.cooldowns.failure_rate = Some(rate(f64::NAN))
        }),
    ];
    for (n, (field, spoil)) in cases.iter().enumerate() {
        let mut p = HealthPolicy::default();
        spoil(&mut p);
        match p.validate() {
            Err(err @ Error::InvalidHealth { .. }) => {
                let Error::InvalidHealth {
                    field: f, problem, ..
                } = &err
                else {
                    unreachable!()
                };
                assert_eq!(f, field, "case {n}: {problem}");
                assert!(!problem.is_empty());
                let shown = err.to_string();
                assert!(shown.contains(field), "case {n}: {shown}");
            }
            other => panic!("case {n} ({field}): expected InvalidHealth, got {other:?}"),
        }
        assert!(
            matches!(p.validated(), Err(Error::InvalidHealth { .. })),
            "case {n}: validated accepted it"
        );
    }
    // The presets and the edges of every range are valid.
    let mut edges = HealthPolicy::default();
    edges.ejection = Some({
        let mut e = Ejection::default();
        e.consecutive_failures = 1;
        e.base = Duration::from_nanos(1);
        e.max = Duration::from_nanos(1);
        e.max_percent = 100;
        e.interval = Duration::ZERO;
        e
    });
    edges.slow_start = Some(slow(f64::MIN_POSITIVE, 100.0));
    edges.unhealthy = Unhealthy::panic_below(100);
    edges.cooldowns.failure_rate = Some(rate(1.0));
    let mut low = HealthPolicy::litellm();
    low.slow_start = Some(slow(1.0, 0.0));
    low.unhealthy = Unhealthy::panic_below(1);
    low.cooldowns.failure_rate = Some(rate(0.0));
    for p in [
        HealthPolicy::default(),
        HealthPolicy::dify(),
        HealthPolicy::litellm(),
        HealthPolicy::disabled(),
        edges,
        low,
    ] {
        assert!(p.validate().is_ok(), "{p:?}");
    }
    // Cooldown rules are checked when made.
    for (failures, cooldown, field) in [
        (0, secs(1), "cooldown rule failures"),
        (9, secs(1), "cooldown rule failures"),
        (1, Duration::ZERO, "cooldown rule cooldown"),
    ] {
        match CooldownRule::new(failures, secs(60), cooldown) {
            Err(Error::InvalidHealth { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
}

fn slow(aggression: f64, min_percent: f64) -> SlowStart {
    {
        let mut s = SlowStart::new(secs(60));
        s.aggression = aggression;
        s.min_percent = min_percent;
        s
    }
}

fn rate(ratio: f64) -> FailureRate {
    FailureRate::new(5, ratio, secs(5))
}

/// Two deployments `fast_fail` and `steady` under the latency strategy;
/// `fast_fail` fails every request with a connection error after 5 ms,
/// `steady` succeeds in 200 ms. Returns how many of `n` picks after the
/// first two went to `fast_fail`.
fn fast_failing_share(policy: HealthPolicy, n: u32) -> u32 {
    let (reg, [fast, _]) = nodes(["fast-fail", "steady"]);
    let s = Selector::builder(&reg)
        .strategy(Latency::default())
        .seed(11)
        .health(policy.validated().unwrap())
        .build();
    let mut to_fast = 0;
    for k in 0..n + 2 {
        let now = ms(1_000 + u64::from(k) * 250);
        let p = s.select(&Request::new("gpt-4").at(now)).unwrap();
        if p.key() == &fast {
            if k >= 2 {
                to_fast += 1;
            }
            p.complete(Report::new(
                now,
                Outcome::failure(FailureKind::ConnectionError, Some(ms(5))),
            ));
        } else {
            p.complete(Report::success(now, ms(200)));
        }
    }
    to_fast
}

/// The control for `fast_failing_latency.json`: the penalty, not a
/// cooldown, is what moves traffic. With only the penalty (no cooldown
/// rules), the fast-failing deployment gets nothing after its first
/// failure; without the penalty its failures never make it look slow and
/// it keeps getting picked.
#[test]
fn failure_penalty_is_what_moves_latency_traffic() {
    let mut counted_only = HealthPolicy::disabled();
    counted_only
        .cooldowns
        .set_counted(FailureKind::ConnectionError, true);
    let mut with_penalty = counted_only.clone();
    with_penalty.failure_penalty = Some(secs(5));
    assert_eq!(fast_failing_share(with_penalty, 100), 0);
    assert!(fast_failing_share(counted_only, 100) > 50);
}

/// `SlowStart` with weighted round robin: a deployment back from a
/// cooldown gets a share that grows window after window, at about
/// `f / (1 + f)` with `f` the ramp factor, and exact alternation once the
/// ramp is over.
#[test]
fn slow_start_share_grows_window_by_window() {
    let (reg, [a, _]) = nodes(["a", "b"]);
    let mut policy = HealthPolicy::default();
    policy.slow_start = Some({
        let mut s = SlowStart::new(secs(60));
        s.aggression = 1.0;
        s.min_percent = 10.0;
        s
    });
    let s = Selector::builder(&reg)
        .strategy(WeightedRoundRobin::new())
        .seed(5)
        .health(policy.validated().unwrap())
        .build();
    // One rate limit cools `a` for 30 s (default rule): back at 30 s,
    // ramping until 90 s.
    let limited = FailureKind::rate_limited(None);
    assert!(s.report(&a, Report::failure(secs(0), limited)));
    let share = |t: Duration, picks: u32| {
        let got = (0..picks).filter(|_| pick_key(&s, t) == a).count();
        got as f64 / f64::from(picks)
    };
    assert_eq!(share(secs(29), 50), 0.0, "cooling");
    assert_eq!(s.health(secs(30))[0].state, State::SlowStart);
    let mut previous = -1.0;
    // Windows at 36, 42, …, 84 s: factor 0.1, 0.2, …, 0.9.
    for k in 1..=9u32 {
        let t = secs(30) + secs(6) * k;
        let f = f64::from(k) / 10.0;
        let got = share(t, 400);
        assert!(got > previous, "window {k}: share {got} after {previous}");
        let want = f / (1.0 + f);
        assert!(
            (got - want).abs() < 0.03,
            "window {k}: share {got}, about {want}"
        );
        previous = got;
    }
    assert_eq!(s.health(secs(90))[0].state, State::Healthy);
    assert_eq!(share(secs(90), 400), 0.5, "ramp over: exact alternation");
}

/// One deployment `a` (and a second one `b` when `two`) under `policy`.
fn solo(policy: HealthPolicy, two: bool) -> (Registry, Selector, ModelKey) {
    let (reg, a) = if two {
        let (reg, [a, _]) = nodes(["a", "b"]);
        (reg, a)
    } else {
        let (reg, [a]) = nodes(["a"]);
        (reg, a)
    };
    let s = Selector::builder(&reg)
        .strategy(RoundRobin)
        .health(policy.validated().unwrap())
        .build();
    (reg, s, a)
}

#[track_caller]
fn state_of(s: &Selector, t: Duration) -> (State, Option<Duration>) {
    let h = &s.health(t)[0];
    (h.state, h.available_at)
}

/// `RetryAfter::Cools` (the default): a rate limit with `Retry-After` cools
/// until then even when the rule's count is not reached, and even in a
/// model smaller than `min_group_size`; `RetryAfter::SetsEnd` only sets the
/// end of a cooldown the rule triggers.
#[test]
fn retry_after_cools_whatever_the_count() {
    let limited = |ra: Option<u64>| FailureKind::rate_limited(ra.map(secs));
    let mut three = HealthPolicy::dify();
    three.cooldowns.set_rule(
        limited(None),
        Some(CooldownRule::new(3, secs(60), secs(30)).unwrap()),
    );
    // Cools: one 429 without Retry-After does nothing, one with it cools.
    let (_reg, s, a) = solo(three.clone(), true);
    assert!(s.report(&a, Report::failure(secs(1), limited(None))));
    assert_eq!(state_of(&s, secs(1)), (State::Healthy, None));
    assert!(s.report(&a, Report::failure(secs(2), limited(Some(7)))));
    assert_eq!(state_of(&s, secs(2)), (State::Cooling, Some(secs(9))));
    assert_eq!(state_of(&s, secs(9)), (State::Healthy, None));
    // SetsEnd: Retry-After alone does not cool; the third 429 within 60 s
    // triggers the rule, and its Retry-After (not 30 s) sets the end.
    let mut sets_end = three.clone();
    sets_end.cooldowns.retry_after = modelfleet::health::RetryAfter::SetsEnd;
    let (_reg, s, a) = solo(sets_end, true);
    assert!(s.report(&a, Report::failure(secs(1), limited(Some(7)))));
    assert!(s.report(&a, Report::failure(secs(2), limited(Some(7)))));
    assert_eq!(state_of(&s, secs(2)), (State::Healthy, None));
    assert!(s.report(&a, Report::failure(secs(3), limited(Some(7)))));
    assert_eq!(state_of(&s, secs(3)), (State::Cooling, Some(secs(10))));
    // A model below min_group_size: Cools still cools, SetsEnd never does.
    let mut small = HealthPolicy::dify();
    small.cooldowns.min_group_size = 2;
    let (_reg, s, a) = solo(small.clone(), false);
    assert!(s.report(&a, Report::failure(secs(1), limited(None))));
    assert_eq!(state_of(&s, secs(1)), (State::Healthy, None));
    assert!(s.report(&a, Report::failure(secs(1), limited(Some(4)))));
    assert_eq!(state_of(&s, secs(1)), (State::Cooling, Some(secs(5))));
    small.cooldowns.retry_after = modelfleet::health::RetryAfter::SetsEnd;
    let (_reg, s, a) = solo(small, false);
    assert!(s.report(&a, Report::failure(secs(1), limited(Some(4)))));
    assert_eq!(state_of(&s, secs(1)), (State::Healthy, None));
}

/// An overloaded deployment's `Retry-After` acts as a rate limit's does:
/// with `RetryAfter::Cools` it cools until then whatever the count, and
/// with `RetryAfter::SetsEnd` it sets the end of the cooldown its rule
/// triggers (the default rule: 3 within 60 s, 30 s otherwise).
#[test]
fn overloaded_retry_after_cools_like_a_rate_limit() {
    let overloaded = |ra: Option<u64>| FailureKind::overloaded(ra.map(secs));
    let (_reg, s, a) = solo(HealthPolicy::default(), true);
    assert!(s.report(&a, Report::failure(secs(1), overloaded(Some(40)))));
    assert_eq!(state_of(&s, secs(1)), (State::Cooling, Some(secs(41))));
    assert_eq!(state_of(&s, secs(41)), (State::Healthy, None));

    let mut sets_end = HealthPolicy::default();
    sets_end.cooldowns.retry_after = modelfleet::health::RetryAfter::SetsEnd;
    let (_reg, s, a) = solo(sets_end, true);
    assert!(s.report(&a, Report::failure(secs(1), overloaded(Some(7)))));
    assert!(s.report(&a, Report::failure(secs(2), overloaded(None))));
    assert_eq!(state_of(&s, secs(2)), (State::Healthy, None));
    assert!(s.report(&a, Report::failure(secs(3), overloaded(Some(7)))));
    assert_eq!(state_of(&s, secs(3)), (State::Cooling, Some(secs(10))));
    // Without Retry-After the rule's own cooldown applies.
    let (_reg, s, a) = solo(HealthPolicy::default(), true);
    for t in 1..=3 {
        assert!(s.report(&a, Report::failure(secs(t), overloaded(None))));
    }
    assert_eq!(state_of(&s, secs(3)), (State::Cooling, Some(secs(33))));
}

/// Overload is a 5xx: every preset treats it as it treats a server error
/// (rule, counted or neither), Dify's included (neither).
#[test]
fn overloaded_follows_server_error_in_every_preset() {
    let overloaded = FailureKind::overloaded(Some(secs(5)));
    for (name, p) in [
        ("default", HealthPolicy::default()),
        ("dify", HealthPolicy::dify()),
        ("litellm", HealthPolicy::litellm()),
        ("disabled", HealthPolicy::disabled()),
    ] {
        let c = &p.cooldowns;
        assert_eq!(
            c.rule(overloaded),
            c.rule(FailureKind::ServerError),
            "{name}: rule"
        );
        assert_eq!(
            c.counts(overloaded),
            c.counts(FailureKind::ServerError),
            "{name}: counted"
        );
    }
    assert!(HealthPolicy::default().cooldowns.rule(overloaded).is_some());
    assert!(HealthPolicy::litellm().cooldowns.counts(overloaded));
}

/// The default rule for server errors: 3 counted failures within 60 s cool
/// for 30 s; three spread over more than 60 s do not.
#[test]
fn default_rule_counts_failures_within_its_window() {
    let (_reg, s, a) = solo(HealthPolicy::default(), true);
    let failed = |t: u64| assert!(s.report(&a, Report::failure(secs(t), FailureKind::ServerError)));
    failed(0);
    failed(31);
    failed(62);
    assert_eq!(
        state_of(&s, secs(62)),
        (State::Healthy, None),
        "0, 31, 62: spread over 62 s"
    );
    failed(63);
    assert_eq!(
        state_of(&s, secs(63)),
        (State::Cooling, Some(secs(93))),
        "31, 62, 63"
    );
    // A success resets the ejection run, not the cooldown.
    assert!(s.report(&a, Report::success(secs(64), ms(100))));
    assert_eq!(state_of(&s, secs(64)), (State::Cooling, Some(secs(93))));
    // Failures that never count (bad request, context window, content filter).
    let (_reg, s, a) = solo(HealthPolicy::default(), true);
    for (t, kind) in [
        FailureKind::BadRequest,
        FailureKind::ContextWindowExceeded,
        FailureKind::ContentFiltered,
    ]
    .into_iter()
    .cycle()
    .take(12)
    .enumerate()
    {
        assert!(s.report(&a, Report::failure(secs(t as u64), kind)));
    }
    assert_eq!(state_of(&s, secs(12)), (State::Healthy, None));
    assert_eq!(
        s.health(secs(12))[0].latency,
        None,
        "no penalty for uncounted kinds"
    );
}

/// The snapshot's `consecutive_failures` is documented as "counted failures
/// in a row since the last success"; a counted failure under a policy
/// without ejection must show.
#[test]
fn consecutive_failures_counts_every_counted_failure() {
    let reg: Registry = [Deployment::builder("openai", "gpt-4").build().unwrap()]
        .into_iter()
        .collect();
    let key = reg.iter().next().unwrap().0.clone();
    // Dify (no ejection): a connection error is counted.
    let s = Selector::builder(&reg)
        .health(HealthPolicy::dify().validated().unwrap())
        .build();
    assert!(s.report(&key, Report::failure(secs(1), FailureKind::ConnectionError)));
    assert_eq!(s.health(secs(1))[0].consecutive_failures, 1, "dify");
    // Default (ejection on): a rate limit is counted, though not server-side.
    let s = Selector::builder(&reg)
        .health(HealthPolicy::default().validated().unwrap())
        .build();
    let limited = FailureKind::rate_limited(None);
    assert!(s.report(&key, Report::failure(secs(1), limited)));
    assert_eq!(s.health(secs(1))[0].consecutive_failures, 1, "default");
}

/// `HealthPolicy::disabled()` is documented as "no health at all: only
/// filters and limits" / "No cooldowns … reports only feed latency
/// estimates and tpm usage".
#[test]
fn disabled_policy_never_cools() {
    let (reg, [a]) = nodes(["a"]);
    let s = Selector::builder(&reg)
        .strategy(RoundRobin)
        .health(HealthPolicy::disabled().validated().unwrap())
        .build();
    let limited = FailureKind::rate_limited(Some(secs(30)));
    assert!(s.report(&a, Report::failure(secs(1), limited)));
    let h = &s.health(secs(2))[0];
    assert_eq!((h.state, h.available_at), (State::Healthy, None));
    assert_eq!(pick_key(&s, secs(2)), a);
}

/// Weighted round robin over a tier with slow start configured, while no
/// candidate of that tier is ramping up: the picks are those of the plain
/// weights (exact windows of Σw), whether the disturbance is a cooling
/// deployment of a backup tier or a cooling member of the tier itself.
#[test]
fn weights_are_plain_while_no_candidate_ramps() {
    let node = |ip: &str, weight: u32, priority: u32| {
        Deployment::builder("openai", "gpt-4")
            .endpoint(&format!("http://{ip}/v1"))
            .weight(weight)
            .priority(priority)
            .build()
            .unwrap()
    };
    let reg: Registry = [
        node("10.0.0.1", 1, 0),
        node("10.0.0.2", 2, 0),
        node("10.0.0.3", 3, 0),
        node("10.0.0.9", 1, 1),
    ]
    .into_iter()
    .collect();
    let mut policy = HealthPolicy::dify();
    policy.slow_start = Some({
        let mut s = SlowStart::new(secs(30));
        s.aggression = 1.0;
        s.min_percent = 10.0;
        s
    });
    let build = || {
        Selector::builder(&reg)
            .strategy(WeightedRoundRobin::new())
            .health(policy.clone().validated().unwrap())
            .seed(3)
            .build()
    };
    let picks = |s: &Selector| -> Vec<String> {
        (0..24)
            .map(|_| {
                // Within the 10 s cooldown of the failures at 100 s.
                let pick = s.select(&Request::new("gpt-4").at(secs(105))).unwrap();
                pick.key().to_string()
            })
            .collect()
    };

    // A backup-tier failure leaves tier 0's sequence as it is.
    let (quiet, disturbed) = (build(), build());
    let error = Report::failure(secs(100), FailureKind::ConnectionError);
    assert!(disturbed.report(&key("10.0.0.9"), error));
    assert_eq!(picks(&disturbed), picks(&quiet));

    // A cooling member of tier 0: the other two keep exact windows of
    // 1 + 2 = 3 picks (a scaled weight line would make them 3,000 long).
    let s = build();
    assert!(s.report(&key("10.0.0.3"), error));
    let seq = picks(&s);
    assert!(seq.iter().all(|k| !k.contains("10.0.0.3")));
    for window in seq.windows(3) {
        let ones = window.iter().filter(|k| k.contains("10.0.0.1")).count();
        assert_eq!(ones, 1, "{window:?}");
    }
}

#[test]
fn a_pick_earlier_than_the_tiers_health_record_tests_every_member_again() {
    // A disturbed tier keeps a record of the members a pick must test,
    // made at some time; a member not in it was healthy then, which says
    // nothing about an earlier time. Requests carry their own times, so a
    // pick may come from before the record.
    let (reg, [a, b, _]) = nodes(["a", "b", "c"]);
    let mut policy = HealthPolicy::default();
    policy.slow_start = None;
    let s = Selector::builder(&reg)
        .strategy(RoundRobin)
        .health(policy.validated().unwrap())
        .build();
    // A rate limit with `Retry-After: 10` cools for 10 s.
    let limited = FailureKind::rate_limited(Some(secs(10)));
    assert!(s.report(&a, Report::failure(secs(100), limited)));
    assert!(s.report(&b, Report::failure(secs(150), limited)));
    assert_eq!(state_of(&s, secs(105)), (State::Cooling, Some(secs(110))));
    // At 155 s only b cools: the record made now lists b, not a.
    let later: Vec<ModelKey> = (0..6).map(|_| pick_key(&s, secs(155))).collect();
    assert!(later.contains(&a) && !later.contains(&b), "{later:?}");
    // At 105 s a cools too, and must not be picked.
    for _ in 0..6 {
        let k = pick_key(&s, secs(105));
        assert!(k != a && k != b, "{k} picked at 105 s");
    }
    // And the record made at 105 s does not keep a out at 155 s.
    let again: Vec<ModelKey> = (0..6).map(|_| pick_key(&s, secs(155))).collect();
    assert!(again.contains(&a), "{again:?}");
}

/// LiteLLM never cools a deployment for a connection error alone: with
/// the `litellm` preset they count toward no rule and no failure rate,
/// while timeouts (408) and server errors (5xx) do.
#[test]
fn litellm_preset_never_cools_for_connection_errors() {
    let p = HealthPolicy::litellm();
    assert!(!p.cooldowns.counts(FailureKind::ConnectionError));
    assert!(p.cooldowns.counts(FailureKind::Timeout));
    assert!(p.cooldowns.counts(FailureKind::ServerError));
    let (_reg, s, a) = solo(HealthPolicy::litellm(), true);
    for i in 0..20 {
        assert!(s.report(&a, Report::failure(secs(i), FailureKind::ConnectionError)));
    }
    assert_eq!(state_of(&s, secs(20)), (State::Healthy, None));
    assert_eq!(s.health(secs(20))[0].consecutive_failures, 0);
    // The same run of server errors trips the failure rate.
    let (_reg, s, a) = solo(HealthPolicy::litellm(), true);
    for i in 0..20 {
        assert!(s.report(&a, Report::failure(secs(i), FailureKind::ServerError)));
    }
    assert_eq!(state_of(&s, secs(20)).0, State::Cooling);
}

/// With a token estimate, a deployment is skipped when its rolling-minute
/// usage plus the estimate would exceed its `tpm` (as LiteLLM does); a
/// request without one needs one token, so usage at the limit skips.
#[test]
fn tpm_limit_counts_the_request_s_tokens() {
    let (reg, a, b) = primary_and_backup(|d| d.tpm(1_440));
    let s = Selector::new(&reg, RoundRobin);
    assert!(s.report(&a, Report::success(secs(1), ms(300)).tokens(1_439)));
    let with = |n: u32| Request::new("gpt-4").tokens(n).at(secs(2));
    let removed = |req: &Request| {
        let why = s.explain(req).unwrap();
        why.candidates()
            .iter()
            .find(|v| v.key() == &a)
            .expect("candidate listed")
            .removed()
    };
    assert_eq!(removed(&with(12)), Some(Reason::TpmLimit));
    assert_eq!(s.select(&with(12)).unwrap().key(), &b);
    // Exactly at the limit is within it.
    assert_eq!(removed(&with(1)), None);
    assert_eq!(s.select(&with(1)).unwrap().key(), &a);
    assert_eq!(removed(&with(0)), None);
    // Without an estimate: 1,439 < 1,440 passes; 1,440 does not.
    assert_eq!(pick_key(&s, secs(2)), a);
    assert!(s.report(&a, Report::success(secs(3), ms(300)).tokens(1)));
    assert_eq!(removed_reason(&s, secs(4), &a), Some(Reason::TpmLimit));
    assert_eq!(
        removed(&Request::new("gpt-4").tokens(0).at(secs(4))),
        Some(Reason::TpmLimit)
    );
    // A huge estimate saturates instead of wrapping.
    let s = Selector::new(&reg, RoundRobin);
    let mut reg2 = Registry::new(Policy::NAME_ENDPOINT);
    let c = reg2
        .insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint("http://c/v1")
                .tpm(u64::MAX)
                .build()
                .unwrap(),
        )
        .unwrap();
    let s2 = Selector::new(&reg2, RoundRobin);
    assert!(s2.report(&c, Report::success(secs(1), ms(1)).tokens(u64::MAX - 1)));
    assert!(
        s2.select(&Request::new("gpt-4").tokens(1).at(secs(2)))
            .is_ok()
    );
    assert!(matches!(
        s2.select(&Request::new("gpt-4").tokens(u32::MAX).at(secs(2))),
        Err(Error::Unavailable { .. })
    ));
    // An estimate above the whole limit never fits.
    assert_eq!(
        s.select(&Request::new("gpt-4").tokens(u32::MAX))
            .unwrap()
            .key(),
        &b
    );
}

/// Only a validated policy reaches a selector or a fleet: an ejection
/// after 0 failures or a `max_percent` of 250 is an error where the policy
/// is made, naming the field; a fleet built with a valid policy ejects only
/// after its run of server errors.
#[test]
fn an_invalid_health_policy_cannot_reach_a_selector_or_a_fleet() {
    let mut zero = HealthPolicy::default();
    zero.ejection.as_mut().unwrap().consecutive_failures = 0;
    let mut wide = HealthPolicy::default();
    wide.ejection.as_mut().unwrap().max_percent = 250;
    for (p, field) in [
        (zero, "ejection.consecutive_failures"),
        (wide, "ejection.max_percent"),
    ] {
        match ValidHealthPolicy::try_from(p) {
            Err(Error::InvalidHealth { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let (reg, [a, _]) = nodes(["a", "b"]);
    let mut p = HealthPolicy::disabled();
    p.ejection = Some({
        let mut e = Ejection::default();
        e.consecutive_failures = 3;
        e.max_percent = 100;
        e
    });
    let valid = p.validated().unwrap();
    let fleet = Fleet::new(reg, move |b| b.strategy(RoundRobin).health(valid));
    for i in 0..2 {
        assert!(fleet.report(&a, Report::failure(secs(i), FailureKind::ServerError)));
        assert_eq!(
            fleet.health(secs(i))[0].state,
            State::Healthy,
            "after {} failures",
            i + 1
        );
    }
    assert!(fleet.report(&a, Report::failure(secs(2), FailureKind::ServerError)));
    assert_eq!(fleet.health(secs(2))[0].state, State::Ejected);
}
