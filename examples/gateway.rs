//! An OpenAI-compatible gateway on modelfleet's tower layer: axum in front,
//! hyper-util's client behind, `/v1/chat/completions` balanced over four
//! upstreams, streaming included.
//!
//! `cargo run --example gateway` starts, all on 127.0.0.1:
//! - four mock upstreams: `a` (weight 3) and `b` (weight 1), a weighted
//!   pair; `limited`, which answers 429 with `Retry-After: 2`; `broken`,
//!   which answers 500;
//! - the gateway;
//!
//! then sends bounded traffic through the gateway (plain and streamed
//! completions), prints the traffic split and the failovers, reloads the
//! registry (a new upstream `c` comes in, `a` is drained and removed once
//! its last request ended) under traffic, and exits.
//!
//! `cargo run --example gateway -- --serve` keeps the gateway serving and
//! prints a `curl` command to try it; `--port N` picks its port; `--bench`
//! serves the weighted pair only, for `benches/gateway_loopback.sh`.
//!
//! The routing code is the part between the `routing` markers: everything
//! else is upstream mocks, traffic and printing.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use modelfleet::tower::{FleetLayer, FleetService, FromExtension};
use modelfleet::{Deployment, Fleet, MonotonicClock, Policy, Registry, Request};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

// ---- routing: the gateway's own code ----

/// The largest request body the gateway reads.
const MAX_BODY: usize = 1 << 20;

/// The layer over the upstream client, as the handlers' state.
type Gateway = FleetService<Client<HttpConnector, Full<Bytes>>, Policy, FromExtension>;

/// The gateway's routes over `fleet`.
fn gateway(fleet: Fleet) -> Result<Router, modelfleet::tower::Error> {
    let layer = FleetLayer::builder(fleet)
        .affinity_header("x-session-id")
        .strip_prefix("/v1")
        .tokens(total_tokens)
        .max_attempts(3)
        .build()?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let app = Router::new().route("/v1/chat/completions", post(chat));
    Ok(app.with_state(layer.layer(client)))
}

/// One completion: the model from the JSON body, the rest to the layer.
async fn chat(State(gateway): State<Gateway>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return openai_error(StatusCode::BAD_REQUEST, "unreadable or too large", None);
    };
    let Some(model) = model_of(&body) else {
        return openai_error(StatusCode::BAD_REQUEST, "the body has no \"model\"", None);
    };
    let mut request = http::Request::from_parts(parts, Full::new(body));
    request.extensions_mut().insert(Request::new(&model));
    match gateway.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => failed(&e),
    }
}

/// The `model` of a chat completion request.
fn model_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("model")?.as_str().map(Into::into)
}

/// The token count of a completion or of a stream's last usage chunk.
fn total_tokens(frame: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(frame).ok()?;
    let at = text.rfind("\"total_tokens\":")? + "\"total_tokens\":".len();
    let digits = text[at..].split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

// ---- end of routing ----

/// The layer's error as an OpenAI-shaped error, with `Retry-After` when the
/// fleet knows when a deployment comes back.
fn failed(e: &modelfleet::tower::Error) -> Response {
    use modelfleet::tower::Error;
    // Generic messages: the layer's errors name deployments and endpoints,
    // which are the gateway's business, not its clients'.
    let (status, message) = match e {
        Error::Unavailable { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no deployment is available",
        ),
        Error::Upstream { .. } => (StatusCode::BAD_GATEWAY, "the upstream could not be reached"),
        Error::InvalidUri { .. } => (StatusCode::BAD_REQUEST, "the path cannot be routed"),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the gateway could not route the request",
        ),
    };
    eprintln!("gateway: {e}");
    openai_error(status, message, e.retry_time())
}

/// An error in OpenAI's shape, with `Retry-After` when the fleet knows when
/// a deployment comes back.
fn openai_error(
    status: StatusCode,
    message: &str,
    retry: Option<std::time::SystemTime>,
) -> Response {
    let body = json!({ "error": { "message": message, "type": "modelfleet_error" } });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(at) = retry {
        let date = httpdate::fmt_http_date(at);
        if let Ok(value) = HeaderValue::from_str(&date) {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, value);
        }
    }
    response
}

/// How a mock upstream answers.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    Completes,
    RateLimits,
    Fails,
}

/// Requests seen per upstream, by name.
type Counts = Arc<Mutex<BTreeMap<&'static str, u64>>>;

/// Starts a mock OpenAI-compatible upstream on a free loopback port.
async fn upstream(
    name: &'static str,
    behaviour: Behaviour,
    counts: Counts,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tokens = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: Bytes| {
            let (counts, tokens) = (counts.clone(), tokens.clone());
            async move {
                *counts.lock().unwrap().entry(name).or_default() += 1;
                match behaviour {
                    Behaviour::RateLimits => {
                        let mut r = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
                        r.headers_mut()
                            .insert("retry-after", HeaderValue::from_static("2"));
                        r
                    }
                    Behaviour::Fails => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                    Behaviour::Completes => {
                        let n = 20 + tokens.fetch_add(1, Ordering::Relaxed) % 10;
                        completion(name, n, serde_json::from_slice::<Value>(&body).ok())
                    }
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// A completion from upstream `name`, streamed as server-sent events when
/// the request asked for it.
fn completion(name: &str, tokens: u64, request: Option<Value>) -> Response {
    let stream = request
        .and_then(|r| r.get("stream")?.as_bool())
        .unwrap_or(false);
    let usage =
        json!({ "prompt_tokens": 10, "completion_tokens": tokens - 10, "total_tokens": tokens });
    if !stream {
        let body = json!({
            "object": "chat.completion",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": format!("hello from {name}") } }],
            "usage": usage,
        });
        return axum::Json(body).into_response();
    }
    let chunks: Vec<Result<Bytes, Infallible>> = ["hello", " from ", name]
        .iter()
        .map(|piece| json!({ "object": "chat.completion.chunk", "choices": [{ "index": 0, "delta": { "content": piece } }] }))
        .chain([json!({ "object": "chat.completion.chunk", "choices": [], "usage": usage })])
        .map(|chunk| Ok(Bytes::from(format!("data: {chunk}\n\n"))))
        .chain([Ok(Bytes::from_static(b"data: [DONE]\n\n"))])
        .collect();
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

fn deployment(name: &str, addr: SocketAddr, weight: u32) -> Deployment {
    Deployment::builder("openai", "gpt-4")
        .endpoint(&format!("http://{addr}/v1"))
        .weight(weight)
        .label("upstream", name)
        .build()
        .expect("a valid deployment")
}

/// Sends `n` completions through the gateway at `gateway`, `concurrency`
/// at a time; returns the status counts.
async fn traffic(
    gateway: SocketAddr,
    n: usize,
    concurrency: usize,
    stream: bool,
) -> BTreeMap<u16, usize> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, statuses, next) = (client.clone(), statuses.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n as u64 {
                    let body = json!({ "model": "gpt-4", "stream": stream, "messages": [{ "role": "user", "content": "hi" }] });
                    let request = http::Request::post(format!("http://{gateway}/v1/chat/completions"))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.to_string())))
                        .expect("a valid request");
                    let status = match client.request(request).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // Read the whole body: the pick is reported at its end.
                            let _ = response.into_body().collect().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("a traffic worker");
    }
    statuses.lock().unwrap().clone()
}

fn print_split(title: &str, counts: &Counts, before: &BTreeMap<&'static str, u64>) {
    let now = counts.lock().unwrap().clone();
    let line: Vec<String> = now
        .iter()
        .map(|(name, n)| format!("{name} {}", n - before.get(name).copied().unwrap_or(0)))
        .collect();
    println!("{title}: upstream requests: {}", line.join(", "));
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve = args.iter().any(|a| a == "--serve");
    let bench = args.iter().any(|a| a == "--bench");
    let port: u16 = match args.iter().position(|a| a == "--port") {
        Some(i) => args.get(i + 1).ok_or("--port needs a number")?.parse()?,
        None => 0,
    };
    if let Some(unknown) = args.iter().find(|a| {
        !["--serve", "--bench", "--port"].contains(&a.as_str()) && a.parse::<u16>().is_err()
    }) {
        return Err(format!(
            "unknown argument {unknown:?}; expected --serve, --bench and --port N"
        )
        .into());
    }

    let counts: Counts = Arc::default();
    let a = upstream("a", Behaviour::Completes, counts.clone()).await?;
    let b = upstream("b", Behaviour::Completes, counts.clone()).await?;
    let limited = upstream("limited", Behaviour::RateLimits, counts.clone()).await?;
    let broken = upstream("broken", Behaviour::Fails, counts.clone()).await?;
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    let pair = [deployment("a", a, 3), deployment("b", b, 1)];
    let troubled = [
        deployment("limited", limited, 1),
        deployment("broken", broken, 1),
    ];
    // `--bench` serves the healthy pair only: benches/gateway_loopback.sh
    // compares the gateway with upstream `a` called directly.
    for d in pair
        .into_iter()
        .chain(troubled.into_iter().filter(|_| !bench))
    {
        reg.insert(d)?;
    }
    let clock = MonotonicClock::new();
    let fleet = Fleet::builder(reg.clone()).clock(clock).build();

    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let app = gateway(fleet.clone())?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!(
        "gateway on http://{addr}/v1 (upstreams a={a} b={b} limited={limited} broken={broken})"
    );

    if bench {
        println!("bench {a} {addr}");
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
    if serve {
        println!(
            "try: curl -s http://{addr}/v1/chat/completions -H 'content-type: application/json' -d '{{\"model\":\"gpt-4\",\"stream\":true,\"messages\":[]}}'"
        );
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }

    let before = counts.lock().unwrap().clone();
    let statuses = traffic(addr, 200, 8, false).await;
    println!("200 completions, 8 at a time: client statuses {statuses:?}");
    print_split("  split", &counts, &before);
    let failed = ["limited", "broken"].map(|n| counts.lock().unwrap().get(n).copied().unwrap_or(0));
    println!(
        "  failovers: {} attempts got a 429 from `limited` and {} a 500 from `broken`, each retried on another upstream",
        failed[0], failed[1]
    );
    let registry = fleet.registry();
    for h in fleet.health(fleet.now().unwrap_or_default()) {
        let name = registry
            .get(&h.key)
            .and_then(|d| d.label("upstream"))
            .unwrap_or("?");
        let back = h
            .available_at
            .map(|at| format!(", back at {:.1} s", at.as_secs_f64()))
            .unwrap_or_default();
        println!("  {name}: {:?}{back}", h.state);
    }

    let before = counts.lock().unwrap().clone();
    let statuses = traffic(addr, 20, 4, true).await;
    println!("20 streamed completions: client statuses {statuses:?}");
    print_split("  split", &counts, &before);
    let key_a = reg
        .keys()
        .find(|k| k.to_string().contains(&a.to_string()))
        .expect("a's key")
        .clone();
    let selector = fleet.selector();
    println!(
        "  a: {} in flight after the streams ended, latency estimate {:?}",
        fleet.in_flight(&key_a).unwrap_or(0),
        selector.latency(&key_a)
    );

    // Hot reload under traffic: c comes in, a is drained, then removed.
    let c = upstream("c", Behaviour::Completes, counts.clone()).await?;
    let mut next = reg.clone();
    next.insert(deployment("c", c, 3))?;
    let now = fleet.now().unwrap_or_default();
    let changes = fleet.install(next, now);
    println!("reload: {} change(s), c added at {c}", changes.len());
    let load = tokio::spawn(traffic(addr, 200, 8, false));
    let drain = fleet.drain(&key_a, fleet.now().unwrap_or_default())?;
    let drained_at = counts.lock().unwrap().get("a").copied().unwrap_or(0);
    while !drain.is_idle() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let removal = drain.remove(fleet.now().unwrap_or_default())?;
    let statuses = load.await?;
    let a_after = counts.lock().unwrap().get("a").copied().unwrap_or(0) - drained_at;
    println!(
        "  drained a and removed it ({} change); 200 completions meanwhile: client statuses {statuses:?}",
        removal.len()
    );
    println!(
        "  a got {a_after} request(s) after its drain began (picked before it, still on their way)"
    );
    let registry = fleet.registry();
    let serving: Vec<&str> = registry
        .iter()
        .filter_map(|(_, d)| d.label("upstream"))
        .collect();
    println!("  now serving: {}", serving.join(", "));
    Ok(())
}
