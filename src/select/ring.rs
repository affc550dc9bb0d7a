//! [`Ring`]: the consistent-hash ring of one tier.

use std::fmt;

use super::search::Sorted;
use super::tables::Slot;

/// A consistent-hash ring over one tier: points on a 64-bit circle, each
/// owned by a tier member.
///
/// Each member gets 160 points per unit of weight, placed at
/// `xxh3_64_with_seed(key text, point index)`. A member's points depend only
/// on its own key and weight, so adding or removing a member moves only the
/// hashes that land on its points. Rings are capped at about 1,000,000
/// points: above 6,250 units of weight in one tier, every member's share is
/// scaled down (at least one point each), which moves points of every member
/// when the total crosses the cap; keep weights small (they are ratios) to
/// stay below it.
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
///         assert_eq!(ring.len(), 2 * 160); // two members of weight 1
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
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").build()?)?;
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
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring").field("points", &self.len()).finish()
    }
}

/// Points per bucket of the ring's index, on average.
const POINTS_PER_BUCKET: usize = 4;

/// Points per unit of weight.
const POINTS_PER_WEIGHT: u64 = 160;
/// The points of one tier's ring, at most (plus one per member when scaled).
const MAX_RING_POINTS: u64 = 1_000_000;

impl Ring {
    /// The ring of the tier whose members (slot indices) are `members`.
    pub(crate) fn build(slots: &[Slot], members: &[u32]) -> Self {
        let weight = |i: u32| u64::from(slots[i as usize].deployment.weight());
        let units: u64 = members.iter().map(|&i| weight(i)).sum();
        let points_of = |w: u64| -> u64 {
            if units.saturating_mul(POINTS_PER_WEIGHT) <= MAX_RING_POINTS {
                w * POINTS_PER_WEIGHT
            } else {
                ((u128::from(w) * u128::from(MAX_RING_POINTS) / u128::from(units)) as u64).max(1)
            }
        };
        let total: u64 = members.iter().map(|&i| points_of(weight(i))).sum();
        let mut points = Vec::with_capacity(total as usize);
        for (pos, &i) in members.iter().enumerate() {
            let slot = &slots[i as usize];
            let name = slot.key.to_string();
            for k in 0..points_of(weight(i)) {
                let h = crate::hash::stable_with_seed(name.as_bytes(), k);
                points.push((h, pos as u32));
            }
        }
        // Ties (vanishingly rare) resolve by position, so the ring is a pure
        // function of the members.
        points.sort_unstable();
        Self::from_sorted(&points)
    }

    /// A ring over `points` (hash, owner), sorted.
    fn from_sorted(points: &[(u64, u32)]) -> Self {
        Self {
            hashes: Sorted::new(points.iter().map(|&(h, _)| h).collect(), POINTS_PER_BUCKET),
            owners: points.iter().map(|&(_, p)| p).collect(),
        }
    }

    /// The first point whose hash is at least `hash` (the number of points
    /// if none).
    fn first_at_or_after(&self, hash: u64) -> usize {
        self.hashes.lower_bound(hash)
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

    /// Tier positions of the points at or after `hash`, clockwise, once
    /// around the circle (a member appears once per point it owns).
    /// Finding the start is O(1) on average: an index of the ring's buckets
    /// narrows the search to a few points.
    ///
    /// See [`Ring`] for an example.
    pub fn successors(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.first_at_or_after(hash);
        self.owners[start..]
            .iter()
            .chain(&self.owners[..start])
            .map(|&p| p as usize)
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
            let ring = Ring::from_sorted(&points);
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
