//! The [`Strategy`] trait and what a strategy sees: [`Candidates`] and a
//! [`Context`]; the built-in strategies, one file each, and
//! [`BuiltinStrategy`], which names them.
//!
//! The built-ins are written against the same interface a custom strategy
//! gets: the trait, [`Candidates`] (counting, ranking, weighing, the
//! weighted rotation and its stride, the hash ring) and [`Context`] (randomness, the
//! rotation cursor, the affinity key). None reads the selector's tables
//! directly, so whatever a built-in does, a strategy of your own can do
//! too.
//!
//! Adding a built-in: its file here (the type, its `impl Strategy` with
//! `fn name(&self) -> &str { Self::NAME }`), and one line of the table
//! below (module, type, name, default settings as a constant, and the two
//! cells of its row in the docs' table); the line declares its module,
//! re-exports it and adds it to [`BuiltinStrategy`]. The README's strategy
//! table has a row for it too (a test checks the two tables agree).

mod builtin;
mod candidates;
mod context;
mod weights;

use std::fmt;

pub use candidates::{Candidate, Candidates};
pub use context::{Context, Sampler};
pub use power_of_two::Load;
pub use weights::WeightSource;
pub(crate) use weights::derive as derive_weights;

/// Checks a built-in's numeric `setting`: finite and at least `min`.
fn at_least(
    strategy: &'static str,
    setting: &str,
    value: f64,
    min: f64,
) -> Result<f64, crate::Error> {
    if value.is_finite() && value >= min {
        Ok(value)
    } else {
        Err(crate::Error::InvalidStrategy {
            strategy,
            problem: format!("{setting} must be a finite number of at least {min}, got {value}"),
        })
    }
}

builtin::builtin_strategies! {
    /// The built-in strategies, by name.
    table {
        round_robin::RoundRobin => "round_robin" = RoundRobin,
            picks "each candidate in turn", cost "O(1) / O(n/64)";
        weighted_round_robin::WeightedRoundRobin => "weighted_round_robin" = WeightedRoundRobin::new(),
            picks "exactly `w_i` of every `Σw` consecutive picks (`w`: the weight, or rpm or tpm), in nginx's smooth order over a whole tier (a filtered or partly unavailable tier: an exact stride rotation)",
            cost "O(1) on average / O(k)";
        weighted_random::WeightedRandom => "weighted_random" = WeightedRandom::new(),
            picks "candidate i with probability `w_i/Σw` (`w`: the weight, or rpm or tpm)", cost "O(1) on average / O(k)";
        least_outstanding::LeastOutstanding => "least_outstanding" = LeastOutstanding,
            picks "fewest picks in flight, ties at random", cost "O(n)";
        power_of_two::PowerOfTwo => "power_of_two" = PowerOfTwo::DEFAULT,
            picks "the less loaded of two random candidates, or Envoy's weighted least request",
            cost "O(1) / O(n/64); O(k) per weight with unequal weights";
        latency::Latency => "latency" = Latency::DEFAULT,
            picks "lowest latency estimate, within a buffer", cost "O(n)";
        consistent_hash::ConsistentHash => "consistent_hash" = ConsistentHash::DEFAULT,
            picks "the same deployment for the same affinity key",
            cost "O(1) / O(1 + skipped points)";
    }
    /// With filters (or while a member of the tier is cooling, ejected, ramping
    /// up or limited), k is the number of candidates and building the
    /// candidates costs O(n/64), plus one O(k) pass when health, limits,
    /// versions or context windows must be tested; tiers of more than 4,096
    /// members cost O(n) (see the [module docs](crate::select#cost)).
    ///
    /// With the `serde` feature a built-in is written as a fleet file's
    /// strategy (`config::StrategyConfig`): its name at the default settings,
    /// else a table of its name and settings, such as
    /// `{"name": "latency", "buffer": 0.1}`.
    ///
    /// ```
    /// use modelfleet::select::BuiltinStrategy;
    ///
    /// let s: BuiltinStrategy = "weighted_round_robin".parse()?;
    /// assert_eq!(s.to_string(), "weighted_round_robin");
    /// assert!("fastest".parse::<BuiltinStrategy>().is_err());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
}

/// Chooses one deployment among the eligible candidates of one priority tier.
///
/// The selector has already applied the request's filters and picked the
/// tier; a strategy only decides *which* candidate. Return `None` only when
/// no candidate is acceptable (the selector then reports no eligible
/// deployment). "Better" is the strategy's own notion: fewer requests in
/// flight, lower latency, a turn in the rotation.
///
/// Object-safe: a `Box<dyn Strategy>` can be given to
/// [`SelectorBuilder::custom_strategy`](crate::SelectorBuilder::custom_strategy).
///
/// The built-in strategies are written against this same interface: what
/// they need beyond counting and weighing the candidates, the weighted
/// rotation and the hash ring, is offered by [`Candidates::rotation`]
/// (with [`Candidates::rotation_stride`]) and [`Candidates::ring`].
///
/// # A custom strategy
///
/// ```
/// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
///
/// /// Prefers the deployment with the largest context window.
/// #[derive(Debug)]
/// struct LargestWindow;
///
/// impl Strategy for LargestWindow {
///     fn choose<'a>(&self, candidates: &Candidates<'a>, _ctx: &Context<'_>) -> Option<Candidate<'a>> {
///         candidates
///             .iter()
///             .max_by_key(|c| c.deployment().context_window().unwrap_or(0))
///     }
/// }
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("s").context_window(8_192).build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("l").context_window(128_000).build()?)?;
/// let selector = Selector::builder(&reg).custom_strategy(Box::new(LargestWindow)).build();
/// let pick = selector.select(&Request::new("gpt-4"))?;
/// assert_eq!(pick.deployment().tag(), Some("l"));
/// assert_eq!(pick.strategy(), "custom"); // the default name
/// assert!(!LargestWindow.uses_ring());
/// assert!(!LargestWindow.uses_schedule());
/// assert!(LargestWindow.reads_load());
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub trait Strategy: fmt::Debug + Send + Sync {
    /// Chooses one of `candidates`.
    ///
    /// See [`Strategy`] for an example.
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>>;

    /// The strategy's name, shown in [`Pick`](crate::Pick)s and explanations.
    ///
    /// See [`Strategy`] for an example.
    fn name(&self) -> &str {
        "custom"
    }

    /// Whether the selector should build a [`Ring`](crate::select::Ring) per tier for this strategy.
    ///
    /// See [`Strategy`] for an example.
    fn uses_ring(&self) -> bool {
        false
    }

    /// Whether the selector should precompute per tier the smooth weighted
    /// rotation [`Candidates::rotation`] follows on a whole tier (nginx's
    /// schedule, up to 65,536 entries of 2 bytes per tier). Without it,
    /// `rotation` always takes the golden-ratio stride.
    ///
    /// See [`Strategy`] for an example.
    fn uses_schedule(&self) -> bool {
        false
    }

    /// Whether the strategy reads [`Candidate::in_flight`]; if so the
    /// selector counts picks in flight even when told not to
    /// ([`InFlight::Uncounted`](crate::select::InFlight::Uncounted)). The
    /// default, `true`, is the safe answer for a strategy you write.
    ///
    /// See [`Strategy`] for an example.
    fn reads_load(&self) -> bool {
        true
    }

    /// Which field of a deployment the selector reads as its weight
    /// ([`Candidate::weight`]) when it builds a version's tables for this
    /// strategy; the default is the deployment's `weight`. The weights are
    /// derived once per version and tier, so this costs nothing per pick.
    ///
    /// ```
    /// use modelfleet::select::{Strategy, WeightSource, WeightedRandom};
    /// assert_eq!(WeightedRandom::new().weight_source(), WeightSource::Weight);
    /// let by_rpm = WeightedRandom::with_weights(WeightSource::Rpm);
    /// assert_eq!(Strategy::weight_source(&by_rpm), WeightSource::Rpm);
    /// ```
    fn weight_source(&self) -> WeightSource {
        WeightSource::Weight
    }
}
