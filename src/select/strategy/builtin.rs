//! [`BuiltinStrategy`]: the built-in strategies, declared by one table.
//!
//! Each line of the table names a strategy's type (which is also its
//! variant), its name and its default settings. From it come the enum, its
//! `From` conversions, its static dispatch of [`Strategy`], each type's
//! `NAME` (what its [`Strategy::name`] returns) and, through [`names!`],
//! `ALL`, `as_str`, the parser and the "expected one of" list of its error.

use std::fmt;

use super::{
    Candidate, Candidates, ConsistentHash, Context, Latency, LeastOutstanding, PowerOfTwo,
    RoundRobin, Strategy, WeightedRandom, WeightedRoundRobin,
};
use crate::Error;
use crate::names::names;

/// Declares `BuiltinStrategy` from `Type => "name" = default settings`
/// lines, with the given docs.
macro_rules! builtin_strategies {
    (
        $(#[$attr:meta])*
        {
            $($ty:ident => $name:literal = $default:expr),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum BuiltinStrategy {
            $(
                #[doc = concat!("[`", stringify!($ty), "`].")]
                $ty($ty),
            )+
        }

        names! {
            BuiltinStrategy;
            /// Every built-in strategy with its default settings, in table order.
            pub(crate) const ALL;
            /// The strategy's name.
            pub(crate) fn as_str;
            parse_error(input, expected) => Error::UnknownStrategy { input, expected };
            {
                $(BuiltinStrategy::$ty(_) => $name = BuiltinStrategy::$ty($default)),+
            }
        }

        $(
            impl $ty {
                /// The strategy's name, from the table of [`BuiltinStrategy`].
                pub(crate) const NAME: &'static str = $name;
            }

            impl From<$ty> for BuiltinStrategy {
                fn from(s: $ty) -> Self {
                    BuiltinStrategy::$ty(s)
                }
            }
        )+

        impl BuiltinStrategy {
            fn inner(&self) -> &dyn Strategy {
                match self {
                    $(BuiltinStrategy::$ty(s) => s,)+
                }
            }
        }

        impl Strategy for BuiltinStrategy {
            fn choose<'a>(
                &self,
                candidates: &Candidates<'a>,
                ctx: &Context<'_>,
            ) -> Option<Candidate<'a>> {
                // Static dispatch for the built-ins.
                match self {
                    $(BuiltinStrategy::$ty(s) => s.choose(candidates, ctx),)+
                }
            }

            fn name(&self) -> &str {
                self.as_str()
            }

            fn uses_ring(&self) -> bool {
                self.inner().uses_ring()
            }

            fn reads_load(&self) -> bool {
                self.inner().reads_load()
            }
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn every_builtin_is_parsed_with_its_default_settings() {
                $(
                    let parsed = BuiltinStrategy::from_name($name);
                    assert_eq!(parsed, Some(BuiltinStrategy::$ty(<$ty>::default())), $name);
                    assert_eq!(parsed.expect($name).inner().name(), $name);
                )+
            }
        }
    };
}

builtin_strategies! {
    /// The built-in strategies, by name.
    ///
    /// | name | picks | cost per pick (no filters / filters) |
    /// |---|---|---|
    /// | `round_robin` | each candidate in turn | O(1) / O(n/64) |
    /// | `weighted_round_robin` | exactly `w_i` of every `Σw` consecutive picks, interleaved | O(1) on average / O(k) |
    /// | `weighted_random` | candidate i with probability `w_i/Σw` | O(1) on average / O(k) |
    /// | `least_outstanding` | fewest picks in flight, ties at random | O(n) |
    /// | `power_of_two` | the less loaded of two random candidates | O(1) / O(n/64) |
    /// | `latency` | lowest latency estimate, within a buffer | O(n) |
    /// | `consistent_hash` | the same deployment for the same affinity key | O(1) / O(1 + skipped points) |
    ///
    /// With filters (or while a member of the tier is cooling, ejected, ramping
    /// up or limited), k is the number of candidates and building the
    /// candidates costs O(n/64), plus one O(k) pass when health, limits,
    /// versions or context windows must be tested; tiers of more than 4,096
    /// members cost O(n) (see the [module docs](crate::select#cost)).
    ///
    /// ```
    /// use modelfleet::select::BuiltinStrategy;
    ///
    /// let s: BuiltinStrategy = "weighted_round_robin".parse()?;
    /// assert_eq!(s.to_string(), "weighted_round_robin");
    /// assert!("fastest".parse::<BuiltinStrategy>().is_err());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    {
        RoundRobin => "round_robin" = RoundRobin,
        WeightedRoundRobin => "weighted_round_robin" = WeightedRoundRobin,
        WeightedRandom => "weighted_random" = WeightedRandom,
        LeastOutstanding => "least_outstanding" = LeastOutstanding,
        PowerOfTwo => "power_of_two" = PowerOfTwo::DEFAULT,
        Latency => "latency" = Latency::DEFAULT,
        ConsistentHash => "consistent_hash" = ConsistentHash::DEFAULT,
    }
}

impl BuiltinStrategy {
    /// Every built-in strategy with its default settings.
    ///
    /// ```
    /// use modelfleet::select::BuiltinStrategy;
    /// let names: Vec<String> = BuiltinStrategy::all().iter().map(|s| s.to_string()).collect();
    /// assert_eq!(names.len(), 7);
    /// assert_eq!(names[0], "round_robin");
    /// assert!(names.contains(&"consistent_hash".to_owned()));
    /// ```
    pub fn all() -> [BuiltinStrategy; Self::ALL.len()] {
        Self::ALL
    }
}

impl fmt::Display for BuiltinStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for BuiltinStrategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for BuiltinStrategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
