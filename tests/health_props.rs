//! Property tests of health: outcome reports, cooldowns, ejection, panic
//! mode and in-flight accounting, under random sequences of events.
//!
//! Every time is injected (`Request::at`, `Report`); nothing reads a clock.
//! Fleets are small on purpose: 2-5 deployments of one model (`gpt-4`),
//! sometimes with a backup tier, each labelled `region=eu` or `region=us`.
//!
//! Properties:
//!
//! 1. a deployment cooling or ejected at `t` (per `Selector::health(t)`) is
//!    never picked at `t` while an eligible deployment is healthy; when none
//!    is, `select` fails with `Unavailable` carrying the earliest
//!    `available_at` (the expected outcome of every select is computed here
//!    from the snapshot, never by asking the selector to choose);
//! 2. with `HealthPolicy::dify()` a connection error at `t0` makes the
//!    deployment unavailable at every probed `t` in `[t0, t0 + 10 s)`
//!    (`t0 + 10 s - 1 ns` included) and available at `t0 + 10 s` exactly;
//! 3. `Retry-After` wins over the rule's duration, shorter or longer;
//! 4. ejection never exceeds `max(1, n × max_percent / 100)` deployments,
//!    and follows Envoy's rule exactly (a model of the documented rule
//!    predicts every ejection, its length and the decayed multiplier);
//! 5. in panic mode every pick passes the request's filters, and panic mode
//!    never fails while an eligible deployment exists;
//! 6. in-flight counts equal the picks held, never go negative, and return
//!    to zero once every pick is dropped or completed;
//! 7. the same events and seed give the same picks (two selectors in lockstep).

use std::time::Duration;

use modelfleet::health::{
    Ejection, FailureKind, HealthPolicy, HealthSnapshot, Outcome, Report, SlowStart, State,
    Unhealthy,
};
use modelfleet::select::{BuiltinStrategy, RoundRobin};
use modelfleet::{Deployment, Error, ModelKey, Pick, Policy, Registry, Request, Selector};
use proptest::prelude::*;
use proptest::sample::{Index, select};

const MODEL: &str = "gpt-4";
const REGIONS: [&str; 2] = ["eu", "us"];
const SECOND: u64 = 1_000_000_000;
const MILLI: u64 = 1_000_000;

fn at(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

// ---------------------------------------------------------------------------
// Fleets

/// One generated deployment.
#[derive(Clone, Debug)]
struct Spec {
    weight: u32,
    priority: u32,
    region: &'static str,
}

/// 2-5 deployments in tier 0, and 0-2 in a backup tier 1.
fn fleet() -> impl Strategy<Value = Vec<Spec>> {
    let spec = |priority: u32| {
        (1u32..=3, select(REGIONS.to_vec())).prop_map(move |(weight, region)| Spec {
            weight,
            priority,
            region,
        })
    };
    (
        prop::collection::vec(spec(0), 2..=5),
        prop::collection::vec(spec(1), 0..=2),
    )
        .prop_map(|(mut a, b)| {
            a.extend(b);
            a
        })
}

struct Fleet {
    registry: Registry,
    keys: Vec<ModelKey>,
    specs: Vec<Spec>,
}

fn build_fleet(specs: &[Spec]) -> Fleet {
    let mut registry = Registry::new(Policy::NAME_ENDPOINT);
    for (i, s) in specs.iter().enumerate() {
        let d = Deployment::builder("openai", MODEL)
            .endpoint(&format!("http://n{i}.test/v1"))
            .label("region", s.region)
            .weight(s.weight)
            .priority(s.priority)
            .build()
            .expect("generated deployments are valid");
        registry.insert(d).expect("endpoints differ");
    }
    let keys = registry.iter().map(|(k, _)| k.clone()).collect();
    Fleet {
        registry,
        keys,
        specs: specs.to_vec(),
    }
}

impl Fleet {
    #[track_caller]
    fn index(&self, key: &ModelKey) -> usize {
        self.keys
            .iter()
            .position(|k| k == key)
            .unwrap_or_else(|| panic!("{key} is not in the fleet"))
    }

    /// The snapshot of deployment `i` (looked up by key, not by position).
    #[track_caller]
    fn snap<'h>(&self, health: &'h [HealthSnapshot], i: usize) -> &'h HealthSnapshot {
        health
            .iter()
            .find(|h| h.key == self.keys[i])
            .unwrap_or_else(|| panic!("no snapshot for {}", self.keys[i]))
    }
}

// ---------------------------------------------------------------------------
// Policies, outcomes, events

#[derive(Clone, Copy, Debug)]
enum PolicyChoice {
    Default,
    Dify,
    Litellm,
    Disabled,
    /// The default policy in Envoy's panic mode.
    Panic(u8),
    /// Dify with a slow start.
    DifySlowStart,
    /// No cooldowns; ejection after 1-3 server failures, any share.
    EjectionOnly {
        consecutive: u32,
        max_percent: u8,
    },
}

impl PolicyChoice {
    fn policy(self) -> HealthPolicy {
        match self {
            PolicyChoice::Default => HealthPolicy::default(),
            PolicyChoice::Dify => HealthPolicy::dify(),
            PolicyChoice::Litellm => HealthPolicy::litellm(),
            PolicyChoice::Disabled => HealthPolicy::disabled(),
            PolicyChoice::Panic(threshold_percent) => {
                let mut p = HealthPolicy::default();
                p.unhealthy = Unhealthy::panic_below(threshold_percent);
                p
            }
            PolicyChoice::DifySlowStart => {
                let mut p = HealthPolicy::dify();
                p.slow_start = Some({
                    let mut s = SlowStart::new(Duration::from_secs(30));
                    s.aggression = 1.5;
                    s.min_percent = 10.0;
                    s
                });
                p
            }
            PolicyChoice::EjectionOnly {
                consecutive,
                max_percent,
            } => {
                let mut p = HealthPolicy::disabled();
                p.ejection = Some({
                    let mut e = Ejection::default();
                    e.consecutive_failures = consecutive;
                    e.base = Duration::from_secs(5);
                    e.max = Duration::from_secs(20);
                    e.max_percent = max_percent;
                    e.interval = Duration::from_secs(3);
                    e
                });
                p
            }
        }
    }

    fn panic_threshold(self) -> Option<u8> {
        match self {
            PolicyChoice::Panic(t) => Some(t),
            _ => None,
        }
    }
}

fn policy_choice() -> impl Strategy<Value = PolicyChoice> {
    prop_oneof![
        1 => Just(PolicyChoice::Default),
        1 => Just(PolicyChoice::Dify),
        1 => Just(PolicyChoice::Litellm),
        1 => Just(PolicyChoice::Disabled),
        2 => (1u8..=100).prop_map(PolicyChoice::Panic),
        1 => Just(PolicyChoice::DifySlowStart),
        1 => (1u32..=3, 0u8..=100).prop_map(|(consecutive, max_percent)| PolicyChoice::EjectionOnly {
            consecutive,
            max_percent
        }),
    ]
}

/// How a pick ends, without its time.
#[derive(Clone, Copy, Debug)]
enum End {
    Success {
        latency_ms: u64,
    },
    Failure {
        kind: FailureKind,
        latency_ms: Option<u64>,
    },
}

impl End {
    fn report(self, now: u64) -> Report {
        match self {
            End::Success { latency_ms } => {
                Report::success(at(now), Duration::from_millis(latency_ms)).tokens(latency_ms)
            }
            End::Failure { kind, latency_ms } => Report::new(
                at(now),
                Outcome::failure(kind, latency_ms.map(Duration::from_millis)),
            ),
        }
    }
}

/// Any failure kind, rate limits and overload with or without
/// `Retry-After` (0 to 90 s).
fn failure_kind() -> impl Strategy<Value = FailureKind> {
    prop_oneof![
        3 => prop::option::of(0u64..90_000).prop_map(|ms| FailureKind::rate_limited(ms.map(Duration::from_millis))),
        2 => prop::option::of(0u64..90_000).prop_map(|ms| FailureKind::overloaded(ms.map(Duration::from_millis))),
        6 => select(FailureKind::ALL.to_vec()),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        2 => (1u64..3_000).prop_map(|latency_ms| End::Success { latency_ms }),
        3 => (failure_kind(), prop::option::of(1u64..3_000))
            .prop_map(|(kind, latency_ms)| End::Failure { kind, latency_ms }),
    ]
}

#[derive(Clone, Debug)]
enum Event {
    /// Select at the current time, optionally requiring a region and with an
    /// optional affinity key; the pick is held.
    Select {
        region: Option<&'static str>,
        affinity: Option<u8>,
    },
    /// Complete a held pick (index modulo the held picks).
    Complete(Index, End),
    /// Drop a held pick without a report.
    Drop(Index),
    /// Report on a deployment by key, without a pick.
    ReportKey(Index, End),
    /// Advance the clock by this many nanoseconds.
    Advance(u64),
    /// Jump exactly to the earliest `available_at` still ahead (or 1 ns
    /// before it).
    ToNextReturn { one_ns_before: bool },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (
            prop::option::weighted(0.3, select(REGIONS.to_vec())),
            prop::option::weighted(0.2, any::<u8>()),
        )
            .prop_map(|(region, affinity)| Event::Select { region, affinity }),
        3 => (any::<Index>(), end()).prop_map(|(i, e)| Event::Complete(i, e)),
        1 => any::<Index>().prop_map(Event::Drop),
        3 => (any::<Index>(), end()).prop_map(|(i, e)| Event::ReportKey(i, e)),
        3 => prop_oneof![
            Just(0u64),
            Just(1u64),
            1u64..2_000 * MILLI,
            1u64..70 * SECOND,
        ]
        .prop_map(Event::Advance),
        2 => any::<bool>().prop_map(|one_ns_before| Event::ToNextReturn { one_ns_before }),
    ]
}

// ---------------------------------------------------------------------------
// Expectations

fn is_out(h: &HealthSnapshot) -> bool {
    matches!(h.state, State::Cooling | State::Ejected)
}

/// What one select must do, computed from the health snapshot at its time.
#[derive(Debug, PartialEq)]
enum Expected {
    /// A pick among these deployments, from this tier.
    Pick { among: Vec<usize>, tier: u32 },
    /// `Unavailable` with this retry time.
    Unavailable(Option<Duration>),
    /// `NoEligible`: the filters removed everything.
    NoEligible,
}

fn expected(
    fleet: &Fleet,
    health: &[HealthSnapshot],
    region: Option<&str>,
    panic_threshold: Option<u8>,
) -> Expected {
    let eligible: Vec<usize> = (0..fleet.specs.len())
        .filter(|&i| region.is_none_or(|r| fleet.specs[i].region == r))
        .collect();
    if eligible.is_empty() {
        return Expected::NoEligible;
    }
    let healthy: Vec<usize> = eligible
        .iter()
        .copied()
        .filter(|&i| !is_out(fleet.snap(health, i)))
        .collect();
    let panicking = panic_threshold
        .is_some_and(|t| (healthy.len() as u64) * 100 < u64::from(t) * eligible.len() as u64);
    let pool = if panicking { eligible.clone() } else { healthy };
    match pool.iter().map(|&i| fleet.specs[i].priority).min() {
        Some(tier) => Expected::Pick {
            among: pool
                .into_iter()
                .filter(|&i| fleet.specs[i].priority == tier)
                .collect(),
            tier,
        },
        None => Expected::Unavailable(
            eligible
                .iter()
                .filter_map(|&i| fleet.snap(health, i).available_at)
                .min(),
        ),
    }
}

/// A comparable summary of a select's result.
fn summary(r: &Result<Pick<'_>, Error>) -> String {
    match r {
        Ok(p) => format!("pick {} tier {}", p.key(), p.priority()),
        Err(Error::Unavailable { retry_at, .. }) => format!("unavailable {retry_at:?}"),
        Err(e) => format!("error {e}"),
    }
}

// ---------------------------------------------------------------------------
// Properties 1, 5, 6, 7: random event sequences

fn run_events(
    specs: &[Spec],
    choice: PolicyChoice,
    strategy: BuiltinStrategy,
    seed: u64,
    start: u64,
    events: &[Event],
) -> Result<(), TestCaseError> {
    let fleet = build_fleet(specs);
    let build = || {
        Selector::builder(&fleet.registry)
            .strategy(strategy)
            .seed(seed)
            .health(
                choice
                    .policy()
                    .validated()
                    .expect("the generated policies are valid"),
            )
            .build()
    };
    let (a, b) = (build(), build());
    let mut held_a: Vec<Pick<'_>> = Vec::new();
    let mut held_b: Vec<Pick<'_>> = Vec::new();
    let mut now = start;
    for (step, ev) in events.iter().enumerate() {
        match ev {
            Event::Select { region, affinity } => {
                let mut req = Request::new(MODEL).at(at(now));
                if let Some(r) = region {
                    req = req.label("region", r);
                }
                if let Some(k) = affinity {
                    req = req.affinity(&format!("user-{k}"));
                }
                let health = a.health(at(now));
                let want = expected(&fleet, &health, *region, choice.panic_threshold());
                let (ra, rb) = (a.select(&req), b.select(&req));
                // (7) Same events, same seed: same result.
                prop_assert_eq!(summary(&ra), summary(&rb), "step {}: {:?}", step, ev);
                match (ra, rb, &want) {
                    (Ok(pa), Ok(pb), Expected::Pick { among, tier }) => {
                        let i = fleet.index(pa.key());
                        // (5) every pick passes the request's filters.
                        if let Some(r) = region {
                            prop_assert_eq!(pa.deployment().label("region"), Some(*r));
                        }
                        // (1) never a cooling or ejected one while a healthy
                        // one is eligible (outside panic mode).
                        prop_assert!(
                            among.contains(&i),
                            "step {}: picked {} ({:?}) at {} ns, expected one of {:?}; health {:?}",
                            step,
                            pa.key(),
                            fleet.snap(&health, i).state,
                            now,
                            among,
                            health
                        );
                        prop_assert_eq!(pa.priority(), *tier);
                        held_a.push(pa);
                        held_b.push(pb);
                    }
                    (Err(Error::Unavailable { retry_at, .. }), _, Expected::Unavailable(w)) => {
                        // Panic mode never fails while a deployment is eligible.
                        prop_assert!(choice.panic_threshold().is_none());
                        prop_assert_eq!(retry_at, *w, "step {}", step);
                    }
                    (Err(Error::NoEligible { .. }), _, Expected::NoEligible) => {}
                    (ra, _, want) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: at {now} ns got {}, expected {want:?}; health {health:?}",
                            summary(&ra)
                        )));
                    }
                }
            }
            Event::Complete(i, e) => {
                if !held_a.is_empty() {
                    let k = i.index(held_a.len());
                    held_a.remove(k).complete(e.report(now));
                    held_b.remove(k).complete(e.report(now));
                }
            }
            Event::Drop(i) => {
                if !held_a.is_empty() {
                    let k = i.index(held_a.len());
                    drop(held_a.remove(k));
                    drop(held_b.remove(k));
                }
            }
            Event::ReportKey(i, e) => {
                let key = &fleet.keys[i.index(fleet.keys.len())];
                prop_assert!(a.report(key, e.report(now)));
                prop_assert!(b.report(key, e.report(now)));
            }
            Event::Advance(d) => now += d,
            Event::ToNextReturn { one_ns_before } => {
                let next = a
                    .health(at(now))
                    .iter()
                    .filter_map(|h| h.available_at)
                    .map(|d| u64::try_from(d.as_nanos()).expect("small times"))
                    .filter(|&t| t > now)
                    .min();
                if let Some(t) = next {
                    now = if *one_ns_before { t - 1 } else { t };
                }
            }
        }
        // (6) In-flight counts are exactly the held picks.
        let health = a.health(at(now));
        for (i, key) in fleet.keys.iter().enumerate() {
            let held = held_a.iter().filter(|p| p.key() == key).count() as u32;
            prop_assert_eq!(fleet.snap(&health, i).in_flight, held, "step {}", step);
            prop_assert_eq!(a.in_flight(key), Some(held));
            prop_assert_eq!(b.in_flight(key), Some(held));
        }
        // The two selectors agree on every deployment's health.
        prop_assert_eq!(&health, &b.health(at(now)), "step {}", step);
    }
    drop(held_a);
    drop(held_b);
    for key in &fleet.keys {
        prop_assert_eq!(a.in_flight(key), Some(0));
        prop_assert_eq!(b.in_flight(key), Some(0));
    }
    prop_assert!(a.health(at(now)).iter().all(|h| h.in_flight == 0));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// Properties 1, 5, 6 and 7 over random sequences of selects, reports,
    /// drops and clock jumps, under every preset and strategy.
    #[test]
    fn random_events_respect_health(
        specs in fleet(),
        choice in policy_choice(),
        strategy in select(BuiltinStrategy::all().to_vec()),
        seed in any::<u64>(),
        start in 0u64..1_000_000 * SECOND,
        events in prop::collection::vec(event(), 1..60),
    ) {
        run_events(&specs, choice, strategy, seed, start, &events)?;
    }

    /// Property 5 with panic mode forced often: a random subset of the fleet
    /// is cooled (rate limits with a long `Retry-After`), then requests with
    /// and without a region all succeed and pass their filters.
    #[test]
    fn panic_mode_picks_pass_the_filters(
        specs in fleet(),
        threshold in 1u8..=100,
        cooled in prop::collection::vec(any::<bool>(), 7),
        strategy in select(BuiltinStrategy::all().to_vec()),
        seed in any::<u64>(),
        requests in prop::collection::vec(prop::option::of(select(REGIONS.to_vec())), 1..30),
    ) {
        let fleet = build_fleet(&specs);
        let mut policy = HealthPolicy::dify();
        policy.unhealthy = Unhealthy::panic_below(threshold);
        let s = Selector::builder(&fleet.registry)
            .strategy(strategy)
            .seed(seed)
            .health(policy.validated().expect("valid policy"))
            .build();
        let limited = FailureKind::rate_limited(Some(Duration::from_secs(600)));
        for (i, key) in fleet.keys.iter().enumerate() {
            if cooled[i] {
                prop_assert!(s.report(key, Report::failure(at(SECOND), limited)));
            }
        }
        let now = 2 * SECOND;
        for region in requests {
            let mut req = Request::new(MODEL).at(at(now));
            if let Some(r) = region {
                req = req.label("region", r);
            }
            let health = s.health(at(now));
            let want = expected(&fleet, &health, region, Some(threshold));
            match (s.select(&req), want) {
                (Ok(p), Expected::Pick { among, tier }) => {
                    if let Some(r) = region {
                        prop_assert_eq!(p.deployment().label("region"), Some(r));
                    }
                    prop_assert!(among.contains(&fleet.index(p.key())));
                    prop_assert_eq!(p.priority(), tier);
                }
                (Err(Error::NoEligible { .. }), Expected::NoEligible) => {}
                (got, want) => {
                    return Err(TestCaseError::fail(format!(
                        "got {}, expected {want:?}",
                        summary(&got)
                    )));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Properties 2 and 3: cooldowns end exactly on time

/// The keys of every deployment but `i`.
fn others(fleet: &Fleet, i: usize) -> Vec<ModelKey> {
    fleet
        .keys
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, k)| k.clone())
        .collect()
}

/// A request at `t` that only deployment `i` can serve.
fn only(fleet: &Fleet, i: usize, t: u64) -> Request {
    others(fleet, i)
        .into_iter()
        .fold(Request::new(MODEL).at(at(t)), Request::exclude)
}

/// Asserts deployment `i` is cooling until `end` at time `t`: the snapshot
/// says so, a request only it could serve fails with that retry time, and
/// plain requests never get it.
#[track_caller]
fn assert_cooling(s: &Selector, fleet: &Fleet, i: usize, t: u64, end: u64) {
    let health = s.health(at(t));
    let h = fleet.snap(&health, i);
    assert_eq!(h.state, State::Cooling, "at {t} ns: {h:?}");
    assert_eq!(h.available_at, Some(at(end)), "at {t} ns");
    match s.select(&only(fleet, i, t)) {
        Err(Error::Unavailable { retry_at, .. }) => assert_eq!(retry_at, Some(at(end))),
        other => panic!("at {t} ns: expected Unavailable, got {}", summary(&other)),
    }
    for _ in 0..2 * fleet.keys.len() {
        let p = s
            .select(&Request::new(MODEL).at(at(t)))
            .expect("others are healthy");
        assert_ne!(p.key(), &fleet.keys[i], "picked while cooling at {t} ns");
    }
}

/// Asserts deployment `i` is a candidate again at `t`.
#[track_caller]
fn assert_back(s: &Selector, fleet: &Fleet, i: usize, t: u64) {
    let health = s.health(at(t));
    let h = fleet.snap(&health, i);
    assert_eq!(h.state, State::Healthy, "at {t} ns: {h:?}");
    assert_eq!(h.available_at, None);
    let p = s.select(&only(fleet, i, t)).expect("back at its end");
    assert_eq!(p.key(), &fleet.keys[i]);
    // Round robin over the whole tier visits it within one turn of the tier.
    let n = fleet.specs.iter().filter(|x| x.priority == 0).count();
    let seen = (0..n).any(|_| {
        s.select(&Request::new(MODEL).at(at(t)))
            .is_ok_and(|p| p.key() == &fleet.keys[i])
    });
    assert!(seen, "not picked by round robin at its end {t} ns");
}

/// Tier-0-only fleets of `n` deployments.
fn flat(n: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| Spec {
            weight: 1,
            priority: 0,
            region: REGIONS[i % 2],
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Property 2: Dify cools a connection error for exactly 10 s.
    #[test]
    fn connection_error_cools_for_exactly_ten_seconds(
        n in 2usize..=5,
        target in any::<Index>(),
        t0 in 0u64..1_000_000 * SECOND,
        probes in prop::collection::vec(0u64..10 * SECOND, 0..6),
        seed in any::<u64>(),
        via_pick in any::<bool>(),
    ) {
        let fleet = build_fleet(&flat(n));
        let i = target.index(n);
        let s = Selector::builder(&fleet.registry)
            .strategy(RoundRobin)
            .seed(seed)
            .health(HealthPolicy::dify().validated().unwrap())
            .build();
        let failure = Report::failure(at(t0), FailureKind::ConnectionError);
        if via_pick {
            s.select(&only(&fleet, i, t0)).expect("healthy").complete(failure);
        } else {
            prop_assert!(s.report(&fleet.keys[i], failure));
        }
        let end = t0 + 10 * SECOND;
        let mut times: Vec<u64> = probes.iter().map(|p| t0 + p).collect();
        times.extend([t0, t0 + 1, end - 1]);
        times.sort_unstable();
        for t in times {
            assert_cooling(&s, &fleet, i, t, end);
        }
        assert_back(&s, &fleet, i, end);
    }

    /// Property 3: a rate limit with `Retry-After` d cools until `t0 + d`
    /// exactly, whether d is shorter or longer than the rule's duration
    /// (Dify: 60 s; the default policy: 30 s).
    #[test]
    fn retry_after_sets_the_end_of_the_cooldown(
        n in 2usize..=5,
        target in any::<Index>(),
        t0 in 0u64..1_000_000 * SECOND,
        retry_after in prop_oneof![
            1u64..30 * SECOND,
            Just(30 * SECOND),
            30 * SECOND..60 * SECOND,
            Just(60 * SECOND),
            60 * SECOND + 1..600 * SECOND,
        ],
        dify in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let fleet = build_fleet(&flat(n));
        let i = target.index(n);
        let policy = if dify { HealthPolicy::dify() } else { HealthPolicy::default() };
        let s = Selector::builder(&fleet.registry)
            .strategy(RoundRobin)
            .seed(seed)
            .health(policy.validated().expect("valid policy"))
            .build();
        let kind = FailureKind::rate_limited(Some(at(retry_after)));
        s.select(&only(&fleet, i, t0))
            .expect("healthy")
            .complete(Report::failure(at(t0), kind));
        let end = t0 + retry_after;
        prop_assert_eq!(s.health(at(t0))[i].available_at, Some(at(end)));
        assert_cooling(&s, &fleet, i, t0, end);
        assert_cooling(&s, &fleet, i, end - 1, end);
        assert_back(&s, &fleet, i, end);
    }
}

// ---------------------------------------------------------------------------
// Property 4: ejection, checked against a model of Envoy's documented rule

#[derive(Clone, Debug)]
enum EjectEvent {
    /// A report on deployment i.
    Report(Index, EjectOutcome),
    Advance(u64),
    ToNextReturn,
}

#[derive(Clone, Copy, Debug)]
enum EjectOutcome {
    Success,
    /// Server error, timeout or connection error.
    ServerSide(FailureKind),
    /// A failure that does not count toward ejection.
    Other(FailureKind),
}

fn eject_event() -> impl Strategy<Value = EjectEvent> {
    let outcome = prop_oneof![
        2 => Just(EjectOutcome::Success),
        8 => select(vec![
            FailureKind::ServerError,
            FailureKind::Timeout,
            FailureKind::ConnectionError
        ])
        .prop_map(EjectOutcome::ServerSide),
        1 => select(vec![
            FailureKind::BadRequest,
            FailureKind::rate_limited(None),
            FailureKind::NotFound
        ])
        .prop_map(EjectOutcome::Other),
    ];
    prop_oneof![
        12 => (any::<Index>(), outcome).prop_map(|(i, o)| EjectEvent::Report(i, o)),
        3 => prop_oneof![Just(0u64), Just(1u64), 1u64..40 * SECOND].prop_map(EjectEvent::Advance),
        1 => Just(EjectEvent::ToNextReturn),
    ]
}

/// The documented ejection rule, per deployment.
#[derive(Clone, Debug, Default)]
struct Modelled {
    run: u32,
    times: u32,
    last_end: u64,
    until: u64,
}

impl Modelled {
    fn decayed(&self, now: u64, interval: u64) -> u32 {
        if now > self.last_end {
            let k = (now - self.last_end) / interval;
            self.times
                .saturating_sub(u32::try_from(k).unwrap_or(u32::MAX))
        } else {
            self.times
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Property 4: at no time are more than `max(1, n × pct / 100)`
    /// deployments ejected, and every ejection, its length (`base × n`
    /// capped at `max`, `n` decaying by one per interval) and the snapshot's
    /// counters follow the documented rule.
    #[test]
    fn ejection_never_exceeds_its_share(
        n in 2usize..=12,
        max_percent in 0u8..=100,
        consecutive in 1u32..=4,
        base_s in 1u64..=20,
        max_mult in 1u64..=5,
        interval_s in 1u64..=15,
        start in 0u64..1_000_000 * SECOND,
        events in prop::collection::vec(eject_event(), 1..80),
    ) {
        let specs = flat(n);
        let fleet = build_fleet(&specs);
        let ej = { let mut e = Ejection::default(); e.consecutive_failures = consecutive; e.base = Duration::from_secs(base_s); e.max = Duration::from_secs(base_s * max_mult); e.max_percent = max_percent; e.interval = Duration::from_secs(interval_s); e };
        let mut policy = HealthPolicy::disabled();
        policy.ejection = Some(ej);
        let s = Selector::builder(&fleet.registry)
            .strategy(RoundRobin)
            .health(policy.validated().expect("valid policy"))
            .build();
        let allowed = (n * usize::from(max_percent) / 100).max(1);
        let interval = interval_s * SECOND;
        let mut model = vec![Modelled::default(); n];
        let mut now = start;
        for (step, ev) in events.iter().enumerate() {
            match *ev {
                EjectEvent::Report(i, outcome) => {
                    let i = i.index(n);
                    let report = match outcome {
                        EjectOutcome::Success => {
                            model[i].run = 0;
                            Report::success(at(now), Duration::from_millis(50))
                        }
                        EjectOutcome::Other(kind) => Report::failure(at(now), kind),
                        EjectOutcome::ServerSide(kind) => {
                            let ejected = model.iter().filter(|m| m.until > now).count();
                            let m = &mut model[i];
                            m.run += 1;
                            if m.run >= consecutive && m.until <= now && ejected < allowed {
                                let times = m.decayed(now, interval) + 1;
                                let length = (base_s * u64::from(times)).min(base_s * max_mult);
                                m.times = times;
                                m.until = now + length * SECOND;
                                m.last_end = m.until;
                                m.run = 0;
                            }
                            Report::failure(at(now), kind)
                        }
                    };
                    prop_assert!(s.report(&fleet.keys[i], report));
                }
                EjectEvent::Advance(d) => now += d,
                EjectEvent::ToNextReturn => {
                    if let Some(t) = model.iter().map(|m| m.until).filter(|&t| t > now).min() {
                        now = t;
                    }
                }
            }
            let health = s.health(at(now));
            let ejected = health.iter().filter(|h| h.state == State::Ejected).count();
            prop_assert!(
                ejected <= allowed,
                "step {}: {} of {} ejected, at most {} allowed", step, ejected, n, allowed
            );
            for (i, m) in model.iter().enumerate() {
                let h = fleet.snap(&health, i);
                let want_state = if m.until > now { State::Ejected } else { State::Healthy };
                prop_assert_eq!(h.state, want_state, "step {}: deployment {}", step, i);
                prop_assert_eq!(
                    h.available_at,
                    (m.until > now).then(|| at(m.until)),
                    "step {}: deployment {}", step, i
                );
                prop_assert_eq!(h.ejections, m.decayed(now, interval), "step {}: {}", step, i);
                // `disabled()` counts no failure kind toward cooldowns, so the
                // snapshot's counted run stays 0; the ejection run is separate.
                prop_assert_eq!(h.consecutive_failures, 0, "step {}: {}", step, i);
            }
        }
    }
}
