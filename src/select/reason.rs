//! [`Reason`]: why a deployment is not a candidate for a request; and
//! [`Removed`], how many each reason removed.

use std::fmt;

use crate::names::names;

/// Declares [`Reason`] from one table: each line gives a variant's docs,
/// the variant, its short name, its `Display` text and whether it is about
/// the `request` or the deployment's `state` (see [`Reason::is_transient`]).
/// The table's order is the order the filters run in.
macro_rules! reasons {
    (
        $(#[$attr:meta])*
        pub enum Reason {
            $($(#[$doc:meta])* $variant:ident => $name:literal, $text:literal, $about:ident;)+
        }
    ) => {
        $(#[$attr])*
        pub enum Reason {
            $($(#[$doc])* $variant,)+
        }

        names! {
            Reason;
            /// Every reason, in the order the filters run.
            ///
            /// ```
            /// use modelfleet::select::Reason;
            /// assert_eq!(Reason::ALL[0], Reason::Drained);
            /// assert!(Reason::ALL.contains(&Reason::TpmLimit));
            /// ```
            pub const ALL;
            /// The reason's short name (`drained`, `provider`, …).
            ///
            /// ```
            /// assert_eq!(modelfleet::select::Reason::NotNewest.as_str(), "not_newest");
            /// ```
            pub fn as_str;
            {
                $(Reason::$variant => $name = Reason::$variant),+
            }
        }

        impl Reason {
            /// Whether the reason is the deployment's state (health or a limit)
            /// rather than what the request asked for: such candidates may come
            /// back by themselves.
            ///
            /// ```
            /// use modelfleet::select::Reason;
            /// assert!(Reason::Cooling.is_transient());
            /// assert!(!Reason::Labels.is_transient());
            /// ```
            pub const fn is_transient(self) -> bool {
                match self {
                    $(Reason::$variant => reasons!(@transient $about),)+
                }
            }
        }

        impl fmt::Display for Reason {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $(Reason::$variant => $text,)+
                })
            }
        }
    };
    (@transient request) => { false };
    (@transient state) => { true };
}

reasons! {
    /// Why a deployment is not a candidate for a request.
    ///
    /// ```
    /// use modelfleet::select::Reason;
    /// assert_eq!(Reason::ContextWindow.to_string(), "context window smaller than the request's tokens");
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    #[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
    #[non_exhaustive]
    pub enum Reason {
        /// Weight 0: drained.
        Drained => "drained", "drained (weight 0)", request;
        /// Another provider than the requested one.
        Provider => "provider", "another provider", request;
        /// A required label is missing or has another value.
        Labels => "labels", "a required label is missing or differs", request;
        /// The tag does not match the requested tags.
        Tags => "tags", "tag does not match", request;
        /// No version, or one outside the requested range.
        Version => "version", "version outside the requested range", request;
        /// A matching version, but not the newest one among the candidates.
        NotNewest => "not_newest", "not the newest matching version", request;
        /// A known context window smaller than the request's token estimate.
        ContextWindow => "context_window", "context window smaller than the request's tokens", request;
        /// Excluded by the request (already tried).
        Excluded => "excluded", "excluded by the request", request;
        /// Cooling down after failures (see [`health`](crate::health)).
        Cooling => "cooling", "cooling down", state;
        /// Ejected as an outlier.
        Ejected => "ejected", "ejected as an outlier", state;
        /// At its `max_in_flight` limit.
        InFlightLimit => "max_in_flight", "at its max_in_flight limit", state;
        /// At its `rpm` limit over the rolling minute.
        RpmLimit => "rpm", "at its requests-per-minute limit", state;
        /// At its `tpm` limit over the rolling minute, or the request's
        /// [token estimate](crate::Request::tokens) would take it past:
        /// skipped when the tokens used plus the estimate (at least 1)
        /// exceed the limit.
        TpmLimit => "tpm", "at its tokens-per-minute limit, or the request's tokens would exceed it", state;
    }
}

/// How many candidates each filter removed (each candidate counted once,
/// under the first filter it failed, in the order of [`Reason::ALL`]).
///
/// ```
/// use modelfleet::select::{Reason, Removed};
/// let mut r = Removed::default();
/// r.add(Reason::Labels);
/// r.add(Reason::Labels);
/// r.add(Reason::Drained);
/// assert_eq!(r.count(Reason::Labels), 2);
/// assert_eq!(r.total(), 3);
/// assert_eq!(r.iter().collect::<Vec<_>>(), [(Reason::Drained, 1), (Reason::Labels, 2)]);
/// assert_eq!(r.to_string(), "drained removed 1, labels removed 2");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Removed {
    counts: [u32; Reason::ALL.len()],
}

impl Removed {
    /// Counts one more candidate removed for `reason`.
    ///
    /// See [`Removed`] for an example.
    pub fn add(&mut self, reason: Reason) {
        let i = reason.index();
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    /// How many candidates `reason` removed.
    ///
    /// See [`Removed`] for an example.
    pub fn count(&self, reason: Reason) -> u32 {
        self.counts[reason.index()]
    }

    /// All candidates removed.
    ///
    /// See [`Removed`] for an example.
    pub fn total(&self) -> u32 {
        self.counts.iter().fold(0, |t, &n| t.saturating_add(n))
    }

    /// The non-zero counts, in filter order.
    ///
    /// See [`Removed`] for an example.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u32)> + '_ {
        Reason::ALL
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (*r, n))
    }
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (r, n) in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{} removed {n}", r.as_str())?;
        }
        if first {
            f.write_str("no candidates")?;
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Removed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(r, n)| (r.as_str(), n)))
    }
}
