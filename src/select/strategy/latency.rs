//! `latency`: the lowest latency estimate, within a buffer.

use super::{Candidate, Candidates, Context, Strategy};
use crate::Error;

/// Picks the candidate with the lowest latency estimate; candidates within
/// `buffer` of the best share the load at random (LiteLLM's
/// `lowest_latency_buffer`: with buffer 0.1, anything up to 10% slower than
/// the fastest is as good as the fastest).
///
/// Estimates are peak-EWMA values fed by [`Pick::succeed`](crate::Pick::succeed):
/// a slower sample is taken at once, a faster one decays in with time
/// constant [`SelectorBuilder::latency_decay`](crate::SelectorBuilder::latency_decay)
/// (tower's and Finagle's peak-EWMA). Unmeasured candidates are tried first
/// (at random among them), so a new deployment gets a measurement.
///
/// Cost: O(n) per pick: two passes over the candidates.
///
/// ```
/// use std::time::Duration;
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::Latency;
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("fast").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("slow").build()?)?;
/// let selector = Selector::builder(&reg).strategy(Latency::default()).build();
/// let req = Request::new("gpt-4");
/// let ms = Duration::from_millis;
/// // Measure both once.
/// for _ in 0..2 {
///     let pick = selector.select(&req)?;
///     let latency = if pick.deployment().tag() == Some("fast") { ms(20) } else { ms(200) };
///     pick.succeed(ms(0), latency);
/// }
/// assert_eq!(selector.select(&req)?.deployment().tag(), Some("fast"));
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    buffer: f64,
}

impl Latency {
    /// The default settings (buffer 0), as a constant.
    pub(crate) const DEFAULT: Self = Self { buffer: 0.0 };

    /// Latency-aware picking that treats candidates up to `buffer` (a
    /// fraction: 0.1 = 10%) slower than the fastest as equals.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidStrategy`] if `buffer` is negative, NaN or infinite.
    ///
    /// ```
    /// use modelfleet::select::Latency;
    /// assert!(Latency::with_buffer(0.1).is_ok());
    /// assert!(Latency::with_buffer(f64::NAN).is_err());
    /// ```
    pub fn with_buffer(buffer: f64) -> Result<Self, Error> {
        let buffer = super::at_least(Self::NAME, "buffer", buffer, 0.0)?;
        Ok(Self { buffer })
    }

    /// The buffer.
    pub fn buffer(&self) -> f64 {
        self.buffer
    }
}

impl Strategy for Latency {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let mut fastest = u128::MAX;
        let mut unmeasured = false;
        for c in candidates.iter() {
            match c.latency() {
                None => unmeasured = true,
                Some(l) => fastest = fastest.min(l.as_nanos()),
            }
        }
        let limit = (fastest as f64 * (1.0 + self.buffer)) as u128;
        let acceptable = |c: &Candidate<'_>| match c.latency() {
            None => true,
            Some(_) if unmeasured => false,
            Some(l) => l.as_nanos() <= limit.max(fastest),
        };
        // Uniform among the acceptable ones (reservoir sampling). Another
        // thread may report between the two passes and move every estimate
        // past `limit`; then the fastest seen in this pass is the answer.
        let mut chosen = None;
        let mut fallback: Option<(Candidate<'a>, u128)> = None;
        let mut seen = 0u64;
        let mut random = ctx.sampler();
        for c in candidates.iter() {
            let l = c.latency().map_or(0, |l| l.as_nanos());
            if fallback.is_none_or(|(_, f)| l < f) {
                fallback = Some((c, l));
            }
            if acceptable(&c) {
                seen += 1;
                if random.below(seen) == 0 {
                    chosen = Some(c);
                }
            }
        }
        chosen.or(fallback.map(|(c, _)| c))
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn reads_load(&self) -> bool {
        false
    }
}
