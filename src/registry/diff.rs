//! Registry diffs: the exact changes from one registry to another.

use std::fmt;
use std::sync::Arc;

use super::Registry;
use crate::deployment::{Credential, Deployment};
use crate::error::Error;
use crate::hash::FixedState;
use crate::key::ModelKey;
use crate::policy::IdentityPolicy;

/// One change to a registry.
///
/// A change never carries a credential: a credential may be the secret
/// itself, and changes are shipped and stored. The deployments in a change
/// from [`Registry::diff`] have none, deployments are compared without them,
/// and [`Registry::apply`] keeps the receiver's own credential for every key
/// it keeps, updates, or removes and adds again in the same list. An added
/// deployment whose source had a credential says so in
/// `credential_withheld`; the receiver sets its own reference
/// ([`DeploymentBuilder::credential`](crate::DeploymentBuilder::credential))
/// before or after applying.
///
/// ```
/// use modelfleet::{Change, Deployment, Policy, Registry};
///
/// let a: Registry = Registry::new(Policy::NAME_ENDPOINT);
/// let mut b = a.clone();
/// b.insert(Deployment::builder("openai", "gpt-4").build()?)?;
/// let changes = a.diff(&b);
/// assert!(matches!(changes.as_slice(), [Change::Added { .. }]));
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
// Changes are control-plane values, built and shipped rarely: plain fields
// read better than boxes.
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// A deployment to add at the end ([`Change::added`]).
    #[non_exhaustive]
    Added {
        /// Its key under the registry's policy.
        key: ModelKey,
        /// The deployment (without a credential when the change comes
        /// from [`Registry::diff`]).
        deployment: Deployment,
        /// Whether the deployment had a credential where the change was
        /// made, which the change does not carry. Serialized as `true`
        /// also for a deployment that holds a credential, since
        /// serialization leaves the credential out.
        #[cfg_attr(feature = "serde", serde(default))]
        credential_withheld: bool,
    },
    /// A deployment to remove ([`Change::removed`]).
    #[non_exhaustive]
    Removed {
        /// Its key.
        key: ModelKey,
    },
    /// A deployment to replace in place ([`Change::updated`]).
    #[non_exhaustive]
    Updated {
        /// Its key.
        key: ModelKey,
        /// The stored deployment the change was computed against (compared
        /// without credentials).
        before: Deployment,
        /// Its replacement; without a credential of its own, it keeps the
        /// stored deployment's.
        after: Deployment,
    },
}

impl Change {
    /// Adds `deployment` under `key`. A change carries no credential: the
    /// deployment's is left out and `credential_withheld` says whether it
    /// had one.
    ///
    /// ```
    /// use modelfleet::{Change, Deployment, IdentityPolicy, Policy, Registry};
    /// let d = Deployment::builder("openai", "gpt-4").credential("env:KEY").build()?;
    /// let change = Change::added(Policy::NAME.key(&d), d);
    /// assert!(matches!(&change, Change::Added { deployment, credential_withheld: true, .. }
    ///     if deployment.credential().is_none()));
    /// let mut reg = Registry::new(Policy::NAME);
    /// reg.apply(&vec![change].into())?;
    /// assert_eq!(reg.len(), 1);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn added(key: ModelKey, deployment: Deployment) -> Self {
        Change::Added {
            key,
            credential_withheld: deployment.credential().is_some(),
            deployment: deployment.without_credential(),
        }
    }

    /// Removes the deployment stored under `key`.
    ///
    /// See [`Fleet::apply`](crate::Fleet::apply) for an example.
    #[must_use]
    pub fn removed(key: ModelKey) -> Self {
        Change::Removed { key }
    }

    /// Replaces `before`, stored under `key`, by `after` in place; `after`
    /// keeps the stored credential when it has none of its own.
    ///
    /// ```
    /// use modelfleet::{Change, Deployment, IdentityPolicy, Policy, Registry};
    /// let v1 = Deployment::builder("openai", "gpt-4").build()?;
    /// let v2 = v1.to_builder().weight(3).build()?;
    /// let mut reg = Registry::new(Policy::NAME);
    /// reg.insert(v1.clone())?;
    /// reg.apply(&vec![Change::updated(Policy::NAME.key(&v1), v1, v2)].into())?;
    /// assert_eq!(reg.iter().next().unwrap().1.weight(), 3);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    #[must_use]
    pub fn updated(key: ModelKey, before: Deployment, after: Deployment) -> Self {
        Change::Updated { key, before, after }
    }

    /// The key the change is about.
    ///
    /// ```
    /// use modelfleet::Change;
    /// let c = Change::removed("openai/gpt-4@".parse()?);
    /// assert_eq!(c.key().to_string(), "openai/gpt-4@");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn key(&self) -> &ModelKey {
        match self {
            Change::Added { key, .. } | Change::Removed { key } | Change::Updated { key, .. } => {
                key
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { key, .. } => write!(f, "+ {key}"),
            Change::Removed { key } => write!(f, "- {key}"),
            Change::Updated { key, .. } => write!(f, "~ {key}"),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn is_false(b: &bool) -> bool {
            !*b
        }
        #[derive(serde::Serialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        enum Out<'a> {
            Added {
                key: &'a ModelKey,
                deployment: &'a Deployment,
                #[serde(skip_serializing_if = "is_false")]
                credential_withheld: bool,
            },
            Removed {
                key: &'a ModelKey,
            },
            Updated {
                key: &'a ModelKey,
                before: &'a Deployment,
                after: &'a Deployment,
            },
        }
        match self {
            Change::Added {
                key,
                deployment,
                credential_withheld,
            } => Out::Added {
                key,
                deployment,
                // The credential is left out of the deployment: say so.
                credential_withheld: *credential_withheld || deployment.credential().is_some(),
            },
            Change::Removed { key } => Out::Removed { key },
            Change::Updated { key, before, after } => Out::Updated { key, before, after },
        }
        .serialize(s)
    }
}

/// An ordered list of [`Change`]s, from [`Registry::diff`], applied by
/// [`Registry::apply`]. Serializes as a list, so a control plane can ship or
/// store it. Deployments serialize without their credential references;
/// see [`Change`] for what happens to credentials.
///
/// ```
/// use modelfleet::{Change, Deployment, Policy, Registry};
///
/// let mut a = Registry::new(Policy::NAME_ENDPOINT);
/// a.insert(Deployment::builder("openai", "gpt-4").endpoint("http://a/v1").build()?)?;
/// let mut b = a.clone();
/// b.insert(Deployment::builder("openai", "gpt-4").endpoint("http://b/v1").build()?)?;
/// let changes = a.diff(&b);
/// assert_eq!(changes.to_string(), "+ openai/gpt-4@http://b/v1");
/// assert_eq!(changes.len(), 1);
/// assert!(!changes.is_empty());
/// assert!(matches!(changes.as_slice(), [Change::Added { .. }]));
/// assert_eq!(changes.iter().map(|c| c.key().to_string()).collect::<Vec<_>>(), ["openai/gpt-4@http://b/v1"]);
/// assert!(b.diff(&b).is_empty());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Changes(Vec<Change>);

impl Changes {
    /// The changes, in the order they apply.
    ///
    /// See [`Changes`] for an example.
    pub fn as_slice(&self) -> &[Change] {
        &self.0
    }

    /// The number of changes.
    ///
    /// See [`Changes`] for an example.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no change.
    ///
    /// See [`Changes`] for an example.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The changes, in the order they apply.
    ///
    /// See [`Changes`] for an example.
    pub fn iter(&self) -> std::slice::Iter<'_, Change> {
        self.0.iter()
    }
}

impl From<Vec<Change>> for Changes {
    fn from(changes: Vec<Change>) -> Self {
        Self(changes)
    }
}

impl FromIterator<Change> for Changes {
    fn from_iter<I: IntoIterator<Item = Change>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl IntoIterator for Changes {
    type Item = Change;
    type IntoIter = std::vec::IntoIter<Change>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Changes {
    type Item = &'a Change;
    type IntoIter = std::slice::Iter<'a, Change>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Changes {
    /// One change per line: `+ key`, `- key`, `~ key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl<P: IdentityPolicy> Registry<P> {
    /// The changes that turn `self` into `other` (both under the same policy).
    ///
    /// In order: removals (keys only in `self`), then in-place updates of
    /// kept keys whose deployment differs, then additions at the end (keys
    /// only in `other`, in `other`'s order). Kept keys whose order differs
    /// between the two are removed and added again at their place, so that
    /// `self.apply(&self.diff(&other))` equals `other`, order included, but
    /// for credentials (below). Registries equal but for credentials give no
    /// change.
    ///
    /// Credentials are neither compared nor carried (see [`Change`]): a
    /// difference in credentials alone is no change, and after `apply` each
    /// kept key has the receiver's credential and each added key none.
    ///
    /// Computes in **O(n + m)** time.
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry};
    ///
    /// let node = |ip: &str, w| Deployment::builder("openai", "gpt-4")
    ///     .endpoint(&format!("http://{ip}/v1")).weight(w).build();
    /// let mut a = Registry::new(Policy::NAME_ENDPOINT);
    /// a.insert(node("10.0.0.1", 1)?)?;
    /// a.insert(node("10.0.0.2", 1)?)?;
    /// let mut b = a.clone();
    /// b.remove(&"openai/gpt-4@http://10.0.0.1/v1".parse()?);
    /// b.upsert(node("10.0.0.2", 0)?); // drained
    /// b.insert(node("10.0.0.3", 1)?)?;
    ///
    /// let changes = a.diff(&b);
    /// assert_eq!(changes.to_string(), "- openai/gpt-4@http://10.0.0.1/v1\n~ openai/gpt-4@http://10.0.0.2/v1\n+ openai/gpt-4@http://10.0.0.3/v1");
    /// a.apply(&changes)?;
    /// assert_eq!(a, b);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn diff(&self, other: &Registry<P>) -> Changes {
        let mut removed = Vec::new();
        let mut updated = Vec::new();
        let mut moved: indexmap::IndexSet<&ModelKey, FixedState> = Default::default();
        let others: Vec<_> = other.shared_entries().collect();
        let mut next = 0;
        for (shared_key, before) in self.shared_entries() {
            let key: &ModelKey = shared_key;
            // Registries cloned from one another share their keys: when
            // `other` holds this very key at the next position, no lookup.
            let after = match others.get(next) {
                Some((k, d)) if Arc::ptr_eq(k, shared_key) => *d,
                _ => match other.get_shared(key) {
                    Some(d) => d,
                    None => {
                        removed.push(Change::Removed { key: key.clone() });
                        continue;
                    }
                },
            };
            // Additions go to the end, so the keys kept in place must be a
            // prefix of `other`, in `self`'s order; a kept key that breaks
            // this is moved (removed, then added again at its place).
            if others
                .get(next)
                .is_some_and(|(k, _)| Arc::ptr_eq(k, shared_key) || ***k == *key)
            {
                next += 1;
                // Registries cloned from one another share unchanged
                // deployments: a pointer comparison settles most of them.
                if !Arc::ptr_eq(before, after) && !before.eq_except_credential(after) {
                    updated.push(Change::Updated {
                        key: key.clone(),
                        before: before.without_credential(),
                        after: after.without_credential(),
                    });
                }
            } else {
                moved.insert(key);
            }
        }
        let mut changes = removed;
        changes.extend(moved.iter().map(|k| Change::Removed { key: (*k).clone() }));
        changes.extend(updated);
        for (key, d) in &others[next..] {
            changes.push(Change::Added {
                key: (***key).clone(),
                deployment: d.without_credential(),
                credential_withheld: d.credential().is_some(),
            });
        }
        Changes(changes)
    }

    /// Applies `changes` in order, all or nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChange`], naming the change's index and key, if an
    /// added key is already stored, a removed or updated key is missing, an
    /// update's `before` is not the stored deployment (the changes were
    /// computed against another version), or a deployment's key under this
    /// registry's policy is not the change's key. The registry is then
    /// unchanged.
    ///
    /// Credentials follow the rule in [`Change`]: `before` is compared with
    /// the stored deployment without credentials; an update without a
    /// credential of its own keeps the stored one, and so does a key removed
    /// and then added again, without one, in the same list.
    ///
    /// See [`diff`](Self::diff) for an example.
    pub fn apply(&mut self, changes: &Changes) -> Result<(), Error>
    where
        P: Clone,
    {
        let mut next = self.clone();
        // Credentials of the keys removed so far: a key removed and added
        // again (a move) keeps its credential, as a kept key does.
        let mut removed: indexmap::IndexMap<ModelKey, Credential, FixedState> = Default::default();
        for (index, change) in changes.iter().enumerate() {
            let fail = |problem: &'static str| Error::InvalidChange {
                index,
                key: Box::new(change.key().clone()),
                problem,
            };
            match change {
                Change::Added {
                    key, deployment, ..
                } => {
                    if next.key_of(deployment) != *key {
                        return Err(fail("the deployment's key under this policy differs"));
                    }
                    if next.contains(key) {
                        return Err(fail("the key is already stored"));
                    }
                    let kept = removed.swap_remove(key);
                    next.upsert(deployment.clone().or_credential(kept.as_ref()));
                }
                Change::Removed { key } => match next.remove(key) {
                    None => return Err(fail("no deployment is stored under the key")),
                    Some(d) => match d.credential() {
                        Some(c) => {
                            removed.insert(key.clone(), c.clone());
                        }
                        None => {
                            removed.swap_remove(key);
                        }
                    },
                },
                Change::Updated { key, before, after } => {
                    if next.key_of(after) != *key {
                        return Err(fail("the deployment's key under this policy differs"));
                    }
                    match next.get(key) {
                        None => return Err(fail("no deployment is stored under the key")),
                        Some(stored) if !stored.eq_except_credential(before) => {
                            return Err(fail(
                                "the stored deployment is not the one the change was computed against",
                            ));
                        }
                        Some(stored) => {
                            let after = after.clone().or_credential(stored.credential());
                            next.upsert(after);
                        }
                    }
                }
            }
        }
        *self = next;
        Ok(())
    }
}
