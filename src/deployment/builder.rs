//! [`DeploymentBuilder`]: builds a [`Deployment`], checking each field as it
//! is set.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use semver::Version;
use url::Url;

use super::{Credential, Deployment, Limits, MAX_COOLDOWN, MAX_VERSION_LEN};
use crate::error::{Error, Field};
use crate::name::{NameProblem, check_free_text, check_name, describe};

impl Deployment {
    /// Starts building a deployment of `model` at `provider`.
    ///
    /// Defaults: no endpoint (the provider's default), no tag, no version, no
    /// labels, weight 1, priority 0, no limits, no cooldown override.
    ///
    /// ```
    /// let d = modelfleet::Deployment::builder("openai", "gpt-4").build()?;
    /// assert_eq!((d.weight(), d.priority()), (1, 0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn builder(provider: &str, model: &str) -> DeploymentBuilder {
        let who = describe(provider, model);
        let mut b = DeploymentBuilder {
            errors: Vec::new(),
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
                cooldown: None,
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
            errors: Vec::new(),
            who: describe(&self.provider, &self.model),
            d: self.clone(),
        }
    }
}

/// Builds a validated [`Deployment`]. Setters record every problem they
/// meet; [`build`](Self::build) reports the first.
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
#[must_use = "a builder does nothing until .build() is called"]
pub struct DeploymentBuilder {
    /// Every problem the setters met, in the order they met them.
    errors: Vec<Error>,
    /// The deployment as error messages name it.
    pub(super) who: String,
    d: Deployment,
}

impl fmt::Debug for DeploymentBuilder {
    // Shows, as `error`, the problem `build` would report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentBuilder")
            .field("error", &self.errors.first())
            .field("who", &self.who)
            .field("d", &self.d)
            .finish()
    }
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
        self.errors.push(e);
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
    /// fragment. It is normalized (see [`ModelKey`](crate::ModelKey)'s text form).
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

    /// The semantic version, parsed from text (`"1.2.0"`, `"2.0.0-rc.1"`),
    /// at most [`MAX_VERSION_LEN`] bytes.
    pub fn version(mut self, version: &str) -> Self {
        if !self.version_fits(version.len()) {
            return self;
        }
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

    /// The semantic version, already parsed; its text form is at most
    /// [`MAX_VERSION_LEN`] bytes.
    pub fn semver(mut self, version: Version) -> Self {
        // The text form's length, without writing it out.
        let digits = |n: u64| n.checked_ilog10().map_or(1, |d| d as usize + 1);
        let len = digits(version.major)
            + digits(version.minor)
            + digits(version.patch)
            + 2
            + if version.pre.is_empty() {
                0
            } else {
                1 + version.pre.len()
            }
            + if version.build.is_empty() {
                0
            } else {
                1 + version.build.len()
            };
        if self.version_fits(len) {
            self.d.version = Some(version);
        }
        self
    }

    /// Whether a version text of `len` bytes is within
    /// [`MAX_VERSION_LEN`]; records the error if not.
    fn version_fits(&mut self, len: usize) -> bool {
        let fits = len <= MAX_VERSION_LEN;
        if !fits {
            self.fail(Error::InvalidName {
                deployment: self.who.clone(),
                field: Field::Version,
                problem: NameProblem::TooLong {
                    len,
                    max: MAX_VERSION_LEN,
                },
            });
        }
        fits
    }

    /// Adds or replaces one routing label. Keys are names (non-empty, no
    /// control or invisible characters); values may be empty and hold no
    /// control characters, bidi controls or line separators (see
    /// [`NameProblem`](crate::NameProblem#rules)).
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

    /// The cooldown override (see [`Deployment::cooldown`]): every
    /// cooldown the health policy starts for this deployment lasts
    /// `cooldown`; zero means it never cools. Whole milliseconds (the form
    /// it is written in, so a deployment reads back equal), at most
    /// [`MAX_COOLDOWN`].
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        if !cooldown.subsec_nanos().is_multiple_of(1_000_000) {
            self.fail(Error::InvalidNumber {
                deployment: self.who.clone(),
                field: Field::Cooldown,
                problem: format!("must be whole milliseconds, got {cooldown:?}"),
            });
        } else if cooldown > MAX_COOLDOWN {
            self.fail(Error::InvalidNumber {
                deployment: self.who.clone(),
                field: Field::Cooldown,
                problem: format!(
                    "must be at most {} ms, got {} ms",
                    MAX_COOLDOWN.as_millis(),
                    cooldown.as_millis()
                ),
            });
        } else {
            self.d.cooldown = Some(cooldown);
        }
        self
    }

    /// Builds the deployment.
    ///
    /// # Errors
    ///
    /// The first problem any setter met: [`Error::InvalidName`] (provider,
    /// model, upstream model, tag, label, credential), [`Error::InvalidEndpoint`],
    /// [`Error::InvalidVersion`] or [`Error::InvalidNumber`] (weight,
    /// priority, limits, context window, cooldown).
    pub fn build(self) -> Result<Deployment, Error> {
        match self.errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(self.d),
        }
    }

    /// Builds the deployment, or reports every problem the setters met, in
    /// the order they met them. Each is the error [`build`](Self::build)
    /// reports when it is the first, so the list starts with that one.
    #[cfg(any(feature = "serde", test))]
    #[cfg_attr(
        not(any(test, feature = "serde")),
        expect(
            dead_code,
            reason = "its one caller, the config entry check, needs serde"
        )
    )]
    pub(crate) fn build_collecting_errors(self) -> Result<Deployment, Vec<Error>> {
        if self.errors.is_empty() {
            Ok(self.d)
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Setter = fn(DeploymentBuilder) -> DeploymentBuilder;

    /// One bad value per checked setter, each independent of the others.
    const BAD: [(Field, Setter); 12] = [
        (Field::UpstreamModel, |b| b.upstream_model(" id")),
        (Field::Endpoint, |b| b.endpoint("ftp://h/v1")),
        (Field::Tag, |b| b.tag("")),
        (Field::Version, |b| b.version("1.2")),
        (Field::LabelKey, |b| b.label("", "eu")),
        (Field::LabelValue, |b| b.label("region", "e\u{7}u")),
        (Field::MaxInFlight, |b| b.max_in_flight(0)),
        (Field::Rpm, |b| b.rpm(0)),
        (Field::Tpm, |b| b.tpm(0)),
        (Field::ContextWindow, |b| b.context_window(0)),
        (Field::Credential, |b| b.credential("\u{1}")),
        (Field::Cooldown, |b| b.cooldown(MAX_COOLDOWN * 2)),
    ];

    fn all_bad() -> DeploymentBuilder {
        BAD.iter()
            .fold(Deployment::builder("openai", "gpt-4"), |b, (_, set)| set(b))
    }

    /// `Error` is not `PartialEq` (its sources are not); `Debug` shows every field.
    fn same(a: &Error, b: &Error) -> bool {
        format!("{a:?}") == format!("{b:?}") && a.to_string() == b.to_string()
    }

    #[test]
    fn first_collected_error_is_the_one_build_reports() {
        let first = all_bad().build().unwrap_err();
        let all = all_bad().build_collecting_errors().unwrap_err();
        assert!(same(&all[0], &first), "{:?} vs {first:?}", all[0]);

        let first = Deployment::builder(" ", "").tag("").build().unwrap_err();
        let all = Deployment::builder(" ", "")
            .tag("")
            .build_collecting_errors()
            .unwrap_err();
        assert!(same(&all[0], &first));
        let fields: Vec<_> = all.iter().map(Error::field).collect();
        assert_eq!(
            fields,
            [Some(Field::Provider), Some(Field::Model), Some(Field::Tag)]
        );
    }

    #[test]
    fn every_independent_problem_is_collected_in_order() {
        let all = all_bad().build_collecting_errors().unwrap_err();
        assert_eq!(all.len(), BAD.len());
        for ((field, set), e) in BAD.iter().zip(&all) {
            assert_eq!(e.field(), Some(*field), "{e}");
            let alone = set(Deployment::builder("openai", "gpt-4"))
                .build()
                .unwrap_err();
            assert!(same(e, &alone), "{e:?} vs {alone:?}");
        }
    }

    #[test]
    fn a_valid_builder_collects_nothing() {
        let d = Deployment::builder("openai", "gpt-4")
            .endpoint("http://h/v1")
            .max_in_flight(4)
            .build_collecting_errors()
            .unwrap();
        assert_eq!(
            Deployment::builder("openai", "gpt-4")
                .endpoint("http://h/v1")
                .max_in_flight(4)
                .build()
                .unwrap(),
            d
        );
    }

    #[test]
    fn debug_shows_the_problem_build_reports() {
        let b = Deployment::builder("openai", "gpt-4").tag("").rpm(0);
        let shown = format!("{b:?}");
        assert!(
            shown.starts_with("DeploymentBuilder { error: Some(InvalidName {"),
            "{shown}"
        );
        assert!(!shown.contains("InvalidNumber"), "{shown}");
        let b = Deployment::builder("openai", "gpt-4");
        assert!(format!("{b:?}").starts_with(
            "DeploymentBuilder { error: None, who: \"openai/gpt-4\", d: Deployment {"
        ));
    }
}
