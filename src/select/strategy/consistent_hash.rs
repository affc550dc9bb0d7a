//! `consistent_hash`: the same deployment for the same affinity key.

use super::WeightedRandom;
use super::{Candidate, Candidates, Context, Strategy};
use crate::Error;

/// Sticky sessions: the same affinity key maps to the same deployment while
/// the candidate set is unchanged (Karger et al., "Consistent Hashing and
/// Random Trees", 1997; nginx `hash … consistent`, Envoy ring hash).
///
/// Each tier gets a [`Ring`](crate::select::Ring): a member of weight `w`
/// owns `160 × ⌈w / 16⌉` points, each of which accepts a given key with
/// probability `w / (16 × ⌈w / 16⌉)` (a stable test of the key and the
/// point). A request hashes its affinity key (xxh3, stable across
/// platforms, runs and crate versions) and walks the ring clockwise to the
/// first accepted point whose member is a candidate. A member's points
/// depend only on its own key and weight, whatever the tier's size and
/// total weight, so:
///
/// - removing a deployment moves only the keys it held (they go to the next
///   accepted point's member); the others stay;
/// - adding one moves only keys to it, about its share of the weight;
/// - a filtered-out or excluded deployment's keys move to the next member,
///   and come back when it is eligible again;
/// - shares follow weights up to [`Ring::MAX_WEIGHT`](crate::select::Ring::MAX_WEIGHT)
///   (65,536); a heavier deployment counts as that weight on the ring.
///
/// With a bounded load factor `c` (Mirrokni, Thorup and Zadimoghaddam,
/// "Consistent Hashing with Bounded Loads", 2018), a member already holding
/// `⌈c × (in-flight + 1) / n⌉` picks in flight is skipped, which caps any
/// deployment at `c ×` the average while keeping most keys in place. The cap
/// applies to requests with an affinity key; the others go to weighted
/// random, which does not look at the load.
///
/// A request without an affinity key is served by
/// [`WeightedRandom`](super::WeightedRandom).
///
/// Cost: O(1) on average to find the start (a bucket index over the ring),
/// then O(1) points in expectation per accepted point, plus the accepted
/// points of members skipped; bounded load adds an O(n) pass to sum the
/// in-flight counts. Memory: O(Σ ⌈w / 16⌉) points per tier.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::ConsistentHash;
///
/// let mut reg = Registry::new(Policy::NAME_ENDPOINT);
/// for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
///     reg.insert(Deployment::builder("openai", "gpt-4").endpoint(&format!("http://{ip}/v1")).build()?)?;
/// }
/// let selector = Selector::builder(&reg).strategy(ConsistentHash::default()).build();
/// let req = Request::new("gpt-4").affinity("user-42");
/// let first = selector.select(&req)?.key().clone();
/// for _ in 0..10 {
///     assert_eq!(selector.select(&req)?.key(), &first);
/// }
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConsistentHash {
    bounded_load: Option<f64>,
}

impl ConsistentHash {
    /// The default settings (no bounded load), as a constant.
    pub(crate) const DEFAULT: Self = Self { bounded_load: None };

    /// Consistent hashing with bounded loads: a request with an affinity key
    /// does not go to a member already holding `⌈factor × (in-flight + 1) / n⌉`
    /// picks in flight.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidStrategy`] unless `factor` is a finite number of at
    /// least 1.
    ///
    /// ```
    /// use modelfleet::select::ConsistentHash;
    /// assert!(ConsistentHash::with_bounded_load(1.25).is_ok());
    /// assert!(ConsistentHash::with_bounded_load(0.5).is_err());
    /// ```
    pub fn with_bounded_load(factor: f64) -> Result<Self, Error> {
        let factor = super::at_least(Self::NAME, "bounded load factor", factor, 1.0)?;
        Ok(Self {
            bounded_load: Some(factor),
        })
    }

    /// The bounded load factor, if any.
    pub fn bounded_load(&self) -> Option<f64> {
        self.bounded_load
    }
}

impl Strategy for ConsistentHash {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let (Some(hash), Some(ring)) = (ctx.affinity_hash(), candidates.ring()) else {
            return WeightedRandom::new().choose(candidates, ctx);
        };
        let mut walk = ring.successors(hash).filter_map(|p| candidates.get(p));
        let cap = match self.bounded_load {
            // Without a bound, the load is not read at all.
            None => return walk.next(),
            Some(factor) => {
                let (mut n, mut total) = (0u64, 0u64);
                for c in candidates.iter() {
                    n += 1;
                    total += u64::from(c.in_flight());
                }
                if n == 0 {
                    return None;
                }
                ((factor * (total + 1) as f64) / n as f64).ceil() as u64
            }
        };
        walk.find(|c| u64::from(c.in_flight()) < cap)
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn uses_ring(&self) -> bool {
        true
    }

    fn reads_load(&self) -> bool {
        self.bounded_load.is_some()
    }
}
