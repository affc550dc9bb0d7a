//! Selection costs, side by side in the same run with peers.
//!
//! ```text
//! cargo bench --bench select -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! For groups of 10, 100 and 1,000 deployments of one model (`gpt-4` under
//! `name+endpoint`, distinct endpoints, weights 1..=5 in turn, half of them
//! labelled `zone=a`), the `select/{n}` groups time one `select` plus the
//! drop of its `Pick` for every built-in strategy, and next to them:
//!
//! - `peer/rand WeightedIndex` and `peer/rand_distr WeightedAliasIndex`: one
//!   sample from the same weights with a seeded `SmallRng`;
//! - `peer/Mutex smooth WRR`: nginx's smooth weighted round robin behind a
//!   `Mutex`, written here as the usual baseline (it is not library code);
//! - `peer/maglev` (the `maglev` crate's table, unweighted),
//!   `peer/hashring` (the `hashring` crate, with as many virtual nodes per
//!   deployment as modelfleet's ring gives it, 160 per started block of 16
//!   units of weight; it has no acceptance test, so below 16 its shares do
//!   not follow the weights) and
//!   `peer/jump hash over xxh3` (Lamping and Veach's jump consistent hash,
//!   written here, unweighted): the lookup of one affinity key, from the
//!   same cycle of keys as `consistent_hash`;
//! - `ref/xxh3 of the key`: hashing the affinity key alone;
//! - `peer/hand-written pipeline, …`: what a service writes by hand for
//!   the plain path when it needs what `select` does at the least: the
//!   model found by name in a `std` `HashMap` (default hasher), one
//!   deployment drawn (a `WeightedIndex` sample, or an `AtomicUsize`
//!   rotation), and the pick counted in flight on an `AtomicU32` until its
//!   guard drops. Not library code.
//!
//! The same groups time `round_robin` and `weighted_round_robin` with a
//! label filter that keeps half the deployments, with the default health
//! policy and one deployment cooling (against none), and a pick completed
//! with a success report instead of dropped.
//!
//! The `threads/100` group measures throughput from one and two threads:
//! the time it reports is wall time divided by the picks of all threads, so
//! perfect scaling halves it.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use crossbeam_utils::CachePadded;
use hashring::HashRing;
use maglev::{ConsistentHasher, Maglev};
use modelfleet::health::{FailureKind, HealthPolicy, Report, State};
use modelfleet::select::{BuiltinStrategy, InFlight, PowerOfTwo, RoundRobin, WeightedRoundRobin};
use modelfleet::{Deployment, Policy, Registry, Request, Selector};
use rand::SeedableRng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand_distr::weighted::WeightedAliasIndex;

const PROVIDER: &str = "openai-api-compatible";
/// Affinity keys cycled through by the hashing benchmarks (a power of two).
const KEYS: usize = 1024;
/// The points of a deployment of weight `w` on modelfleet's ring (160 per
/// started block of 16 units), matched by the hashring peer.
fn ring_points(w: u32) -> u32 {
    160 * w.div_ceil(16)
}

/// The weight of deployment `i`: 1, 2, 3, 4, 5, 1, 2, …
fn weight(i: usize) -> u32 {
    (i % 5) as u32 + 1
}

/// `n` deployments of `model`, one per endpoint, weights 1..=5 in turn,
/// every other one labelled `zone=a` (the rest `zone=b`).
fn deployments(model: &str, n: usize) -> impl Iterator<Item = Deployment> {
    (0..n).map(move |i| {
        Deployment::builder(PROVIDER, model)
            .endpoint(&format!(
                "http://10.{}.{}.{}/v1",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            ))
            .weight(weight(i))
            .label("zone", if i % 2 == 0 { "a" } else { "b" })
            .build()
            .expect("valid deployment")
    })
}

/// A registry of `n` deployments of each of `models` (`name+endpoint`).
fn registry(models: &[&str], n: usize) -> Registry {
    let mut reg = Registry::with_capacity(Policy::NAME_ENDPOINT, n * models.len());
    for d in models.iter().flat_map(|m| deployments(m, n)) {
        reg.insert(d).expect("distinct keys");
    }
    reg
}

/// 20-byte affinity keys: `session-000000000000`, …
fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("session-{i:012}")).collect()
}

/// nginx's smooth weighted round robin over `(weight, current)` pairs behind
/// one lock: the usual baseline for a shared weighted rotation. O(n) per pick.
struct MutexSmoothWrr(Mutex<Vec<(i64, i64)>>);

impl MutexSmoothWrr {
    fn new(weights: impl Iterator<Item = u32>) -> Self {
        Self(Mutex::new(weights.map(|w| (i64::from(w), 0)).collect()))
    }

    fn pick(&self) -> usize {
        let mut peers = self.0.lock().expect("not poisoned");
        let (mut total, mut best, mut best_current) = (0i64, 0usize, i64::MIN);
        for (i, (w, current)) in peers.iter_mut().enumerate() {
            *current += *w;
            total += *w;
            if *current > best_current {
                best_current = *current;
                best = i;
            }
        }
        peers[best].1 -= total;
        best
    }
}

/// The plain path written by hand from the peers: models by name, a draw,
/// and in-flight counts released by a guard. Not library code.
struct HandWritten {
    models: HashMap<String, Model>,
}

struct Model {
    index: WeightedIndex<u32>,
    turn: AtomicUsize,
    in_flight: Vec<AtomicU32>,
}

/// Counts a pick in flight until dropped.
struct Guard<'a>(&'a AtomicU32);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HandWritten {
    fn new(model: &str, weights: &[u32]) -> Self {
        let m = Model {
            index: WeightedIndex::new(weights).expect("positive weights"),
            turn: AtomicUsize::new(0),
            in_flight: weights.iter().map(|_| AtomicU32::new(0)).collect(),
        };
        Self {
            models: HashMap::from([(model.to_owned(), m)]),
        }
    }

    fn count(m: &Model, i: usize) -> (usize, Guard<'_>) {
        m.in_flight[i].fetch_add(1, Ordering::Relaxed);
        (i, Guard(&m.in_flight[i]))
    }

    fn weighted_random(&self, model: &str, rng: &mut SmallRng) -> Option<(usize, Guard<'_>)> {
        let m = self.models.get(model)?;
        Some(Self::count(m, m.index.sample(rng)))
    }

    fn round_robin(&self, model: &str) -> Option<(usize, Guard<'_>)> {
        let m = self.models.get(model)?;
        let i = m.turn.fetch_add(1, Ordering::Relaxed) % m.in_flight.len();
        Some(Self::count(m, i))
    }
}

/// Jump consistent hash (Lamping and Veach, 2014), the peer algorithm, over
/// an xxh3 hash of the key: a bucket in `0..buckets`. Not library code.
fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// One `select` and the drop of its pick, with `request`.
fn bench_select(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, s: &Selector, req: &Request) {
    g.bench_function(name, |b| {
        b.iter(|| {
            let pick = s.select(black_box(req)).expect("a pick");
            drop(black_box(pick));
        })
    });
}

fn select(c: &mut Criterion) {
    let keys = keys();
    for n in [10usize, 100, 1_000] {
        let reg = registry(&["gpt-4"], n);
        let plain = Request::new("gpt-4");
        let filtered = Request::new("gpt-4").label("zone", "a");
        let sticky: Vec<Request> = keys
            .iter()
            .map(|k| Request::new("gpt-4").affinity(k))
            .collect();
        let mut g = c.benchmark_group(format!("select/{n}"));

        for &strategy in BuiltinStrategy::all() {
            let s = Selector::builder(&reg).strategy(strategy).seed(1).build();
            let name = format!("modelfleet/{strategy}");
            if matches!(strategy, BuiltinStrategy::ConsistentHash(_)) {
                g.bench_function(&name, |b| {
                    let mut i = 0usize;
                    b.iter(|| {
                        i = (i + 1) & (KEYS - 1);
                        let pick = s.select(black_box(&sticky[i])).expect("a pick");
                        drop(black_box(pick));
                    })
                });
            } else {
                bench_select(&mut g, &name, &s, &plain);
            }
        }

        for strategy in [RoundRobin.into(), WeightedRoundRobin::new().into()] {
            let strategy: BuiltinStrategy = strategy;
            let s = Selector::builder(&reg).strategy(strategy).seed(1).build();
            // The filter keeps exactly the `zone=a` half.
            assert!((0..2 * n).all(|_| {
                let pick = s.select(&filtered).expect("a pick");
                pick.deployment().label("zone") == Some("a")
            }));
            bench_select(
                &mut g,
                &format!("modelfleet/{strategy} (label filter, keeps half)"),
                &s,
                &filtered,
            );
        }

        // The same filter when every deployment weighs the same: the weights
        // of the candidates are then counted, not summed.
        let equal: Registry = reg
            .deployments()
            .map(|d| d.to_builder().weight(1).build().expect("valid"))
            .collect();
        let s = Selector::builder(&equal)
            .strategy(WeightedRoundRobin::new())
            .seed(1)
            .build();
        bench_select(
            &mut g,
            "modelfleet/weighted_round_robin (label filter, keeps half, equal weights)",
            &s,
            &filtered,
        );

        // Health: the default policy, nothing cooling (the fast path) next to
        // one deployment cooling (the tier is disturbed: every pick walks it).
        for strategy in [RoundRobin.into(), WeightedRoundRobin::new().into()] {
            let strategy: BuiltinStrategy = strategy;
            let clear = Selector::builder(&reg)
                .strategy(strategy)
                .health(HealthPolicy::default().validated().unwrap())
                .seed(1)
                .build();
            bench_select(
                &mut g,
                &format!("modelfleet/{strategy} (health on, none cooling)"),
                &clear,
                &plain,
            );
            let cooling = Selector::builder(&reg)
                .strategy(strategy)
                .health(HealthPolicy::default().validated().unwrap())
                .seed(1)
                .build();
            let first = cooling.select(&plain).expect("a pick").key().clone();
            let limited = FailureKind::rate_limited(None);
            assert!(cooling.report(&first, Report::failure(Duration::from_secs(1), limited)));
            let health = cooling.health(Duration::from_secs(1));
            assert_eq!(
                health.iter().filter(|h| h.state == State::Cooling).count(),
                1
            );
            assert!((0..2 * n).all(|_| cooling.select(&plain).expect("a pick").key() != &first));
            bench_select(
                &mut g,
                &format!("modelfleet/{strategy} (health on, one cooling)"),
                &cooling,
                &plain,
            );
        }

        // Completing a pick with a success report, against the plain drop
        // measured above as `modelfleet/weighted_round_robin`.
        let s = Selector::builder(&reg)
            .strategy(WeightedRoundRobin::new())
            .seed(1)
            .build();
        let ok = Report::success(Duration::from_secs(1), Duration::from_millis(250));
        g.bench_function("modelfleet/weighted_round_robin + complete(success)", |b| {
            b.iter(|| {
                let pick = s.select(black_box(&plain)).expect("a pick");
                pick.complete(black_box(ok));
            })
        });

        let weights: Vec<u32> = (0..n).map(weight).collect();
        let index = WeightedIndex::new(&weights).expect("positive weights");
        let mut rng = SmallRng::seed_from_u64(1);
        g.bench_function("peer/rand WeightedIndex", |b| {
            b.iter(|| index.sample(&mut rng))
        });
        let alias = WeightedAliasIndex::new(weights.clone()).expect("positive weights");
        let mut rng = SmallRng::seed_from_u64(1);
        g.bench_function("peer/rand_distr WeightedAliasIndex", |b| {
            b.iter(|| alias.sample(&mut rng))
        });
        let hand = HandWritten::new("gpt-4", &weights);
        let mut rng = SmallRng::seed_from_u64(1);
        g.bench_function("peer/hand-written pipeline, weighted random", |b| {
            b.iter(|| {
                let pick = hand.weighted_random(black_box("gpt-4"), &mut rng);
                drop(black_box(pick.expect("a pick")));
            })
        });
        g.bench_function("peer/hand-written pipeline, round robin", |b| {
            b.iter(|| {
                let pick = hand.round_robin(black_box("gpt-4"));
                drop(black_box(pick.expect("a pick")));
            })
        });
        let swrr = MutexSmoothWrr::new(weights.iter().copied());
        g.bench_function("peer/Mutex smooth WRR", |b| b.iter(|| swrr.pick()));

        let maglev = Maglev::new(0..n as u32);
        g.bench_function("peer/maglev", |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                *maglev.get(black_box(keys[i].as_str())).expect("non-empty")
            })
        });
        let mut ring = HashRing::new();
        ring.batch_add(
            (0..n as u32)
                .flat_map(|d| (0..ring_points(weight(d as usize))).map(move |p| (d, p)))
                .collect(),
        );
        g.bench_function("peer/hashring", |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                ring.get(black_box(&keys[i].as_str())).expect("non-empty").0
            })
        });
        g.bench_function("peer/jump hash over xxh3", |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                let h = xxhash_rust::xxh3::xxh3_64(black_box(keys[i].as_bytes()));
                jump_hash(h, n as u32)
            })
        });
        g.bench_function("ref/xxh3 of the key", |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                xxhash_rust::xxh3::xxh3_64(black_box(keys[i].as_bytes()))
            })
        });
        g.finish();
    }
}

/// Runs `work(&prepare(t), picks)` on two scoped threads `t = 0, 1` that
/// start together once both have prepared, and returns the wall time from
/// the first start to the last end, halved: the time per pick of the pair's
/// total throughput. Spawning and preparing are outside the timing.
fn two_threads<S, P, W>(picks: u64, prepare: P, work: W) -> Duration
where
    P: Fn(usize) -> S + Sync,
    W: Fn(&S, u64) + Sync,
{
    let start = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (start, prepare, work) = (&start, &prepare, &work);
                scope.spawn(move || {
                    let state = prepare(t);
                    start.wait();
                    let t0 = Instant::now();
                    work(&state, picks);
                    (t0, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("two spans");
    let last = spans.iter().map(|s| s.1).max().expect("two spans");
    (last - first) / 2
}

/// `picks` selects of `request` on handle `h`, each pick dropped at once.
fn run(h: &Selector, request: &Request, picks: u64) {
    for _ in 0..picks {
        let pick = h.select(black_box(request)).expect("a pick");
        drop(black_box(pick));
    }
}

/// `picks` turns of a shared-counter round robin over `n` deployments.
fn atomic_rr(counter: &AtomicUsize, n: usize, picks: u64) {
    for _ in 0..picks {
        black_box(counter.fetch_add(1, Ordering::Relaxed) % n);
    }
}

/// Throughput from one thread and from two, for a group of 100:
///
/// - `1 thread`: one handle;
/// - `2 threads, own handles side by side`: two clones made on the main
///   thread and kept next to each other (`[s.clone(), s.clone()]`), one per
///   thread;
/// - `2 threads, own handles made on each thread`: each thread clones its
///   handle itself;
/// - `2 threads, one shared handle`: both threads use `&s`;
/// - `2 threads, own handles, own models`: as "made on each thread", but a
///   selector over two models of 100 deployments each, one model per
///   thread, so the threads share no deployment's in-flight counter;
/// - the `AtomicUsize` peers: one counter shared by both threads, or one
///   cache-padded counter each (perfect scaling, for reference).
fn threads(c: &mut Criterion) {
    let n = 100;
    let reg = registry(&["gpt-4"], n);
    let two_models = registry(&["gpt-4", "gpt-4-b"], n);
    let plain = Request::new("gpt-4");
    let per_thread = [Request::new("gpt-4"), Request::new("gpt-4-b")];
    let mut g = c.benchmark_group(format!("threads/{n}"));
    for strategy in [
        BuiltinStrategy::from(RoundRobin),
        WeightedRoundRobin::new().into(),
        PowerOfTwo::default().into(),
    ] {
        let s = Selector::builder(&reg).strategy(strategy).seed(1).build();
        g.bench_function(format!("modelfleet/{strategy}/1 thread"), |b| {
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                run(&s, &plain, iters);
                t0.elapsed()
            })
        });
        g.bench_function(
            format!("modelfleet/{strategy}/2 threads, own handles side by side"),
            |b| {
                b.iter_custom(|iters| {
                    let handles = [s.clone(), s.clone()];
                    two_threads(iters, |t| &handles[t], |h, k| run(h, &plain, k))
                })
            },
        );
        g.bench_function(
            format!("modelfleet/{strategy}/2 threads, own handles made on each thread"),
            |b| b.iter_custom(|iters| two_threads(iters, |_| s.clone(), |h, k| run(h, &plain, k))),
        );
        g.bench_function(
            format!("modelfleet/{strategy}/2 threads, one shared handle"),
            |b| b.iter_custom(|iters| two_threads(iters, |_| (), |_, k| run(&s, &plain, k))),
        );
        let uncounted = Selector::builder(&reg)
            .strategy(strategy)
            .seed(1)
            .in_flight(InFlight::Uncounted)
            .build();
        g.bench_function(
            format!("modelfleet/{strategy}/1 thread, in-flight uncounted"),
            |b| {
                b.iter_custom(|iters| {
                    let t0 = Instant::now();
                    run(&uncounted, &plain, iters);
                    t0.elapsed()
                })
            },
        );
        g.bench_function(
            format!("modelfleet/{strategy}/2 threads, own handles, in-flight uncounted"),
            |b| {
                b.iter_custom(|iters| {
                    two_threads(iters, |_| uncounted.clone(), |h, k| run(h, &plain, k))
                })
            },
        );
        let s2 = Selector::builder(&two_models)
            .strategy(strategy)
            .seed(1)
            .build();
        g.bench_function(
            format!("modelfleet/{strategy}/2 threads, own handles, own models"),
            |b| {
                b.iter_custom(|iters| {
                    two_threads(
                        iters,
                        |t| (s2.clone(), t),
                        |(h, t), k| run(h, &per_thread[*t], k),
                    )
                })
            },
        );
    }

    let counter = AtomicUsize::new(0);
    g.bench_function("peer/AtomicUsize round robin/1 thread", |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            atomic_rr(&counter, n, iters);
            t0.elapsed()
        })
    });
    g.bench_function("peer/AtomicUsize round robin/2 threads, one counter", |b| {
        b.iter_custom(|iters| two_threads(iters, |_| (), |_, k| atomic_rr(&counter, n, k)))
    });
    let own = [
        CachePadded::new(AtomicUsize::new(0)),
        CachePadded::new(AtomicUsize::new(0)),
    ];
    g.bench_function(
        "peer/AtomicUsize round robin/2 threads, own padded counters",
        |b| b.iter_custom(|iters| two_threads(iters, |t| &own[t], |c, k| atomic_rr(c, n, k))),
    );
    g.finish();
}

criterion_group!(benches, select, threads);
criterion_main!(benches);
