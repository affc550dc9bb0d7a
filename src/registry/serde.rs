//! A registry serializes as its policy and its deployments in order; keys
//! are derived again on the way in, and duplicates are rejected.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Registry;
use crate::deployment::Deployment;
use crate::hash::FixedState;
use crate::key::ModelKey;
use crate::policy::IdentityPolicy;

impl<P: Serialize> Serialize for Registry<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Registry", 2)?;
        st.serialize_field("policy", &self.policy)?;
        st.serialize_field("deployments", &Deployments(&self.entries))?;
        st.end()
    }
}

struct Deployments<'a>(&'a IndexMap<Arc<ModelKey>, Arc<Deployment>, FixedState>);

impl Serialize for Deployments<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values().map(|d| &**d))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr<P> {
    policy: P,
    deployments: Vec<Deployment>,
}

impl<'de, P: Deserialize<'de> + IdentityPolicy> Deserialize<'de> for Registry<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = Repr::<P>::deserialize(d)?;
        let mut reg = Registry::with_capacity(repr.policy, repr.deployments.len());
        for (i, d) in repr.deployments.into_iter().enumerate() {
            reg.insert(d)
                .map_err(|e| D::Error::custom(format_args!("deployments[{i}]: {e}")))?;
        }
        Ok(reg)
    }
}
