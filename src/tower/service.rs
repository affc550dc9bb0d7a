//! [`FleetService`] and the attempt loop: pick, rewrite, send, classify,
//! retry or answer.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tower::Service;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Response};
use http_body::Body;

use super::body::{Pending, ReportingBody, read_start};
use super::error::BoxError;
use super::layer::Shared;
use super::{Error, MakeRequest, Replay, rewrite};
use crate::health::FailureKind;
use crate::{IdentityPolicy, OwnedPick, Request};

/// The service of a [`FleetLayer`](super::FleetLayer): routes each HTTP
/// request over the fleet and sends it through the inner service.
///
/// Per client request:
///
/// 1. the modelfleet [`Request`] is made ([`MakeRequest`]), with the
///    affinity from the configured header;
/// 2. the fleet's [plan](crate::Fleet::plan) for it gives the deployment
///    of each attempt, picked at the fleet clock's time of that attempt on
///    the fleet version current then;
/// 3. the URI goes onto the deployment's endpoint (path prefix kept, the
///    configured base path stripped, query kept), `Host` is set to the
///    endpoint's authority, and `Authorization` to the deployment's
///    credential when a [bearer hook](super::FleetLayerBuilder::bearer)
///    is set;
/// 4. the inner service's answer is classified: a transport error by
///    [`transport_failure`](crate::http::transport_failure), a response
///    by [`failure_kind`](crate::http::failure_kind), with the start of its
///    body (up to the [limit](super::FleetLayerBuilder::error_body_limit))
///    when [`reads_body`](crate::http::reads_body) says the body can
///    change the verdict;
/// 5. a success is returned at once, its body a [`ReportingBody`] that
///    reports the attempt when it ends; a failure is reported at once.
///
/// # Retries
///
/// A failure that is [worth another deployment](crate::health::FailureKind::is_retryable)
/// is retried on the plan's next deployment, up to the
/// [configured attempts](super::FleetLayerBuilder::max_attempts), when
/// the request body can be sent again ([`Replay`]: a copy is taken before
/// each attempt that may be followed by another). The plan never gives a
/// deployment twice within one client request, across fleet installs too.
/// Before each retry the inner service is waited for to be ready.
///
/// When the attempts end in failure, the caller gets the last upstream
/// response when there was one (with its whole body: the bytes read to
/// classify it first), else the last transport error
/// ([`Error::Upstream`]). When the plan has nothing to offer the first
/// attempt, the error is [`Error::Unavailable`], with the time a
/// deployment comes back, as fleet time and as a [`SystemTime`](std::time::SystemTime)
/// for a `Retry-After` header.
///
/// # Readiness
///
/// `poll_ready` is the inner service's. A call takes the inner service
/// that was made ready and leaves a clone in its place (the
/// `std::mem::replace` idiom), so the inner service must be [`Clone`], as
/// hyper-util's client and most connection pools are.
///
/// # Cost
///
/// Per attempt: one fleet pick (O(1) for the built-in strategies on a
/// healthy tier), one URI of the endpoint's and the path's length, one
/// copy of the request's head when a retry may follow (the body's copy is
/// [`Replay`]'s cost), and one boxed future per client request.
///
/// ```
/// use modelfleet::tower::FleetLayer;
/// use modelfleet::{Deployment, Fleet, ManualClock, Registry, Request};
/// use tower::{Layer, Service, ServiceExt};
/// # fn now<F: std::future::Future>(f: F) -> F::Output {
/// #     // In-memory services: every future here is ready when first polled.
/// #     let mut f = std::pin::pin!(f);
/// #     match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
/// #         std::task::Poll::Ready(out) => out,
/// #         std::task::Poll::Pending => unreachable!(),
/// #     }
/// # }
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").endpoint("http://10.0.0.1:8000/v1").build()?]
///     .into_iter()
///     .collect();
/// let fleet = Fleet::builder(reg).clock(ManualClock::new()).build();
/// let layer = FleetLayer::builder(fleet).strip_prefix("/v1").build()?;
/// // An in-memory upstream that answers with the URI it was sent.
/// let upstream = tower::service_fn(|req: http::Request<String>| async move {
///     Ok::<_, std::convert::Infallible>(http::Response::new(req.uri().to_string()))
/// });
/// let mut service = layer.layer(upstream);
///
/// let mut req = http::Request::post("/v1/chat/completions").body(String::new())?;
/// req.extensions_mut().insert(Request::new("gpt-4"));
/// let response = now(now(service.ready())?.call(req))?;
/// let body = now(http_body_util::BodyExt::collect(response.into_body()))?.to_bytes();
/// assert_eq!(body, "http://10.0.0.1:8000/v1/chat/completions");
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct FleetService<S, P, M> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<P>>,
    pub(crate) make: Arc<M>,
}

impl<S: Clone, P, M> Clone for FleetService<S, P, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            make: Arc::clone(&self.make),
        }
    }
}

impl<S: fmt::Debug, P, M> fmt::Debug for FleetService<S, P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetService")
            .field("inner", &self.inner)
            .field("layer", &*self.shared)
            .finish_non_exhaustive()
    }
}

/// The future of [`FleetService::call`]: the whole attempt loop of one
/// client request.
///
/// See [`FleetService`] for an example.
pub struct ResponseFuture<R> {
    inner: Pin<Box<dyn Future<Output = Routed<R>> + Send>>,
}

/// What a client request ends in.
type Routed<R> = Result<Response<ReportingBody<R>>, Error>;

impl<R> fmt::Debug for ResponseFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<R> Future for ResponseFuture<R> {
    type Output = Routed<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S, P, M, B, R> Service<http::Request<B>> for FleetService<S, P, M>
where
    S: Service<http::Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    P: IdentityPolicy + Clone + Send + Sync + 'static,
    M: MakeRequest<B>,
    B: Replay + Send + 'static,
    R: Body + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Response = Response<ReportingBody<R>>;
    type Error = Error;
    type Future = ResponseFuture<R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(|source| Error::NotReady {
            source: source.into(),
        })
    }

    fn call(&mut self, http: http::Request<B>) -> ResponseFuture<R> {
        // The service made ready goes with this call; its clone waits for
        // the next `poll_ready`.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let request = self.make.make_request(&http).map_err(refused);
        let inner = Box::pin(async move {
            let request = with_affinity(request?, &shared, &http);
            attempts(inner, &shared, &request, http).await
        });
        ResponseFuture { inner }
    }
}

/// A request hook's error: the layer's own as it is, any other wrapped.
fn refused(error: impl Into<BoxError>) -> Error {
    match error.into().downcast::<Error>() {
        Ok(error) => *error,
        Err(source) => Error::Request { source },
    }
}

fn with_affinity<P, B>(request: Request, shared: &Shared<P>, http: &http::Request<B>) -> Request {
    let value = shared
        .affinity
        .as_ref()
        .and_then(|name| http.headers().get(name))
        .and_then(|value| value.to_str().ok());
    match value {
        Some(value) => request.affinity(value),
        None => request,
    }
}

/// How one attempt failed: with a response to hand back, or without.
// Moved once per failed attempt; boxing the response would cost an
// allocation for nothing.
#[allow(clippy::large_enum_variant)]
enum Failure<R> {
    Response(Response<ReportingBody<R>>),
    Transport(Error),
}

async fn attempts<S, P, B, R>(
    mut inner: S,
    shared: &Shared<P>,
    request: &Request,
    http: http::Request<B>,
) -> Result<Response<ReportingBody<R>>, Error>
where
    S: Service<http::Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    P: IdentityPolicy + Clone + Send + Sync + 'static,
    B: Replay,
    R: Body,
    R::Error: Into<BoxError>,
{
    let clock = &shared.clock;
    let mut plan = shared.fleet.plan(request);
    // What the caller gets when the attempts run out: the last upstream
    // response, else the last transport error.
    let mut last_response = None;
    let mut last_error = None;
    let method = http.method().clone();
    let mut http = http;
    let mut attempt = 1;
    loop {
        let now = clock.now();
        let pick = match plan.next_at(now) {
            Ok(pick) => pick,
            Err(source) => {
                return match (last_response, last_error) {
                    (Some(response), _) => Ok(response),
                    (None, Some(error)) => Err(error),
                    (None, None) => Err(unavailable(clock, source)),
                };
            }
        };
        let next = if attempt < shared.attempts {
            copy(&http)
        } else {
            None
        };
        let (retryable, failure) = match send(&mut inner, shared, request, (pick, now), http).await
        {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err((kind, failure))) => {
                let retry = match &shared.retry_if {
                    Some(hook) => hook(&method, kind),
                    None => kind.is_retryable(),
                };
                (retry, failure)
            }
            // The deployment cannot be addressed (no endpoint, or a URI or
            // credential that makes no request): another one may be. Its
            // pick is released without a report: nothing was sent.
            Err(error) => (true, Failure::Transport(error)),
        };
        let again = if retryable { next } else { None };
        let Some(again) = again else {
            return match failure {
                Failure::Response(response) => Ok(response),
                Failure::Transport(error) => last_response.ok_or(error),
            };
        };
        match failure {
            Failure::Response(response) => last_response = Some(response),
            Failure::Transport(error) => last_error = Some(error),
        }
        http = again;
        attempt += 1;
        poll_fn(|cx| inner.poll_ready(cx))
            .await
            .map_err(|source| Error::NotReady {
                source: source.into(),
            })?;
    }
}

/// The error of a plan with nothing for the first attempt.
fn unavailable(clock: &Arc<dyn crate::Clock>, source: crate::Error) -> Error {
    let retry_at = match &source {
        crate::Error::Unavailable { retry_at, .. } => *retry_at,
        _ => None,
    };
    Error::Unavailable {
        retry_time: retry_at.map(|at| clock.system_time(at)),
        retry_at,
        source: Box::new(source),
    }
}

/// One attempt: `http` sent to `pick`'s deployment and its answer
/// classified. A success comes back with its body reporting at its end; a
/// failure was reported already.
async fn send<S, P, B, R>(
    inner: &mut S,
    shared: &Shared<P>,
    request: &Request,
    (pick, sent): (OwnedPick, Duration),
    http: http::Request<B>,
) -> Result<Result<Response<ReportingBody<R>>, (FailureKind, Failure<R>)>, Error>
where
    S: Service<http::Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    R: Body,
    R::Error: Into<BoxError>,
{
    let clock = &shared.clock;
    let http = prepare(shared, &pick, http)?;
    let pending = Pending {
        pick,
        clock: Arc::clone(clock),
        sent,
        tokens: shared.tokens.clone(),
        counted: None,
        estimate: request.token_estimate(),
    };
    let transport = |pending: Pending, source: BoxError| {
        let kind = crate::http::transport_failure(&*source);
        let deployment = Box::new(pending.pick.key().clone());
        pending.fail(kind);
        let error = Error::Upstream {
            deployment,
            kind,
            source,
        };
        Ok(Err((kind, Failure::Transport(error))))
    };
    let response = match inner.call(http).await {
        Ok(response) => response,
        Err(source) => return transport(pending, source.into()),
    };
    let (parts, body) = response.into_parts();
    // Only a failure's headers hold a date to read against the wall clock.
    let wall = if parts.status.is_success() {
        std::time::SystemTime::UNIX_EPOCH
    } else {
        clock.system_time(clock.now())
    };
    let (kind, body) = if crate::http::reads_body(parts.status) {
        let mut body = Box::pin(body);
        let start = match read_start(&mut body, shared.body_limit).await {
            Ok(start) => start,
            Err(source) => return transport(pending, source),
        };
        let seen = &start[..start.len().min(shared.body_limit)];
        let kind = crate::http::failure_kind(parts.status, &parts.headers, Some(seen), wall);
        (kind, Read::Buffered(start, body))
    } else {
        let kind = crate::http::failure_kind(parts.status, &parts.headers, None, wall);
        (kind, Read::Stream(body))
    };
    let Some(kind) = kind else {
        return Ok(Ok(Response::from_parts(
            parts,
            body.into_body(Some(pending)),
        )));
    };
    pending.fail(kind);
    let response = Response::from_parts(parts, body.into_body(None));
    Ok(Err((kind, Failure::Response(response))))
}

/// A response body as the classification left it.
enum Read<R> {
    Stream(R),
    Buffered(bytes::Bytes, Pin<Box<R>>),
}

impl<R: Body> Read<R> {
    fn into_body(self, pending: Option<Pending>) -> ReportingBody<R> {
        match self {
            Read::Stream(body) => ReportingBody::streaming(body, pending),
            Read::Buffered(start, body) => ReportingBody::buffered(start, body, pending),
        }
    }
}

/// A copy of `http` to send again, when its body can be.
fn copy<B: Replay>(http: &http::Request<B>) -> Option<http::Request<B>> {
    let mut copy = http::Request::new(http.body().replay()?);
    *copy.method_mut() = http.method().clone();
    *copy.uri_mut() = http.uri().clone();
    *copy.version_mut() = http.version();
    *copy.headers_mut() = http.headers().clone();
    *copy.extensions_mut() = http.extensions().clone();
    Some(copy)
}

/// `http` addressed to the picked deployment: its endpoint, its `Host`,
/// its credential.
fn prepare<P, B>(
    shared: &Shared<P>,
    pick: &OwnedPick,
    mut http: http::Request<B>,
) -> Result<http::Request<B>, Error> {
    let deployment = pick.deployment();
    let key = || Box::new(pick.key().clone());
    // The endpoint as stored (no trailing slash but at the root): the
    // rewrite adds the separator itself, so no `base_url` copy is made.
    let base = deployment
        .endpoint()
        .ok_or_else(|| Error::NoEndpoint { deployment: key() })?;
    let (uri, authority) = rewrite::onto(base, http.uri(), shared.strip.as_deref())
        .ok_or_else(|| Error::InvalidUri { deployment: key() })?;
    let host = HeaderValue::from_str(authority.as_str())
        .map_err(|_| Error::InvalidUri { deployment: key() })?;
    *http.uri_mut() = uri;
    let headers = http.headers_mut();
    headers.insert(HOST, host);
    if let Some(resolve) = &shared.bearer {
        headers.remove(AUTHORIZATION);
        if let Some(token) = deployment.credential().and_then(|c| resolve(c)) {
            let mut value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Error::InvalidCredential { deployment: key() })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
    }
    Ok(http)
}
