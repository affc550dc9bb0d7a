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
    /// 5xx.
    ServerError,
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
    /// Every kind (rate limited without `Retry-After`), in index order.
    ///
    /// ```
    /// use modelfleet::health::FailureKind;
    /// assert_eq!(FailureKind::ALL.len(), 10);
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

    /// Whether the kind counts toward Envoy-style consecutive-failure
    /// ejection: server errors, timeouts and connection errors.
    ///
    /// ```
    /// use modelfleet::health::FailureKind;
    /// assert!(FailureKind::Timeout.is_server_side());
    /// assert!(!FailureKind::BadRequest.is_server_side());
    /// ```
    pub const fn is_server_side(self) -> bool {
        matches!(
            self,
            FailureKind::ServerError | FailureKind::Timeout | FailureKind::ConnectionError
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
