//! Where a problem in a fleet file is, and the problems found.

use std::fmt;

/// One step of a [`ConfigError`]'s place: a field or table key, or an
/// index in a list.
///
/// ```
/// use modelfleet::config::{FleetConfig, PathSegment};
///
/// let c: FleetConfig = serde_json::from_str(r#"{"deployments": [{"provider": "openai", "model": "gpt-4", "tag": ""}]}"#)?;
/// let errors = c.build().unwrap_err();
/// assert_eq!(errors.iter().next().unwrap().segments(), [
///     PathSegment::Key("deployments".into()),
///     PathSegment::Index(0),
///     PathSegment::Key("tag".into()),
/// ]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathSegment {
    /// A field or table key.
    Key(String),
    /// An index in a list.
    Index(usize),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Path(Vec<PathSegment>);

impl Path {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    pub(crate) fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(k.to_owned()));
        p
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(i));
        p
    }
}

/// A problem in a fleet config, and where it is.
///
/// `Display` writes `place: problem`, e.g. `deployments[3].endpoint: has a
/// query string; …`. A key that is not a plain name is quoted:
/// `fallbacks["gpt-4.1"][0]`.
///
/// ```
/// use modelfleet::config::FleetConfig;
///
/// let c: FleetConfig = serde_json::from_str(r#"{"identity": "name+region"}"#)?;
/// let errors = c.build().unwrap_err();
/// let e = errors.iter().next().unwrap();
/// assert_eq!(e.path(), "identity");
/// assert!(e.message().starts_with("unknown identity policy"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub(crate) path: Vec<PathSegment>,
    pub(crate) message: String,
}

impl ConfigError {
    /// Where the problem is, as text: `deployments[3].endpoint`; empty when
    /// it is about the whole value.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let c: FleetConfig = serde_json::from_str(
    ///     r#"{"deployments": [{"provider": "openai", "model": "gpt-4", "limits": {"rpm": 0}}]}"#,
    /// )?;
    /// let errors = c.build().unwrap_err();
    /// assert_eq!(errors.iter().next().unwrap().path(), "deployments[0].limits.rpm");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn path(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            match seg {
                PathSegment::Index(i) => s.push_str(&format!("[{i}]")),
                PathSegment::Key(k) if is_plain(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                PathSegment::Key(k) => s.push_str(&format!("[{k:?}]")),
            }
        }
        s
    }

    /// Where the problem is, step by step.
    ///
    /// ```
    /// use modelfleet::config::{FleetConfig, PathSegment};
    ///
    /// let c: FleetConfig = serde_json::from_str(r#"{"seed": 1, "identity": "x"}"#)?;
    /// let errors = c.build().unwrap_err();
    /// assert_eq!(errors.iter().next().unwrap().segments(), [PathSegment::Key("identity".into())]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn segments(&self) -> &[PathSegment] {
        &self.path
    }

    /// What is wrong.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    ///
    /// let c: FleetConfig = serde_json::from_str(r#"{"health": {"unhealthy": {"panic": 0}}}"#)?;
    /// let errors = c.build().unwrap_err();
    /// assert_eq!(errors.iter().next().unwrap().message(), "must be from 1 to 100, got 0");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

fn is_plain(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path(), self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a fleet config, in order. `Display` writes one
/// line per problem, up to [`ConfigErrors::SHOWN`], then one line saying how
/// many more there are; [`iter`](Self::iter) yields them all.
///
/// ```
/// use modelfleet::config::FleetConfig;
///
/// let c: FleetConfig = serde_json::from_str(
///     r#"{"identity": "id", "strategy": "fastest", "fallbacks": {"gpt-4": ["gpt-4"]}}"#,
/// )?;
/// let errors = c.build().unwrap_err();
/// assert_eq!(errors.len(), 4);
/// let places: Vec<String> = errors.iter().map(|e| e.path()).collect();
/// assert_eq!(places, ["identity", "strategy", "fallbacks.gpt-4", "fallbacks.gpt-4[0]"]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub(crate) Vec<ConfigError>);

impl ConfigErrors {
    /// How many problems `Display` writes before `… and N more`.
    ///
    /// ```
    /// use modelfleet::config::{ConfigErrors, FleetConfig};
    ///
    /// let bad = vec![r#"{"provider": "", "model": "m"}"#; ConfigErrors::SHOWN + 3].join(",");
    /// let c: FleetConfig = serde_json::from_str(&format!(r#"{{"deployments": [{bad}]}}"#))?;
    /// let errors = c.build().unwrap_err();
    /// assert_eq!(errors.iter().count(), ConfigErrors::SHOWN + 3);
    /// assert_eq!(errors.to_string().lines().last(), Some("… and 3 more"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub const SHOWN: usize = 50;

    /// The number of problems.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// let c: FleetConfig = serde_json::from_str(r#"{"identity": "x", "strategy": "y"}"#)?;
    /// assert_eq!(c.build().unwrap_err().len(), 2);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no problem (never, for an error returned here).
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// let c: FleetConfig = serde_json::from_str(r#"{"identity": "x"}"#)?;
    /// assert!(!c.build().unwrap_err().is_empty());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in order.
    ///
    /// ```
    /// use modelfleet::config::FleetConfig;
    /// let c: FleetConfig = serde_json::from_str(r#"{"identity": "x", "strategy": "y"}"#)?;
    /// let places: Vec<String> = c.build().unwrap_err().iter().map(|e| e.path()).collect();
    /// assert_eq!(places, ["identity", "strategy"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per problem, the first [`ConfigErrors::SHOWN`], then a
    /// line saying how many more there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::Cut::showing(&self.0, "\n", Self::SHOWN).fmt(f)
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Default)]
pub(crate) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(crate) fn push(&mut self, at: &Path, message: String) {
        self.0.push(ConfigError {
            path: at.0.clone(),
            message,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}
