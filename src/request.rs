//! [`Request`]: what a caller asks the [`Selector`](crate::Selector) for.

use std::time::Duration;

use semver::VersionReq;

use crate::ModelKey;

/// What a caller asks for: a model, and what the deployment must satisfy.
///
/// A request is a plain value built by chaining; it never fails to build (a
/// model nobody serves is reported by [`Selector::select`](crate::Selector::select)).
/// Every constraint is a filter: a deployment that fails one is not a
/// candidate.
///
/// | constraint | a deployment passes when |
/// |---|---|
/// | [`provider`](Self::provider) | its provider is this one |
/// | [`label`](Self::label) | it has every required label with that exact value |
/// | [`tag`](Self::tag) | [`TagMatch::Any`]: its tag is one of the requested tags; [`TagMatch::All`]: it carries every requested tag (a deployment has one identity tag, so this matches only when all requested tags are that tag) |
/// | [`version`](Self::version) | it has a version matching the requirement |
/// | [`version_preference`](Self::version_preference) | with [`VersionPreference::Newest`]: its version is the highest among the deployments passing every other filter (with or without a requirement) |
/// | [`tokens`](Self::tokens) | its context window is unknown or at least this many tokens |
/// | [`exclude`](Self::exclude) | its key is not excluded |
///
/// Deployments of weight 0 (drained) never pass.
///
/// ```
/// use modelfleet::{Request, TagMatch, VersionPreference};
///
/// let req = Request::new("gpt-4")
///     .label("region", "eu")
///     .tag("canary")
///     .version("^1.2".parse().unwrap())
///     .version_preference(VersionPreference::Newest)
///     .affinity("user-42")
///     .tokens(1200)
///     .fallback("gpt-4o-mini");
/// assert_eq!(req.model(), "gpt-4");
/// assert_eq!(req.tag_match_mode(), TagMatch::Any);
/// assert!(!req.is_plain());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    model: String,
    provider: Option<String>,
    labels: Vec<(String, String)>,
    tags: Vec<String>,
    tag_match: TagMatch,
    version: Option<VersionReq>,
    version_preference: VersionPreference,
    affinity: Option<String>,
    exclude: Vec<ModelKey>,
    tokens: Option<u32>,
    fallbacks: Vec<String>,
    at: Option<Duration>,
}

/// How a request's tags match a deployment's tag.
///
/// ```
/// use modelfleet::{Request, TagMatch};
/// let req = Request::new("gpt-4").tag("a").tag("b").tag_match(TagMatch::Any);
/// assert_eq!(req.requested_tags(), ["a", "b"]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TagMatch {
    /// The deployment's tag is one of the requested tags (the default).
    #[default]
    Any,
    /// The deployment carries every requested tag.
    All,
}

/// Which of the versions matching a request's requirement are acceptable.
///
/// ```
/// use modelfleet::{Request, VersionPreference};
/// let req = Request::new("gpt-4").version_preference(VersionPreference::Newest);
/// assert_eq!(req.version_preference_mode(), VersionPreference::Newest);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VersionPreference {
    /// Any matching version (the default).
    #[default]
    Any,
    /// Only the highest version among the candidates that pass every other
    /// filter.
    Newest,
}

impl Request {
    /// A request for `model` with no constraints.
    ///
    /// ```
    /// assert!(modelfleet::Request::new("gpt-4").is_plain());
    /// ```
    #[must_use]
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            ..Self::default()
        }
    }

    /// Only deployments of this provider.
    #[must_use]
    pub fn provider(mut self, provider: &str) -> Self {
        self.provider = Some(provider.to_owned());
        self
    }

    /// Only deployments with this label value (all required labels must match).
    #[must_use]
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds a requested tag; see [`TagMatch`] for how tags match.
    #[must_use]
    pub fn tag(mut self, tag: &str) -> Self {
        self.tags.push(tag.to_owned());
        self
    }

    /// How the requested tags match (default [`TagMatch::Any`]).
    #[must_use]
    pub fn tag_match(mut self, mode: TagMatch) -> Self {
        self.tag_match = mode;
        self
    }

    /// Only deployments whose version matches `req` (deployments without a
    /// version never match).
    #[must_use]
    pub fn version(mut self, req: VersionReq) -> Self {
        self.version = Some(req);
        self
    }

    /// Which matching versions are acceptable (default [`VersionPreference::Any`]).
    #[must_use]
    pub fn version_preference(mut self, preference: VersionPreference) -> Self {
        self.version_preference = preference;
        self
    }

    /// The affinity key for sticky sessions (a user, session or episode id).
    #[must_use]
    pub fn affinity(mut self, key: &str) -> Self {
        self.affinity = Some(key.to_owned());
        self
    }

    /// Skips this deployment (e.g. one already tried).
    #[must_use]
    pub fn exclude(mut self, key: ModelKey) -> Self {
        self.exclude.push(key);
        self
    }

    /// The estimated number of tokens; deployments with a smaller known
    /// context window are skipped.
    #[must_use]
    pub fn tokens(mut self, tokens: u32) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Adds a model to fall back to, in order, once no deployment of the
    /// requested model is left in an [attempt plan](crate::Selector::plan).
    #[must_use]
    pub fn fallback(mut self, model: &str) -> Self {
        self.fallbacks.push(model.to_owned());
        self
    }

    /// The time of the request (since any fixed origin of your choosing,
    /// the same clock as your [reports](crate::health::Report)): health and
    /// rolling-minute limits are judged at this time. Without it, the
    /// selector uses the latest report time it has seen.
    #[must_use]
    pub fn at(mut self, now: Duration) -> Self {
        self.at = Some(now);
        self
    }

    /// The requested model.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The required provider.
    #[must_use]
    pub fn required_provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// The required labels.
    #[must_use]
    pub fn required_labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The requested tags.
    #[must_use]
    pub fn requested_tags(&self) -> &[String] {
        &self.tags
    }

    /// How the requested tags match.
    #[must_use]
    pub fn tag_match_mode(&self) -> TagMatch {
        self.tag_match
    }

    /// The version requirement.
    #[must_use]
    pub fn version_req(&self) -> Option<&VersionReq> {
        self.version.as_ref()
    }

    /// Which matching versions are acceptable.
    #[must_use]
    pub fn version_preference_mode(&self) -> VersionPreference {
        self.version_preference
    }

    /// The affinity key.
    #[must_use]
    pub fn affinity_key(&self) -> Option<&str> {
        self.affinity.as_deref()
    }

    /// The excluded deployments.
    #[must_use]
    pub fn excluded(&self) -> &[ModelKey] {
        &self.exclude
    }

    /// The estimated token count.
    #[must_use]
    pub fn token_estimate(&self) -> Option<u32> {
        self.tokens
    }

    /// The request's time, if set.
    #[must_use]
    pub fn time(&self) -> Option<Duration> {
        self.at
    }

    /// The fallback models, in order.
    #[must_use]
    pub fn fallbacks(&self) -> &[String] {
        &self.fallbacks
    }

    /// Whether the request has no filter beyond the model name: the
    /// selector's fast path.
    #[must_use]
    pub fn is_plain(&self) -> bool {
        self.provider.is_none()
            && self.labels.is_empty()
            && self.tags.is_empty()
            && self.version.is_none()
            && self.version_preference == VersionPreference::Any
            && self.tokens.is_none()
            && self.exclude.is_empty()
    }

    pub(crate) fn with_model(&self, model: &str) -> Self {
        let mut r = self.clone();
        r.model = model.to_owned();
        r
    }

    pub(crate) fn exclude_mut(&mut self) -> &mut Vec<ModelKey> {
        &mut self.exclude
    }
}
