//! Selection from many threads at once: one `Selector` shared by reference,
//! and a clone (a handle with its own cursors) per thread.
//!
//! Fixed iteration counts, no sleeps, no timing: every assertion is about
//! counts, which concurrency must not change.
//!
//! - in-flight counts lose no update: with every thread holding picks at a
//!   barrier, they sum to the picks held; after all picks are dropped (some
//!   on another thread than the one that selected), every count is 0;
//! - each thread's own handle rotates exactly under round robin, however
//!   the other threads use theirs or the shared one;
//! - threads sharing one handle share its turns: together they receive
//!   exact round-robin and weighted-round-robin totals;
//! - a report that happened before a select (by the test's own
//!   synchronization) is respected by it, while other threads keep picking
//!   from the same disturbed tier (whose record of which members to test
//!   they renew and share).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::Duration;

use modelfleet::health::{FailureKind, HealthPolicy, Report};
use modelfleet::select::{BuiltinStrategy, RoundRobin, WeightedRoundRobin};
use modelfleet::{Deployment, ModelKey, Pick, Policy, Registry, Request, Selector};

const THREADS: usize = 4;
const ITERS: usize = 3_000;
/// Picks a thread keeps outstanding before dropping its oldest.
const QUEUE: usize = 8;

/// `gpt-4` on 6 endpoints (weights 1-3, half eu, half us) and `gpt-4o-mini`
/// on 3.
fn registry() -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for i in 0..6u32 {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://g{i}.test/v1"))
                .weight(1 + i % 3)
                .label("region", if i % 2 == 0 { "eu" } else { "us" })
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    for i in 0..3 {
        reg.insert(
            Deployment::builder("openai", "gpt-4o-mini")
                .endpoint(&format!("http://m{i}.test/v1"))
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    reg
}

/// The requests threads cycle through: plain, filtered, sticky, another model.
fn requests() -> Vec<Request> {
    vec![
        Request::new("gpt-4"),
        Request::new("gpt-4").label("region", "eu"),
        Request::new("gpt-4").affinity("user-1"),
        Request::new("gpt-4o-mini").affinity("user-2"),
        Request::new("gpt-4")
            .label("region", "us")
            .affinity("user-3"),
    ]
}

#[track_caller]
fn assert_idle(reg: &Registry, sel: &Selector, what: &str) {
    for k in reg.keys() {
        assert_eq!(sel.in_flight(k), Some(0), "{what}: {k} still in flight");
    }
}

/// The sum of every deployment's in-flight count.
fn total_in_flight(reg: &Registry, sel: &Selector) -> u32 {
    reg.keys().map(|k| sel.in_flight(k).unwrap()).sum()
}

/// Checks that a pick answers its request (right model, right label).
#[track_caller]
fn check_pick(pick: &Pick<'_>, req: &Request) {
    assert_eq!(pick.deployment().model(), req.model());
    for (k, v) in req.required_labels() {
        assert_eq!(pick.deployment().label(k), Some(v.as_str()));
    }
}

#[test]
fn shared_selector_counts_return_to_zero() {
    let reg = registry();
    let requests = requests();
    for &strategy in BuiltinStrategy::all() {
        let sel = Selector::with_seed(&reg, strategy, 3);
        let barrier = Barrier::new(THREADS + 1);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (sel, requests, barrier) = (&sel, &requests, &barrier);
                s.spawn(move || {
                    let mut held = VecDeque::with_capacity(QUEUE + 1);
                    for i in 0..ITERS {
                        let req = &requests[(i + t) % requests.len()];
                        let pick = sel.select(req).expect("a candidate");
                        check_pick(&pick, req);
                        held.push_back(pick);
                        if held.len() > QUEUE {
                            drop(held.pop_front());
                        }
                    }
                    // Everyone holds QUEUE picks: the counts must add up.
                    barrier.wait();
                    barrier.wait();
                });
            }
            barrier.wait();
            assert_eq!(
                total_in_flight(&reg, &sel) as usize,
                THREADS * QUEUE,
                "{strategy}: in-flight counts lost an update"
            );
            barrier.wait();
        });
        assert_idle(&reg, &sel, &format!("{strategy}, shared"));
    }
}

#[test]
fn per_thread_clones_and_shared_handle_together() {
    let reg = registry();
    let requests = requests();
    for &strategy in BuiltinStrategy::all() {
        let sel = Selector::with_seed(&reg, strategy, 5);
        let (tx, rx) = mpsc::channel::<Pick<'_>>();
        thread::scope(|s| {
            // Picks are Send: a dropper thread completes some of them.
            s.spawn(move || {
                for pick in rx {
                    drop(pick);
                }
            });
            for t in 0..THREADS {
                let (sel, requests, tx) = (&sel, &requests, tx.clone());
                s.spawn(move || {
                    let mine = sel.clone();
                    let mut held = VecDeque::with_capacity(QUEUE + 1);
                    for i in 0..ITERS {
                        let req = &requests[(i * 7 + t) % requests.len()];
                        if i % 2 == 0 {
                            let pick = mine.select(req).expect("a candidate");
                            check_pick(&pick, req);
                            held.push_back(pick);
                        } else {
                            let pick = sel.select(req).expect("a candidate");
                            check_pick(&pick, req);
                            if i % 3 == 0 {
                                // Dropped on the dropper thread.
                                tx.send(pick).unwrap();
                            } else {
                                held.push_back(pick);
                            }
                        }
                        if held.len() > QUEUE {
                            drop(held.pop_front());
                        }
                    }
                    drop(held);
                });
            }
            drop(tx);
        });
        assert_idle(&reg, &sel, &format!("{strategy}, clones"));
    }
}

/// Each thread rotates over its own handle while the others rotate over
/// theirs and over the shared one: every `n` consecutive picks of a thread
/// on its handle cover all `n` deployments (every start, not only aligned
/// ones), plain and filtered (each on its own model, so the cursors do not
/// mix).
#[test]
fn round_robin_per_thread_handle_rotates_exactly() {
    let reg = registry();
    let sel = Selector::with_seed(&reg, RoundRobin, 9);
    let gpt4: Vec<_> = reg.of_model("gpt-4").map(|(k, _)| k.clone()).collect();
    let mini: Vec<_> = reg
        .of_model("gpt-4o-mini")
        .map(|(k, _)| k.clone())
        .collect();
    let plain = Request::new("gpt-4o-mini");
    let eu = Request::new("gpt-4").label("region", "eu");
    thread::scope(|s| {
        for _ in 0..THREADS {
            let (sel, plain, eu, gpt4, mini) = (&sel, &plain, &eu, &gpt4, &mini);
            s.spawn(move || {
                let mine = sel.clone();
                let mut plain_seq = Vec::with_capacity(ITERS);
                let mut eu_seq = Vec::with_capacity(ITERS);
                let mut held = VecDeque::new();
                for i in 0..ITERS {
                    let p = mine.select(plain).unwrap();
                    plain_seq.push(mini.iter().position(|k| k == p.key()).unwrap());
                    let e = mine.select(eu).unwrap();
                    eu_seq.push(gpt4.iter().position(|k| k == e.key()).unwrap());
                    // Traffic on the shared handle must not disturb `mine`.
                    let other = sel.select(if i % 2 == 0 { plain } else { eu }).unwrap();
                    held.extend([p, e, other]);
                    if held.len() > QUEUE {
                        held.drain(..3);
                    }
                }
                assert_cycles(&plain_seq, &[0, 1, 2]);
                assert_cycles(&eu_seq, &[0, 2, 4]);
            });
        }
    });
    assert_idle(&reg, &sel, "round robin");
}

/// Every window of `members.len()` consecutive entries of `seq` holds each
/// member exactly once.
#[track_caller]
fn assert_cycles(seq: &[usize], members: &[usize]) {
    let n = members.len();
    for (start, window) in seq.windows(n).enumerate() {
        let mut w = window.to_vec();
        w.sort_unstable();
        assert_eq!(w, members, "window starting at pick {start}: {window:?}");
    }
}

/// Threads sharing one handle share its turns, so together they receive
/// exact totals: round robin gives each of the 3 deployments a third of a
/// multiple of 3 picks; weighted round robin gives each deployment exactly
/// `w_i / Σw` of a multiple of `Σw` picks.
#[test]
fn shared_handle_totals_are_exact() {
    let reg = registry();
    let gpt4: Vec<_> = reg.of_model("gpt-4").map(|(k, _)| k.clone()).collect();
    let weights: Vec<u64> = reg
        .of_model("gpt-4")
        .map(|(_, d)| u64::from(d.weight()))
        .collect();
    let w: u64 = weights.iter().sum();
    let per_thread = 1_200; // THREADS × 1,200 = 4,800 = 400 × Σw (12)
    assert_eq!((THREADS as u64 * per_thread) % w, 0);
    for (strategy, expected) in [
        (
            BuiltinStrategy::from(RoundRobin),
            vec![THREADS as u64 * per_thread / 6; 6],
        ),
        (
            BuiltinStrategy::from(WeightedRoundRobin::new()),
            weights
                .iter()
                .map(|wi| wi * THREADS as u64 * per_thread / w)
                .collect(),
        ),
    ] {
        let sel = Selector::with_seed(&reg, strategy, 13);
        let req = Request::new("gpt-4");
        let counts: Vec<Vec<u64>> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (sel, req, gpt4) = (&sel, &req, &gpt4);
                    s.spawn(move || {
                        let mut c = vec![0u64; gpt4.len()];
                        let mut held = VecDeque::new();
                        for _ in 0..per_thread {
                            let p = sel.select(req).unwrap();
                            c[gpt4.iter().position(|k| k == p.key()).unwrap()] += 1;
                            held.push_back(p);
                            if held.len() > QUEUE {
                                held.pop_front();
                            }
                        }
                        c
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total: Vec<u64> = (0..gpt4.len())
            .map(|i| counts.iter().map(|c| c[i]).sum())
            .collect();
        assert_eq!(total, expected, "{strategy}: per-thread counts {counts:?}");
        assert_idle(&reg, &sel, &format!("{strategy}, shared totals"));
    }
}

#[test]
fn reports_before_a_select_are_respected_while_threads_pick() {
    // 130 deployments (three words of the tier's record); a reporter cools
    // them one by one, in order, for far longer than the test, and
    // publishes how many it has cooled; each picking thread reads that
    // count before it selects, so every deployment below it must be skipped.
    const N: usize = 130;
    const COOLED: usize = N - 2;
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    let keys: Vec<ModelKey> = (0..N)
        .map(|i| {
            reg.insert(
                Deployment::builder("openai", "gpt-4")
                    .endpoint(&format!("http://n{i}.test/v1"))
                    .build()
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let mut policy = HealthPolicy::default();
    policy.slow_start = None;
    let selector = Selector::builder(&reg)
        .strategy(RoundRobin)
        .health(policy.validated().unwrap())
        .build();
    let index = |k: &ModelKey| keys.iter().position(|x| x == k).unwrap();
    let at = Duration::from_secs(10);
    let limited = Report::failure(
        at,
        FailureKind::rate_limited(Some(Duration::from_secs(3_600))),
    );
    let cooled = AtomicUsize::new(0);
    let violation = OnceLock::new();
    thread::scope(|scope| {
        for _ in 0..2 {
            let (mine, cooled, violation) = (selector.clone(), &cooled, &violation);
            let index = &index;
            scope.spawn(move || {
                let request = Request::new("gpt-4").at(at);
                while cooled.load(Ordering::Acquire) < COOLED {
                    let before = cooled.load(Ordering::Acquire);
                    let picked = index(mine.select(&request).unwrap().key());
                    if picked < before {
                        let _ = violation.set((picked, before));
                    }
                }
            });
        }
        for (i, key) in keys.iter().take(COOLED).enumerate() {
            assert!(selector.report(key, limited));
            cooled.store(i + 1, Ordering::Release);
            // Let the pickers make the record of this state before the next
            // report.
            for _ in 0..50 {
                thread::yield_now();
            }
        }
    });
    assert_eq!(violation.get(), None, "(picked, cooled before the select)");
    let request = Request::new("gpt-4").at(at);
    for _ in 0..8 {
        assert!(index(selector.select(&request).unwrap().key()) >= COOLED);
    }
}
