//! The live fleet: `Fleet` selection next to a bare `Selector`, one and two
//! threads with and without a writer installing versions, and the cost of a
//! swap for 10, 1,000 and 100,000 deployments.
//!
//! ```sh
//! cargo bench --bench fleet -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use modelfleet::select::{BuiltinStrategy, RoundRobin, WeightedRoundRobin};
use modelfleet::{Deployment, Fleet, Policy, Registry, Request, Selector};

/// `n` deployments of `gpt-4` on distinct endpoints, weights 1..=5.
fn registry(n: usize) -> Registry {
    let mut reg = Registry::with_capacity(Policy::NAME_ENDPOINT, n);
    for i in 0..n {
        reg.insert(
            Deployment::builder("openai-api-compatible", "gpt-4")
                .endpoint(&format!(
                    "http://10.{}.{}.{}/v1",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255
                ))
                .weight(1 + (i % 5) as u32)
                .build()
                .expect("valid deployment"),
        )
        .expect("distinct endpoints");
    }
    reg
}

/// The same registry with the first deployment drained: a real change for
/// every swap (one update), the rest carried over.
fn drained(reg: &Registry) -> Registry {
    let mut next = reg.clone();
    if let Some(first) = reg.deployments().next() {
        next.upsert(first.to_builder().weight(0).build().expect("valid"));
    }
    next
}

/// One thread: bare selector vs the fleet's shared handle vs a fleet handle.
fn single(c: &mut Criterion) {
    let request = Request::new("gpt-4");
    for strategy in [
        BuiltinStrategy::from(RoundRobin),
        WeightedRoundRobin::new().into(),
    ] {
        let mut g = c.benchmark_group(format!("fleet/select/{strategy}"));
        for n in [10usize, 1_000] {
            let reg = registry(n);
            let bare = Selector::builder(&reg).strategy(strategy).seed(1).build();
            let fleet = Fleet::new(reg, |b| b.strategy(strategy).seed(1));
            let handle = fleet.handle();
            g.bench_with_input(BenchmarkId::new("Selector", n), &n, |b, _| {
                b.iter(|| drop(black_box(bare.select(black_box(&request)).expect("pick"))))
            });
            g.bench_with_input(BenchmarkId::new("Fleet::select", n), &n, |b, _| {
                b.iter(|| drop(black_box(fleet.select(black_box(&request)).expect("pick"))))
            });
            g.bench_with_input(BenchmarkId::new("FleetHandle::select", n), &n, |b, _| {
                b.iter(|| drop(black_box(handle.select(black_box(&request)).expect("pick"))))
            });
        }
        g.finish();
    }
}

/// Runs `picks` selects on each of `threads` threads (each with its own
/// fleet handle), optionally while a writer installs a new version every
/// millisecond; returns wall time per pick of the total throughput.
fn run_threads(
    fleet: &Fleet,
    versions: &[Registry; 2],
    threads: usize,
    picks: u64,
    writer: bool,
) -> Duration {
    let start = Barrier::new(threads + 1);
    let done = AtomicBool::new(false);
    let request = Request::new("gpt-4");
    let elapsed = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (start, request) = (&start, &request);
                scope.spawn(move || {
                    let handle = fleet.handle();
                    start.wait();
                    let t0 = Instant::now();
                    for _ in 0..picks {
                        drop(black_box(handle.select(black_box(request)).expect("pick")));
                    }
                    t0.elapsed()
                })
            })
            .collect();
        let swapper = writer.then(|| {
            let done = &done;
            scope.spawn(move || {
                let mut i = 0usize;
                let mut swaps = 0u64;
                let mut next = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        i ^= 1;
                        fleet.install(versions[i].clone(), Duration::from_millis(swaps));
                        swaps += 1;
                        next += Duration::from_millis(1);
                    } else {
                        std::thread::yield_now();
                    }
                }
                swaps
            })
        });
        start.wait();
        let spans: Vec<Duration> = workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect();
        done.store(true, Ordering::Relaxed);
        if let Some(s) = swapper {
            black_box(s.join().expect("writer"));
        }
        spans.into_iter().max().unwrap_or_default()
    });
    elapsed / threads as u32
}

/// Throughput with 1 and 2 reader threads (own handles), with and without
/// a writer swapping every millisecond. On a 2-core machine the writer
/// competes with the readers for a core; the "with writer" rows show the
/// readers' cost of swaps plus that competition.
fn threads(c: &mut Criterion) {
    let n = 100;
    let base = registry(n);
    let versions = [base.clone(), drained(&base)];
    let mut g = c.benchmark_group(format!("fleet/threads/{n}"));
    let fleet = Fleet::new(base, |b| b.strategy(RoundRobin).seed(1));
    for (threads, writer) in [(1, false), (2, false), (1, true), (2, true)] {
        let name = format!(
            "round_robin/{threads} thread{}{}",
            if threads > 1 { "s" } else { "" },
            if writer { ", writer every 1 ms" } else { "" }
        );
        g.bench_function(name, |b| {
            b.iter_custom(|iters| run_threads(&fleet, &versions, threads, iters, writer))
        });
    }
    g.finish();
}

/// The cost of `Fleet::install` (diff + rebuild with state carried over +
/// swap) for registries of 10, 1,000 and 100,000 deployments, one
/// deployment changing per swap.
fn swap(c: &mut Criterion) {
    let mut g = c.benchmark_group("fleet/install");
    g.sample_size(10);
    for n in [10usize, 1_000, 100_000] {
        let base = registry(n);
        let versions = [base.clone(), drained(&base)];
        let fleet = Fleet::new(base, |b| b.strategy(WeightedRoundRobin::new()).seed(1));
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || {
                    i ^= 1;
                    versions[i].clone()
                },
                |next| black_box(fleet.install(next, Duration::ZERO)),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, single, threads, swap);
criterion_main!(benches);
