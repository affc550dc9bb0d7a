//! [`WeightSource`]: which field of a deployment a weighted strategy weighs
//! by, and the derivation of a tier's weights from it at build time.

use crate::Deployment;
use crate::names::names;

/// Which field of a deployment the weighted strategies
/// ([`WeightedRandom`](super::WeightedRandom),
/// [`WeightedRoundRobin`](super::WeightedRoundRobin)) weigh by.
///
/// A selector derives the weights once per version, per priority tier,
/// when it is built (O(n) per tier over the model's n deployments), so `select` stays as
/// it is. A deployment of weight 0, or drained, weighs 0 under every
/// source: it takes no picks.
///
/// - [`Weight`](Self::Weight): the deployment's `weight` (the default).
/// - [`Rpm`](Self::Rpm), [`Tpm`](Self::Tpm): the requests (tokens) per
///   minute limit. In a tier where some member sets it, a member without it
///   weighs 0, as in LiteLLM (an [explanation](crate::select::Explanation)
///   lists it as drained); in a tier where no member sets it, the members
///   keep their `weight`.
/// - [`LiteLlm`](Self::LiteLlm): LiteLLM's `simple-shuffle` order, per tier:
///   `weight` if any member's weight differs from 1, else rpm if any member
///   sets it, else tpm if any member sets it, else `weight` (uniform).
///
/// Rpm and tpm stay limits as well: a deployment at its limit takes no
/// picks until its rolling minute has room again, whatever its weight.
///
/// Where modelfleet differs from LiteLLM: LiteLLM looks at the first
/// healthy deployment of the group only (so list order and health decide
/// which field applies); modelfleet asks whether any member of the tier
/// sets it, so the choice is fixed per version. A weight of 1, modelfleet's
/// default, counts as unset. And a member that weighs 0 for lack of the
/// field is out of the tier like a drained one: it takes no picks even
/// while every other member is cooling or at its limit, where LiteLLM,
/// which weighs only the healthy ones, would fall back to it. Give every
/// member of such a tier the field, or put the others in a tier of their
/// own.
///
/// Exactness: rpm values are used as they are. Tpm values are used as they
/// are when the tier's largest fits in a `u32`; otherwise every tpm of the
/// tier is scaled by `u32::MAX / max` and rounded down, and a set value
/// never falls below 1, so each derived weight is within one unit of the
/// exact proportion. The derived weights then go through the same tables
/// as any weight: nginx's schedule for periods up to 65,536 (else the
/// exact stride rotation), and on a hash ring at most
/// [`Ring::MAX_WEIGHT`](crate::select::Ring::MAX_WEIGHT) each.
///
/// ```
/// use modelfleet::select::WeightSource;
///
/// let s: WeightSource = "rpm".parse()?;
/// assert_eq!(s, WeightSource::Rpm);
/// assert_eq!(s.to_string(), "rpm");
/// assert_eq!(WeightSource::default(), WeightSource::Weight);
/// assert!("rps".parse::<WeightSource>().is_err());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WeightSource {
    /// The deployment's `weight`.
    #[default]
    Weight,
    /// The deployment's requests-per-minute limit.
    Rpm,
    /// The deployment's tokens-per-minute limit.
    Tpm,
    /// LiteLLM's `simple-shuffle`: weight, else rpm, else tpm, per tier.
    LiteLlm,
}

names! {
    WeightSource;
    /// Every weight source, in table order.
    #[allow(dead_code, reason = "the list is read by tests")]
    pub(crate) const ALL;
    /// The source's name, as fleet files write it.
    pub(crate) fn as_str;
    parse_error(input, expected) => crate::Error::UnknownName {
        what: "weight source",
        input,
        expected,
    };
    {
        WeightSource::Weight => "weight" = WeightSource::Weight,
        WeightSource::Rpm => "rpm" = WeightSource::Rpm,
        WeightSource::Tpm => "tpm" = WeightSource::Tpm,
        WeightSource::LiteLlm => "litellm" = WeightSource::LiteLlm,
    }
}

impl std::fmt::Display for WeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The field a source reads for one tier, once resolved.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Weight,
    Rpm,
    Tpm,
}

/// The weights of one tier under `source`: `base[i]` is member i's weight
/// as the selector has it (0 when drained), `deployments[i]` its
/// deployment. Writes the derived weights over `base`; only members of
/// nonzero weight decide which field applies and how it scales.
pub(crate) fn derive(source: WeightSource, base: &mut [u32], deployments: &[&Deployment]) {
    let rpm = |d: &Deployment| d.limits().rpm.map(|n| u64::from(n.get()));
    let tpm = |d: &Deployment| d.limits().tpm.map(std::num::NonZeroU64::get);
    let live = || {
        base.iter()
            .zip(deployments)
            .filter(|(w, _)| **w > 0)
            .map(|(w, d)| (*w, *d))
    };
    let any_rpm = || live().any(|(_, d)| rpm(d).is_some());
    let any_tpm = || live().any(|(_, d)| tpm(d).is_some());
    let field = match source {
        WeightSource::Rpm if any_rpm() => Field::Rpm,
        WeightSource::Tpm if any_tpm() => Field::Tpm,
        WeightSource::LiteLlm if live().all(|(w, _)| w == 1) => {
            if any_rpm() {
                Field::Rpm
            } else if any_tpm() {
                Field::Tpm
            } else {
                Field::Weight
            }
        }
        _ => Field::Weight,
    };
    let read = |d: &Deployment| match field {
        Field::Weight => 0,
        Field::Rpm => rpm(d).unwrap_or(0),
        Field::Tpm => tpm(d).unwrap_or(0),
    };
    if field == Field::Weight {
        return;
    }
    let max = live().map(|(_, d)| read(d)).max().unwrap_or(0);
    for (w, d) in base.iter_mut().zip(deployments) {
        if *w > 0 {
            *w = scale(read(d), max);
        }
    }
}

/// `value` as a `u32` weight, for a tier whose largest value is `max`:
/// exact when `max` fits, else `value × u32::MAX / max` rounded down, and
/// at least 1 for a nonzero value.
fn scale(value: u64, max: u64) -> u32 {
    if max <= u64::from(u32::MAX) {
        // `value <= max`, so it fits.
        return u32::try_from(value).unwrap_or(u32::MAX);
    }
    // `value <= max`, so the quotient fits in a `u32`.
    let scaled = u128::from(value) * u128::from(u32::MAX) / u128::from(max);
    let scaled = u32::try_from(scaled).unwrap_or(u32::MAX);
    if value > 0 { scaled.max(1) } else { 0 }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{WeightSource, derive, scale};
    use crate::Deployment;

    fn with(rpm: Option<u32>, tpm: Option<u64>, weight: u32) -> Deployment {
        let mut b = Deployment::builder("openai", "gpt-4").weight(weight);
        if let Some(r) = rpm {
            b = b.rpm(r);
        }
        if let Some(t) = tpm {
            b = b.tpm(t);
        }
        b.build().expect("valid")
    }

    fn weights(source: WeightSource, ds: &[Deployment]) -> Vec<u32> {
        let mut w: Vec<u32> = ds.iter().map(Deployment::weight).collect();
        let refs: Vec<&Deployment> = ds.iter().collect();
        derive(source, &mut w, &refs);
        w
    }

    #[test]
    fn names_round_trip() {
        for &s in WeightSource::ALL {
            assert_eq!(s.to_string().parse::<WeightSource>().ok(), Some(s));
        }
        assert_eq!(WeightSource::EXPECTED, "weight, rpm, tpm, litellm");
    }

    #[test]
    fn each_source_reads_its_field_and_falls_back_per_tier() {
        let ds = [
            with(Some(6), Some(5), 1),
            with(Some(1440), None, 1),
            with(None, Some(90), 1),
        ];
        assert_eq!(weights(WeightSource::Weight, &ds), [1, 1, 1]);
        assert_eq!(weights(WeightSource::Rpm, &ds), [6, 1440, 0]);
        assert_eq!(weights(WeightSource::Tpm, &ds), [5, 0, 90]);
        assert_eq!(weights(WeightSource::LiteLlm, &ds), [6, 1440, 0]);
        let none = [with(None, None, 2), with(None, None, 3)];
        assert_eq!(weights(WeightSource::Rpm, &none), [2, 3]);
        assert_eq!(weights(WeightSource::Tpm, &none), [2, 3]);
        // A weight other than 1 wins under LiteLLM's order.
        let weighted = [with(Some(6), None, 4), with(Some(1440), None, 1)];
        assert_eq!(weights(WeightSource::LiteLlm, &weighted), [4, 1]);
        let tpm_only = [with(None, Some(5), 1), with(None, Some(90), 1)];
        assert_eq!(weights(WeightSource::LiteLlm, &tpm_only), [5, 90]);
        // Weight 0 takes no picks under any source.
        let drained = [with(Some(6), None, 0), with(Some(1440), None, 1)];
        assert_eq!(weights(WeightSource::Rpm, &drained), [0, 1440]);
        // A member of weight 0 decides nothing: neither the field nor LiteLLM's order.
        let drained = [
            with(Some(6), None, 0),
            with(None, None, 1),
            with(None, None, 1),
        ];
        assert_eq!(weights(WeightSource::Rpm, &drained), [0, 1, 1]);
        assert_eq!(weights(WeightSource::LiteLlm, &drained), [0, 1, 1]);
    }

    #[test]
    fn huge_tpm_is_scaled_into_u32() {
        let ds = [
            with(None, Some(u64::MAX), 1),
            with(None, Some(1), 1),
            with(None, Some(u64::MAX / 2), 1),
        ];
        assert_eq!(weights(WeightSource::Tpm, &ds), [u32::MAX, 1, u32::MAX / 2]);
        assert_eq!(scale(0, u64::MAX), 0);
        assert_eq!(scale(7, 9), 7);
    }

    /// Values from tiny to `u64::MAX`, with collisions and near-maxima.
    fn tpm_value() -> impl Strategy<Value = u64> {
        prop_oneof![
            1..=1_000u64,
            1..=u64::from(u32::MAX),
            u64::from(u32::MAX) - 2..=u64::from(u32::MAX) + 2,
            (1u64 << 40)..=(1u64 << 50),
            u64::MAX - 1_000..=u64::MAX,
            1..=u64::MAX,
        ]
    }

    proptest! {
        /// Each derived weight is within one unit of `tpm × u32::MAX / max`
        /// (exactly `tpm` when `max` fits in a `u32`), and a set tpm
        /// never weighs 0.
        #[test]
        fn derived_tpm_weights_are_proportional(tpms in prop::collection::vec(tpm_value(), 1..8)) {
            let ds: Vec<Deployment> = tpms.iter().map(|&t| with(None, Some(t), 1)).collect();
            let w = weights(WeightSource::Tpm, &ds);
            let max = *tpms.iter().max().expect("nonempty");
            for (&t, &w) in tpms.iter().zip(&w) {
                prop_assert!(w >= 1);
                if let Ok(max32) = u32::try_from(max) {
                    prop_assert!(max32 >= 1);
                    prop_assert_eq!(u64::from(w), t);
                } else {
                    let exact = t as f64 * f64::from(u32::MAX) / max as f64;
                    prop_assert!((f64::from(w) - exact).abs() <= 1.0 + exact * 1e-12, "{w} vs {exact}");
                }
            }
        }

        /// Rpm values are used exactly, at any size.
        #[test]
        fn derived_rpm_weights_are_exact(rpms in prop::collection::vec(prop_oneof![1..=10u32, u32::MAX - 10..=u32::MAX, 1..=u32::MAX], 1..8)) {
            let ds: Vec<Deployment> = rpms.iter().map(|&r| with(Some(r), None, 1)).collect();
            prop_assert_eq!(weights(WeightSource::Rpm, &ds), rpms);
        }
    }
}
