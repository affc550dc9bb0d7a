//! `power_of_two`: the less loaded of two random candidates.

use std::hash::{Hash, Hasher};

use super::{Candidate, Candidates, Context, Strategy};
use crate::Error;
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
    /// Envoy's weighted least request. With equal weights, the fewer picks
    /// in flight of two random candidates, as [`InFlight`](Self::InFlight).
    /// With unequal weights, one candidate drawn at random with
    /// probability proportional to `weight / (in_flight + 1)^bias`, the
    /// [active request bias](PowerOfTwo::with_active_request_bias)
    /// (default 1): idle deployments of weights 1 and 2 share picks 1:2,
    /// and picks in flight lower a deployment's share without draining it.
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
/// With [`Load::InFlightPerWeight`] this is Envoy's least-request balancer
/// with its `active_request_bias` ([`with_active_request_bias`](Self::with_active_request_bias)):
/// power of two choices on picks in flight while the tier's weights are
/// equal, and otherwise a weighted random draw over every candidate with
/// effective weight `weight / (in_flight + 1)^bias` (Envoy draws from an
/// EDF schedule of those weights; a draw per pick gives the same shares
/// without shared mutable state). Slow start scales the weights, as it
/// does in Envoy.
///
/// Cost: O(1) per pick without request filters; with filters, O(n/64) bit
/// counting over the candidate mask (see the [cost model](crate::select#cost)).
/// [`Load::InFlightPerWeight`] over unequal weights (or during slow start):
/// O(k), two passes over the k candidates.
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
#[derive(Clone, Copy, Debug)]
pub struct PowerOfTwo {
    load: Load,
    /// Finite and at least 0 (never -0.0, so equal biases have equal bits).
    bias: f64,
}

impl Default for PowerOfTwo {
    /// [`Load::InFlight`], active request bias 1.
    ///
    /// ```
    /// use modelfleet::select::{Load, PowerOfTwo};
    /// assert_eq!(PowerOfTwo::default(), PowerOfTwo::new(Load::InFlight));
    /// assert_eq!(PowerOfTwo::default().active_request_bias(), 1.0);
    /// ```
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl PartialEq for PowerOfTwo {
    fn eq(&self, other: &Self) -> bool {
        self.load == other.load && self.bias.to_bits() == other.bias.to_bits()
    }
}

// The bias is never NaN, so equality is reflexive.
impl Eq for PowerOfTwo {}

impl Hash for PowerOfTwo {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.load.hash(state);
        self.bias.to_bits().hash(state);
    }
}

impl PowerOfTwo {
    /// The default settings ([`Load::InFlight`]), as a constant.
    pub(crate) const DEFAULT: Self = Self::new(Load::InFlight);

    /// Power of two choices comparing `load`, with active request bias 1.
    ///
    /// ```
    /// use modelfleet::select::{Load, PowerOfTwo};
    /// assert_eq!(PowerOfTwo::new(Load::PeakEwma).load(), Load::PeakEwma);
    /// ```
    pub const fn new(load: Load) -> Self {
        Self { load, bias: 1.0 }
    }

    /// The load measure.
    ///
    /// See [`PowerOfTwo::new`] for an example.
    pub const fn load(&self) -> Load {
        self.load
    }

    /// The same strategy with Envoy's `active_request_bias`: how strongly
    /// picks in flight lower a candidate's effective weight
    /// `weight / (in_flight + 1)^bias` under [`Load::InFlightPerWeight`]
    /// with unequal weights (0: not at all, plain weighted random; 1, the
    /// default: in proportion). The other loads do not use it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidStrategy`] if `bias` is negative, NaN or infinite.
    ///
    /// ```
    /// use modelfleet::select::{Load, PowerOfTwo};
    ///
    /// let p2c = PowerOfTwo::new(Load::InFlightPerWeight).with_active_request_bias(0.5)?;
    /// assert_eq!(p2c.active_request_bias(), 0.5);
    /// assert!(p2c.with_active_request_bias(-1.0).is_err());
    /// assert!(p2c.with_active_request_bias(f64::NAN).is_err());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn with_active_request_bias(self, bias: f64) -> Result<Self, Error> {
        let bias = super::at_least(Self::NAME, "active_request_bias", bias, 0.0)?;
        // `+ 0.0` turns -0.0 into 0.0.
        Ok(Self {
            bias: bias + 0.0,
            ..self
        })
    }

    /// The active request bias (default 1).
    ///
    /// See [`PowerOfTwo::with_active_request_bias`] for an example.
    pub const fn active_request_bias(&self) -> f64 {
        self.bias
    }

    /// Whether `a` is strictly more loaded than `b`.
    fn heavier(&self, a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
        let (fa, fb) = (u64::from(a.in_flight()), u64::from(b.in_flight()));
        match self.load {
            // Equal weights (the only case that compares two draws).
            Load::InFlight | Load::InFlightPerWeight => fa > fb,
            Load::PeakEwma => {
                let cost = |c: &Candidate<'_>, f: u64| {
                    c.latency().map_or(0, |l| l.as_nanos()) * u128::from(f + 1)
                };
                cost(a, fa) > cost(b, fb)
            }
        }
    }

    /// Envoy's dynamic weight: `weight / (in_flight + 1)^bias`.
    fn effective(&self, c: &Candidate<'_>) -> f64 {
        let weight = c.effective_weight() as f64;
        let active = f64::from(c.in_flight()) + 1.0;
        // The common biases need no `powf`.
        if self.bias == 1.0 {
            weight / active
        } else if self.bias == 0.0 {
            weight
        } else {
            weight / active.powf(self.bias)
        }
    }

    /// One candidate drawn with probability proportional to its
    /// [`effective`](Self::effective) weight: two passes, no allocation.
    fn weighted_least_request<'a>(
        &self,
        candidates: &Candidates<'a>,
        ctx: &Context<'_>,
    ) -> Option<Candidate<'a>> {
        let total: f64 = candidates.iter().map(|c| self.effective(&c)).sum();
        // 53 random bits: a uniform fraction in [0, 1).
        let fraction = (ctx.sampler().next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let point = fraction * total;
        let mut acc = 0.0;
        let mut last = None;
        for c in candidates.iter() {
            acc += self.effective(&c);
            if point < acc {
                return Some(c);
            }
            last = Some(c);
        }
        // Loads moved between the passes (other threads' picks): the
        // remainder of the line belongs to the last candidate.
        last
    }
}

impl Strategy for PowerOfTwo {
    fn choose<'a>(&self, candidates: &Candidates<'a>, ctx: &Context<'_>) -> Option<Candidate<'a>> {
        if self.load == Load::InFlightPerWeight && candidates.uniform_weight().is_none() {
            return self.weighted_least_request(candidates, ctx);
        }
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
