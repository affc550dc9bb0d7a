//! `round_robin`: each candidate in turn.

use super::{Candidate, Candidates, Context, Strategy};

/// Strict rotation over the eligible candidates, ignoring weights.
///
/// Turn `t` of a handle picks the `t mod n`-th of the `n` candidates in
/// registry order, so every `n` consecutive picks over an unchanged
/// candidate set visit each candidate exactly once. The rotation cursor is
/// per model and per selector [handle](crate::Selector#threads-and-handles):
/// give each thread its own handle and each rotates exactly; threads sharing
/// one handle still share the load evenly, but interleave their turns.
///
/// Cost: O(1) per pick without request filters; with filters, O(n/64) bit
/// counting over the candidate mask (see the [cost model](crate::select#cost)).
///
/// Use it when deployments are alike and you want the plainest even spread.
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::RoundRobin;
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// for tag in ["a", "b", "c"] {
///     reg.insert(Deployment::builder("openai", "gpt-4").tag(tag).build()?)?;
/// }
/// let selector = Selector::builder(&reg).strategy(RoundRobin).build();
/// let req = Request::new("gpt-4");
/// let mut seen: Vec<_> = (0..3)
///     .map(|_| selector.select(&req).map(|p| p.deployment().tag().unwrap().to_owned()))
///     .collect::<Result<_, _>>()?;
/// seen.sort();
/// assert_eq!(seen, ["a", "b", "c"]);
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoundRobin;

impl Strategy for RoundRobin {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let n = candidates.len() as u64;
        if n == 0 {
            return None;
        }
        candidates.nth((ctx.next_turn() % n) as usize)
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn reads_load(&self) -> bool {
        false
    }
}
