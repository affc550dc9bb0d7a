//! Endpoint identity: spellings of one endpoint give one key under
//! `name+endpoint`; endpoints that carry secrets (userinfo, query, fragment)
//! or are not http(s) are rejected, and the error never echoes the secret.

use std::error::Error as _;

use modelfleet::{
    Deployment, EndpointProblem, Error, Field, IdentityPolicy, MAX_ENDPOINT_LEN, ModelKey, Policy,
};
use proptest::prelude::*;
use proptest::sample::select;

/// The key of a deployment on `endpoint` under `name+endpoint`.
#[track_caller]
fn key(endpoint: &str) -> ModelKey {
    let d = Deployment::builder("openai-api-compatible", "gpt-4")
        .endpoint(endpoint)
        .build()
        .unwrap_or_else(|e| panic!("{endpoint:?} rejected: {e}"));
    let k = Policy::NAME_ENDPOINT.key(&d);
    // Every way into a key agrees: the builder from text, the builder from a
    // parsed `Url`, and `ModelKey::with_endpoint`.
    let url = url::Url::parse(endpoint).unwrap();
    let from_url = Deployment::builder("openai-api-compatible", "gpt-4")
        .endpoint_url(url.clone())
        .build()
        .unwrap();
    assert_eq!(
        Policy::NAME_ENDPOINT.key(&from_url),
        k,
        "endpoint_url({endpoint:?})"
    );
    let direct = ModelKey::new("openai-api-compatible", "gpt-4")
        .unwrap()
        .with_endpoint(Some(&url))
        .unwrap();
    assert_eq!(direct, k, "with_endpoint({endpoint:?})");
    // The normal form is a fixed point and its text parses back.
    let text = k.to_string();
    assert_eq!(text.parse::<ModelKey>().unwrap(), k, "{text:?}");
    k
}

#[track_caller]
fn rejection(endpoint: &str) -> (EndpointProblem, Error) {
    let err = Deployment::builder("openai", "gpt-4")
        .endpoint(endpoint)
        .build()
        .expect_err(endpoint);
    assert_eq!(err.field(), Some(Field::Endpoint), "{endpoint:?}");
    match &err {
        Error::InvalidEndpoint {
            problem,
            deployment,
            ..
        } => {
            assert_eq!(deployment, "openai/gpt-4");
            (problem.clone(), err)
        }
        other => panic!("{endpoint:?}: expected InvalidEndpoint, got {other:?}"),
    }
}

/// Everything an error shows: its message, its `Debug`, and its sources.
fn everything_shown(err: &Error) -> String {
    let mut shown = format!("{err} {err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        shown.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    shown
}

/// Groups of spellings of one endpoint, with the normal form first.
const EQUIVALENT: &[&[&str]] = &[
    &[
        "http://example.com/v1",
        // scheme and host case
        "HTTP://EXAMPLE.COM/v1",
        "hTtP://eXaMpLe.CoM/v1",
        // default port
        "http://example.com:80/v1",
        // trailing slash
        "http://example.com/v1/",
        "http://example.com/v1//",
        // percent-encoded unreserved characters, either hex case
        "http://example.com/%76%31",
        "http://example.com/%76%31/",
        // dot segments
        "http://example.com/a/../v1",
        "http://example.com/./v1",
        "http://example.com/v1/.",
        "http://example.com/a/%2e%2E/v1",
        // all at once
        "Http://Example.COM:80/./x/../%76%31/",
    ],
    &[
        "https://example.com/",
        "https://example.com",
        "https://example.com:443",
        "HTTPS://EXAMPLE.COM:443/",
        "https://example.com/.",
        "https://example.com/a/..",
    ],
    &[
        "http://example.com:8080/v1",
        "http://EXAMPLE.com:8080/v1/",
        "http://example.com:08080/v1",
    ],
    &[
        "http://h/~user/a-b.c_d",
        "http://h/%7euser/a-b.c_d",
        "http://h/%7Euser/%61%2D%62%2E%63%5F%64",
        "http://h/%7E%75%73%65%72/a%2db%2ec%5fd/",
    ],
    &["http://h/a%2Fb", "http://h/a%2fb", "http://h/a%2Fb/"],
    &[
        "http://h/caf%C3%A9",
        "http://h/café",
        "http://h/caf%c3%a9",
        "http://h/caf%C3%a9/",
    ],
    &[
        "http://h/%25A",
        // A `%` that starts no escape stands for itself.
        "http://h/%%41",
        "http://h/%%41/",
    ],
    &[
        "http://[::1]:8080/v1",
        "http://[0:0:0:0:0:0:0:1]:8080/v1",
        "http://[::0:1]:8080/v1/",
        "http://[0000::0001]:8080/v1",
        "HTTP://[::1]:8080/v1",
    ],
    &[
        "http://[2001:db8::1]/",
        "http://[2001:DB8::1]",
        "http://[2001:0db8:0000:0000:0000:0000:0000:0001]:80/",
        "http://[2001:db8:0:0::1]/",
    ],
    &[
        "http://127.0.0.1/v1",
        "http://127.1/v1",
        "http://0x7f.0.0.1/v1",
        "http://2130706433/v1",
        "http://127.0.0.1:80/v1/",
    ],
    &[
        "http://xn--bcher-kva.example/v1",
        "http://bücher.example/v1",
        "http://BÜCHER.EXAMPLE/v1",
        "http://XN--BCHER-KVA.example/v1",
        "http://bücher.example:80/v1/",
    ],
    &[
        "https://xn--fsqu00a.xn--0zwm56d/",
        "https://例子.测试/",
        "https://例子.测试:443",
    ],
];

#[test]
fn equivalent_spellings_give_one_key() {
    let mut seen: Vec<ModelKey> = Vec::new();
    for group in EQUIVALENT {
        let normal = group[0];
        let want = key(normal);
        assert_eq!(
            want.to_string(),
            format!("openai-api-compatible/gpt-4@{normal}"),
            "the first spelling of each group is the normal form"
        );
        for spelling in *group {
            assert_eq!(key(spelling), want, "{spelling:?} vs {normal:?}");
        }
        // Different groups are different endpoints.
        assert!(
            !seen.contains(&want),
            "{normal:?} collides with another group"
        );
        seen.push(want);
    }
}

/// A fully qualified name (trailing dot) is the same host; a name with an
/// empty label is not a host at all.
#[test]
fn trailing_dot_is_the_same_host() {
    assert_eq!(key("http://h.example./v1"), key("http://h.example/v1"));
    assert_eq!(
        key("HTTP://H.EXAMPLE.:80/v1/").to_string(),
        "openai-api-compatible/gpt-4@http://h.example/v1"
    );
    assert_eq!(key("http://h./"), key("http://h/"));
    // IP literals are already canonical.
    assert_eq!(key("http://127.0.0.1./"), key("http://127.0.0.1/"));
    for bad in [
        "http://h../",
        "http://./",
        "http://../v1",
        "http://a..b/",
        "https://.h/",
    ] {
        let (problem, err) = rejection(bad);
        assert_eq!(problem, EndpointProblem::EmptyHostLabel, "{bad:?}");
        assert_eq!(
            err.to_string(),
            "deployment openai/gpt-4: endpoint host has an empty label (two dots in a row, or a dot at the start)"
        );
    }
}

#[test]
fn different_endpoints_stay_different() {
    for (a, b) in [
        ("http://h/v1", "https://h/v1"),
        ("http://h/v1", "http://h:8080/v1"),
        ("https://h/", "https://h:80/"),
        ("http://h/v1", "http://h/V1"),
        ("http://h/v1", "http://g/v1"),
        ("http://h/a/b", "http://h/a%2Fb"),
        ("http://h/a/b", "http://h/a//b"),
        ("http://h/a@b", "http://h/a%40b"),
        ("http://h/%2A", "http://h/*"),
        // A lone `%` is not the start of an escape formed by decoding.
        ("http://h/%2%41", "http://h/%2A"),
        ("http://h/%%34%31", "http://h/%41"),
        ("http://[::1]/", "http://[::2]/"),
        ("http://127.0.0.1/", "http://127.0.0.2/"),
    ] {
        assert_ne!(key(a), key(b), "{a:?} and {b:?}");
    }
}

#[test]
fn no_endpoint_is_its_own_identity() {
    let none = Deployment::builder("openai-api-compatible", "gpt-4")
        .build()
        .unwrap();
    let k = Policy::NAME_ENDPOINT.key(&none);
    assert_eq!(k.to_string(), "openai-api-compatible/gpt-4@");
    assert_ne!(k, key("http://example.com/"));
}

/// One endpoint as parts, and random ways to spell it.
#[derive(Clone, Debug)]
struct Endpoint {
    https: bool,
    host: usize,
    port: Option<u16>,
    /// Path segments; each is a list of (char, reserved?) where reserved
    /// characters are always written percent-encoded.
    segments: Vec<Vec<(char, bool)>>,
}

/// Each host as its canonical form and other spellings.
const HOSTS: &[&[&str]] = &[
    &[
        "example.com",
        "EXAMPLE.COM",
        "Example.Com",
        "example.com.",
        "EXAMPLE.COM.",
    ],
    &[
        "127.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "0177.0.0.1",
    ],
    &["[::1]", "[0:0:0:0:0:0:0:1]", "[::0:1]", "[0000::1]"],
    &["[2001:db8::a]", "[2001:DB8::A]", "[2001:db8:0:0:0:0:0:a]"],
    &[
        "xn--bcher-kva.example",
        "bücher.example",
        "BÜCHER.example",
        "XN--BCHER-KVA.EXAMPLE",
        "bücher.example.",
        "xn--bcher-kva.example.",
    ],
];

/// A tiny deterministic generator for spelling choices (SplitMix64).
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[(self.next() % of.len() as u64) as usize]
    }
}

fn random_case(s: &str, c: &mut Choices) -> String {
    s.chars()
        .map(|ch| {
            if c.coin() {
                ch.to_uppercase().collect::<String>()
            } else {
                ch.to_lowercase().collect::<String>()
            }
        })
        .collect()
}

fn percent(ch: char, c: &mut Choices) -> String {
    let mut buf = [0; 4];
    ch.encode_utf8(&mut buf)
        .bytes()
        .map(|b| {
            let hex = format!("%{b:02X}");
            if c.coin() { hex.to_lowercase() } else { hex }
        })
        .collect()
}

impl Endpoint {
    fn spell(&self, seed: u64) -> String {
        let c = &mut Choices(seed);
        let scheme = random_case(if self.https { "https" } else { "http" }, c);
        let host = c.pick(HOSTS[self.host]);
        let host = if host.is_ascii() {
            random_case(host, c)
        } else {
            host.to_owned()
        };
        let default_port = if self.https { 443 } else { 80 };
        let port = match self.port {
            Some(p) => format!(":{p}"),
            None if c.coin() => format!(":{default_port}"),
            None => String::new(),
        };
        let mut path = String::new();
        for seg in &self.segments {
            // Dot segments that resolve to nothing.
            match c.next() % 4 {
                0 => path.push_str("/."),
                1 => path.push_str("/zz/.."),
                2 => path.push_str("/%2e"),
                _ => {}
            }
            path.push('/');
            for &(ch, reserved) in seg {
                if reserved || c.coin() {
                    path.push_str(&percent(ch, c));
                } else {
                    path.push(ch);
                }
            }
        }
        if c.coin() || path.is_empty() {
            path.push('/');
        }
        format!("{scheme}://{host}{port}{path}")
    }

    /// The spelling the normalizer should produce.
    fn normal(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let mut path = String::new();
        for seg in &self.segments {
            path.push('/');
            for &(ch, reserved) in seg {
                if reserved || !ch.is_ascii() {
                    let mut buf = [0; 4];
                    for b in ch.encode_utf8(&mut buf).bytes() {
                        path.push_str(&format!("%{b:02X}"));
                    }
                } else {
                    path.push(ch);
                }
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        format!("{scheme}://{}{port}{path}", HOSTS[self.host][0])
    }
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    // Unreserved characters may be spelled either way; reserved ones
    // (and `%` itself) always encoded; non-ASCII either way. Each segment
    // starts with a letter so that it is never a dot segment.
    let ch = prop_oneof![
        4 => prop::char::ranges(vec!['a'..='z', 'A'..='Z', '0'..='9'].into())
            .prop_map(|c| (c, false)),
        2 => select(vec!['-', '.', '_', '~']).prop_map(|c| (c, false)),
        1 => select(vec!['/', '?', '#', '%', '@', ':', '&', '=', '+', ' ']).prop_map(|c| (c, true)),
        1 => select(vec!['é', '模', '🦀']).prop_map(|c| (c, false)),
    ];
    let segment = (prop::char::range('a', 'z'), prop::collection::vec(ch, 0..6)).prop_map(
        |(first, mut rest)| {
            rest.insert(0, (first, false));
            rest
        },
    );
    (
        any::<bool>(),
        0..HOSTS.len(),
        prop::option::of(select(vec![1u16, 8080, 65535, 80, 443])),
        prop::collection::vec(segment, 0..4),
    )
        .prop_map(|(https, host, port, segments)| {
            // An explicit default port is no port.
            let default_port = if https { 443 } else { 80 };
            let port = port.filter(|&p| p != default_port);
            Endpoint {
                https,
                host,
                port,
                segments,
            }
        })
}

proptest! {
    #[test]
    fn random_equivalent_spellings_give_one_key(e in endpoint(), a: u64, b: u64) {
        let (sa, sb) = (e.spell(a), e.spell(b));
        let (ka, kb) = (key(&sa), key(&sb));
        prop_assert_eq!(&ka, &kb, "{:?} and {:?}", sa, sb);
        let normal = e.normal();
        prop_assert_eq!(ka.to_string(), format!("openai-api-compatible/gpt-4@{normal}"));
        prop_assert_eq!(key(&normal), ka);
    }

    /// Normalizing is idempotent for any path the URL parser accepts.
    #[test]
    fn normal_form_is_a_fixed_point(path in "[a-zA-Z0-9%./~@:!$&'()*+,;= é-]{0,24}") {
        let input = format!("http://h/{path}");
        if let Ok(d) = Deployment::builder("p", "m").endpoint(&input).build() {
            let once = d.endpoint().unwrap().as_str().to_owned();
            let twice = Deployment::builder("p", "m").endpoint(&once).build().unwrap();
            prop_assert_eq!(twice.endpoint().unwrap().as_str(), once.as_str());
        }
    }
}

#[test]
fn rejected_schemes() {
    for (input, scheme) in [
        ("ftp://example.com/v1", "ftp"),
        ("FTP://example.com/v1", "ftp"),
        ("file:///etc/passwd", "file"),
        ("ws://example.com/v1", "ws"),
        ("wss://example.com/v1", "wss"),
        ("mailto:ops@example.com", "mailto"),
        ("data:text/plain,hi", "data"),
        ("unix:/var/run/llm.sock", "unix"),
    ] {
        let (problem, err) = rejection(input);
        assert!(
            matches!(
                &problem,
                EndpointProblem::Scheme { scheme: Some(s), len, .. }
                    if s == scheme && *len == scheme.len()
            ),
            "{input:?}: {problem:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "deployment openai/gpt-4: endpoint scheme {scheme:?} is not supported; use http or https"
            )
        );
    }
}

#[test]
fn rejected_userinfo_query_fragment() {
    for (input, want) in [
        ("http://user@h/v1", EndpointProblem::Userinfo),
        ("http://user:hunter2@h/v1", EndpointProblem::Userinfo),
        ("http://:hunter2@h/v1", EndpointProblem::Userinfo),
        ("https://user:@h/v1", EndpointProblem::Userinfo),
        ("http://h/v1?", EndpointProblem::Query),
        ("http://h/v1?api_key=hunter2", EndpointProblem::Query),
        ("http://h/?hunter2", EndpointProblem::Query),
        ("http://h/v1#", EndpointProblem::Fragment),
        ("http://h/v1#hunter2", EndpointProblem::Fragment),
    ] {
        let (problem, err) = rejection(input);
        assert_eq!(problem, want, "{input:?}");
        assert!(!everything_shown(&err).contains("hunter2"), "{err:?}");
    }
}

#[test]
fn rejected_unparsable() {
    for (input, shown) in [
        ("not a url", "9 characters, starting with a letter"),
        ("", "empty"),
        ("http://", "7 characters, starting with a letter"),
        (
            "http://exa mple.com/",
            "20 characters, starting with a letter",
        ),
        ("http://h:99999/", "15 characters, starting with a letter"),
        ("//h/v1", "6 characters, starting with a symbol"),
        (
            "http://u:hunter2@[::1/x?k=v",
            "27 characters, starting with a letter",
        ),
        ("hunter2@h/v1", "12 characters, starting with a letter"),
        (
            "sk-proj-hunter2hunter2",
            "22 characters, starting with a letter",
        ),
        ("  sk-hunter2", "12 characters, starting with white space"),
        ("4hunter2", "8 characters, starting with a digit"),
        ("é-hunter2", "9 characters, starting with a letter"),
    ] {
        let (problem, err) = rejection(input);
        assert!(
            matches!(problem, EndpointProblem::Unparsable { .. }),
            "{input:?}: {problem:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "deployment openai/gpt-4: endpoint is not a valid URL ({shown}); \
                 the value is not shown, it may be a secret"
            ),
        );
        assert!(err.source().is_some(), "the url error is the source");
        assert!(!everything_shown(&err).contains("hunter2"), "{err:?}");
    }
}

/// A secret pasted into the endpoint field: `sk-…:…` parses as a URL with
/// the scheme `sk-…`, which is named only when too short to be a secret.
#[test]
fn long_schemes_are_not_quoted() {
    let (problem, err) = rejection("sk-hunter2hunter2:abc");
    assert!(
        matches!(
            problem,
            EndpointProblem::Scheme {
                scheme: None,
                len: 17,
                ..
            }
        ),
        "{problem:?}"
    );
    assert_eq!(
        err.to_string(),
        "deployment openai/gpt-4: endpoint scheme of 17 characters (not shown, it may be a secret) \
         is not supported; use http or https"
    );
    let (problem, _) = rejection("gopher7://h/");
    assert!(
        matches!(&problem, EndpointProblem::Scheme { scheme: Some(s), len: 7, .. } if s == "gopher7"),
        "{problem:?}"
    );
}

/// Inputs that are not endpoints: pasted keys, random text, near-URLs.
fn not_an_endpoint() -> impl Strategy<Value = String> {
    prop_oneof![
        "sk-proj-[A-Za-z0-9_-]{20,60}",
        "sk-[A-Za-z0-9]{8,40}:[A-Za-z0-9]{1,12}",
        "sk-ant-api03-[A-Za-z0-9_-]{20,40}",
        "[A-Za-z0-9+/=_-]{8,64}",
        "\\PC{8,40}",
        "https?://[A-Za-z0-9]{8,20} [A-Za-z0-9]{1,8}",
        "https?://h:[0-9]{6,9}/[A-Za-z0-9]{8,16}",
        "[a-z][a-z0-9+.-]{7,20}:[A-Za-z0-9]{0,20}",
    ]
}

/// Every run of 8 characters of `s`.
fn windows(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.windows(8).map(|w| w.iter().collect()).collect()
}

proptest! {
    #[test]
    fn rejected_endpoints_never_echo_the_input(input in not_an_endpoint()) {
        let Err(err) = Deployment::builder("openai", "gpt-4").endpoint(&input).build() else {
            // The generators aim at rejected inputs; an accepted one has
            // nothing to hide.
            return Ok(());
        };
        prop_assert_eq!(err.field(), Some(Field::Endpoint));
        let shown = everything_shown(&err);
        for w in windows(&input) {
            prop_assert!(!shown.contains(&w), "{:?} leaks in {}", w, shown);
        }
        let key_text = format!("openai/gpt-4@{input}");
        let err = key_text.parse::<ModelKey>().expect_err(&key_text);
        let shown = everything_shown(&err);
        for w in windows(&input) {
            prop_assert!(!shown.contains(&w), "{:?} leaks in {}", w, shown);
        }
    }
}

#[test]
fn rejected_too_long_even_after_normalizing() {
    let at_limit = format!(
        "http://h/{}",
        "a".repeat(MAX_ENDPOINT_LEN - "http://h/".len())
    );
    assert_eq!(
        key(&at_limit).endpoint().map(|u| u.as_str().len()),
        modelfleet::Discriminator::Present(MAX_ENDPOINT_LEN)
    );
    let (problem, _) = rejection(&format!("{at_limit}a"));
    assert!(
        matches!(
            problem,
            EndpointProblem::TooLong { len, max, .. }
                if len == MAX_ENDPOINT_LEN + 1 && max == MAX_ENDPOINT_LEN
        ),
        "{problem:?}"
    );
    // 1,009 bytes of input, 6,009 once `é` is percent-encoded: the normal
    // form must fit too, or the key's text would not parse back.
    let grows = format!("http://h/{}", "é".repeat(500));
    let (problem, err) = rejection(&grows);
    assert!(
        matches!(
            problem,
            EndpointProblem::TooLong {
                max: MAX_ENDPOINT_LEN,
                ..
            }
        ),
        "{problem:?}"
    );
    assert_eq!(
        err.to_string(),
        "deployment openai/gpt-4: endpoint is 3009 bytes long; the limit is 2048"
    );
}

/// Userinfo, query and fragment rejected through every entry point.
#[test]
fn every_entry_point_rejects_secrets() {
    let url = url::Url::parse("http://u:hunter2@h/v1?k=hunter2#hunter2").unwrap();
    let err = Deployment::builder("openai", "gpt-4")
        .endpoint_url(url.clone())
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidEndpoint {
            problem: EndpointProblem::Userinfo,
            ..
        }
    ));
    let err = ModelKey::new("openai", "gpt-4")
        .unwrap()
        .with_endpoint(Some(&url))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidEndpoint {
            problem: EndpointProblem::Userinfo,
            ..
        }
    ));
    assert!(!everything_shown(&err).contains("hunter2"));
    let err = "openai/gpt-4@http://u:hunter2@h/v1?k=hunter2"
        .parse::<ModelKey>()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
    assert!(!everything_shown(&err).contains("hunter2"), "{err}");
}

/// Secrets in any position of a rejected endpoint never reach the error.
fn leaky() -> impl Strategy<Value = (String, String)> {
    let secret = "[A-Za-z0-9]{6,12}".prop_map(|s| format!("S3CR3T{s}"));
    let template = select(vec![
        "http://{s}@h/v1",
        "http://user:{s}@h/v1",
        "https://{s}:{s}@h:8443/v1",
        "https://h/v1?api_key={s}",
        "https://h/v1?{s}",
        "http://h/v1#{s}",
        "http://h/v1?a=1#{s}",
        "ftp://u:{s}@h/",
        "ws://h/?token={s}",
        "http://u:{s}@[::1/x",
        "http://u:{s}@h:99999/",
        "http://[::1?k={s}",
        "http://h:99999/?k={s}",
        "http://h:99999/#{s}",
        "{s}@h",
        "u:{s}@h/v1",
        "http://u:{s}@exa mple.com/",
        "HTTP://U:{s}@H/",
    ]);
    (template, secret).prop_map(|(t, s)| (t.replace("{s}", &s), s))
}

proptest! {
    #[test]
    fn errors_never_echo_secrets((input, secret) in leaky()) {
        let err = Deployment::builder("openai", "gpt-4")
            .endpoint(&input)
            .build()
            .expect_err(&input);
        prop_assert_eq!(err.field(), Some(Field::Endpoint));
        let shown = everything_shown(&err);
        prop_assert!(!shown.contains(&secret), "{} leaks in {}", secret, shown);

        let key_text = format!("openai/gpt-4@{input}");
        let err = key_text.parse::<ModelKey>().expect_err(&key_text);
        let shown = everything_shown(&err);
        prop_assert!(!shown.contains(&secret), "{} leaks in {}", secret, shown);
    }
}

/// `base_url` is the endpoint with one trailing slash, so joining a
/// relative path keeps the endpoint's whole path; `endpoint` stays the
/// key's form without it.
#[test]
fn base_url_keeps_the_path_when_joined() {
    for (given, endpoint, base) in [
        (
            "http://10.0.0.1:8000/v1",
            "http://10.0.0.1:8000/v1",
            "http://10.0.0.1:8000/v1/",
        ),
        ("http://h/v1/", "http://h/v1", "http://h/v1/"),
        (
            "https://h/openai/deployments/gpt4//",
            "https://h/openai/deployments/gpt4",
            "https://h/openai/deployments/gpt4/",
        ),
        ("http://h", "http://h/", "http://h/"),
        ("http://h/", "http://h/", "http://h/"),
    ] {
        let d = Deployment::builder("p", "m")
            .endpoint(given)
            .build()
            .unwrap();
        let url = d.base_url().unwrap();
        assert_eq!(url.as_str(), base, "{given}");
        assert_eq!(
            url.join("chat/completions").unwrap().as_str(),
            format!("{base}chat/completions"),
            "{given}"
        );
        assert_eq!(d.endpoint().unwrap().as_str(), endpoint, "{given}");
    }
    assert_eq!(
        Deployment::builder("p", "m").build().unwrap().base_url(),
        None
    );
}

proptest! {
    /// For every endpoint spelling: `base_url` is the normal form plus `/`
    /// (the root stays `/`), a join keeps the whole path, and `endpoint`
    /// is unchanged by it.
    #[test]
    fn base_url_is_the_endpoint_with_a_slash(e in endpoint(), seed: u64) {
        let d = Deployment::builder("p", "m").endpoint(&e.spell(seed)).build().unwrap();
        let normal = e.normal();
        let base = d.base_url().unwrap();
        let expected = if normal.ends_with('/') { normal.clone() } else { format!("{normal}/") };
        prop_assert_eq!(base.as_str(), expected.as_str());
        let joined = base.join("chat/completions").unwrap();
        prop_assert_eq!(joined.as_str(), format!("{expected}chat/completions"));
        prop_assert_eq!(d.endpoint().unwrap().as_str(), normal.as_str());
    }
}
