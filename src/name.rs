//! Names (provider, model, tag, label keys and values): what is accepted,
//! and [`NameProblem`], what is wrong with one that is not.
//!
//! A name is an identity, so two names that print alike must be equal: no
//! control characters, no format characters (General_Category Cf: zero-width
//! spaces and joiners, bidi controls, the BOM, tag characters) and no line or
//! paragraph separators (U+2028, U+2029). Label values are free text; they
//! may not hold control characters, bidi controls or line separators either,
//! which reorder or break the lines they are printed on.
//!
//! Names are compared as given: they are not Unicode-normalized, so `é`
//! written as one code point (NFC) and as `e` with a combining accent (NFD)
//! are two names. Write names in one form (NFC is what most systems send).

/// The longest provider, model, upstream model, tag or label name accepted, in bytes.
///
/// Names are identities and log fields, not payloads; 256 bytes holds every
/// real model id (the longest Hugging Face repository ids are under 100).
pub const MAX_NAME_LEN: usize = 256;

/// What is wrong with a name.
///
/// See the [rules](crate::NameProblem#rules) below; names are compared as
/// given, not Unicode-normalized.
///
/// # Rules
///
/// A name (provider, model, upstream model, tag, label key) is not empty or
/// blank, has no surrounding white space, holds no control character, no
/// format character (General_Category Cf, Unicode 16.0) and no line or
/// paragraph separator, and is at most [`MAX_NAME_LEN`](crate::MAX_NAME_LEN)
/// bytes. A label value may be empty; it holds no control character, bidi
/// control or line or paragraph separator, and is at most as long.
///
/// ```
/// use modelfleet::NameProblem;
/// assert_eq!(NameProblem::Empty.to_string(), "is empty");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is empty or only white space.
    #[error("is empty")]
    Empty,
    /// The name starts or ends with white space.
    #[error("{input:?} starts or ends with white space")]
    #[non_exhaustive]
    SurroundingWhitespace {
        /// The offending input.
        input: String,
    },
    /// The name holds a control character.
    #[error("{input:?} holds a control character at byte {at}")]
    #[non_exhaustive]
    ControlCharacter {
        /// The offending input (control characters escaped).
        input: String,
        /// Byte offset of the first control character.
        at: usize,
    },
    /// The name holds an invisible character that changes how text around it
    /// prints or compares: a format character (General_Category Cf, such as
    /// U+200B zero width space, U+200D zero width joiner, U+202E right-to-left
    /// override, U+FEFF, tag characters), or a line or paragraph separator
    /// (U+2028, U+2029). In a label value, only bidi controls and the two
    /// separators are refused.
    #[error("{input:?} holds an invisible character, U+{:04X}, at byte {at}", u32::from(*.character))]
    #[non_exhaustive]
    InvisibleCharacter {
        /// The offending input (printed escaped by the message).
        input: String,
        /// Byte offset of the first such character.
        at: usize,
        /// The character.
        character: char,
    },
    /// The name is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
    #[error("is {len} bytes long; the limit is {max}")]
    #[non_exhaustive]
    TooLong {
        /// The input's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Checks a name: not empty or blank, no surrounding white space, no control,
/// format or separator characters, at most [`MAX_NAME_LEN`] bytes.
pub(crate) fn check_name(s: &str) -> Result<(), NameProblem> {
    if s.trim().is_empty() {
        return Err(NameProblem::Empty);
    }
    check_free_text(s)?;
    invisible(s, |c| is_format(c) || is_separator(c))?;
    if s.trim() != s {
        return Err(NameProblem::SurroundingWhitespace {
            input: s.to_owned(),
        });
    }
    Ok(())
}

/// Checks text that may be empty (label values): no control characters, bidi
/// controls or line separators, at most [`MAX_NAME_LEN`] bytes.
pub(crate) fn check_free_text(s: &str) -> Result<(), NameProblem> {
    if s.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong {
            len: s.len(),
            max: MAX_NAME_LEN,
        });
    }
    if let Some((at, _)) = s.char_indices().find(|(_, c)| c.is_control()) {
        // Kept as it is: the message quotes it with `{:?}`, which escapes
        // control characters once (escaping here too would show `\\n`).
        return Err(NameProblem::ControlCharacter {
            input: s.to_owned(),
            at,
        });
    }
    invisible(s, |c| is_bidi_control(c) || is_separator(c))
}

/// The first character of `s` that `refused` picks, as a problem.
fn invisible(s: &str, refused: impl Fn(char) -> bool) -> Result<(), NameProblem> {
    match s.char_indices().find(|&(_, c)| refused(c)) {
        Some((at, character)) => Err(NameProblem::InvisibleCharacter {
            input: s.to_owned(),
            at,
            character,
        }),
        None => Ok(()),
    }
}

/// The code points of General_Category Cf (format characters) in Unicode
/// 16.0 (unchanged since 15.0), as sorted, disjoint, inclusive ranges.
///
/// The standard library has no category lookup, and the table is small and
/// changes rarely; the tests check it against its known members.
const FORMAT: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Whether `c` is a format character (General_Category Cf). O(log 21).
fn is_format(c: char) -> bool {
    FORMAT
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `c` is a bidi control (Bidi_Control: ALM, LRM, RLM, the
/// embeddings, overrides and isolates), all of them format characters.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` is the line or paragraph separator (Zl, Zp).
fn is_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// How a deployment is named in error messages before it has a key:
/// `provider/model`, control characters escaped, long inputs cut.
pub(crate) fn describe(provider: &str, model: &str) -> String {
    fn part(s: &str) -> String {
        let cut: String = s.chars().take(80).collect();
        let mut out = cut.escape_debug().to_string();
        if cut.len() < s.len() {
            out.push('…');
        }
        if out.is_empty() {
            out.push_str("<empty>");
        }
        out
    }
    format!("{}/{}", part(provider), part(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["gpt-4", "meta-llama/Llama-3-8B", "llama3:8b", "模型", "a b"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(check_name(""), Err(NameProblem::Empty));
        assert_eq!(check_name(" \t"), Err(NameProblem::Empty));
        assert!(matches!(
            check_name(" gpt"),
            Err(NameProblem::SurroundingWhitespace { .. })
        ));
        assert!(matches!(
            check_name("g\u{7}pt"),
            Err(NameProblem::ControlCharacter { at: 1, .. })
        ));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            check_name(&long),
            Err(NameProblem::TooLong { .. })
        ));
        assert_eq!(check_name(&"x".repeat(MAX_NAME_LEN)), Ok(()));
    }

    #[test]
    fn format_table_is_sorted_disjoint_and_has_every_cf_of_unicode_16() {
        assert!(FORMAT.iter().all(|&(lo, hi)| lo <= hi));
        assert!(FORMAT.windows(2).all(|w| w[0].1 < w[1].0));
        let count: u32 = FORMAT
            .iter()
            .map(|&(lo, hi)| u32::from(hi) - u32::from(lo) + 1)
            .sum();
        assert_eq!(count, 170, "General_Category Cf has 170 code points");
        for c in [
            '\u{00AD}',
            '\u{0600}',
            '\u{0605}',
            '\u{061C}',
            '\u{06DD}',
            '\u{070F}',
            '\u{0890}',
            '\u{0891}',
            '\u{08E2}',
            '\u{180E}',
            '\u{200B}',
            '\u{200D}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2060}',
            '\u{2064}',
            '\u{2066}',
            '\u{206F}',
            '\u{FEFF}',
            '\u{FFF9}',
            '\u{FFFB}',
            '\u{110BD}',
            '\u{110CD}',
            '\u{13430}',
            '\u{1343F}',
            '\u{1BCA0}',
            '\u{1BCA3}',
            '\u{1D173}',
            '\u{1D17A}',
            '\u{E0001}',
            '\u{E0020}',
            '\u{E007F}',
        ] {
            assert!(is_format(c), "U+{:04X} is Cf", u32::from(c));
        }
        // Neighbours of each range that are not format characters.
        for c in [
            '\u{00AC}',
            '\u{00AE}',
            '\u{05FF}',
            '\u{0606}',
            '\u{061B}',
            '\u{061D}',
            '\u{06DC}',
            '\u{06DE}',
            '\u{070E}',
            '\u{0710}',
            '\u{088F}',
            '\u{0892}',
            '\u{08E1}',
            '\u{08E3}',
            '\u{180D}',
            '\u{180F}',
            '\u{200A}',
            '\u{2010}',
            '\u{2029}',
            '\u{202F}',
            '\u{205F}',
            '\u{2065}',
            '\u{2070}',
            '\u{FEFE}',
            '\u{FF00}',
            '\u{FFF8}',
            '\u{FFFC}',
            '\u{110BC}',
            '\u{110BE}',
            '\u{110CE}',
            '\u{1342F}',
            '\u{13440}',
            '\u{1BC9F}',
            '\u{1BCA4}',
            '\u{1D172}',
            '\u{1D17B}',
            '\u{E0000}',
            '\u{E0002}',
            '\u{E001F}',
            '\u{E0080}',
            'a',
            ' ',
            'é',
            '中',
            '🦀',
        ] {
            assert!(!is_format(c), "U+{:04X} is not Cf", u32::from(c));
        }
    }

    #[test]
    fn bidi_controls_are_format_characters() {
        for c in ('\0'..='\u{FFFF}').filter(|&c| is_bidi_control(c)) {
            assert!(is_format(c), "U+{:04X}", u32::from(c));
        }
        assert_eq!(
            ('\0'..='\u{FFFF}').filter(|&c| is_bidi_control(c)).count(),
            12
        );
    }

    #[test]
    fn describe_escapes_and_cuts() {
        assert_eq!(describe("a\nb", ""), "a\\nb/<empty>");
        assert_eq!(describe("a\u{202E}b", "\u{2028}"), "a\\u{202e}b/\\u{2028}");
        assert!(describe(&"y".repeat(200), "m").contains('…'));
    }
}
