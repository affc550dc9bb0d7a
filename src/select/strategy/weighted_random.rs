//! `weighted_random`: candidate i with probability `w_i / Σw`.

use super::{Candidate, Candidates, Context, Strategy, WeightSource};

/// Picks candidate i with probability `w_i / Σw`, independently per pick.
///
/// Draws a uniform point on `[0, Σw)` from the handle's seeded source
/// (Lemire's multiply-shift; bias at most `Σw / 2^64`) and picks the candidate
/// owning it. This is `rand`'s `WeightedIndex`, and LiteLLM's
/// `simple-shuffle` with [`with_weights`](Self::with_weights)`(`[`WeightSource::LiteLlm`]`)`
/// (weight, else rpm, else tpm), without a per-pick allocation or lock.
///
/// Cost: O(1) on average per pick without request filters (a search of
/// the precomputed cumulative weights through a bucket index; O(log n) at
/// worst, when weights are very uneven); with filters, O(k) over the k
/// candidates' weights (see the [cost model](crate::select#cost)).
///
/// Use it when many independent routers should spread load by weight
/// without coordinating; prefer [`WeightedRoundRobin`](super::WeightedRoundRobin)
/// when one router should hit the shares exactly.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::WeightedRandom;
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").weight(9).build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").weight(1).build()?)?;
/// let selector = Selector::builder(&reg).strategy(WeightedRandom::new()).seed(7).build();
/// let req = Request::new("gpt-4");
/// let a = (0..1000)
///     .filter(|_| selector.select(&req).unwrap().deployment().tag() == Some("a"))
///     .count();
/// assert!((850..950).contains(&a), "{a}");
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WeightedRandom {
    weights: WeightSource,
}

impl WeightedRandom {
    /// Weighing by each deployment's `weight` (the default).
    ///
    /// ```
    /// use modelfleet::select::{WeightSource, WeightedRandom};
    /// assert_eq!(WeightedRandom::new().weight_source(), WeightSource::Weight);
    /// assert_eq!(WeightedRandom::new(), WeightedRandom::default());
    /// ```
    pub const fn new() -> Self {
        Self::with_weights(WeightSource::Weight)
    }

    /// Weighing by the field `weights` names: the weight, the rpm or tpm
    /// limit, or LiteLLM's order of the three (see [`WeightSource`] for
    /// deployments without the field and for very large values).
    ///
    /// ```
    /// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
    /// use modelfleet::select::{WeightSource, WeightedRandom};
    ///
    /// let mut reg = Registry::new(Policy::NAME_TAG);
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").rpm(900).build()?)?;
    /// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").rpm(100).build()?)?;
    /// let strategy = WeightedRandom::with_weights(WeightSource::Rpm);
    /// assert_eq!(strategy.weight_source(), WeightSource::Rpm);
    /// let selector = Selector::builder(&reg).strategy(strategy).seed(7).build();
    /// let req = Request::new("gpt-4");
    /// // 100 picks, well within both limits: about 90 to rpm 900.
    /// let a = (0..100)
    ///     .filter(|_| selector.select(&req).unwrap().deployment().tag() == Some("a"))
    ///     .count();
    /// assert!((80..=98).contains(&a), "{a}");
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub const fn with_weights(weights: WeightSource) -> Self {
        Self { weights }
    }

    /// What the strategy weighs by.
    ///
    /// See [`WeightedRandom::with_weights`] for an example.
    pub const fn weight_source(&self) -> WeightSource {
        self.weights
    }
}

impl Strategy for WeightedRandom {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let total = candidates.total_weight();
        if total == 0 {
            return None;
        }
        candidates.at_weight(ctx.random_below(total))
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn reads_load(&self) -> bool {
        false
    }

    fn weight_source(&self) -> WeightSource {
        self.weights
    }
}
