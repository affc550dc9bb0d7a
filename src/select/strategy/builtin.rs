//! [`BuiltinStrategy`]: the macro that declares the built-in strategies
//! from one table (the table itself is in `strategy/mod.rs`), and the
//! impls that do not depend on the table.
//!
//! Each line of the table names a strategy's module and type (which is
//! also its variant), its name, its default settings and its row of the
//! docs' table. From it come the `mod` and `pub use` of the built-in, the
//! enum, its `From` conversions, its static dispatch of [`Strategy`], each
//! type's `NAME` (what its [`Strategy::name`] returns) and, through
//! `names!`, `ALL`, `as_str`, the parser and the "expected one of" list of
//! its error.

use std::fmt;

use super::{BuiltinStrategy, Strategy};

/// Declares every built-in strategy from one table: each line gives the
/// strategy's module and type (the type is also its variant), its name, its
/// default settings, and the "picks" and "cost" cells of its row in the
/// docs' table. It expands to the `mod` and `pub use` of each built-in and
/// to [`BuiltinStrategy`] with its conversions and dispatch.
macro_rules! builtin_strategies {
    (
        $(#[$head:meta])*
        table {
            $($module:ident::$ty:ident => $name:literal = $default:expr,
                picks $picks:literal, cost $cost:literal;)+
        }
        $(#[$tail:meta])*
    ) => {
        $(
            mod $module;
            pub use $module::$ty;
        )+

        $(#[$head])*
        #[doc = ""]
        #[doc = "| name | picks | cost per pick (no filters / filters) |"]
        #[doc = "|---|---|---|"]
        $(#[doc = concat!("| `", $name, "` | ", $picks, " | ", $cost, " |")])+
        #[doc = ""]
        $(#[$tail])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum BuiltinStrategy {
            $(
                #[doc = concat!("[`", stringify!($ty), "`].")]
                $ty($ty),
            )+
        }

        $crate::names::names! {
            BuiltinStrategy;
            /// Every built-in strategy with its default settings, in table order.
            pub(crate) const ALL;
            /// The strategy's name.
            pub(crate) fn as_str;
            parse_error(input, expected) => $crate::Error::UnknownStrategy { input, expected };
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
            fn inner(&self) -> &dyn $crate::select::Strategy {
                match self {
                    $(BuiltinStrategy::$ty(s) => s,)+
                }
            }
        }

        impl $crate::select::Strategy for BuiltinStrategy {
            fn choose<'a>(
                &self,
                candidates: &$crate::select::Candidates<'a>,
                ctx: &$crate::select::Context<'_>,
            ) -> Option<$crate::select::Candidate<'a>> {
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

            fn uses_schedule(&self) -> bool {
                self.inner().uses_schedule()
            }

            fn reads_load(&self) -> bool {
                self.inner().reads_load()
            }

            fn weight_source(&self) -> $crate::select::WeightSource {
                self.inner().weight_source()
            }
        }

        #[cfg(test)]
        mod builtin_tests {
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

pub(super) use builtin_strategies;

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
    pub fn all() -> &'static [BuiltinStrategy] {
        Self::ALL
    }
}

impl fmt::Display for BuiltinStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// The serde form (a name, or a table of the name and its settings) is
// written once, with the fleet files' strategy, in `config/strategy.rs`.
