//! The tower layer over real HTTP: upstream servers on loopback ports
//! started by each test, hyper-util's client as the inner service, the
//! fleet's clock a `ManualClock` (time moves only when a test moves it).
//!
//! Every wait is for an event (a request arriving, a body ending), bounded
//! by a guard that fails the test instead of hanging it; nothing sleeps.

#![cfg(feature = "tower")]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use modelfleet::health::HealthPolicy;
use modelfleet::select::{RoundRobin, WeightedRandom, WeightedRoundRobin};
use modelfleet::tower::{Error, FleetLayer, FleetLayerBuilder, FleetService, FromExtension, Once};
use modelfleet::{Clock, Deployment, Fleet, ManualClock, ModelKey, Policy, Registry, Request};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc};
use tower::{Layer, ServiceExt};

// ---------------------------------------------------------------------------
// Upstreams

/// What an upstream answers with: a whole body, or chunks the test sends.
enum Reply {
    Whole(Option<Bytes>),
    Chunks(mpsc::UnboundedReceiver<Bytes>),
}

impl Body for Reply {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut *self {
            Reply::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Reply::Chunks(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }
}

fn reply(status: u16, body: &'static str) -> http::Response<Reply> {
    let mut response = http::Response::new(Reply::Whole(Some(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

/// One request as an upstream saw it.
#[derive(Clone, Debug)]
struct Hit {
    id: String,
    uri: String,
    host: Option<String>,
    authorization: Option<String>,
}

type Answer = Pin<Box<dyn Future<Output = http::Response<Reply>> + Send>>;
type Handler = Arc<dyn Fn(Hit) -> Answer + Send + Sync>;

fn answer(f: impl Fn(Hit) -> http::Response<Reply> + Send + Sync + 'static) -> Handler {
    Arc::new(move |hit| {
        let response = f(hit);
        Box::pin(async move { response })
    })
}

/// A server on a loopback port, bound at once (so the fleet can name its
/// endpoint) and serving from `serve` on.
struct Upstream {
    name: &'static str,
    listener: Option<TcpListener>,
    endpoint: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    arrived: Arc<Notify>,
}

impl Upstream {
    async fn bind(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/v1", listener.local_addr().unwrap());
        Self {
            name,
            listener: Some(listener),
            endpoint,
            hits: Arc::default(),
            arrived: Arc::default(),
        }
    }

    fn deployment(&self, weight: u32, priority: u32) -> Deployment {
        Deployment::builder("openai", "gpt-4")
            .endpoint(&self.endpoint)
            .weight(weight)
            .priority(priority)
            .credential(&format!("sk-{}", self.name))
            .build()
            .unwrap()
    }

    fn key(&self) -> ModelKey {
        format!("openai/gpt-4@{}", self.endpoint).parse().unwrap()
    }

    fn hits(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived here.
    async fn arrivals(&self, n: usize) {
        while self.hits() < n {
            self.arrived.notified().await;
        }
    }

    fn serve(&mut self, log: &Log, handler: Handler) {
        let listener = self.listener.take().expect("served twice");
        let (name, hits, arrived, log) = (
            self.name,
            self.hits.clone(),
            self.arrived.clone(),
            log.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (hits, arrived, log, handler) =
                    (hits.clone(), arrived.clone(), log.clone(), handler.clone());
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_owned())
                    };
                    let hit = Hit {
                        id: header("x-test-id").unwrap_or_default(),
                        uri: req.uri().to_string(),
                        host: header("host"),
                        authorization: header("authorization"),
                    };
                    log.lock()
                        .unwrap()
                        .entry(hit.id.clone())
                        .or_default()
                        .push(name);
                    hits.lock().unwrap().push(hit.clone());
                    arrived.notify_one();
                    let answer = handler(hit);
                    async move { Ok::<_, std::convert::Infallible>(answer.await) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
    }
}

/// Which upstreams each client request (by its `x-test-id`) reached, in order.
type Log = Arc<Mutex<HashMap<String, Vec<&'static str>>>>;

// ---------------------------------------------------------------------------
// The gateway

type Inner = Client<HttpConnector, Full<Bytes>>;
type Gateway = FleetService<Inner, Policy, FromExtension>;

struct Setup {
    clock: Arc<ManualClock>,
    fleet: Fleet,
}

fn fleet(
    deployments: impl IntoIterator<Item = Deployment>,
    configure: impl for<'r> FnOnce(
        modelfleet::SelectorBuilder<'r, Policy>,
    ) -> modelfleet::SelectorBuilder<'r, Policy>,
) -> Setup {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for d in deployments {
        reg.insert(d).unwrap();
    }
    let clock = Arc::new(ManualClock::starting_at(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ));
    clock.set(Duration::from_secs(100));
    let fleet = Fleet::builder(reg)
        .selector(configure)
        .clock(Arc::clone(&clock))
        .build();
    Setup { clock, fleet }
}

fn no_health() -> modelfleet::health::ValidHealthPolicy {
    HealthPolicy::disabled().validated().unwrap()
}

/// Upstreams of these names, bound and not yet serving.
async fn upstreams<const N: usize>(names: [&'static str; N]) -> Vec<Upstream> {
    let mut ups = Vec::with_capacity(N);
    for name in names {
        ups.push(Upstream::bind(name).await);
    }
    ups
}

fn client() -> Inner {
    Client::builder(TokioExecutor::new()).build_http()
}

fn gateway(builder: FleetLayerBuilder<Policy>) -> Gateway {
    builder.strip_prefix("/v1").build().unwrap().layer(client())
}

fn post(id: &str) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::post("/v1/chat/completions?stream=false")
        .header("x-test-id", id)
        .body(Full::new(Bytes::from_static(br#"{"model":"gpt-4"}"#)))
        .unwrap();
    req.extensions_mut().insert(Request::new("gpt-4"));
    req
}

/// Sends `req` and reads the whole response.
async fn send<B>(
    gateway: &FleetService<Inner, Policy, FromExtension>,
    req: http::Request<B>,
) -> Result<(StatusCode, Bytes), Error>
where
    Gateway: tower::Service<
            http::Request<B>,
            Response = http::Response<modelfleet::tower::ReportingBody<Incoming>>,
            Error = Error,
        >,
{
    let response = gateway.clone().oneshot(req).await?;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, body))
}

/// Runs a test's body on a fresh runtime, failing it (instead of hanging)
/// if it does not finish within a generous bound.
fn run<F: Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), test)
                .await
                .expect("the test did not finish: an awaited event never came");
        });
}

fn in_flight(setup: &Setup, up: &Upstream) -> u32 {
    setup.fleet.in_flight(&up.key()).unwrap()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn nothing_is_lost_every_request_gets_exactly_one_response() {
    run(async {
        let log = Log::default();
        let (mut a, mut b, mut c) = (
            Upstream::bind("a").await,
            Upstream::bind("b").await,
            Upstream::bind("c").await,
        );
        let setup = fleet(
            [a.deployment(1, 0), b.deployment(1, 0), c.deployment(1, 0)],
            |s| s.strategy(RoundRobin).seed(1).health(no_health()),
        );
        a.serve(&log, answer(|_| reply(200, "a")));
        b.serve(&log, answer(|_| reply(200, "b")));
        // One upstream always overloaded: its requests are retried elsewhere.
        c.serve(&log, answer(|_| reply(503, "busy")));
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()));

        const N: usize = 300;
        let mut tasks = Vec::new();
        for i in 0..N {
            let gateway = gateway.clone();
            tasks.push(tokio::spawn(async move {
                send(&gateway, post(&i.to_string())).await
            }));
        }
        let mut answered = 0;
        for task in tasks {
            let (status, body) = task.await.unwrap().unwrap();
            assert_eq!(status, StatusCode::OK);
            assert!(body == "a" || body == "b", "{body:?}");
            answered += 1;
        }
        assert_eq!(answered, N);
        assert_eq!(a.hits() + b.hits(), N, "one success per client request");
        let log = log.lock().unwrap();
        assert_eq!(log.len(), N);
        for (id, path) in log.iter() {
            let successes = path.iter().filter(|u| **u != "c").count();
            assert_eq!(successes, 1, "request {id} went {path:?}");
        }
        for up in [&a, &b, &c] {
            assert_eq!(in_flight(&setup, up), 0);
        }
    });
}

/// Sends `n` requests through a gateway over upstreams `a` (weight 3) and
/// `b` (weight 1) with the strategy `configure` sets; returns their hits.
fn split(
    n: usize,
    configure: impl for<'r> FnOnce(
        modelfleet::SelectorBuilder<'r, Policy>,
    ) -> modelfleet::SelectorBuilder<'r, Policy>
    + Send
    + 'static,
) -> (usize, usize) {
    let mut hits = (0, 0);
    let out = &mut hits;
    run(async move {
        let log = Log::default();
        let (mut a, mut b) = (Upstream::bind("a").await, Upstream::bind("b").await);
        let setup = fleet([a.deployment(3, 0), b.deployment(1, 0)], |s| {
            configure(s).health(no_health())
        });
        a.serve(&log, answer(|_| reply(200, "a")));
        b.serve(&log, answer(|_| reply(200, "b")));
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()));
        for i in 0..n {
            send(&gateway, post(&i.to_string())).await.unwrap();
        }
        *out = (a.hits(), b.hits());
    });
    hits
}

#[test]
fn weighted_round_robin_splits_exactly() {
    // Smooth WRR over weights 3 and 1 is exact over every window of 4.
    assert_eq!(
        split(400, |s| s.strategy(WeightedRoundRobin::new()).seed(7)),
        (300, 100)
    );
}

#[test]
fn weighted_random_splits_within_tolerance() {
    const N: usize = 2_000;
    let (a, b) = split(N, |s| s.strategy(WeightedRandom::new()).seed(11));
    // Expected 1,500 for `a`; a binomial standard deviation is
    // sqrt(2000 * 0.75 * 0.25) ≈ 19.4, and the tolerance ±60 is over
    // three of them. The seed is fixed, so the run is the same each
    // time: the tolerance says the split is right, not lucky.
    assert!((a as i64 - 1_500).abs() <= 60, "a got {a} of {N}");
    assert_eq!(a + b, N);
}

#[test]
fn a_retry_after_keeps_traffic_away_until_it_passes() {
    run(async {
        let log = Log::default();
        // `a` is the first tier, `b` the fallback tier: traffic goes to `a`
        // whenever it is available.
        let (mut a, mut b) = (Upstream::bind("a").await, Upstream::bind("b").await);
        let setup = fleet([a.deployment(1, 0), b.deployment(1, 1)], |s| s.seed(3));
        let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
        a.serve(
            &log,
            answer(move |_| {
                if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    let mut limited = reply(429, r#"{"error":"rate limited"}"#);
                    limited
                        .headers_mut()
                        .insert("retry-after", "2".parse().unwrap());
                    limited
                } else {
                    reply(200, "a")
                }
            }),
        );
        b.serve(&log, answer(|_| reply(200, "b")));
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()));

        // The 429 is retried on `b`; `a` cools for the two seconds it asked.
        let (status, body) = send(&gateway, post("0")).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"b"[..]));
        assert_eq!(log.lock().unwrap()["0"], ["a", "b"]);
        for i in 1..=10 {
            setup.clock.advance(Duration::from_millis(190));
            let (_, body) = send(&gateway, post(&i.to_string())).await.unwrap();
            assert_eq!(body, "b", "request {i} at +{}ms", i * 190);
        }
        assert_eq!(a.hits(), 1, "nothing reaches `a` while it cools");
        // 1,900 ms have passed; at 2 s `a` is back.
        setup.clock.advance(Duration::from_millis(100));
        let (_, body) = send(&gateway, post("11")).await.unwrap();
        assert_eq!(body, "a");
        assert_eq!(a.hits(), 2);
    });
}

#[test]
fn retries_never_repeat_an_upstream_even_across_an_install() {
    run(async {
        let log = Log::default();
        let mut ups = upstreams(["a", "b", "c", "d"]).await;
        let three: Vec<_> = ups[..3].iter().map(|u| u.deployment(1, 0)).collect();
        let all: Vec<_> = ups.iter().map(|u| u.deployment(1, 0)).collect();
        let setup = fleet(three.clone(), |s| {
            s.strategy(RoundRobin).seed(5).health(no_health())
        });
        let registry = |ds: &[Deployment]| {
            let mut reg = Registry::new(Policy::NAME_ENDPOINT);
            for d in ds {
                reg.insert(d.clone()).unwrap();
            }
            reg
        };
        let (with_d, without_d) = (registry(&all), registry(&three));
        // `a` installs a new version each time it is hit, alternately with
        // and without `d`, between the attempts of the request that hit it.
        let (fleet, clock, flip) = (
            setup.fleet.clone(),
            Arc::clone(&setup.clock),
            Arc::new(Mutex::new(false)),
        );
        ups[0].serve(
            &log,
            answer(move |_| {
                let mut flip = flip.lock().unwrap();
                *flip = !*flip;
                let next = if *flip {
                    with_d.clone()
                } else {
                    without_d.clone()
                };
                fleet.install(next, clock.now());
                reply(503, "a")
            }),
        );
        for up in &mut ups[1..] {
            let name = up.name;
            up.serve(&log, answer(move |_| reply(503, name)));
        }
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()).max_attempts(8));

        for i in 0..40 {
            let (status, _) = send(&gateway, post(&i.to_string())).await.unwrap();
            // Every attempt failed: the caller gets the last upstream answer.
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        }
        let log = log.lock().unwrap();
        let mut saw_d_after_install = false;
        for (id, path) in log.iter() {
            let mut seen = path.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(
                seen.len(),
                path.len(),
                "request {id} repeated an upstream: {path:?}"
            );
            // The plan runs out only when every deployment of the versions
            // it met was tried.
            assert!(path.len() >= 3, "request {id} gave up early: {path:?}");
            if let Some(at) = path.iter().position(|u| *u == "a") {
                saw_d_after_install |= path[at..].contains(&"d");
            }
        }
        assert!(
            saw_d_after_install,
            "an install between attempts was followed"
        );
        for up in &ups {
            if let Some(n) = setup.fleet.in_flight(&up.key()) {
                assert_eq!(n, 0);
            }
        }
    });
}

#[test]
fn a_drain_under_load_sends_nothing_new_and_loses_nothing_in_flight() {
    run(async {
        let log = Log::default();
        let (mut a, mut b) = (Upstream::bind("a").await, Upstream::bind("b").await);
        let setup = fleet([a.deployment(1, 0), b.deployment(1, 0)], |s| {
            s.strategy(RoundRobin).seed(9).health(no_health())
        });
        // Both upstreams hold every response until the gate opens.
        let gate = Arc::new(Semaphore::new(0));
        for up in [&mut a, &mut b] {
            let (gate, name) = (gate.clone(), up.name);
            up.serve(
                &log,
                Arc::new(move |_| {
                    let gate = gate.clone();
                    Box::pin(async move {
                        gate.acquire().await.unwrap().forget();
                        reply(200, name)
                    })
                }),
            );
        }
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()));
        let spawn = |from: usize, to: usize| {
            (from..to)
                .map(|i| {
                    let gateway = gateway.clone();
                    tokio::spawn(async move { send(&gateway, post(&i.to_string())).await })
                })
                .collect::<Vec<_>>()
        };

        let mut tasks = spawn(0, 20);
        a.arrivals(10).await;
        b.arrivals(10).await;
        assert_eq!(in_flight(&setup, &a), 10);
        let drain = setup.fleet.drain(&a.key(), setup.clock.now()).unwrap();
        assert_eq!(drain.in_flight(), 10);

        tasks.extend(spawn(20, 50));
        b.arrivals(40).await;
        assert_eq!(a.hits(), 10, "nothing new goes to the drained upstream");
        assert_eq!(drain.in_flight(), 10);

        gate.add_permits(1_000);
        for task in tasks {
            let (status, _) = task.await.unwrap().unwrap();
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!((a.hits(), b.hits()), (10, 40));
        assert!(drain.is_idle());
        assert_eq!(in_flight(&setup, &b), 0);
        drain.remove(setup.clock.now()).unwrap();
        assert_eq!(setup.fleet.registry().len(), 1);
    });
}

/// The `total_tokens` of an OpenAI-style usage object in a frame.
fn total_tokens(frame: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(frame).ok()?;
    let at = text.find("\"total_tokens\":")? + "\"total_tokens\":".len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// The senders of the streamed responses `up` serves: each request's
/// response is an event stream whose chunks the test sends through the
/// sender pushed here.
type Streams = Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>;

fn serve_streams(up: &mut Upstream, log: &Log) -> Streams {
    let streams = Streams::default();
    let senders = streams.clone();
    up.serve(
        log,
        answer(move |_| {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.lock().unwrap().push(tx);
            let mut response = http::Response::new(Reply::Chunks(rx));
            response
                .headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            response
        }),
    );
    streams
}

#[test]
fn a_streamed_response_reports_once_at_its_end() {
    run(async {
        let log = Log::default();
        let mut a = Upstream::bind("a").await;
        let setup = fleet([a.deployment(1, 0)], |s| s.seed(2).health(no_health()));
        let streams = serve_streams(&mut a, &log);
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()).tokens(total_tokens));
        let health = |s: &Setup| s.fleet.health(s.clock.now()).remove(0);

        let response = gateway.clone().oneshot(post("sse")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let tx = streams.lock().unwrap().pop().unwrap();
        for chunk in [
            "data: {\"delta\":\"Hel\"}\n\n",
            "data: {\"delta\":\"lo\"}\n\n",
        ] {
            tx.send(Bytes::from_static(chunk.as_bytes())).unwrap();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), chunk);
        }
        // Headers and two chunks in: nothing reported yet.
        setup.clock.advance(Duration::from_millis(750));
        assert_eq!(in_flight(&setup, &a), 1);
        assert_eq!(health(&setup).latency, None);
        assert_eq!(health(&setup).tokens_per_minute, 0);

        tx.send(Bytes::from_static(
            b"data: {\"usage\":{\"total_tokens\":42}}\n\ndata: [DONE]\n\n",
        ))
        .unwrap();
        drop(tx);
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
        assert_eq!(in_flight(&setup, &a), 0);
        let after = health(&setup);
        assert_eq!(
            after.latency,
            Some(Duration::from_millis(750)),
            "the whole stream's latency"
        );
        assert_eq!(
            after.tokens_per_minute, 42,
            "reported once, with the counted tokens"
        );
        drop(body);
        assert_eq!(health(&setup).tokens_per_minute, 42);
    });
}

#[test]
fn a_body_dropped_before_its_end_releases_without_a_report() {
    run(async {
        let log = Log::default();
        let mut a = Upstream::bind("a").await;
        let setup = fleet([a.deployment(1, 0)], |s| s.seed(2).health(no_health()));
        let streams = serve_streams(&mut a, &log);
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()).tokens(total_tokens));
        let response = gateway.clone().oneshot(post("gone")).await.unwrap();
        let mut body = response.into_body();
        let tx = streams.lock().unwrap().pop().unwrap();
        tx.send(Bytes::from_static(
            b"data: {\"usage\":{\"total_tokens\":7}}\n\n",
        ))
        .unwrap();
        body.frame().await.unwrap().unwrap();
        assert_eq!(in_flight(&setup, &a), 1);

        drop(body); // the client went away
        assert_eq!(in_flight(&setup, &a), 0);
        let health = setup.fleet.health(setup.clock.now()).remove(0);
        assert_eq!((health.latency, health.tokens_per_minute), (None, 0));
    });
}

#[test]
fn nothing_available_is_a_typed_error_with_the_time_to_retry() {
    run(async {
        let log = Log::default();
        let mut a = Upstream::bind("a").await;
        let setup = fleet([a.deployment(1, 0)], |s| s.seed(4));
        a.serve(
            &log,
            answer(|_| {
                let mut limited = reply(429, "slow down");
                limited
                    .headers_mut()
                    .insert("retry-after", "30".parse().unwrap());
                limited
            }),
        );
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()));
        let now = setup.clock.now();

        // The only deployment answers 429: that answer is the caller's.
        let (status, body) = send(&gateway, post("0")).await.unwrap();
        assert_eq!(
            (status, &body[..]),
            (StatusCode::TOO_MANY_REQUESTS, &b"slow down"[..])
        );

        let err = send(&gateway, post("1")).await.unwrap_err();
        let Error::Unavailable {
            retry_at,
            retry_time,
            ..
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(*retry_at, Some(now + Duration::from_secs(30)));
        assert_eq!(
            *retry_time,
            Some(setup.clock.system_time(now + Duration::from_secs(30)))
        );
        assert_eq!(err.retry_at(), *retry_at);
        assert_eq!(a.hits(), 1);
    });
}

#[test]
fn a_body_that_cannot_be_replayed_is_not_retried() {
    run(async {
        let log = Log::default();
        let (mut a, mut b) = (Upstream::bind("a").await, Upstream::bind("b").await);
        let setup = fleet([a.deployment(1, 0), b.deployment(1, 1)], |s| {
            s.seed(6).health(no_health())
        });
        a.serve(&log, answer(|_| reply(503, "a")));
        b.serve(&log, answer(|_| reply(200, "b")));
        let layer = FleetLayer::builder(setup.fleet.clone())
            .strip_prefix("/v1")
            .build()
            .unwrap();
        let once =
            layer.layer(Client::builder(TokioExecutor::new()).build_http::<Once<Full<Bytes>>>());

        let mut req = http::Request::post("/v1/chat/completions")
            .body(Once::new(Full::new(Bytes::from_static(b"{}"))))
            .unwrap();
        req.extensions_mut().insert(Request::new("gpt-4"));
        let response = once.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((a.hits(), b.hits()), (1, 0));

        // The same request with a body that replays goes on to `b`.
        let gateway = layer.layer(client());
        let (status, _) = send(&gateway, post("again")).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!((a.hits(), b.hits()), (2, 1));
    });
}

#[test]
fn the_uri_goes_onto_the_endpoint_with_host_and_credential() {
    run(async {
        let log = Log::default();
        let mut a = Upstream::bind("a").await;
        let setup = fleet([a.deployment(1, 0)], |s| s.seed(8));
        a.serve(&log, answer(|_| reply(200, "ok")));
        let gateway = gateway(
            FleetLayer::builder(setup.fleet.clone())
                .bearer(|c| Some(format!("resolved-{}", c.expose())))
                .affinity_header("x-session-id"),
        );
        let mut req = post("signed");
        req.headers_mut()
            .insert("authorization", "Bearer client-secret".parse().unwrap());
        req.headers_mut()
            .insert("host", "gateway.local".parse().unwrap());
        send(&gateway, req).await.unwrap();

        let hit = a.seen().remove(0);
        assert_eq!(hit.uri, "/v1/chat/completions?stream=false");
        let authority = a
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches("/v1");
        assert_eq!(hit.host.as_deref(), Some(authority));
        assert_eq!(hit.authorization.as_deref(), Some("Bearer resolved-sk-a"));
    });
}

#[test]
fn a_deployment_without_endpoint_is_a_typed_error() {
    run(async {
        let reg: Registry = [Deployment::builder("openai", "gpt-4").build().unwrap()]
            .into_iter()
            .collect();
        let clock = Arc::new(ManualClock::new());
        let fleet = Fleet::builder(reg).clock(Arc::clone(&clock)).build();
        let gateway = FleetLayer::new(fleet.clone()).unwrap().layer(client());
        let err = send(&gateway, post("0")).await.unwrap_err();
        assert!(
            matches!(&err, Error::NoEndpoint { deployment, .. } if deployment.to_string() == "openai/gpt-4@"),
            "{err}"
        );
        assert_eq!(err.field(), Some(modelfleet::Field::Endpoint));
        assert_eq!(
            err.to_string(),
            "deployment openai/gpt-4@: no endpoint to send the request to"
        );
        assert_eq!(fleet.in_flight(&"openai/gpt-4@".parse().unwrap()), Some(0));
    });
}

#[test]
fn the_layer_needs_a_fleet_with_a_clock() {
    let reg: Registry = [Deployment::builder("openai", "gpt-4").build().unwrap()]
        .into_iter()
        .collect();
    let err = FleetLayer::new(Fleet::new(reg, |b| b)).unwrap_err();
    assert!(matches!(err, Error::NoClock));
}

#[test]
fn a_request_without_a_modelfleet_request_is_a_typed_error() {
    run(async {
        let log = Log::default();
        let mut a = Upstream::bind("a").await;
        let setup = fleet([a.deployment(1, 0)], |s| s);
        a.serve(&log, answer(|_| reply(200, "ok")));
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()));
        let req = http::Request::post("/v1/chat/completions")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let err = send(&gateway, req).await.unwrap_err();
        assert!(matches!(err, Error::MissingRequest), "{err}");
        assert_eq!(a.hits(), 0);
    });
}

#[test]
fn a_dead_upstream_is_a_connection_error_retried_elsewhere() {
    run(async {
        let log = Log::default();
        let (mut dead, mut b) = (Upstream::bind("dead").await, Upstream::bind("b").await);
        // Its address is a socket held bound but never listening: connections
        // are refused, and no other test can be given the port meanwhile.
        let hold = tokio::net::TcpSocket::new_v4().unwrap();
        hold.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        dead.endpoint = format!("http://{}/v1", hold.local_addr().unwrap());
        let setup = fleet([dead.deployment(1, 0), b.deployment(1, 1)], |s| {
            s.seed(12).health(no_health())
        });
        drop(dead.listener.take());
        b.serve(&log, answer(|_| reply(200, "b")));
        let retrying = gateway(FleetLayer::builder(setup.fleet.clone()));

        let (status, body) = send(&retrying, post("0")).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"b"[..]));
        assert_eq!(in_flight(&setup, &dead), 0);

        // With one attempt, the transport error is the caller's, typed.
        let once = FleetLayer::builder(setup.fleet.clone()).max_attempts(1);
        let err = send(&gateway(once), post("1")).await.unwrap_err();
        let Error::Upstream {
            deployment, kind, ..
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(**deployment, dead.key());
        assert_eq!(*kind, modelfleet::health::FailureKind::ConnectionError);
        assert_eq!(b.hits(), 1);
    });
}

/// A deployment that cannot be addressed (no endpoint) is a failed attempt,
/// not a failed request: the plan moves on to one that can.
#[test]
fn a_deployment_without_endpoint_is_skipped_for_the_next() {
    run(async {
        let log = Log::default();
        let mut up = Upstream::bind("ok").await;
        let nowhere = Deployment::builder("openai", "gpt-4").build().unwrap();
        let setup = fleet([nowhere, up.deployment(1, 0)], |s| {
            s.strategy(RoundRobin).seed(1).health(no_health())
        });
        up.serve(&log, answer(|_| reply(200, "ok")));
        let gateway = gateway(FleetLayer::builder(setup.fleet.clone()));
        for i in 0..4 {
            let (status, _) = send(&gateway, post(&format!("r{i}"))).await.unwrap();
            assert_eq!(status, 200);
        }
        assert_eq!(up.hits(), 4);
    });
}

/// The affinity header pins a session to one upstream under consistent
/// hashing, and different sessions spread over the upstreams.
#[test]
fn the_affinity_header_keeps_a_session_on_one_upstream() {
    run(async {
        let log = Log::default();
        let mut ups = upstreams(["a", "b", "c", "d"]).await;
        let setup = fleet(ups.iter().map(|u| u.deployment(1, 0)), |s| {
            s.strategy(modelfleet::select::ConsistentHash::default())
                .health(no_health())
        });
        for up in &mut ups {
            up.serve(&log, answer(|_| reply(200, "ok")));
        }
        let gateway =
            gateway(FleetLayer::builder(setup.fleet.clone()).affinity_header("x-session-id"));
        let hits = |ups: &[Upstream]| ups.iter().map(Upstream::hits).collect::<Vec<_>>();
        for i in 0..20 {
            let mut req = post(&format!("same-{i}"));
            req.headers_mut()
                .insert("x-session-id", "user-7".parse().unwrap());
            assert_eq!(send(&gateway, req).await.unwrap().0, 200);
        }
        let same = hits(&ups);
        assert_eq!(same.iter().filter(|&&h| h > 0).count(), 1, "{same:?}");
        for i in 0..40 {
            let mut req = post(&format!("many-{i}"));
            req.headers_mut()
                .insert("x-session-id", format!("user-{i}").parse().unwrap());
            assert_eq!(send(&gateway, req).await.unwrap().0, 200);
        }
        let spread = hits(&ups);
        assert!(spread.iter().filter(|&&h| h > 0).count() >= 3, "{spread:?}");
    });
}

/// `retry_if` decides which failures go on to another deployment: refused
/// here, the overloaded answer comes back as it is and the backup tier
/// gets nothing; by default it is retried there.
#[test]
fn retry_if_decides_which_failures_are_retried() {
    run(async {
        let log = Log::default();
        let (mut busy, mut backup) = (Upstream::bind("busy").await, Upstream::bind("backup").await);
        let setup = fleet([busy.deployment(1, 0), backup.deployment(1, 1)], |s| {
            s.health(no_health())
        });
        busy.serve(&log, answer(|_| reply(503, "busy")));
        backup.serve(&log, answer(|_| reply(200, "backup")));
        let strict = gateway(
            FleetLayer::builder(setup.fleet.clone())
                .retry_if(|method, kind| kind.is_retryable() && method != http::Method::POST),
        );
        assert_eq!(send(&strict, post("strict")).await.unwrap().0, 503);
        assert_eq!((busy.hits(), backup.hits()), (1, 0));
        let default = gateway(FleetLayer::builder(setup.fleet.clone()));
        assert_eq!(send(&default, post("default")).await.unwrap().0, 200);
        assert_eq!((busy.hits(), backup.hits()), (2, 1));
    });
}
