//! nginx's smooth weighted round robin, precomputed: the member positions
//! of one period of its picks over a tier's weights, so that turn `t`
//! takes entry `t mod period` without any shared mutable state.
//!
//! nginx keeps a current weight per peer: every pick adds each peer's
//! weight to its current, takes the largest current (ties: first in
//! order) and subtracts the total from it. The sequence is periodic; with
//! the weights divided by their gcd `g` (which scales every current by
//! `1/g` and so changes no comparison) the period is `P = Σw / g`, and
//! each member appears `w_i / g` times in it.

/// The longest period precomputed: a schedule is at most this many
/// `u16` entries (128 KiB). Members have reduced weights of at least 1, so
/// a tier with a schedule has at most `MAX_PERIOD` members and every
/// position fits in a `u16`.
pub(crate) const MAX_PERIOD: u64 = 65_536;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Members of one reduced weight, in order. Among members of equal
/// weight, nginx's currents differ only by multiples of the period, so the
/// one picked least (first in order among those) is the class's best: a
/// class is picked in rotation, and only its head competes.
struct Class {
    weight: u64,
    members: Vec<u16>,
    picks: u64,
}

impl Class {
    /// The head's position and its nginx current after turn `t` adds the
    /// weights.
    fn head(&self, t: u64, period: u64) -> (i64, u16) {
        let len = self.members.len() as u64;
        let own = self.picks / len;
        // Both terms are at most 2^32: no overflow in i64.
        let current = ((t + 1) * self.weight) as i64 - (period * own) as i64;
        (current, self.members[(self.picks % len) as usize])
    }
}

/// One period of nginx's smooth weighted round robin over `weights` (in
/// member order, each at least 1), as member positions; `None` when the
/// period is over [`MAX_PERIOD`].
///
/// O(P × d) for period P and d distinct weights (d ≤ 362 when P ≤
/// 65,536, since d distinct reduced weights sum to at least d(d+1)/2).
pub(crate) fn smooth(weights: &[u64]) -> Option<Box<[u16]>> {
    let g = weights.iter().fold(0, |g, &w| gcd(g, w));
    if g == 0 {
        return None;
    }
    let period = weights.iter().map(|&w| w / g).sum::<u64>();
    if period > MAX_PERIOD {
        return None;
    }
    let mut classes: Vec<Class> = Vec::new();
    for (position, &w) in weights.iter().enumerate() {
        let weight = w / g;
        let position = u16::try_from(position).ok()?;
        match classes.iter_mut().find(|c| c.weight == weight) {
            Some(c) => c.members.push(position),
            None => classes.push(Class {
                weight,
                members: vec![position],
                picks: 0,
            }),
        }
    }
    let mut out = Vec::with_capacity(period as usize);
    for t in 0..period {
        let mut best = 0;
        let mut best_head = classes[0].head(t, period);
        for (i, c) in classes.iter().enumerate().skip(1) {
            let head = c.head(t, period);
            // The largest current; on a tie, the first member in order.
            if head.0 > best_head.0 || (head.0 == best_head.0 && head.1 < best_head.1) {
                best = i;
                best_head = head;
            }
        }
        classes[best].picks += 1;
        out.push(best_head.1);
    }
    Some(out.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// nginx's algorithm, as written there: every member's current grows
    /// by its weight, the largest (first on ties) is picked and loses the
    /// total.
    fn nginx(weights: &[u64], picks: usize) -> Vec<u16> {
        let total: i64 = weights.iter().map(|&w| w as i64).sum();
        let mut current = vec![0i64; weights.len()];
        (0..picks)
            .map(|_| {
                let mut best = 0;
                for (i, &w) in weights.iter().enumerate() {
                    current[i] += w as i64;
                    if current[i] > current[best] {
                        best = i;
                    }
                }
                current[best] -= total;
                best as u16
            })
            .collect()
    }

    #[test]
    fn fifty_thirty_twenty() {
        let s = smooth(&[50, 30, 20]).unwrap();
        assert_eq!(&*s, &[0, 1, 2, 0, 0, 1, 0, 2, 1, 0]);
        assert_eq!(&*s, &nginx(&[5, 3, 2], 10)[..]);
    }

    #[test]
    fn the_bound() {
        assert_eq!(smooth(&[65_535, 1]).map(|s| s.len()), Some(65_536));
        assert_eq!(smooth(&[65_536, 1]), None);
        assert_eq!(smooth(&[4, 4, 4]).as_deref(), Some(&[0, 1, 2][..]));
        assert_eq!(smooth(&[]), None);
    }

    proptest! {
        #[test]
        fn is_nginx_s_sequence(
            weights in prop::collection::vec(
                prop_oneof![1u64..5, Just(6), Just(12), 100u64..400],
                1..14,
            ),
            scale in prop_oneof![Just(1u64), 2u64..5, Just(1u64 << 20)],
        ) {
            let scaled: Vec<u64> = weights.iter().map(|w| w * scale).collect();
            let s = smooth(&scaled).unwrap();
            // The reference over two periods of the unreduced weights.
            let reference = nginx(&scaled, 2 * s.len());
            prop_assert_eq!(&reference[..s.len()], &*s);
            prop_assert_eq!(&reference[s.len()..], &*s);
        }
    }
}
