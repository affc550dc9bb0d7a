//! [`Deployment`]: one reachable serving of a model, and its builder.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};

use semver::Version;
use url::Url;

use crate::ModelKey;
use crate::error::{Error, Field};
use crate::name::{check_free_text, check_name, describe};
use crate::policy::Discriminators;

/// One reachable serving of a model.
///
/// A deployment is what a request is finally sent to: a provider, the public
/// model name clients ask for, and where and how it is served. Several
/// deployments may serve one model; the registry's [identity
/// policy](crate::IdentityPolicy) decides which of them are distinct.
///
/// Built and validated by [`Deployment::builder`]; every deployment that
/// exists is valid. Cloning copies its strings (about 200 bytes plus the
/// names, the URL and the labels).
///
/// ```
/// use modelfleet::Deployment;
///
/// let d = Deployment::builder("openai-api-compatible", "gpt-4")
///     .endpoint("http://192.168.0.1/v1/")
///     .tag("node1")
///     .version("1.2.0")
///     .label("region", "eu")
///     .weight(3)
///     .build()?;
/// assert_eq!(d.endpoint().map(|u| u.as_str()), Some("http://192.168.0.1/v1"));
/// assert_eq!(d.to_string(), "openai-api-compatible/gpt-4#node1~1.2.0@http://192.168.0.1/v1");
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    provider: String,
    model: String,
    upstream_model: Option<String>,
    endpoint: Option<Url>,
    tag: Option<String>,
    version: Option<Version>,
    labels: BTreeMap<String, String>,
    weight: u32,
    priority: u32,
    limits: Limits,
    context_window: Option<NonZeroU32>,
    credential: Option<Credential>,
}

/// Per-deployment limits. `None` means unlimited.
///
/// ```
/// use std::num::NonZeroU32;
/// use modelfleet::{Deployment, Limits};
///
/// let mut limits = Limits::default();
/// limits.rpm = NonZeroU32::new(600);
/// let d = Deployment::builder("openai", "gpt-4").limits(limits).build()?;
/// assert_eq!(d.limits().rpm.map(NonZeroU32::get), Some(600));
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Limits {
    /// Requests in flight at once.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub max_in_flight: Option<NonZeroU32>,
    /// Requests per minute.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub rpm: Option<NonZeroU32>,
    /// Tokens per minute.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub tpm: Option<NonZeroU64>,
}

impl Limits {
    #[cfg(feature = "serde")]
    fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }
}

/// An opaque reference to the credential a deployment is called with (an
/// environment variable name, a vault path, or the key itself).
///
/// It is never shown: `Debug` and `Display` print `<redacted>`, and
/// serializing a deployment leaves it out. Read it with [`Credential::expose`]
/// where the request is signed.
///
/// ```
/// use modelfleet::Credential;
///
/// let c = Credential::new("sk-live-123")?;
/// assert_eq!(format!("{c:?} {c}"), "Credential(<redacted>) <redacted>");
/// assert_eq!(c.expose(), "sk-live-123");
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// Wraps a credential reference.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] (field `credential`) if it is empty, holds
    /// control characters or is longer than 4096 bytes; the message never
    /// includes the value.
    ///
    /// ```
    /// assert!(modelfleet::Credential::new("").is_err());
    /// ```
    pub fn new(reference: &str) -> Result<Self, Error> {
        Self::checked(reference, "<credential>/<credential>")
    }

    fn checked(reference: &str, deployment: &str) -> Result<Self, Error> {
        let problem = if reference.trim().is_empty() {
            Some(crate::NameProblem::Empty)
        } else if reference.len() > 4096 {
            Some(crate::NameProblem::TooLong {
                len: reference.len(),
                max: 4096,
            })
        } else {
            reference
                .char_indices()
                .find(|(_, c)| c.is_control())
                .map(|(at, _)| crate::NameProblem::ControlCharacter {
                    input: "<redacted>".into(),
                    at,
                })
        };
        match problem {
            Some(problem) => Err(Error::InvalidName {
                deployment: deployment.to_owned(),
                field: Field::Credential,
                problem,
            }),
            None => Ok(Self(reference.to_owned())),
        }
    }

    /// The credential reference, for the code that signs requests.
    ///
    /// ```
    /// assert_eq!(modelfleet::Credential::new("env:KEY")?.expose(), "env:KEY");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Deployment {
    /// Starts building a deployment of `model` at `provider`.
    ///
    /// Defaults: no endpoint (the provider's default), no tag, no version, no
    /// labels, weight 1, priority 0, no limits.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").build()?;
    /// assert_eq!((d.weight(), d.priority()), (1, 0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn builder(provider: &str, model: &str) -> DeploymentBuilder {
        let who = describe(provider, model);
        let mut b = DeploymentBuilder {
            error: None,
            who,
            d: Deployment {
                provider: provider.to_owned(),
                model: model.to_owned(),
                upstream_model: None,
                endpoint: None,
                tag: None,
                version: None,
                labels: BTreeMap::new(),
                weight: 1,
                priority: 0,
                limits: Limits::default(),
                context_window: None,
                credential: None,
            },
        };
        b.check(Field::Provider, check_name(provider));
        b.check(Field::Model, check_name(model));
        b
    }

    /// A builder holding this deployment's values, to derive a changed copy.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").build()?;
    /// let drained = d.to_builder().weight(0).build()?;
    /// assert_eq!(drained.weight(), 0);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn to_builder(&self) -> DeploymentBuilder {
        DeploymentBuilder {
            error: None,
            who: describe(&self.provider, &self.model),
            d: self.clone(),
        }
    }

    /// The provider (e.g. `openai`, `openai-api-compatible`, `azure`).
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").build()?;
    /// assert_eq!(d.provider(), "openai");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The public model name clients ask for.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").build()?;
    /// assert_eq!(d.model(), "gpt-4");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The model id sent to the provider, when it differs from [`model`](Self::model).
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("azure", "gpt-4")
    ///     .upstream_model("gpt4-prod-eu")
    ///     .build()?;
    /// assert_eq!(d.upstream_model(), Some("gpt4-prod-eu"));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn upstream_model(&self) -> Option<&str> {
        self.upstream_model.as_deref()
    }

    /// The normalized endpoint URL; `None` means the provider's default.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4")
    ///     .endpoint("HTTP://Node1:80/v1/")
    ///     .build()?;
    /// assert_eq!(d.endpoint().unwrap().as_str(), "http://node1/v1");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn endpoint(&self) -> Option<&Url> {
        self.endpoint.as_ref()
    }

    /// The identity tag (`node1`, `canary`, …).
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").tag("canary").build()?;
    /// assert_eq!(d.tag(), Some("canary"));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The semantic version.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").version("2.1.0").build()?;
    /// assert_eq!(d.version(), Some(&semver::Version::new(2, 1, 0)));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn version(&self) -> Option<&Version> {
        self.version.as_ref()
    }

    /// Routing labels (`region=eu`, `tier=gold`), sorted by key.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").label("region", "eu").build()?;
    /// assert_eq!(d.labels().get("region").map(String::as_str), Some("eu"));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The value of one label.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").label("region", "eu").build()?;
    /// assert_eq!(d.label("region"), Some("eu"));
    /// assert_eq!(d.label("tier"), None);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The selection weight; 0 means drained (never picked).
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").weight(0).build()?;
    /// assert_eq!(d.weight(), 0);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The priority tier; lower is preferred.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").priority(1).build()?;
    /// assert_eq!(d.priority(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// The deployment's limits.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").max_in_flight(8).build()?;
    /// assert_eq!(d.limits().max_in_flight.map(|n| n.get()), Some(8));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The context window in tokens, if known.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").context_window(8192).build()?;
    /// assert_eq!(d.context_window(), Some(8192));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn context_window(&self) -> Option<u32> {
        self.context_window.map(NonZeroU32::get)
    }

    /// The credential reference, if any (redacted when printed).
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").credential("env:KEY_1").build()?;
    /// assert_eq!(d.credential().map(|c| c.expose()), Some("env:KEY_1"));
    /// assert!(!format!("{d:?}").contains("KEY_1"));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// The discriminators this deployment has values for.
    fn present(&self) -> Discriminators {
        let mut d = Discriminators::NONE;
        if self.endpoint.is_some() {
            d |= Discriminators::ENDPOINT;
        }
        if self.tag.is_some() {
            d |= Discriminators::TAG;
        }
        if self.version.is_some() {
            d |= Discriminators::VERSION;
        }
        d
    }
}

impl fmt::Display for Deployment {
    /// The deployment's full identity: its key under
    /// `name+endpoint+tag+version`, without the parts it does not have.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ModelKey::for_deployment(self, self.present()).fmt(f)
    }
}

/// Builds a validated [`Deployment`]. Setters record the first error, which
/// [`build`](Self::build) reports.
///
/// ```
/// use modelfleet::{Deployment, Error, Field};
///
/// let err = Deployment::builder("openai", "gpt-4")
///     .version("1.2")
///     .tag(" ")
///     .build()
///     .unwrap_err();
/// // The first problem is reported.
/// assert_eq!(err.field(), Some(Field::Version));
/// assert_eq!(
///     err.to_string(),
///     "deployment openai/gpt-4: version \"1.2\" is not a semantic version"
/// );
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct DeploymentBuilder {
    error: Option<Error>,
    who: String,
    d: Deployment,
}

impl DeploymentBuilder {
    fn check(&mut self, field: Field, r: Result<(), crate::NameProblem>) -> bool {
        match r {
            Ok(()) => true,
            Err(problem) => {
                self.fail(Error::InvalidName {
                    deployment: self.who.clone(),
                    field,
                    problem,
                });
                false
            }
        }
    }

    fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn nonzero(&mut self, field: Field, v: u64) -> Option<NonZeroU64> {
        let n = NonZeroU64::new(v);
        if n.is_none() {
            self.fail(Error::InvalidNumber {
                deployment: self.who.clone(),
                field,
                problem: "must be at least 1 (leave it unset for no limit)".into(),
            });
        }
        n
    }

    /// The model id sent to the provider, when it differs from the public name.
    pub fn upstream_model(mut self, id: &str) -> Self {
        if self.check(Field::UpstreamModel, check_name(id)) {
            self.d.upstream_model = Some(id.to_owned());
        }
        self
    }

    /// The endpoint URL: `http` or `https`, no user, password, query or
    /// fragment. It is normalized (see [`ModelKey`]'s text form).
    pub fn endpoint(mut self, url: &str) -> Self {
        match crate::endpoint::normalize(url) {
            Ok(u) => self.d.endpoint = Some(u),
            Err((problem, source)) => self.fail(Error::InvalidEndpoint {
                deployment: self.who.clone(),
                problem,
                source,
            }),
        }
        self
    }

    /// The endpoint as an already parsed URL; checked and normalized like
    /// [`endpoint`](Self::endpoint).
    pub fn endpoint_url(mut self, url: Url) -> Self {
        match crate::endpoint::normalize_url(url) {
            Ok(u) => self.d.endpoint = Some(u),
            Err(problem) => self.fail(Error::InvalidEndpoint {
                deployment: self.who.clone(),
                problem,
                source: None,
            }),
        }
        self
    }

    /// The identity tag (`node1`, `canary`, …).
    pub fn tag(mut self, tag: &str) -> Self {
        if self.check(Field::Tag, check_name(tag)) {
            self.d.tag = Some(tag.to_owned());
        }
        self
    }

    /// The semantic version, parsed from text (`"1.2.0"`, `"2.0.0-rc.1"`).
    pub fn version(mut self, version: &str) -> Self {
        match Version::parse(version) {
            Ok(v) => self.d.version = Some(v),
            Err(source) => self.fail(Error::InvalidVersion {
                deployment: self.who.clone(),
                input: version.chars().take(100).collect(),
                source,
            }),
        }
        self
    }

    /// The semantic version, already parsed.
    pub fn semver(mut self, version: Version) -> Self {
        self.d.version = Some(version);
        self
    }

    /// Adds or replaces one routing label. Keys are names (non-empty, no
    /// control characters); values may be empty.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        if self.check(Field::LabelKey, check_name(key))
            && self.check(Field::LabelValue, check_free_text(value))
        {
            self.d.labels.insert(key.to_owned(), value.to_owned());
        }
        self
    }

    /// Adds or replaces several routing labels.
    pub fn labels<K: AsRef<str>, V: AsRef<str>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in labels {
            self = self.label(k.as_ref(), v.as_ref());
        }
        self
    }

    /// The selection weight (default 1); 0 drains the deployment.
    pub fn weight(mut self, weight: u32) -> Self {
        self.d.weight = weight;
        self
    }

    /// The priority tier (default 0); lower is preferred.
    pub fn priority(mut self, priority: u32) -> Self {
        self.d.priority = priority;
        self
    }

    /// All limits at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.d.limits = limits;
        self
    }

    /// The most requests in flight at once; must be at least 1.
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.d.limits.max_in_flight = self
            .nonzero(Field::MaxInFlight, n.into())
            .and_then(|n| NonZeroU32::try_from(n).ok());
        self
    }

    /// Requests per minute; must be at least 1.
    pub fn rpm(mut self, n: u32) -> Self {
        self.d.limits.rpm = self
            .nonzero(Field::Rpm, n.into())
            .and_then(|n| NonZeroU32::try_from(n).ok());
        self
    }

    /// Tokens per minute; must be at least 1.
    pub fn tpm(mut self, n: u64) -> Self {
        self.d.limits.tpm = self.nonzero(Field::Tpm, n);
        self
    }

    /// The context window in tokens; must be at least 1.
    pub fn context_window(mut self, tokens: u32) -> Self {
        self.d.context_window = self
            .nonzero(Field::ContextWindow, tokens.into())
            .and_then(|n| NonZeroU32::try_from(n).ok());
        self
    }

    /// The credential reference; redacted whenever the deployment is printed
    /// and left out when it is serialized.
    pub fn credential(mut self, reference: &str) -> Self {
        match Credential::checked(reference, &self.who) {
            Ok(c) => self.d.credential = Some(c),
            Err(e) => self.fail(e),
        }
        self
    }

    /// Builds the deployment.
    ///
    /// # Errors
    ///
    /// The first problem any setter met: [`Error::InvalidName`] (provider,
    /// model, upstream model, tag, label, credential), [`Error::InvalidEndpoint`],
    /// [`Error::InvalidVersion`] or [`Error::InvalidNumber`].
    pub fn build(self) -> Result<Deployment, Error> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.d),
        }
    }
}

#[cfg(feature = "serde")]
pub(crate) mod serde_impl {
    //! Deployments deserialize through the builder, so serde cannot skip
    //! validation; the credential is accepted on input and never written.

    use super::*;
    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    /// A deployment as serialized, before validation (also read by
    /// [`config`](crate::config), which reports every problem with its
    /// place). Unknown fields are collected, not refused on sight, so that
    /// the error can name the deployment they belong to.
    #[derive(Clone, Deserialize)]
    pub(crate) struct Repr {
        pub(crate) provider: String,
        pub(crate) model: String,
        #[serde(default)]
        pub(crate) upstream_model: Option<String>,
        #[serde(default)]
        pub(crate) endpoint: Option<String>,
        #[serde(default)]
        pub(crate) tag: Option<String>,
        #[serde(default)]
        pub(crate) version: Option<String>,
        #[serde(default)]
        pub(crate) labels: BTreeMap<String, String>,
        #[serde(default)]
        pub(crate) weight: Option<Num>,
        #[serde(default)]
        pub(crate) priority: Option<Num>,
        #[serde(default)]
        pub(crate) limits: LimitsRepr,
        #[serde(default)]
        pub(crate) context_window: Option<Num>,
        #[serde(default)]
        pub(crate) credential: Option<String>,
        #[serde(flatten)]
        pub(crate) unknown: BTreeMap<String, de::IgnoredAny>,
    }

    pub(crate) const FIELDS: &str = "`provider`, `model`, `upstream_model`, `endpoint`, `tag`, `version`, \
        `labels`, `weight`, `priority`, `limits`, `context_window`, `credential`";
    pub(crate) const LIMITS_FIELDS: &str = "`max_in_flight`, `rpm`, `tpm`";

    #[derive(Clone, Deserialize, Default)]
    pub(crate) struct LimitsRepr {
        #[serde(default)]
        pub(crate) max_in_flight: Option<Num>,
        #[serde(default)]
        pub(crate) rpm: Option<Num>,
        #[serde(default)]
        pub(crate) tpm: Option<Num>,
        #[serde(flatten)]
        pub(crate) unknown: BTreeMap<String, de::IgnoredAny>,
    }

    #[derive(Serialize)]
    struct Out<'a> {
        provider: &'a str,
        model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        upstream_model: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        endpoint: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        labels: &'a BTreeMap<String, String>,
        weight: u32,
        priority: u32,
        #[serde(skip_serializing_if = "Limits::is_unlimited")]
        limits: &'a Limits,
        #[serde(skip_serializing_if = "Option::is_none")]
        context_window: Option<u32>,
    }

    impl Serialize for Deployment {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            Out {
                provider: &self.provider,
                model: &self.model,
                upstream_model: self.upstream_model(),
                endpoint: self.endpoint.as_ref().map(Url::as_str),
                tag: self.tag(),
                version: self.version.as_ref().map(Version::to_string),
                labels: &self.labels,
                weight: self.weight,
                priority: self.priority,
                limits: &self.limits,
                context_window: self.context_window(),
            }
            .serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for Deployment {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let r = Repr::deserialize(d)?;
            let unknown = (r.unknown.keys().next())
                .map(|f| (f, "", FIELDS))
                .or_else(|| {
                    (r.limits.unknown.keys().next()).map(|f| (f, "limits.", LIMITS_FIELDS))
                });
            if let Some((field, prefix, expected)) = unknown {
                return Err(de::Error::custom(format_args!(
                    "deployment {}: unknown field `{prefix}{field}`, expected one of {expected}",
                    describe(&r.provider, &r.model)
                )));
            }
            r.build().map_err(de::Error::custom)
        }
    }

    impl Repr {
        /// Builds the deployment (unknown fields aside): the first problem
        /// is reported, as by [`DeploymentBuilder::build`].
        pub(crate) fn build(&self) -> Result<Deployment, Error> {
            let r = self;
            let mut b = Deployment::builder(&r.provider, &r.model);
            if let Some(v) = &r.upstream_model {
                b = b.upstream_model(v);
            }
            if let Some(v) = &r.endpoint {
                b = b.endpoint(v);
            }
            if let Some(v) = &r.tag {
                b = b.tag(v);
            }
            if let Some(v) = &r.version {
                b = b.version(v);
            }
            b = b.labels(&r.labels);
            if let Some(v) = b.whole(Field::Weight, r.weight.clone(), u32::MAX.into()) {
                b = b.weight(v as u32);
            }
            if let Some(v) = b.whole(Field::Priority, r.priority.clone(), u32::MAX.into()) {
                b = b.priority(v as u32);
            }
            if let Some(v) = b.whole(
                Field::ContextWindow,
                r.context_window.clone(),
                u32::MAX.into(),
            ) {
                b = b.context_window(v as u32);
            }
            if let Some(v) = b.whole(
                Field::MaxInFlight,
                r.limits.max_in_flight.clone(),
                u32::MAX.into(),
            ) {
                b = b.max_in_flight(v as u32);
            }
            if let Some(v) = b.whole(Field::Rpm, r.limits.rpm.clone(), u32::MAX.into()) {
                b = b.rpm(v as u32);
            }
            if let Some(v) = b.whole(Field::Tpm, r.limits.tpm.clone(), u64::MAX) {
                b = b.tpm(v);
            }
            if let Some(v) = &r.credential {
                b = b.credential(v);
            }
            b.build()
        }
    }

    impl DeploymentBuilder {
        /// Checks a number from a serialized deployment, recording an error
        /// that names the field and the deployment.
        fn whole(&mut self, field: Field, n: Option<Num>, max: u64) -> Option<u64> {
            let problem = match n? {
                Num::U(v) if v <= max => return Some(v),
                Num::U(v) => format!("{v} is larger than {max}"),
                Num::I(v) => format!("{v} is negative"),
                Num::F(v) if v.is_nan() => "NaN is not a number".to_owned(),
                Num::F(v) if v < 0.0 => format!("{v} is negative"),
                Num::F(v) if v.fract() == 0.0 && v <= max as f64 => return Some(v as u64),
                Num::F(v) => format!("{v} is not a whole number from 0 to {max}"),
                Num::Other(v) => format!("{v} is not a number"),
            };
            self.fail(Error::InvalidNumber {
                deployment: self.who.clone(),
                field,
                problem,
            });
            None
        }
    }

    /// Any number, checked later where the deployment's name is known.
    #[derive(Clone)]
    pub(crate) enum Num {
        U(u64),
        I(i64),
        F(f64),
        /// A string or a boolean, reported with the field it was found in.
        Other(String),
    }

    impl<'de> Deserialize<'de> for Num {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Num;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a whole number")
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                    Ok(Num::U(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                    Ok(if v < 0 { Num::I(v) } else { Num::U(v as u64) })
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                    Ok(Num::F(v))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                    let shown: String = v.chars().take(40).collect();
                    Ok(Num::Other(format!("{shown:?}")))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Num, E> {
                    Ok(Num::Other(v.to_string()))
                }
            }
            d.deserialize_any(V)
        }
    }
}
