//! Names (provider, model, tag, label keys and values): what is accepted,
//! and [`NameProblem`], what is wrong with one that is not.

/// The longest provider, model, upstream model, tag or label name accepted, in bytes.
///
/// Names are identities and log fields, not payloads; 256 bytes holds every
/// real model id (the longest Hugging Face repository ids are under 100).
pub const MAX_NAME_LEN: usize = 256;

/// What is wrong with a name.
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
    SurroundingWhitespace {
        /// The offending input.
        input: String,
    },
    /// The name holds a control character.
    #[error("{input:?} holds a control character at byte {at}")]
    ControlCharacter {
        /// The offending input (control characters escaped).
        input: String,
        /// Byte offset of the first control character.
        at: usize,
    },
    /// The name is longer than [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
    #[error("is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The input's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Checks a name: not empty or blank, no surrounding white space, no control
/// characters, at most [`MAX_NAME_LEN`] bytes.
pub(crate) fn check_name(s: &str) -> Result<(), NameProblem> {
    if s.trim().is_empty() {
        return Err(NameProblem::Empty);
    }
    check_free_text(s)?;
    if s.trim() != s {
        return Err(NameProblem::SurroundingWhitespace {
            input: s.to_owned(),
        });
    }
    Ok(())
}

/// Checks text that may be empty (label values): no control characters, at
/// most [`MAX_NAME_LEN`] bytes.
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
    Ok(())
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
    fn describe_escapes_and_cuts() {
        assert_eq!(describe("a\nb", ""), "a\\nb/<empty>");
        assert!(describe(&"y".repeat(200), "m").contains('…'));
    }
}
