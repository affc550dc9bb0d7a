//! Registry costs, side by side with what a name-keyed platform does: a
//! `std::collections::HashMap<String, Deployment>` keyed by `provider/model`.
//!
//! ```text
//! cargo bench --bench registry -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The peer keyed by name can hold only one deployment per model name, so
//! where it must hold many it gets them the way such platforms make users do
//! it: renamed (`gpt-4-node0`, `gpt-4-node1`, …).

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use modelfleet::{Deployment, IdentityPolicy, ModelKey, Policy, Registry};

const PROVIDER: &str = "openai-api-compatible";

/// The endpoint of deployment `i`: distinct for every `i` below 2^24.
fn endpoint(i: usize) -> String {
    format!(
        "http://10.{}.{}.{}/v1",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// `n` deployments of `gpt-4`, one per endpoint.
fn fleet(n: usize) -> Vec<Deployment> {
    (0..n)
        .map(|i| {
            Deployment::builder(PROVIDER, "gpt-4")
                .endpoint(&endpoint(i))
                .build()
                .expect("valid deployment")
        })
        .collect()
}

/// `n` deployments renamed `gpt-4-node{i}`, as a name-keyed platform holds them.
fn renamed(n: usize) -> Vec<Deployment> {
    (0..n)
        .map(|i| {
            Deployment::builder(PROVIDER, &format!("gpt-4-node{i}"))
                .endpoint(&endpoint(i))
                .build()
                .expect("valid deployment")
        })
        .collect()
}

/// The peer's key: `provider/model`.
fn name_key(d: &Deployment) -> String {
    format!("{}/{}", d.provider(), d.model())
}

fn registry(policy: Policy, deployments: &[Deployment]) -> Registry {
    let mut reg = Registry::with_capacity(policy, deployments.len());
    for d in deployments {
        reg.insert(d.clone()).expect("distinct keys");
    }
    reg
}

fn peer(deployments: &[Deployment]) -> HashMap<String, Deployment> {
    deployments
        .iter()
        .map(|d| (name_key(d), d.clone()))
        .collect()
}

/// Replacing a stored deployment (same key) in a store of 1,000. The clone
/// of the incoming deployment is made outside the timing; deriving the key
/// (the policy, or the peer's `format!`) is inside it.
fn upsert(c: &mut Criterion) {
    let mut g = c.benchmark_group("upsert_existing_1k");
    let fleet = fleet(1_000);
    let renamed = renamed(1_000);

    let mut by_endpoint = registry(Policy::NAME_ENDPOINT, &fleet);
    let d = fleet[500].clone();
    g.bench_function("modelfleet/name+endpoint", |b| {
        b.iter_batched(
            || d.clone(),
            |d| by_endpoint.upsert(black_box(d)),
            BatchSize::SmallInput,
        )
    });

    let mut by_name = registry(Policy::NAME, &renamed);
    let d = renamed[500].clone();
    g.bench_function("modelfleet/name", |b| {
        b.iter_batched(
            || d.clone(),
            |d| by_name.upsert(black_box(d)),
            BatchSize::SmallInput,
        )
    });

    let mut map = peer(&renamed);
    g.bench_function("peer/HashMap<String,_>", |b| {
        b.iter_batched(
            || d.clone(),
            |d| {
                let d = black_box(d);
                map.insert(name_key(&d), d)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Looking up one deployment by a key already at hand, in a store of 1,000.
fn get(c: &mut Criterion) {
    let mut g = c.benchmark_group("get_1k");
    let fleet = fleet(1_000);
    let renamed = renamed(1_000);

    let by_endpoint = registry(Policy::NAME_ENDPOINT, &fleet);
    let key = Policy::NAME_ENDPOINT.key(&fleet[500]);
    g.bench_function("modelfleet/name+endpoint", |b| {
        b.iter(|| by_endpoint.get(black_box(&key)).map(Deployment::weight))
    });

    let by_name = registry(Policy::NAME, &renamed);
    let key: ModelKey = Policy::NAME.key(&renamed[500]);
    g.bench_function("modelfleet/name", |b| {
        b.iter(|| by_name.get(black_box(&key)).map(Deployment::weight))
    });

    let map = peer(&renamed);
    let key = name_key(&renamed[500]);
    g.bench_function("peer/HashMap<String,_>", |b| {
        b.iter(|| map.get(black_box(key.as_str())).map(Deployment::weight))
    });
    g.finish();
}

/// `insert` of a deployment whose key is taken: the error path, which
/// formats the stored deployment into the error.
fn insert_duplicate(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert_duplicate_1k");
    let fleet = fleet(1_000);
    let mut reg = registry(Policy::NAME_ENDPOINT, &fleet);
    let d = fleet[500].clone();
    g.bench_function("modelfleet/name+endpoint", |b| {
        b.iter_batched(
            || d.clone(),
            |d| reg.insert(black_box(d)).is_err(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Building a registry from scratch under `name+endpoint` (distinct
/// endpoints) with `insert`, and the peer map of as many renamed
/// deployments. The deployments are cloned outside the timing; dropping the
/// built store is outside it too.
fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    for n in [1_000, 100_000] {
        let fleet = fleet(n);
        let renamed = renamed(n);
        g.sampling_mode(SamplingMode::Flat);
        if n >= 100_000 {
            g.sample_size(10);
        }
        g.bench_function(format!("modelfleet/name+endpoint/{n}"), |b| {
            b.iter_batched(
                || fleet.clone(),
                |ds| {
                    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
                    for d in ds {
                        reg.insert(black_box(d)).expect("distinct keys");
                    }
                    reg
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("peer/HashMap<String,_>/{n}"), |b| {
            b.iter_batched(
                || renamed.clone(),
                |ds| {
                    let mut map = HashMap::new();
                    for d in ds {
                        let d = black_box(d);
                        map.insert(name_key(&d), d);
                    }
                    map
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Walking the candidates of one model: 10 or 1,000 deployments of `gpt-4`
/// among 1,000 other models.
fn of_model(c: &mut Criterion) {
    let mut g = c.benchmark_group("of_model_walk");
    let others = renamed(1_000);
    for n in [10, 1_000] {
        let mut reg = registry(Policy::NAME_ENDPOINT, &others);
        for d in fleet(n) {
            reg.insert(d).expect("distinct keys");
        }
        g.bench_function(format!("modelfleet/{n}"), |b| {
            b.iter(|| {
                reg.of_model(black_box("gpt-4"))
                    .map(|(_, d)| u64::from(d.weight()))
                    .sum::<u64>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, upsert, get, insert_duplicate, build, of_model);
criterion_main!(benches);
