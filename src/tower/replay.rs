//! [`Replay`]: how a request body is copied so that a failed attempt can be
//! sent again to another deployment.

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{Either, Empty, Full};

/// A request body that can be copied before it is sent, so that a retry
/// sends the same bytes to the next deployment.
///
/// [`FleetService`](super::FleetService) asks for a copy before each
/// attempt that may be followed by another; `None` means the body cannot
/// be sent twice, and the attempt is then the last one: its response (or
/// error) goes back to the caller whatever it is.
///
/// Bodies held in memory replay: [`Full`], [`Empty`], [`Either`] of two
/// that do, and the plain buffers [`String`], [`Bytes`], `Vec<u8>`,
/// `&'static str`, `&'static [u8]` and `Cow<'static, …>`. Streamed and
/// type-erased bodies do not ([`BoxBody`], [`UnsyncBoxBody`]); wrap any
/// other body (hyper's `Incoming`, a channel, a stream) in [`Once`] to use
/// it without retries, or buffer it first (e.g. collect it into a
/// [`Full`]) to retry it.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use modelfleet::tower::{Once, Replay};
///
/// let body = Full::new(Bytes::from_static(b"{\"model\":\"gpt-4\"}"));
/// assert!(body.replay().is_some());
/// assert!(Once::new(body).replay().is_none());
/// ```
///
/// A body of your own that can be sent twice implements it with a clone:
///
/// ```
/// use modelfleet::tower::Replay;
///
/// #[derive(Clone)]
/// struct Json(Vec<u8>);
///
/// impl Replay for Json {
///     fn replay(&self) -> Option<Self> {
///         Some(self.clone())
///     }
/// }
/// assert_eq!(Json(b"{}".to_vec()).replay().unwrap().0, b"{}");
/// ```
pub trait Replay: Sized {
    /// A copy of the body, not yet read, or `None` when it cannot be sent
    /// again.
    ///
    /// Called on a body before it is sent. Its cost is the body's clone:
    /// O(1) for [`Bytes`] and [`Full<Bytes>`], O(length) for owned
    /// buffers.
    ///
    /// See [`Replay`] for an example.
    fn replay(&self) -> Option<Self>;
}

impl<D: Clone> Replay for Full<D> {
    fn replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> Replay for Empty<D> {
    fn replay(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

impl<L: Replay, R: Replay> Replay for Either<L, R> {
    fn replay(&self) -> Option<Self> {
        match self {
            Either::Left(left) => left.replay().map(Either::Left),
            Either::Right(right) => right.replay().map(Either::Right),
        }
    }
}

/// Replays by cloning: buffers held whole in memory.
macro_rules! replay_by_clone {
    ($($ty:ty),* $(,)?) => {
        $(impl Replay for $ty {
            fn replay(&self) -> Option<Self> {
                Some(self.clone())
            }
        })*
    };
}

replay_by_clone!(
    String,
    Bytes,
    Vec<u8>,
    &'static str,
    &'static [u8],
    Cow<'static, str>,
    Cow<'static, [u8]>,
);

/// A boxed body may be a stream: it is sent once.
impl<D, E> Replay for BoxBody<D, E> {
    fn replay(&self) -> Option<Self> {
        None
    }
}

/// A boxed body may be a stream: it is sent once.
impl<D, E> Replay for UnsyncBoxBody<D, E> {
    fn replay(&self) -> Option<Self> {
        None
    }
}

pin_project_lite::pin_project! {
    /// A body that is sent once: [`Replay`] for any [`Body`](http_body::Body)
    /// that cannot be copied (hyper's `Incoming`, a channel, a stream), so
    /// that a request with it is routed without retries. It passes the
    /// body's frames through unchanged.
    ///
    /// ```
    /// use http_body::Body;
    /// use http_body_util::Empty;
    /// use modelfleet::tower::{Once, Replay};
    ///
    /// let body = Once::new(Empty::<bytes::Bytes>::new());
    /// assert!(body.replay().is_none());
    /// assert!(body.is_end_stream());
    /// let _empty: Empty<bytes::Bytes> = body.into_inner();
    /// ```
    #[derive(Debug, Default)]
    pub struct Once<B> {
        #[pin]
        body: B,
    }
}

impl<B> Once<B> {
    /// Wraps `body`.
    ///
    /// See [`Once`] for an example.
    pub fn new(body: B) -> Self {
        Self { body }
    }

    /// The body it wraps.
    ///
    /// See [`Once`] for an example.
    pub fn into_inner(self) -> B {
        self.body
    }
}

impl<B> Replay for Once<B> {
    fn replay(&self) -> Option<Self> {
        None
    }
}

impl<B: http_body::Body> http_body::Body for Once<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body;
    use http_body_util::BodyExt;

    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        // The bodies here are in memory: their futures are ready at once.
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("an in-memory body was not ready"),
        }
    }

    #[test]
    fn a_replayed_full_body_holds_the_same_bytes() {
        let body = Full::new(Bytes::from_static(b"hello"));
        let copy = body.replay().unwrap();
        assert_eq!(block_on(body.collect()).unwrap().to_bytes(), "hello");
        assert_eq!(block_on(copy.collect()).unwrap().to_bytes(), "hello");
    }

    #[test]
    fn either_replays_its_side() {
        let left: Either<Full<Bytes>, Once<Empty<Bytes>>> = Either::Left(Full::new(Bytes::new()));
        assert!(matches!(left.replay(), Some(Either::Left(_))));
        let right: Either<Full<Bytes>, Once<Empty<Bytes>>> = Either::Right(Once::new(Empty::new()));
        assert!(right.replay().is_none());
    }

    #[test]
    fn boxed_bodies_are_sent_once() {
        let boxed = Full::new(Bytes::new()).map_err(|e| match e {}).boxed();
        assert!(boxed.replay().is_none());
        let unsync = Full::new(Bytes::new())
            .map_err(|e| match e {})
            .boxed_unsync();
        assert!(unsync.replay().is_none());
        assert!(Empty::<Bytes>::new().replay().is_some());
        assert_eq!("x".to_owned().replay().as_deref(), Some("x"));
    }

    #[test]
    fn once_passes_frames_through() {
        let body = Once::new(Full::new(Bytes::from_static(b"abc")));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(block_on(body.collect()).unwrap().to_bytes(), "abc");
    }
}
