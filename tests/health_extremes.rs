//! Extreme values through report → select: token counts, weights, limits,
//! latencies and times at the ends of their ranges.
//!
//! Times are kept in nanoseconds as `u64`: the range ends at `health::END`
//! (`u64::MAX` ns, about 584 years); a later time is the end. A cooldown or
//! ejection that would end at or past the end lasts for the rest of the
//! range.
//!
//! Properties (proptest, random fleets and monotone event sequences drawn
//! with a bias toward 0, 1, `MAX - 1`, `MAX` and times near the end):
//!
//! 1. nothing panics (debug builds check every overflow);
//! 2. the rolling-minute token count never wraps: it is at least the
//!    saturating sum of the tokens reported in the current minute;
//! 3. a deployment whose tokens plus the request's estimate exceed its
//!    `tpm`, or whose picks reach its `rpm`, is never picked;
//! 4. a deployment cooling or ejected until the end of the range is never
//!    picked at any later time, `Duration::MAX` included (outside panic mode).

use std::time::Duration;

use modelfleet::health::{END, Ejection, FailureKind, HealthPolicy, Outcome, Report, State};
use modelfleet::select::{BuiltinStrategy, RoundRobin};
use modelfleet::{Deployment, Error, ModelKey, Policy, Registry, Request, Selector};
use proptest::prelude::*;
use proptest::sample::select;

mod support;
use support::{ms, pick_key, secs};

/// `a` with `tpm` in tier 0, `b` without limits as its tier-1 backup.
fn tpm_and_backup(tpm: u64) -> (Registry, ModelKey, ModelKey) {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    let a = reg
        .insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint("http://a/v1")
                .tpm(tpm)
                .build()
                .unwrap(),
        )
        .unwrap();
    let b = reg
        .insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint("http://b/v1")
                .priority(1)
                .build()
                .unwrap(),
        )
        .unwrap();
    (reg, a, b)
}

/// Two reports whose tokens add up past `u64::MAX` in one minute: the
/// count saturates, so the limit holds.
#[test]
fn token_counts_saturate_instead_of_wrapping() {
    let (reg, a, b) = tpm_and_backup(1_000);
    let s = Selector::new(&reg, RoundRobin);
    let half = 1u64 << 63;
    assert!(s.report(&a, Report::success(secs(1), ms(1)).tokens(half)));
    assert!(s.report(&a, Report::success(secs(2), ms(1)).tokens(half)));
    assert_eq!(s.health(secs(3))[0].tokens_per_minute, u64::MAX);
    assert_eq!(pick_key(&s, secs(3)), b);
}

/// `u64::MAX` tokens in each of two minutes: the rolling sum of the
/// current minute and the carried share of the previous one saturates.
#[test]
fn token_counts_near_the_maximum_in_two_minutes_do_not_overflow() {
    let (reg, a, b) = tpm_and_backup(u64::MAX);
    let s = Selector::new(&reg, RoundRobin);
    assert!(s.report(&a, Report::success(secs(30), ms(1)).tokens(u64::MAX)));
    assert!(s.report(&a, Report::success(secs(70), ms(1)).tokens(u64::MAX)));
    assert_eq!(s.health(secs(80))[0].tokens_per_minute, u64::MAX);
    assert_eq!(pick_key(&s, secs(80)), b);
}

/// A `Retry-After` that ends past the end of the range cools until the
/// end, and the end is never reached: the deployment stays out at every
/// later time, whether the request's time is just past the report's or at
/// `Duration::MAX`.
#[test]
fn a_cooldown_past_the_end_of_the_range_lasts_for_the_rest_of_it() {
    let (reg, a, b) = tpm_and_backup(u64::MAX);
    let s = Selector::builder(&reg).strategy(RoundRobin).build();
    let t0 = END - secs(1);
    let limited = FailureKind::rate_limited(Some(secs(60)));
    assert!(s.report(&a, Report::failure(t0, limited)));
    for t in [t0, t0 + secs(2), END, Duration::MAX] {
        assert_eq!(pick_key(&s, t), b, "at {t:?}");
        let h = &s.health(t)[0];
        assert_eq!(
            (h.state, h.available_at),
            (State::Cooling, Some(END)),
            "at {t:?}"
        );
    }
    // Through a plain request without a time (the latest report's), too.
    assert_eq!(s.select(&Request::new("gpt-4")).unwrap().key(), &b);
    // With nothing else to pick, the error carries the end as the retry time.
    let mut solo = Registry::new(Policy::NAME_ENDPOINT);
    let only = solo
        .insert(Deployment::builder("openai", "gpt-4").build().unwrap())
        .unwrap();
    let s = Selector::builder(&solo).build();
    assert!(s.report(&only, Report::failure(Duration::MAX, limited)));
    match s.select(&Request::new("gpt-4").at(Duration::MAX)) {
        Err(Error::Unavailable { retry_at, .. }) => assert_eq!(retry_at, Some(END)),
        other => panic!("{other:?}"),
    }
}

/// An ejection that would end past the end of the range lasts for the
/// rest of it, like a cooldown.
#[test]
fn an_ejection_past_the_end_of_the_range_lasts_for_the_rest_of_it() {
    let (reg, a, b) = tpm_and_backup(u64::MAX);
    let mut p = HealthPolicy::disabled();
    p.ejection = Some({
        let mut e = Ejection::default();
        e.consecutive_failures = 1;
        e.max_percent = 100;
        e
    });
    let s = Selector::builder(&reg)
        .strategy(RoundRobin)
        .health(p.validated().unwrap())
        .build();
    assert!(s.report(&a, Report::failure(END - secs(1), FailureKind::ServerError)));
    for t in [END - secs(1), END, Duration::MAX] {
        assert_eq!(pick_key(&s, t), b, "at {t:?}");
        assert_eq!(s.health(t)[0].state, State::Ejected, "at {t:?}");
    }
}

/// Every built-in strategy, at the largest weights, with reports of the
/// largest latency and token count.
#[test]
fn the_largest_weights_latencies_and_token_counts_do_not_overflow() {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, w) in [u32::MAX, u32::MAX, 1].into_iter().enumerate() {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://n{i}/v1"))
                .weight(w)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    for &strategy in BuiltinStrategy::all() {
        let s = Selector::builder(&reg).strategy(strategy).build();
        for i in 0..50 {
            let pick = s
                .select(&Request::new("gpt-4").affinity(&i.to_string()))
                .unwrap();
            pick.complete(Report::success(Duration::MAX, Duration::MAX).tokens(u64::MAX));
        }
    }
}

/// A value drawn mostly from the edges of `0..=max`.
fn edgy(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        select(vec![0, 1, 2, max / 2, max / 2 + 1, max - 1, max]),
        0..=max,
    ]
}

/// A time step: small, a minute, or a jump toward the end of the range.
fn step() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => (0u64..120_000).prop_map(Duration::from_millis),
        1 => select(vec![Duration::ZERO, secs(60), END / 2, END - secs(1), END, Duration::MAX]),
    ]
}

#[derive(Clone, Debug)]
enum Event {
    Select {
        tokens: Option<u32>,
    },
    Report {
        who: usize,
        outcome: Outcome,
        tokens: u64,
    },
}

fn kind() -> impl Strategy<Value = FailureKind> {
    let retry = prop_oneof![
        Just(None),
        edgy(u64::MAX).prop_map(|n| Some(Duration::from_nanos(n))),
        Just(Some(Duration::MAX)),
    ];
    prop_oneof![
        retry.clone().prop_map(FailureKind::rate_limited),
        retry.prop_map(FailureKind::overloaded),
        Just(FailureKind::ServerError),
        Just(FailureKind::Timeout),
        Just(FailureKind::ConnectionError),
    ]
}

fn latency() -> impl Strategy<Value = Duration> {
    prop_oneof![
        edgy(u64::MAX).prop_map(Duration::from_nanos),
        Just(Duration::MAX)
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        prop::option::of(edgy(u64::from(u32::MAX)).prop_map(|n| n as u32))
            .prop_map(|tokens| Event::Select { tokens }),
        (
            0usize..3,
            prop_oneof![
                latency().prop_map(Outcome::success),
                (kind(), prop::option::of(latency()))
                    .prop_map(|(kind, latency)| Outcome::failure(kind, latency)),
            ],
            edgy(u64::MAX),
        )
            .prop_map(|(who, outcome, tokens)| Event::Report {
                who,
                outcome,
                tokens
            }),
    ]
}

#[derive(Clone, Debug)]
struct Node {
    weight: u32,
    tpm: Option<u64>,
    rpm: Option<u32>,
}

fn node() -> impl Strategy<Value = Node> {
    (
        edgy(u64::from(u32::MAX)).prop_map(|w| (w as u32).max(1)),
        prop::option::of(edgy(u64::MAX).prop_map(|n| n.max(1))),
        prop::option::of(edgy(u64::from(u32::MAX)).prop_map(|n| (n as u32).max(1))),
    )
        .prop_map(|(weight, tpm, rpm)| Node { weight, tpm, rpm })
}

fn policy() -> impl Strategy<Value = HealthPolicy> {
    select(vec![
        HealthPolicy::default(),
        HealthPolicy::dify(),
        HealthPolicy::litellm(),
        HealthPolicy::disabled(),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn extreme_values_never_panic_wrap_or_bypass_a_limit(
        nodes in prop::collection::vec(node(), 1..=3),
        strategy in select(BuiltinStrategy::all().to_vec()),
        policy in policy(),
        events in prop::collection::vec((step(), event()), 1..40),
    ) {
        let mut reg = Registry::new(Policy::NAME_ENDPOINT);
        let mut keys = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let mut b = Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://n{i}/v1"))
                .weight(n.weight);
            if let Some(t) = n.tpm {
                b = b.tpm(t);
            }
            if let Some(r) = n.rpm {
                b = b.rpm(r);
            }
            keys.push(reg.insert(b.build().unwrap()).unwrap());
        }
        let s = Selector::builder(&reg).strategy(strategy).health(policy.validated().unwrap()).build();
        // Tokens reported per deployment in the current minute of the clock
        // (saturating), and the minute they are for.
        let mut minute_tokens = vec![(u64::MAX, 0u64); nodes.len()];
        // Deployments out until the end of the range.
        let mut forever = vec![false; nodes.len()];
        let mut now = Duration::ZERO;
        for (dt, e) in events {
            now = now.saturating_add(dt);
            let ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
            let minute = ns / 60_000_000_000;
            match e {
                Event::Report { who, outcome, tokens } => {
                    let who = who % nodes.len();
                    s.report(&keys[who], Report::new(now, outcome).tokens(tokens));
                    let m = &mut minute_tokens[who];
                    *m = if m.0 == minute { (minute, m.1.saturating_add(tokens)) } else { (minute, tokens) };
                }
                Event::Select { tokens } => {
                    let mut req = Request::new("gpt-4").at(now);
                    if let Some(t) = tokens {
                        req = req.tokens(t);
                    }
                    let before = s.health(now);
                    if let Ok(pick) = s.select(&req) {
                        let i = keys.iter().position(|k| k == pick.key()).unwrap();
                        let h = &before[i];
                        let need = u64::from(tokens.unwrap_or(1).max(1));
                        if let Some(t) = nodes[i].tpm {
                            prop_assert!(
                                u128::from(h.tokens_per_minute) + u128::from(need) <= u128::from(t),
                                "picked {} over its tpm: {} + {need} > {t}", pick.key(), h.tokens_per_minute
                            );
                        }
                        if let Some(r) = nodes[i].rpm {
                            prop_assert!(h.requests_per_minute < u64::from(r));
                        }
                        prop_assert!(!forever[i], "picked {} after it went out for good", pick.key());
                    }
                }
            }
            for (i, h) in s.health(now).iter().enumerate() {
                let (m, sum) = minute_tokens[i];
                if m == minute {
                    prop_assert!(h.tokens_per_minute >= sum, "{} < {sum}: wrapped", h.tokens_per_minute);
                }
                if h.available_at == Some(END) {
                    forever[i] = true;
                }
                if forever[i] {
                    prop_assert!(matches!(h.state, State::Cooling | State::Ejected), "{:?} at {now:?}", h.state);
                }
            }
        }
        // At the very end, what went out for good is still out.
        let at_end = Request::new("gpt-4").at(Duration::MAX);
        if let Ok(pick) = s.select(&at_end) {
            let i = keys.iter().position(|k| k == pick.key()).unwrap();
            prop_assert!(!forever[i]);
        }
        let _ = s.explain(&at_end);
    }
}
