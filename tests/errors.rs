//! Every bad input gives a typed error, never a panic, with its message
//! pinned word for word: the variant, the field it is about
//! ([`Error::field`]) and the text a user reads.

use modelfleet::{
    CharClass, Deployment, DeploymentBuilder, EndpointProblem, Error, Field, MAX_NAME_LEN,
    ModelKey, NameProblem, Policy, Registry,
};

/// The error `build()` reports.
#[track_caller]
fn build_err(b: DeploymentBuilder) -> Error {
    match b.build() {
        Ok(d) => panic!("expected an error, built {d:?}"),
        Err(e) => e,
    }
}

/// Pins the field and the message of an error.
#[track_caller]
fn pinned(err: &Error, field: Option<Field>, message: &str) {
    assert_eq!(err.field(), field, "field of {err:?}");
    assert_eq!(err.to_string(), message, "message of {err:?}");
}

#[track_caller]
fn name_err(
    b: DeploymentBuilder,
    field: Field,
    problem: impl Fn(&NameProblem) -> bool,
    message: &str,
) {
    let err = build_err(b);
    match &err {
        Error::InvalidName {
            field: f,
            problem: p,
            ..
        } => {
            assert_eq!(*f, field);
            assert!(problem(p), "{p:?}");
        }
        other => panic!("expected InvalidName, got {other:?}"),
    }
    pinned(&err, Some(field), message);
}

fn gpt4() -> DeploymentBuilder {
    Deployment::builder("openai", "gpt-4")
}

#[test]
fn empty_or_blank_names() {
    name_err(
        Deployment::builder("", "gpt-4"),
        Field::Provider,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment <empty>/gpt-4: provider is empty",
    );
    name_err(
        Deployment::builder(" \t ", "gpt-4"),
        Field::Provider,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment  \\t /gpt-4: provider is empty",
    );
    name_err(
        Deployment::builder("openai", ""),
        Field::Model,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment openai/<empty>: model is empty",
    );
    name_err(
        Deployment::builder("openai", "\u{3000}"),
        Field::Model,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment openai/\\u{3000}: model is empty",
    );
    name_err(
        gpt4().tag(""),
        Field::Tag,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment openai/gpt-4: tag is empty",
    );
    name_err(
        gpt4().tag("  "),
        Field::Tag,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment openai/gpt-4: tag is empty",
    );
    name_err(
        gpt4().upstream_model(" "),
        Field::UpstreamModel,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment openai/gpt-4: upstream_model is empty",
    );
}

#[test]
fn surrounding_whitespace() {
    name_err(
        Deployment::builder("openai", " gpt-4"),
        Field::Model,
        |p: &NameProblem| matches!(p, NameProblem::SurroundingWhitespace { input, .. } if input == " gpt-4"),
        "deployment openai/ gpt-4: model \" gpt-4\" starts or ends with white space",
    );
    name_err(
        gpt4().tag("canary\u{a0}"),
        Field::Tag,
        |p: &NameProblem| matches!(p, NameProblem::SurroundingWhitespace { input, .. } if input == "canary\u{a0}"),
        "deployment openai/gpt-4: tag \"canary\\u{a0}\" starts or ends with white space",
    );
}

#[test]
fn control_characters() {
    name_err(
        Deployment::builder("openai", "gpt\n4"),
        Field::Model,
        |p: &NameProblem| matches!(p, NameProblem::ControlCharacter { input, at: 3, .. } if input == "gpt\n4"),
        // Escaped once, in the deployment and in the quoted input.
        "deployment openai/gpt\\n4: model \"gpt\\n4\" holds a control character at byte 3",
    );
    name_err(
        Deployment::builder("open\u{0}ai", "gpt-4"),
        Field::Provider,
        |p: &NameProblem| matches!(p, NameProblem::ControlCharacter { input, at: 4, .. } if input == "open\u{0}ai"),
        "deployment open\\0ai/gpt-4: provider \"open\\0ai\" holds a control character at byte 4",
    );
    name_err(
        gpt4().tag("é\u{7f}"),
        Field::Tag,
        |p: &NameProblem| matches!(p, NameProblem::ControlCharacter { input, at: 2, .. } if input == "é\u{7f}"),
        "deployment openai/gpt-4: tag \"é\\u{7f}\" holds a control character at byte 2",
    );
    name_err(
        gpt4().label("region", "e\tu"),
        Field::LabelValue,
        |p: &NameProblem| matches!(p, NameProblem::ControlCharacter { input, at: 1, .. } if input == "e\tu"),
        "deployment openai/gpt-4: label value \"e\\tu\" holds a control character at byte 1",
    );
}

#[test]
fn over_long_names() {
    assert_eq!(MAX_NAME_LEN, 256);
    // At the limit is fine; one byte over is not.
    gpt4().tag(&"t".repeat(MAX_NAME_LEN)).build().unwrap();
    Deployment::builder("openai", &"é".repeat(MAX_NAME_LEN / 2))
        .build()
        .unwrap();

    let long = "x".repeat(MAX_NAME_LEN + 1);
    name_err(
        Deployment::builder(&long, "gpt-4"),
        Field::Provider,
        |p: &NameProblem| {
            matches!(
                p,
                NameProblem::TooLong {
                    len: 257,
                    max: 256,
                    ..
                }
            )
        },
        &format!(
            "deployment {}…/gpt-4: provider is 257 bytes long; the limit is 256",
            "x".repeat(80)
        ),
    );
    // Bytes, not characters: 129 two-byte characters are 258 bytes.
    name_err(
        Deployment::builder("openai", &"é".repeat(129)),
        Field::Model,
        |p: &NameProblem| {
            matches!(
                p,
                NameProblem::TooLong {
                    len: 258,
                    max: 256,
                    ..
                }
            )
        },
        &format!(
            "deployment openai/{}…: model is 258 bytes long; the limit is 256",
            "é".repeat(80)
        ),
    );
    name_err(
        gpt4().tag(&long),
        Field::Tag,
        |p: &NameProblem| {
            matches!(
                p,
                NameProblem::TooLong {
                    len: 257,
                    max: 256,
                    ..
                }
            )
        },
        "deployment openai/gpt-4: tag is 257 bytes long; the limit is 256",
    );
    name_err(
        gpt4().label(&long, "v"),
        Field::LabelKey,
        |p: &NameProblem| {
            matches!(
                p,
                NameProblem::TooLong {
                    len: 257,
                    max: 256,
                    ..
                }
            )
        },
        "deployment openai/gpt-4: label key is 257 bytes long; the limit is 256",
    );
    name_err(
        gpt4().label("k", &long),
        Field::LabelValue,
        |p: &NameProblem| {
            matches!(
                p,
                NameProblem::TooLong {
                    len: 257,
                    max: 256,
                    ..
                }
            )
        },
        "deployment openai/gpt-4: label value is 257 bytes long; the limit is 256",
    );
}

#[track_caller]
/// An unparsable endpoint of `len` characters that starts with a letter.
fn unparsable(len: usize) -> impl Fn(&EndpointProblem) -> bool {
    move |p| {
        matches!(p, EndpointProblem::Unparsable { len: l, starts_with: Some(CharClass::Letter), .. }
            if *l == len)
    }
}

fn endpoint_err(url: &str, problem: impl Fn(&EndpointProblem) -> bool, message: &str) {
    let err = build_err(gpt4().endpoint(url));
    match &err {
        Error::InvalidEndpoint {
            deployment,
            problem: p,
            ..
        } => {
            assert_eq!(deployment, "openai/gpt-4");
            assert!(problem(p), "{url:?}: {p:?}");
        }
        other => panic!("{url:?}: expected InvalidEndpoint, got {other:?}"),
    }
    pinned(&err, Some(Field::Endpoint), message);
}

#[test]
fn bad_endpoints() {
    endpoint_err(
        "ftp://files.example/v1",
        |p: &EndpointProblem| {
            matches!(
                p,
                EndpointProblem::Scheme { scheme, len: 3, .. } if scheme.as_deref() == Some("ftp")
            )
        },
        "deployment openai/gpt-4: endpoint scheme \"ftp\" is not supported; use http or https",
    );
    endpoint_err(
        "http://admin:hunter2@10.0.0.1/v1",
        |p: &EndpointProblem| matches!(p, EndpointProblem::Userinfo),
        "deployment openai/gpt-4: endpoint carries credentials (user or password); keep secrets out of endpoints",
    );
    endpoint_err(
        "http://admin@10.0.0.1/v1",
        |p: &EndpointProblem| matches!(p, EndpointProblem::Userinfo),
        "deployment openai/gpt-4: endpoint carries credentials (user or password); keep secrets out of endpoints",
    );
    endpoint_err(
        "http://10.0.0.1/v1?api_key=hunter2",
        |p: &EndpointProblem| matches!(p, EndpointProblem::Query),
        "deployment openai/gpt-4: endpoint has a query string; endpoints may not carry one (it often holds secrets)",
    );
    endpoint_err(
        "http://10.0.0.1/v1?",
        |p: &EndpointProblem| matches!(p, EndpointProblem::Query),
        "deployment openai/gpt-4: endpoint has a query string; endpoints may not carry one (it often holds secrets)",
    );
    endpoint_err(
        "http://10.0.0.1/v1#top",
        |p: &EndpointProblem| matches!(p, EndpointProblem::Fragment),
        "deployment openai/gpt-4: endpoint has a fragment (#…); endpoints may not carry one",
    );
    endpoint_err(
        "not a url",
        unparsable(9),
        "deployment openai/gpt-4: endpoint is not a valid URL (9 characters, starting with a letter); \
         the value is not shown, it may be a secret",
    );
    endpoint_err(
        "http://admin:hunter2@[::1/v1?k=hunter2",
        unparsable(38),
        "deployment openai/gpt-4: endpoint is not a valid URL (38 characters, starting with a letter); \
         the value is not shown, it may be a secret",
    );
    let long = format!("http://h/{}", "a".repeat(3000));
    endpoint_err(
        &long,
        |p: &EndpointProblem| {
            matches!(
                p,
                EndpointProblem::TooLong {
                    len: 3009,
                    max: 2048,
                    ..
                }
            )
        },
        "deployment openai/gpt-4: endpoint is 3009 bytes long; the limit is 2048",
    );
}

#[test]
fn bad_versions() {
    for (input, message) in [
        (
            "1.2",
            "deployment openai/gpt-4: version \"1.2\" is not a semantic version",
        ),
        (
            "v1.2.3",
            "deployment openai/gpt-4: version \"v1.2.3\" is not a semantic version",
        ),
        (
            "",
            "deployment openai/gpt-4: version \"\" is not a semantic version",
        ),
        (
            "01.0.0",
            "deployment openai/gpt-4: version \"01.0.0\" is not a semantic version",
        ),
        (
            "1.0.0-",
            "deployment openai/gpt-4: version \"1.0.0-\" is not a semantic version",
        ),
    ] {
        let err = build_err(gpt4().version(input));
        match &err {
            Error::InvalidVersion { input: i, .. } => assert_eq!(i, input),
            other => panic!("{input:?}: expected InvalidVersion, got {other:?}"),
        }
        pinned(&err, Some(Field::Version), message);
        // The semver error is kept as the source.
        assert!(std::error::Error::source(&err).is_some());
    }
}

#[test]
fn bad_labels() {
    name_err(
        gpt4().label("", "eu"),
        Field::LabelKey,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment openai/gpt-4: label key is empty",
    );
    name_err(
        gpt4().labels([("region", "eu"), (" ", "x")]),
        Field::LabelKey,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment openai/gpt-4: label key is empty",
    );
    // An empty value is allowed.
    assert_eq!(
        gpt4().label("gold", "").build().unwrap().label("gold"),
        Some("")
    );
}

#[test]
fn zero_limits() {
    for (b, field, message) in [
        (
            gpt4().max_in_flight(0),
            Field::MaxInFlight,
            "deployment openai/gpt-4: limits.max_in_flight must be at least 1 (leave it unset for no limit)",
        ),
        (
            gpt4().rpm(0),
            Field::Rpm,
            "deployment openai/gpt-4: limits.rpm must be at least 1 (leave it unset for no limit)",
        ),
        (
            gpt4().tpm(0),
            Field::Tpm,
            "deployment openai/gpt-4: limits.tpm must be at least 1 (leave it unset for no limit)",
        ),
        (
            gpt4().context_window(0),
            Field::ContextWindow,
            "deployment openai/gpt-4: context_window must be at least 1 (leave it unset for no limit)",
        ),
    ] {
        let err = build_err(b);
        assert!(matches!(err, Error::InvalidNumber { .. }), "{err:?}");
        pinned(&err, Some(field), message);
    }
}

#[test]
fn bad_credentials_never_show_the_value() {
    name_err(
        gpt4().credential(""),
        Field::Credential,
        |p: &NameProblem| matches!(p, NameProblem::Empty),
        "deployment openai/gpt-4: credential is empty",
    );
    let err = build_err(gpt4().credential("sk-live-\nTOPSECRET"));
    pinned(
        &err,
        Some(Field::Credential),
        "deployment openai/gpt-4: credential \"<redacted>\" holds a control character at byte 8",
    );
    assert!(!format!("{err} {err:?}").contains("TOPSECRET"));
}

#[test]
fn first_error_wins() {
    let err = build_err(
        Deployment::builder("openai", "gpt-4")
            .tag(" ")
            .endpoint("ftp://h/")
            .version("x"),
    );
    pinned(
        &err,
        Some(Field::Tag),
        "deployment openai/gpt-4: tag is empty",
    );
}

#[test]
fn duplicate_key_on_insert_changes_nothing() {
    let mut reg = Registry::new(Policy::NAME);
    reg.insert(gpt4().endpoint("http://a/v1").build().unwrap())
        .unwrap();
    reg.insert(Deployment::builder("openai", "gpt-4o").build().unwrap())
        .unwrap();
    let before = reg.clone();
    let err = reg
        .insert(gpt4().endpoint("http://b/v1").weight(7).build().unwrap())
        .unwrap_err();
    match &err {
        Error::Duplicate { key, existing, .. } => {
            assert_eq!(key.to_string(), "openai/gpt-4");
            assert_eq!(existing, "openai/gpt-4@http://a/v1");
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    pinned(
        &err,
        None,
        "duplicate key openai/gpt-4: the registry already holds deployment openai/gpt-4@http://a/v1",
    );
    assert_eq!(reg, before);
    assert_eq!(reg.len(), 2);
}

#[test]
fn unknown_policies() {
    const START: &str =
        "a policy starts with \"name\", e.g. \"name\", \"name+endpoint\", \"name+tag+version\"";
    const PARTS: &str = "discriminators are \"endpoint\", \"tag\" and \"version\"";
    for (input, reason) in [
        ("", START),
        ("Name", START),
        ("endpoint", START),
        ("name + tag", START),
        (" name", START),
        ("name+", PARTS),
        ("name+region", PARTS),
        ("name+Endpoint", PARTS),
        ("name+tag+", PARTS),
        ("name+tag+tag", "a discriminator is named twice"),
        (
            "name+endpoint+tag+endpoint",
            "a discriminator is named twice",
        ),
    ] {
        let err = input.parse::<Policy>().unwrap_err();
        match &err {
            Error::UnknownPolicy { input: i, .. } => assert_eq!(i, input),
            other => panic!("{input:?}: expected UnknownPolicy, got {other:?}"),
        }
        pinned(
            &err,
            None,
            &format!("unknown identity policy {input:?}: {reason}"),
        );
        assert!(Policy::try_from(input).is_err());
    }
    // Long inputs are cut in the message.
    let long = format!("name+{}", "x".repeat(500));
    let err = long.parse::<Policy>().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("unknown identity policy {:?}: {PARTS}", &long[..100])
    );
}

#[test]
fn malformed_model_keys() {
    for (input, shown, reason) in [
        ("gpt-4", "gpt-4", "expected provider/model"),
        ("", "", "expected provider/model"),
        (
            "/gpt-4",
            "/gpt-4",
            "deployment <empty>/gpt-4: provider is empty",
        ),
        (
            "openai/",
            "openai/",
            "deployment openai/<empty>: model is empty",
        ),
        (
            "openai/ gpt-4",
            "openai/ gpt-4",
            "deployment openai/ gpt-4: model \" gpt-4\" starts or ends with white space",
        ),
        (
            "openai/gpt-4#\u{1}",
            "openai/gpt-4#\u{1}",
            "deployment openai/gpt-4: tag \"\\u{1}\" holds a control character at byte 0",
        ),
        (
            "openai/gpt%2D4",
            "openai/gpt%2D4",
            "model: %2D is not one of the escapes of this part (only ['%', '#', '~', '@'] are escaped, as uppercase %XX)",
        ),
        ("openai/gpt%4", "openai/gpt%4", "model: incomplete %-escape"),
        (
            "open#ai/gpt-4",
            "open#ai/gpt-4",
            "provider: '#' must be written as %23",
        ),
        (
            "open@ai/gpt-4",
            "open@<not a URL: 8 characters, starting with a letter>",
            "provider: '@' must be written as %40",
        ),
        (
            "openai/gpt-4#a#b",
            "openai/gpt-4#a#b",
            "tag: '#' must be written as %23",
        ),
        (
            "openai/gpt-4~1.2",
            "openai/gpt-4~1.2",
            "version: unexpected end of input while parsing minor version number",
        ),
        (
            "openai/gpt-4~1.0@",
            "openai/gpt-4~1.0@",
            "version: unexpected end of input while parsing minor version number",
        ),
        (
            "openai/gpt-4~01.0.0",
            "openai/gpt-4~01.0.0",
            "version: invalid leading zero in major version number",
        ),
        (
            "openai/gpt-4@http://H/v1/",
            "openai/gpt-4@http://H/v1/",
            "endpoint is not in normal form (expected http://h/v1)",
        ),
        (
            "openai/gpt-4@ftp://h/",
            "openai/gpt-4@ftp://h/",
            "endpoint scheme \"ftp\" is not supported; use http or https",
        ),
        (
            "openai/gpt-4@http://u:hunter2@h/",
            "openai/gpt-4@http://***@h/",
            "endpoint carries credentials (user or password); keep secrets out of endpoints",
        ),
        (
            "openai/gpt-4#a~1.0.0@http://h/v1?key=hunter2",
            "openai/gpt-4#a~1.0.0@http://h/v1…",
            "endpoint has a query string; endpoints may not carry one (it often holds secrets)",
        ),
    ] {
        let err = input.parse::<ModelKey>().unwrap_err();
        match &err {
            Error::InvalidKey { input: i, .. } => assert_eq!(i, shown),
            other => panic!("{input:?}: expected InvalidKey, got {other:?}"),
        }
        pinned(
            &err,
            None,
            &format!("malformed model key {shown:?}: {reason}"),
        );
        assert!(!err.to_string().contains("hunter2"));
        assert!(ModelKey::try_from(input).is_err());
    }
}

#[test]
fn key_builders_report_bad_parts() {
    let err = ModelKey::new("openai", "").unwrap_err();
    pinned(
        &err,
        Some(Field::Model),
        "deployment openai/<empty>: model is empty",
    );
    let err = ModelKey::new("openai", "gpt-4")
        .unwrap()
        .with_tag(Some(" "))
        .unwrap_err();
    pinned(
        &err,
        Some(Field::Tag),
        "deployment openai/gpt-4: tag is empty",
    );
    let url = url::Url::parse("ws://h/").unwrap();
    let err = ModelKey::new("openai", "gpt-4")
        .unwrap()
        .with_endpoint(Some(&url))
        .unwrap_err();
    pinned(
        &err,
        Some(Field::Endpoint),
        "deployment openai/gpt-4: endpoint scheme \"ws\" is not supported; use http or https",
    );
}

#[cfg(feature = "serde")]
#[track_caller]
fn json_err(json: &str) -> String {
    match serde_json::from_str::<Deployment>(json) {
        Ok(d) => panic!("{json} deserialized as {d:?}"),
        Err(e) => e.to_string(),
    }
}

#[cfg(feature = "serde")]
#[test]
fn bad_json_deployments_name_field_and_deployment() {
    let base = r#""provider":"openai","model":"gpt-4""#;
    for (rest, message) in [
        (
            r#""weight":-1"#,
            "deployment openai/gpt-4: weight -1 is negative",
        ),
        (
            r#""weight":1.5"#,
            "deployment openai/gpt-4: weight 1.5 is not a whole number from 0 to 4294967295",
        ),
        (
            r#""weight":"NaN""#,
            "deployment openai/gpt-4: weight \"NaN\" is not a number",
        ),
        (
            r#""weight":true"#,
            "deployment openai/gpt-4: weight true is not a number",
        ),
        (
            r#""weight":4294967296"#,
            "deployment openai/gpt-4: weight 4294967296 is larger than 4294967295",
        ),
        (
            r#""priority":-3"#,
            "deployment openai/gpt-4: priority -3 is negative",
        ),
        (
            r#""context_window":0"#,
            "deployment openai/gpt-4: context_window must be at least 1 (leave it unset for no limit)",
        ),
        (
            r#""limits":{"max_in_flight":0}"#,
            "deployment openai/gpt-4: limits.max_in_flight must be at least 1 (leave it unset for no limit)",
        ),
        (
            r#""limits":{"rpm":-1}"#,
            "deployment openai/gpt-4: limits.rpm -1 is negative",
        ),
        (
            r#""wieght":1"#,
            "deployment openai/gpt-4: unknown field `wieght`, expected one of `provider`, `model`, `upstream_model`, `endpoint`, `tag`, `version`, `labels`, `weight`, `priority`, `limits`, `context_window`, `cooldown_ms`, `credential`",
        ),
        (
            r#""limits":{"rmp":60}"#,
            "deployment openai/gpt-4: unknown field `limits.rmp`, expected one of `max_in_flight`, `rpm`, `tpm`",
        ),
        (
            r#""endpoint":"http://u:hunter2@h/""#,
            "deployment openai/gpt-4: endpoint carries credentials (user or password); keep secrets out of endpoints",
        ),
        (
            r#""version":"1.2""#,
            "deployment openai/gpt-4: version \"1.2\" is not a semantic version",
        ),
        (r#""tag":"""#, "deployment openai/gpt-4: tag is empty"),
    ] {
        let json = format!("{{{base},{rest}}}");
        assert_eq!(json_err(&json), message, "{json}");
    }
    // Whole numbers written as floats are fine.
    let d: Deployment =
        serde_json::from_str(r#"{"provider":"openai","model":"gpt-4","weight":2.0}"#).unwrap();
    assert_eq!(d.weight(), 2);
}

#[cfg(feature = "serde")]
#[test]
fn bad_json_registries() {
    let json = r#"{"policy":"name","deployments":[
        {"provider":"openai","model":"gpt-4","tag":"a"},
        {"provider":"openai","model":"gpt-4o"},
        {"provider":"openai","model":"gpt-4","tag":"b"}
    ]}"#;
    let err = serde_json::from_str::<Registry>(json)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "deployments[2]: duplicate key openai/gpt-4: the registry already holds deployment openai/gpt-4#a"
    );
    // Under a finer policy the same input is fine.
    let fine = json.replace(r#""policy":"name""#, r#""policy":"name+tag""#);
    assert_eq!(serde_json::from_str::<Registry>(&fine).unwrap().len(), 3);

    let err = serde_json::from_str::<Registry>(r#"{"policy":"name+region","deployments":[]}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown identity policy \"name+region\": discriminators are \"endpoint\", \"tag\" and \"version\" at line 1 column 23"
    );

    let err = serde_json::from_str::<Registry>(
        r#"{"policy":"name","deployments":[{"provider":"openai","model":"gpt-4","weight":-2}]}"#,
    )
    .unwrap_err()
    .to_string();
    // Inside a registry, serde_json adds where the deployment ends.
    assert_eq!(
        err,
        "deployment openai/gpt-4: weight -2 is negative at line 1 column 82"
    );

    let err = serde_json::from_str::<Registry>(r#"{"policy":"name","deployments":[],"extra":1}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unknown field `extra`"), "{err}");
}

/// Rejections through `rekey` are typed and list every collision.
#[test]
fn collisions_on_rekey() {
    let mut reg = Registry::new(Policy::NAME_TAG);
    for tag in ["a", "b", "c"] {
        reg.insert(gpt4().tag(tag).build().unwrap()).unwrap();
    }
    reg.insert(
        Deployment::builder("azure", "gpt-4")
            .tag("a")
            .build()
            .unwrap(),
    )
    .unwrap();
    let before = reg.clone();
    let err = reg.rekey(Policy::NAME).unwrap_err();
    assert!(matches!(&err, Error::Collisions { collisions, .. } if collisions.len() == 1));
    pinned(
        &err,
        None,
        "1 key(s) would collide under policy name: openai/gpt-4 <- openai/gpt-4#a, openai/gpt-4#b, openai/gpt-4#c",
    );
    assert_eq!(reg, before);
}

/// A version is capped in length like a name: a 10 MB prerelease is
/// refused, by the builder and by the key parser, and the message stays
/// short.
#[test]
fn over_long_versions_are_refused() {
    let long = format!("1.0.0-{}", "a".repeat(10 << 20));
    let err = build_err(gpt4().version(&long));
    assert_eq!(err.field(), Some(Field::Version));
    assert_eq!(
        err.to_string(),
        format!(
            "deployment openai/gpt-4: version is {} bytes long; the limit is {}",
            long.len(),
            modelfleet::MAX_VERSION_LEN
        )
    );
    let parsed: semver::Version = long.parse().unwrap();
    let err = build_err(gpt4().semver(parsed));
    assert_eq!(err.field(), Some(Field::Version));
    assert!(err.to_string().len() < 200, "{err}");
    let at_limit = format!("1.0.0-{}", "a".repeat(modelfleet::MAX_VERSION_LEN - 6));
    assert!(gpt4().version(&at_limit).build().is_ok());
    let over = format!("{at_limit}a");
    assert!(gpt4().version(&over).build().is_err());

    let key = format!("openai/gpt-4~{long}@");
    let err = key.parse::<ModelKey>().unwrap_err();
    assert!(err.to_string().len() < 400, "{}", &err.to_string()[..400]);
}

/// Lists in messages are cut after a few items with "… and N more"; the
/// typed error keeps every item.
#[test]
fn long_lists_in_messages_are_cut() {
    // One key that 1,000 deployments would share.
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for i in 0..1000 {
        let d = gpt4().endpoint(&format!("http://10.0.{}.{}/v1", i / 256, i % 256));
        reg.insert(d.build().unwrap()).unwrap();
    }
    let err = reg.rekey(Policy::NAME).unwrap_err();
    let Error::Collisions { collisions, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(collisions[0].deployments().len(), 1000);
    let text = err.to_string();
    assert!(text.len() < 1000, "{} bytes: {text}", text.len());
    assert!(text.ends_with(" … and 990 more"), "{text}");
    // 1,000 keys that two deployments each would share.
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for i in 0..1000 {
        for ip in ["10.0.0.1", "10.0.0.2"] {
            let d = Deployment::builder("openai", &format!("m{i}"))
                .endpoint(&format!("http://{ip}/v1"));
            reg.insert(d.build().unwrap()).unwrap();
        }
    }
    let err = reg.rekey(Policy::NAME).unwrap_err();
    let Error::Collisions { collisions, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(collisions.len(), 1000);
    let text = err.to_string();
    assert!(text.len() < 2000, "{} bytes: {text}", text.len());
    assert!(
        text.starts_with("1000 key(s) would collide under policy name: openai/m0 <- "),
        "{text}"
    );
    assert!(text.ends_with("; … and 990 more"), "{text}");
}

/// `rekey` takes any policy, a boxed trait object included; the message
/// names it by `IdentityPolicy::describe`.
#[test]
fn rekey_takes_a_boxed_policy() {
    use modelfleet::IdentityPolicy;

    let mut reg = Registry::new(Policy::NAME_TAG);
    for tag in ["a", "b"] {
        reg.insert(gpt4().tag(tag).build().unwrap()).unwrap();
    }
    let coarse: Box<dyn IdentityPolicy> = Box::new(Policy::NAME);
    let err = reg.rekey(coarse).unwrap_err();
    pinned(
        &err,
        None,
        "1 key(s) would collide under policy name: openai/gpt-4 <- openai/gpt-4#a, openai/gpt-4#b",
    );
    let fine: Box<dyn IdentityPolicy> = Box::new(Policy::NAME_ENDPOINT_TAG);
    let rekeyed = reg.rekey(fine).unwrap();
    assert_eq!(rekeyed.len(), 2);
    assert_eq!(rekeyed.policy().describe(), "name+endpoint+tag");
}
