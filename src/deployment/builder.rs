//! [`DeploymentBuilder`]: builds a [`Deployment`], checking each field as it
//! is set.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroU64};

use semver::Version;
use url::Url;

use super::{Credential, Deployment, Limits};
use crate::error::{Error, Field};
use crate::name::{NameProblem, check_free_text, check_name, describe};

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
    /// The deployment as error messages name it.
    pub(super) who: String,
    d: Deployment,
}

impl DeploymentBuilder {
    fn check(&mut self, field: Field, r: Result<(), NameProblem>) -> bool {
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

    pub(super) fn fail(&mut self, e: Error) {
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
