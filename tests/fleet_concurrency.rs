//! [`Fleet`] under concurrent selection while registry versions are
//! installed, and the state a swap keeps, drops and starts fresh.
//!
//! No loom model check: `Fleet` swaps versions with `arc-swap`, whose
//! internals are not loom-instrumented, so loom could not explore its
//! interleavings. The stress test below runs real threads instead: bounded
//! (fixed counts), no sleeps, no timing assertions; it only asserts what
//! every interleaving must satisfy.
//!
//! Stress (`picks_always_name_a_live_deployment`, once per built-in
//! strategy): three threads with their own [`FleetHandle`] and one on the
//! fleet's shared handle select and complete or drop picks while the main
//! thread installs a cycle of versions that add, remove, drain (weight 0)
//! and move (new endpoint, same key) deployments, by `install` and by
//! `apply`. The writer bumps `installing` before each install and
//! `installed` after it; a select that started when `installed` was `lo`
//! and returned when `installing` was `hi` ran on one version in
//! `lo..=hi`, so its pick must be a pickable deployment (weight > 0, same
//! endpoint, same contents) of one of those versions. Registry copies and
//! health snapshots read concurrently must each be exactly one version of
//! their window. After every thread joined and every pick was dropped,
//! nothing is in flight. Threads and writer keep loose pace (spinning with
//! `yield_now`, not sleeping): the writer installs the next version only
//! once a pick started on the current one, and a thread runs at most
//! `STEP` picks ahead of the writer, so every version really serves picks.
//! Every select must succeed: each version has a pickable deployment.
//!
//! Deterministic tests of `install` (one thread, explicit times):
//! - a cooling deployment stays cooling, its latency estimate and the
//!   in-flight count of a held pick carry over (and the pick releases it
//!   in the new version);
//! - an update that keeps the endpoint keeps health; one that changes the
//!   endpoint under the same key (`name+tag`) starts fresh, and the old
//!   pick's report and release do not touch the fresh state;
//! - a new deployment starts in slow start;
//! - a removed or drained deployment is never picked once `install`
//!   returns, also by a handle that cached the old version;
//! - a pick held across the removal of its deployment stays readable,
//!   drops safely, and its report goes nowhere (nor to the deployment when
//!   it is added back later);
//! - rotation positions continue across a swap (see
//!   `rotation_continues_across_a_swap` for exactly what is asserted);
//! - `install` returns the diff; a refused `apply` leaves the fleet as it
//!   was.

use std::collections::{HashSet, VecDeque};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use modelfleet::health::{FailureKind, HealthPolicy, Report, SlowStart, State};
use modelfleet::select::{
    BuiltinStrategy, ConsistentHash, Latency, LeastOutstanding, PowerOfTwo, RoundRobin,
    WeightedRandom, WeightedRoundRobin,
};
use modelfleet::{
    Change, Deployment, Discriminators, Error, Fleet, IdentityPolicy, ModelKey, OwnedPick, Policy,
    Registry, Request, Selector,
};

mod support;
use support::{key, ms, node, node_at, registry, secs};

// --------------------------------------------------------------------- stress

const WORKERS: usize = 3;
/// Versions installed per strategy.
const INSTALLS: usize = 600;
/// Picks per thread and version: a thread runs at most this many picks
/// ahead of the writer.
const STEP: usize = 12;
/// Picks per thread.
const PICKS: usize = INSTALLS * STEP;
/// Picks a thread holds before completing or dropping its oldest.
const HELD: usize = 4;

/// A `gpt-4` node under `name+tag`: the tag is the identity, so an endpoint
/// can change under the same key.
fn tagged(tag: &str, ip: &str, weight: u32) -> Deployment {
    Deployment::builder("openai", "gpt-4")
        .tag(tag)
        .endpoint(&format!("http://{ip}/v1"))
        .label("pool", "main")
        .weight(weight)
        .build()
        .unwrap()
}

fn tagged_registry(nodes: &[(&str, &str, u32)]) -> Registry {
    let mut reg = Registry::new(Policy::NAME_TAG);
    for &(tag, ip, weight) in nodes {
        reg.insert(tagged(tag, ip, weight)).unwrap();
    }
    reg
}

/// The cycle of versions the writer installs (version `i` is
/// `cycle[i % len]`); every version has a pickable deployment, and the last
/// one leads back to the first.
fn cycle() -> Vec<Registry> {
    vec![
        // 0: three nodes.
        tagged_registry(&[
            ("t0", "10.0.0.1", 1),
            ("t1", "10.0.0.2", 1),
            ("t2", "10.0.0.3", 2),
        ]),
        // 1: t3 added.
        tagged_registry(&[
            ("t0", "10.0.0.1", 1),
            ("t1", "10.0.0.2", 1),
            ("t2", "10.0.0.3", 2),
            ("t3", "10.0.0.4", 1),
        ]),
        // 2: t0 removed.
        tagged_registry(&[
            ("t1", "10.0.0.2", 1),
            ("t2", "10.0.0.3", 2),
            ("t3", "10.0.0.4", 1),
        ]),
        // 3: t1 drained.
        tagged_registry(&[
            ("t1", "10.0.0.2", 0),
            ("t2", "10.0.0.3", 2),
            ("t3", "10.0.0.4", 1),
        ]),
        // 4: t2 moved to another endpoint (same key), t0 back at the end.
        tagged_registry(&[
            ("t1", "10.0.0.2", 0),
            ("t2", "10.0.0.13", 2),
            ("t3", "10.0.0.4", 1),
            ("t0", "10.0.0.1", 1),
        ]),
        // 5: t1 back, t3 removed, t4 added, t0 heavier.
        tagged_registry(&[
            ("t1", "10.0.0.2", 1),
            ("t2", "10.0.0.13", 2),
            ("t0", "10.0.0.1", 3),
            ("t4", "10.0.0.5", 1),
        ]),
    ]
}

/// What every thread shares: the versions and the writer's two counters.
struct Versions {
    cycle: Vec<Registry>,
    /// Set to `i` before version `i` is installed.
    installing: AtomicUsize,
    /// Set to `i` after version `i` is installed.
    installed: AtomicUsize,
    /// The highest `installed` a select started from.
    seen: AtomicUsize,
    done: AtomicBool,
}

impl Versions {
    fn get(&self, i: usize) -> &Registry {
        &self.cycle[i % self.cycle.len()]
    }

    /// The versions a call that started at `lo` and returned at `hi` may
    /// have run on (at most one full cycle: they repeat).
    fn window(&self, lo: usize, hi: usize) -> impl Iterator<Item = &Registry> {
        (lo..=hi.min(lo + self.cycle.len())).map(|i| self.get(i))
    }

    /// Panics unless `pick` is a pickable deployment of a version in the window.
    #[track_caller]
    fn check_pick(&self, pick: &OwnedPick, lo: usize, hi: usize) {
        let ok = self.window(lo, hi).any(|reg| {
            reg.get(pick.key())
                .is_some_and(|d| d == pick.deployment() && d.weight() > 0)
        });
        assert!(
            ok,
            "picked {} ({:?}, weight {}), not pickable in any version {lo}..={hi}",
            pick.key(),
            pick.deployment().endpoint().map(|u| u.as_str()),
            pick.deployment().weight(),
        );
    }
}

/// The requests threads cycle through: plain (the precomputed fast path),
/// filtered (the checked path) and sticky.
fn stress_requests() -> Vec<Request> {
    vec![
        Request::new("gpt-4"),
        Request::new("gpt-4").label("pool", "main"),
        Request::new("gpt-4").affinity("user-1"),
        Request::new("gpt-4")
            .affinity("user-2")
            .label("pool", "main"),
    ]
}

/// One thread's loop: select through `select`, check, hold a few picks,
/// complete half of them and drop the others. Returns the number of picks.
///
/// Threads and writer go in loose lockstep: a thread waits before its pick
/// `n` until version `n / STEP` is installed, and the writer waits before
/// installing version `i` until a pick has started on version `i - 1`.
/// Neither can wait forever: the pick that lets the writer go is one the
/// threads are allowed to make.
fn serve(
    versions: &Versions,
    select: impl Fn(&Request) -> Result<OwnedPick, Error>,
    mut side: impl FnMut(usize, usize),
) -> usize {
    let requests = stress_requests();
    let mut held = VecDeque::new();
    for n in 0..PICKS {
        // Keep pace with the writer (a spin, not a sleep: no timing).
        while n >= (versions.installed.load(SeqCst) + 1) * STEP && !versions.done.load(SeqCst) {
            thread::yield_now();
        }
        let lo = versions.installed.load(SeqCst);
        let pick = select(&requests[n % requests.len()])
            .unwrap_or_else(|e| panic!("select failed at {lo}: {e}"));
        let hi = versions.installing.load(SeqCst);
        versions.check_pick(&pick, lo, hi);
        versions.seen.fetch_max(lo, SeqCst);
        held.push_back(pick);
        if held.len() > HELD {
            let oldest = held.pop_front().unwrap();
            if n % 2 == 0 {
                oldest.succeed(ms(n as u64), ms(20 + (n % 7) as u64));
            } else {
                drop(oldest);
            }
        }
        side(n, lo);
    }
    PICKS
}

fn stress(strategy: BuiltinStrategy) {
    let versions = Versions {
        cycle: cycle(),
        installing: AtomicUsize::new(0),
        installed: AtomicUsize::new(0),
        seen: AtomicUsize::new(0),
        done: AtomicBool::new(false),
    };
    let fleet = Fleet::new(versions.get(0).clone(), |b| b.strategy(strategy).seed(3));
    let start = Barrier::new(WORKERS + 2);
    let name = strategy.to_string();

    let picks = thread::scope(|scope| {
        let mut threads = Vec::new();
        for _ in 0..WORKERS {
            let (fleet, versions, start) = (&fleet, &versions, &start);
            threads.push(scope.spawn(move || {
                let handle = fleet.handle();
                start.wait();
                serve(versions, |r| handle.select(r), |_, _| {})
            }));
        }
        // The shared handle; also reads registry copies and health snapshots.
        {
            let (fleet, versions, start) = (&fleet, &versions, &start);
            threads.push(scope.spawn(move || {
                start.wait();
                serve(
                    versions,
                    |r| fleet.select(r),
                    |n, _| {
                        if n % 16 != 0 {
                            return;
                        }
                        let lo = versions.installed.load(SeqCst);
                        let reg = fleet.registry();
                        let health = fleet.health(ms(n as u64));
                        let hi = versions.installing.load(SeqCst);
                        assert!(
                            versions.window(lo, hi).any(|v| *v == reg),
                            "registry() is no version in {lo}..={hi}"
                        );
                        let keys: Vec<&ModelKey> = health.iter().map(|h| &h.key).collect();
                        assert!(
                            versions
                                .window(lo, hi)
                                .any(|v| v.keys().eq(keys.iter().copied())),
                            "a health snapshot mixes versions {lo}..={hi}: {keys:?}"
                        );
                    },
                )
            }));
        }

        // The writer.
        start.wait();
        for i in 1..=INSTALLS {
            // Every version serves at least one pick before the next.
            while versions.seen.load(SeqCst) < i - 1 {
                thread::yield_now();
            }
            let (old, new) = (versions.get(i - 1), versions.get(i));
            versions.installing.store(i, SeqCst);
            if i % 2 == 0 {
                let changes = fleet.install(new.clone(), ms(i as u64));
                assert_eq!(changes, old.diff(new), "{name}: install {i} returned");
            } else {
                fleet.apply(&old.diff(new), ms(i as u64)).unwrap();
            }
            versions.installed.store(i, SeqCst);
        }
        versions.done.store(true, SeqCst);

        threads
            .into_iter()
            .map(|t| match t.join() {
                Ok(n) => n,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect::<Vec<usize>>()
    });

    assert_eq!(picks, [PICKS; WORKERS + 1], "{name}");
    assert!(
        versions.seen.load(SeqCst) >= INSTALLS - 1,
        "{name}: versions served"
    );
    let last = versions.get(INSTALLS);
    assert_eq!(fleet.registry(), *last, "{name}: final registry");
    let selector = fleet.selector();
    for key in last.keys() {
        assert_eq!(selector.in_flight(key), Some(0), "{name}: {key} in flight");
    }
    for v in &versions.cycle {
        for key in v.keys().filter(|k| !last.contains(k)) {
            assert_eq!(selector.in_flight(key), None, "{name}: {key} is gone");
        }
    }
    let health = fleet.health(secs(1));
    assert_eq!(health.len(), last.len());
    for h in &health {
        assert_eq!(
            h.in_flight, 0,
            "{name}: {} in flight in the snapshot",
            h.key
        );
    }
}

#[test]
fn picks_always_name_a_live_deployment_round_robin() {
    stress(RoundRobin.into());
}

#[test]
fn picks_always_name_a_live_deployment_weighted_round_robin() {
    stress(WeightedRoundRobin::new().into());
}

#[test]
fn picks_always_name_a_live_deployment_weighted_random() {
    stress(WeightedRandom::new().into());
}

#[test]
fn picks_always_name_a_live_deployment_least_outstanding() {
    stress(LeastOutstanding.into());
}

#[test]
fn picks_always_name_a_live_deployment_power_of_two() {
    stress(PowerOfTwo::default().into());
}

#[test]
fn picks_always_name_a_live_deployment_consistent_hash() {
    stress(ConsistentHash::default().into());
}

/// `Latency::choose` reads each candidate's latency estimate twice (once to
/// find the fastest and whether any is unmeasured, once to filter); a report
/// completing on another thread between the two passes can move every
/// estimate past the limit, and the pick is then the fastest candidate of
/// the second pass: `select` never fails while a deployment is eligible.
#[test]
fn picks_always_name_a_live_deployment_latency() {
    stress(Latency::default().into());
}

#[test]
fn every_builtin_strategy_is_stressed() {
    // The tests above cover BuiltinStrategy::all(); a new strategy needs one.
    assert_eq!(BuiltinStrategy::all().len(), 7);
}

// ---------------------------------------------------------- deterministic

fn state_of(fleet: &Fleet, key: &ModelKey, now: Duration) -> State {
    fleet
        .health(now)
        .into_iter()
        .find(|h| h.key == *key)
        .unwrap_or_else(|| panic!("{key} not in the current version"))
        .state
}

fn rate_limited(at: Duration) -> Report {
    Report::failure(at, FailureKind::rate_limited(None))
}

#[test]
fn cooling_latency_and_in_flight_survive_install() {
    let (a, b) = (key("10.0.0.1"), key("10.0.0.2"));
    let fleet = Fleet::new(registry(&[node("10.0.0.1"), node("10.0.0.2")]), |bld| {
        bld.strategy(RoundRobin)
            .health(HealthPolicy::dify().validated().unwrap())
    });
    // A held pick of a, then a's latency, then a rate limit: cooling to 61 s.
    let held = fleet
        .select(&Request::new("gpt-4").exclude(b.clone()).at(secs(0)))
        .unwrap();
    assert_eq!(held.key(), &a);
    assert!(fleet.report(&a, Report::success(secs(1), ms(80))));
    assert!(fleet.report(&a, rate_limited(secs(1))));
    assert_eq!(state_of(&fleet, &a, secs(2)), State::Cooling);

    // v2: b updated in place (same endpoint), c added; a unchanged.
    let v2 = registry(&[
        node("10.0.0.1"),
        node("10.0.0.2").to_builder().weight(2).build().unwrap(),
        node("10.0.0.3"),
    ]);
    let changes = fleet.install(v2, secs(10));
    assert_eq!(changes.to_string(), format!("~ {b}\n+ {}", key("10.0.0.3")));

    let selector = fleet.selector();
    let health = fleet.health(secs(30));
    let ha = health.iter().find(|h| h.key == a).unwrap();
    assert_eq!(ha.state, State::Cooling);
    assert_eq!(ha.available_at, Some(secs(61)));
    assert_eq!(selector.latency(&a), Some(ms(80)), "latency estimate kept");
    assert_eq!(selector.in_flight(&a), Some(1), "held pick still counted");
    let handle = fleet.handle();
    for _ in 0..12 {
        let at30 = Request::new("gpt-4").at(secs(30));
        assert_ne!(fleet.select(&at30).unwrap().key(), &a);
        assert_ne!(handle.select(&at30).unwrap().key(), &a);
    }
    // Back exactly when the cooldown ends.
    let at61 = Request::new("gpt-4").at(secs(61));
    assert!((0..3).any(|_| fleet.select(&at61).unwrap().key() == &a));

    // The held pick releases its slot in the new version, and its report
    // reaches it.
    held.complete(Report::success(secs(62), ms(500)));
    assert_eq!(selector.in_flight(&a), Some(0));
    assert_eq!(selector.latency(&a), Some(ms(500)));
}

#[test]
fn endpoint_change_under_the_same_key_starts_fresh() {
    let fleet = Fleet::new(
        tagged_registry(&[("a", "10.0.0.1", 1), ("b", "10.0.0.2", 1)]),
        |bld| {
            bld.strategy(RoundRobin)
                .health(HealthPolicy::dify().validated().unwrap())
        },
    );
    let ka = Registry::new(Policy::NAME_TAG).key_of(&tagged("a", "10.0.0.1", 1));
    let kb = Registry::new(Policy::NAME_TAG).key_of(&tagged("b", "10.0.0.2", 1));
    let only_a = |at| Request::new("gpt-4").exclude(kb.clone()).at(at);

    let held = fleet.select(&only_a(secs(0))).unwrap();
    assert_eq!(held.key(), &ka);
    assert!(fleet.report(&ka, Report::success(secs(1), ms(80))));
    assert!(fleet.report(&ka, rate_limited(secs(2))));

    // Same endpoint, another weight: health, latency and in-flight kept.
    fleet.install(
        tagged_registry(&[("a", "10.0.0.1", 3), ("b", "10.0.0.2", 1)]),
        secs(5),
    );
    assert_eq!(state_of(&fleet, &ka, secs(10)), State::Cooling);
    assert_eq!(fleet.selector().latency(&ka), Some(ms(80)));
    assert_eq!(fleet.selector().in_flight(&ka), Some(1));

    // Same key, new endpoint: another server, fresh state.
    let changes = fleet.install(
        tagged_registry(&[("a", "10.0.0.9", 3), ("b", "10.0.0.2", 1)]),
        secs(6),
    );
    assert!(matches!(changes.as_slice(), [Change::Updated { key, .. }] if *key == ka));
    let selector = fleet.selector();
    assert_eq!(state_of(&fleet, &ka, secs(10)), State::Healthy);
    assert_eq!(selector.latency(&ka), None);
    assert_eq!(selector.in_flight(&ka), Some(0));

    // The new server serves; the old pick's release and report do not
    // touch its state.
    let fresh = fleet.select(&only_a(secs(10))).unwrap();
    assert_eq!(
        fresh.deployment().endpoint().unwrap().as_str(),
        "http://10.0.0.9/v1"
    );
    assert_eq!(
        held.deployment().endpoint().unwrap().as_str(),
        "http://10.0.0.1/v1"
    );
    assert_eq!(selector.in_flight(&ka), Some(1));
    held.complete(rate_limited(secs(11)));
    assert_eq!(
        selector.in_flight(&ka),
        Some(1),
        "old pick released the new state"
    );
    assert_eq!(
        state_of(&fleet, &ka, secs(12)),
        State::Healthy,
        "old report applied"
    );
    drop(fresh);
    assert_eq!(selector.in_flight(&ka), Some(0));
}

#[test]
fn new_deployment_starts_in_slow_start() {
    let mut health = HealthPolicy::disabled();
    health.slow_start = Some({
        let mut s = SlowStart::new(secs(60));
        s.aggression = 1.0;
        s.min_percent = 10.0;
        s
    });
    let fleet = Fleet::new(registry(&[node("10.0.0.1"), node("10.0.0.2")]), |b| {
        b.health(health.validated().unwrap())
    });
    // The first version's deployments do not ramp.
    assert!(
        fleet
            .health(secs(0))
            .iter()
            .all(|h| h.state == State::Healthy)
    );

    fleet.install(
        registry(&[node("10.0.0.1"), node("10.0.0.2"), node("10.0.0.3")]),
        secs(100),
    );
    let c = key("10.0.0.3");
    for h in fleet.health(secs(110)) {
        let want = if h.key == c {
            State::SlowStart
        } else {
            State::Healthy
        };
        assert_eq!(h.state, want, "{} at 110 s", h.key);
    }
    assert_eq!(state_of(&fleet, &c, secs(160)), State::Healthy, "ramp over");

    // A later install does not restart the ramp of a deployment it keeps.
    fleet.install(
        registry(&[
            node("10.0.0.1"),
            node("10.0.0.2"),
            node("10.0.0.3"),
            node("10.0.0.4"),
        ]),
        secs(150),
    );
    assert_eq!(state_of(&fleet, &c, secs(160)), State::Healthy);
    assert_eq!(
        state_of(&fleet, &key("10.0.0.4"), secs(160)),
        State::SlowStart
    );
}

#[test]
fn removed_and_drained_deployments_are_never_picked_after_install() {
    let fleet = Fleet::new(
        registry(&[node("10.0.0.1"), node("10.0.0.2"), node("10.0.0.3")]),
        |b| b.strategy(RoundRobin),
    );
    let handle = fleet.handle();
    let plain = Request::new("gpt-4");
    // Both the shared handle and `handle` serve (and cache) the old version.
    let mut seen = HashSet::new();
    for _ in 0..6 {
        seen.insert(fleet.select(&plain).unwrap().key().clone());
        seen.insert(handle.select(&plain).unwrap().key().clone());
    }
    assert_eq!(seen.len(), 3);

    // 10.0.0.2 removed, 10.0.0.3 drained, 10.0.0.4 added.
    fleet.install(
        registry(&[
            node("10.0.0.1"),
            node("10.0.0.3").to_builder().weight(0).build().unwrap(),
            node("10.0.0.4"),
        ]),
        secs(1),
    );
    let late = fleet.handle();
    let filtered = Request::new("gpt-4").provider("openai");
    let mut seen = HashSet::new();
    for _ in 0..30 {
        for req in [&plain, &filtered] {
            for pick in [
                fleet.select(req).unwrap(),
                handle.select(req).unwrap(),
                late.select(req).unwrap(),
            ] {
                seen.insert(pick.key().clone());
            }
        }
    }
    let want: HashSet<ModelKey> = [key("10.0.0.1"), key("10.0.0.4")].into();
    assert_eq!(seen, want);
    assert_eq!(fleet.selector().in_flight(&key("10.0.0.2")), None);
}

#[test]
fn pick_held_across_the_removal_of_its_deployment() {
    let (a, b) = (key("10.0.0.1"), key("10.0.0.2"));
    let fleet = Fleet::new(registry(&[node("10.0.0.1"), node("10.0.0.2")]), |bld| {
        bld.strategy(RoundRobin)
            .health(HealthPolicy::dify().validated().unwrap())
    });
    let handle = fleet.handle();
    let only_b = Request::new("gpt-4").exclude(a.clone()).at(secs(0));
    let completed = handle.select(&only_b).unwrap();
    let dropped = fleet.select(&only_b).unwrap();
    assert_eq!(fleet.selector().in_flight(&b), Some(2));

    fleet.install(registry(&[node("10.0.0.1")]), secs(1));
    // Still readable.
    assert_eq!(completed.key(), &b);
    assert_eq!(
        dropped.deployment().endpoint().unwrap().as_str(),
        "http://10.0.0.2/v1"
    );
    assert!(!fleet.report(&b, rate_limited(secs(2))), "b is gone");
    // Its report goes nowhere: a is untouched.
    completed.complete(Report::failure(secs(2), FailureKind::ConnectionError));
    let health = fleet.health(secs(3));
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].key, a);
    assert_eq!(health[0].state, State::Healthy);
    assert_eq!(health[0].consecutive_failures, 0);
    assert_eq!(health[0].in_flight, 0);

    // b comes back (same endpoint): fresh, and the pick still held from its
    // old life does not count against it.
    fleet.install(registry(&[node("10.0.0.1"), node("10.0.0.2")]), secs(4));
    assert_eq!(fleet.selector().in_flight(&b), Some(0));
    assert_eq!(fleet.selector().latency(&b), None);
    let again = fleet
        .select(&Request::new("gpt-4").exclude(a.clone()).at(secs(5)))
        .unwrap();
    drop(dropped);
    assert_eq!(fleet.selector().in_flight(&b), Some(1));
    drop(again);
    assert_eq!(fleet.selector().in_flight(&b), Some(0));
    assert_eq!(state_of(&fleet, &b, secs(5)), State::Healthy);
}

/// Rotation positions continue across a swap. What is asserted, for round
/// robin and weighted round robin, for a per-thread handle and for the
/// shared handle: a fleet that served `k` picks on version 1 and then
/// installed version 2 picks, from then on, exactly what a fleet built
/// directly on version 2 (same seed, same handle number) picks after its
/// own first `k` picks. That is, the handle's turn counter for the model is
/// carried over unchanged (not reset, not re-seeded), whether the
/// candidates stayed the same or one was added. When they stayed the same,
/// the sequence is also exactly the one without any swap, so every window
/// of `n` consecutive round-robin picks spanning the swap visits each of
/// the `n` deployments once.
#[test]
fn rotation_continues_across_a_swap() {
    let weighted = |ip: &str, w| node(ip).to_builder().weight(w).build().unwrap();
    let v1 = registry(&[
        weighted("10.0.0.1", 1),
        weighted("10.0.0.2", 2),
        weighted("10.0.0.3", 1),
    ]);
    // Same candidates, one label changed.
    let same = registry(&[
        weighted("10.0.0.1", 1),
        weighted("10.0.0.2", 2)
            .to_builder()
            .label("rack", "r2")
            .build()
            .unwrap(),
        weighted("10.0.0.3", 1),
    ]);
    // One more candidate.
    let grown = registry(&[
        weighted("10.0.0.1", 1),
        weighted("10.0.0.2", 2),
        weighted("10.0.0.3", 1),
        weighted("10.0.0.4", 3),
    ]);
    let req = Request::new("gpt-4");
    let strategies = [
        BuiltinStrategy::from(RoundRobin),
        WeightedRoundRobin::new().into(),
    ];

    for strategy in strategies {
        for v2 in [&same, &grown] {
            for k in [0usize, 1, 4, 7] {
                let make =
                    |reg: &Registry| Fleet::new(reg.clone(), |b| b.strategy(strategy).seed(11));
                let take =
                    |f: &dyn Fn() -> ModelKey, n: usize| (0..n).map(|_| f()).collect::<Vec<_>>();

                // Per-thread handle.
                let swapped = make(&v1);
                let h = swapped.handle();
                let before = take(&|| h.select(&req).unwrap().key().clone(), k);
                swapped.install(v2.clone(), secs(1));
                let after = take(&|| h.select(&req).unwrap().key().clone(), 12);

                let direct = make(v2);
                let hd = direct.handle();
                take(&|| hd.select(&req).unwrap().key().clone(), k);
                let want = take(&|| hd.select(&req).unwrap().key().clone(), 12);
                assert_eq!(after, want, "{strategy}, handle, {k} picks before the swap");

                // Shared handle.
                let swapped = make(&v1);
                take(&|| swapped.select(&req).unwrap().key().clone(), k);
                swapped.install(v2.clone(), secs(1));
                let after_shared = take(&|| swapped.select(&req).unwrap().key().clone(), 12);
                let direct = make(v2);
                take(&|| direct.select(&req).unwrap().key().clone(), k);
                let want = take(&|| direct.select(&req).unwrap().key().clone(), 12);
                assert_eq!(
                    after_shared, want,
                    "{strategy}, shared, {k} picks before the swap"
                );

                if std::ptr::eq(v2, &same) {
                    // Exactly the sequence without a swap.
                    let unswapped = make(&v1);
                    let hu = unswapped.handle();
                    let whole = take(&|| hu.select(&req).unwrap().key().clone(), k + 12);
                    let mut got = before.clone();
                    got.extend(after.iter().cloned());
                    assert_eq!(got, whole, "{strategy}, {k} picks before the swap");
                    if strategy == RoundRobin.into() {
                        for w in got.windows(3) {
                            let distinct: HashSet<_> = w.iter().collect();
                            assert_eq!(distinct.len(), 3, "{strategy}: window {w:?}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn install_returns_the_diff_and_a_refused_apply_changes_nothing() {
    let v1 = registry(&[node("10.0.0.1"), node("10.0.0.2")]);
    let v2 = registry(&[node("10.0.0.2"), node("10.0.0.3")]);
    let fleet = Fleet::new(v1.clone(), |b| b);
    assert_eq!(fleet.install(v2.clone(), secs(1)), v1.diff(&v2));
    assert_eq!(fleet.registry(), v2);
    assert!(fleet.install(v2.clone(), secs(2)).is_empty());

    let before = fleet.selector();
    let bad = vec![
        Change::removed(key("10.0.0.2")),
        Change::removed(key("10.0.0.1")),
    ]
    .into();
    match fleet.apply(&bad, secs(3)) {
        Err(Error::InvalidChange { index, key: k, .. }) => {
            assert_eq!(index, 1);
            assert_eq!(*k, key("10.0.0.1"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fleet.registry(), v2);
    assert!(
        std::sync::Arc::ptr_eq(&before, &fleet.selector()),
        "a refused apply swapped the selector"
    );
    assert!(fleet.select(&Request::new("gpt-4")).is_ok());
}

/// Requests without a time are judged at the latest report time the
/// selector has seen. Reports of picks made through a `FleetHandle` must
/// move that time forward, or a deployment that cooled once is never a
/// candidate again for that handle's time-less requests.
#[test]
fn handle_requests_without_time_follow_report_time() {
    let (a, b) = (key("10.0.0.1"), key("10.0.0.2"));
    let fleet = Fleet::new(registry(&[node("10.0.0.1"), node("10.0.0.2")]), |bld| {
        bld.strategy(RoundRobin)
            .health(HealthPolicy::dify().validated().unwrap())
    });
    let handle = fleet.handle();
    let pick = handle
        .select(&Request::new("gpt-4").exclude(b.clone()))
        .unwrap();
    assert_eq!(pick.key(), &a);
    pick.complete(rate_limited(secs(1))); // a cools until 61 s
    let pick = handle
        .select(&Request::new("gpt-4").exclude(a.clone()))
        .unwrap();
    pick.complete(Report::success(secs(100), ms(50))); // time is now 100 s

    // The shared handle follows report time: a is back.
    assert!((0..2).any(|_| fleet.select(&Request::new("gpt-4")).unwrap().key() == &a));
    // So must the handle whose picks made both reports.
    let picked: Vec<ModelKey> = (0..4)
        .map(|_| handle.select(&Request::new("gpt-4")).unwrap().key().clone())
        .collect();
    assert!(picked.contains(&a), "a never picked again: {picked:?}");
}

/// A report can land on the old version after the new one was built: a
/// `OwnedPick::complete` that loaded the old version just before the swap,
/// or a caller still holding the old `Selector`. The deployment's state is
/// shared, and so must be the news that its tier is no longer all healthy:
/// the new version must not pick it while it cools, though nothing was
/// reported to the new version itself.
#[test]
fn report_on_the_old_version_after_rebuild_reaches_the_new_one() {
    for priority_moves in [false, true] {
        let (a, b) = (key("10.0.0.1"), key("10.0.0.2"));
        let v1 = registry(&[node("10.0.0.1"), node("10.0.0.2")]);
        let old = Selector::builder(&v1)
            .strategy(RoundRobin)
            .health(HealthPolicy::dify().validated().unwrap())
            .build();
        // v2: the same two deployments (a possibly moved to another
        // priority with b), plus a third in a backup tier.
        let moved = |d: Deployment| {
            if priority_moves {
                d.to_builder().priority(3).build().unwrap()
            } else {
                d
            }
        };
        let v2 = registry(&[
            moved(node("10.0.0.1")),
            moved(node("10.0.0.2")),
            node("10.0.0.3").to_builder().priority(7).build().unwrap(),
        ]);
        let new = old.rebuild(&v2, secs(0));
        // After the rebuild, a is rate limited through the old version.
        assert!(old.report(&a, rate_limited(secs(1))));
        let at = Request::new("gpt-4").at(secs(2));
        for _ in 0..8 {
            let pick = new.select(&at).unwrap();
            assert_eq!(pick.key(), &b, "priority moves: {priority_moves}");
        }
        let health = new.health(secs(2));
        assert_eq!(
            health.iter().find(|h| h.key == a).unwrap().state,
            State::Cooling
        );
    }
}

// ------------------------------------------- reports through older versions
//
// Every version's tiers skip health checks while their flag says nothing is
// disturbed. A report applied through any older version (a pick held across
// several rebuilds, or a sibling version built from the same one) must
// raise the flag of the tier the deployment is in now.

fn failed_at(t: u64) -> Report {
    Report::failure(secs(t), FailureKind::ConnectionError)
}
/// The keys of `n` picks from `sel` at `t` seconds.
fn picks_at(sel: &Selector, t: u64, n: usize) -> Vec<ModelKey> {
    let request = Request::new("gpt-4").at(secs(t));
    (0..n)
        .map(|_| sel.select(&request).unwrap().key().clone())
        .collect()
}

/// A pick held from v1 across two rebuilds; the deployment moved priority
/// in v2 and stays in v3. Its failure, reported through v1, must keep v3
/// from picking it while it cools.
#[test]
fn report_through_v1_reaches_v3_after_a_move() {
    let (a, d) = (key("a"), key("d"));
    let v1r = registry(&[node_at("a", 0), node_at("d", 1)]);
    let v1 = Selector::builder(&v1r)
        .strategy(RoundRobin)
        .health(HealthPolicy::dify().validated().unwrap())
        .build();
    let held = v1
        .select(&Request::new("gpt-4").exclude(a.clone()).at(secs(0)))
        .unwrap();
    assert_eq!(held.key(), &d);
    let v23 = registry(&[node_at("a", 1), node_at("d", 0)]); // d moves to tier 0
    let v2 = v1.rebuild(&v23, secs(0));
    let v3 = v2.rebuild(&v23, secs(0));
    held.complete(failed_at(1)); // d cools until 11 s
    let at = Request::new("gpt-4").at(secs(2));
    assert_eq!(v2.select(&at).unwrap().key(), &a, "v2");
    assert_eq!(v3.select(&at).unwrap().key(), &a, "v3 picked the cooling d");
}

/// A disturbed tier keeps a record of which members picks must test,
/// valid until a report changes some member's health. A report through an
/// older version, on a deployment that the newer version moved into an
/// already disturbed tier, must make the newer version test it again.
#[test]
fn report_through_v1_renews_the_health_record_of_v2() {
    let (x, y, z) = (key("x"), key("y"), key("z"));
    let v1 = Selector::builder(&registry(&[
        node_at("x", 0),
        node_at("y", 1),
        node_at("z", 1),
    ]))
    .strategy(RoundRobin)
    .health(HealthPolicy::dify().validated().unwrap())
    .build();
    // v2: x joins y and z in priority 1, the only tier.
    let v2 = v1.rebuild(
        &registry(&[node_at("x", 1), node_at("y", 1), node_at("z", 1)]),
        secs(0),
    );
    // y cools; v2's picks record that only y needs testing.
    assert!(v2.report(&y, failed_at(1)));
    let before = picks_at(&v2, 2, 4);
    assert!(before.contains(&x) && !before.contains(&y), "{before:?}");
    // x fails, reported through v1, where it is in another tier.
    assert!(v1.report(&x, failed_at(2)));
    let after = picks_at(&v2, 3, 4);
    assert!(
        after.iter().all(|k| k == &z),
        "v2 picked a cooling deployment: {after:?}"
    );
}

/// The other way: a report through the newer version, on a deployment it
/// moved away from the older version's disturbed tier, must make the older
/// version test it again; also when the tier is disturbed only by a member
/// with a limit.
#[test]
fn report_through_v2_renews_the_health_record_of_v1() {
    for limited in [false, true] {
        let (a, b, d) = (key("a"), key("b"), key("d"));
        let second = if limited {
            // A limit no pick here reaches: it only keeps the tier checked.
            node_at("b", 0).to_builder().rpm(1_000_000).build().unwrap()
        } else {
            node_at("b", 0)
        };
        let v1 = Selector::builder(&registry(&[
            node_at("a", 0),
            second.clone(),
            node_at("d", 0),
        ]))
        .strategy(RoundRobin)
        .health(HealthPolicy::dify().validated().unwrap())
        .build();
        let v2 = v1.rebuild(
            &registry(&[node_at("a", 0), second, node_at("d", 1)]),
            secs(0),
        );
        if !limited {
            assert!(v1.report(&b, failed_at(1)));
        }
        let before = picks_at(&v1, 2, 6);
        assert!(before.contains(&d), "{before:?}");
        assert!(v2.report(&d, failed_at(2)));
        for k in picks_at(&v1, 3, 6) {
            assert!(k != d, "v1 picked the cooling d (limited tier: {limited})");
            assert!(limited || k == a, "{k}");
        }
    }
}

/// An intermediate version: v1 has d at priority 0, v2 at 1 (with c and e),
/// v3 (built last) at 2. d's failure, reported through v1, must reach v2's
/// record, though the report raises neither of v2's flags.
#[test]
fn report_through_v1_renews_the_health_record_of_an_intermediate_version() {
    let (c, d, e) = (key("c"), key("d"), key("e"));
    let v1 = Selector::builder(&registry(&[
        node_at("d", 0),
        node_at("c", 1),
        node_at("e", 1),
    ]))
    .strategy(RoundRobin)
    .health(HealthPolicy::dify().validated().unwrap())
    .build();
    let v2 = v1.rebuild(
        &registry(&[node_at("d", 1), node_at("c", 1), node_at("e", 1)]),
        secs(0),
    );
    let _v3 = v2.rebuild(
        &registry(&[node_at("d", 2), node_at("c", 1), node_at("e", 1)]),
        secs(0),
    );
    assert!(v2.report(&c, failed_at(1)));
    let before = picks_at(&v2, 2, 4);
    assert!(before.contains(&d) && !before.contains(&c), "{before:?}");
    assert!(v1.report(&d, failed_at(2)));
    let after = picks_at(&v2, 3, 6);
    assert!(
        after.iter().all(|k| k == &e),
        "v2 picked a cooling deployment: {after:?}"
    );
}

/// Sibling versions: v2 and v3 both rebuilt from v1. A report through v2
/// on a deployment that v2 moved to a new priority must reach v3.
#[test]
fn report_through_sibling_reaches_v3() {
    let (a, d) = (key("a"), key("d"));
    let base = registry(&[node_at("a", 0), node_at("d", 0)]);
    let v1 = Selector::builder(&base)
        .strategy(RoundRobin)
        .health(HealthPolicy::dify().validated().unwrap())
        .build();
    let v2 = v1.rebuild(&registry(&[node_at("a", 0), node_at("d", 5)]), secs(0));
    let v3 = v1.rebuild(&base, secs(0)); // e.g. a rollback from the base version
    let held = v2
        .select(&Request::new("gpt-4").exclude(a.clone()).at(secs(0)))
        .unwrap();
    assert_eq!(held.key(), &d);
    held.complete(failed_at(1));
    let at = Request::new("gpt-4").at(secs(2));
    for _ in 0..4 {
        assert_eq!(v3.select(&at).unwrap().key(), &a, "v3 picked the cooling d");
    }
}

/// Priority disappears and reappears: v1 d@1, v2 d@0, v3 d@1, v4 d@1.
#[test]
fn priority_disappears_and_reappears() {
    let (a, d) = (key("a"), key("d"));
    let v1 = Selector::builder(&registry(&[node_at("a", 2), node_at("d", 1)]))
        .strategy(RoundRobin)
        .health(HealthPolicy::dify().validated().unwrap())
        .build();
    let held = v1.select(&Request::new("gpt-4").at(secs(0))).unwrap();
    assert_eq!(held.key(), &d);
    let v2 = v1.rebuild(&registry(&[node_at("a", 2), node_at("d", 0)]), secs(0));
    let r = registry(&[node_at("a", 2), node_at("d", 1)]);
    let v3 = v2.rebuild(&r, secs(0));
    let v4 = v3.rebuild(&r, secs(0));
    held.complete(failed_at(1));
    let at = Request::new("gpt-4").at(secs(2));
    assert_eq!(v3.select(&at).unwrap().key(), &a, "v3");
    assert_eq!(v4.select(&at).unwrap().key(), &a, "v4 picked the cooling d");
}

/// A custom identity policy whose key ignores the model name's case: the
/// deployment keeps its state across a model rename but changes model group.
#[derive(Debug)]
struct Ci;
impl IdentityPolicy for Ci {
    fn key(&self, d: &Deployment) -> ModelKey {
        ModelKey::new(d.provider(), &d.model().to_lowercase())
            .and_then(|k| k.with_endpoint(d.endpoint()))
            .unwrap_or_else(|_| ModelKey::for_deployment(d, Discriminators::ENDPOINT))
    }
}
#[test]
fn model_rename_keeps_state_and_health_checks() {
    let mk = |m: &str, ip: &str, p: u32| {
        Deployment::builder("openai", m)
            .endpoint(&format!("http://{ip}/v1"))
            .priority(p)
            .build()
            .unwrap()
    };
    let mut r1 = Registry::new(Ci);
    r1.insert(mk("GPT-4", "d", 0)).unwrap();
    r1.insert(mk("gpt-4", "a", 1)).unwrap();
    let v1 = Selector::builder(&r1)
        .strategy(RoundRobin)
        .health(HealthPolicy::dify().validated().unwrap())
        .build();
    let held = v1.select(&Request::new("GPT-4").at(secs(0))).unwrap();
    let dk = held.key().clone();
    let mut r2 = Registry::new(Ci);
    r2.insert(mk("gpt-4", "d", 0)).unwrap();
    r2.insert(mk("gpt-4", "a", 1)).unwrap();
    let v2 = v1.rebuild(&r2, secs(0));
    held.complete(failed_at(1));
    let h = v2.health(secs(2));
    assert_eq!(
        h.iter().find(|x| x.key == dk).unwrap().state,
        modelfleet::health::State::Cooling
    );
    assert_ne!(
        v2.select(&Request::new("gpt-4").at(secs(2))).unwrap().key(),
        &dk,
        "v2 picked the cooling d"
    );
}
