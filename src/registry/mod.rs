//! [`Registry`]: deployments keyed by [`ModelKey`] under one identity policy,
//! the [`Collision`]s another policy would cause, and the
//! [`Changes`](diff::Changes) between two versions.

mod collision;
pub(crate) mod diff;
mod iter;
// Named `serde_impl` so that `serde` keeps naming the crate in this module.
#[cfg(feature = "serde")]
#[path = "serde.rs"]
mod serde_impl;

use std::fmt;
use std::sync::Arc;

use indexmap::{IndexMap, IndexSet};

pub use collision::Collision;
pub use iter::Iter;

use crate::deployment::Deployment;
use crate::error::Error;
use crate::hash::FixedState;
use crate::key::ModelKey;
use crate::policy::{IdentityPolicy, Policy};

/// An ordered map `ModelKey → Deployment` under one identity policy.
///
/// - **Uniqueness**: no two stored deployments share a key.
/// - **Override**: [`upsert`](Self::upsert) replaces a deployment with an equal
///   key in place (same position) and returns the previous one;
///   [`insert`](Self::insert) refuses it and changes nothing.
/// - **Order**: iteration follows the first insertion of each live key; a key
///   removed and added again goes to the end.
///
/// A per-model index serves [`of_model`](Self::of_model) (the candidates of
/// a request) in the same order.
///
/// Equality (`==`) compares the policy and the entries *in order*.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry};
///
/// let node = |ip: &str| {
///     Deployment::builder("openai-api-compatible", "gpt-4")
///         .endpoint(&format!("http://{ip}/v1"))
///         .build()
/// };
///
/// // Dify's behaviour: provider + model name is the identity.
/// let mut dify = Registry::new(Policy::NAME);
/// dify.upsert(node("192.168.0.1")?);
/// let replaced = dify.upsert(node("192.168.0.2")?);
/// assert_eq!(dify.len(), 1);
/// assert!(replaced.is_some());
///
/// // With the endpoint in the identity, both deployments are kept.
/// let mut fleet = Registry::new(Policy::NAME_ENDPOINT);
/// fleet.insert(node("192.168.0.1")?)?;
/// fleet.insert(node("192.168.0.2")?)?;
/// assert_eq!(fleet.of_model("gpt-4").count(), 2);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone)]
pub struct Registry<P = Policy> {
    policy: P,
    /// Keys and deployments are shared (`Arc`) with clones of the registry
    /// and with selectors built from it: cloning a registry or building a
    /// selector copies pointers, not strings.
    entries: IndexMap<Arc<ModelKey>, Arc<Deployment>, FixedState>,
    /// model name → keys of its deployments, in registry order.
    by_model: IndexMap<String, IndexSet<Arc<ModelKey>, FixedState>, FixedState>,
}

impl<P: IdentityPolicy> Registry<P> {
    /// An empty registry under `policy`.
    ///
    /// ```
    /// let reg = modelfleet::Registry::new(modelfleet::Policy::NAME_TAG);
    /// assert!(reg.is_empty());
    /// ```
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            entries: IndexMap::default(),
            by_model: IndexMap::default(),
        }
    }

    /// An empty registry with room for `n` deployments.
    ///
    /// ```
    /// let reg = modelfleet::Registry::with_capacity(modelfleet::Policy::NAME, 100);
    /// assert!(reg.is_empty());
    /// ```
    pub fn with_capacity(policy: P, n: usize) -> Self {
        Self {
            policy,
            entries: IndexMap::with_capacity_and_hasher(n, FixedState::default()),
            by_model: IndexMap::default(),
        }
    }

    /// The identity policy.
    ///
    /// ```
    /// let reg = modelfleet::Registry::new(modelfleet::Policy::NAME);
    /// assert_eq!(reg.policy().to_string(), "name");
    /// ```
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The key `deployment` has (or would have) in this registry.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let reg = Registry::new(Policy::NAME_TAG);
    /// let d = Deployment::builder("openai", "gpt-4").tag("b").build()?;
    /// assert_eq!(reg.key_of(&d).to_string(), "openai/gpt-4#b");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn key_of(&self, deployment: &Deployment) -> ModelKey {
        self.policy.key(deployment)
    }

    /// Adds a deployment whose key is new; returns its key.
    ///
    /// Computes in **O(1)** time (average).
    ///
    /// # Errors
    ///
    /// [`Error::Duplicate`], naming the key and the stored deployment, if a
    /// deployment with the same key is stored; the registry is unchanged.
    ///
    /// ```
    /// use modelfleet::{Deployment, Error, Policy, Registry};
    ///
    /// let mut reg = Registry::new(Policy::NAME);
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
    /// let err = reg
    ///     .insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "duplicate key openai/gpt-4: the registry already holds deployment openai/gpt-4@http://a/v1"
    /// );
    /// assert_eq!(reg.len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn insert(&mut self, deployment: Deployment) -> Result<ModelKey, Error> {
        let key = self.policy.key(&deployment);
        if let Some(existing) = self.entries.get(&key) {
            return Err(Error::Duplicate {
                existing: existing.to_string(),
                key: Box::new(key),
            });
        }
        self.add_new(key.clone(), Arc::new(deployment));
        Ok(key)
    }

    /// Adds a deployment, or replaces the stored one with an equal key in
    /// place (keeping its position) and returns it. Idempotent.
    ///
    /// Computes in **O(1)** time (average), plus O(group · log group) when a
    /// replacement moves a deployment to another model name (custom policies
    /// only).
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    ///
    /// let mut reg = Registry::new(Policy::NAME);
    /// let a = Deployment::builder("openai", "gpt-4").weight(1).build()?;
    /// let b = Deployment::builder("openai", "gpt-4").weight(5).build()?;
    /// assert_eq!(reg.upsert(a.clone()), None);
    /// assert_eq!(reg.upsert(b.clone()), Some(a));
    /// assert_eq!(reg.upsert(b.clone()), Some(b));
    /// assert_eq!(reg.len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn upsert(&mut self, deployment: Deployment) -> Option<Deployment> {
        self.upsert_shared(Arc::new(deployment)).map(unshare)
    }

    /// [`upsert`](Self::upsert) of a shared deployment.
    pub(crate) fn upsert_shared(&mut self, deployment: Arc<Deployment>) -> Option<Arc<Deployment>> {
        let key = self.policy.key(&deployment);
        match self.entries.get_full_mut(&key) {
            Some((_, stored_key, slot)) => {
                let stored_key = Arc::clone(stored_key);
                let previous = std::mem::replace(slot, deployment);
                if previous.model() != slot.model() {
                    // A custom policy may key two model names alike; keep the
                    // per-model index exact.
                    let model = slot.model().to_owned();
                    self.unindex(previous.model(), &key);
                    // The key keeps its registry position, so it joins the
                    // new model's group at that position, not at the end.
                    let entries = &self.entries;
                    let group = self.by_model.entry(model).or_default();
                    group.insert(stored_key);
                    group.sort_by_cached_key(|k| entries.get_index_of(&**k));
                }
                Some(previous)
            }
            None => {
                self.add_new(key, deployment);
                None
            }
        }
    }

    fn add_new(&mut self, key: ModelKey, deployment: Arc<Deployment>) {
        let key = Arc::new(key);
        self.by_model
            .entry(deployment.model().to_owned())
            .or_default()
            .insert(Arc::clone(&key));
        self.entries.insert(key, deployment);
    }

    fn unindex(&mut self, model: &str, key: &ModelKey) {
        if let Some(group) = self.by_model.get_mut(model) {
            group.shift_remove(key);
            if group.is_empty() {
                self.by_model.shift_remove(model);
            }
        }
    }

    /// Removes and returns the deployment stored under `key`.
    ///
    /// Computes in **O(n)** time: later entries shift to keep the order.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME);
    /// let key = reg.insert(Deployment::builder("openai", "gpt-4").build()?)?;
    /// assert!(reg.remove(&key).is_some());
    /// assert!(reg.remove(&key).is_none());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn remove(&mut self, key: &ModelKey) -> Option<Deployment> {
        let d = self.entries.shift_remove(key)?;
        self.unindex(d.model(), key);
        Some(unshare(d))
    }

    /// The registry under another policy.
    ///
    /// # Errors
    ///
    /// [`Error::Collisions`] listing every key that two or more deployments
    /// would share under `policy` (see [`collisions`](Self::collisions)); nothing
    /// is lost, `self` is untouched.
    ///
    /// ```
    /// use modelfleet::{Deployment, Error, Policy, Registry};
    ///
    /// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
    /// assert!(reg.rekey(Policy::NAME_ENDPOINT_TAG).is_ok());
    /// match reg.rekey(Policy::NAME) {
    ///     Err(Error::Collisions { collisions, .. }) => assert_eq!(collisions.len(), 1),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn rekey<Q: IdentityPolicy>(&self, policy: Q) -> Result<Registry<Q>, Error> {
        let collisions = self.collisions(&policy);
        if !collisions.is_empty() {
            return Err(Error::Collisions {
                policy: policy.describe(),
                collisions,
            });
        }
        let mut out = Registry::with_capacity(policy, self.len());
        for d in self.entries.values() {
            out.upsert_shared(Arc::clone(d));
        }
        Ok(out)
    }

    /// Every key that two or more stored deployments would share under
    /// `policy`, in order of first appearance: exactly the duplicates that
    /// inserting this registry's deployments into a fresh registry under
    /// `policy` would meet.
    ///
    /// Computes in **O(n)** time.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME_TAG);
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").build()?)?;
    /// assert!(reg.collisions(&Policy::NAME_ENDPOINT_TAG).is_empty());
    /// assert_eq!(reg.collisions(&Policy::NAME).len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn collisions<Q: IdentityPolicy + ?Sized>(&self, policy: &Q) -> Vec<Collision> {
        let mut groups: IndexMap<ModelKey, Vec<ModelKey>, FixedState> = IndexMap::default();
        for (key, d) in &self.entries {
            groups
                .entry(policy.key(d))
                .or_default()
                .push((**key).clone());
        }
        groups
            .into_iter()
            .filter(|(_, ds)| ds.len() > 1)
            .map(|(key, deployments)| Collision { key, deployments })
            .collect()
    }
}

impl<P> Registry<P> {
    /// The number of deployments.
    ///
    /// ```
    /// assert_eq!(modelfleet::Registry::new(modelfleet::Policy::NAME).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the registry is empty.
    ///
    /// ```
    /// assert!(modelfleet::Registry::new(modelfleet::Policy::NAME).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The deployment stored under `key`. **O(1)**.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME);
    /// reg.insert(Deployment::builder("openai", "gpt-4").build()?)?;
    /// assert!(reg.get(&"openai/gpt-4".parse()?).is_some());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn get(&self, key: &ModelKey) -> Option<&Deployment> {
        self.entries.get(key).map(|d| &**d)
    }

    /// The entries as stored, shared with clones and selectors.
    pub(crate) fn shared_entries(
        &self,
    ) -> impl ExactSizeIterator<Item = (&Arc<ModelKey>, &Arc<Deployment>)> + '_ {
        self.entries.iter()
    }

    /// The stored deployment under `key`, shared.
    pub(crate) fn get_shared(&self, key: &ModelKey) -> Option<&Arc<Deployment>> {
        self.entries.get(key)
    }

    /// The position of `key` in iteration order. **O(1)**.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME);
    /// let key = reg.insert(Deployment::builder("openai", "gpt-4").build()?)?;
    /// assert_eq!(reg.position(&key), Some(0));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn position(&self, key: &ModelKey) -> Option<usize> {
        self.entries.get_index_of(key)
    }

    /// Whether a deployment is stored under `key`. **O(1)**.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME);
    /// let key = reg.insert(Deployment::builder("openai", "gpt-4").build()?)?;
    /// assert!(reg.contains(&key));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn contains(&self, key: &ModelKey) -> bool {
        self.entries.contains_key(key)
    }

    /// All `(key, deployment)` pairs in registry order.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME);
    /// reg.insert(Deployment::builder("openai", "gpt-4").build()?)?;
    /// reg.insert(Deployment::builder("anthropic", "claude").build()?)?;
    /// let keys: Vec<String> = reg.iter().map(|(k, _)| k.to_string()).collect();
    /// assert_eq!(keys, ["openai/gpt-4", "anthropic/claude"]);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// All keys in registry order.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// assert_eq!(reg.keys().count(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &ModelKey> + DoubleEndedIterator + '_ {
        self.entries.keys().map(|k| &**k)
    }

    /// All deployments in registry order.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// assert_eq!(reg.deployments().next().unwrap().model(), "gpt-4");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn deployments(
        &self,
    ) -> impl ExactSizeIterator<Item = &Deployment> + DoubleEndedIterator + '_ {
        self.entries.values().map(|d| &**d)
    }

    /// The model names that have deployments, in order of first appearance.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME);
    /// reg.insert(Deployment::builder("openai", "gpt-4").build()?)?;
    /// reg.insert(Deployment::builder("azure", "gpt-4").build()?)?;
    /// assert_eq!(reg.models().collect::<Vec<_>>(), ["gpt-4"]);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn models(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.by_model.keys().map(String::as_str)
    }

    /// The deployments of one model (any provider), in registry order.
    /// **O(1)** to find, then O(group) to walk.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME);
    /// reg.insert(Deployment::builder("openai", "gpt-4").build()?)?;
    /// reg.insert(Deployment::builder("azure", "gpt-4").build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4o").build()?)?;
    /// assert_eq!(reg.of_model("gpt-4").count(), 2);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn of_model<'a>(
        &'a self,
        model: &str,
    ) -> impl DoubleEndedIterator<Item = (&'a ModelKey, &'a Deployment)> + 'a {
        self.by_model
            .get(model)
            .into_iter()
            .flatten()
            .filter_map(|k| self.entries.get_key_value(&**k))
            .map(|(k, d)| (&**k, &**d))
    }

    /// The deployments of one model at one provider, in registry order.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    /// let mut reg = Registry::new(Policy::NAME);
    /// reg.insert(Deployment::builder("openai", "gpt-4").build()?)?;
    /// reg.insert(Deployment::builder("azure", "gpt-4").build()?)?;
    /// assert_eq!(reg.of_provider_model("azure", "gpt-4").count(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn of_provider_model<'a>(
        &'a self,
        provider: &'a str,
        model: &str,
    ) -> impl DoubleEndedIterator<Item = (&'a ModelKey, &'a Deployment)> + 'a {
        self.of_model(model)
            .filter(move |(_, d)| d.provider() == provider)
    }
}

/// The deployment itself if nothing else shares it, else a copy.
fn unshare(d: Arc<Deployment>) -> Deployment {
    Arc::try_unwrap(d).unwrap_or_else(|shared| (*shared).clone())
}

impl<P: fmt::Debug> fmt::Debug for Registry<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("policy", &self.policy)
            .field("deployments", &DebugEntries(&self.entries))
            .finish()
    }
}

struct DebugEntries<'a>(&'a IndexMap<Arc<ModelKey>, Arc<Deployment>, FixedState>);

impl fmt::Debug for DebugEntries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<P: PartialEq> PartialEq for Registry<P> {
    /// Equal policies and equal entries in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.policy == other.policy && self.entries.iter().eq(other.entries.iter())
    }
}

impl<P: Eq> Eq for Registry<P> {}

impl<P: IdentityPolicy + Default> Default for Registry<P> {
    fn default() -> Self {
        Self::new(P::default())
    }
}

impl<P: IdentityPolicy + Default> FromIterator<Deployment> for Registry<P> {
    /// Collects with [`upsert`](Registry::upsert) semantics: a later
    /// deployment with an existing key replaces the earlier one in its place.
    /// Use [`insert`](Registry::insert) in a loop to reject duplicates.
    fn from_iter<I: IntoIterator<Item = Deployment>>(iter: I) -> Self {
        let mut reg = Self::default();
        reg.extend(iter);
        reg
    }
}

impl<P: IdentityPolicy> Extend<Deployment> for Registry<P> {
    /// Adds with [`upsert`](Registry::upsert) semantics.
    fn extend<I: IntoIterator<Item = Deployment>>(&mut self, iter: I) {
        for d in iter {
            self.upsert(d);
        }
    }
}

impl<'a, P> IntoIterator for &'a Registry<P> {
    type Item = (&'a ModelKey, &'a Deployment);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
