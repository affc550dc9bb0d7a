//! The health presets a fleet file starts from.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::health::HealthPolicy;

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

impl HealthPreset {
    pub(crate) const ALL: [HealthPreset; 4] = [
        HealthPreset::Default,
        HealthPreset::Dify,
        HealthPreset::Litellm,
        HealthPreset::Disabled,
    ];

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
        f.write_str(match self {
            HealthPreset::Default => "default",
            HealthPreset::Dify => "dify",
            HealthPreset::Litellm => "litellm",
            HealthPreset::Disabled => "disabled",
        })
    }
}
