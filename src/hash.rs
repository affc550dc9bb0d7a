//! The hashes the crate relies on, each fixed so that results never depend
//! on the run, the platform or the process.
//!
//! - [`FixedState`]: the internal maps (registry keys, model lookup, filter
//!   indexes) use foldhash with a fixed seed: no process-wide random keys,
//!   so every run behaves the same. The keys come from the registry's own
//!   deployments, not from requests, so there is no flooding concern (a
//!   lookup's cost is bounded by what is stored).
//! - [`stable`]: xxh3, whose output is fixed by its specification;
//!   affinity keys and ring members' key texts hash through it, so a sticky request lands on the same deployment on every
//!   replica and version.
//! - [`sequence`] and [`pair`]: SplitMix64, fixed for the same reason: the
//!   points of a ring member (a sequence seeded by its key text's hash),
//!   and whether a ring point accepts an affinity hash.

/// The fixed-seed hasher builder of every internal map.
pub(crate) type FixedState = foldhash::fast::FixedState;

/// The stable 64-bit hash of `bytes` (xxh3, seed 0).
pub(crate) fn stable(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The SplitMix64 increment (the golden ratio of 2^64).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finalizer (Steele, Lea and Flood, OOPSLA 2014): a
/// bijective mix of 64 bits.
#[inline]
const fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `index`-th value of the SplitMix64 sequence seeded by `seed`: the
/// points of one ring member, from the hash of its key text. Distinct
/// indices give distinct values; distinct seeds give unrelated sequences.
/// (xxh3 under small consecutive seeds is no substitute: for inputs of a
/// few bytes the seed is only added to the input, so short key texts share
/// many of their points.)
#[inline]
pub(crate) const fn sequence(seed: u64, index: u64) -> u64 {
    finalize(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// A stable, well-mixed 64-bit hash of the pair `(a, b)`: the SplitMix64
/// finalizer of `a` combined with `b` rotated by half a word, so that two
/// nearby values of `a` (affinity hashes landing near the same ring point)
/// and the same `b` give unrelated results. A few integer operations, no
/// table, the same on every platform; the ring's acceptance walk draws one
/// per point it visits.
#[inline]
pub(crate) const fn pair(a: u64, b: u64) -> u64 {
    // The odd constant keeps `a == b.rotate_left(32)` away from the fixed
    // point 0 of the finalizer.
    finalize((a ^ b.rotate_left(32)).wrapping_add(GAMMA))
}
