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
