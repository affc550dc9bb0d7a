//! Property tests of [`ModelKey`]'s text form, ordering and serde.
//!
//! - `parse(display(k)) == k` and `display(parse(s)) == s` for keys with
//!   arbitrary valid names (any character but control characters, including
//!   the separators `/`, `#`, `~`, `@` and the escape `%`), under every
//!   combination of discriminators, each present or absent.
//! - `Eq`, `Ord` and `Hash` agree with each other and with the text form.
//! - serde_json writes a key as its text form and reads it back.
//! - The parser never panics, and whatever it accepts is in canonical form:
//!   it displays back to exactly the input.

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};

use modelfleet::{Deployment, Discriminator, Discriminators, IdentityPolicy, ModelKey, Policy};
use proptest::prelude::*;
use proptest::sample::select;

mod support;

/// The documented name rules: not blank, no control characters, no
/// invisible (format or separator) characters, no surrounding white space,
/// at most `MAX_NAME_LEN` bytes.
fn is_valid_name(s: &str) -> bool {
    let invisible = support::refused_in_names();
    !s.trim().is_empty()
        && s.trim() == s
        && !s.chars().any(char::is_control)
        && !s.chars().any(|c| invisible.contains(&c))
        && s.len() <= modelfleet::MAX_NAME_LEN
}

/// Names made of the characters that matter to the text form, unicode and
/// inner spaces; sometimes anything at all; sometimes close to the length
/// limit. Only valid names come out.
fn name() -> impl Strategy<Value = String> {
    let tricky = prop::collection::vec(
        select(vec![
            "a", "Z", "0", "-", "_", ".", ":", "/", "@", "#", "~", "%", "%2F", "%23", "%7E", "%40",
            "%25", "%zz", " ", "é", "模型", "🦀", "\u{200b}", "+", "?", "=",
        ]),
        1..10,
    )
    .prop_map(|parts| parts.concat());
    let long = (select(vec!["x", "é", "模", "🦀", "/", "%"]), 60usize..=260)
        .prop_map(|(c, n)| c.repeat(n).chars().take(n).collect::<String>())
        .prop_map(|s| {
            // Cut to at most 256 or 257 bytes on a char boundary, to sit on
            // both sides of the limit.
            let mut cut = s;
            while cut.len() > modelfleet::MAX_NAME_LEN + 1 {
                cut.pop();
            }
            cut
        });
    prop_oneof![
        6 => tricky,
        2 => "\\PC{1,40}",
        1 => any::<String>(),
        1 => long,
    ]
    .prop_filter("valid names only", |s| is_valid_name(s))
}

fn version() -> impl Strategy<Value = semver::Version> {
    (
        0u64..3,
        0u64..12,
        0u64..120,
        select(vec!["", "-rc.1", "-alpha", "-0.3.7", "-x-y.Z", "-beta.11"]),
        select(vec!["", "+b5", "+001", "+exp.sha.5114f85", "+x-y"]),
    )
        .prop_map(|(a, b, c, pre, build)| {
            semver::Version::parse(&format!("{a}.{b}.{c}{pre}{build}")).unwrap()
        })
}

/// Endpoint spellings, many of them not in normal form, with arbitrary path
/// characters (including `%`, `@`, `~`, spaces and unicode).
fn endpoint() -> impl Strategy<Value = String> {
    (
        select(vec!["http", "https", "HTTP", "Https"]),
        select(vec![
            "example.com",
            "EXAMPLE.com",
            "10.0.0.1",
            "[::1]",
            "[0:0::1]",
            "bücher.example",
            "xn--bcher-kva.example",
            "localhost",
        ]),
        select(vec!["", ":80", ":443", ":8080", ":0"]),
        prop::collection::vec(
            select(vec![
                "/", "v1", "a", "%7e", "%7E", "%2f", "%41", "%", "%%", "%2", "@", "~", ":", ".",
                "..", " ", "é", "!", "$", "'", "(", ";", "=", "+", ",", "*", "%25", "%34", "%37",
                "%45", "%65", "%2e", "%2E%2E", "//",
            ]),
            0..8,
        ),
    )
        .prop_map(|(scheme, host, port, path)| format!("{scheme}://{host}{port}/{}", path.concat()))
}

fn discriminators() -> impl Strategy<Value = Discriminators> {
    select(Policy::all().to_vec()).prop_map(|p| p.discriminators())
}

/// A key built through the public builder API, together with the same key
/// obtained as a built-in policy's key of a deployment.
fn key() -> impl Strategy<Value = ModelKey> {
    (
        name(),
        name(),
        discriminators(),
        prop::option::of(name()),
        prop::option::of(version()),
        prop::option::of(endpoint()),
    )
        .prop_map(|(provider, model, disc, tag, version, endpoint)| {
            let mut b = Deployment::builder(&provider, &model);
            if let Some(t) = &tag {
                b = b.tag(t);
            }
            if let Some(v) = &version {
                b = b.semver(v.clone());
            }
            if let Some(e) = &endpoint {
                b = b.endpoint(e);
            }
            let d = b.build().expect("generated deployments are valid");
            let from_policy = Policy::new(disc).key(&d);

            let mut k = ModelKey::new(&provider, &model).unwrap();
            if disc.contains(Discriminators::TAG) {
                k = k.with_tag(tag.as_deref()).unwrap();
            }
            if disc.contains(Discriminators::VERSION) {
                k = k.with_version(version);
            }
            if disc.contains(Discriminators::ENDPOINT) {
                let url = endpoint.map(|e| url::Url::parse(&e).unwrap());
                k = k.with_endpoint(url.as_ref()).unwrap();
            }
            assert_eq!(k, from_policy, "builder API and policy disagree");
            assert_eq!(k.discriminators(), disc);
            k
        })
}

/// Keys from small pools, so that equal keys are common.
fn pooled_key() -> impl Strategy<Value = ModelKey> {
    (
        select(vec!["openai", "a/b", "Openai"]),
        select(vec!["gpt-4", "gpt#4", "gpt-4 "]).prop_map(str::trim_end),
        select(vec![0u8, 1, 2, 4, 7]),
        prop::option::of(select(vec!["a", "b"])),
        prop::option::of(select(vec!["1.0.0", "1.0.0+b", "1.0.0-rc.1"])),
        prop::option::of(select(vec![
            "http://h/v1",
            "HTTP://H:80/v1/",
            "http://h/v2",
        ])),
    )
        .prop_map(|(p, m, disc, tag, version, endpoint)| {
            let b = Deployment::builder(p, m);
            let d = support::with_parts(b, endpoint, tag, version)
                .build()
                .unwrap();
            Policy::new(bits(disc)).key(&d)
        })
}

fn bits(b: u8) -> Discriminators {
    let mut d = Discriminators::NONE;
    for (bit, one) in [
        (1, Discriminators::ENDPOINT),
        (2, Discriminators::TAG),
        (4, Discriminators::VERSION),
    ] {
        if b & bit != 0 {
            d |= one;
        }
    }
    d
}

fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

#[track_caller]
fn assert_round_trip(k: &ModelKey) {
    let text = k.to_string();
    let parsed: ModelKey = match text.parse() {
        Ok(p) => p,
        Err(e) => panic!("{text:?} does not parse back: {e}"),
    };
    assert_eq!(&parsed, k, "parse(display(k)) != k for {text:?}");
    assert_eq!(parsed.to_string(), text, "display(parse(s)) != s");
    assert_eq!(ModelKey::try_from(text.as_str()).unwrap(), *k);
    assert_eq!(format!("{k:?}"), format!("ModelKey({text:?})"));
}

#[track_caller]
fn assert_consistent(a: &ModelKey, b: &ModelKey) {
    let eq = a == b;
    assert_eq!(
        eq,
        a.cmp(b) == Ordering::Equal,
        "Eq and Ord disagree: {a:?} {b:?}"
    );
    assert_eq!(
        eq,
        a.to_string() == b.to_string(),
        "Eq and Display disagree: {a:?} {b:?}"
    );
    assert_eq!(a.partial_cmp(b), Some(a.cmp(b)));
    assert_eq!(a.cmp(b), b.cmp(a).reverse(), "Ord is not antisymmetric");
    if eq {
        assert_eq!(hash_of(a), hash_of(b), "equal keys hash differently");
    }
}

proptest! {
    #[test]
    fn name_validation_matches_the_documented_rules(s in prop_oneof![
        "\\PC{0,20}",
        any::<String>(),
        "[ \\ta-z\u{7f}\u{85}\u{a0}]{0,6}",
    ]) {
        prop_assert_eq!(ModelKey::new(&s, "m").is_ok(), is_valid_name(&s), "{:?}", s);
        prop_assert_eq!(ModelKey::new("p", &s).is_ok(), is_valid_name(&s), "{:?}", s);
    }

    #[test]
    fn display_parse_round_trip(k in key()) {
        assert_round_trip(&k);
    }

    #[test]
    fn accessors_survive_the_round_trip(k in key()) {
        let p: ModelKey = k.to_string().parse().unwrap();
        prop_assert_eq!(p.provider(), k.provider());
        prop_assert_eq!(p.model(), k.model());
        prop_assert_eq!(p.tag(), k.tag());
        prop_assert_eq!(p.version(), k.version());
        prop_assert_eq!(p.endpoint(), k.endpoint());
        prop_assert_eq!(p.discriminators(), k.discriminators());
    }

    #[test]
    fn eq_ord_hash_consistent(a in key(), b in key()) {
        assert_consistent(&a, &b);
        assert_consistent(&a, &a.clone());
        let reparsed: ModelKey = a.to_string().parse().unwrap();
        assert_consistent(&a, &reparsed);
        prop_assert_eq!(a.cmp(&reparsed), Ordering::Equal);
    }

    #[test]
    fn eq_ord_hash_consistent_on_colliding_pools(keys in prop::collection::vec(pooled_key(), 1..12)) {
        for a in &keys {
            for b in &keys {
                assert_consistent(a, b);
            }
        }
        // Sorting is total and transitive, and the three notions of
        // "distinct" agree.
        let mut sorted = keys.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            prop_assert!(w[0] <= w[1]);
        }
        let by_ord: BTreeSet<_> = keys.iter().collect();
        let by_hash: HashSet<_> = keys.iter().collect();
        let by_text: HashSet<_> = keys.iter().map(ModelKey::to_string).collect();
        prop_assert_eq!(by_ord.len(), by_hash.len());
        prop_assert_eq!(by_ord.len(), by_text.len());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_json_round_trip_as_a_string(k in key()) {
        let json = serde_json::to_string(&k).unwrap();
        prop_assert_eq!(&json, &serde_json::to_string(&k.to_string()).unwrap());
        let back: ModelKey = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, k);
    }

    /// Arbitrary strings: the parser returns, and anything it accepts is in
    /// canonical form.
    #[test]
    fn parser_never_panics_and_accepts_only_canonical_text(s in prop_oneof![
        any::<String>(),
        "[a-z/#~@%:.0-9A-F +-]{0,24}",
        "[pm]{1,2}/[pm/]{1,3}([#~@][a-z0-9.%#~@]{0,6}){0,4}",
        "p/m(#[a-z%#~@]{0,4})?(~[0-9.+a-z-]{0,8})?(@(https?|ftp)://[a-zA-Z0-9.:@%\\[\\]/?#~-]{0,16})?",
    ]) {
        if let Ok(k) = s.parse::<ModelKey>() {
            prop_assert_eq!(k.to_string(), s.clone(), "accepted a non-canonical spelling");
            assert_round_trip(&k);
        }
    }

    /// Valid texts with one character inserted, deleted or replaced: near
    /// misses are either rejected or still canonical.
    #[test]
    fn near_misses_are_rejected_or_canonical(
        k in key(),
        at in any::<prop::sample::Index>(),
        edit in 0u8..3,
        c in select(vec!['/', '#', '~', '@', '%', ' ', 'a', '2', 'F', '.', '\u{0}', 'é']),
    ) {
        let text = k.to_string();
        let mut chars: Vec<char> = text.chars().collect();
        let i = at.index(chars.len() + 1);
        match edit {
            0 => chars.insert(i, c),
            1 if i < chars.len() => { chars.remove(i); }
            _ if i < chars.len() => chars[i] = c,
            _ => chars.push(c),
        }
        let s: String = chars.into_iter().collect();
        if let Ok(p) = s.parse::<ModelKey>() {
            prop_assert_eq!(p.to_string(), s);
        }
    }
}

#[test]
fn absent_and_not_in_key_are_distinct() {
    let d = Deployment::builder("openai", "gpt-4").build().unwrap();
    let keys: Vec<ModelKey> = Policy::all().iter().map(|p| p.key(&d)).collect();
    let texts: Vec<String> = keys.iter().map(ModelKey::to_string).collect();
    assert_eq!(
        texts,
        [
            "openai/gpt-4",
            "openai/gpt-4@",
            "openai/gpt-4#",
            "openai/gpt-4~",
            "openai/gpt-4#@",
            "openai/gpt-4~@",
            "openai/gpt-4#~",
            "openai/gpt-4#~@",
        ]
    );
    for (i, a) in keys.iter().enumerate() {
        assert_round_trip(a);
        for (j, b) in keys.iter().enumerate() {
            assert_eq!(a == b, i == j);
        }
    }
    assert_eq!(keys[1].endpoint(), Discriminator::Absent);
    assert_eq!(keys[0].endpoint(), Discriminator::NotInKey);
}

#[test]
fn escapes_are_written_once_and_only_uppercase() {
    let k = ModelKey::new("a/b#c~d@e%f", "m#~@%/x")
        .unwrap()
        .with_tag(Some("t#~@%/"))
        .unwrap();
    assert_eq!(
        k.to_string(),
        "a%2Fb%23c%7Ed%40e%25f/m%23%7E%40%25/x#t%23%7E%40%25/"
    );
    assert_round_trip(&k);
    for s in [
        "a%2fb/m", // lowercase hex
        "a/m%2F",  // '/' is not escaped in the model
        "a/m%41",  // not an escape of this part
        "p#x/m",   // raw '#' in the provider
        "p@x/m",   // raw '@' in the provider
        "p~x/m",   // raw '~' in the provider
        "p/m#a#b", // raw '#' in the tag
        "p/m%",    // incomplete escape
        "p/m%2",   // incomplete escape
        "p/m%é9",  // escape cut by a multi-byte char
    ] {
        assert!(
            s.parse::<ModelKey>().is_err(),
            "{s:?} parsed as {:?}",
            s.parse::<ModelKey>()
        );
    }
}
