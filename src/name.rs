//! Validation of names (provider, model, tag, label keys and values).

use crate::error::NameProblem;

/// The longest provider, model, upstream model, tag or label name accepted, in bytes.
///
/// Names are identities and log fields, not payloads; 256 bytes holds every
/// real model id (the longest Hugging Face repository ids are under 100).
pub const MAX_NAME_LEN: usize = 256;

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
