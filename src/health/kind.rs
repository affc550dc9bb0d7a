//! Failure kinds: why a request failed, as far as routing cares.

use std::fmt;
use std::time::Duration;

use crate::Error;
use crate::names::names;

/// Why a request failed, as far as routing cares.
///
/// ```
/// use modelfleet::health::FailureKind;
/// let k: FailureKind = "server_error".parse()?;
/// assert_eq!(k, FailureKind::ServerError);
/// assert_eq!(k.to_string(), "server_error");
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// 429: rate limited, with the server's `Retry-After` if it sent one
    /// ([`FailureKind::rate_limited`]).
    #[non_exhaustive]
    RateLimited {
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
    /// 408 or a client-side timeout.
    Timeout,
    /// 5xx other than 503 and 529.
    ServerError,
    /// 503 or 529: the server is up but has no capacity now, with its
    /// `Retry-After` if it sent one ([`FailureKind::overloaded`]).
    #[non_exhaustive]
    Overloaded {
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
    /// The connection failed (refused, reset, DNS, TLS).
    ConnectionError,
    /// 401/403: the credential was refused.
    AuthenticationError,
    /// 404: the model or route does not exist there.
    NotFound,
    /// 400: the request itself was bad.
    BadRequest,
    /// The prompt did not fit the context window.
    ContextWindowExceeded,
    /// The provider's content filter refused the request.
    ContentFiltered,
    /// Anything else.
    Other,
}

/// The number of failure kinds.
pub(crate) const KINDS: usize = FailureKind::ALL.len();

names! {
    FailureKind;
    /// Every kind (rate limited and overloaded without `Retry-After`), in
    /// index order.
    ///
    /// ```
    /// use modelfleet::health::FailureKind;
    /// assert_eq!(FailureKind::ALL.len(), 11);
    /// assert_eq!(FailureKind::ALL[1], FailureKind::Timeout);
    /// ```
    pub const ALL;
    /// The kind's name (`rate_limited`, `timeout`, …).
    ///
    /// ```
    /// assert_eq!(modelfleet::health::FailureKind::NotFound.as_str(), "not_found");
    /// ```
    pub fn as_str;
    parse_error(input, expected) => Error::UnknownName { what: "failure kind", input, expected };
    {
        FailureKind::RateLimited { .. } => "rate_limited" = FailureKind::RateLimited { retry_after: None },
        FailureKind::Timeout => "timeout" = FailureKind::Timeout,
        FailureKind::ServerError => "server_error" = FailureKind::ServerError,
        FailureKind::Overloaded { .. } => "overloaded" = FailureKind::Overloaded { retry_after: None },
        FailureKind::ConnectionError => "connection_error" = FailureKind::ConnectionError,
        FailureKind::AuthenticationError => "authentication_error" = FailureKind::AuthenticationError,
        FailureKind::NotFound => "not_found" = FailureKind::NotFound,
        FailureKind::BadRequest => "bad_request" = FailureKind::BadRequest,
        FailureKind::ContextWindowExceeded => "context_window_exceeded" = FailureKind::ContextWindowExceeded,
        FailureKind::ContentFiltered => "content_filtered" = FailureKind::ContentFiltered,
        FailureKind::Other => "other" = FailureKind::Other,
    }
}

impl FailureKind {
    /// A 429, with the server's `Retry-After` if it sent one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::FailureKind;
    /// let k = FailureKind::rate_limited(Some(Duration::from_secs(60)));
    /// assert_eq!(k.to_string(), "rate_limited");
    /// assert!(matches!(k, FailureKind::RateLimited { retry_after: Some(_), .. }));
    /// ```
    #[must_use]
    pub const fn rate_limited(retry_after: Option<Duration>) -> Self {
        FailureKind::RateLimited { retry_after }
    }

    /// A 503 or 529, with the server's `Retry-After` if it sent one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::FailureKind;
    /// let k = FailureKind::overloaded(Some(Duration::from_secs(5)));
    /// assert_eq!(k.to_string(), "overloaded");
    /// assert_eq!(k.retry_after(), Some(Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub const fn overloaded(retry_after: Option<Duration>) -> Self {
        FailureKind::Overloaded { retry_after }
    }

    /// How long the server asked to wait: `Some` for a rate-limited or
    /// overloaded failure that came with a `Retry-After`, else `None`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::FailureKind;
    /// let s = Duration::from_secs;
    /// assert_eq!(FailureKind::rate_limited(Some(s(30))).retry_after(), Some(s(30)));
    /// assert_eq!(FailureKind::overloaded(None).retry_after(), None);
    /// assert_eq!(FailureKind::ServerError.retry_after(), None);
    /// ```
    pub const fn retry_after(self) -> Option<Duration> {
        match self {
            FailureKind::RateLimited { retry_after } | FailureKind::Overloaded { retry_after } => {
                retry_after
            }
            _ => None,
        }
    }

    /// Whether the kind counts toward Envoy-style consecutive-failure
    /// ejection: server errors, overload, timeouts and connection errors.
    ///
    /// ```
    /// use modelfleet::health::FailureKind;
    /// assert!(FailureKind::Timeout.is_server_side());
    /// assert!(FailureKind::overloaded(None).is_server_side());
    /// assert!(!FailureKind::BadRequest.is_server_side());
    /// ```
    pub const fn is_server_side(self) -> bool {
        matches!(
            self,
            FailureKind::ServerError
                | FailureKind::Overloaded { .. }
                | FailureKind::Timeout
                | FailureKind::ConnectionError
        )
    }

    /// Whether the request is worth sending to another deployment of the
    /// same model: the failure says something about the deployment, not
    /// about the request.
    ///
    /// | kind | retryable | why |
    /// |---|---|---|
    /// | `rate_limited` | yes | limits are per deployment (per key, per region) |
    /// | `timeout` | yes | Envoy retries timeouts (`5xx`) and LiteLLM does too |
    /// | `server_error` | yes | Envoy's `5xx`; LiteLLM retries 5xx |
    /// | `overloaded` | yes | another deployment may have capacity |
    /// | `connection_error` | yes | Envoy's `connect-failure` and `reset` |
    /// | `authentication_error` | yes | each deployment has its own credential: LiteLLM retries a 401 when the model has another deployment |
    /// | `not_found` | no | LiteLLM never retries a 404: the model or route name is the request's, and the deployments of one model share it |
    /// | `bad_request` | no | the same request fails the same way anywhere |
    /// | `context_window_exceeded` | no | not on the same model: fall back to one with a larger window |
    /// | `content_filtered` | no | the content, not the deployment, was refused |
    /// | `other` | no | an unclassified failure says nothing another deployment would answer differently, and retrying it may repeat work |
    ///
    /// Retrying also needs a request that can be sent again and, for a
    /// timeout, an operation safe to repeat; that is the caller's call.
    ///
    /// ```
    /// use modelfleet::health::FailureKind;
    /// assert!(FailureKind::overloaded(None).is_retryable());
    /// assert!(FailureKind::AuthenticationError.is_retryable());
    /// assert!(!FailureKind::NotFound.is_retryable());
    /// assert!(!FailureKind::ContextWindowExceeded.is_retryable());
    /// ```
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureKind::RateLimited { .. }
                | FailureKind::Timeout
                | FailureKind::ServerError
                | FailureKind::Overloaded { .. }
                | FailureKind::ConnectionError
                | FailureKind::AuthenticationError
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
