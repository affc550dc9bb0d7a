//! [`Error`]: what can go wrong in the tower layer, at construction and per
//! request.

use std::time::{Duration, SystemTime};

use crate::health::FailureKind;
use crate::{Field, ModelKey};

/// A boxed error, as tower services pass them: the inner service's errors
/// and the response body's errors travel as one.
///
/// ```
/// use modelfleet::tower::{BoxError, Error};
/// let boxed: BoxError = Error::MissingRequest.into();
/// assert!(boxed.downcast_ref::<Error>().is_some());
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in [`FleetLayer`](super::FleetLayer) and
/// [`FleetService`](super::FleetService).
///
/// Messages are lowercase and name the deployment (by its key, whose
/// endpoint never carries credentials); no message holds a credential or
/// a header value.
///
/// ```
/// use modelfleet::tower::{Error, FleetLayer};
/// use modelfleet::{Deployment, Fleet, Registry};
///
/// // A fleet without a clock cannot back the layer: report and request
/// // times must share one origin.
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let err = FleetLayer::new(Fleet::new(reg, |b| b)).unwrap_err();
/// assert!(matches!(err, Error::NoClock));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The fleet given to the layer has no [clock](crate::Clock).
    #[error(
        "the fleet has no clock: build it with one (Fleet::builder(..).clock(..)) so that requests and reports share one time origin"
    )]
    NoClock,
    /// A layer setting is out of range.
    #[error("tower layer: {setting} {problem}")]
    #[non_exhaustive]
    InvalidSetting {
        /// The builder method that took it.
        setting: &'static str,
        /// What is wrong, with the offending value.
        problem: String,
    },
    /// The HTTP request carries no [`Request`](crate::Request) extension
    /// and the layer has no request hook.
    #[error(
        "no modelfleet::Request in the HTTP request's extensions, and the layer has no request hook"
    )]
    MissingRequest,
    /// The request hook refused the HTTP request.
    #[error("the request hook refused the request")]
    #[non_exhaustive]
    Request {
        /// The hook's error.
        #[source]
        source: BoxError,
    },
    /// No deployment to try: the fleet's selection failed before any
    /// attempt reached an upstream.
    #[error("no deployment to try: {source}")]
    #[non_exhaustive]
    Unavailable {
        /// The fleet's error: [`Unavailable`](crate::Error::Unavailable),
        /// [`NoEligible`](crate::Error::NoEligible) or
        /// [`UnknownModel`](crate::Error::UnknownModel).
        #[source]
        source: Box<crate::Error>,
        /// When a deployment becomes a candidate again, in the fleet
        /// clock's time; `None` when no time is known.
        retry_at: Option<Duration>,
        /// The same time on the wall clock, through the fleet's
        /// [`Clock::system_time`](crate::Clock::system_time), for a
        /// `Retry-After` header.
        retry_time: Option<SystemTime>,
    },
    /// The picked deployment has no endpoint to send the request to.
    #[error("deployment {deployment}: no endpoint to send the request to")]
    #[non_exhaustive]
    NoEndpoint {
        /// The deployment's key.
        deployment: Box<ModelKey>,
    },
    /// The deployment's endpoint and the request's path and query do not
    /// make a URI, or the path has a `.` or `..` segment, which could
    /// climb out of the endpoint's path.
    #[error("deployment {deployment}: endpoint and request path do not make a valid URI")]
    #[non_exhaustive]
    InvalidUri {
        /// The deployment's key.
        deployment: Box<ModelKey>,
    },
    /// The credential hook gave a token that cannot be sent in an
    /// `Authorization` header (the token is not shown).
    #[error("deployment {deployment}: credential is not a valid Authorization header value")]
    #[non_exhaustive]
    InvalidCredential {
        /// The deployment's key.
        deployment: Box<ModelKey>,
    },
    /// The inner service failed on the last attempt, without a response.
    #[error("deployment {deployment}: {kind}")]
    #[non_exhaustive]
    Upstream {
        /// The deployment the attempt went to.
        deployment: Box<ModelKey>,
        /// How the failure was classified
        /// ([`transport_failure`](crate::http::transport_failure)).
        kind: FailureKind,
        /// The inner service's error.
        #[source]
        source: BoxError,
    },
    /// The inner service failed while the layer waited for it to be ready
    /// for a retry.
    #[error("the inner service failed while getting ready")]
    #[non_exhaustive]
    NotReady {
        /// The inner service's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// When a deployment becomes a candidate again (fleet clock time), for
    /// [`Unavailable`](Error::Unavailable) with a known time.
    ///
    /// ```
    /// use modelfleet::tower::Error;
    /// assert_eq!(Error::MissingRequest.retry_at(), None);
    /// ```
    #[must_use]
    pub fn retry_at(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_at, .. } => *retry_at,
            _ => None,
        }
    }

    /// The wall-clock time of [`retry_at`](Self::retry_at), for a
    /// `Retry-After` header.
    ///
    /// ```
    /// use modelfleet::tower::Error;
    /// assert_eq!(Error::NoClock.retry_time(), None);
    /// ```
    #[must_use]
    pub fn retry_time(&self) -> Option<SystemTime> {
        match self {
            Error::Unavailable { retry_time, .. } => *retry_time,
            _ => None,
        }
    }

    /// The deployment the error is about, when it is about one.
    ///
    /// ```
    /// use modelfleet::tower::Error;
    /// assert!(Error::MissingRequest.deployment().is_none());
    /// ```
    #[must_use]
    pub fn deployment(&self) -> Option<&ModelKey> {
        match self {
            Error::NoEndpoint { deployment }
            | Error::InvalidUri { deployment }
            | Error::InvalidCredential { deployment }
            | Error::Upstream { deployment, .. } => Some(deployment),
            _ => None,
        }
    }

    /// The deployment field the error is about, when it is about one.
    ///
    /// ```
    /// use modelfleet::tower::Error;
    /// assert!(Error::NoClock.field().is_none());
    /// ```
    #[must_use]
    pub fn field(&self) -> Option<Field> {
        match self {
            Error::NoEndpoint { .. } | Error::InvalidUri { .. } => Some(Field::Endpoint),
            Error::InvalidCredential { .. } => Some(Field::Credential),
            _ => None,
        }
    }
}
