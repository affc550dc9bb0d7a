//! Which members of a disturbed tier a pick must check.
//!
//! While some member of a tier is cooling, ejected or ramping up (or has
//! limits), a pick cannot take the tier's members on trust, and testing
//! every member's state costs a pass over the tier (O(n)), on every pick
//! for as long as one member cools. Yet a member
//! that was healthy at full weight at some time stays so at every later
//! time until a report puts it out: cooldowns, ejections and slow starts
//! only begin with a report (or a rebuild, before the version is
//! published). So one pass can record, as a bit per member, which members
//! were busy at its time (or are limited: limits change with every pick);
//! later picks check only those, as long as no report has advanced the
//! selector's [epoch](super::flags::Epoch) since: a count of the reports
//! that put a deployment out, shared by every version that may share a
//! deployment's state, so a report through any of them renews the records
//! of all.
//!
//! The record is shared by the threads picking from one selector version
//! and rewritten in place, without a lock and without allocating: a
//! sequence counter, odd while a pick rewrites the bits, lets a reader tell
//! a consistent copy from a torn one (a seqlock). A reader never waits: if
//! the record is being rewritten, stale or torn, it computes its own
//! answer, and offers it as the new record if no other pick is writing.
//!
//! This file holds the whole protocol (the record, the epoch's advance and
//! load, the lookup), and takes its atomics from the module that includes
//! it: std's in the crate, loom's in `tests/loom_suspects.rs`, which
//! compiles this very file and model-checks it.

use super::atomic::{AtomicU64, Ordering, fence};

/// Advances the lineage epoch after a report has written the state that
/// put a deployment out: release, so a pick that loads the new epoch sees
/// that state.
#[inline]
pub(crate) fn advance(epoch: &AtomicU64) {
    epoch.fetch_add(1, Ordering::Release);
}

/// The lineage epoch a pick reads records at, loaded before it reads any
/// state: acquire, so every report counted in it is seen in the states.
#[inline]
pub(crate) fn current(epoch: &AtomicU64) -> u64 {
    epoch.load(Ordering::Acquire)
}

/// The epoch of a record never written.
const NEVER: u64 = u64::MAX;

/// The members of one tier a pick must check: one bit per tier position.
#[derive(Debug)]
pub(crate) struct Suspects {
    /// Even while the record is stable; odd while a pick rewrites it.
    seq: AtomicU64,
    /// The epoch the record was computed at ([`NEVER`]: none).
    epoch: AtomicU64,
    /// The time (ns) it was computed at: a member not in the record was
    /// healthy, at full weight and unlimited at that time.
    at: AtomicU64,
    bits: Box<[AtomicU64]>,
}

impl Suspects {
    /// An empty record for a tier of `len` members.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            seq: AtomicU64::new(0),
            epoch: AtomicU64::new(NEVER),
            at: AtomicU64::new(0),
            bits: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Fills `out` with the record if it holds for `epoch` (from
    /// [`current`]) and `now`; otherwise with `compute`'s answer, which it
    /// offers as the record made at time `at` (not after `now`). `compute`
    /// reads the states after the epoch was loaded, so its answer is at
    /// least as new as `epoch`. O(`out.len()`) plus `compute`'s cost when
    /// the record does not hold.
    #[inline]
    pub(crate) fn lookup(
        &self,
        epoch: u64,
        now: u64,
        at: u64,
        out: &mut [u64],
        compute: impl FnOnce(&mut [u64]),
    ) {
        if self.read(epoch, now, out) {
            return;
        }
        compute(out);
        self.offer(epoch, at, out);
    }

    /// Copies the record into `out` and returns `true` if it was computed
    /// at `epoch`, at a time not after `now`, and read whole;
    /// otherwise `out` is unspecified.
    pub(crate) fn read(&self, epoch: u64, now: u64, out: &mut [u64]) -> bool {
        let start = self.seq.load(Ordering::Acquire);
        if start % 2 == 1
            || self.epoch.load(Ordering::Relaxed) != epoch
            || self.at.load(Ordering::Relaxed) > now
        {
            return false;
        }
        for (o, b) in out.iter_mut().zip(&*self.bits) {
            *o = b.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        self.seq.load(Ordering::Relaxed) == start
    }

    /// Offers `bits`, computed at `epoch` and time `now`, as the
    /// record. Skipped if another pick is writing, or the record is of a
    /// later epoch (a pick that read the epoch before a report and
    /// finished after another had recorded it).
    pub(crate) fn offer(&self, epoch: u64, now: u64, bits: &[u64]) {
        let start = self.seq.load(Ordering::Relaxed);
        let stored = self.epoch.load(Ordering::Relaxed);
        if start % 2 == 1
            || (stored != NEVER && stored > epoch)
            || self
                .seq
                .compare_exchange(start, start + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        for (b, &w) in self.bits.iter().zip(bits) {
            b.store(w, Ordering::Relaxed);
        }
        self.epoch.store(epoch, Ordering::Relaxed);
        self.at.store(now, Ordering::Relaxed);
        self.seq.store(start + 2, Ordering::Release);
    }
}

// Under loom these atomics panic outside a model; tests/loom_suspects.rs
// checks the protocol there.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::Suspects;

    #[test]
    fn a_record_holds_for_its_epoch_and_later_times_only() {
        let s = Suspects::new(130);
        let mut out = [0u64; 3];
        assert!(!s.read(0, 10, &mut out), "never written");
        s.offer(4, 100, &[1, 0, 2]);
        assert!(s.read(4, 100, &mut out));
        assert_eq!(out, [1, 0, 2]);
        assert!(s.read(4, 5_000, &mut out), "later times");
        assert!(!s.read(4, 99, &mut out), "an earlier time");
        assert!(!s.read(5, 100, &mut out), "another epoch");
        s.offer(5, 99, &[0, 8, 0]);
        assert!(s.read(5, 99, &mut out));
        assert_eq!(out, [0, 8, 0]);
    }

    #[test]
    fn readers_and_writers_on_many_threads_see_whole_records_only() {
        // Every record written has all three words equal to its
        // epoch; a torn read would mix two.
        let s = Suspects::new(192);
        std::thread::scope(|scope| {
            for t in 0..2u64 {
                let s = &s;
                scope.spawn(move || {
                    for g in 0..20_000u64 {
                        let g = g * 2 + t;
                        s.offer(g, 0, &[g, g, g]);
                    }
                });
            }
            for _ in 0..2 {
                let s = &s;
                scope.spawn(move || {
                    let mut out = [0u64; 3];
                    for g in 0..40_000u64 {
                        if s.read(g, 0, &mut out) {
                            assert_eq!(out, [g, g, g]);
                        }
                    }
                });
            }
        });
    }
}
