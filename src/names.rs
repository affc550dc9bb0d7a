//! One table per closed set of names.
//!
//! Strategies, failure kinds, loads, health presets and filter reasons each
//! have a fixed set of names that appear in `as_str`, in `FromStr`, in the
//! "expected one of" part of a parse error and in the docs. [`names!`]
//! generates all of them from a single table, so adding a member is one
//! line, and the tests at the end of this file check the docs' copies of
//! each list against its table.

/// Implements, from one `pattern => "name" = value` table:
///
/// - `ALL`: every value, in table order, as a slice so that a new member
///   changes no public type (visibility and docs as given);
/// - `as_str`: the value's name (visibility and docs as given);
/// - `NAMES`, `EXPECTED` (the names joined by `", "`), `index` (the
///   position in `ALL`) and `from_name`;
/// - when a `parse_error` arm is given, `FromStr`, whose error is built by the given closure-like arm from the
///   input (truncated to 100 characters) and `EXPECTED`.
///
/// `pattern` matches the values of one name (`RateLimited { .. }`); `value`
/// is the one that parsing the name gives and that `ALL` lists.
macro_rules! names {
    (
        $ty:ident;
        $(#[$all_attr:meta])* $all_vis:vis const ALL;
        $(#[$str_attr:meta])* $str_vis:vis fn as_str;
        $(parse_error($input:ident, $expected:ident) => $err:expr;)?
        {
            $first_pat:pat => $first_name:literal = $first_value:expr
            $(, $pat:pat => $name:literal = $value:expr)* $(,)?
        }
    ) => {
        impl $ty {
            $(#[$all_attr])*
            $all_vis const ALL: &'static [$ty] = &[$first_value $(, $value)*];

            /// Every name, in the order of `ALL`.
            #[allow(dead_code, reason = "not every table reads its names as a list")]
            pub(crate) const NAMES: &'static [&'static str] = &[$first_name $(, $name)*];

            /// Every name, joined by `", "`: the "expected one of" of a parse error.
            #[allow(dead_code, reason = "not every table parses")]
            pub(crate) const EXPECTED: &'static str = concat!($first_name $(, ", ", $name)*);

            $(#[$str_attr])*
            $str_vis const fn as_str(self) -> &'static str {
                match self {
                    $first_pat => $first_name,
                    $($pat => $name,)*
                }
            }

            /// The value's position in `ALL`.
            #[allow(dead_code, reason = "not every table indexes by value")]
            pub(crate) const fn index(self) -> usize {
                #[allow(unused_assignments, reason = "the last arm's increment")]
                let mut i = 0;
                if matches!(self, $first_pat) {
                    return i;
                }
                $(
                    i += 1;
                    if matches!(self, $pat) {
                        return i;
                    }
                )*
                i
            }

            /// The value named `name`, if any.
            #[allow(dead_code, reason = "not every table parses")]
            pub(crate) fn from_name(name: &str) -> Option<Self> {
                match name {
                    $first_name => Some($first_value),
                    $($name => Some($value),)*
                    _ => None,
                }
            }
        }

        $(
            impl ::std::str::FromStr for $ty {
                type Err = $crate::Error;

                fn from_str(s: &str) -> Result<Self, $crate::Error> {
                    Self::from_name(s).ok_or_else(|| {
                        let $input: String = s.chars().take(100).collect();
                        let $expected: &'static str = Self::EXPECTED;
                        $err
                    })
                }
            }
        )?
    };
}

pub(crate) use names;

/// The docs' copies of each name list agree with its table: the README's
/// strategy table and failure-kind list, the preset lists of the README and
/// of `config`, the presets table of `health` and the loads of
/// `config::StrategyConfig`.
#[cfg(test)]
mod tests {
    use crate::health::FailureKind;
    use crate::select::BuiltinStrategy;

    const README: &str = include_str!("../README.md");

    /// The backquoted words of `text` (`` `a` `` → `a`), in order.
    fn quoted(text: &str) -> Vec<&str> {
        text.split('`').skip(1).step_by(2).collect()
    }

    /// The text from `start` up to the first `end` after it.
    fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
        let from = text
            .find(start)
            .unwrap_or_else(|| panic!("{start:?} not found"))
            + start.len();
        let len = text[from..]
            .find(end)
            .unwrap_or_else(|| panic!("{end:?} not found"));
        &text[from..from + len]
    }

    #[test]
    fn readme_strategy_table_lists_every_builtin_in_table_order() {
        let table = between(README, "| strategy | picks |", "\n\n");
        let names: Vec<&str> = table
            .lines()
            .filter_map(|row| row.strip_prefix("| `"))
            .filter_map(|row| row.split('`').next())
            .collect();
        assert_eq!(names, BuiltinStrategy::NAMES);
    }

    #[test]
    fn readme_failure_kinds_are_the_table() {
        let list = format!("`{}", between(README, "failure kind (`", ")"));
        assert_eq!(quoted(&list), FailureKind::NAMES);
    }

    #[test]
    fn retryable_table_is_the_kind_table_and_the_code() {
        let table = between(
            include_str!("health/kind.rs"),
            "/// | kind | retryable | why |",
            "\n    ///\n",
        );
        let rows: Vec<(&str, &str)> = table
            .lines()
            .filter_map(|row| row.trim_start().strip_prefix("/// | `"))
            .filter_map(|row| {
                let (name, rest) = row.split_once('`')?;
                Some((name, rest.split('|').nth(1)?.trim()))
            })
            .collect();
        let names: Vec<&str> = rows.iter().map(|&(n, _)| n).collect();
        assert_eq!(names, FailureKind::NAMES);
        for (&kind, &(name, retryable)) in FailureKind::ALL.iter().zip(&rows) {
            let yes = if kind.is_retryable() { "yes" } else { "no" };
            assert_eq!(retryable, yes, "{name}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn preset_lists_are_the_table() {
        use crate::config::HealthPreset;
        let names: Vec<&str> = HealthPreset::ALL.iter().map(|p| p.as_str()).collect();
        let readme = between(README, "preset = \"dify\"", "\n");
        let readme: Vec<&str> = readme.split('"').skip(1).step_by(2).collect();
        assert_eq!(readme, names);
        let config = include_str!("config/mod.rs");
        let config: Vec<&str> = quoted(between(config, "starts from a `preset` (", ", see"))
            .into_iter()
            .map(|q| q.trim_matches('"'))
            .collect();
        assert_eq!(config, names);
        let health = between(
            include_str!("health/mod.rs"),
            "| preset | reproduces |",
            "\n//!\n",
        );
        let rows: Vec<&str> = health
            .lines()
            .filter_map(|row| row.strip_prefix("//! | [`HealthPolicy::"))
            .filter_map(|row| row.split('`').next())
            .collect();
        assert_eq!(rows, names);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn load_row_of_the_strategy_settings_is_the_table() {
        let row = between(
            include_str!("config/strategy.rs"),
            "| `load` | `power_of_two` |",
            "\n",
        );
        let loads: Vec<&str> = quoted(row)
            .into_iter()
            .filter(|q| q.starts_with('"'))
            .map(|q| q.trim_matches('"'))
            .collect();
        assert_eq!(loads, crate::select::Load::NAMES);
    }
}
