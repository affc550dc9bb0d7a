//! `power_of_two`: the less loaded of two random candidates.

use super::{Candidate, Candidates, Context, Strategy};
use crate::names::names;

/// How [`PowerOfTwo`] compares two candidates' load; lower is better.
///
/// ```
/// use modelfleet::select::{Load, PowerOfTwo};
/// let p2c = PowerOfTwo::new(Load::PeakEwma);
/// assert_eq!(p2c.load(), Load::PeakEwma);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Load {
    /// Picks in flight (the default).
    #[default]
    InFlight,
    /// Picks in flight plus one, divided by the weight: a weight-2
    /// deployment is as loaded as a weight-1 one with half its requests.
    InFlightPerWeight,
    /// Latency estimate × (picks in flight + 1), tower's and Finagle's
    /// peak-EWMA cost; an unmeasured candidate costs 0 so it gets tried.
    PeakEwma,
}

names! {
    Load;
    /// Every load measure, in table order.
    #[allow(dead_code, reason = "the load names are for the configuration format")]
    pub(crate) const ALL;
    /// The load's name in the configuration format (`in_flight`, …).
    #[cfg_attr(
        not(any(test, feature = "serde")),
        expect(dead_code, reason = "the load names are for the configuration format")
    )]
    pub(crate) fn as_str;
    {
        Load::InFlight => "in_flight" = Load::InFlight,
        Load::InFlightPerWeight => "in_flight_per_weight" = Load::InFlightPerWeight,
        Load::PeakEwma => "peak_ewma" = Load::PeakEwma,
    }
}

/// Power of two choices: draw two distinct candidates at random and pick the
/// less loaded (Mitzenmacher, "The Power of Two Choices in Randomized Load
/// Balancing", 2001; Envoy's least-request and tower's `p2c` balancer).
///
/// With two choices instead of one the maximum load drops from
/// `O(log n / log log n)` to `O(log log n)`, at the cost of reading two
/// counters, so it stays O(1) at any fleet size. Ties go to the first draw,
/// which is itself random. One candidate: it is picked.
///
/// Cost: O(1) per pick without request filters; with filters, O(n/64) bit
/// counting over the candidate mask (see the [cost model](crate::select#cost)).
///
/// ```
/// use modelfleet::{Deployment, Policy, Registry, Request, Selector};
/// use modelfleet::select::PowerOfTwo;
///
/// let mut reg = Registry::new(Policy::NAME_TAG);
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("a").build()?)?;
/// reg.insert(Deployment::builder("openai", "gpt-4").tag("b").build()?)?;
/// let selector = Selector::builder(&reg).strategy(PowerOfTwo::default()).build();
/// let busy = selector.select(&Request::new("gpt-4"))?;
/// // With two candidates both are always drawn: the idle one wins.
/// let next = selector.select(&Request::new("gpt-4"))?;
/// assert_ne!(busy.key(), next.key());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PowerOfTwo {
    load: Load,
}

impl PowerOfTwo {
    /// The default settings ([`Load::InFlight`]), as a constant.
    pub(crate) const DEFAULT: Self = Self::new(Load::InFlight);

    /// Power of two choices comparing `load`.
    pub const fn new(load: Load) -> Self {
        Self { load }
    }

    /// The load measure.
    pub const fn load(&self) -> Load {
        self.load
    }

    /// Whether `a` is strictly more loaded than `b`.
    fn heavier(&self, a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
        let (fa, fb) = (u64::from(a.in_flight()), u64::from(b.in_flight()));
        match self.load {
            Load::InFlight => fa > fb,
            Load::InFlightPerWeight => {
                (fa + 1) * u64::from(b.weight()) > (fb + 1) * u64::from(a.weight())
            }
            Load::PeakEwma => {
                let cost = |c: &Candidate<'_>, f: u64| {
                    c.latency().map_or(0, |l| l.as_nanos()) * u128::from(f + 1)
                };
                cost(a, fa) > cost(b, fb)
            }
        }
    }
}

impl Strategy for PowerOfTwo {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        let n = candidates.len() as u64;
        match n {
            0 => None,
            1 => candidates.nth(0),
            _ => {
                let mut random = ctx.sampler();
                let i = random.below(n);
                let mut j = random.below(n - 1);
                if j >= i {
                    j += 1;
                }
                let a = candidates.nth(i as usize)?;
                let b = candidates.nth(j as usize)?;
                Some(if self.heavier(&a, &b) { b } else { a })
            }
        }
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}

#[cfg(test)]
mod tests {
    use super::Load;

    #[test]
    fn load_names_round_trip() {
        for &load in Load::ALL {
            assert_eq!(Load::from_name(load.as_str()), Some(load));
        }
        assert_eq!(Load::ALL[0], Load::default());
        assert_eq!(Load::EXPECTED, "in_flight, in_flight_per_weight, peak_ewma");
        assert_eq!(Load::from_name("fastest"), None);
    }
}
