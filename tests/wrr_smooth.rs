//! Weighted round robin against a reference implementation of nginx's
//! smooth weighted round robin (written here, from nginx's
//! `ngx_http_upstream_get_peer`): on the unfiltered tier, no deployment's
//! longest gap between two consecutive picks exceeds the one nginx gives
//! it, and every window of `Σw` consecutive picks holds exactly `w_i`
//! picks of deployment i, below and above the schedule bound.

use modelfleet::select::WeightedRoundRobin;
use modelfleet::{Registry, Request, Selector};
use proptest::prelude::*;

mod support;
use support::weighted;

/// The reduced period above which the selector does not precompute the
/// nginx schedule (it is documented on `WeightedRoundRobin`).
const BOUND: u64 = 65_536;

/// nginx's smooth weighted round robin: every turn, each peer's current
/// weight grows by its weight; the largest current (ties: first in order)
/// is picked and loses the total.
fn nginx(weights: &[u32], picks: usize) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(picks);
    for _ in 0..picks {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The period of a rotation over `weights`: their sum over their gcd.
fn period(weights: &[u32]) -> u64 {
    let g = weights.iter().fold(0, |g, &w| gcd(g, u64::from(w)));
    weights.iter().map(|&w| u64::from(w)).sum::<u64>() / g
}

/// The longest gap between two consecutive picks of each of `n`
/// deployments in `seq` (which spans two periods, so every gap of the
/// periodic sequence, wrap-around included, appears in it).
fn longest_gaps(seq: &[usize], n: usize) -> Vec<usize> {
    let mut last = vec![None; n];
    let mut gaps = vec![0; n];
    for (t, &i) in seq.iter().enumerate() {
        if let Some(l) = last[i] {
            gaps[i] = gaps[i].max(t - l);
        }
        last[i] = Some(t);
    }
    gaps
}

/// `picks` consecutive plain picks of `reg`'s "gpt-4", as registry positions.
fn picks(reg: &Registry, seed: u64, picks: usize) -> Vec<usize> {
    let sel = Selector::with_seed(reg, WeightedRoundRobin::new(), seed);
    let req = Request::new("gpt-4");
    (0..picks)
        .map(|_| reg.position(sel.select(&req).unwrap().key()).unwrap())
        .collect()
}

/// Every window of `Σw` consecutive picks in `seq` holds exactly `w_i`
/// picks of deployment i.
fn assert_exact_windows(seq: &[usize], weights: &[u32]) {
    let total: usize = weights.iter().map(|&w| w as usize).sum();
    let mut counts = vec![0u32; weights.len()];
    for (t, &i) in seq.iter().enumerate() {
        counts[i] += 1;
        if t >= total {
            counts[seq[t - total]] -= 1;
        }
        if t + 1 >= total {
            assert_eq!(counts, weights, "window ending at {t}");
        }
    }
}

#[test]
fn fifty_thirty_twenty_waits_no_longer_than_nginx() {
    let weights = [50, 30, 20];
    let reg = weighted("gpt-4", &weights);
    let seq = picks(&reg, 7, 200);
    let gaps = longest_gaps(&seq, 3);
    let reference = longest_gaps(&nginx(&weights, 200), 3);
    // nginx: the weight-20 deployment waits at most 5 picks.
    assert_eq!(reference[2], 5);
    for i in 0..3 {
        assert!(
            gaps[i] <= reference[i],
            "{i}: {gaps:?} vs nginx {reference:?}"
        );
    }
    assert_exact_windows(&seq, &weights);
}

/// Weight vectors that reach the interesting cases: equal weights (ties),
/// one heavy and many light, common factors (gcd reduction), and large
/// weights.
fn small_period_weights() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        prop::collection::vec(1u32..6, 1..12),
        (1u32..4, prop::collection::vec(Just(1u32), 1..8))
            .prop_map(|(k, v)| v.into_iter().map(|w| w * k).collect()),
        (50u32..2_000, prop::collection::vec(1u32..4, 1..10)).prop_map(|(heavy, mut v)| {
            v.insert(0, heavy);
            v
        }),
        (1u32..1_000, prop::collection::vec(1u32..40, 1..8))
            .prop_map(|(k, v)| v.into_iter().map(|w| w * k).collect()),
        prop::collection::vec(
            prop_oneof![Just(1u32), Just(7), Just(1_000), Just(9_999)],
            1..6
        ),
        (1u32..16).prop_map(|n| vec![u32::MAX / 16; n as usize]),
    ]
    .prop_filter("period within the bound", |w| period(w) <= BOUND)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gaps_never_exceed_nginx(weights in small_period_weights(), seed in any::<u64>()) {
        let reg = weighted("gpt-4", &weights);
        let p = period(&weights) as usize;
        let seq = picks(&reg, seed, 2 * p);
        let gaps = longest_gaps(&seq, weights.len());
        let reference = longest_gaps(&nginx(&weights, 2 * p), weights.len());
        for i in 0..weights.len() {
            prop_assert!(gaps[i] <= reference[i], "{}: {:?} vs nginx {:?}", i, gaps, reference);
        }
        // The total may exceed what a test can walk; the period holds the
        // reduced weights exactly.
        let g = weights.iter().fold(0, |g, &w| gcd(g, u64::from(w))) as u32;
        let reduced: Vec<u32> = weights.iter().map(|&w| w / g).collect();
        assert_exact_windows(&seq, &reduced);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Above the bound there is no precomputed schedule: the rotation
    /// still gives exact windows.
    #[test]
    fn windows_stay_exact_above_the_bound(
        heavy in 65_537u32..90_000,
        light in prop::collection::vec(1u32..4, 1..4),
        seed in any::<u64>(),
    ) {
        let mut weights = light;
        weights.insert(0, heavy);
        prop_assume!(period(&weights) > BOUND);
        let reg = weighted("gpt-4", &weights);
        let total: usize = weights.iter().map(|&w| w as usize).sum();
        let seq = picks(&reg, seed, total + 64);
        assert_exact_windows(&seq, &weights);
    }
}

#[test]
fn at_the_bound_the_schedule_is_nginx_s() {
    // Period exactly the bound: the largest precomputed schedule.
    let weights = [65_535, 1];
    assert_eq!(period(&weights), BOUND);
    let reg = weighted("gpt-4", &weights);
    let p = BOUND as usize;
    let seq = picks(&reg, 11, 2 * p);
    let gaps = longest_gaps(&seq, 2);
    let reference = longest_gaps(&nginx(&weights, 2 * p), 2);
    assert!(gaps[1] <= reference[1], "{gaps:?} vs nginx {reference:?}");
    assert_exact_windows(&seq, &weights);
}
