//! Picking a deployment per request.

use std::fmt;

/// How many candidates each filter removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Removed {
    /// Removed for another provider.
    pub provider: u32,
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider removed {}", self.provider)
    }
}
