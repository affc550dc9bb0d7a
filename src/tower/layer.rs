//! [`FleetLayer`] and its builder: the configuration shared by every
//! [`FleetService`] the layer makes.

use std::fmt;
use std::sync::Arc;

use ::tower::Layer;
use http::HeaderName;

use super::body::TokenHook;
use super::request::FromExtension;
use super::{Error, FleetService};
use crate::health::FailureKind;
use crate::{Clock, Credential, Fleet, IdentityPolicy, Policy};

/// Resolves a deployment's credential reference into the token sent as
/// `Authorization: Bearer <token>`.
pub(crate) type BearerHook = Arc<dyn Fn(&Credential) -> Option<String> + Send + Sync>;

/// Decides whether a failed attempt of a request with this method is worth
/// another deployment.
pub(crate) type RetryHook = Arc<dyn Fn(&http::Method, FailureKind) -> bool + Send + Sync>;

/// How many attempts a client request gets by default: the first and two
/// retries.
const DEFAULT_ATTEMPTS: u32 = 3;

/// How much of an error response's body is read by default to classify it.
const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A tower [`Layer`] that routes HTTP requests over a [`Fleet`]: each
/// request is sent to a deployment picked for it, retried on the next one
/// of its [plan](crate::Fleet::plan) when it fails in a way worth
/// retrying, and reported to the fleet's health when its response body
/// ends. See the [module docs](super) for the whole path.
///
/// The fleet must have a [clock](crate::Fleet::clock): requests are
/// picked and reports are timed on it, so both share one origin.
///
/// Cloning is cheap (two reference counts), as is wrapping a service.
///
/// ```
/// use modelfleet::tower::FleetLayer;
/// use modelfleet::{Deployment, Fleet, ManualClock, Registry};
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").endpoint("http://127.0.0.1:9/v1").build()?]
///     .into_iter()
///     .collect();
/// let fleet = Fleet::builder(reg).clock(ManualClock::new()).build();
/// let layer = FleetLayer::builder(fleet)
///     .affinity_header("x-session-id")
///     .strip_prefix("/v1")
///     .max_attempts(2)
///     .build()?;
/// let _service = tower::ServiceBuilder::new()
///     .layer(layer)
///     .service(tower::service_fn(|_: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FleetLayer<P = Policy, M = FromExtension> {
    pub(crate) shared: Arc<Shared<P>>,
    pub(crate) make: Arc<M>,
}

/// What every attempt of every service of one layer reads.
pub(crate) struct Shared<P> {
    pub(crate) fleet: Fleet<P>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) affinity: Option<HeaderName>,
    pub(crate) strip: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) body_limit: usize,
    pub(crate) tokens: Option<TokenHook>,
    pub(crate) bearer: Option<BearerHook>,
    /// `None`: [`FailureKind::is_retryable`].
    pub(crate) retry_if: Option<RetryHook>,
}

impl<P, M> Clone for FleetLayer<P, M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            make: Arc::clone(&self.make),
        }
    }
}

impl<P, M> fmt::Debug for FleetLayer<P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl<P> fmt::Debug for Shared<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hooks are closures: only whether they are set is shown.
        f.debug_struct("FleetLayer")
            .field("clock", &self.clock)
            .field("affinity_header", &self.affinity)
            .field("strip_prefix", &self.strip)
            .field("max_attempts", &self.attempts)
            .field("error_body_limit", &self.body_limit)
            .field("tokens", &self.tokens.is_some())
            .field("bearer", &self.bearer.is_some())
            .field("retry_if", &self.retry_if.is_some())
            .finish_non_exhaustive()
    }
}

impl<P: IdentityPolicy + Clone> FleetLayer<P> {
    /// A layer over `fleet` with the default settings: the modelfleet
    /// request from the HTTP request's extensions ([`FromExtension`]), no
    /// affinity header, nothing stripped, 3 attempts, error bodies read up
    /// to 64 KiB.
    ///
    /// # Errors
    ///
    /// [`Error::NoClock`] when the fleet has no clock.
    ///
    /// ```
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// assert!(FleetLayer::new(fleet).is_ok());
    /// ```
    pub fn new(fleet: Fleet<P>) -> Result<Self, Error> {
        Self::builder(fleet).build()
    }

    /// A builder of a layer over `fleet`, with the settings of
    /// [`new`](Self::new) to change.
    ///
    /// See [`FleetLayer`] for an example.
    pub fn builder(fleet: Fleet<P>) -> FleetLayerBuilder<P> {
        FleetLayerBuilder {
            fleet,
            make: FromExtension,
            affinity: None,
            strip: None,
            attempts: DEFAULT_ATTEMPTS,
            body_limit: DEFAULT_BODY_LIMIT,
            tokens: None,
            bearer: None,
            retry_if: None,
            problem: None,
        }
    }
}

impl<P, M> FleetLayer<P, M> {
    /// The fleet the layer routes over.
    ///
    /// ```
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// let layer = FleetLayer::new(fleet)?;
    /// assert!(layer.fleet().registry().is_empty());
    /// # Ok::<(), modelfleet::tower::Error>(())
    /// ```
    pub fn fleet(&self) -> &Fleet<P> {
        &self.shared.fleet
    }
}

impl<S, P, M> Layer<S> for FleetLayer<P, M> {
    type Service = FleetService<S, P, M>;

    fn layer(&self, inner: S) -> FleetService<S, P, M> {
        FleetService {
            inner,
            shared: Arc::clone(&self.shared),
            make: Arc::clone(&self.make),
        }
    }
}

/// The builder of a [`FleetLayer`]: its settings, checked by
/// [`build`](Self::build), which reports the first bad one.
///
/// See [`FleetLayer`] for an example.
#[must_use]
pub struct FleetLayerBuilder<P = Policy, M = FromExtension> {
    fleet: Fleet<P>,
    make: M,
    affinity: Option<HeaderName>,
    strip: Option<String>,
    attempts: u32,
    body_limit: usize,
    tokens: Option<TokenHook>,
    bearer: Option<BearerHook>,
    retry_if: Option<RetryHook>,
    problem: Option<Error>,
}

impl<P, M> fmt::Debug for FleetLayerBuilder<P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLayerBuilder")
            .field("affinity_header", &self.affinity)
            .field("strip_prefix", &self.strip)
            .field("max_attempts", &self.attempts)
            .field("error_body_limit", &self.body_limit)
            .field("tokens", &self.tokens.is_some())
            .field("bearer", &self.bearer.is_some())
            .field("retry_if", &self.retry_if.is_some())
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

impl<P, M> FleetLayerBuilder<P, M> {
    fn refuse(mut self, setting: &'static str, problem: String) -> Self {
        self.problem
            .get_or_insert(Error::InvalidSetting { setting, problem });
        self
    }

    /// Makes the modelfleet request of each HTTP request with `make`
    /// (any `Fn(&http::Request<B>) -> Result<modelfleet::Request, E>`)
    /// instead of taking it from the extensions.
    ///
    /// ```
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry, Request};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// let layer = FleetLayer::builder(fleet)
    ///     .request(|_: &http::Request<String>| Ok::<_, std::convert::Infallible>(Request::new("gpt-4")))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), modelfleet::tower::Error>(())
    /// ```
    pub fn request<N>(self, make: N) -> FleetLayerBuilder<P, N> {
        FleetLayerBuilder {
            fleet: self.fleet,
            make,
            affinity: self.affinity,
            strip: self.strip,
            attempts: self.attempts,
            body_limit: self.body_limit,
            tokens: self.tokens,
            bearer: self.bearer,
            retry_if: self.retry_if,
            problem: self.problem,
        }
    }

    /// Takes the request's [affinity](crate::Request::affinity) (sticky
    /// sessions, consistent hashing) from the header `name` when an HTTP
    /// request has it, e.g. `x-session-id`. A value that is not visible
    /// ASCII is ignored.
    ///
    /// A name that is not a valid header name is reported by
    /// [`build`](Self::build).
    ///
    /// ```
    /// use modelfleet::tower::{Error, FleetLayer};
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// assert!(FleetLayer::builder(fleet.clone()).affinity_header("x-session-id").build().is_ok());
    /// let err = FleetLayer::builder(fleet).affinity_header("x session").build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidSetting { setting: "affinity_header", .. }));
    /// ```
    pub fn affinity_header(mut self, name: &str) -> Self {
        match HeaderName::try_from(name) {
            Ok(name) => {
                self.affinity = Some(name);
                self
            }
            Err(_) => self.refuse("affinity_header", format!("{name:?} is not a header name")),
        }
    }

    /// Strips the base path `prefix` from each request's path before it
    /// goes under the deployment's endpoint: with `/v1`, a request for
    /// `/v1/chat/completions` to a deployment at `http://10.0.0.1:8000/v1`
    /// goes to `http://10.0.0.1:8000/v1/chat/completions`. Only whole
    /// segments are stripped (`/v1` leaves `/v10/…` alone).
    ///
    /// A prefix that does not start with `/` is reported by
    /// [`build`](Self::build).
    ///
    /// ```
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// assert!(FleetLayer::builder(fleet.clone()).strip_prefix("/v1").build().is_ok());
    /// assert!(FleetLayer::builder(fleet).strip_prefix("v1").build().is_err());
    /// ```
    pub fn strip_prefix(mut self, prefix: &str) -> Self {
        if !prefix.starts_with('/') {
            return self.refuse(
                "strip_prefix",
                format!("{prefix:?} does not start with '/'"),
            );
        }
        self.strip = Some(prefix.to_owned());
        self
    }

    /// Which failed attempts are worth another deployment, by the
    /// request's method and the failure's kind (default:
    /// [`FailureKind::is_retryable`] for every method). A timeout, say, may
    /// have reached the upstream: a gateway billing per completion may not
    /// want a POST sent twice. Attempts stay bounded by
    /// [`max_attempts`](Self::max_attempts) and need a body that can be
    /// [replayed](super::Replay).
    ///
    /// ```
    /// use modelfleet::health::FailureKind;
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// let layer = FleetLayer::builder(fleet)
    ///     .retry_if(|method, kind| kind.is_retryable() && !(kind == FailureKind::Timeout && method == http::Method::POST))
    ///     .build();
    /// assert!(layer.is_ok());
    /// ```
    pub fn retry_if(
        mut self,
        retry: impl Fn(&http::Method, FailureKind) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retry_if = Some(Arc::new(retry));
        self
    }

    /// How many deployments one client request may be sent to, the first
    /// attempt included (default 3). Each is a different deployment.
    ///
    /// Zero is reported by [`build`](Self::build).
    ///
    /// ```
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// assert!(FleetLayer::builder(fleet.clone()).max_attempts(1).build().is_ok());
    /// assert!(FleetLayer::builder(fleet).max_attempts(0).build().is_err());
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        if attempts == 0 {
            return self.refuse("max_attempts", "0 is below the minimum of 1".to_owned());
        }
        self.attempts = attempts;
        self
    }

    /// How much of an error response's body is read to classify it
    /// (default 64 KiB), when the status is one whose body can change the
    /// verdict ([`reads_body`](crate::http::reads_body)). The bytes read
    /// are still passed on to the caller.
    ///
    /// ```
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// assert!(FleetLayer::builder(fleet).error_body_limit(4096).build().is_ok());
    /// ```
    pub fn error_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Counts a successful response's tokens (for `tpm` limits) with
    /// `count`, called on each data frame of the body; its last `Some`
    /// wins (e.g. the `usage` of the last chunk of a stream). Without it,
    /// or when it never answers, the request's
    /// [`token_estimate`](crate::Request::token_estimate) is reported.
    ///
    /// ```
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// fn total_tokens(frame: &[u8]) -> Option<u64> {
    ///     let text = std::str::from_utf8(frame).ok()?;
    ///     let at = text.find("\"total_tokens\":")? + "\"total_tokens\":".len();
    ///     let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    ///     digits.parse().ok()
    /// }
    /// assert_eq!(total_tokens(br#"{"usage":{"total_tokens":42}}"#), Some(42));
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// let layer = FleetLayer::builder(fleet).tokens(total_tokens).build()?;
    /// # let _ = layer;
    /// # Ok::<(), modelfleet::tower::Error>(())
    /// ```
    pub fn tokens(mut self, count: impl Fn(&[u8]) -> Option<u64> + Send + Sync + 'static) -> Self {
        self.tokens = Some(Arc::new(count));
        self
    }

    /// Signs each attempt with its deployment's credential: `resolve`
    /// turns the deployment's [`Credential`] reference into a token, sent
    /// as `Authorization: Bearer <token>` in a header marked sensitive
    /// (never shown by `Debug`, kept out of HPACK tables). With it, a
    /// client's own `Authorization` header never reaches an upstream: it is
    /// removed from every attempt, and a deployment without a credential
    /// (or whose token `resolve` does not give) gets none.
    ///
    /// ```
    /// use modelfleet::tower::FleetLayer;
    /// use modelfleet::{Fleet, ManualClock, Registry};
    ///
    /// let fleet: Fleet = Fleet::builder(Registry::default()).clock(ManualClock::new()).build();
    /// // The credential is the token itself here; it may as well name a
    /// // secret to look up.
    /// let layer = FleetLayer::builder(fleet).bearer(|c| Some(c.expose().to_owned())).build()?;
    /// # let _ = layer;
    /// # Ok::<(), modelfleet::tower::Error>(())
    /// ```
    pub fn bearer(
        mut self,
        resolve: impl Fn(&Credential) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.bearer = Some(Arc::new(resolve));
        self
    }
}

impl<P: IdentityPolicy + Clone, M> FleetLayerBuilder<P, M> {
    /// The layer.
    ///
    /// # Errors
    ///
    /// The first bad setting ([`Error::InvalidSetting`], naming the
    /// builder method), else [`Error::NoClock`] when the fleet has no
    /// clock.
    ///
    /// See [`FleetLayer`] for an example.
    pub fn build(self) -> Result<FleetLayer<P, M>, Error> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        let clock = Arc::clone(self.fleet.clock().ok_or(Error::NoClock)?);
        Ok(FleetLayer {
            shared: Arc::new(Shared {
                fleet: self.fleet,
                clock,
                affinity: self.affinity,
                strip: self.strip,
                attempts: self.attempts,
                body_limit: self.body_limit,
                tokens: self.tokens,
                bearer: self.bearer,
                retry_if: self.retry_if,
            }),
            make: Arc::new(self.make),
        })
    }
}
