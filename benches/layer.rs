//! The tower layer's own cost: one request through `FleetLayer` over an
//! in-memory inner service (a `tower::service_fn` answering a fixed
//! response), against the inner service alone, in the same run. Both
//! futures are driven to completion on a tokio current-thread runtime and
//! the response body is read to its end, so the layer's report is inside
//! the measured time.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use modelfleet::select::RoundRobin;
use modelfleet::tower::FleetLayer;
use modelfleet::{Deployment, Fleet, MonotonicClock, Policy, Registry, Request};
use tower::{Layer, Service, ServiceExt};

fn fixed(
    _: http::Request<Full<Bytes>>,
) -> std::future::Ready<Result<http::Response<Full<Bytes>>, Infallible>> {
    std::future::ready(Ok(http::Response::new(Full::new(Bytes::from_static(
        br#"{"choices":[{"message":{"content":"hi"}}]}"#,
    )))))
}

fn request() -> http::Request<Full<Bytes>> {
    let mut req = http::Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from_static(br#"{"model":"gpt-4"}"#)))
        .unwrap();
    req.extensions_mut().insert(Request::new("gpt-4"));
    req
}

/// Measures one request through `service`, its response body read to the
/// end (so a layer's report at the body's end is inside the time).
fn round_trips<S, B>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    mut service: S,
) where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    group.bench_function(name, |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = service
                    .ready()
                    .await
                    .unwrap()
                    .call(request())
                    .await
                    .unwrap();
                black_box(response.into_body().collect().await.unwrap().to_bytes())
            })
        })
    });
}

fn layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for i in 1..=4 {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://10.0.0.{i}:8000/v1"))
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    let fleet = Fleet::builder(reg)
        .selector(|b| b.strategy(RoundRobin).seed(1))
        .clock(Arc::new(MonotonicClock::new()))
        .build();
    let layer = FleetLayer::builder(fleet.clone())
        .strip_prefix("/v1")
        .build()
        .unwrap();
    // Without retries the layer keeps no copy of the request's head for a
    // next attempt.
    let once = FleetLayer::builder(fleet)
        .strip_prefix("/v1")
        .max_attempts(1)
        .build()
        .unwrap();

    let mut group = c.benchmark_group("tower_request");
    round_trips(
        &mut group,
        &runtime,
        "inner_alone",
        tower::service_fn(fixed),
    );
    let routed = layer.layer(tower::service_fn(fixed));
    round_trips(&mut group, &runtime, "through_layer", routed);
    let routed_once = once.layer(tower::service_fn(fixed));
    round_trips(
        &mut group,
        &runtime,
        "through_layer_one_attempt",
        routed_once,
    );
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
