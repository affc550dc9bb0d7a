//! The hashes the crate relies on, each fixed so that results never depend
//! on the run, the platform or the process.
//!
//! - [`FixedState`]: the internal maps (registry keys, model lookup, filter
//!   indexes) use foldhash with a fixed seed: no process-wide random keys,
//!   so every run behaves the same. The keys come from the registry's own
//!   deployments, not from requests, so there is no flooding concern (a
//!   lookup's cost is bounded by what is stored).
//! - [`stable`] and [`stable_with_seed`]: xxh3, whose output is fixed by its
//!   specification; affinity keys and ring points hash through them, so a
//!   sticky request lands on the same deployment on every replica and
//!   version.
//! - [`pair`]: the SplitMix64 finalizer of two 64-bit values, which decides
//!   whether a ring point accepts an affinity hash; fixed for the same
//!   reason.

/// The fixed-seed hasher builder of every internal map.
pub(crate) type FixedState = foldhash::fast::FixedState;

/// The stable 64-bit hash of `bytes` (xxh3, seed 0).
pub(crate) fn stable(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The stable 64-bit hash of `bytes` under `seed` (xxh3).
pub(crate) fn stable_with_seed(bytes: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, seed)
}

/// A stable, well-mixed 64-bit hash of the pair `(a, b)`: the SplitMix64
/// finalizer (Steele, Lea and Flood, OOPSLA 2014) of `a` combined with `b`
/// rotated by half a word, so that two nearby values of `a` (affinity
/// hashes landing near the same ring point) and the same `b` give
/// unrelated results. A few integer operations, no table, the same on every
/// platform; the ring's acceptance walk draws one per point it visits.
#[inline]
pub(crate) const fn pair(a: u64, b: u64) -> u64 {
    // The odd constant keeps `a == b.rotate_left(32)` away from the fixed
    // point 0 of the finalizer.
    let mut z = (a ^ b.rotate_left(32)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
