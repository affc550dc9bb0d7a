//! [`Ring`]: the consistent-hash ring of one tier.

use std::fmt;

use super::search::Sorted;
use super::tables::Slot;

/// A consistent-hash ring over one tier: points on a 64-bit circle, each
/// owned by a tier member, walked with a per-key acceptance test (a thinned
/// ring).
///
/// A member of weight `w` (up to [`Ring::MAX_WEIGHT`]) gets
/// `160 × ⌈w / 16⌉` points, placed at the first values of a SplitMix64
/// sequence seeded by the xxh3 hash of its key text, and an acceptance
/// probability `a = w / (16 × ⌈w / 16⌉)`, in
/// (0, 1]. A key hash `h` walks the points clockwise from the first at or
/// after `h`; a point is *accepted* when a stable mix of `h` and the
/// point's hash falls below its member's `a` (always, when `a` is 1). The
/// member owning the first accepted point holds the key.
///
/// - **Minimal disruption, at any weights and tier size**: a member's points
///   and its acceptance test depend only on its own key and weight. Removing
///   a member deletes only its points; a key held by another member walked
///   over them rejecting them, so it keeps its member. Adding one moves only
///   the keys whose first accepted point is one of the new member's.
/// - **Shares follow weights**: thinning `160 × ⌈w / 16⌉` points by `a`
///   leaves `10 × w` accepted points per key in expectation, in proportion
///   to the weight whatever the rest of the tier.
/// - **Costs**: O(Σ ⌈w / 16⌉) points per tier, never depending on the other
///   members' weights (each point is a `u64` hash and a `u32` owner, plus
///   its share of the bucket index; building sorts them, O(p log p)). No
///   cap applies to the tier: heavy weights cost memory in proportion
///   (a member at `MAX_WEIGHT` holds 655,360 points), so keep weights as
///   small ratios; a lookup finds its start in O(1) on average (a
///   bucket index over the points) and then visits O(1) points in
///   expectation (at most 16 on average, when every member has weight 1).
/// - **Heavy members**: a weight above [`Ring::MAX_WEIGHT`] counts as
///   `MAX_WEIGHT` on the ring, which bounds the points of one member; so
///   shares follow weights exactly up to that weight.
/// - **Fallback**: a walk once around the circle may, rarely, accept no
///   point (only with very few light members). [`successors`](Ring::successors)
///   then continues with a second turn that accepts every point, so a
///   member is always found; this is the only case where the acceptance
///   test is bypassed.
///
/// Drained members (weight 0) are not on the ring.
///
/// ```
/// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
///
/// /// Consistent hashing without bounded load, by hand.
/// #[derive(Debug)]
/// struct OnRing;
///
/// impl Strategy for OnRing {
///     fn choose<'a>(&self, c: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
///         let ring = c.ring()?;
///         // Weight 1 and weight 100: one block of 160 points, and seven.
///         assert_eq!(ring.len(), 160 + 7 * 160);
///         assert!(!ring.is_empty());
///         ring.successors(ctx.affinity_hash()?).find_map(|p| c.get(p))
///     }
///
///     fn uses_ring(&self) -> bool {
///         true
///     }
/// }
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").weight(100).build()?)?;
/// let selector = Selector::builder(&reg).custom_strategy(Box::new(OnRing)).build();
/// let req = Request::new("gpt-4").affinity("user-42");
/// let first = selector.select(&req)?.key().clone();
/// assert_eq!(selector.select(&req)?.key(), &first);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone)]
pub struct Ring {
    /// Point hashes, ascending, with a bucket index: finding a key's point
    /// reads a bucket and the few points in it (O(1) on average) instead of
    /// one point per level of a binary search.
    hashes: Sorted,
    /// The tier position owning each point.
    owners: Box<[u32]>,
    /// Per tier position: a point of that member accepts a key hash `h`
    /// when `hash::pair(h, point) < threshold`; [`ALWAYS`] accepts every
    /// key without mixing.
    thresholds: Box<[u64]>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring").field("points", &self.len()).finish()
    }
}

/// Points per bucket of the ring's index, on average.
const POINTS_PER_BUCKET: usize = 4;

/// Points per block of weight.
const POINTS: u64 = 160;
/// Units of weight per block: the points of a block are thinned to the
/// member's weight within it, so a walk visits at most `BLOCK` points per
/// accepted one on average.
const BLOCK: u64 = 16;
/// Blocks of one member, at most: bounds its points whatever its weight.
const MAX_BLOCKS: u64 = 4_096;
/// The threshold of a member whose points accept every key.
const ALWAYS: u64 = u64::MAX;

/// The points of a member of weight `w` and its acceptance threshold (no
/// point for weight 0).
fn points_and_threshold(w: u32) -> (u64, u64) {
    let w = u64::from(w).min(u64::from(Ring::MAX_WEIGHT));
    let blocks = w.div_ceil(BLOCK);
    let threshold = if w % BLOCK == 0 {
        ALWAYS
    } else {
        // `w / (BLOCK × blocks)` of 2^64; below 2^64 × 15/16, so never
        // `ALWAYS`.
        ((u128::from(w) << 64) / u128::from(BLOCK * blocks)) as u64
    };
    (blocks * POINTS, threshold)
}

impl Ring {
    /// The heaviest weight the ring tells apart: a member of a greater
    /// weight counts as this weight on the ring (its points and its share).
    ///
    /// ```
    /// use modelfleet::select::Ring;
    /// assert_eq!(Ring::MAX_WEIGHT, 65_536);
    /// ```
    pub const MAX_WEIGHT: u32 = (MAX_BLOCKS * BLOCK) as u32;

    /// The ring of the tier whose members (slot indices) are `members`.
    pub(crate) fn build(slots: &[Slot], members: &[u32]) -> Self {
        let names: Vec<String> = members
            .iter()
            .map(|&i| slots[i as usize].key.to_string())
            .collect();
        Self::of_members(
            names
                .iter()
                .zip(members)
                .map(|(name, &i)| (name.as_bytes(), slots[i as usize].weight)),
        )
    }

    /// The ring of members given as (key text, weight), in tier order.
    fn of_members<'n>(members: impl Iterator<Item = (&'n [u8], u32)> + Clone) -> Self {
        let total: u64 = members
            .clone()
            .map(|(_, w)| points_and_threshold(w).0)
            .sum();
        let mut points = Vec::with_capacity(total as usize);
        let mut thresholds = Vec::new();
        for (pos, (name, w)) in members.enumerate() {
            let (count, threshold) = points_and_threshold(w);
            thresholds.push(threshold);
            let seed = crate::hash::stable(name);
            for k in 0..count {
                points.push((crate::hash::sequence(seed, k), pos as u32));
            }
        }
        // Ties (vanishingly rare) resolve by position, so the ring is a pure
        // function of the members.
        points.sort_unstable();
        Self::from_sorted(&points, thresholds.into_boxed_slice())
    }

    /// A ring over `points` (hash, owner), sorted, with one threshold per
    /// owner.
    fn from_sorted(points: &[(u64, u32)], thresholds: Box<[u64]>) -> Self {
        Self {
            hashes: Sorted::new(points.iter().map(|&(h, _)| h).collect(), POINTS_PER_BUCKET),
            owners: points.iter().map(|&(_, p)| p).collect(),
            thresholds,
        }
    }

    /// The first point whose hash is at least `hash` (the number of points
    /// if none).
    fn first_at_or_after(&self, hash: u64) -> usize {
        self.hashes.lower_bound(hash)
    }

    /// Whether point `i` accepts the key hash `hash`.
    #[inline]
    fn accepts(&self, hash: u64, i: usize) -> bool {
        let threshold = self.thresholds[self.owners[i] as usize];
        threshold == ALWAYS || crate::hash::pair(hash, self.hashes.values()[i]) < threshold
    }

    /// The number of points.
    ///
    /// See [`Ring`] for an example.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether the ring has no points.
    ///
    /// See [`Ring`] for an example.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Tier positions of the points at or after `hash` that accept it,
    /// clockwise, once around the circle; then, as a fallback, the
    /// positions of all the points clockwise once more, accepted or not (a
    /// member appears once per point yielded). The first position is the
    /// key's member; a strategy that skips some members (unavailable,
    /// overloaded) takes the next, which keeps keys in place as members
    /// come and go.
    ///
    /// Finding the start is O(1) on average (an index of the ring's
    /// buckets narrows the search to a few points); each accepted point
    /// costs O(1) points visited in expectation (see [`Ring`]). The
    /// iterator allocates nothing.
    ///
    /// See [`Ring`] for an example.
    pub fn successors(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.first_at_or_after(hash);
        let turn = move || (start..self.len()).chain(0..start);
        turn()
            .filter(move |&i| self.accepts(hash, i))
            .chain(turn())
            .map(|i| self.owners[i] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::{ALWAYS, BLOCK, POINTS, Ring, points_and_threshold};
    use proptest::prelude::*;

    /// splitmix64 steps: fixed, well-spread test hashes.
    fn hashes(seed: u64) -> impl Iterator<Item = u64> {
        let mut s = seed;
        std::iter::repeat_with(move || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            crate::hash::pair(s, 0)
        })
    }

    /// A ring of members named `m0`, `m1`, … with the given weights.
    fn ring(weights: &[u32]) -> Ring {
        let names: Vec<String> = (0..weights.len()).map(|i| format!("m{i}")).collect();
        Ring::of_members(
            names
                .iter()
                .map(String::as_bytes)
                .zip(weights.iter().copied()),
        )
    }

    #[test]
    fn points_and_thresholds_follow_blocks_and_cap() {
        let half = 1u64 << 63;
        assert_eq!(points_and_threshold(0), (0, ALWAYS));
        assert_eq!(points_and_threshold(1), (160, half / 8));
        assert_eq!(points_and_threshold(8), (160, half));
        assert_eq!(points_and_threshold(16), (160, ALWAYS));
        assert_eq!(
            points_and_threshold(17),
            (320, (17u128 << 64).div_euclid(32) as u64)
        );
        assert_eq!(
            points_and_threshold(100),
            (7 * 160, (100u128 << 64).div_euclid(112) as u64)
        );
        let cap = (4_096 * 160, ALWAYS);
        assert_eq!(points_and_threshold(Ring::MAX_WEIGHT), cap);
        assert_eq!(points_and_threshold(Ring::MAX_WEIGHT + 1), cap);
        assert_eq!(points_and_threshold(u32::MAX), cap);
        assert_eq!(ring(&[1, 0, 16, 17]).len(), 160 + 160 + 320);
    }

    /// `successors` yields the accepted points once around, then every
    /// point once around, starting at the first point at or after the hash.
    #[test]
    fn successors_are_accepted_points_then_every_point() {
        let ring = ring(&[1, 3, 16, 40]);
        for h in hashes(1).take(500) {
            let start = ring.first_at_or_after(h);
            let turn: Vec<usize> = (start..ring.len()).chain(0..start).collect();
            let want: Vec<usize> = turn
                .iter()
                .filter(|&&i| ring.accepts(h, i))
                .chain(&turn)
                .map(|&i| ring.owners[i] as usize)
                .collect();
            assert_eq!(ring.successors(h).collect::<Vec<_>>(), want, "hash {h}");
        }
    }

    /// A lone weight-1 member accepts no point for about 3 hashes in
    /// 100,000 ((15/16)^160); such a hash still finds it, through the
    /// fallback turn.
    #[test]
    fn a_turn_accepting_nothing_falls_back_to_every_point() {
        let ring = ring(&[1]);
        let lost = hashes(2)
            .take(1_000_000)
            .find(|&h| (0..ring.len()).all(|i| !ring.accepts(h, i)))
            .expect("a hash that no point accepts");
        let walk: Vec<usize> = ring.successors(lost).collect();
        assert_eq!(walk, vec![0; ring.len()]);
    }

    /// Points accept keys at the member's rate, independently, and a walk
    /// tests at most `BLOCK` points per accepted one on average: over 20,000
    /// hashes on a tier of weight-1 members with short key texts (whose
    /// points must not coincide), the points are distinct and the mean
    /// number of points tested until one accepts is within 10% of 16 (its
    /// standard error is about 16 / √20,000, under 1%).
    #[test]
    fn walks_test_about_block_points() {
        let ring = ring(&[1; 50]);
        let mut points = ring.hashes.values().to_vec();
        points.dedup();
        assert_eq!(points.len(), ring.len());
        let keys = 20_000;
        let tested: usize = hashes(3)
            .take(keys)
            .map(|h| {
                let start = ring.first_at_or_after(h);
                let mut turn = (start..ring.len()).chain(0..start);
                1 + turn.position(|i| ring.accepts(h, i)).unwrap()
            })
            .sum();
        let mean = tested as f64 / keys as f64;
        assert!(
            (mean - BLOCK as f64).abs() < 0.1 * BLOCK as f64,
            "mean walk {mean}"
        );
        assert_eq!(ring.len() as u64, 50 * POINTS);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Removing a member changes the first accepted point of exactly the
        /// hashes it held; adding one, of exactly the hashes it takes. Tiers
        /// of 2 to 302 members, weights from 1 to above the cap (up to two
        /// members near or above it, 655,360 points each).
        #[test]
        fn members_move_only_their_own_hashes(
            mut weights in prop::collection::vec(
                prop_oneof![1..=16u32, 17..=400u32],
                2..=300,
            ),
            heavy in prop::collection::vec(Ring::MAX_WEIGHT - 10..=u32::MAX, 0..=2),
            removed in any::<prop::sample::Index>(),
            seed in any::<u64>(),
        ) {
            weights.extend(heavy);
            let removed = removed.index(weights.len());
            let full = ring(&weights);
            // The same members, `removed` drained: same positions, no points.
            let mut less_weights = weights.clone();
            less_weights[removed] = 0;
            let less = ring(&less_weights);
            for h in hashes(seed).take(3_000) {
                let before = full.successors(h).next().unwrap();
                let after = less.successors(h).next().unwrap();
                prop_assert_ne!(after, removed);
                if before != removed {
                    prop_assert_eq!(after, before, "hash {}", h);
                }
            }
        }
    }

    proptest! {
        /// The bucket index finds exactly the point a search over the whole
        /// ring finds, for rings of 0 to 3,000 points (one bucket to 1,024),
        /// and for hashes at, between and around the points.
        #[test]
        fn indexed_lookup_equals_full_search(
            mut hashes in prop::collection::vec(any::<u64>(), 0..3_000),
            probes in prop::collection::vec(any::<u64>(), 1..64),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 1..16),
        ) {
            hashes.sort_unstable();
            let points: Vec<(u64, u32)> =
                hashes.iter().enumerate().map(|(i, &h)| (h, i as u32)).collect();
            let ring = Ring::from_sorted(&points, vec![super::ALWAYS; points.len()].into());
            let mut probes = probes;
            if !hashes.is_empty() {
                for i in &picks {
                    let h = hashes[i.index(hashes.len())];
                    probes.extend([h, h.wrapping_sub(1), h.wrapping_add(1)]);
                }
            }
            probes.extend([0, u64::MAX]);
            for h in probes {
                let want = hashes.partition_point(|&x| x < h);
                prop_assert_eq!(ring.first_at_or_after(h), want, "hash {}", h);
                let first = ring.successors(h).next();
                prop_assert_eq!(first, (!hashes.is_empty()).then(|| want % hashes.len()));
            }
        }
    }
}
