//! What async services need of a fleet, proven without a runtime (the
//! core has none): owned picks that outlive the borrow and report exactly
//! once, a shared handle whose rotation stays exact across threads, fleet
//! plans that follow installs and judge each attempt at its own time, a
//! clock for requests without a time, and drains.
//!
//! Threads stand in for tasks: a task that migrates between threads is, to
//! the fleet, a pick made on one thread and completed on another. Loops are
//! bounded; threads meet on barriers and channels, never sleeps.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use modelfleet::health::{FailureKind, HealthPolicy, Report};
use modelfleet::select::{RoundRobin, WeightedRoundRobin};
use modelfleet::{
    Deployment, Error, Fleet, ManualClock, ModelKey, OwnedPick, Policy, Registry, Request, Selector,
};
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn node(i: usize, weight: u32) -> Deployment {
    Deployment::builder("openai", "gpt-4")
        .endpoint(&format!("http://10.0.0.{i}/v1"))
        .weight(weight)
        .build()
        .unwrap()
}

fn registry(weights: &[u32]) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, &w) in weights.iter().enumerate() {
        reg.insert(node(i + 1, w)).unwrap();
    }
    reg
}

fn key(i: usize) -> ModelKey {
    format!("openai/gpt-4@http://10.0.0.{i}/v1")
        .parse()
        .unwrap()
}

fn total_in_flight(fleet: &Fleet) -> u32 {
    let reg = fleet.registry();
    reg.keys().map(|k| fleet.in_flight(k).unwrap()).sum()
}

/// A pick moves into another thread (as into a spawned task or a response
/// body), outlives every borrow of the fleet, and its report reaches the
/// fleet there.
#[test]
fn owned_pick_completes_on_another_thread() {
    let fleet = Fleet::new(registry(&[1]), |b| b);
    let pick = fleet.select(&Request::new("gpt-4")).unwrap();
    let (k, reader) = (pick.key().clone(), fleet.clone());
    thread::spawn(move || pick.succeed(ms(1_000), ms(70)))
        .join()
        .unwrap();
    assert_eq!(reader.selector().latency(&k), Some(ms(70)));
    assert_eq!(reader.in_flight(&k), Some(0));

    // The same from an `Arc<Selector>`.
    let selector = Arc::new(Selector::new(&registry(&[1]), RoundRobin));
    let pick = selector.select_owned(&Request::new("gpt-4")).unwrap();
    let k = pick.key().clone();
    assert_eq!(selector.in_flight(&k), Some(1));
    thread::spawn(move || pick.succeed(ms(1_000), ms(40)))
        .join()
        .unwrap();
    assert_eq!(selector.latency(&k), Some(ms(40)));
    assert_eq!(selector.in_flight(&k), Some(0));
}

/// One step of [`owned_picks_report_exactly_once`].
#[derive(Clone, Debug)]
enum Step {
    Select,
    /// Complete the held pick at this index (modulo) with a failure.
    Fail(usize),
    /// Drop the held pick at this index (modulo) without a report.
    Drop(usize),
    /// Install a version with these weights (0: drained; fewer nodes:
    /// removed).
    Install(Vec<u32>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Select),
        2 => any::<usize>().prop_map(Step::Fail),
        2 => any::<usize>().prop_map(Step::Drop),
        1 => prop::collection::vec(0u32..4, 1..5).prop_map(Step::Install),
    ]
}

proptest! {
    /// Completing or dropping an owned pick releases its slot exactly once,
    /// whatever versions come and go meanwhile: the in-flight count of every
    /// deployment is always the number of its picks held since it was last
    /// added (a deployment removed and added back starts fresh; picks of
    /// the old one release the old count), and nothing stays in flight at
    /// the end.
    #[test]
    fn owned_picks_release_exactly_once(steps in prop::collection::vec(step(), 1..80)) {
        let health = HealthPolicy::disabled().validated().unwrap();
        let fleet = Fleet::new(registry(&[1, 1, 1]), move |b| b.health(health));
        // Each held pick with the generation of its deployment when picked.
        let mut held: Vec<(OwnedPick, u32)> = Vec::new();
        let mut generation: BTreeMap<ModelKey, u32> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Select => {
                    if let Ok(p) = fleet.select(&Request::new("gpt-4").at(ms(1))) {
                        let g = generation.get(p.key()).copied().unwrap_or(0);
                        held.push((p, g));
                    }
                }
                Step::Fail(i) if !held.is_empty() => {
                    let (p, _) = held.swap_remove(i % held.len());
                    p.complete(Report::failure(ms(1), FailureKind::ServerError));
                }
                Step::Drop(i) if !held.is_empty() => drop(held.swap_remove(i % held.len())),
                Step::Install(weights) => {
                    let before = fleet.registry();
                    let next = registry(&weights);
                    for k in before.keys().filter(|k| !next.contains(k)) {
                        *generation.entry(k.clone()).or_default() += 1;
                    }
                    fleet.install(next, ms(1));
                }
                _ => {}
            }
            let reg = fleet.registry();
            for k in reg.keys() {
                let g = generation.get(k).copied().unwrap_or(0);
                let mine = held.iter().filter(|(p, pg)| p.key() == k && *pg == g).count() as u32;
                prop_assert_eq!(fleet.in_flight(k), Some(mine), "{}", k);
            }
        }
        held.clear();
        prop_assert_eq!(total_in_flight(&fleet), 0);
    }
}

/// A failure reported through an owned pick counts once, dropping counts
/// nothing: the consecutive-failure count says so.
#[test]
fn drop_reports_nothing_and_complete_reports_once() {
    let fleet = Fleet::new(registry(&[1]), |b| b);
    let failures = |fleet: &Fleet| fleet.health(ms(10))[0].consecutive_failures;
    drop(fleet.select(&Request::new("gpt-4")).unwrap());
    assert_eq!(failures(&fleet), 0);
    let pick = fleet.select(&Request::new("gpt-4")).unwrap();
    pick.complete(Report::failure(ms(5), FailureKind::ServerError));
    assert_eq!(failures(&fleet), 1);
}

/// Clones of one handle, on several threads, take consecutive turns of one
/// rotation: over a whole number of periods the split is exactly the
/// weights, though no thread makes a whole period by itself. (Separate
/// handles would each start at their own seeded position and leave partial
/// periods.)
#[test]
fn a_shared_handle_keeps_weighted_rotation_exact_across_threads() {
    let weights = [5u32, 3, 1, 7];
    let period: usize = weights.iter().map(|&w| w as usize).sum();
    let fleet = Fleet::new(registry(&weights), |b| {
        b.strategy(WeightedRoundRobin::new()).seed(3)
    });
    for shared_by_clones in [true, false] {
        let handle = fleet.handle();
        let threads = 4;
        // 4 × 53 = 212 = 13 periods of 16 + 4: drop the last 4 by taking
        // 13 × 16 picks in total, split unevenly across threads.
        let per_thread = [53usize, 52, 51, 52];
        assert_eq!(per_thread.iter().sum::<usize>(), 13 * period);
        let barrier = Arc::new(Barrier::new(threads));
        let workers: Vec<_> = per_thread
            .iter()
            .map(|&n| {
                let handle = if shared_by_clones {
                    handle.clone()
                } else {
                    fleet.handle()
                };
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    (0..n)
                        .map(|_| handle.select(&Request::new("gpt-4")).unwrap().key().clone())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut counts: BTreeMap<ModelKey, usize> = BTreeMap::new();
        for w in workers {
            for k in w.join().unwrap() {
                *counts.entry(k).or_default() += 1;
            }
        }
        let exact = weights
            .iter()
            .enumerate()
            .all(|(i, &w)| counts.get(&key(i + 1)) == Some(&(13 * w as usize)));
        assert_eq!(exact, shared_by_clones, "{counts:?}");
    }
}

/// The fleet's own handle is shared by every clone of the fleet: the same
/// exactness through `Fleet::select` on many threads.
#[test]
fn fleet_select_rotation_is_exact_across_clones() {
    let weights = [2u32, 1, 4];
    let fleet = Fleet::new(registry(&weights), |b| {
        b.strategy(WeightedRoundRobin::new())
    });
    let workers: Vec<_> = [10usize, 25, 21]
        .iter()
        .map(|&n| {
            let fleet = fleet.clone();
            thread::spawn(move || {
                (0..n)
                    .map(|_| fleet.select(&Request::new("gpt-4")).unwrap().key().clone())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut counts: BTreeMap<ModelKey, usize> = BTreeMap::new();
    for w in workers {
        for k in w.join().unwrap() {
            *counts.entry(k).or_default() += 1;
        }
    }
    for (i, &w) in weights.iter().enumerate() {
        assert_eq!(counts[&key(i + 1)], 8 * w as usize);
    }
}

proptest! {
    /// A fleet plan never offers a deployment twice, and never one that
    /// is not in the version current at the attempt, whatever is installed
    /// between attempts (nodes removed, added back, drained, reweighted).
    #[test]
    fn fleet_plans_follow_installs_and_never_repeat(
        versions in prop::collection::vec(prop::collection::vec(0u32..3, 1..6), 1..8),
    ) {
        let fleet = Fleet::new(registry(&[1, 1, 1, 1, 1]), |b| b.strategy(RoundRobin));
        let mut plan = fleet.plan(&Request::new("gpt-4"));
        let mut seen = HashSet::new();
        for (attempt, weights) in versions.iter().enumerate() {
            fleet.install(registry(weights), ms(attempt as u64));
            let current = fleet.registry();
            match plan.next_at(ms(attempt as u64)) {
                Ok(pick) => {
                    let k = pick.key().clone();
                    prop_assert!(seen.insert(k.clone()), "repeated {}", k);
                    let d = current.get(&k);
                    prop_assert!(d.is_some_and(|d| d.weight() > 0), "{} not pickable now", k);
                }
                Err(e) => {
                    // Only when every pickable deployment was tried.
                    let untried = current
                        .iter()
                        .filter(|(k, d)| d.weight() > 0 && !seen.contains(*k))
                        .count();
                    prop_assert_eq!(untried, 0, "{}", e);
                }
            }
        }
        prop_assert_eq!(plan.tried().count(), seen.len());
    }
}

/// Each attempt is judged at its own time: a deployment that was cooling
/// at the first attempt is offered once its cooldown ended, before the
/// fallback model; the exhausted plan says when something returns.
#[test]
fn fleet_plan_judges_each_attempt_at_its_time() {
    let mut reg = registry(&[1, 1]);
    reg.insert(
        Deployment::builder("openai", "gpt-4o-mini")
            .endpoint("http://10.0.1.1/v1")
            .build()
            .unwrap(),
    )
    .unwrap();
    let fleet = Fleet::new(reg, |b| b.strategy(RoundRobin));
    let limited = |s| FailureKind::rate_limited(Some(Duration::from_secs(s)));
    fleet.report(&key(2), Report::failure(ms(0), limited(10)));
    let mut plan = fleet.plan(&Request::new("gpt-4").fallback("gpt-4o-mini"));
    let first = plan.next_at(ms(1_000)).unwrap();
    assert_eq!(first.key(), &key(1));
    first.complete(Report::failure(ms(1_000), limited(60)));
    // Node 2 is back at 10 s: preferred to the fallback.
    assert_eq!(plan.next_at(ms(10_000)).unwrap().key(), &key(2));
    let third = plan.next_at(ms(10_001)).unwrap();
    assert_eq!(third.deployment().model(), "gpt-4o-mini");
    third.complete(Report::failure(ms(10_001), limited(5)));
    match plan.next_at(ms(10_002)) {
        Err(Error::NoEligible { model, .. }) => assert_eq!(model, "gpt-4"),
        other => panic!("{other:?}"),
    }
    // An Arc'd fleet plan lives in another thread (a retrying task).
    let mut plan = fleet.plan(&Request::new("gpt-4"));
    let got = thread::spawn(move || plan.next_at(ms(10_003)).map(|p| p.key().clone()))
        .join()
        .unwrap();
    match got {
        // Node 1 cools until 61 s, node 2 was never reported after its
        // cooldown: it serves.
        Ok(k) => assert_eq!(k, key(2)),
        Err(e) => panic!("{e}"),
    }
}

/// The selector's own plan takes a time per attempt too, and reports why
/// it ran out.
#[test]
fn selector_plan_next_at_says_why() {
    let reg = registry(&[1, 1]);
    let s = Selector::new(&reg, RoundRobin);
    s.report(
        &key(2),
        Report::failure(ms(0), FailureKind::rate_limited(Some(ms(5_000)))),
    );
    let mut plan = s.plan(&Request::new("gpt-4"));
    assert_eq!(plan.next_at(ms(1)).unwrap().key(), &key(1));
    match plan.next_at(ms(2)) {
        Err(Error::Unavailable { retry_at, .. }) => assert_eq!(retry_at, Some(ms(5_000))),
        other => panic!("{other:?}"),
    }
    assert_eq!(plan.next_at(ms(5_000)).unwrap().key(), &key(2));
}

/// A fleet with a clock judges requests without a time at the clock: a
/// rate-limited deployment comes back when the clock passes its
/// `Retry-After`, with no report in between. Without the clock, the
/// latest report time stands still and it stays out.
#[test]
fn a_fleet_clock_ends_cooldowns_without_reports() {
    let clock = Arc::new(ManualClock::new());
    let with_clock = Fleet::builder(registry(&[1]))
        .clock(Arc::clone(&clock))
        .build();
    let without = Fleet::new(registry(&[1]), |b| b);
    for fleet in [&with_clock, &without] {
        let limited = Report::failure(ms(0), FailureKind::rate_limited(Some(ms(2_000))));
        fleet.report(&key(1), limited);
        assert!(matches!(
            fleet.select(&Request::new("gpt-4")),
            Err(Error::Unavailable { .. })
        ));
    }
    clock.advance(ms(2_000));
    assert!(with_clock.select(&Request::new("gpt-4")).is_ok());
    assert!(without.select(&Request::new("gpt-4")).is_err());
    // A request's own time still wins over the clock.
    assert!(
        with_clock
            .select(&Request::new("gpt-4").at(ms(1_000)))
            .is_err()
    );
    // A plan without a time per attempt reads the clock at each attempt.
    let mut plan = with_clock.plan(&Request::new("gpt-4").at(ms(1_000)));
    assert!(plan.next_now().is_ok());
}

/// Drain under load: threads select and complete picks while the main
/// thread drains one node. Every pick a thread starts after it saw the
/// drain return avoids the node; picks of it made before finish normally;
/// the drain sees them end, then removes the node; nothing stays in
/// flight.
#[test]
fn drain_under_load_stops_new_picks_and_keeps_in_flight_ones() {
    let fleet = Fleet::new(registry(&[1, 1, 1]), |b| b.strategy(RoundRobin));
    let drained = Arc::new(AtomicBool::new(false));
    let (held_tx, held_rx) = mpsc::channel::<OwnedPick>();
    let threads = 3;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (fleet, drained, barrier, held_tx) = (
                fleet.clone(),
                Arc::clone(&drained),
                Arc::clone(&barrier),
                held_tx.clone(),
            );
            thread::spawn(move || {
                let handle = fleet.handle();
                let mut after = 0;
                for i in 0..2_000 {
                    if i == 100 || i == 1_000 {
                        // At 100 the main thread starts draining while the
                        // threads go on; at 1,000 they wait until the drain
                        // returned.
                        barrier.wait();
                    }
                    let was_drained = drained.load(SeqCst);
                    let pick = handle.select(&Request::new("gpt-4")).unwrap();
                    if was_drained {
                        assert_ne!(pick.key(), &key(2), "picked after the drain");
                        after += 1;
                    }
                    // Some picks of the node stay in flight across the drain.
                    if i == 50 + t && pick.key() == &key(2) || i < 3 && pick.key() == &key(2) {
                        held_tx.send(pick).unwrap();
                    } else {
                        pick.succeed(ms(i as u64), ms(1));
                    }
                }
                after
            })
        })
        .collect();
    drop(held_tx);
    barrier.wait();
    let drain = fleet.drain(&key(2), ms(100)).unwrap();
    drained.store(true, SeqCst);
    barrier.wait();
    let after: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(after >= 3 * 1_000, "{after}");
    let held: Vec<OwnedPick> = held_rx.iter().collect();
    assert!(!held.is_empty());
    assert_eq!(drain.in_flight(), held.len() as u32);
    assert!(!drain.is_idle());
    for pick in held {
        assert!(!drain.is_idle());
        pick.succeed(ms(3_000), ms(5)); // in-flight picks finish normally
    }
    assert!(drain.is_idle());
    let changes = drain.remove(ms(3_000)).unwrap();
    assert_eq!(changes.len(), 1);
    assert!(!fleet.registry().contains(&key(2)));
    assert_eq!(total_in_flight(&fleet), 0);
}

/// A drain survives installs that keep the deployment, ends with one that
/// removes it, and names an unknown key.
#[test]
fn drains_follow_installs() {
    let fleet = Fleet::new(registry(&[1, 1]), |b| b);
    let drain = fleet.drain(&key(1), ms(0)).unwrap();
    fleet.install(registry(&[1, 1, 1]), ms(1));
    for _ in 0..20 {
        assert_ne!(fleet.select(&Request::new("gpt-4")).unwrap().key(), &key(1));
    }
    fleet.install(registry(&[1]), ms(2)); // node 1 stays, nodes 2 and 3 go
    // Still drained: nothing else serves.
    assert!(matches!(
        fleet.select(&Request::new("gpt-4")),
        Err(Error::NoEligible { .. })
    ));
    drain.cancel(ms(3));
    assert_eq!(fleet.select(&Request::new("gpt-4")).unwrap().key(), &key(1));
    match fleet.drain(&key(9), ms(4)) {
        Err(e @ Error::UnknownDeployment { .. }) => {
            assert_eq!(
                e.to_string(),
                "no deployment has key openai/gpt-4@http://10.0.0.9/v1"
            );
        }
        other => panic!("{other:?}"),
    }
    // Removed by an install: the drain's removal says so.
    let drain = fleet.drain(&key(1), ms(5)).unwrap();
    fleet.install(registry(&[]), ms(6));
    assert!(matches!(
        drain.remove(ms(7)),
        Err(Error::UnknownDeployment { .. })
    ));
    // The registry the fleet reports keeps the deployment's own weight.
    let fleet = Fleet::new(registry(&[4]), |b| b);
    let _drain = fleet.drain(&key(1), ms(0)).unwrap();
    assert_eq!(fleet.registry().get(&key(1)).unwrap().weight(), 4);
}

/// A plan's `tried` lists its own picks, not the keys the request excluded
/// from the start.
#[test]
fn tried_is_the_plans_own_picks() {
    let fleet = Fleet::new(registry(&[1, 1, 1]), |b| b.strategy(RoundRobin));
    let mut plan = fleet.plan(&Request::new("gpt-4").exclude(key(1)));
    let first = plan.next_at(ms(0)).unwrap().key().clone();
    assert_ne!(first, key(1));
    assert!(plan.tried().eq([&first]));
    let second = plan.next_at(ms(0)).unwrap().key().clone();
    assert!(plan.tried().eq([&first, &second]));
    assert!(plan.next_at(ms(0)).is_err());
}
