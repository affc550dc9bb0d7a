//! Statistical tests of the randomized and hashing strategies.
//!
//! Every test runs with a FIXED seed (and fixed affinity keys), so it is
//! deterministic: it cannot flake, and a change that skews a distribution
//! makes it fail for good. Each states its tolerance:
//!
//! - chi-square goodness of fit at significance p = 0.001 (a correct
//!   implementation fails one seed in a thousand; we use one fixed seed);
//! - consistent hashing shares within ±3 percentage points;
//! - power of two choices keeps the in-flight spread small under load;
//! - weighted least request (`power_of_two` with `in_flight_per_weight` and
//!   unequal weights) fits `weight / (in_flight + 1)^bias` (chi-square);
//! - bounded-load consistent hashing never exceeds its cap.

use std::collections::VecDeque;

use modelfleet::select::{
    BuiltinStrategy, ConsistentHash, LeastOutstanding, Load, PowerOfTwo, WeightedRandom,
};
use modelfleet::{Deployment, Policy, Registry, Request, Selector};

mod support;
use support::weighted;

const SEED: u64 = 0x5EED_2026;

/// Pearson's chi-square statistic of `observed` against `expected` counts.
fn chi_square(observed: &[u64], expected: &[f64]) -> f64 {
    observed
        .iter()
        .zip(expected)
        .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
        .sum()
}

/// Counts of `picks` picks per registry position, each pick dropped at once.
fn idle_counts(reg: &Registry, sel: &Selector, req: &Request, picks: usize) -> Vec<u64> {
    let mut counts = vec![0u64; reg.len()];
    for _ in 0..picks {
        let pick = sel.select(req).unwrap();
        counts[reg.position(pick.key()).unwrap()] += 1;
    }
    counts
}

/// In-flight counts of every deployment.
fn loads(reg: &Registry, sel: &Selector) -> Vec<u32> {
    reg.keys().map(|k| sel.in_flight(k).unwrap()).collect()
}

#[test]
fn weighted_random_fits_weights() {
    let weights = [1u32, 2, 3, 4, 10];
    let reg = weighted("gpt-4", &weights);
    let sel = Selector::with_seed(&reg, WeightedRandom::new(), SEED);
    let n = 100_000;
    let counts = idle_counts(&reg, &sel, &Request::new("gpt-4"), n);
    let total: u32 = weights.iter().sum();
    let expected: Vec<f64> = weights
        .iter()
        .map(|&w| n as f64 * f64::from(w) / f64::from(total))
        .collect();
    let chi2 = chi_square(&counts, &expected);
    // 5 categories: df = 4; the critical value at p = 0.001 is 18.47.
    assert!(chi2 < 18.47, "chi2 = {chi2:.2}, counts {counts:?}");
}

/// Weighted random over a filtered subset fits the subset's weights
/// (the filtered path walks the candidates instead of the tables).
#[test]
fn weighted_random_fits_weights_filtered() {
    let weights = [1u32, 5, 2, 3, 4];
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, w) in weights.iter().enumerate() {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://n{i}.test/v1"))
                .weight(*w)
                .label("region", if i == 1 { "us" } else { "eu" })
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    let sel = Selector::with_seed(&reg, WeightedRandom::new(), SEED);
    let n = 50_000;
    let counts = idle_counts(&reg, &sel, &Request::new("gpt-4").label("region", "eu"), n);
    assert_eq!(counts[1], 0, "the us deployment was picked");
    let eu = [0usize, 2, 3, 4];
    let total: u32 = eu.iter().map(|&i| weights[i]).sum();
    let observed: Vec<u64> = eu.iter().map(|&i| counts[i]).collect();
    let expected: Vec<f64> = eu
        .iter()
        .map(|&i| n as f64 * f64::from(weights[i]) / f64::from(total))
        .collect();
    let chi2 = chi_square(&observed, &expected);
    // 4 categories: df = 3; the critical value at p = 0.001 is 16.27.
    assert!(chi2 < 16.27, "chi2 = {chi2:.2}, counts {counts:?}");
}

/// What [`simulate_load`] saw.
struct LoadRun {
    /// Picks per deployment.
    counts: Vec<u64>,
    /// The largest `max - min` in-flight spread after any step.
    worst_spread: u32,
    /// The mean of that spread over all steps.
    mean_spread: f64,
}

/// Simulated load: each step selects and holds a pick; once `queue` picks
/// are outstanding, the oldest is dropped first (a bounded queue of
/// requests in flight). 40,000 steps over `n` equal deployments.
fn simulate_load(strategy: impl Into<BuiltinStrategy>, n: usize, queue: usize) -> LoadRun {
    let reg = weighted("gpt-4", &vec![1; n]);
    let sel = Selector::with_seed(&reg, strategy, SEED);
    let req = Request::new("gpt-4");
    let steps = 40_000;
    let mut counts = vec![0u64; n];
    let mut held = VecDeque::new();
    let (mut worst_spread, mut sum) = (0, 0u64);
    for _ in 0..steps {
        if held.len() == queue {
            drop(held.pop_front());
        }
        let pick = sel.select(&req).unwrap();
        counts[reg.position(pick.key()).unwrap()] += 1;
        held.push_back(pick);
        let l = loads(&reg, &sel);
        assert_eq!(l.iter().sum::<u32>() as usize, held.len());
        let spread = l.iter().max().unwrap() - l.iter().min().unwrap();
        worst_spread = worst_spread.max(spread);
        sum += u64::from(spread);
    }
    drop(held);
    assert!(loads(&reg, &sel).iter().all(|&l| l == 0));
    LoadRun {
        counts,
        worst_spread,
        mean_spread: sum as f64 / f64::from(steps),
    }
}

#[test]
fn power_of_two_balances_load() {
    // 8 equal deployments, 32 picks outstanding (4 per deployment on average).
    let (n, queue) = (8, 32);
    let p2c = simulate_load(PowerOfTwo::default(), n, queue);
    let random = simulate_load(WeightedRandom::new(), n, queue);
    // Tolerances (measured at this seed: worst 7, mean 2.95 for
    // power_of_two; worst 13, mean 5.7 for one random choice):
    // - the in-flight spread (max - min) never exceeds 9 in 40,000 steps;
    // - its mean stays below 3.5;
    // - one random choice spreads at least 1.5 times as wide on average,
    //   so the comparison of loads demonstrably does something.
    // Two choices bound the excess of the maximum over the average by
    // O(log log n) (Mitzenmacher 2001); a min of 0 happens when the oldest
    // picks of one deployment leave together.
    assert!(p2c.worst_spread <= 9, "worst spread {}", p2c.worst_spread);
    assert!(p2c.mean_spread < 3.5, "mean spread {:.2}", p2c.mean_spread);
    assert!(
        random.mean_spread > 1.5 * p2c.mean_spread,
        "one random choice {:.2} vs power_of_two {:.2}",
        random.mean_spread,
        p2c.mean_spread
    );
    // Equal deployments share the picks evenly. 8 categories: df = 7; the
    // critical value at p = 0.001 is 24.32.
    let total: u64 = p2c.counts.iter().sum();
    let expected = vec![total as f64 / n as f64; n];
    let chi2 = chi_square(&p2c.counts, &expected);
    assert!(chi2 < 24.32, "chi2 = {chi2:.2}, counts {:?}", p2c.counts);
}

#[test]
fn consistent_hash_follows_weights() {
    let reg = weighted("gpt-4", &[1, 3]);
    let sel = Selector::with_seed(&reg, ConsistentHash::default(), SEED);
    let keys = 20_000;
    let mut heavy = 0;
    for u in 0..keys {
        let pick = sel
            .select(&Request::new("gpt-4").affinity(&format!("user-{u}")))
            .unwrap();
        if reg.position(pick.key()) == Some(1) {
            heavy += 1;
        }
    }
    let share = f64::from(heavy) / f64::from(keys);
    // Tolerance: the weight-3 deployment holds 75% ± 3 percentage points of
    // the keys (the weight-1 one 25% ± 3). The ring has 160 points per block
    // of 16 units, thinned to the weights; its arcs, not the 20,000 keys,
    // dominate the error.
    assert!((0.72..=0.78).contains(&share), "weight-3 share {share:.4}");
}

/// `ceil(factor × held / n)`, the bounded-load cap after `held` picks, in
/// integers for factor 1.25 = 5/4.
fn cap_125(held: u64, n: u64) -> u64 {
    (5 * held).div_ceil(4 * n)
}

/// Holds every pick of a skewed key sequence (half the requests are one
/// hot user, the rest cycle through 7 users), and returns the first step at
/// which some deployment's in-flight count exceeded `ceil(1.25 × held / n)`
/// (the cap `ceil(1.25 × (total + 1) / n)` of the pick just made).
fn first_overload(strategy: ConsistentHash, n: usize) -> Option<(u64, Vec<u32>)> {
    let reg = weighted("gpt-4", &vec![1; n]);
    let sel = Selector::with_seed(&reg, strategy, SEED);
    let mut held = Vec::new();
    let mut overload = None;
    for step in 0..600u64 {
        let user = if step % 2 == 0 {
            "hot-user".to_owned()
        } else {
            format!("user-{}", step % 7)
        };
        held.push(sel.select(&Request::new("gpt-4").affinity(&user)).unwrap());
        let l = loads(&reg, &sel);
        let cap = cap_125(held.len() as u64, n as u64);
        if overload.is_none() && l.iter().any(|&x| u64::from(x) > cap) {
            overload = Some((step, l));
        }
    }
    assert_eq!(
        loads(&reg, &sel).iter().map(|&x| u64::from(x)).sum::<u64>(),
        held.len() as u64
    );
    overload
}

#[test]
fn consistent_hash_bounded_load_caps_in_flight() {
    for n in [2, 3, 5, 8] {
        let bounded = ConsistentHash::with_bounded_load(1.25).unwrap();
        assert_eq!(first_overload(bounded, n), None, "n = {n}");
        // The same skewed sequence without the bound does overload: the
        // check above can fail.
        assert!(
            first_overload(ConsistentHash::default(), n).is_some(),
            "n = {n}: plain consistent hashing stayed under the cap"
        );
    }
}

#[test]
fn least_outstanding_breaks_ties_fairly() {
    let reg = weighted("gpt-4", &[1, 1, 1, 1]);
    let sel = Selector::with_seed(&reg, LeastOutstanding, SEED);
    let n = 40_000;
    // Idle fleet: every pick is dropped at once, so all four always tie.
    let counts = idle_counts(&reg, &sel, &Request::new("gpt-4"), n);
    let expected = vec![n as f64 / 4.0; 4];
    let chi2 = chi_square(&counts, &expected);
    // 4 categories: df = 3; the critical value at p = 0.001 is 16.27. A
    // first-registered tie-break (LiteLLM's least-busy) would give all
    // 40,000 picks to n0 and chi2 = 120,000.
    assert!(chi2 < 16.27, "chi2 = {chi2:.2}, counts {counts:?}");
}

/// `power_of_two` with `in_flight_per_weight` over weights 1 and 2, with
/// `held` picks of the weight-2 deployment in flight: `n` picks, each
/// dropped at once, must fit shares `w / (in_flight + 1)^bias`.
fn assert_weighted_least_request(bias: f64, held: usize) {
    let weights = [1u32, 2];
    let reg = weighted("gpt-4", &weights);
    let p2c = PowerOfTwo::new(Load::InFlightPerWeight)
        .with_active_request_bias(bias)
        .unwrap();
    let sel = Selector::with_seed(&reg, p2c, SEED);
    let req = Request::new("gpt-4");
    let light = reg.keys().next().unwrap().clone();
    let heavy_only = Request::new("gpt-4").exclude(light);
    let _held: Vec<_> = (0..held)
        .map(|_| sel.select(&heavy_only).unwrap())
        .collect();
    assert_eq!(loads(&reg, &sel), [0, held as u32]);
    let n = 30_000;
    let counts = idle_counts(&reg, &sel, &req, n);
    let effective = [1.0, 2.0 / (held as f64 + 1.0).powf(bias)];
    let sum: f64 = effective.iter().sum();
    let expected: Vec<f64> = effective.iter().map(|e| n as f64 * e / sum).collect();
    let chi2 = chi_square(&counts, &expected);
    // 2 categories: df = 1; the critical value at p = 0.001 is 10.83.
    assert!(
        chi2 < 10.83,
        "bias {bias}, {held} held: chi2 = {chi2:.2}, counts {counts:?}, expected {expected:?}"
    );
}

#[test]
fn weighted_least_request_splits_idle_picks_by_weight() {
    // Idle: 1:2 whatever the bias.
    for bias in [1.0, 0.0, 0.5, 2.0] {
        assert_weighted_least_request(bias, 0);
    }
}

#[test]
fn weighted_least_request_follows_in_flight_and_bias() {
    // 3 in flight on the weight-2 deployment: 2/4 (bias 1), 2/16 (bias 2),
    // 2/2 (bias 0.5), 2 (bias 0: plain weighted random).
    for bias in [1.0, 2.0, 0.5, 0.0] {
        assert_weighted_least_request(bias, 3);
    }
    assert_weighted_least_request(1.0, 1);
}
