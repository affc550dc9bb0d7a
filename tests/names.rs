//! Names that print alike are equal: invisible characters (format
//! characters, bidi controls, line and paragraph separators) are refused in
//! every name-like field, with the field and the character; label values
//! refuse those that reorder or break lines.

use modelfleet::{Deployment, Error, Field, ModelKey, NameProblem};
use proptest::prelude::*;
use proptest::sample::select;

mod support;

use support::refused_in_names;

/// What a label value may not hold beyond control characters.
const REFUSED_IN_VALUES: &[char] = &[
    '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{2028}', '\u{2029}',
];

/// A valid name: letters of several scripts, digits, punctuation, emoji
/// (no joiners), inner spaces; never white space at either end.
fn valid_name() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => prop::char::ranges(vec!['a'..='z', 'A'..='Z', '0'..='9'].into()),
        2 => select(vec!['-', '.', '_', ':', '/', '@', '#', '~', ' ']),
        2 => select(vec!['é', 'ß', 'Ж', '中', '模', 'ة', 'א', 'ก', 'ñ', '🦀', '🚀', '😀']),
    ];
    (
        select(vec!['g', 'Ω', '中', '🦀', '7']),
        prop::collection::vec(ch, 0..40),
        select(vec!['x', 'é', '型', '1']),
    )
        .prop_map(|(first, mid, last)| {
            let mut s = String::from(first);
            s.extend(mid);
            s.push(last);
            s
        })
}

/// `name` with `c` put before its `at`-th character (or at its end).
fn insert(name: &str, at: usize, c: char) -> (String, usize) {
    let byte = name
        .char_indices()
        .nth(at % (name.chars().count() + 1))
        .map_or(name.len(), |(b, _)| b);
    let mut s = name.to_owned();
    s.insert(byte, c);
    (s, byte)
}

/// Builds a deployment with `bad` in `field` and every other field valid.
fn build_with(field: Field, bad: &str) -> Result<Deployment, Error> {
    let (provider, model) = match field {
        Field::Provider => (bad, "m"),
        Field::Model => ("p", bad),
        _ => ("p", "m"),
    };
    let mut b = Deployment::builder(provider, model);
    b = match field {
        Field::UpstreamModel => b.upstream_model(bad),
        Field::Tag => b.tag(bad),
        Field::LabelKey => b.label(bad, "v"),
        Field::LabelValue => b.label("k", bad),
        _ => b,
    };
    b.build()
}

const NAME_FIELDS: &[Field] = &[
    Field::Provider,
    Field::Model,
    Field::UpstreamModel,
    Field::Tag,
    Field::LabelKey,
];

#[track_caller]
fn assert_refused(field: Field, input: &str, at: usize, c: char) {
    let err = build_with(field, input).expect_err(&format!("{field}: {input:?}"));
    match &err {
        Error::InvalidName {
            field: f, problem, ..
        } => {
            assert_eq!(*f, field, "{input:?}");
            assert!(
                matches!(
                    problem,
                    NameProblem::InvisibleCharacter { input: i, at: a, character, .. }
                        if i == input && *a == at && *character == c
                ),
                "{field}: {input:?}: {problem:?}"
            );
        }
        other => panic!("{field}: {input:?}: expected InvalidName, got {other:?}"),
    }
    // The message names the code point and never prints it raw.
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains(&format!("U+{:04X}", u32::from(c))),
        "{shown}"
    );
    assert!(!shown.contains(c), "{shown:?} prints {c:?} raw");
}

#[test]
fn the_reported_look_alikes_are_refused_everywhere() {
    for c in [
        '\u{200B}',
        '\u{200D}',
        '\u{FEFF}',
        '\u{202E}',
        '\u{2028}',
        '\u{180E}',
        '\u{E0041}',
    ] {
        let input = format!("gpt{c}-4");
        for &field in NAME_FIELDS {
            assert_refused(field, &input, 3, c);
        }
    }
    let err = build_with(Field::Model, "gpt\u{202E}4-").unwrap_err();
    assert_eq!(
        err.to_string(),
        "deployment p/gpt\\u{202e}4-: model \"gpt\\u{202e}4-\" holds an invisible character, \
         U+202E, at byte 3"
    );
    // Key text goes through the same rules.
    let err = "openai/gpt\u{200B}4".parse::<ModelKey>().unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
    assert!(
        ModelKey::new("openai", "gpt-4")
            .unwrap()
            .with_tag(Some("eu\u{2066}"))
            .is_err()
    );
}

#[test]
fn label_values_refuse_bidi_controls_and_separators_only() {
    for &c in REFUSED_IN_VALUES {
        assert_refused(Field::LabelValue, &format!("team{c}a"), 4, c);
    }
    // Free text may join emoji and hyphenate softly.
    for ok in ["", "👩\u{200D}💻", "co\u{00AD}op", "a b"] {
        build_with(Field::LabelValue, ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
}

#[test]
fn names_are_compared_as_given_not_normalized() {
    let nfc = ModelKey::new("p", "caf\u{E9}").unwrap();
    let nfd = ModelKey::new("p", "cafe\u{301}").unwrap();
    assert_ne!(nfc, nfd);
}

proptest! {
    #[test]
    fn every_invisible_character_anywhere_is_refused(
        name in valid_name(),
        c in select(refused_in_names()),
        at: usize,
        field in select(NAME_FIELDS.to_vec()),
    ) {
        let (input, byte) = insert(&name, at, c);
        assert_refused(field, &input, byte, c);
    }

    #[test]
    fn ordinary_non_ascii_names_are_accepted(
        name in valid_name(),
        field in select(NAME_FIELDS.to_vec()),
    ) {
        prop_assert!(build_with(field, &name).is_ok(), "{:?}", name);
        prop_assert!(build_with(Field::LabelValue, &name).is_ok(), "{:?}", name);
    }

    #[test]
    fn label_values_refuse_bidi_and_separators_anywhere(
        name in valid_name(),
        c in select(REFUSED_IN_VALUES.to_vec()),
        at: usize,
    ) {
        let (input, byte) = insert(&name, at, c);
        assert_refused(Field::LabelValue, &input, byte, c);
    }
}
