//! Outcome reports: how a pick ended, when, and the tokens it used.

use std::time::Duration;

use super::FailureKind;

/// How a pick ended.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{FailureKind, Outcome};
/// let ok = Outcome::success(Duration::from_millis(120));
/// let failed = Outcome::failure(FailureKind::Timeout, None);
/// assert!(ok.is_success() && !failed.is_success());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The request succeeded and took `latency` ([`Outcome::success`]).
    #[non_exhaustive]
    Success {
        /// How long the request took.
        latency: Duration,
    },
    /// The request failed ([`Outcome::failure`]).
    #[non_exhaustive]
    Failure {
        /// Why.
        kind: FailureKind,
        /// How long it took to fail, if known.
        latency: Option<Duration>,
    },
}

impl Outcome {
    /// A success that took `latency`.
    ///
    /// See [`Outcome`] for an example.
    #[must_use]
    pub const fn success(latency: Duration) -> Self {
        Outcome::Success { latency }
    }

    /// A failure of `kind`, after `latency` if known.
    ///
    /// See [`Outcome`] for an example.
    #[must_use]
    pub const fn failure(kind: FailureKind, latency: Option<Duration>) -> Self {
        Outcome::Failure { kind, latency }
    }

    /// Whether this is a success.
    ///
    /// See [`Outcome`] for an example.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success { .. })
    }
}

/// One outcome report: what happened, when, and the tokens it used.
///
/// `at` is time since any fixed origin of your choosing (e.g. when your
/// process started); it must not go backwards within one selector. Times
/// past [`END`](super::END) are taken as it, and token counts saturate at
/// `u64::MAX` (see the [time range](super#time-range)).
///
/// ```
/// use std::time::Duration;
/// use modelfleet::health::{FailureKind, Outcome, Report};
/// let ms = Duration::from_millis;
/// let ok = Report::success(ms(1_000), ms(240)).tokens(1_850);
/// let limited = Report::failure(ms(1_500), FailureKind::rate_limited(Some(ms(5_000))));
/// let slow_fail = Report::new(ms(2_000), Outcome::failure(FailureKind::Timeout, Some(ms(30_000))));
/// assert_eq!(ok.token_count(), 1_850);
/// assert_eq!(ok.outcome(), Outcome::success(ms(240)));
/// assert_eq!(limited.time(), ms(1_500));
/// assert_eq!(limited.token_count(), 0);
/// assert!(!slow_fail.outcome().is_success());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    at: Duration,
    outcome: Outcome,
    tokens: u64,
}

impl Report {
    /// A report of `outcome` at `at`.
    ///
    /// See [`Report`] for an example.
    pub fn new(at: Duration, outcome: Outcome) -> Self {
        Self {
            at,
            outcome,
            tokens: 0,
        }
    }

    /// A success at `at` that took `latency`.
    ///
    /// See [`Report`] for an example.
    pub fn success(at: Duration, latency: Duration) -> Self {
        Self::new(at, Outcome::Success { latency })
    }

    /// A failure of `kind` at `at`.
    ///
    /// See [`Report`] for an example.
    pub fn failure(at: Duration, kind: FailureKind) -> Self {
        Self::new(
            at,
            Outcome::Failure {
                kind,
                latency: None,
            },
        )
    }

    /// The tokens the request used (prompt + completion), for `tpm` limits.
    ///
    /// See [`Report`] for an example.
    #[must_use]
    pub fn tokens(mut self, tokens: u64) -> Self {
        self.tokens = tokens;
        self
    }

    /// When it happened.
    ///
    /// See [`Report`] for an example.
    pub fn time(&self) -> Duration {
        self.at
    }

    /// What happened.
    ///
    /// See [`Report`] for an example.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The tokens it used.
    ///
    /// See [`Report`] for an example.
    pub fn token_count(&self) -> u64 {
        self.tokens
    }
}
