//! A tower [`Layer`](::tower::Layer) that routes HTTP requests over a
//! [`Fleet`](crate::Fleet) (feature `tower`).
//!
//! modelfleet's core picks deployments and keeps their health; it does no
//! I/O. This module is the adapter that puts it in front of an HTTP client:
//! [`FleetLayer`] wraps any `Service<http::Request<B>>` that answers with
//! an `http::Response` (hyper-util's client, reqwest through an adapter,
//! an in-memory service in tests) into a [`FleetService`] that, for each
//! request:
//!
//! 1. makes the modelfleet [`Request`](crate::Request) from the HTTP
//!    request ([`MakeRequest`]: a hook of yours, or by default the request
//!    in its extensions, [`FromExtension`]), with the affinity from a
//!    header you name (`x-session-id`);
//! 2. picks a deployment along the fleet's [plan](crate::Fleet::plan) at
//!    the fleet clock's time;
//! 3. rewrites the URI onto the deployment's endpoint, keeping its path
//!    prefix: endpoint `http://10.0.0.1:8000/v1`, request
//!    `/v1/chat/completions`, stripped base path `/v1`, sent to
//!    `http://10.0.0.1:8000/v1/chat/completions` (query kept, `Host` the
//!    endpoint's); optionally signs it with the deployment's credential;
//! 4. classifies the answer with [`crate::http`] and retries a failure
//!    worth it on another deployment when the body can be sent again
//!    ([`Replay`]);
//! 5. reports the attempt to the fleet when the response body **ends**
//!    ([`ReportingBody`]), with the latency of the whole stream and the
//!    tokens counted from it.
//!
//! The layer takes a fleet with a [clock](crate::Clock): picks and
//! reports are timed on it, so a `Retry-After` cooldown measured on a
//! report applies to the picks that follow, and tests drive it with a
//! [`ManualClock`](crate::ManualClock) instead of sleeping.
//!
//! This module is an adapter over the core: it uses the fleet, the
//! request, health reports and [`crate::http`]'s classification, and the
//! core knows nothing of it. The core depends on no async runtime, and
//! neither does this module: it runs on whatever runtime polls it.
//!
//! # Example
//!
//! A gateway over two upstreams, with hyper-util's client as the inner
//! service (any `Service<http::Request<B>, Response = http::Response<_>>`
//! that is `Clone` will do):
//!
//! ```no_run
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use modelfleet::tower::FleetLayer;
//! use modelfleet::{Deployment, Fleet, MonotonicClock, Policy, Registry, Request};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut reg = Registry::new(Policy::NAME_ENDPOINT);
//! for endpoint in ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"] {
//!     reg.insert(Deployment::builder("openai", "gpt-4").endpoint(endpoint).build()?)?;
//! }
//! let fleet = Fleet::builder(reg).clock(Arc::new(MonotonicClock::new())).build();
//! let layer = FleetLayer::builder(fleet)
//!     .request(|_: &http::Request<Full<Bytes>>| Ok::<_, std::convert::Infallible>(Request::new("gpt-4")))
//!     .affinity_header("x-session-id")
//!     .strip_prefix("/v1")
//!     .build()?;
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let mut gateway = ServiceBuilder::new().layer(layer).service(client);
//!
//! let request = http::Request::post("/v1/chat/completions")
//!     .header("x-session-id", "user-42")
//!     .body(Full::new(Bytes::from_static(br#"{"model":"gpt-4","messages":[]}"#)))?;
//! let response = gateway.ready().await?.call(request).await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! The [`FleetService`] docs show one request end to end with an in-memory
//! upstream.
//!
//! In a server, the incoming request body (hyper's `Incoming`) is a stream
//! that can be read once: wrap it in [`Once`] to route without retries, or
//! collect it into a [`Full`](http_body_util::Full) first (bounded, e.g.
//! with [`Limited`](http_body_util::Limited)) so that a failed attempt can
//! be sent again.

mod body;
mod error;
mod layer;
mod replay;
mod request;
mod rewrite;
mod service;

pub use body::ReportingBody;
pub use error::{BoxError, Error};
pub use layer::{FleetLayer, FleetLayerBuilder};
pub use replay::{Once, Replay};
pub use request::{FromExtension, MakeRequest};
pub use service::{FleetService, ResponseFuture};
