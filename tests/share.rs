//! Replicas sharing health and usage through events (`modelfleet::share`):
//! the merge is idempotent and order-independent, and what one replica
//! learns holds on the others.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use modelfleet::health::{Ejection, FailureKind, HealthPolicy, Report, State};
use modelfleet::share::{Event, MAX_AHEAD, ReplicaId, Transition};
use modelfleet::{Clock, Deployment, Fleet, ManualClock, ModelKey, Policy, Registry, Request};
use proptest::prelude::*;

/// A wall-clock origin on a minute edge.
fn origin() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_040)
}

fn registry(n: usize, rpm: Option<u32>, tpm: Option<u64>) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for i in 0..n {
        let mut b =
            Deployment::builder("openai", "gpt-4").endpoint(&format!("http://10.0.0.{i}/v1"));
        if let Some(r) = rpm {
            b = b.rpm(r);
        }
        if let Some(t) = tpm {
            b = b.tpm(t);
        }
        reg.insert(b.build().unwrap()).unwrap();
    }
    reg
}

fn key(i: usize) -> ModelKey {
    format!("openai/gpt-4@http://10.0.0.{i}/v1")
        .parse()
        .unwrap()
}

fn replica(name: &str, reg: &Registry, clock: &Arc<ManualClock>) -> Fleet {
    let health = HealthPolicy::default().validated().unwrap();
    Fleet::builder(reg.clone())
        .selector(move |b| b.health(health).seed(1))
        .share(ReplicaId::new(name).unwrap(), clock.clone())
        .build()
}

/// The state of every deployment that sharing can change.
fn view(fleet: &Fleet, now: Duration) -> Vec<(ModelKey, State, Option<Duration>, u64, u64)> {
    fleet
        .health(now)
        .into_iter()
        .map(|h| {
            (
                h.key,
                h.state,
                h.available_at,
                h.requests_per_minute,
                h.tokens_per_minute,
            )
        })
        .collect()
}

fn limited(at: Duration, secs: u64) -> Report {
    Report::failure(
        at,
        FailureKind::rate_limited(Some(Duration::from_secs(secs))),
    )
}

#[test]
fn a_429_on_one_replica_stops_picks_on_the_others_until_it_ends() {
    let clock = Arc::new(ManualClock::starting_at(origin()));
    let reg = registry(1, None, None);
    let [a, b, c] = ["a", "b", "c"].map(|n| replica(n, &reg, &clock));
    a.select(&Request::new("gpt-4"))
        .unwrap()
        .complete(limited(clock.now(), 20));
    assert!(a.select(&Request::new("gpt-4")).is_err());
    assert!(
        b.select(&Request::new("gpt-4")).is_ok(),
        "b has not heard yet"
    );
    let events = a.events();
    assert_eq!(events.len(), 1);
    for other in [&b, &c] {
        assert_eq!(other.absorb(&events).applied, 1);
        assert!(other.select(&Request::new("gpt-4")).is_err());
    }
    clock.advance(Duration::from_secs(19));
    assert!(b.select(&Request::new("gpt-4")).is_err());
    clock.advance(Duration::from_secs(1));
    for f in [&a, &b, &c] {
        assert!(f.select(&Request::new("gpt-4")).is_ok());
    }
    // Heard again, the same event changes nothing.
    assert_eq!(b.absorb(&events).stale, 1);
}

#[test]
fn an_ejection_on_one_replica_holds_on_the_others() {
    let clock = Arc::new(ManualClock::starting_at(origin()));
    let reg = registry(4, None, None);
    let fleet = |name: &str| {
        let mut health = HealthPolicy::disabled();
        let mut ejection = Ejection::default();
        ejection.max_percent = 50;
        health.ejection = Some(ejection);
        let health = health.validated().unwrap();
        Fleet::builder(reg.clone())
            .selector(move |b| b.health(health))
            .share(ReplicaId::new(name).unwrap(), clock.clone())
            .build()
    };
    let (a, b, c) = (fleet("a"), fleet("b"), fleet("c"));
    let only_0 = Request::new("gpt-4")
        .exclude(key(1))
        .exclude(key(2))
        .exclude(key(3));
    for _ in 0..5 {
        let pick = a.select(&only_0).unwrap();
        pick.complete(Report::failure(clock.now(), FailureKind::ServerError));
    }
    let there = a.health(clock.now())[0].clone();
    assert_eq!(there.state, State::Ejected);
    let events = a.events();
    assert_eq!(events.len(), 1);
    for other in [&b, &c] {
        other.absorb(&events);
        let here = &other.health(clock.now())[0];
        assert_eq!(
            (here.state, here.available_at),
            (there.state, there.available_at)
        );
        for _ in 0..20 {
            assert_ne!(other.select(&Request::new("gpt-4")).unwrap().key(), &key(0));
        }
    }
    clock.advance(Duration::from_secs(30));
    assert_eq!(b.health(clock.now())[0].state, State::Healthy);
}

#[test]
fn a_late_replica_learns_active_cooldowns_from_a_snapshot() {
    let clock = Arc::new(ManualClock::starting_at(origin()));
    let reg = registry(2, None, None);
    let a = replica("a", &reg, &clock);
    let pick = a.select(&Request::new("gpt-4").exclude(key(1))).unwrap();
    pick.complete(limited(clock.now(), 30));
    let _sent_before_the_late_one_came = a.events();
    clock.advance(Duration::from_secs(5));
    let late = replica("late", &reg, &clock);
    assert_eq!(late.absorb(&a.snapshot()).applied, 1);
    for _ in 0..10 {
        assert_eq!(late.select(&Request::new("gpt-4")).unwrap().key(), &key(1));
    }
    assert_eq!(
        late.health(clock.now())[0].available_at,
        Some(clock.now() + Duration::from_secs(25))
    );
}

/// Three replicas take turns at picks of one deployment with `rpm = 100`,
/// syncing every `every` picks (a sync interval): together they admit at
/// most 100 plus what each of the other two admitted since its last sync.
#[test]
fn rpm_holds_across_three_replicas_within_the_stated_overshoot() {
    for every in [1usize, 5, 10] {
        let clock = Arc::new(ManualClock::starting_at(origin()));
        let reg = registry(1, Some(100), None);
        let fleets = ["a", "b", "c"].map(|n| replica(n, &reg, &clock));
        let mut admitted = 0usize;
        for turn in 0..600usize {
            let f = &fleets[turn % 3];
            if let Ok(pick) = f.select(&Request::new("gpt-4")) {
                admitted += 1;
                pick.succeed(clock.now(), Duration::from_millis(5));
            }
            if turn % (3 * every) == 3 * every - 1 {
                let all: Vec<Event> = fleets.iter().flat_map(Fleet::events).collect();
                for f in &fleets {
                    f.absorb(&all);
                }
            }
            clock.advance(Duration::from_millis(10));
        }
        // Overshoot bound: the two others' picks since their last sync,
        // `every` each.
        let bound = 100 + 2 * every;
        assert!(admitted >= 100, "every {every}: admitted {admitted}");
        assert!(
            admitted <= bound,
            "every {every}: admitted {admitted} > {bound}"
        );
        // Without sharing the three would admit 300.
    }
}

#[test]
fn shared_usage_lapses_when_the_others_go_quiet() {
    let clock = Arc::new(ManualClock::starting_at(origin()));
    let reg = registry(1, Some(10), None);
    let (a, b) = (replica("a", &reg, &clock), replica("b", &reg, &clock));
    for _ in 0..10 {
        a.select(&Request::new("gpt-4")).unwrap();
    }
    b.absorb(&a.events());
    assert!(b.select(&Request::new("gpt-4")).is_err());
    clock.advance(Duration::from_secs(61));
    b.absorb(&[]);
    assert!(b.select(&Request::new("gpt-4")).is_ok());
}

#[test]
fn garbage_is_refused_or_ignored_and_changes_nothing() {
    let clock = Arc::new(ManualClock::starting_at(origin()));
    let reg = registry(1, Some(10), Some(1000));
    let b = replica("b", &reg, &clock);
    let before = view(&b, clock.now());
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
    let r = ReplicaId::new("a").unwrap();
    let events = [
        Event::new(
            r.clone(),
            key(0),
            Transition::Cooled {
                until: far,
                kind: Some(FailureKind::Timeout),
            },
        ),
        Event::new(
            r.clone(),
            key(0),
            Transition::Ejected {
                until: origin() + MAX_AHEAD + Duration::from_secs(1),
            },
        ),
        Event::new(
            r.clone(),
            key(0),
            Transition::Usage {
                minute: u64::MAX,
                requests: u64::MAX,
                tokens: u64::MAX,
            },
        ),
        Event::new(
            r.clone(),
            key(0),
            Transition::Usage {
                minute: 0,
                requests: 5,
                tokens: 5,
            },
        ),
        Event::new(
            r.clone(),
            key(7),
            Transition::Ejected {
                until: origin() + Duration::from_secs(5),
            },
        ),
        Event::new(
            ReplicaId::new("b").unwrap(),
            key(0),
            Transition::Ejected {
                until: origin() + Duration::from_secs(5),
            },
        ),
        Event::new(
            r,
            key(0),
            Transition::Cooled {
                until: SystemTime::UNIX_EPOCH,
                kind: Some(FailureKind::Timeout),
            },
        ),
    ];
    let absorbed = b.absorb(&events);
    assert_eq!(
        (
            absorbed.applied,
            absorbed.refused,
            absorbed.ignored,
            absorbed.stale
        ),
        (0, 4, 2, 1)
    );
    assert_eq!(view(&b, clock.now()), before);
}

#[test]
fn a_fleet_that_does_not_share_makes_no_events_and_takes_none() {
    let reg = registry(1, None, None);
    let f = Fleet::new(reg, |b| b);
    assert!(f.events().is_empty() && f.snapshot().is_empty() && f.replica().is_none());
    let e = Event::new(
        ReplicaId::new("a").unwrap(),
        key(0),
        Transition::Ejected { until: origin() },
    );
    assert_eq!(f.absorb([&e]).ignored, 1);
}

fn arb_event() -> impl Strategy<Value = Event> {
    let replica = prop::sample::select(vec!["a", "b", "c", "self"]);
    let at = prop_oneof![0u64..120_000, Just(0), Just(u64::MAX / 2)];
    let transition = prop_oneof![
        at.clone().prop_map(|ms| Transition::Cooled {
            until: origin() + Duration::from_millis(ms),
            kind: Some(FailureKind::Timeout)
        }),
        at.prop_map(|ms| Transition::Ejected {
            until: origin() + Duration::from_millis(ms)
        }),
        (
            prop_oneof![
                Just(28_333_333u64),
                Just(28_333_334),
                Just(28_333_335),
                Just(0),
                Just(u64::MAX)
            ],
            prop_oneof![0u64..50, Just(u64::MAX)],
            prop_oneof![0u64..5_000, Just(u64::MAX)],
        )
            .prop_map(|(minute, requests, tokens)| Transition::Usage {
                minute,
                requests,
                tokens
            }),
    ];
    (replica, 0usize..3, transition)
        .prop_map(|(r, k, t)| Event::new(ReplicaId::new(r).unwrap(), key(k), t))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any batch, absorbed in any order, with duplicates, in pieces or
    /// whole, gives the same state: later ends win, usage is the largest
    /// count per (deployment, replica, minute) summed over replicas.
    #[test]
    fn absorbing_is_idempotent_and_order_independent(
        events in prop::collection::vec(arb_event(), 0..40),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        split in 0usize..40,
    ) {
        // Minute 28,333,334, 30 s in.
        let wall = origin() + Duration::from_secs(30);
        let mk = || Arc::new(ManualClock::starting_at(wall));
        let reg = registry(3, Some(100), Some(10_000));
        let (ca, cb) = (mk(), mk());
        let (x, y) = (replica("self", &reg, &ca), replica("self", &reg, &cb));
        x.absorb(&events);

        // The same events shuffled, duplicated, and in two batches.
        let mut again: Vec<&Event> = events.iter().chain(events.iter().rev().take(split)).collect();
        let mut seed = order;
        for i in (1..again.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            again.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let (first, second) = again.split_at(split.min(again.len()));
        y.absorb(first.iter().copied());
        y.absorb(second.iter().copied());
        x.absorb(&events);
        prop_assert_eq!(view(&x, ca.now()), view(&y, cb.now()));
    }
}
