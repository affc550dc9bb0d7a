//! Per-tier inverted index of the fields a request filters on exactly
//! (provider, labels, tag), and the bit masks built from it.
//!
//! Testing a filter per member costs O(n) per pick, each test reaching
//! through two pointers into the deployment. With the index, the request's
//! provider, labels, tags and exclusions become a bit mask over the tier's
//! positions in O(n / 64) word operations, built on the stack; strategies then count,
//! rank and weigh candidates from the mask and the tier's prefix sums
//! without touching the deployments. Filters the index cannot answer
//! (version requirement, newest version, context window) and the health of
//! a disturbed tier are still tested per member, for the members the mask
//! kept.
//!
//! Tiers larger than [`MAX_INDEXED`] members are not indexed (the mask
//! would not fit the stack) and use the per-member tests.

use std::collections::HashMap;

use crate::hash::FixedState;

use super::Slot;
use crate::{Request, TagMatch};

/// Words in a mask: tiers of up to 4,096 members are indexed.
pub(crate) const MASK_WORDS: usize = 64;
/// The largest tier with an index.
pub(crate) const MAX_INDEXED: usize = MASK_WORDS * 64;

/// A bit mask over a tier's positions (bit `p % 64` of word `p / 64`).
pub(crate) type Mask = [u64; MASK_WORDS];

/// The members holding one value of a field.
///
/// Values held by few members keep their positions, the others a bitmap:
/// per field, every member is listed at most once and at most 32 values
/// reach the bitmap threshold, so a field costs at most about 8 bytes a
/// member however many distinct values it has.
#[derive(Debug)]
enum Members {
    Positions(Box<[u32]>),
    Bits(Box<[u64]>),
}

impl Members {
    fn new(positions: Vec<u32>, tier_len: usize) -> Self {
        if positions.len() * 32 < tier_len {
            return Members::Positions(positions.into_boxed_slice());
        }
        let mut bits = vec![0u64; tier_len.div_ceil(64)].into_boxed_slice();
        for p in positions {
            bits[p as usize / 64] |= 1 << (p % 64);
        }
        Members::Bits(bits)
    }

    /// `mask &= self` over the first `words` words.
    fn and_into(&self, mask: &mut [u64]) {
        match self {
            Members::Bits(bits) => {
                for (m, b) in mask.iter_mut().zip(bits.iter()) {
                    *m &= b;
                }
            }
            Members::Positions(positions) => {
                let mut kept = [0u64; MASK_WORDS];
                for &p in positions.iter() {
                    let (w, bit) = (p as usize / 64, 1u64 << (p % 64));
                    kept[w] |= mask[w] & bit;
                }
                mask.copy_from_slice(&kept[..mask.len()]);
            }
        }
    }

    /// `mask |= self` over the first `words` words.
    fn or_into(&self, mask: &mut [u64]) {
        match self {
            Members::Bits(bits) => {
                for (m, b) in mask.iter_mut().zip(bits.iter()) {
                    *m |= b;
                }
            }
            Members::Positions(positions) => {
                for &p in positions.iter() {
                    mask[p as usize / 64] |= 1 << (p % 64);
                }
            }
        }
    }
}

type Values = HashMap<Box<str>, Members, FixedState>;
/// Positions by value, while building.
type Lists<'a> = HashMap<&'a str, Vec<u32>, FixedState>;

/// The members of one tier by provider, label and tag.
#[derive(Debug, Default)]
pub(crate) struct TierIndex {
    providers: Values,
    labels: HashMap<Box<str>, Values, FixedState>,
    tags: Values,
}

impl TierIndex {
    /// The index of the tier whose members (slot indices) are `members`,
    /// `None` for tiers larger than [`MAX_INDEXED`].
    pub(crate) fn build(slots: &[Slot], members: &[u32]) -> Option<Self> {
        if members.len() > MAX_INDEXED {
            return None;
        }
        // Fixed-seed maps: nothing here may read the OS's randomness.
        let mut providers: Lists<'_> = HashMap::default();
        let mut labels: HashMap<&str, Lists<'_>, FixedState> = HashMap::default();
        let mut tags: Lists<'_> = HashMap::default();
        for (pos, &i) in members.iter().enumerate() {
            let d = &slots[i as usize].deployment;
            let pos = pos as u32;
            providers.entry(d.provider()).or_default().push(pos);
            for (k, v) in d.labels() {
                labels
                    .entry(k.as_str())
                    .or_default()
                    .entry(v.as_str())
                    .or_default()
                    .push(pos);
            }
            if let Some(t) = d.tag() {
                tags.entry(t).or_default().push(pos);
            }
        }
        let n = members.len();
        let values = |m: Lists<'_>| -> Values {
            m.into_iter()
                .map(|(v, ps)| (v.into(), Members::new(ps, n)))
                .collect()
        };
        Some(Self {
            providers: values(providers),
            labels: labels
                .into_iter()
                .map(|(k, m)| (k.into(), values(m)))
                .collect(),
            tags: values(tags),
        })
    }

    /// Narrows `mask` (the first `words` words; bits past the tier's end
    /// clear) to the members passing the request's provider, label and tag
    /// filters.
    pub(crate) fn narrow(&self, request: &Request, mask: &mut [u64]) {
        if let Some(p) = request.required_provider() {
            and_value(self.providers.get(p), mask);
        }
        for (k, v) in request.required_labels() {
            and_value(
                self.labels.get(k.as_str()).and_then(|m| m.get(v.as_str())),
                mask,
            );
        }
        let tags = request.requested_tags();
        if let Some(first) = tags.first() {
            match request.tag_match_mode() {
                TagMatch::Any => {
                    let mut any = [0u64; MASK_WORDS];
                    for t in tags {
                        if let Some(m) = self.tags.get(t.as_str()) {
                            m.or_into(&mut any[..mask.len()]);
                        }
                    }
                    for (m, a) in mask.iter_mut().zip(any) {
                        *m &= a;
                    }
                }
                // A deployment has one tag: it holds all requested tags only
                // if they are all the same.
                TagMatch::All if tags.iter().all(|t| t == first) => {
                    and_value(self.tags.get(first.as_str()), mask);
                }
                TagMatch::All => mask.fill(0),
            }
        }
    }
}

fn and_value(members: Option<&Members>, mask: &mut [u64]) {
    match members {
        Some(m) => m.and_into(mask),
        None => mask.fill(0),
    }
}

/// Whether `position` is set in `mask`.
pub(crate) fn has(mask: &[u64], position: usize) -> bool {
    mask[position / 64] >> (position % 64) & 1 == 1
}

/// The positions set in `mask`, ascending.
pub(crate) fn positions(mask: &[u64]) -> impl Iterator<Item = usize> + '_ {
    mask.iter().enumerate().flat_map(|(w, &word)| {
        let mut rest = word;
        std::iter::from_fn(move || {
            (rest != 0).then(|| {
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                w * 64 + bit
            })
        })
    })
}

/// The position of the `n`-th set bit of `mask` (from 0), if any.
pub(crate) fn nth(mask: &[u64], mut n: usize) -> Option<usize> {
    for (w, &word) in mask.iter().enumerate() {
        let count = word.count_ones() as usize;
        if n < count {
            let mut rest = word;
            for _ in 0..n {
                rest &= rest - 1;
            }
            return Some(w * 64 + rest.trailing_zeros() as usize);
        }
        n -= count;
    }
    None
}

/// Clears from `mask` the positions, among those `test(w, word)` selects
/// from each word `w`, for which `keep` returns `false`; positions not
/// selected stay as they are.
pub(crate) fn retain_in(
    mask: &mut [u64],
    test: impl Fn(usize, u64) -> u64,
    mut keep: impl FnMut(usize) -> bool,
) {
    for (w, word) in mask.iter_mut().enumerate() {
        let mut rest = test(w, *word);
        while rest != 0 {
            let bit = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if !keep(w * 64 + bit) {
                *word &= !(1 << bit);
            }
        }
    }
}

/// The number of set bits.
pub(crate) fn count(mask: &[u64]) -> usize {
    mask.iter().map(|w| w.count_ones() as usize).sum()
}

/// A mask with the first `len` positions set, and the number of words in
/// use.
pub(crate) fn full(len: usize) -> (Mask, usize) {
    let mut mask = [0u64; MASK_WORDS];
    let words = len.div_ceil(64);
    mask[..words].fill(u64::MAX);
    if !len.is_multiple_of(64) {
        mask[words - 1] = (1u64 << (len % 64)) - 1;
    }
    (mask, words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Word `w` of the bit mask of `positions`.
    fn as_bits_word(positions: &[u32], w: usize) -> u64 {
        positions
            .iter()
            .filter(|&&p| p as usize / 64 == w)
            .fold(0, |word, &p| word | 1 << (p % 64))
    }

    proptest! {
        /// Masks agree with a plain list of booleans: membership, count,
        /// n-th set bit, iteration, And/Or with both representations, and
        /// retaining among selected positions.
        #[test]
        fn mask_operations_match_a_bool_list(
            len in 1usize..=MAX_INDEXED,
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..200),
            other in prop::collection::vec(any::<prop::sample::Index>(), 0..200),
        ) {
            let (mut mask, words) = full(len);
            prop_assert_eq!(count(&mask[..words]), len);
            let mut want = vec![false; len];
            let mut ps: Vec<u32> = picks.iter().map(|i| i.index(len) as u32).collect();
            ps.sort_unstable();
            ps.dedup();
            for &p in &ps {
                want[p as usize] = true;
            }
            Members::new(ps.clone(), len).and_into(&mut mask[..words]);
            let mut os: Vec<u32> = other.iter().map(|i| i.index(len) as u32).collect();
            os.sort_unstable();
            os.dedup();
            // Both representations of the same set give the same result.
            let mut bits = vec![0u64; words];
            for &p in &os {
                bits[p as usize / 64] |= 1 << (p % 64);
            }
            let as_bits = Members::Bits(bits.into_boxed_slice());
            let as_positions = Members::Positions(os.clone().into_boxed_slice());
            let mut or_a = mask;
            let mut or_b = mask;
            as_bits.or_into(&mut or_a[..words]);
            as_positions.or_into(&mut or_b[..words]);
            prop_assert_eq!(or_a, or_b);
            let mut and_a = mask;
            let mut and_b = mask;
            as_bits.and_into(&mut and_a[..words]);
            as_positions.and_into(&mut and_b[..words]);
            prop_assert_eq!(and_a, and_b);
            let set: Vec<usize> = (0..len).filter(|&p| want[p]).collect();
            prop_assert_eq!(positions(&mask[..words]).collect::<Vec<_>>(), set.clone());
            prop_assert_eq!(count(&mask[..words]), set.len());
            for (i, &p) in set.iter().enumerate() {
                prop_assert_eq!(nth(&mask[..words], i), Some(p));
                prop_assert!(has(&mask[..words], p));
            }
            prop_assert_eq!(nth(&mask[..words], set.len()), None);
            let both: Vec<usize> = set.iter().copied().filter(|p| os.contains(&(*p as u32))).collect();
            prop_assert_eq!(positions(&and_a[..words]).collect::<Vec<_>>(), both.clone());
            // Retaining, among the positions also in `os`, those that are
            // odd: every other position stays; `keep` sees each tested
            // position once, ascending.
            let mut kept = mask;
            let mut seen = Vec::new();
            let selected = |w: usize, word: u64| word & as_bits_word(&os, w);
            retain_in(&mut kept[..words], selected, |p| {
                seen.push(p);
                p % 2 == 1
            });
            prop_assert_eq!(seen, both.clone());
            let want: Vec<usize> = set.iter().copied().filter(|p| !both.contains(p) || p % 2 == 1).collect();
            prop_assert_eq!(positions(&kept[..words]).collect::<Vec<_>>(), want);
        }
    }
}
