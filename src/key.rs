//! [`ModelKey`]: the identity of a deployment under an identity policy.

use std::fmt;
use std::str::FromStr;

use semver::Version;
use url::Url;

use crate::deployment::Deployment;
use crate::discriminators::Discriminators;
use crate::error::{Error, Field};
use crate::name::{check_name, describe};

/// One discriminator of a [`ModelKey`]: not part of the identity, part of it
/// but absent from the deployment, or part of it with a value.
///
/// "Absent" is a value of its own: under `name+endpoint`, a deployment on the
/// provider's default endpoint and one on `http://10.0.0.1/v1` have different
/// keys, and two deployments on the default endpoint share one.
///
/// ```
/// use modelfleet::{Deployment, Discriminator, IdentityPolicy, Policy};
///
/// let d = Deployment::builder("openai", "gpt-4").build()?;
/// let key = Policy::NAME_ENDPOINT.key(&d);
/// assert_eq!(key.endpoint(), Discriminator::Absent);
/// assert_eq!(key.tag(), Discriminator::NotInKey);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Discriminator<T> {
    /// The policy does not use this discriminator.
    NotInKey,
    /// The policy uses it and the deployment has none (written as an empty part).
    Absent,
    /// The policy uses it and this is the deployment's value.
    Present(T),
}

impl<T> Discriminator<T> {
    fn from_option(used: bool, value: Option<T>) -> Self {
        match (used, value) {
            (false, _) => Discriminator::NotInKey,
            (true, None) => Discriminator::Absent,
            (true, Some(v)) => Discriminator::Present(v),
        }
    }

    /// Borrows the value.
    ///
    /// ```
    /// use modelfleet::Discriminator;
    /// let d = Discriminator::Present(String::from("canary"));
    /// assert_eq!(d.as_ref().map(String::as_str), Discriminator::Present("canary"));
    /// ```
    pub fn as_ref(&self) -> Discriminator<&T> {
        match self {
            Discriminator::NotInKey => Discriminator::NotInKey,
            Discriminator::Absent => Discriminator::Absent,
            Discriminator::Present(v) => Discriminator::Present(v),
        }
    }

    /// Maps the value.
    ///
    /// ```
    /// use modelfleet::Discriminator;
    /// assert_eq!(Discriminator::Present(2).map(|v| v * 2), Discriminator::Present(4));
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Discriminator<U> {
        match self {
            Discriminator::NotInKey => Discriminator::NotInKey,
            Discriminator::Absent => Discriminator::Absent,
            Discriminator::Present(v) => Discriminator::Present(f(v)),
        }
    }

    /// Whether the policy uses this discriminator.
    ///
    /// ```
    /// use modelfleet::Discriminator;
    /// assert!(Discriminator::<u8>::Absent.is_in_key());
    /// assert!(!Discriminator::<u8>::NotInKey.is_in_key());
    /// ```
    pub fn is_in_key(&self) -> bool {
        !matches!(self, Discriminator::NotInKey)
    }
}

/// The identity of a deployment under an [`IdentityPolicy`](crate::IdentityPolicy).
///
/// A key is always a provider and a model, plus the discriminators the policy
/// names (endpoint, tag, version). Two deployments with equal keys are the same
/// deployment as far as a [`Registry`](crate::Registry) is concerned.
///
/// # Text form
///
/// ```text
/// provider "/" model [ "#" tag ] [ "~" version ] [ "@" endpoint ]
/// ```
///
/// - A part appears exactly when the policy uses that discriminator; an empty
///   part (`#`, `~` or `@` followed by nothing) means the deployment has none
///   (no tag, no version, the provider's default endpoint).
/// - The provider runs to the first `/`; the model runs to the first `#`, `~`
///   or `@`, so model ids such as `meta-llama/Llama-3-8B` or `llama3:8b` are
///   written as they are.
/// - In the provider, model and tag, the characters `%`, `#`, `~` and `@` (and
///   `/` in the provider) are written as `%25`, `%23`, `%7E`, `%40` and `%2F`;
///   no other escapes are accepted, so every key has exactly one text form.
/// - The version is a semantic version; the endpoint is a normalized URL
///   (`http`/`https`, no credentials, query or fragment) and comes last.
/// - Names hold no control characters, no invisible format characters (zero
///   width spaces and joiners, bidi controls, tag characters) and no line
///   separators ([rules](crate::NameProblem#rules)); they are compared as
///   given, not Unicode-normalized, so an NFC and an NFD spelling are two
///   names.
///
/// `Display` and `FromStr` round-trip exactly, and serde uses the text form.
///
/// ```
/// use modelfleet::ModelKey;
///
/// let key: ModelKey = "openai-api-compatible/gpt-4@http://192.168.0.1/v1".parse()?;
/// assert_eq!(key.provider(), "openai-api-compatible");
/// assert_eq!(key.model(), "gpt-4");
/// assert_eq!(key.to_string(), "openai-api-compatible/gpt-4@http://192.168.0.1/v1");
///
/// let key: ModelKey = "ollama/llama3:8b#node%231~1.2.0@".parse()?;
/// assert_eq!(key.model(), "llama3:8b");
/// assert_eq!(key.tag().map(|t| t.to_owned()), modelfleet::Discriminator::Present("node#1".to_owned()));
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelKey {
    provider: String,
    model: String,
    tag: Discriminator<String>,
    version: Discriminator<Version>,
    endpoint: Discriminator<Url>,
}

impl ModelKey {
    /// A name-only key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if either name is empty, blank, has surrounding
    /// white space, control or invisible characters (see
    /// [`NameProblem`](crate::NameProblem#rules)), or is longer than
    /// [`MAX_NAME_LEN`](crate::MAX_NAME_LEN).
    ///
    /// ```
    /// let key = modelfleet::ModelKey::new("openai", "gpt-4")?;
    /// assert_eq!(key.to_string(), "openai/gpt-4");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn new(provider: &str, model: &str) -> Result<Self, Error> {
        let bad = |field, problem| Error::InvalidName {
            deployment: describe(provider, model),
            field,
            problem,
        };
        check_name(provider).map_err(|p| bad(Field::Provider, p))?;
        check_name(model).map_err(|p| bad(Field::Model, p))?;
        Ok(Self::from_valid(provider.to_owned(), model.to_owned()))
    }

    fn from_valid(provider: String, model: String) -> Self {
        Self {
            provider,
            model,
            tag: Discriminator::NotInKey,
            version: Discriminator::NotInKey,
            endpoint: Discriminator::NotInKey,
        }
    }

    /// The key of `deployment` made of its provider, model and the given
    /// discriminators. This is what the built-in [`Policy`](crate::Policy) does,
    /// and the usual starting point of a custom policy.
    ///
    /// ```
    /// use modelfleet::{Deployment, Discriminators, ModelKey};
    ///
    /// let d = Deployment::builder("openai", "gpt-4").tag("canary").build()?;
    /// let key = ModelKey::for_deployment(&d, Discriminators::TAG);
    /// assert_eq!(key.to_string(), "openai/gpt-4#canary");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn for_deployment(deployment: &Deployment, discriminators: Discriminators) -> Self {
        let mut key = Self::from_valid(
            deployment.provider().to_owned(),
            deployment.model().to_owned(),
        );
        key.tag = Discriminator::from_option(
            discriminators.contains(Discriminators::TAG),
            deployment.tag().map(str::to_owned),
        );
        key.version = Discriminator::from_option(
            discriminators.contains(Discriminators::VERSION),
            deployment.version().cloned(),
        );
        key.endpoint = Discriminator::from_option(
            discriminators.contains(Discriminators::ENDPOINT),
            deployment.endpoint().cloned(),
        );
        key
    }

    /// Adds a tag discriminator (`None`: the deployment has no tag).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if the tag is not a valid name.
    ///
    /// ```
    /// let key = modelfleet::ModelKey::new("openai", "gpt-4")?.with_tag(Some("eu"))?;
    /// assert_eq!(key.to_string(), "openai/gpt-4#eu");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn with_tag(mut self, tag: Option<&str>) -> Result<Self, Error> {
        if let Some(t) = tag {
            check_name(t).map_err(|problem| Error::InvalidName {
                deployment: describe(&self.provider, &self.model),
                field: Field::Tag,
                problem,
            })?;
        }
        self.tag = Discriminator::from_option(true, tag.map(str::to_owned));
        Ok(self)
    }

    /// Adds a version discriminator (`None`: the deployment has no version).
    ///
    /// ```
    /// let v = semver::Version::new(1, 2, 0);
    /// let key = modelfleet::ModelKey::new("openai", "gpt-4")?.with_version(Some(v));
    /// assert_eq!(key.to_string(), "openai/gpt-4~1.2.0");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn with_version(mut self, version: Option<Version>) -> Self {
        self.version = Discriminator::from_option(true, version);
        self
    }

    /// Adds an endpoint discriminator (`None`: the provider's default
    /// endpoint). The URL is checked and normalized as a deployment's would be.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEndpoint`] if the URL is not `http`/`https` or carries
    /// credentials, a query or a fragment.
    ///
    /// ```
    /// let url = url::Url::parse("HTTP://Node1:80/v1/").unwrap();
    /// let key = modelfleet::ModelKey::new("openai", "gpt-4")?.with_endpoint(Some(&url))?;
    /// assert_eq!(key.to_string(), "openai/gpt-4@http://node1/v1");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn with_endpoint(mut self, endpoint: Option<&Url>) -> Result<Self, Error> {
        let endpoint = match endpoint {
            None => None,
            Some(u) => Some(
                crate::endpoint::normalize_url(u.clone()).map_err(|problem| {
                    Error::InvalidEndpoint {
                        deployment: describe(&self.provider, &self.model),
                        problem,
                        source: None,
                    }
                })?,
            ),
        };
        self.endpoint = Discriminator::from_option(true, endpoint);
        Ok(self)
    }

    /// The provider.
    ///
    /// ```
    /// assert_eq!(modelfleet::ModelKey::new("openai", "gpt-4")?.provider(), "openai");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The model (the public name clients ask for).
    ///
    /// ```
    /// assert_eq!(modelfleet::ModelKey::new("openai", "gpt-4")?.model(), "gpt-4");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The tag discriminator.
    ///
    /// ```
    /// use modelfleet::Discriminator;
    /// let key: modelfleet::ModelKey = "openai/gpt-4#".parse()?;
    /// assert_eq!(key.tag(), Discriminator::Absent);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn tag(&self) -> Discriminator<&str> {
        self.tag.as_ref().map(String::as_str)
    }

    /// The version discriminator.
    ///
    /// ```
    /// use modelfleet::Discriminator;
    /// let key: modelfleet::ModelKey = "openai/gpt-4~2.0.0".parse()?;
    /// assert_eq!(key.version(), Discriminator::Present(&semver::Version::new(2, 0, 0)));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn version(&self) -> Discriminator<&Version> {
        self.version.as_ref()
    }

    /// The endpoint discriminator.
    ///
    /// ```
    /// use modelfleet::Discriminator;
    /// let key: modelfleet::ModelKey = "openai/gpt-4@".parse()?;
    /// assert_eq!(key.endpoint(), Discriminator::Absent);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn endpoint(&self) -> Discriminator<&Url> {
        self.endpoint.as_ref()
    }

    /// The discriminators this key carries.
    ///
    /// ```
    /// use modelfleet::Discriminators;
    /// let key: modelfleet::ModelKey = "openai/gpt-4#a@".parse()?;
    /// assert_eq!(key.discriminators(), Discriminators::TAG | Discriminators::ENDPOINT);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn discriminators(&self) -> Discriminators {
        let mut d = Discriminators::NONE;
        if self.endpoint.is_in_key() {
            d |= Discriminators::ENDPOINT;
        }
        if self.tag.is_in_key() {
            d |= Discriminators::TAG;
        }
        if self.version.is_in_key() {
            d |= Discriminators::VERSION;
        }
        d
    }
}

/// Characters escaped in each part of the text form.
const PROVIDER_ESCAPES: &[char] = &['%', '/', '#', '~', '@'];
const MODEL_ESCAPES: &[char] = &['%', '#', '~', '@'];

fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str, escapes: &[char]) -> fmt::Result {
    let mut rest = s;
    while let Some(at) = rest.find(escapes) {
        f.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().unwrap_or('%');
        write!(f, "%{:02X}", c as u32)?;
        rest = &rest[at + 1..];
    }
    f.write_str(rest)
}

fn unescape(s: &str, escapes: &[char]) -> Result<String, String> {
    // Every key has one text form: a character this part escapes may not
    // also appear as itself.
    if let Some(c) = s.chars().find(|c| *c != '%' && escapes.contains(c)) {
        return Err(format!("{c:?} must be written as %{:02X}", c as u32));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let hex = rest.get(at + 1..at + 3).ok_or("incomplete %-escape")?;
        let decoded = u8::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
            .map(char::from)
            .filter(|c| escapes.contains(c))
            .ok_or_else(|| {
                format!("%{hex} is not one of the escapes of this part (only {escapes:?} are escaped, as uppercase %XX)")
            })?;
        out.push(decoded);
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl fmt::Display for ModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.provider, PROVIDER_ESCAPES)?;
        f.write_str("/")?;
        write_escaped(f, &self.model, MODEL_ESCAPES)?;
        if self.tag.is_in_key() {
            f.write_str("#")?;
            if let Discriminator::Present(t) = &self.tag {
                write_escaped(f, t, MODEL_ESCAPES)?;
            }
        }
        if self.version.is_in_key() {
            f.write_str("~")?;
            if let Discriminator::Present(v) = &self.version {
                write!(f, "{v}")?;
            }
        }
        if self.endpoint.is_in_key() {
            f.write_str("@")?;
            if let Discriminator::Present(u) = &self.endpoint {
                f.write_str(u.as_str())?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelKey({:?})", self.to_string())
    }
}

impl FromStr for ModelKey {
    type Err = Error;

    /// Parses the text form; see the [type docs](ModelKey#text-form).
    fn from_str(s: &str) -> Result<Self, Error> {
        let fail = |reason: String| Error::InvalidKey {
            input: redact_key(s),
            reason,
        };
        let (provider, rest) = s
            .split_once('/')
            .ok_or_else(|| fail("expected provider/model".into()))?;
        let provider =
            unescape(provider, PROVIDER_ESCAPES).map_err(|r| fail(format!("provider: {r}")))?;

        // The endpoint comes last and may itself hold '#', '~' or '@' only
        // escaped, so the first '@' ends the name parts.
        let (names, endpoint) = match rest.split_once('@') {
            Some((n, e)) => (n, Some(e)),
            None => (rest, None),
        };
        let (names, version) = match names.split_once('~') {
            Some((n, v)) => (n, Some(v)),
            None => (names, None),
        };
        let (model, tag) = match names.split_once('#') {
            Some((m, t)) => (m, Some(t)),
            None => (names, None),
        };
        let model = unescape(model, MODEL_ESCAPES).map_err(|r| fail(format!("model: {r}")))?;
        let mut key = ModelKey::new(&provider, &model).map_err(|e| fail(e.to_string()))?;

        if let Some(tag) = tag {
            let tag = unescape(tag, MODEL_ESCAPES).map_err(|r| fail(format!("tag: {r}")))?;
            let tag = (!tag.is_empty()).then_some(tag.as_str());
            key = key.with_tag(tag).map_err(|e| fail(e.to_string()))?;
        }
        if let Some(v) = version {
            let version = if v.is_empty() {
                None
            } else if v.len() > crate::MAX_VERSION_LEN {
                return Err(fail(format!(
                    "version: is {} bytes long; the limit is {}",
                    v.len(),
                    crate::MAX_VERSION_LEN
                )));
            } else {
                let parsed = Version::parse(v).map_err(|e| fail(format!("version: {e}")))?;
                if parsed.to_string() != v {
                    return Err(fail(format!("version: {v:?} is not in canonical form")));
                }
                Some(parsed)
            };
            key = key.with_version(version);
        }
        if let Some(e) = endpoint {
            let url = if e.is_empty() {
                None
            } else {
                let url = crate::endpoint::normalize(e)
                    .map_err(|(p, _)| fail(format!("endpoint {p}")))?;
                if url.as_str() != e {
                    return Err(fail(format!(
                        "endpoint is not in normal form (expected {})",
                        url.as_str()
                    )));
                }
                Some(url)
            };
            key.endpoint = Discriminator::from_option(true, url);
        }
        Ok(key)
    }
}

/// A key's text, safe to put in an error message: the names are kept and the
/// endpoint part (after the first `@`) is redacted like any endpoint. Text
/// that looks like a URL before its first `@` is redacted as a whole.
fn redact_key(s: &str) -> String {
    match s.split_once('@') {
        Some((names, endpoint)) if !names.contains("://") => {
            let mut out: String = names.chars().take(200).collect();
            if out.len() < names.len() {
                out.push('…');
            }
            out.push('@');
            out.push_str(&crate::endpoint::redact(endpoint));
            out
        }
        _ if s.contains("://") => crate::endpoint::redact(s),
        _ => {
            let mut out: String = s.chars().take(200).collect();
            if out.len() < s.len() {
                out.push('…');
            }
            out
        }
    }
}

impl TryFrom<&str> for ModelKey {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self, Error> {
        s.parse()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for ModelKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ModelKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_examples() {
        for s in [
            "openai/gpt-4",
            "openai-api-compatible/gpt-4@http://192.168.0.1/v1",
            "together/meta-llama/Llama-3-8B#eu~1.2.0-rc.1+b5@https://x.example/",
            "ollama/llama3:8b#~@",
            "a%2Fb/c%40d%23e%7Ef%25",
        ] {
            let key: ModelKey = s.parse().unwrap();
            assert_eq!(key.to_string(), s);
        }
    }

    #[test]
    fn rejects_non_canonical_forms() {
        for s in [
            "gpt-4",
            "/gpt-4",
            "openai/",
            "openai/gpt%2D4",
            "openai/gpt%2f4",
            "openai/gpt%4",
            "openai/gpt-4~01.0.0",
            "openai/gpt-4~1.0",
            "openai/gpt-4@http://H/v1/",
            "openai/gpt-4@ftp://h/",
            "openai/gpt-4#\u{1}",
            "openai/gpt-4# x",
            "openai/gpt-4#a#b",
            "open#ai/gpt-4",
            "open@ai/gpt-4",
        ] {
            assert!(s.parse::<ModelKey>().is_err(), "{s:?} parsed");
        }
    }

    #[test]
    fn malformed_key_error_redacts_credentials() {
        let err = "openai/gpt-4@http://u:pw@h/"
            .parse::<ModelKey>()
            .unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}
