//! A response's status (with its headers and error body) as a failure kind
//! or a success.

use std::time::{Duration, SystemTime};

use ::http::{HeaderMap, StatusCode};

use super::{body, retry_after};
use crate::health::{FailureKind, Outcome};

/// What a response says about the deployment that sent it: `None` for a
/// success (1xx to 3xx), else the failure's kind, by
/// [the table](super#the-table).
///
/// `body` is the body of an error response, or a prefix of it; it is read
/// only when [`reads_body`] is true for `status`, so pass `None` for any
/// other status (or when the body is not at hand). `wall_now` is the
/// wall-clock time the response arrived, for a `Retry-After` date (see
/// [`retry_after`](super::retry_after())).
///
/// Every status code and every header value gives a defined result; none
/// panics. O(retry headers' length + body length × phrase lengths);
/// allocates nothing.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::{HeaderMap, StatusCode};
/// use modelfleet::health::FailureKind;
/// use modelfleet::http::failure_kind;
///
/// let now = SystemTime::UNIX_EPOCH;
/// let mut headers = HeaderMap::new();
/// assert_eq!(failure_kind(StatusCode::OK, &headers, None, now), None);
/// headers.insert("retry-after", "20".parse()?);
/// assert_eq!(
///     failure_kind(StatusCode::TOO_MANY_REQUESTS, &headers, None, now),
///     Some(FailureKind::rate_limited(Some(Duration::from_secs(20)))),
/// );
/// let body = br#"{"error": {"code": "context_length_exceeded"}}"#;
/// assert_eq!(
///     failure_kind(StatusCode::BAD_REQUEST, &HeaderMap::new(), Some(body), now),
///     Some(FailureKind::ContextWindowExceeded),
/// );
/// # Ok::<(), http::header::InvalidHeaderValue>(())
/// ```
#[must_use]
pub fn failure_kind(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    wall_now: SystemTime,
) -> Option<FailureKind> {
    Some(match status.as_u16() {
        100..=399 => return None,
        408 => FailureKind::Timeout,
        401 | 403 => FailureKind::AuthenticationError,
        404 => FailureKind::NotFound,
        429 => FailureKind::rate_limited(retry_after(headers, wall_now)),
        400 | 413 | 422 => body
            .and_then(body::named_kind)
            .unwrap_or(FailureKind::BadRequest),
        503 | 529 => FailureKind::overloaded(retry_after(headers, wall_now)),
        500..=599 => FailureKind::ServerError,
        _ => FailureKind::Other,
    })
}

/// Whether the body of a response with `status` can change
/// [`failure_kind`]'s verdict: true for 400, 413 and 422 only, so a caller
/// reads (a bounded prefix of) the body of those responses and streams
/// every other one untouched.
///
/// ```
/// use http::StatusCode;
/// use modelfleet::http::reads_body;
///
/// assert!(reads_body(StatusCode::BAD_REQUEST));
/// assert!(reads_body(StatusCode::PAYLOAD_TOO_LARGE));
/// assert!(!reads_body(StatusCode::OK));
/// assert!(!reads_body(StatusCode::TOO_MANY_REQUESTS));
/// ```
#[must_use]
pub fn reads_body(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 422)
}

/// The [`Outcome`] to report for a response that took `latency`: a
/// success, or a failure of [`failure_kind`]'s kind with that latency.
///
/// The latency of a streamed response is the time to its end, so report
/// once the body has ended. Same costs as [`failure_kind`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::{HeaderMap, StatusCode};
/// use modelfleet::health::{FailureKind, Outcome};
/// use modelfleet::http::outcome;
///
/// let (headers, now, took) = (HeaderMap::new(), SystemTime::UNIX_EPOCH, Duration::from_millis(420));
/// assert_eq!(outcome(StatusCode::OK, &headers, None, took, now), Outcome::success(took));
/// assert_eq!(
///     outcome(StatusCode::BAD_GATEWAY, &headers, None, took, now),
///     Outcome::failure(FailureKind::ServerError, Some(took)),
/// );
/// ```
#[must_use]
pub fn outcome(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    latency: Duration,
    wall_now: SystemTime,
) -> Outcome {
    match failure_kind(status, headers, body, wall_now) {
        None => Outcome::success(latency),
        Some(kind) => Outcome::failure(kind, Some(latency)),
    }
}
