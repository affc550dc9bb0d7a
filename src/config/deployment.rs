//! One deployment of a fleet file, checked field by field.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(doc)]
use super::FleetConfig;
use super::error::{ConfigErrors, Errors, Path};
use crate::Deployment;
use crate::deployment::serde_impl::{FIELDS, LIMITS_FIELDS, Repr};
use crate::error::Error;
use crate::name::{check_free_text, check_name};

/// One deployment as written in a fleet file: the fields of a serialized
/// [`Deployment`], checked by [`build`](Self::build) (or
/// [`FleetConfig::build`]) so that every problem is reported with its field.
///
/// Unknown fields are kept until then, so they too are reported with their
/// place. The credential is read but never written.
///
/// ```
/// use modelfleet::config::DeploymentEntry;
/// use modelfleet::Deployment;
///
/// let entry: DeploymentEntry = serde_json::from_str(
///     r#"{"provider": "openai", "model": "gpt-4", "tag": " ", "wieght": 2, "limits": {"rpm": 0}}"#,
/// )?;
/// assert_eq!(entry.build().unwrap_err().to_string(), "\
/// wieght: unknown field, expected one of `provider`, `model`, `upstream_model`, `endpoint`, `tag`, `version`, `labels`, `weight`, `priority`, `limits`, `context_window`, `cooldown_ms`, `credential`
/// tag: is empty
/// limits.rpm: must be at least 1 (leave it unset for no limit)");
///
/// let entry = DeploymentEntry::from(Deployment::builder("openai", "gpt-4").build()?);
/// assert_eq!(entry.model(), "gpt-4");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DeploymentEntry(Entry);

#[derive(Clone)]
enum Entry {
    Raw(Box<Repr>),
    Built(Box<Deployment>),
}

impl fmt::Debug for DeploymentEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Entry::Built(d) => f.debug_tuple("DeploymentEntry").field(d).finish(),
            // The raw input may hold a credential: show only the names.
            Entry::Raw(r) => f
                .debug_struct("DeploymentEntry")
                .field("provider", &r.provider)
                .field("model", &r.model)
                .finish_non_exhaustive(),
        }
    }
}

impl From<Deployment> for DeploymentEntry {
    fn from(d: Deployment) -> Self {
        Self(Entry::Built(Box::new(d)))
    }
}

impl DeploymentEntry {
    /// The provider, as written.
    ///
    /// ```
    /// let e: modelfleet::config::DeploymentEntry =
    ///     serde_json::from_str(r#"{"provider": "azure", "model": "gpt-4"}"#)?;
    /// assert_eq!(e.provider(), "azure");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn provider(&self) -> &str {
        match &self.0 {
            Entry::Raw(r) => &r.provider,
            Entry::Built(d) => d.provider(),
        }
    }

    /// The model, as written.
    ///
    /// ```
    /// let e: modelfleet::config::DeploymentEntry =
    ///     serde_json::from_str(r#"{"provider": "azure", "model": "gpt-4"}"#)?;
    /// assert_eq!(e.model(), "gpt-4");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn model(&self) -> &str {
        match &self.0 {
            Entry::Raw(r) => &r.model,
            Entry::Built(d) => d.model(),
        }
    }

    /// Checks the entry and builds the deployment.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`] with every problem, each at its field (`endpoint`,
    /// `limits.rpm`, `labels.region`, …).
    ///
    /// ```
    /// use modelfleet::config::DeploymentEntry;
    ///
    /// let entry: DeploymentEntry = serde_json::from_str(
    ///     r#"{"provider": "openai", "model": "gpt-4", "endpoint": "HTTP://Node1:80/v1/"}"#,
    /// )?;
    /// assert_eq!(entry.build()?.endpoint().unwrap().as_str(), "http://node1/v1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(&self) -> Result<Deployment, ConfigErrors> {
        let mut errs = Errors::default();
        let d = self.check(&Path::root(), &mut errs);
        errs.into_result()?;
        d.ok_or_else(|| ConfigErrors(Vec::new()))
    }

    pub(crate) fn check(&self, at: &Path, errs: &mut Errors) -> Option<Deployment> {
        match &self.0 {
            Entry::Built(d) => Some((**d).clone()),
            Entry::Raw(r) => check_repr(r, at, errs),
        }
    }
}

/// Checks a raw deployment, reporting every problem at its field: the
/// builder records every problem its setters meet, and each is reported at
/// the place of its field (messages never name the deployment). Labels are
/// checked here, so that a bad key and a bad value are reported at their
/// own places.
fn check_repr(r: &Repr, at: &Path, errs: &mut Errors) -> Option<Deployment> {
    let before = errs.len();
    for field in r.unknown.keys() {
        errs.push(
            &at.key(field),
            format!("unknown field, expected one of {FIELDS}"),
        );
    }
    for field in r.limits.unknown.keys() {
        errs.push(
            &at.key("limits").key(field),
            format!("unknown field, expected one of {LIMITS_FIELDS}"),
        );
    }
    let mut r = r.clone();
    let labels = std::mem::take(&mut r.labels);
    for (k, v) in labels {
        let mut ok = true;
        if let Err(problem) = check_name(&k) {
            errs.push(&at.key("labels"), format!("key {problem}"));
            ok = false;
        } else if let Err(problem) = check_free_text(&v) {
            errs.push(&at.key("labels").key(&k), problem.to_string());
            ok = false;
        }
        if ok {
            r.labels.insert(k, v);
        }
    }
    let problems = match r.builder().build_collecting_errors() {
        Ok(d) => return (errs.len() == before).then_some(d),
        Err(problems) => problems,
    };
    for e in problems {
        let Some(field) = e.field() else {
            errs.push(at, e.to_string());
            continue;
        };
        let mut place = at.clone();
        for part in field.as_str().split('.') {
            place = place.key(part);
        }
        let message = match &e {
            Error::InvalidName { problem, .. } => problem.to_string(),
            Error::InvalidEndpoint { problem, .. } => problem.to_string(),
            Error::InvalidVersion { input, .. } => format!("{input:?} is not a semantic version"),
            Error::InvalidNumber { problem, .. } => problem.clone(),
            other => other.to_string(),
        };
        errs.push(&place, message);
    }
    None
}

impl Serialize for DeploymentEntry {
    /// Writes the deployment as [`Deployment`] serializes (without the
    /// credential); an entry that does not build is an error.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Entry::Built(d) => d.serialize(s),
            Entry::Raw(_) => match self.build() {
                Ok(d) => d.serialize(s),
                Err(e) => Err(serde::ser::Error::custom(format_args!(
                    "deployment {}/{} is not valid: {}",
                    self.provider(),
                    self.model(),
                    e.iter().next().map(ToString::to_string).unwrap_or_default()
                ))),
            },
        }
    }
}

impl<'de> Deserialize<'de> for DeploymentEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Repr::deserialize(d).map(|r| Self(Entry::Raw(Box::new(r))))
    }
}
