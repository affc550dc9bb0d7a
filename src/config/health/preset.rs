//! The health presets a fleet file starts from.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::health::HealthPolicy;
use crate::names::names;

/// A health preset (see [`health`](crate::health#presets)).
///
/// ```
/// use modelfleet::config::HealthPreset;
/// use modelfleet::health::HealthPolicy;
///
/// assert_eq!(HealthPreset::Dify.policy(), HealthPolicy::dify());
/// assert_eq!(HealthPreset::Litellm.to_string(), "litellm");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HealthPreset {
    /// [`HealthPolicy::default`].
    #[default]
    Default,
    /// [`HealthPolicy::dify`].
    Dify,
    /// [`HealthPolicy::litellm`].
    Litellm,
    /// [`HealthPolicy::disabled`].
    Disabled,
}

names! {
    HealthPreset;
    /// Every preset, in the order [`HealthConfig::from_policy`] tries them.
    ///
    /// [`HealthConfig::from_policy`]: super::HealthConfig::from_policy
    pub(crate) const ALL;
    /// The preset's name, as a fleet file writes it.
    pub(crate) fn as_str;
    {
        HealthPreset::Default => "default" = HealthPreset::Default,
        HealthPreset::Dify => "dify" = HealthPreset::Dify,
        HealthPreset::Litellm => "litellm" = HealthPreset::Litellm,
        HealthPreset::Disabled => "disabled" = HealthPreset::Disabled,
    }
}

impl HealthPreset {
    /// The preset's policy.
    ///
    /// ```
    /// use modelfleet::config::HealthPreset;
    /// assert!(HealthPreset::Disabled.policy().ejection.is_none());
    /// assert!(HealthPreset::Default.policy().ejection.is_some());
    /// ```
    pub fn policy(self) -> HealthPolicy {
        match self {
            HealthPreset::Default => HealthPolicy::default(),
            HealthPreset::Dify => HealthPolicy::dify(),
            HealthPreset::Litellm => HealthPolicy::litellm(),
            HealthPreset::Disabled => HealthPolicy::disabled(),
        }
    }
}

impl fmt::Display for HealthPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::HealthPreset;

    /// Serde derives its names from `rename_all`; they must be the table's.
    #[test]
    fn serde_names_are_the_table() {
        for (&preset, &name) in HealthPreset::ALL.iter().zip(HealthPreset::NAMES) {
            assert_eq!(serde_json::to_value(preset).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<HealthPreset>(name.into()).unwrap(),
                preset
            );
            assert_eq!(preset.to_string(), name);
        }
    }
}
