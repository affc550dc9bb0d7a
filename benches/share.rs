//! Sharing between replicas (`modelfleet::share`), side by side with the
//! same fleet not sharing: the cost a report pays on the reporting thread
//! (a success, and a 429 that cools, the one that leaves an event), a
//! select, and the sync task's `events` + `absorb` of one batch.
//!
//! ```sh
//! cargo bench --bench share -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use modelfleet::health::{FailureKind, Report};
use modelfleet::share::ReplicaId;
use modelfleet::{Deployment, Fleet, ManualClock, ModelKey, Policy, Registry, Request};

fn registry(n: usize) -> Registry {
    let mut reg = Registry::with_capacity(Policy::NAME_ENDPOINT, n);
    for i in 0..n {
        let d = Deployment::builder("openai", "gpt-4")
            .endpoint(&format!("http://10.0.{}.{}/v1", i >> 8, i & 255))
            .rpm(1_000_000)
            .build()
            .expect("valid deployment");
        reg.insert(d).expect("distinct endpoints");
    }
    reg
}

fn fleets(n: usize) -> [(&'static str, Fleet, Arc<ManualClock>); 2] {
    let reg = registry(n);
    let clock = Arc::new(ManualClock::new());
    let off = Fleet::builder(reg.clone()).clock(clock.clone()).build();
    let on = Fleet::builder(reg)
        .share(ReplicaId::new("bench").expect("name"), clock.clone())
        .build();
    [("off", off, clock.clone()), ("on", on, clock)]
}

fn report(c: &mut Criterion) {
    let mut g = c.benchmark_group("share/report");
    let key: ModelKey = "openai/gpt-4@http://10.0.0.0/v1".parse().expect("key");
    for (name, fleet, _) in fleets(10) {
        let ok = Report::success(Duration::from_secs(1), Duration::from_millis(80));
        g.bench_function(format!("success/{name}"), |b| {
            b.iter(|| black_box(fleet.report(black_box(&key), ok)))
        });
        // Each 429 ends later than the last, so each one cools again and,
        // when sharing, leaves an event; the outbox is emptied outside the
        // timed loop.
        let mut t = 0u64;
        g.bench_function(format!("429_that_cools/{name}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    t += 1;
                    let limited = Report::failure(
                        Duration::from_millis(t),
                        FailureKind::rate_limited(Some(Duration::from_secs(30))),
                    );
                    black_box(fleet.report(&key, limited));
                }
                let spent = start.elapsed();
                drop(fleet.events());
                spent
            })
        });
    }
    g.finish();
}

fn select(c: &mut Criterion) {
    let mut g = c.benchmark_group("share/select");
    let request = Request::new("gpt-4");
    for (name, fleet, _) in fleets(10) {
        g.bench_function(name, |b| {
            b.iter(|| drop(black_box(fleet.select(black_box(&request)).expect("pick"))))
        });
    }
    g.finish();
}

/// One sync of two replicas with 100 limited deployments each: the
/// events of one (usage of every deployment) absorbed by the other.
fn sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("share/sync_100");
    let reg = registry(100);
    let clock = Arc::new(ManualClock::new());
    let [a, b] = ["a", "b"].map(|n| {
        Fleet::builder(reg.clone())
            .share(ReplicaId::new(n).expect("name"), clock.clone())
            .build()
    });
    let request = Request::new("gpt-4");
    g.bench_function("events+absorb", |bench| {
        bench.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..100 {
                    drop(a.select(&request).expect("pick"));
                }
                let start = Instant::now();
                let events = a.events();
                black_box(b.absorb(&events));
                spent += start.elapsed();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, report, select, sync);
criterion_main!(benches);
