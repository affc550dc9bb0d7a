//! [`Error`], the error of every fallible call outside the fleet-file layer
//! (which reports `ConfigErrors`), and [`Field`].

use std::fmt;

use crate::endpoint::EndpointProblem;
use crate::key::ModelKey;
use crate::name::NameProblem;
use crate::registry::Collision;

/// Everything that can go wrong in modelfleet.
///
/// Messages are lowercase, name the field and the deployment they are about,
/// and quote the offending input, except where the input may hold a secret
/// (an endpoint with credentials or a query string is never echoed).
///
/// # Example
///
/// ```
/// use modelfleet::{Deployment, Error, Field};
///
/// let err = Deployment::builder("openai", "gpt-4")
///     .endpoint("http://user:hunter2@10.0.0.1/v1")
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, Error::InvalidEndpoint { .. }));
/// assert_eq!(err.field(), Some(Field::Endpoint));
/// assert!(!err.to_string().contains("hunter2"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name (provider, model, upstream model, tag, label) is not acceptable.
    #[error("deployment {deployment}: {field} {problem}")]
    #[non_exhaustive]
    InvalidName {
        /// The deployment being built, as `provider/model` (escaped).
        deployment: String,
        /// Which field.
        field: Field,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// The endpoint URL is not acceptable.
    #[error("deployment {deployment}: endpoint {problem}")]
    #[non_exhaustive]
    InvalidEndpoint {
        /// The deployment being built, as `provider/model` (escaped).
        deployment: String,
        /// What is wrong with it.
        problem: EndpointProblem,
        /// The URL parser's error, when the URL did not parse at all.
        #[source]
        source: Option<url::ParseError>,
    },
    /// The version is not a valid semantic version.
    #[error("deployment {deployment}: version {input:?} is not a semantic version")]
    #[non_exhaustive]
    InvalidVersion {
        /// The deployment being built, as `provider/model` (escaped).
        deployment: String,
        /// The input that did not parse.
        input: String,
        /// The parser's error.
        #[source]
        source: semver::Error,
    },
    /// A number (weight, limit, context window) is out of range.
    #[error("deployment {deployment}: {field} {problem}")]
    #[non_exhaustive]
    InvalidNumber {
        /// The deployment being built, as `provider/model` (escaped).
        deployment: String,
        /// Which field.
        field: Field,
        /// What is wrong with it, with the offending input.
        problem: String,
    },
    /// `insert` found a deployment with the same key already in the registry.
    #[error("duplicate key {key}: the registry already holds deployment {existing}")]
    #[non_exhaustive]
    Duplicate {
        /// The key both deployments share.
        key: Box<ModelKey>,
        /// The deployment already stored under that key, as it displays.
        existing: String,
    },
    /// Moving a registry to another identity policy would merge deployments.
    #[error("{} key(s) would collide under policy {policy}: {}", collisions.len(), CollisionList(collisions))]
    #[non_exhaustive]
    Collisions {
        /// The target policy, as [`IdentityPolicy::describe`](crate::IdentityPolicy::describe) names it.
        policy: String,
        /// Every new key that more than one deployment would share.
        collisions: Vec<Collision>,
    },
    /// A registry change cannot apply.
    #[error("change {index} ({key}): {problem}")]
    #[non_exhaustive]
    InvalidChange {
        /// The change's position in the list.
        index: usize,
        /// The key it is about.
        key: Box<ModelKey>,
        /// Why it cannot apply.
        problem: &'static str,
    },
    /// An identity policy string did not parse.
    #[error("unknown identity policy {input:?}: {reason}")]
    #[non_exhaustive]
    UnknownPolicy {
        /// The input.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A `ModelKey` string did not parse.
    #[error("malformed model key {input:?}: {reason}")]
    #[non_exhaustive]
    InvalidKey {
        /// The input (with any endpoint credentials redacted).
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A strategy name did not parse.
    #[error("unknown strategy {input:?}: expected one of {expected}")]
    #[non_exhaustive]
    UnknownStrategy {
        /// The input.
        input: String,
        /// The names that would have been accepted.
        expected: &'static str,
    },
    /// A strategy setting is out of range.
    #[error("strategy {strategy}: {problem}")]
    #[non_exhaustive]
    InvalidStrategy {
        /// The strategy's name.
        strategy: &'static str,
        /// What is wrong, with the offending value.
        problem: String,
    },
    /// A name (failure kind, outcome, …) did not parse.
    #[error("unknown {what} {input:?}: expected one of {expected}")]
    #[non_exhaustive]
    UnknownName {
        /// What kind of name.
        what: &'static str,
        /// The input.
        input: String,
        /// The names that would have been accepted.
        expected: &'static str,
    },
    /// A health setting is out of range.
    #[error("health: {field} {problem}")]
    #[non_exhaustive]
    InvalidHealth {
        /// The setting, as a path (`ejection.max_percent`).
        field: &'static str,
        /// What is wrong, with the offending value.
        problem: String,
    },
    /// Deployments pass the request's filters, but none is healthy or within
    /// its limits.
    #[error("no deployment of {model:?} is available{}: {removed}", RetryAt(*retry_at))]
    #[non_exhaustive]
    Unavailable {
        /// The requested model.
        model: String,
        /// The earliest time (since your clock's origin) a cooling or
        /// ejected deployment becomes a candidate again; `None` when only
        /// limits stand in the way; [`health::END`](crate::health::END)
        /// when every one is out for the rest of the
        /// [time range](crate::health#time-range).
        retry_at: Option<std::time::Duration>,
        /// How many candidates each filter, health state and limit removed.
        removed: crate::select::Removed,
    },
    /// No deployment serves the requested model. (A provider that does not
    /// serve it is a filter: [`Error::NoEligible`].)
    #[error("unknown model {model:?}")]
    #[non_exhaustive]
    UnknownModel {
        /// The requested model.
        model: String,
    },
    /// No deployment has this key ([`Fleet::drain`](crate::Fleet::drain)).
    #[error("no deployment has key {key}")]
    #[non_exhaustive]
    UnknownDeployment {
        /// The key asked for.
        key: Box<ModelKey>,
    },
    /// Versioned changes that do not follow the fleet's registry version
    /// ([`Fleet::apply_version`](crate::Fleet::apply_version)): already
    /// applied (`got <= have`) or with versions missing between
    /// (`got > have + 1`). The fleet is unchanged; after a gap, install a
    /// full snapshot with [`Fleet::install_version`](crate::Fleet::install_version).
    #[error("changes to version {got} do not follow registry version {have}")]
    #[non_exhaustive]
    OutOfOrder {
        /// The fleet's registry version.
        have: u64,
        /// The version the changes lead to.
        got: u64,
    },
    /// A replica name ([`ReplicaId`](crate::share::ReplicaId)) breaks the
    /// name rules.
    #[error("replica name {problem}")]
    #[non_exhaustive]
    InvalidReplica {
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// The model exists but every deployment was filtered out.
    #[error("no deployment of {model:?} is eligible: {removed}")]
    #[non_exhaustive]
    NoEligible {
        /// The requested model.
        model: String,
        /// How many candidates each filter removed.
        removed: crate::select::Removed,
    },
}

/// The field of a deployment an error is about.
///
/// ```
/// use modelfleet::Field;
/// assert_eq!(Field::UpstreamModel.to_string(), "upstream_model");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `provider`.
    Provider,
    /// `model`.
    Model,
    /// `upstream_model`.
    UpstreamModel,
    /// `endpoint`.
    Endpoint,
    /// `tag`.
    Tag,
    /// `version`.
    Version,
    /// A key of `labels`.
    LabelKey,
    /// A value of `labels`.
    LabelValue,
    /// `weight`.
    Weight,
    /// `priority`.
    Priority,
    /// `limits.max_in_flight`.
    MaxInFlight,
    /// `limits.rpm`.
    Rpm,
    /// `limits.tpm`.
    Tpm,
    /// `context_window`.
    ContextWindow,
    /// `credential`.
    Credential,
    /// `cooldown_ms`: the deployment's cooldown override.
    Cooldown,
}

impl Field {
    /// The field's name as it appears in serialized deployments.
    ///
    /// ```
    /// assert_eq!(modelfleet::Field::MaxInFlight.as_str(), "limits.max_in_flight");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::Provider => "provider",
            Field::Model => "model",
            Field::UpstreamModel => "upstream_model",
            Field::Endpoint => "endpoint",
            Field::Tag => "tag",
            Field::Version => "version",
            Field::LabelKey => "label key",
            Field::LabelValue => "label value",
            Field::Weight => "weight",
            Field::Priority => "priority",
            Field::MaxInFlight => "limits.max_in_flight",
            Field::Rpm => "limits.rpm",
            Field::Tpm => "limits.tpm",
            Field::ContextWindow => "context_window",
            Field::Credential => "credential",
            Field::Cooldown => "cooldown_ms",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The deployment field this error is about, when it is about one.
    ///
    /// ```
    /// use modelfleet::{Deployment, Field};
    /// let err = Deployment::builder("openai", " ").build().unwrap_err();
    /// assert_eq!(err.field(), Some(Field::Model));
    /// ```
    #[must_use]
    pub fn field(&self) -> Option<Field> {
        match self {
            Error::InvalidName { field, .. } | Error::InvalidNumber { field, .. } => Some(*field),
            Error::InvalidEndpoint { .. } => Some(Field::Endpoint),
            Error::InvalidVersion { .. } => Some(Field::Version),
            _ => None,
        }
    }
}

struct CollisionList<'a>(&'a [Collision]);

impl fmt::Display for CollisionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Cut::new(self.0, "; ").fmt(f)
    }
}

/// A list in a message: its first [`Cut::SHOWN`] items, then how many more
/// there are, so that a message stays short however long the list; the
/// typed error keeps every item.
pub(crate) struct Cut<'a, T> {
    items: &'a [T],
    separator: &'static str,
    shown: usize,
}

impl<'a, T> Cut<'a, T> {
    /// How many items a message shows.
    pub(crate) const SHOWN: usize = 10;

    pub(crate) fn new(items: &'a [T], separator: &'static str) -> Self {
        Self::showing(items, separator, Self::SHOWN)
    }

    pub(crate) fn showing(items: &'a [T], separator: &'static str, shown: usize) -> Self {
        Self {
            items,
            separator,
            shown,
        }
    }
}

impl<T: fmt::Display> fmt::Display for Cut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().take(self.shown).enumerate() {
            if i > 0 {
                f.write_str(self.separator)?;
            }
            write!(f, "{item}")?;
        }
        if self.items.len() > self.shown {
            let more = self.items.len() - self.shown;
            write!(f, "{}… and {more} more", self.separator)?;
        }
        Ok(())
    }
}

struct RetryAt(Option<std::time::Duration>);

impl fmt::Display for RetryAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, " until {}ms", t.as_millis()),
            None => Ok(()),
        }
    }
}
