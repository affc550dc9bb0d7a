//! [`Request`]: what a caller asks the [`Selector`](crate::Selector) for.

use std::time::Duration;

use semver::VersionReq;

use crate::key::ModelKey;

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
/// | [`tokens`](Self::tokens) | its context window is unknown or at least this many tokens, and its `tpm` usage plus these tokens is within its `tpm` limit |
/// | [`exclude`](Self::exclude) | its key is not excluded |
///
/// Deployments of weight 0 (drained) never pass.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::{ModelKey, Request, TagMatch, VersionPreference};
///
/// let tried = ModelKey::new("openai", "gpt-4")?;
/// let req = Request::new("gpt-4")
///     .provider("openai")
///     .label("region", "eu")
///     .tag("canary")
///     .version("^1.2".parse().unwrap())
///     .version_preference(VersionPreference::Newest)
///     .affinity("user-42")
///     .exclude(tried.clone())
///     .tokens(1200)
///     .fallback("gpt-4o-mini")
///     .at(Duration::from_secs(60));
/// assert_eq!(req.model(), "gpt-4");
/// assert_eq!(req.required_provider(), Some("openai"));
/// assert_eq!(req.required_labels(), [("region".to_owned(), "eu".to_owned())]);
/// assert_eq!(req.requested_tags(), ["canary"]);
/// assert_eq!(req.tag_match_mode(), TagMatch::Any);
/// assert_eq!(req.version_req().unwrap().to_string(), "^1.2");
/// assert_eq!(req.version_preference_mode(), VersionPreference::Newest);
/// assert_eq!(req.affinity_key(), Some("user-42"));
/// assert_eq!(req.excluded(), [tried]);
/// assert_eq!(req.token_estimate(), Some(1200));
/// assert_eq!(req.fallbacks(), ["gpt-4o-mini"]);
/// assert_eq!(req.time(), Some(Duration::from_secs(60)));
/// assert!(!req.is_plain());
/// # Ok::<(), modelfleet::Error>(())
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
    ///
    /// ```
    /// let req = modelfleet::Request::new("gpt-4").provider("azure");
    /// assert_eq!(req.required_provider(), Some("azure"));
    /// ```
    #[must_use]
    pub fn provider(mut self, provider: &str) -> Self {
        self.provider = Some(provider.to_owned());
        self
    }

    /// Only deployments with this label value (all required labels must match).
    ///
    /// ```
    /// let req = modelfleet::Request::new("gpt-4").label("region", "eu").label("tier", "gold");
    /// assert_eq!(req.required_labels().len(), 2);
    /// ```
    #[must_use]
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds a requested tag; see [`TagMatch`] for how tags match.
    ///
    /// ```
    /// let req = modelfleet::Request::new("gpt-4").tag("canary");
    /// assert_eq!(req.requested_tags(), ["canary"]);
    /// ```
    #[must_use]
    pub fn tag(mut self, tag: &str) -> Self {
        self.tags.push(tag.to_owned());
        self
    }

    /// How the requested tags match (default [`TagMatch::Any`]).
    ///
    /// ```
    /// use modelfleet::{Request, TagMatch};
    /// let req = Request::new("gpt-4").tag("a").tag("b").tag_match(TagMatch::All);
    /// assert_eq!(req.tag_match_mode(), TagMatch::All);
    /// ```
    #[must_use]
    pub fn tag_match(mut self, mode: TagMatch) -> Self {
        self.tag_match = mode;
        self
    }

    /// Only deployments whose version matches `req` (deployments without a
    /// version never match).
    ///
    /// ```
    /// let req = modelfleet::Request::new("gpt-4").version("^1.2".parse().unwrap());
    /// assert!(req.version_req().unwrap().matches(&"1.4.0".parse().unwrap()));
    /// ```
    #[must_use]
    pub fn version(mut self, req: VersionReq) -> Self {
        self.version = Some(req);
        self
    }

    /// Which matching versions are acceptable (default [`VersionPreference::Any`]).
    ///
    /// ```
    /// use modelfleet::{Request, VersionPreference};
    /// let req = Request::new("gpt-4").version_preference(VersionPreference::Newest);
    /// assert!(!req.is_plain());
    /// ```
    #[must_use]
    pub fn version_preference(mut self, preference: VersionPreference) -> Self {
        self.version_preference = preference;
        self
    }

    /// The affinity key for sticky sessions (a user, session or episode id).
    ///
    /// ```
    /// let req = modelfleet::Request::new("gpt-4").affinity("user-42");
    /// assert_eq!(req.affinity_key(), Some("user-42"));
    /// assert!(req.is_plain()); // affinity steers the pick, it filters nothing
    /// ```
    #[must_use]
    pub fn affinity(mut self, key: &str) -> Self {
        self.affinity = Some(key.to_owned());
        self
    }

    /// Skips this deployment (e.g. one already tried).
    ///
    /// ```
    /// use modelfleet::{ModelKey, Request};
    /// let tried = ModelKey::new("openai", "gpt-4")?;
    /// let req = Request::new("gpt-4").exclude(tried.clone());
    /// assert_eq!(req.excluded(), [tried]);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn exclude(mut self, key: ModelKey) -> Self {
        self.exclude.push(key);
        self
    }

    /// The estimated number of tokens; deployments with a smaller known
    /// context window are skipped, and so are deployments whose
    /// [`tpm`](crate::Limits::tpm) usage over the rolling minute plus this
    /// estimate would exceed the limit. Without an estimate the request
    /// needs one token: a deployment is skipped once its usage reaches the
    /// limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::Report;
    /// use modelfleet::{Deployment, Error, Registry, Request, Selector};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").tpm(1_440).build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).build();
    /// let pick = s.select(&Request::new("gpt-4"))?;
    /// pick.complete(Report::success(Duration::from_secs(1), Duration::from_millis(300)).tokens(1_439));
    ///
    /// let req = Request::new("gpt-4").tokens(12);
    /// assert_eq!(req.token_estimate(), Some(12));
    /// assert!(matches!(s.select(&req), Err(Error::Unavailable { .. }))); // 1,439 + 12 > 1,440
    /// assert!(s.select(&Request::new("gpt-4").tokens(1)).is_ok()); // 1,439 + 1 = 1,440
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn tokens(mut self, tokens: u32) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Adds a model to fall back to, in order, once no deployment of the
    /// requested model is left in an [attempt plan](crate::Selector::plan).
    ///
    /// ```
    /// let req = modelfleet::Request::new("gpt-4").fallback("gpt-4o").fallback("gpt-4o-mini");
    /// assert_eq!(req.fallbacks(), ["gpt-4o", "gpt-4o-mini"]);
    /// ```
    #[must_use]
    pub fn fallback(mut self, model: &str) -> Self {
        self.fallbacks.push(model.to_owned());
        self
    }

    /// The time of the request (since any fixed origin of your choosing,
    /// the same clock as your [reports](crate::health::Report)): health and
    /// rolling-minute limits are judged at this time. Without it, the
    /// selector uses the latest report time it has seen. Times past
    /// [`health::END`](crate::health::END) are taken as it (see the
    /// [time range](crate::health#time-range)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let req = modelfleet::Request::new("gpt-4").at(Duration::from_secs(60));
    /// assert_eq!(req.time(), Some(Duration::from_secs(60)));
    /// ```
    #[must_use]
    pub fn at(mut self, now: Duration) -> Self {
        self.at = Some(now);
        self
    }

    /// The requested model.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The required provider.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn required_provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// The required labels.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn required_labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The requested tags.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn requested_tags(&self) -> &[String] {
        &self.tags
    }

    /// How the requested tags match.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn tag_match_mode(&self) -> TagMatch {
        self.tag_match
    }

    /// The version requirement.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn version_req(&self) -> Option<&VersionReq> {
        self.version.as_ref()
    }

    /// Which matching versions are acceptable.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn version_preference_mode(&self) -> VersionPreference {
        self.version_preference
    }

    /// The affinity key.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn affinity_key(&self) -> Option<&str> {
        self.affinity.as_deref()
    }

    /// The excluded deployments.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn excluded(&self) -> &[ModelKey] {
        &self.exclude
    }

    /// The estimated token count.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn token_estimate(&self) -> Option<u32> {
        self.tokens
    }

    /// The request's time, if set.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn time(&self) -> Option<Duration> {
        self.at
    }

    /// The fallback models, in order.
    ///
    /// See [`Request`] for an example.
    #[must_use]
    pub fn fallbacks(&self) -> &[String] {
        &self.fallbacks
    }

    /// Whether the request has no filter beyond the model name: the
    /// selector's fast path.
    ///
    /// ```
    /// use modelfleet::Request;
    /// assert!(Request::new("gpt-4").fallback("gpt-4o").is_plain());
    /// assert!(!Request::new("gpt-4").label("region", "eu").is_plain());
    /// ```
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
