//! [`Ring`]: the consistent-hash ring of one tier.

use std::fmt;

use super::search::Sorted;
use super::tables::Slot;

/// A consistent-hash ring over one tier: points on a 64-bit circle, each
/// owned by a tier member, walked with a per-key acceptance test (a thinned
/// ring).
///
/// A member of weight `w` (up to [`Ring::MAX_WEIGHT`]) gets
/// `160 × ⌈w / 16⌉` points, placed at `xxh3_64_with_seed(key text, point
/// index)`, and an acceptance probability `a = w / (16 × ⌈w / 16⌉)`, in
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
///   members' weights; a lookup finds its start in O(1) on average (a
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
                .map(|(name, &i)| (name.as_bytes(), slots[i as usize].deployment.weight())),
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
            for k in 0..count {
                let h = crate::hash::stable_with_seed(name, k);
                points.push((h, pos as u32));
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
    use super::Ring;
    use proptest::prelude::*;

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
