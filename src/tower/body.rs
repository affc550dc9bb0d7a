//! [`ReportingBody`]: the response body that reports its pick's outcome
//! when it ends.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use super::error::BoxError;
use crate::health::{FailureKind, Outcome, Report};
use crate::{Clock, OwnedPick};

/// Counts a response's tokens from one data frame; the last `Some` wins.
pub(crate) type TokenHook = Arc<dyn Fn(&[u8]) -> Option<u64> + Send + Sync>;

pin_project_lite::pin_project! {
    /// The body of a response routed by [`FleetService`](super::FleetService).
    ///
    /// It passes the upstream's frames through (data as [`Bytes`]) and
    /// reports the attempt when the stream **ends**, not when the headers
    /// arrive, so the latency of a streamed completion is the whole
    /// stream's and its tokens can be counted from the frames:
    ///
    /// - at the end of the stream: a success, with the latency since the
    ///   attempt was sent and the tokens of the layer's token hook (its
    ///   last value over the data frames), else the request's
    ///   [`token_estimate`](crate::Request::token_estimate);
    /// - when the upstream body fails: a failure, classified by
    ///   [`transport_failure`](crate::http::transport_failure);
    /// - when the body is dropped before its end: no report, the in-flight
    ///   slot is released (a client that went away says nothing about the
    ///   upstream).
    ///
    /// Either way the attempt is reported at most once. A failed response
    /// handed back to the caller (see
    /// [`FleetService`](super::FleetService#retries)) was reported when it
    /// was classified; its body reports nothing more.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
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
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").endpoint("http://10.0.0.1/v1").build()?]
    ///     .into_iter()
    ///     .collect();
    /// let key = reg.keys().next().unwrap().clone();
    /// let fleet = Fleet::builder(reg).clock(ManualClock::new()).build();
    /// let upstream = tower::service_fn(|_: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(b"hello"))))
    /// });
    /// let mut service = FleetLayer::new(fleet.clone())?.layer(upstream);
    ///
    /// let mut req = http::Request::new(String::new());
    /// req.extensions_mut().insert(Request::new("gpt-4"));
    /// let mut body = now(now(service.ready())?.call(req))?.into_body();
    /// assert_eq!(fleet.in_flight(&key), Some(1)); // headers in, body not read
    /// let frame = now(body.frame()).unwrap()?;
    /// assert_eq!(frame.into_data().unwrap(), "hello");
    /// assert_eq!(fleet.in_flight(&key), Some(0)); // reported at the end
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub struct ReportingBody<B> {
        #[pin]
        inner: Inner<B>,
        pending: Option<Pending>,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        // The upstream body, untouched (the success path).
        Stream {
            #[pin]
            body: B,
        },
        // A body whose start was read to classify it: that start, then the
        // rest (boxed to be polled while it was read, and kept so).
        Buffered {
            prefix: Option<Bytes>,
            body: Pin<Box<B>>,
        },
    }
}

/// The report an attempt owes when its response body ends.
pub(crate) struct Pending {
    pub(crate) pick: OwnedPick,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sent: Duration,
    pub(crate) tokens: Option<TokenHook>,
    pub(crate) counted: Option<u64>,
    pub(crate) estimate: Option<u32>,
}

impl Pending {
    fn observe(&mut self, data: &[u8]) {
        if let Some(count) = self.tokens.as_ref().and_then(|hook| hook(data)) {
            self.counted = Some(count);
        }
    }

    fn succeed(self) {
        let now = self.clock.now();
        let tokens = self.counted.or(self.estimate.map(u64::from)).unwrap_or(0);
        let latency = now.saturating_sub(self.sent);
        self.pick
            .complete(Report::success(now, latency).tokens(tokens));
    }

    pub(crate) fn fail(self, kind: FailureKind) {
        let now = self.clock.now();
        let latency = now.saturating_sub(self.sent);
        self.pick
            .complete(Report::new(now, Outcome::failure(kind, Some(latency))));
    }
}

impl<B: Body> ReportingBody<B> {
    /// A body that streams `body` and completes `pending` at its end.
    pub(crate) fn streaming(body: B, pending: Option<Pending>) -> Self {
        Self::start(Inner::Stream { body }, pending)
    }

    /// A body that yields `prefix`, read already, then the rest of `body`.
    pub(crate) fn buffered(prefix: Bytes, body: Pin<Box<B>>, pending: Option<Pending>) -> Self {
        let prefix = (!prefix.is_empty()).then_some(prefix);
        Self::start(Inner::Buffered { prefix, body }, pending)
    }

    fn start(inner: Inner<B>, mut pending: Option<Pending>) -> Self {
        // An empty body is over before anyone polls it, and a server may
        // never poll a body that says it is at its end.
        if inner.is_end_stream()
            && let Some(pending) = pending.take()
        {
            pending.succeed();
        }
        Self { inner, pending }
    }
}

impl<B: Body> Inner<B> {
    fn is_end_stream(&self) -> bool {
        match self {
            Inner::Stream { body } => body.is_end_stream(),
            Inner::Buffered { prefix, body } => prefix.is_none() && body.is_end_stream(),
        }
    }
}

fn into_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
}

impl<B> Body for ReportingBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let (polled, ended) = match this.inner.project() {
            InnerProj::Stream { mut body } => {
                let polled = ready!(body.as_mut().poll_frame(cx));
                (polled.map(|r| r.map(into_bytes)), body.is_end_stream())
            }
            InnerProj::Buffered { prefix, body } => match prefix.take() {
                Some(data) => (Some(Ok(Frame::data(data))), body.is_end_stream()),
                None => {
                    let polled = ready!(body.as_mut().poll_frame(cx));
                    (polled.map(|r| r.map(into_bytes)), body.is_end_stream())
                }
            },
        };
        match polled {
            Some(Ok(frame)) => {
                if let (Some(pending), Some(data)) = (this.pending.as_mut(), frame.data_ref()) {
                    pending.observe(data);
                }
                if ended && let Some(pending) = this.pending.take() {
                    pending.succeed();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                let error: BoxError = error.into();
                if let Some(pending) = this.pending.take() {
                    pending.fail(crate::http::transport_failure(&*error));
                }
                Poll::Ready(Some(Err(error)))
            }
            None => {
                if let Some(pending) = this.pending.take() {
                    pending.succeed();
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Stream { body } => body.size_hint(),
            Inner::Buffered { prefix, body } => {
                let read = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let rest = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
        }
    }
}

impl<B> fmt::Debug for ReportingBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buffered = match &self.inner {
            Inner::Stream { .. } => 0,
            Inner::Buffered { prefix, .. } => prefix.as_ref().map_or(0, Bytes::len),
        };
        f.debug_struct("ReportingBody")
            .field("buffered", &buffered)
            .field("reports", &self.pending.as_ref().map(|p| p.pick.key()))
            .finish_non_exhaustive()
    }
}

/// Reads the start of `body`, up to `limit` bytes (the frame that crosses
/// it is kept whole), for [`failure_kind`](crate::http::failure_kind) to
/// look at. Trailers met on the way are dropped.
pub(crate) async fn read_start<B>(body: &mut Pin<Box<B>>, limit: usize) -> Result<Bytes, BoxError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut start = BytesMut::new();
    while start.len() < limit && !body.is_end_stream() {
        match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        start.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
            }
            Some(Err(error)) => return Err(error.into()),
            None => break,
        }
    }
    Ok(start.freeze())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::health::HealthPolicy;
    use crate::{Deployment, Fleet, ManualClock, Registry, Request};

    /// A body of given frames, maybe ending in an error; it says it is at
    /// its end only when `tells_end` (hyper's chunked bodies find out when
    /// polled past the last chunk).
    struct Frames {
        frames: VecDeque<Result<Bytes, std::io::Error>>,
        tells_end: bool,
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(self.frames.pop_front().map(|r| r.map(Frame::data)))
        }

        fn is_end_stream(&self) -> bool {
            self.tells_end && self.frames.is_empty()
        }
    }

    fn poll<B: Body + Unpin>(body: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => unreachable!("in-memory frames are always ready"),
        }
    }

    /// How a client treats the body.
    #[derive(Clone, Copy, Debug)]
    enum Reader {
        /// Reads until `None`.
        ToTheEnd,
        /// Stops once the body says it is at its end.
        UntilEndStream,
        /// Drops it after this many frames.
        DropsAfter(usize),
    }

    fn reader() -> impl Strategy<Value = Reader> {
        prop_oneof![
            Just(Reader::ToTheEnd),
            Just(Reader::UntilEndStream),
            (0usize..8).prop_map(Reader::DropsAfter),
        ]
    }

    proptest! {
        #[test]
        fn a_body_reports_at_most_once_and_never_keeps_its_slot(
            counts in prop::collection::vec(prop::option::of(0u64..1_000_000), 0..8),
            fails in any::<bool>(),
            tells_end in any::<bool>(),
            buffered in any::<bool>(),
            reader in reader(),
            estimate in prop::option::of(0u32..100_000),
        ) {
            let reg: Registry = [Deployment::builder("openai", "gpt-4").build().unwrap()].into_iter().collect();
            let clock = Arc::new(ManualClock::new());
            let fleet = Fleet::builder(reg)
                .selector(|b| b.health(HealthPolicy::disabled().validated().unwrap()))
                .clock(Arc::clone(&clock))
                .build();
            let key = "openai/gpt-4@".parse().unwrap();
            let pick = fleet.select(&Request::new("gpt-4").at(Duration::from_secs(1))).unwrap();
            clock.set(Duration::from_secs(1));

            // Each frame's text tells the hook its count, or nothing.
            let text = |count: &Option<u64>| match count {
                Some(n) => format!("tokens={n}"),
                None => "no count".to_owned(),
            };
            let mut frames: VecDeque<_> = counts.iter().map(|c| Ok(Bytes::from(text(c)))).collect();
            if fails {
                frames.push_back(Err(std::io::Error::other("connection reset")));
            }
            let hook: TokenHook = Arc::new(|data: &[u8]| {
                std::str::from_utf8(data).ok()?.strip_prefix("tokens=")?.parse().ok()
            });
            let pending = Pending {
                pick,
                clock: Arc::clone(&clock) as Arc<dyn Clock>,
                sent: Duration::from_secs(1),
                tokens: Some(hook),
                counted: None,
                estimate,
            };
            let inner = Frames { frames, tells_end };
            let mut body = if buffered && !counts.is_empty() {
                // The first frame was read to classify the response.
                let mut inner = Box::pin(inner);
                let first = match poll(&mut inner) {
                    Some(Ok(frame)) => frame.into_data().unwrap(),
                    _ => unreachable!("the first frame is data"),
                };
                ReportingBody::buffered(first, inner, Some(pending))
            } else {
                ReportingBody::streaming(inner, Some(pending))
            };
            // An empty body that says so is over before anyone polls it.
            let at_start = body.pending.is_none();
            prop_assert_eq!(at_start, counts.is_empty() && tells_end && !fails);
            prop_assert_eq!(fleet.in_flight(&key), Some(u32::from(!at_start)));

            clock.advance(Duration::from_millis(250));
            let mut read = 0;
            loop {
                match reader {
                    Reader::DropsAfter(n) if read == n => break,
                    Reader::UntilEndStream if body.is_end_stream() => break,
                    _ => {}
                }
                match poll(&mut body) {
                    Some(Ok(_)) => read += 1,
                    Some(Err(_)) | None => break,
                }
            }
            let finished = body.pending.is_none();
            drop(body);

            // The model: the body reports when it reaches its end (the
            // last data frame, when it says so, else `None`) or its error;
            // a reader that stops before either reports nothing.
            let expected = match reader {
                Reader::ToTheEnd | Reader::UntilEndStream => true,
                Reader::DropsAfter(n) => n > counts.len() || (tells_end && !fails && n >= counts.len()),
            };
            prop_assert_eq!(finished, expected);
            prop_assert_eq!(fleet.in_flight(&key), Some(0), "the slot is released either way");
            let health = fleet.health(clock.now()).remove(0);
            if finished && !fails {
                // Once, with the hook's last count, else the estimate.
                let tokens = counts.iter().rev().find_map(|c| *c).or(estimate.map(u64::from)).unwrap_or(0);
                prop_assert_eq!(health.tokens_per_minute, tokens);
                // Reported at the start, the latency is (about) zero; the
                // estimate keeps a floor above zero to tell it from none.
                prop_assert!(health.latency.is_some());
                if !at_start {
                    prop_assert_eq!(health.latency, Some(Duration::from_millis(250)));
                }
            } else {
                prop_assert_eq!(health.tokens_per_minute, 0);
                if !finished {
                    prop_assert_eq!(health.latency, None, "no report");
                }
            }
        }
    }
}
