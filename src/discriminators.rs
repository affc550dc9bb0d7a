//! [`Discriminators`]: which parts beyond provider + model make up an identity.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of key discriminators beyond provider + model.
///
/// ```
/// use modelfleet::Discriminators;
/// let d = Discriminators::ENDPOINT | Discriminators::TAG;
/// assert!(d.contains(Discriminators::TAG));
/// assert!(!d.contains(Discriminators::VERSION));
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Discriminators(pub(crate) u8);

impl Discriminators {
    /// No discriminator: name only.
    pub const NONE: Self = Self(0);
    /// The endpoint URL (none = the provider's default endpoint).
    pub const ENDPOINT: Self = Self(1);
    /// The identity tag.
    pub const TAG: Self = Self(2);
    /// The semantic version.
    pub const VERSION: Self = Self(4);
    /// All three.
    pub const ALL: Self = Self(7);

    /// Whether every discriminator of `other` is in `self`.
    ///
    /// ```
    /// use modelfleet::Discriminators;
    /// assert!(Discriminators::ALL.contains(Discriminators::VERSION));
    /// assert!(Discriminators::TAG.contains(Discriminators::NONE));
    /// ```
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the discriminators, in canonical order.
    pub(crate) fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (Self::ENDPOINT, "endpoint"),
            (Self::TAG, "tag"),
            (Self::VERSION, "version"),
        ]
        .into_iter()
        .filter(move |(d, _)| self.contains(*d))
        .map(|(_, n)| n)
    }
}

impl BitOr for Discriminators {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for Discriminators {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Discriminators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}
