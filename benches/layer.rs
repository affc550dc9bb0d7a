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
    let mut alone = tower::service_fn(fixed);
    group.bench_function("inner_alone", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = alone.ready().await.unwrap().call(request()).await.unwrap();
                black_box(response.into_body().collect().await.unwrap().to_bytes())
            })
        })
    });
    let mut routed = layer.layer(tower::service_fn(fixed));
    group.bench_function("through_layer", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = routed.ready().await.unwrap().call(request()).await.unwrap();
                black_box(response.into_body().collect().await.unwrap().to_bytes())
            })
        })
    });
    let mut routed_once = once.layer(tower::service_fn(fixed));
    group.bench_function("through_layer_one_attempt", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = routed_once
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
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
