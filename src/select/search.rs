//! Lower-bound search over a sorted array of `u64` through a bucket index.
//!
//! Two lookups on the pick path search a sorted array: a hash ring's point
//! for an affinity hash, and the member whose share of a tier's weight line
//! holds a point (weighted round robin and weighted random). A binary
//! search over n values costs one dependent load per level, about ten at
//! 1,000 members, most of them cache misses once the array leaves L1. Here
//! the values are also split into a power of two of buckets by their top
//! bits, with the first value of each bucket recorded, so a search looks up
//! its bucket and then searches only the few values in it (the idea of
//! Chen and Asau's guide table for sampling a discrete distribution). A
//! bucket holding many values (a skewed distribution) falls back to a
//! binary search within the bucket, so no lookup costs more than a binary
//! search over the whole array plus one load.

/// A sorted array of `u64` and an index of its buckets.
#[derive(Clone, Debug)]
pub(crate) struct Sorted {
    values: Box<[u64]>,
    /// `index[b]` = the first value at least `b << shift`;
    /// `index[buckets]` = the number of values.
    index: Box<[u32]>,
    shift: u32,
}

impl Sorted {
    /// Indexes `values` (ascending, at most `u32::MAX` of them) with about
    /// `per_bucket` values per bucket when they are spread evenly.
    pub(crate) fn new(values: Box<[u64]>, per_bucket: usize) -> Self {
        debug_assert!(values.is_sorted());
        let max = values.last().copied().unwrap_or(0);
        let bits = (values.len() / per_bucket.max(1))
            .max(1)
            .next_power_of_two()
            .trailing_zeros();
        // The top `bits` bits of the largest value name its bucket (a shift
        // of 64, one bucket for values up to `u64::MAX`, is bucket 0).
        let shift = (u64::BITS - max.leading_zeros()).saturating_sub(bits);
        let buckets = bucket(max, shift) + 1;
        let mut index = Vec::with_capacity(buckets as usize + 1);
        let mut next = 0usize;
        for b in 0..buckets {
            while next < values.len() && bucket(values[next], shift) < b {
                next += 1;
            }
            index.push(next as u32);
        }
        index.push(values.len() as u32);
        Self {
            values,
            index: index.into_boxed_slice(),
            shift,
        }
    }

    /// The values, ascending.
    #[inline]
    pub(crate) fn values(&self) -> &[u64] {
        &self.values
    }

    /// The position of the first value at least `x` (the number of values
    /// if none): what `values().partition_point(|&v| v < x)` returns.
    #[inline]
    pub(crate) fn lower_bound(&self, x: u64) -> usize {
        let b = bucket(x, self.shift);
        // Past the last bucket (`index` has one entry per bucket and the
        // end): every value is below `x`.
        if b >= self.index.len() as u64 - 1 {
            return self.values.len();
        }
        let b = b as usize;
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        lo + self.values[lo..hi].partition_point(|&v| v < x)
    }
}

/// The bucket of `value`: its bits above `shift`.
#[inline]
fn bucket(value: u64, shift: u32) -> u64 {
    value.checked_shr(shift).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Sorted;
    use proptest::prelude::*;

    /// Sorted values from every part of the `u64` range: spread evenly,
    /// small (weight prefix sums) and skewed (one huge gap, many close).
    fn values() -> impl Strategy<Value = Vec<u64>> {
        prop_oneof![
            prop::collection::vec(any::<u64>(), 0..3_000),
            prop::collection::vec(0..10_000u64, 0..3_000),
            (prop::collection::vec(0..100u64, 0..2_000), any::<u64>()).prop_map(|(mut v, big)| {
                v.push(big);
                v
            }),
        ]
        .prop_map(|mut v| {
            v.sort_unstable();
            v
        })
    }

    proptest! {
        /// The bucket index finds exactly what a binary search over all the
        /// values finds, for arrays of 0 to 3,000 values, probing at,
        /// between and around the values and at both ends of the range.
        #[test]
        fn lower_bound_equals_full_search(
            values in values(),
            per_bucket in 1..9usize,
            probes in prop::collection::vec(any::<u64>(), 1..64),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 1..16),
        ) {
            let sorted = Sorted::new(values.clone().into_boxed_slice(), per_bucket);
            prop_assert_eq!(sorted.values(), &values[..]);
            let mut probes = probes;
            if !values.is_empty() {
                for i in &picks {
                    let v = values[i.index(values.len())];
                    probes.extend([v, v.wrapping_sub(1), v.wrapping_add(1)]);
                }
            }
            probes.extend([0, 1, u64::MAX]);
            for x in probes {
                let want = values.partition_point(|&v| v < x);
                prop_assert_eq!(sorted.lower_bound(x), want, "probe {}", x);
            }
        }
    }
}
