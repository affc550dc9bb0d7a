//! Small scenarios of deployment selection, one story each: the Dify case,
//! priority failover, fallback models, explanations, error messages, a
//! version canary, the token filter and tag routing.

use std::collections::BTreeSet;

use modelfleet::select::{BuiltinStrategy, Reason, RoundRobin, WeightedRoundRobin};
use modelfleet::{
    Deployment, Error, ModelKey, Policy, Registry, Request, Selector, TagMatch, VersionPreference,
};

mod support;

fn node(endpoint: &str) -> Deployment {
    Deployment::builder("openai-api-compatible", "gpt-4")
        .endpoint(endpoint)
        .build()
        .unwrap()
}

/// The endpoints of `count` consecutive picks.
#[track_caller]
fn endpoints(sel: &Selector, req: &Request, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let pick = sel.select(req).unwrap();
            pick.deployment().endpoint().unwrap().to_string()
        })
        .collect()
}

/// The keys of an attempt plan, as text.
#[track_caller]
fn plan_keys(sel: &Selector, req: &Request) -> Vec<String> {
    sel.plan(req).map(|p| p.key().to_string()).collect()
}

#[test]
fn dify_two_endpoints_share_traffic() {
    // Keyed by name + endpoint, both nodes of gpt-4 are kept...
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    reg.insert(node("http://192.168.0.1/v1")).unwrap();
    reg.insert(node("http://192.168.0.2/v1")).unwrap();
    assert_eq!(reg.len(), 2);

    // ...and traffic alternates between them, under both rotations.
    for strategy in [
        BuiltinStrategy::from(RoundRobin),
        BuiltinStrategy::from(WeightedRoundRobin::new()),
    ] {
        let sel = Selector::with_seed(&reg, strategy, 1);
        let seen = endpoints(&sel, &Request::new("gpt-4"), 10);
        for pair in seen.windows(2) {
            assert_ne!(pair[0], pair[1], "{strategy}: {seen:?}");
        }
        let distinct: BTreeSet<_> = seen.iter().map(String::as_str).collect();
        assert_eq!(
            distinct,
            BTreeSet::from(["http://192.168.0.1/v1", "http://192.168.0.2/v1"]),
            "{strategy}"
        );
    }

    // Keyed by name only (Dify's behaviour), the second node replaces the
    // first and every request goes to it.
    let mut by_name = Registry::new(Policy::NAME);
    by_name.upsert(node("http://192.168.0.1/v1"));
    by_name.upsert(node("http://192.168.0.2/v1"));
    let sel = Selector::new(&by_name, RoundRobin);
    assert_eq!(
        endpoints(&sel, &Request::new("gpt-4"), 4),
        ["http://192.168.0.2/v1"; 4]
    );
}

/// Two primaries in tier 0, a backup in tier 1.
fn failover_fleet() -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (url, priority, region) in [
        ("http://primary-a/v1", 0, "eu"),
        ("http://primary-b/v1", 0, "eu"),
        ("http://backup/v1", 1, "us"),
    ] {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint(url)
                .priority(priority)
                .label("region", region)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    reg
}

fn key(text: &str) -> ModelKey {
    text.parse().unwrap()
}

#[test]
fn priority_failover() {
    let reg = failover_fleet();
    let sel = Selector::new(&reg, RoundRobin);
    let req = Request::new("gpt-4");

    // Healthy tier 0: the backup is never used.
    for _ in 0..6 {
        let pick = sel.select(&req).unwrap();
        assert_eq!(pick.priority(), 0);
        assert_ne!(
            pick.deployment().endpoint().unwrap().as_str(),
            "http://backup/v1"
        );
    }

    // Both primaries excluded (already tried): tier 1 takes over.
    let without_primaries = req
        .clone()
        .exclude(key("openai/gpt-4@http://primary-a/v1"))
        .exclude(key("openai/gpt-4@http://primary-b/v1"));
    let pick = sel.select(&without_primaries).unwrap();
    assert_eq!(pick.priority(), 1);
    assert_eq!(pick.key(), &key("openai/gpt-4@http://backup/v1"));

    // One primary excluded: the other primary, never the backup.
    let without_a = req.clone().exclude(key("openai/gpt-4@http://primary-a/v1"));
    for _ in 0..4 {
        assert_eq!(
            sel.select(&without_a).unwrap().key(),
            &key("openai/gpt-4@http://primary-b/v1")
        );
    }

    // Tier 0 filtered out by a label: tier 1 again.
    let us = sel.select(&req.clone().label("region", "us")).unwrap();
    assert_eq!(us.priority(), 1);

    // Tier 0 drained (weight 0): tier 1.
    let mut drained = Registry::new(Policy::NAME_ENDPOINT);
    for (k, d) in reg.iter() {
        let d = if d.priority() == 0 {
            d.to_builder().weight(0).build().unwrap()
        } else {
            d.clone()
        };
        assert_eq!(&drained.insert(d).unwrap(), k);
    }
    let sel = Selector::new(&drained, RoundRobin);
    assert_eq!(sel.select(&req).unwrap().priority(), 1);
}

#[test]
fn plan_walks_tiers_then_fallback_models() {
    let mut reg = failover_fleet();
    reg.insert(
        Deployment::builder("openai", "gpt-4o-mini")
            .endpoint("http://mini/v1")
            .build()
            .unwrap(),
    )
    .unwrap();
    reg.insert(
        Deployment::builder("openai", "gpt-3.5")
            .endpoint("http://old/v1")
            .build()
            .unwrap(),
    )
    .unwrap();
    let sel = Selector::new(&reg, RoundRobin);
    let req = Request::new("gpt-4")
        .fallback("no-such-model") // unknown: skipped
        .fallback("gpt-4o-mini")
        .fallback("gpt-3.5");
    let order = plan_keys(&sel, &req);
    // Tier 0 first (both primaries, in rotation order), then the backup,
    // then each fallback model.
    let mut primaries = order[..2].to_vec();
    primaries.sort();
    assert_eq!(
        primaries,
        [
            "openai/gpt-4@http://primary-a/v1",
            "openai/gpt-4@http://primary-b/v1"
        ]
    );
    assert_eq!(
        order[2..],
        [
            "openai/gpt-4@http://backup/v1",
            "openai/gpt-4o-mini@http://mini/v1",
            "openai/gpt-3.5@http://old/v1",
        ]
    );

    // Filters apply to the fallbacks too: only the eu primaries match
    // region=eu; the fallbacks have no region.
    let eu = Request::new("gpt-4")
        .label("region", "eu")
        .fallback("gpt-4o-mini");
    assert_eq!(plan_keys(&sel, &eu).len(), 2);

    // A plan that starts with an unknown model goes straight to the fallback.
    assert_eq!(
        plan_keys(&sel, &Request::new("gpt-5").fallback("gpt-3.5")),
        ["openai/gpt-3.5@http://old/v1"]
    );
    assert!(plan_keys(&sel, &Request::new("gpt-5")).is_empty());

    // Each pick holds its slot until dropped.
    let mut plan = sel.plan(&Request::new("gpt-4o-mini"));
    let first = plan.next().unwrap();
    assert_eq!(sel.in_flight(first.key()), Some(1));
    assert!(plan.next().is_none());
    let k = first.key().clone();
    drop(first);
    assert_eq!(sel.in_flight(&k), Some(0));
}

/// One deployment per filter, each failing exactly that one, plus an
/// eligible one in tier 0 and one in tier 1.
fn explain_fleet() -> Registry {
    let mut reg = Registry::new(Policy::NAME_TAG);
    let base = |tag: &str| {
        Deployment::builder("openai", "gpt-4")
            .tag(tag)
            .label("region", "eu")
            .version("1.2.0")
            .context_window(32_000)
    };
    let all = [
        base("drained").weight(0),
        Deployment::builder("azure", "gpt-4")
            .tag("azure")
            .label("region", "eu")
            .version("1.2.0"),
        base("us").label("region", "us"),
        base("old-version").weight(1).version("0.9.0"),
        base("small").context_window(4_000),
        base("tried"),
        base("ok"),
        base("backup").priority(1),
    ];
    for d in all {
        reg.insert(d.build().unwrap()).unwrap();
    }
    reg
}

#[test]
fn explain_names_the_reasons() {
    let reg = explain_fleet();
    let sel = Selector::new(&reg, RoundRobin);
    let req = Request::new("gpt-4")
        .provider("openai")
        .label("region", "eu")
        .version("^1".parse().unwrap())
        .tokens(10_000)
        .exclude(key("openai/gpt-4#tried"));
    let held = sel.select(&req).unwrap(); // one in flight on `ok`
    assert_eq!(held.key(), &key("openai/gpt-4#ok"));

    let why = sel.explain(&req).unwrap();
    assert_eq!(why.model(), "gpt-4");
    assert_eq!(why.strategy(), "round_robin");
    assert_eq!(why.tier(), Some(0));
    let verdicts: Vec<(String, u32, Option<Reason>, u32)> = why
        .candidates()
        .iter()
        .map(|v| {
            (
                v.key().to_string(),
                v.priority(),
                v.removed(),
                v.in_flight(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("openai/gpt-4#drained".into(), 0, Some(Reason::Drained), 0),
            ("azure/gpt-4#azure".into(), 0, Some(Reason::Provider), 0),
            ("openai/gpt-4#us".into(), 0, Some(Reason::Labels), 0),
            (
                "openai/gpt-4#old-version".into(),
                0,
                Some(Reason::Version),
                0
            ),
            (
                "openai/gpt-4#small".into(),
                0,
                Some(Reason::ContextWindow),
                0
            ),
            ("openai/gpt-4#tried".into(), 0, Some(Reason::Excluded), 0),
            ("openai/gpt-4#ok".into(), 0, None, 1),
            ("openai/gpt-4#backup".into(), 1, None, 0),
        ]
    );
    let removed = why.removed();
    assert_eq!(removed.total(), 6);
    assert_eq!(
        removed.to_string(),
        "drained removed 1, provider removed 1, labels removed 1, version removed 1, \
         context_window removed 1, excluded removed 1"
    );

    assert_eq!(
        why.to_string(),
        "model \"gpt-4\", strategy round_robin:\n\
         \x20 [tier 0] openai/gpt-4#drained — removed: drained (weight 0)\n\
         \x20 [tier 0] azure/gpt-4#azure — removed: another provider\n\
         \x20 [tier 0] openai/gpt-4#us — removed: a required label is missing or differs\n\
         \x20 [tier 0] openai/gpt-4#old-version — removed: version outside the requested range\n\
         \x20 [tier 0] openai/gpt-4#small — removed: context window smaller than the request's tokens\n\
         \x20 [tier 0] openai/gpt-4#tried — removed: excluded by the request\n\
         \x20 [tier 0] openai/gpt-4#ok — candidate\n\
         \x20 [tier 1] openai/gpt-4#backup — eligible, but a lower tier has candidates\n"
    );

    // Tags and the newest version, on the same fleet.
    let tagged = sel
        .explain(&Request::new("gpt-4").tag("ok").tag("backup"))
        .unwrap();
    let removed_tags = tagged
        .candidates()
        .iter()
        .filter(|v| v.removed() == Some(Reason::Tags))
        .count();
    assert_eq!(removed_tags, 5); // all but `ok`, `backup` and `drained` (drained first)
    let newest = sel
        .explain(&Request::new("gpt-4").version_preference(VersionPreference::Newest))
        .unwrap();
    assert_eq!(
        newest.candidates()[3].removed(),
        Some(Reason::NotNewest),
        "0.9.0 is not the newest"
    );
    drop(held);
}

#[test]
fn error_messages_are_pinned() {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for ip in ["10.0.0.1", "10.0.0.2"] {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://{ip}/v1"))
                .label("region", "us")
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    let sel = Selector::new(&reg, RoundRobin);

    let err = sel
        .select(&Request::new("gpt-4").label("region", "eu"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::NoEligible { removed, .. } if removed.count(Reason::Labels) == 2)
    );
    assert_eq!(
        err.to_string(),
        r#"no deployment of "gpt-4" is eligible: labels removed 2"#
    );

    let err = sel
        .select(
            &Request::new("gpt-4")
                .label("region", "us")
                .tokens(1)
                .exclude(key("openai/gpt-4@http://10.0.0.1/v1"))
                .exclude(key("openai/gpt-4@http://10.0.0.2/v1")),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"no deployment of "gpt-4" is eligible: excluded removed 2"#
    );

    let err = sel.select(&Request::new("gpt-5")).unwrap_err();
    assert!(matches!(&err, Error::UnknownModel { model, .. } if model == "gpt-5"));
    assert_eq!(err.to_string(), r#"unknown model "gpt-5""#);
    assert_eq!(
        sel.explain(&Request::new("gpt-5")).unwrap_err().to_string(),
        r#"unknown model "gpt-5""#
    );
}

#[test]
fn version_canary_newest_within_requirement() {
    let mut reg = Registry::new(Policy::NAME_VERSION);
    for v in ["1.0.0", "1.4.2", "1.10.0", "2.0.0", "0.9.0"] {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .version(v)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    let sel = Selector::new(&reg, RoundRobin);
    let version = |req: &Request| {
        sel.select(req)
            .unwrap()
            .deployment()
            .version()
            .unwrap()
            .to_string()
    };

    // ^1 and Newest: only the highest 1.x (by semver, not by text: 1.10 > 1.4).
    let canary = Request::new("gpt-4")
        .version("^1".parse().unwrap())
        .version_preference(VersionPreference::Newest);
    for _ in 0..6 {
        assert_eq!(version(&canary), "1.10.0");
    }
    // ^1 alone: every 1.x in turn, nothing else.
    let any_1x: BTreeSet<String> = (0..6)
        .map(|_| version(&Request::new("gpt-4").version("^1".parse().unwrap())))
        .collect();
    assert_eq!(
        any_1x,
        BTreeSet::from(["1.0.0".into(), "1.10.0".into(), "1.4.2".into()])
    );
    // Newest alone: the highest of all.
    let newest = Request::new("gpt-4").version_preference(VersionPreference::Newest);
    assert_eq!(version(&newest), "2.0.0");
    // When the newest is already tried, the next one down is the newest.
    assert_eq!(
        version(&canary.clone().exclude(key("openai/gpt-4~1.10.0"))),
        "1.4.2"
    );
    // And an attempt plan goes down the 1.x versions.
    assert_eq!(
        plan_keys(&sel, &canary),
        [
            "openai/gpt-4~1.10.0",
            "openai/gpt-4~1.4.2",
            "openai/gpt-4~1.0.0"
        ]
    );
}

#[test]
fn tokens_filter_skips_small_windows() {
    let mut reg = Registry::new(Policy::NAME_TAG);
    for (tag, window) in [
        ("8k", Some(8_192)),
        ("32k", Some(32_768)),
        ("128k", Some(128_000)),
        ("unknown", None),
    ] {
        let mut b = Deployment::builder("openai", "gpt-4").tag(tag);
        if let Some(w) = window {
            b = b.context_window(w);
        }
        reg.insert(b.build().unwrap()).unwrap();
    }
    let sel = Selector::new(&reg, RoundRobin);
    let tags = |tokens: u32| -> BTreeSet<String> {
        (0..8)
            .map(|_| {
                let pick = sel.select(&Request::new("gpt-4").tokens(tokens)).unwrap();
                pick.deployment().tag().unwrap().to_owned()
            })
            .collect()
    };
    let set = |tags: &[&str]| {
        tags.iter()
            .map(|t| (*t).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(tags(1_000), set(&["8k", "32k", "128k", "unknown"]));
    assert_eq!(tags(20_000), set(&["32k", "128k", "unknown"]));
    // A window of exactly the estimate is large enough.
    assert_eq!(tags(32_768), set(&["32k", "128k", "unknown"]));
    assert_eq!(tags(32_769), set(&["128k", "unknown"]));
    // Beyond every known window, only the unknown one is left.
    assert_eq!(tags(1_000_000), set(&["unknown"]));
}

#[test]
fn tags_route_a_b_traffic() {
    let mut reg = Registry::new(Policy::NAME_TAG);
    for tag in ["a", "b"] {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .tag(tag)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    reg.insert(Deployment::builder("openai", "gpt-4").build().unwrap())
        .unwrap();
    let sel = Selector::new(&reg, WeightedRoundRobin::new());
    let tag_of = |req: &Request| {
        sel.select(req)
            .map(|p| p.deployment().tag().map(str::to_owned))
    };
    for _ in 0..4 {
        assert_eq!(
            tag_of(&Request::new("gpt-4").tag("b")).unwrap(),
            Some("b".into())
        );
    }
    let any: BTreeSet<_> = (0..6)
        .map(|_| tag_of(&Request::new("gpt-4").tag("a").tag("b")).unwrap())
        .collect();
    assert_eq!(any, BTreeSet::from([Some("a".into()), Some("b".into())]));
    // All: a deployment has one tag, so asking for both matches none.
    let err = tag_of(
        &Request::new("gpt-4")
            .tag("a")
            .tag("b")
            .tag_match(TagMatch::All),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"no deployment of "gpt-4" is eligible: tags removed 3"#
    );
}

#[test]
fn weighted_round_robin_interleaves_as_documented() {
    // The docs' example: weights a 5, b 1, c 1; one window is `a a a b a c a`
    // (where it starts depends on the seed).
    let mut reg = Registry::new(Policy::NAME_TAG);
    for (tag, weight) in [("a", 5), ("b", 1), ("c", 1)] {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .tag(tag)
                .weight(weight)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    for seed in 0..5 {
        let sel = Selector::with_seed(&reg, WeightedRoundRobin::new(), seed);
        let seq: String = (0..14)
            .map(|_| {
                let pick = sel.select(&Request::new("gpt-4")).unwrap();
                pick.deployment().tag().unwrap().to_owned()
            })
            .collect();
        assert_eq!(seq[..7], seq[7..], "seed {seed}: not periodic: {seq}");
        let doubled = "aaabacaaaabaca";
        assert!(
            doubled.contains(&seq[..7]),
            "seed {seed}: window {} is not a rotation of aaabaca",
            &seq[..7]
        );
    }
}

/// `InFlight::Uncounted` skips the counters only where nothing reads them.
#[test]
fn uncounted_in_flight_only_where_nothing_reads_it() {
    use modelfleet::select::{InFlight, LeastOutstanding, RoundRobin};
    let reg = support::registry(&[support::node("10.0.0.1"), support::node("10.0.0.2")]);
    let count = |s: &Selector| {
        let pick = s.select(&Request::new("gpt-4")).unwrap();
        s.in_flight(pick.key()).unwrap()
    };
    let plain = Selector::builder(&reg)
        .strategy(RoundRobin)
        .in_flight(InFlight::Uncounted)
        .build();
    assert_eq!(count(&plain), 0, "round robin reads no load: not counted");
    let loaded = Selector::builder(&reg)
        .strategy(LeastOutstanding)
        .in_flight(InFlight::Uncounted)
        .build();
    assert_eq!(
        count(&loaded),
        1,
        "least_outstanding reads the load: counted"
    );
    let mut limited = reg.clone();
    limited.upsert(
        Deployment::builder("openai", "gpt-4")
            .endpoint("http://10.0.0.1/v1")
            .max_in_flight(4)
            .build()
            .unwrap(),
    );
    let s = Selector::builder(&limited)
        .strategy(RoundRobin)
        .in_flight(InFlight::Uncounted)
        .build();
    let held: Vec<_> = (0..2)
        .map(|_| s.select(&Request::new("gpt-4")).unwrap())
        .collect();
    let total: u32 = held.iter().map(|p| s.in_flight(p.key()).unwrap()).sum();
    assert_eq!(total, 2, "a max_in_flight limit needs the count");
}

/// `succeed` takes the time first, as `Report::success` does: an hour-late
/// observation of a 40 ms call records 40 ms, through a `Pick` and through
/// a `OwnedPick`.
#[test]
fn succeed_takes_now_then_latency() {
    let reg: Registry = [Deployment::builder("openai", "gpt-4").build().unwrap()]
        .into_iter()
        .collect();
    let key: ModelKey = "openai/gpt-4@".parse().unwrap();
    let (hour, call) = (
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_millis(40),
    );

    let selector = Selector::new(&reg, modelfleet::select::Latency::default());
    selector
        .select(&Request::new("gpt-4"))
        .unwrap()
        .succeed(hour, call);
    assert_eq!(selector.latency(&key), Some(call));

    let fleet = modelfleet::Fleet::new(reg, |b| b);
    fleet
        .select(&Request::new("gpt-4"))
        .unwrap()
        .succeed(hour, call);
    assert_eq!(fleet.selector().latency(&key), Some(call));
}

/// A custom policy that keys models without case: requests find the model
/// through the same normalization, whatever case they use, and a model
/// written two ways is one model.
#[test]
fn a_normalizing_policy_finds_its_models() {
    use std::borrow::Cow;

    use modelfleet::{Discriminators, IdentityPolicy, ModelKey};

    #[derive(Debug)]
    struct CaseInsensitive;

    fn lowercase(model: &str) -> Cow<'_, str> {
        if model.chars().any(char::is_uppercase) {
            Cow::Owned(model.to_lowercase())
        } else {
            Cow::Borrowed(model)
        }
    }

    impl IdentityPolicy for CaseInsensitive {
        fn key(&self, d: &Deployment) -> ModelKey {
            ModelKey::new(d.provider(), &lowercase(d.model()))
                .and_then(|k| k.with_endpoint(d.endpoint()))
                .unwrap_or_else(|_| ModelKey::for_deployment(d, Discriminators::ENDPOINT))
        }
        fn model_normalizer(&self) -> Option<fn(&str) -> Cow<'_, str>> {
            Some(lowercase)
        }
    }

    let mut reg = Registry::new(CaseInsensitive);
    for (model, ip) in [("GPT-4", "10.0.0.1"), ("gpt-4", "10.0.0.2")] {
        let d = Deployment::builder("openai", model).endpoint(&format!("http://{ip}/v1"));
        reg.insert(d.build().unwrap()).unwrap();
    }
    let selector = Selector::builder(&reg).strategy(RoundRobin).seed(1).build();
    for asked in ["gpt-4", "GPT-4", "Gpt-4"] {
        let picked: BTreeSet<String> = (0..4)
            .map(|_| {
                selector
                    .select(&Request::new(asked))
                    .unwrap()
                    .key()
                    .to_string()
            })
            .collect();
        assert_eq!(
            picked.into_iter().collect::<Vec<_>>(),
            [
                "openai/gpt-4@http://10.0.0.1/v1",
                "openai/gpt-4@http://10.0.0.2/v1"
            ],
            "asked for {asked}"
        );
    }
    assert!(matches!(
        selector.select(&Request::new("gpt-5")),
        Err(modelfleet::Error::UnknownModel { .. })
    ));
}
