//! [`Deployment`]: one reachable serving of a model, with its [`Limits`] and
//! [`Credential`].

pub(crate) mod builder;
// Named `serde_impl` so that `serde` keeps naming the crate in this module.
#[cfg(feature = "serde")]
#[path = "serde.rs"]
pub(crate) mod serde_impl;

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use semver::Version;
use url::Url;

use crate::discriminators::Discriminators;
use crate::error::{Error, Field};
use crate::key::ModelKey;
use crate::name::NameProblem;

/// The longest version text accepted, in bytes (a version's prerelease and
/// build parts are otherwise unbounded).
///
/// ```
/// use modelfleet::{Deployment, MAX_VERSION_LEN};
///
/// let long = format!("1.0.0-{}", "a".repeat(MAX_VERSION_LEN));
/// assert!(Deployment::builder("openai", "gpt-4").version(&long).build().is_err());
/// ```
pub const MAX_VERSION_LEN: usize = 256;

/// The longest cooldown override a deployment accepts
/// ([`DeploymentBuilder::cooldown`](crate::DeploymentBuilder::cooldown)):
/// one day, the same bound as a server's `Retry-After`. A deployment that
/// should stay out longer is drained (weight 0) instead.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::{Deployment, MAX_COOLDOWN};
///
/// assert_eq!(MAX_COOLDOWN, Duration::from_secs(24 * 60 * 60));
/// let b = |d| Deployment::builder("openai", "gpt-4").cooldown(d).build();
/// assert!(b(MAX_COOLDOWN).is_ok());
/// assert!(b(MAX_COOLDOWN + Duration::from_nanos(1)).is_err());
/// ```
pub const MAX_COOLDOWN: Duration = Duration::from_secs(24 * 60 * 60);

/// One reachable serving of a model.
///
/// A deployment is what a request is finally sent to: a provider, the public
/// model name clients ask for, and where and how it is served. Several
/// deployments may serve one model; the registry's [identity
/// policy](crate::IdentityPolicy) decides which of them are distinct.
///
/// Built and validated by [`Deployment::builder`]; every deployment that
/// exists is valid. Cloning copies its names, URL and labels: O(their length).
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
    cooldown: Option<Duration>,
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
            Some(NameProblem::Empty)
        } else if reference.len() > 4096 {
            Some(NameProblem::TooLong {
                len: reference.len(),
                max: 4096,
            })
        } else {
            reference
                .char_indices()
                .find(|(_, c)| c.is_control())
                .map(|(at, _)| NameProblem::ControlCharacter {
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

    /// The endpoint as a base to join paths onto: the normalized endpoint
    /// with a trailing `/`, or `None` without an endpoint.
    ///
    /// [`endpoint`](Self::endpoint) drops the trailing slash, because it is
    /// part of the deployment's identity and `…/v1` and `…/v1/` name the
    /// same endpoint. But [`Url::join`] resolves a relative path against
    /// the base's last `/` (RFC 3986), so joining `chat/completions` onto
    /// `http://h/v1` replaces `v1`; onto `base_url`'s `http://h/v1/` it
    /// keeps it. A new URL each call: O(the URL's length).
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai-api-compatible", "gpt-4")
    ///     .endpoint("http://10.0.0.1:8000/v1")
    ///     .build()?;
    /// let base = d.base_url().unwrap();
    /// assert_eq!(base.as_str(), "http://10.0.0.1:8000/v1/");
    /// assert_eq!(base.join("chat/completions")?.as_str(), "http://10.0.0.1:8000/v1/chat/completions");
    /// // The endpoint itself would drop `v1`.
    /// assert_eq!(d.endpoint().unwrap().join("chat/completions")?.as_str(), "http://10.0.0.1:8000/chat/completions");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn base_url(&self) -> Option<Url> {
        let mut url = self.endpoint.clone()?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Some(url)
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

    /// The cooldown override: when set, every cooldown the health policy
    /// starts for this deployment lasts this long instead of its rule's
    /// duration; [`Duration::ZERO`] means the deployment never cools (as
    /// LiteLLM's per-deployment `cooldown_time`, where 0 turns cooldowns
    /// off). `None`, the default, keeps the policy's durations.
    ///
    /// A `Retry-After` the server sent still sets the end of a cooldown
    /// that starts (it is more precise than a configured time), except on
    /// a deployment with override zero, which never cools. Ejection
    /// (outlier detection) keeps its own lengths: the override does not
    /// touch it. See the [health guide](crate::health#cooldown-override).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4")
    ///     .cooldown(Duration::from_secs(10))
    ///     .build()?;
    /// assert_eq!(d.cooldown(), Some(Duration::from_secs(10)));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn cooldown(&self) -> Option<Duration> {
        self.cooldown
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

    /// This deployment without its credential: what a [`Change`](crate::Change)
    /// carries. O(its length), as a clone.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").credential("env:KEY_1").build()?;
    /// assert!(d.without_credential().credential().is_none());
    /// assert_eq!(d.without_credential().model(), "gpt-4");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn without_credential(&self) -> Deployment {
        Deployment {
            credential: None,
            ..self.clone()
        }
    }

    /// Whether the two are equal in everything but their credentials.
    pub(crate) fn eq_except_credential(&self, other: &Deployment) -> bool {
        let Deployment {
            provider,
            model,
            upstream_model,
            endpoint,
            tag,
            version,
            labels,
            weight,
            priority,
            limits,
            context_window,
            credential: _,
            cooldown,
        } = self;
        *provider == other.provider
            && *model == other.model
            && *upstream_model == other.upstream_model
            && *endpoint == other.endpoint
            && *tag == other.tag
            && *version == other.version
            && *labels == other.labels
            && *weight == other.weight
            && *priority == other.priority
            && *limits == other.limits
            && *context_window == other.context_window
            && *cooldown == other.cooldown
    }

    /// This deployment with `credential` when it has none of its own.
    pub(crate) fn or_credential(mut self, credential: Option<&Credential>) -> Deployment {
        if self.credential.is_none() {
            self.credential = credential.cloned();
        }
        self
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
