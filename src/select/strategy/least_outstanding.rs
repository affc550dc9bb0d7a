//! `least_outstanding`: the candidate with the fewest picks in flight.

use super::{Candidate, Candidates, Context, Strategy};

/// Picks the candidate with the fewest picks in flight (picks not yet
/// dropped or completed, counted across every handle of the selector); ties
/// are broken uniformly at random.
///
/// LiteLLM's `least-busy` takes the first deployment on ties, so an idle
/// fleet sends everything to the first registered one; here every tied
/// candidate is equally likely (reservoir sampling over the ties).
///
/// Cost: O(n) per pick: it reads every candidate's counter.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::LeastOutstanding;
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").build()?)?;
/// let selector = Selector::builder(&reg).strategy(LeastOutstanding).build();
/// let req = Request::new("gpt-4");
/// let first = selector.select(&req)?; // held: one in flight
/// let second = selector.select(&req)?;
/// assert_ne!(first.key(), second.key());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeastOutstanding;

impl Strategy for LeastOutstanding {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let mut best: Option<(Candidate<'a>, u32)> = None;
        let mut ties = 0u64;
        let mut random = ctx.sampler();
        for c in candidates.iter() {
            let load = c.in_flight();
            match best {
                Some((_, b)) if load > b => {}
                Some((_, b)) if load == b => {
                    ties += 1;
                    if random.below(ties) == 0 {
                        best = Some((c, load));
                    }
                }
                _ => {
                    best = Some((c, load));
                    ties = 1;
                }
            }
        }
        best.map(|(c, _)| c)
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}
