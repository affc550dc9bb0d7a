//! The consistent-hash ring through the public API: minimal disruption at
//! any weights and tier size, and shares in proportion to the weights.
//!
//! - removing a deployment moves only the keys it held, and adding one
//!   moves only keys to it, about its share of the weight: on tiers of 1 to
//!   400 members (2 to 400 for removal) whose weights include 1, small, large, the heaviest the
//!   ring tells apart and above, with totals far above 6,250 units;
//! - the same for the tiers that cross 6,250 units: 63 members of weight
//!   100, 6,251 of weight 1, weights 3,125, 3,125 and 1;
//! - shares follow weights for mixes such as 1 and 2, 1 and 1,000, and
//!   3,125, 3,125 and 1, and weights above [`Ring::MAX_WEIGHT`] count as
//!   that weight.
//!
//! Keys are fixed strings (salted per case in the property tests), so the
//! statistical checks are deterministic; each states its tolerance.

use modelfleet::select::{ConsistentHash, Ring};
use modelfleet::{Deployment, ModelKey, Policy, Registry, Request, Selector};
use proptest::prelude::*;

/// Deployments of `m0` with the given weights, endpoints salted so that
/// ring positions vary between cases; `skip` leaves one out.
fn tier(weights: &[u32], salt: u64, skip: Option<usize>) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, &w) in weights.iter().enumerate() {
        if skip == Some(i) {
            continue;
        }
        reg.insert(
            Deployment::builder("openai", "m0")
                .endpoint(&format!("http://s{salt}-n{i}.test/v1"))
                .weight(w)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    reg
}

/// The key text of affinity key `i` under `salt`.
fn user(salt: u64, i: usize) -> String {
    format!("u{salt}-{i}")
}

/// The deployment consistent hashing picks for `user`.
fn owner(sel: &Selector, user: &str) -> ModelKey {
    sel.select(&Request::new("m0").affinity(user))
        .expect("a candidate exists")
        .key()
        .clone()
}

/// The key of deployment `i` of [`tier`].
fn key_of(weights: &[u32], salt: u64, i: usize) -> ModelKey {
    tier(weights, salt, None).keys().nth(i).unwrap().clone()
}

/// Removing deployment `removed` from `weights`: every one of `keys` keys
/// not held by it keeps its deployment, and the ones it held move.
fn check_removal(weights: &[u32], salt: u64, removed: usize, keys: usize) {
    let gone = key_of(weights, salt, removed);
    let full = Selector::new(&tier(weights, salt, None), ConsistentHash::default());
    let less = Selector::new(
        &tier(weights, salt, Some(removed)),
        ConsistentHash::default(),
    );
    for i in 0..keys {
        let u = user(salt, i);
        let (before, after) = (owner(&full, &u), owner(&less, &u));
        if before == gone {
            assert_ne!(after, gone, "{u} stayed on the removed deployment");
        } else {
            assert_eq!(
                after, before,
                "{u} moved from {before} though {gone} was removed"
            );
        }
    }
}

/// Adding `added` (weight) to `weights`: of `keys` keys, only keys moving
/// to the new deployment move. Returns the fraction that moved and the new
/// deployment's expected share (weights above [`Ring::MAX_WEIGHT`] count as
/// that weight).
fn check_addition(weights: &[u32], added: u32, salt: u64, keys: usize) -> (f64, f64) {
    let mut more = weights.to_vec();
    more.push(added);
    let new = key_of(&more, salt, weights.len());
    let small = Selector::new(&tier(weights, salt, None), ConsistentHash::default());
    let big = Selector::new(&tier(&more, salt, None), ConsistentHash::default());
    let mut moved = 0usize;
    for i in 0..keys {
        let u = user(salt, i);
        let (before, after) = (owner(&small, &u), owner(&big, &u));
        if after != before {
            assert_eq!(
                after, new,
                "{u} moved from {before} to another old deployment"
            );
            moved += 1;
        }
    }
    let eff = |w: u32| f64::from(w.min(Ring::MAX_WEIGHT));
    let total: f64 = more.iter().map(|&w| eff(w)).sum();
    (moved as f64 / keys as f64, eff(added) / total)
}

/// Whether `got`, a fraction of `keys` keys, is about `share`. Tolerance:
/// 4 standard deviations of the ring's arcs plus 4 of sampling, plus one
/// key. Arcs: the smaller side (the member, or the rest of the tier) holds
/// at least one block of 160 points, and a share made of `P` arcs varies by
/// about `1/√P` of itself, so by `min(s, 1 − s) / √160`; the acceptance
/// test depends on the key, which smooths the share further. Sampling:
/// `√(s(1 − s) / keys)`.
fn about_share(got: f64, share: f64, keys: usize) -> bool {
    let arcs = share.min(1.0 - share) / 160f64.sqrt();
    let sampling = (share * (1.0 - share) / keys as f64).sqrt();
    (got - share).abs() <= 4.0 * (arcs + sampling) + 1.0 / keys as f64
}

/// Weights of every kind: 1, small, large, around and above the heaviest
/// the ring tells apart (few of those, which hold 655,360 points each).
fn weight() -> impl Strategy<Value = u32> {
    prop_oneof![
        30 => Just(1u32),
        30 => 2..=16u32,
        25 => 17..=400u32,
        12 => 401..=2_000u32,
        1 => 30_000..=Ring::MAX_WEIGHT,
        1 => Just(Ring::MAX_WEIGHT),
        1 => Ring::MAX_WEIGHT + 1..=u32::MAX,
    ]
}

/// Tiers of `min` to 400 members, small ones often.
fn weights(min: usize) -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        prop::collection::vec(weight(), min..=8),
        prop::collection::vec(weight(), 9..=400),
    ]
}

/// Keys checked per case.
const KEYS: usize = 2_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Removing any one deployment moves only the keys it held, at any
    /// weights and tier size.
    #[test]
    fn removal_moves_only_its_keys(
        weights in weights(2),
        salt in any::<u64>(),
        removed in any::<prop::sample::Index>(),
    ) {
        check_removal(&weights, salt, removed.index(weights.len()), KEYS);
    }

    /// Adding a deployment moves keys only to it, about its share of the
    /// weight (tolerance: [`about_share`]).
    #[test]
    fn addition_moves_about_its_share_to_it(
        weights in weights(1),
        added in weight(),
        salt in any::<u64>(),
    ) {
        let (moved, share) = check_addition(&weights, added, salt, KEYS);
        prop_assert!(about_share(moved, share, KEYS), "moved {} for a share of {}", moved, share);
    }
}

#[test]
fn sixty_three_of_weight_100() {
    let weights = vec![100; 63];
    check_removal(&weights, 1, 0, 4_000);
    check_removal(&weights, 1, 62, 4_000);
    let (moved, share) = check_addition(&weights[..62], 100, 1, 4_000);
    assert!(
        about_share(moved, share, 4_000),
        "moved {moved} for a share of {share}"
    );
}

#[test]
fn six_thousand_two_hundred_fifty_one_of_weight_1() {
    let weights = vec![1; 6_251];
    check_removal(&weights, 2, 6_250, 4_000);
    check_removal(&weights, 2, 3_000, 4_000);
    let (moved, share) = check_addition(&weights[..6_250], 1, 2, 4_000);
    assert!(
        about_share(moved, share, 4_000),
        "moved {moved} for a share of {share}"
    );
}

#[test]
fn weights_3125_3125_and_1() {
    // The light member holds few keys, so many keys are checked.
    let keys = 100_000;
    check_removal(&[3_125, 3_125, 1], 3, 2, keys);
    check_removal(&[3_125, 3_125, 1], 3, 0, keys);
    let (moved, share) = check_addition(&[3_125, 3_125], 1, 3, keys);
    assert!(
        about_share(moved, share, keys),
        "moved {moved} for a share of {share}"
    );
}

/// The share of the keys each deployment of `weights` holds, over `keys`
/// affinity keys.
fn shares(weights: &[u32], keys: usize) -> Vec<f64> {
    let reg = tier(weights, 0, None);
    let sel = Selector::new(&reg, ConsistentHash::default());
    let mut counts = vec![0usize; weights.len()];
    for i in 0..keys {
        counts[reg.position(&owner(&sel, &user(0, i))).unwrap()] += 1;
    }
    counts.iter().map(|&c| c as f64 / keys as f64).collect()
}

/// Shares follow weights, for light and heavy mixes. Tolerance per member:
/// [`about_share`]; for the weight-1 member beside weight 1,000 (a share of
/// about 0.1%), that is ±0.085 percentage points, so a share off by a
/// factor of 2 fails.
#[test]
fn shares_follow_weights() {
    let keys = 60_000;
    for weights in [
        &[1, 2][..],
        &[1, 1_000],
        &[3_125, 3_125, 1],
        &[1, 7, 16, 17, 100, 4_000],
    ] {
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        for (i, got) in shares(weights, keys).into_iter().enumerate() {
            let want = f64::from(weights[i]) / total;
            assert!(
                about_share(got, want, keys),
                "{weights:?}: weight {} holds {got:.5}, expected {want:.5}",
                weights[i]
            );
        }
    }
}

/// A weight above [`Ring::MAX_WEIGHT`] counts as `MAX_WEIGHT` on the ring:
/// 65,536 beside 1,000,000 or `u32::MAX` share the keys evenly, within
/// [`about_share`] of one half.
#[test]
fn weights_above_the_cap_count_as_the_cap() {
    assert_eq!(Ring::MAX_WEIGHT, 65_536);
    let keys = 20_000;
    for heavy in [Ring::MAX_WEIGHT + 1, 1_000_000, u32::MAX] {
        let got = shares(&[Ring::MAX_WEIGHT, heavy], keys);
        assert!(
            about_share(got[0], 0.5, keys),
            "65,536 beside {heavy}: {got:?}"
        );
    }
}
