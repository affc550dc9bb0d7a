//! HTTP outcomes: what a response or a transport error says about the
//! deployment that was called (feature `http`).
//!
//! The selector learns about deployments only from [`Report`]s. This
//! module turns what an HTTP client gives back into the [`FailureKind`] or
//! [`Outcome`] of such a report, on the types of the [`http`]
//! crate, which hyper, axum, reqwest and tower-http share:
//!
//! - [`failure_kind`] / [`outcome`]: a response's status, headers and (for
//!   the statuses [`reads_body`] names) error body;
//! - [`retry_after`]: the delay a response asks for, from `Retry-After` or
//!   `retry-after-ms`, at most [`MAX_RETRY_AFTER`];
//! - [`transport_failure`]: an error instead of a response.
//!
//! Like the rest of the crate, nothing here reads a clock or does I/O:
//! the caller passes the wall-clock time the response arrived (for a
//! `Retry-After` date) and the latency it measured. Nothing allocates.
//!
//! # The table
//!
//! | status | kind | why |
//! |---|---|---|
//! | 1xx, 2xx | success (`None`) | the deployment answered |
//! | 3xx | success (`None`) | the deployment answered; a redirect is for the caller's HTTP client to follow (then classify the final response) or to pass on, and says nothing against the deployment |
//! | 400, 422 | `bad_request`, or what the body names (below) | the request itself was refused |
//! | 413 | `bad_request`, or what the body names (below) | a size limit on the body's bytes (often a proxy's), not a count of tokens: taken as a context-window verdict it would send the request to a larger-window fallback that the same limit refuses |
//! | 401, 403 | `authentication_error` | the credential was refused |
//! | 404 | `not_found` | the model or route does not exist there |
//! | 408 | `timeout` | the server timed the request out |
//! | 429 | `rate_limited`, with [`retry_after`] | |
//! | other 4xx | `other` | |
//! | 503, 529 | `overloaded`, with [`retry_after`] | no capacity now (529: Anthropic's "overloaded") |
//! | other 5xx | `server_error` | |
//! | 600 to 999 | `other` | no meaning in HTTP |
//!
//! The body of a 400, 413 or 422 (any prefix of it; ASCII letters in any
//! case; not necessarily UTF-8 or JSON) changes the kind when it contains:
//!
//! | phrase | kind |
//! |---|---|
//! | `context_length_exceeded` (OpenAI's code) | `context_window_exceeded` |
//! | `maximum context length` (OpenAI's, vLLM's message) | `context_window_exceeded` |
//! | `prompt is too long` (Anthropic's message) | `context_window_exceeded` |
//! | `content_filter` (Azure OpenAI's code) | `content_filtered` |
//! | `content_policy_violation` (OpenAI's code) | `content_filtered` |
//! | `ResponsibleAIPolicyViolation` (Azure OpenAI's inner code) | `content_filtered` |
//!
//! A body naming both takes the context window: a request that cannot fit
//! was not judged for its content.
//!
//! `Retry-After` and `retry-after-ms` ([`retry_after`]):
//!
//! | header value | delay |
//! |---|---|
//! | `retry-after-ms: 1500` (digits, optional fraction) | 1.5 s; wins over `Retry-After` when it parses |
//! | `Retry-After: 120` (digits only) | 120 s |
//! | `Retry-After:` an HTTP-date (IMF-fixdate, RFC 850, asctime) | the date minus `wall_now` |
//! | a date not after `wall_now` | zero: come back now |
//! | more than [`MAX_RETRY_AFTER`] (a day), or too large a number | [`MAX_RETRY_AFTER`] |
//! | negative, signed, fractional (`Retry-After`), empty, other text, a date that does not exist, names the wrong weekday or falls before 1970, not visible ASCII, or the header given twice | none from that header |
//!
//! Transport errors ([`transport_failure`]), the first named in the
//! error's `source` chain from the outside in:
//!
//! | error | kind |
//! |---|---|
//! | `io::ErrorKind::TimedOut`; a type named `…Elapsed`, `…Timeout`, `…TimedOut`, `…TimeoutError` | `timeout` |
//! | `io::ErrorKind::` `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`, `NotConnected`, `AddrNotAvailable`, `BrokenPipe`; a type named `…ConnectError` | `connection_error` |
//! | anything else | `other` |
//!
//! Whether a failure is worth another deployment is
//! [`FailureKind::is_retryable`]'s table; how the health policy cools a
//! deployment for it is the [`health`](crate::health) module's.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::{HeaderMap, StatusCode};
//! use modelfleet::health::{FailureKind, Report};
//! use modelfleet::{Deployment, Registry, Request, Selector};
//!
//! let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
//! let selector = Selector::builder(&reg).build();
//! let at = Duration::from_secs(10);
//! let pick = selector.select(&Request::new("gpt-4").at(at))?;
//!
//! // The upstream answered 503 with `Retry-After: 30`.
//! let mut headers = HeaderMap::new();
//! headers.insert("retry-after", "30".parse().unwrap());
//! let took = Duration::from_millis(80);
//! let outcome = modelfleet::http::outcome(
//!     StatusCode::SERVICE_UNAVAILABLE, &headers, None, took, SystemTime::now(),
//! );
//! let kind = FailureKind::overloaded(Some(Duration::from_secs(30)));
//! assert_eq!(outcome, modelfleet::health::Outcome::failure(kind, Some(took)));
//! assert!(kind.is_retryable());
//! pick.complete(Report::new(at + took, outcome));
//!
//! // Cooling until the time the server asked for.
//! assert!(selector.select(&Request::new("gpt-4").at(Duration::from_secs(20))).is_err());
//! # Ok::<(), modelfleet::Error>(())
//! ```
//!
//! [`Report`]: crate::health::Report
//! [`FailureKind`]: crate::health::FailureKind
//! [`FailureKind::is_retryable`]: crate::health::FailureKind::is_retryable
//! [`Outcome`]: crate::health::Outcome

mod body;
mod retry_after;
mod status;
mod transport;

pub use retry_after::{MAX_RETRY_AFTER, retry_after};
pub use status::{failure_kind, outcome, reads_body};
pub use transport::transport_failure;

#[cfg(test)]
mod tests {
    /// The body phrases of the module's table are the ones `body.rs` looks
    /// for, in its order and with its kinds.
    #[test]
    fn body_table_is_the_phrase_lists() {
        let docs = include_str!("mod.rs");
        let from = docs.find("//! | phrase | kind |").unwrap();
        let rows: Vec<(&str, &str)> = docs[from..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with("//! |"))
            .map(|l| {
                let cells: Vec<&str> = l.split('`').collect();
                (cells[1], cells[cells.len() - 2])
            })
            .collect();
        let code: Vec<(&str, &str)> = super::body::CONTEXT_WINDOW
            .iter()
            .map(|p| (*p, "context_window_exceeded"))
            .chain(
                super::body::CONTENT_FILTER
                    .iter()
                    .map(|p| (*p, "content_filtered")),
            )
            .collect();
        assert_eq!(rows, code);
    }
}
