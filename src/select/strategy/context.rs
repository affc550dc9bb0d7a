//! [`Context`]: what a strategy knows of the request and the handle
//! (randomness, rotation, affinity); and [`Sampler`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::select::rng::{Rng, below, mix};

/// Per-request context: randomness, the rotation cursor, the affinity key.
///
/// Randomness and the cursor belong to the selector *handle* (see
/// [`Selector`](crate::Selector)): one handle, one seed, one sequence.
///
/// ```
/// use modelfleet::select::{Candidate, Candidates, Context, Strategy};
/// use modelfleet::{Deployment, Registry, Request, Selector};
///
/// #[derive(Debug)]
/// struct Inspect;
///
/// impl Strategy for Inspect {
///     fn choose<'a>(&self, c: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
///         assert_eq!(ctx.affinity(), Some("user-42"));
///         assert_eq!(ctx.affinity_hash(), ctx.affinity_hash()); // stable
///         let _bits: u64 = ctx.random();
///         assert!(ctx.random_below(10) < 10);
///         assert!(ctx.sampler().below(3) < 3);
///         let turn = ctx.next_turn();
///         assert_eq!(ctx.next_turn(), turn + 1);
///         c.nth(0)
///     }
/// }
///
/// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
/// let selector = Selector::builder(&reg).custom_strategy(Box::new(Inspect)).build();
/// selector.select(&Request::new("gpt-4").affinity("user-42"))?;
/// # Ok::<(), modelfleet::Error>(())
/// ```
pub struct Context<'a> {
    rng: &'a Rng,
    cursor: &'a AtomicU64,
    affinity: Option<&'a str>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("affinity", &self.affinity.map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl<'a> Context<'a> {
    /// The context of a pick with a handle's random source `rng` and
    /// rotation `cursor` for the model, and the request's `affinity` key.
    #[inline]
    pub(crate) fn new(rng: &'a Rng, cursor: &'a AtomicU64, affinity: Option<&'a str>) -> Self {
        Self {
            rng,
            cursor,
            affinity,
        }
    }
}

impl Context<'_> {
    /// 64 random bits from the handle's seeded source.
    ///
    /// See [`Context`] for an example.
    pub fn random(&self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform random number in `0..n` (`n` ≥ 1).
    ///
    /// See [`Context`] for an example.
    pub fn random_below(&self, n: u64) -> u64 {
        below(self.rng.next_u64(), n.max(1))
    }

    /// A small generator seeded from one draw of the handle's source, for
    /// strategies that need many random numbers per pick (tie-breaking over
    /// a whole tier): one atomic step here, plain arithmetic after.
    ///
    /// See [`Context`] for an example.
    pub fn sampler(&self) -> Sampler {
        Sampler(self.rng.next_u64())
    }

    /// The next turn of this model's rotation on this handle: 0, 1, 2, …
    /// (the first value depends on the seed, so handles do not all start on
    /// the same deployment).
    ///
    /// See [`Context`] for an example.
    pub fn next_turn(&self) -> u64 {
        self.cursor.fetch_add(1, Ordering::Relaxed)
    }

    /// The request's affinity key.
    ///
    /// See [`Context`] for an example.
    pub fn affinity(&self) -> Option<&str> {
        self.affinity
    }

    /// The stable 64-bit hash of the affinity key (xxh3, seed 0): the same on
    /// every platform, run and crate version.
    ///
    /// See [`Context`] for an example.
    pub fn affinity_hash(&self) -> Option<u64> {
        self.affinity.map(|a| crate::hash::stable(a.as_bytes()))
    }
}

/// A non-atomic SplitMix64 generator for one pick, from [`Context::sampler`].
///
/// ```
/// use modelfleet::select::Sampler;
/// let mut a = Sampler::new(7);
/// let mut b = Sampler::new(7);
/// assert_eq!(a.below(10), b.below(10));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(3) < 3);
/// ```
#[derive(Clone, Debug)]
pub struct Sampler(u64);

impl Sampler {
    /// A generator from `seed`.
    ///
    /// See [`Sampler`] for an example.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// 64 random bits.
    ///
    /// See [`Sampler`] for an example.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A uniform number in `0..n` (`n` ≥ 1).
    ///
    /// See [`Sampler`] for an example.
    pub fn below(&mut self, n: u64) -> u64 {
        below(self.next_u64(), n.max(1))
    }
}
