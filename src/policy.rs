//! Identity policies: what makes a deployment unique.
//!
//! A platform that keys models by provider + model name (Dify does) keeps one
//! deployment per model: registering `gpt-4` on a second machine replaces the
//! first. An [`IdentityPolicy`] makes that choice explicit. The built-in
//! [`Policy`] keys by name plus any set of [`Discriminators`] (endpoint, tag,
//! version); anything else goes through the trait.
//!
//! | policy | two `gpt-4` on two endpoints | same endpoint, tags `a`/`b` | same endpoint, versions 1.0/2.0 |
//! |---|---|---|---|
//! | `name` | one kept (second overrides) | one kept | one kept |
//! | `name+endpoint` | both kept | one kept | one kept |
//! | `name+tag` | one kept | both kept | one kept |
//! | `name+version` | one kept | one kept | both kept |
//! | `name+endpoint+tag+version` | both kept | both kept | both kept |
//!
//! Policies refine each other: if P's discriminators include Q's, every two
//! deployments that collide under P collide under Q, so P keeps at least as
//! many deployments as Q ([`Policy::refines`]). `name` is the coarsest.
//!
//! # A custom policy
//!
//! ```
//! use std::borrow::Cow;
//! use modelfleet::{
//!     Deployment, Discriminators, IdentityPolicy, ModelKey, Registry, Request, Selector,
//! };
//!
//! /// Model names compare without case: `GPT-4` and `gpt-4` are one model.
//! #[derive(Debug)]
//! struct CaseInsensitive;
//!
//! fn lowercase(model: &str) -> Cow<'_, str> {
//!     Cow::Owned(model.to_lowercase())
//! }
//!
//! impl IdentityPolicy for CaseInsensitive {
//!     fn key(&self, d: &Deployment) -> ModelKey {
//!         let base = ModelKey::for_deployment(d, Discriminators::ENDPOINT);
//!         // Lowercasing a valid name keeps it valid, except for the rare
//!         // name whose lowercase form grows past the length limit.
//!         ModelKey::new(d.provider(), &lowercase(d.model()))
//!             .and_then(|k| k.with_endpoint(d.endpoint()))
//!             .unwrap_or(base)
//!     }
//!     // Requests find models through the same normalization.
//!     fn model_normalizer(&self) -> Option<fn(&str) -> Cow<'_, str>> {
//!         Some(lowercase)
//!     }
//! }
//!
//! let mut reg = Registry::new(CaseInsensitive);
//! reg.insert(Deployment::builder("openai", "GPT-4").build()?)?;
//! assert!(reg.insert(Deployment::builder("openai", "gpt-4").build()?).is_err());
//! let selector = Selector::builder(&reg).build();
//! assert!(selector.select(&Request::new("Gpt-4")).is_ok());
//! # Ok::<(), modelfleet::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::deployment::Deployment;
pub use crate::discriminators::Discriminators;
use crate::error::Error;
use crate::key::ModelKey;

/// Maps a deployment to its identity.
///
/// Implementations must be deterministic: the same deployment always gives the
/// same key. Object-safe, so `Box<dyn IdentityPolicy>` works.
///
/// ```
/// use modelfleet::{Deployment, IdentityPolicy, Policy};
///
/// let policy: Box<dyn IdentityPolicy> = Box::new(Policy::NAME_TAG);
/// let d = Deployment::builder("openai", "gpt-4").tag("canary").build()?;
/// assert_eq!(policy.key(&d).to_string(), "openai/gpt-4#canary");
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub trait IdentityPolicy: fmt::Debug + Send + Sync {
    /// The key of `deployment` under this policy.
    fn key(&self, deployment: &Deployment) -> ModelKey;

    /// The policy's name in messages ([`Error::Collisions`]). The default
    /// is its `Debug` form; [`Policy`] gives its text form.
    ///
    /// ```
    /// use modelfleet::{IdentityPolicy, Policy};
    ///
    /// let policy: Box<dyn IdentityPolicy> = Box::new(Policy::NAME_TAG);
    /// assert_eq!(policy.describe(), "name+tag");
    /// ```
    fn describe(&self) -> String {
        format!("{self:?}")
    }

    /// How this policy normalizes model names, if it does: a policy whose
    /// [`key`](Self::key) writes a deployment's model in a normal form
    /// (lowercase, say) returns the function that makes that form, so that
    /// a [`Selector`](crate::Selector) groups deployments by the normal
    /// name and finds a request's model through the same function. It must
    /// be idempotent, and give the model of `key`. The default, `None`,
    /// uses names as they are.
    ///
    /// A request whose model is already in normal form is found without
    /// calling it; another calls it once, and allocates if it returns an
    /// owned name.
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use modelfleet::{Deployment, IdentityPolicy, ModelKey, Registry, Request, Selector};
    ///
    /// fn lowercase(model: &str) -> Cow<'_, str> {
    ///     Cow::Owned(model.to_lowercase())
    /// }
    ///
    /// #[derive(Debug)]
    /// struct CaseInsensitive;
    ///
    /// impl IdentityPolicy for CaseInsensitive {
    ///     fn key(&self, d: &Deployment) -> ModelKey {
    ///         ModelKey::new(d.provider(), &lowercase(d.model())).expect("a valid name")
    ///     }
    ///     fn model_normalizer(&self) -> Option<fn(&str) -> Cow<'_, str>> {
    ///         Some(lowercase)
    ///     }
    /// }
    ///
    /// let mut reg = Registry::new(CaseInsensitive);
    /// reg.insert(Deployment::builder("openai", "GPT-4").build()?)?;
    /// let selector = Selector::builder(&reg).build();
    /// assert_eq!(selector.select(&Request::new("gpt-4"))?.deployment().model(), "GPT-4");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    fn model_normalizer(&self) -> Option<fn(&str) -> Cow<'_, str>> {
        None
    }
}

/// Forwards every method, so that wrappers keep what the policy says.
macro_rules! forward {
    ($($t:ty),*) => {$(
        impl<P: IdentityPolicy + ?Sized> IdentityPolicy for $t {
            fn key(&self, deployment: &Deployment) -> ModelKey {
                (**self).key(deployment)
            }
            fn describe(&self) -> String {
                (**self).describe()
            }
            fn model_normalizer(&self) -> Option<fn(&str) -> Cow<'_, str>> {
                (**self).model_normalizer()
            }
        }
    )*};
}

forward!(&P, Box<P>, Arc<P>);

/// The built-in identity policy: provider + model plus a set of
/// [`Discriminators`].
///
/// Text form: `name`, then `+endpoint`, `+tag`, `+version` for each
/// discriminator, e.g. `"name+endpoint+tag"`. Parsing accepts the
/// discriminators in any order (each at most once); display writes them in
/// the order endpoint, tag, version.
///
/// The default is `name+endpoint`: two servings of one model on two machines
/// are two deployments, which is what a fleet is for. `name` (Dify's
/// behaviour) is there when an override is what you want.
///
/// ```
/// use modelfleet::Policy;
///
/// let p: Policy = "name+tag+endpoint".parse()?;
/// assert_eq!(p, Policy::NAME_ENDPOINT_TAG);
/// assert_eq!(p.to_string(), "name+endpoint+tag");
/// assert!(p.refines(&Policy::NAME_ENDPOINT));
/// assert!("name+region".parse::<Policy>().is_err());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Policy {
    discriminators: Discriminators,
}

impl Policy {
    /// `name`: provider + model only (Dify's behaviour: one deployment per model).
    pub const NAME: Self = Self::new(Discriminators::NONE);
    /// `name+endpoint`.
    pub const NAME_ENDPOINT: Self = Self::new(Discriminators::ENDPOINT);
    /// `name+tag`.
    pub const NAME_TAG: Self = Self::new(Discriminators::TAG);
    /// `name+version`.
    pub const NAME_VERSION: Self = Self::new(Discriminators::VERSION);
    /// `name+endpoint+tag`.
    pub const NAME_ENDPOINT_TAG: Self = Self::new(Discriminators(3));
    /// `name+endpoint+version`.
    pub const NAME_ENDPOINT_VERSION: Self = Self::new(Discriminators(5));
    /// `name+tag+version`.
    pub const NAME_TAG_VERSION: Self = Self::new(Discriminators(6));
    /// `name+endpoint+tag+version`: the finest built-in policy.
    pub const NAME_ENDPOINT_TAG_VERSION: Self = Self::new(Discriminators::ALL);

    /// The policy keyed by name plus `discriminators`.
    ///
    /// ```
    /// use modelfleet::{Discriminators, Policy};
    /// assert_eq!(Policy::new(Discriminators::TAG), Policy::NAME_TAG);
    /// ```
    #[must_use]
    pub const fn new(discriminators: Discriminators) -> Self {
        Self { discriminators }
    }

    /// All built-in policies, coarsest first (eight: every combination of
    /// the discriminators).
    ///
    /// ```
    /// assert_eq!(modelfleet::Policy::all().len(), 8);
    /// ```
    #[must_use]
    pub fn all() -> &'static [Policy] {
        const ALL: &[Policy] = &[
            Policy::new(Discriminators(0)),
            Policy::new(Discriminators(1)),
            Policy::new(Discriminators(2)),
            Policy::new(Discriminators(4)),
            Policy::new(Discriminators(3)),
            Policy::new(Discriminators(5)),
            Policy::new(Discriminators(6)),
            Policy::new(Discriminators(7)),
        ];
        ALL
    }

    /// The discriminators this policy adds to the name.
    ///
    /// ```
    /// use modelfleet::{Discriminators, Policy};
    /// assert_eq!(Policy::NAME.discriminators(), Discriminators::NONE);
    /// ```
    #[must_use]
    pub const fn discriminators(&self) -> Discriminators {
        self.discriminators
    }

    /// Whether this policy is at least as fine as `other`: every collision
    /// under `self` is a collision under `other`.
    ///
    /// ```
    /// use modelfleet::Policy;
    /// assert!(Policy::NAME_TAG.refines(&Policy::NAME));
    /// assert!(!Policy::NAME_TAG.refines(&Policy::NAME_ENDPOINT));
    /// ```
    #[must_use]
    pub const fn refines(&self, other: &Policy) -> bool {
        self.discriminators.contains(other.discriminators)
    }
}

impl Default for Policy {
    /// `name+endpoint`.
    fn default() -> Self {
        Self::NAME_ENDPOINT
    }
}

impl IdentityPolicy for Policy {
    fn key(&self, deployment: &Deployment) -> ModelKey {
        ModelKey::for_deployment(deployment, self.discriminators)
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("name")?;
        for n in self.discriminators.names() {
            write!(f, "+{n}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Policy({self})")
    }
}

impl FromStr for Policy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let fail = |reason| Error::UnknownPolicy {
            input: s.chars().take(100).collect(),
            reason,
        };
        let mut parts = s.split('+');
        if parts.next() != Some("name") {
            return Err(fail(
                "a policy starts with \"name\", e.g. \"name\", \"name+endpoint\", \"name+tag+version\"",
            ));
        }
        let mut d = Discriminators::NONE;
        for part in parts {
            let one = match part {
                "endpoint" => Discriminators::ENDPOINT,
                "tag" => Discriminators::TAG,
                "version" => Discriminators::VERSION,
                _ => {
                    return Err(fail(
                        "discriminators are \"endpoint\", \"tag\" and \"version\"",
                    ));
                }
            };
            if d.contains(one) {
                return Err(fail("a discriminator is named twice"));
            }
            d |= one;
        }
        Ok(Policy::new(d))
    }
}

impl TryFrom<&str> for Policy {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self, Error> {
        s.parse()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        for &p in Policy::all() {
            assert_eq!(p.to_string().parse::<Policy>().unwrap(), p);
        }
        assert_eq!(
            Policy::all()
                .iter()
                .map(Policy::to_string)
                .collect::<Vec<_>>(),
            [
                "name",
                "name+endpoint",
                "name+tag",
                "name+version",
                "name+endpoint+tag",
                "name+endpoint+version",
                "name+tag+version",
                "name+endpoint+tag+version"
            ]
        );
    }

    #[test]
    fn rejects_unknown() {
        for s in [
            "",
            "Name",
            "endpoint",
            "name+",
            "name+tag+tag",
            "name + tag",
            "name+region",
        ] {
            assert!(s.parse::<Policy>().is_err(), "{s:?}");
        }
    }
}
