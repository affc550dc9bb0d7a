//! The [`Strategy`] trait and what a strategy sees: [`Candidates`] and a
//! [`Context`]; the built-in strategies, one file each, and
//! [`BuiltinStrategy`], which names them.
//!
//! The built-ins are written against the same interface a custom strategy
//! gets: the trait, [`Candidates`] (counting, ranking, weighing, the
//! rotation stride, the hash ring) and [`Context`] (randomness, the
//! rotation cursor, the affinity key). None reads the selector's tables
//! directly, so whatever a built-in does, a strategy of your own can do
//! too.
//!
//! Adding a built-in: its file here (the type, its `impl Strategy` with
//! `fn name(&self) -> &str { Self::NAME }`); its `mod` and `pub use` below,
//! and its name in the `pub use strategy::{…}` of `select/mod.rs`; and, in
//! [`builtin`], its `use` and one line of the table (type, name, default
//! settings as a constant) with a row of the docs' table.

mod builtin;
mod candidates;
mod consistent_hash;
mod context;
mod latency;
mod least_outstanding;
mod power_of_two;
mod round_robin;
mod weighted_random;
mod weighted_round_robin;

use std::fmt;

pub use builtin::BuiltinStrategy;
pub use candidates::{Candidate, Candidates};
pub use consistent_hash::ConsistentHash;
pub use context::{Context, Sampler};
pub use latency::Latency;
pub use least_outstanding::LeastOutstanding;
pub use power_of_two::{Load, PowerOfTwo};
pub use round_robin::RoundRobin;
pub use weighted_random::WeightedRandom;
pub use weighted_round_robin::WeightedRoundRobin;

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
/// they need beyond counting and weighing the candidates, the rotation
/// stride and the hash ring, is offered by
/// [`Candidates::rotation_stride`] and [`Candidates::ring`].
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

    /// Whether the strategy reads [`Candidate::in_flight`]; if so the
    /// selector counts picks in flight even when told not to
    /// ([`InFlight::Uncounted`](crate::select::InFlight::Uncounted)). The
    /// default, `true`, is the safe answer for a strategy you write.
    ///
    /// See [`Strategy`] for an example.
    fn reads_load(&self) -> bool {
        true
    }
}
