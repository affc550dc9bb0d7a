//! Model-checks the suspects seqlock and the lineage epoch protocol with
//! loom, on the crate's own code: `src/select/suspects.rs` is compiled here
//! with loom's atomics in place of std's, so every interleaving and every
//! weak-memory outcome loom explores runs the real record, the real epoch
//! advance and load, and the real lookup.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_suspects`
//! (`.ci/run` does, in a target directory of its own).
//!
//! The reduced model: one deployment state word, the lineage epoch, and a
//! record of two words. One reporter writes the state and advances the
//! epoch, twice, as a report that puts a deployment out does. Two picks, on
//! two threads, look the record up at the epoch they load; on a miss each
//! computes the record from the state (both words: the state it read) and
//! offers it, racing the other as record writers. A pick must never accept a torn record (words
//! that differ), nor a record computed from a state older than the epoch it
//! loaded.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

// What `suspects.rs` takes as `super::atomic`.
use loom::sync::atomic;

#[allow(dead_code)]
#[path = "../src/select/suspects.rs"]
mod suspects;

use suspects::Suspects;

/// The time picks run at, and the time their records are made for.
const NOW: u64 = 10;
const AT: u64 = 9;

/// The default preemption bound: with it the model explores every
/// interleaving with up to two preemptions, in seconds; each ordering the
/// protocol relies on, weakened by one step, fails within it.
const PREEMPTIONS: usize = 2;

/// How many reports the reporter makes.
const REPORTS: u64 = 2;

struct World {
    /// Stands for the deployment states a report writes (relaxed, as
    /// `DeploymentState` writes them): the number of the last report.
    state: AtomicU64,
    epoch: AtomicU64,
    record: Suspects,
}

/// One pick: look the record up, then check what it got.
fn pick(world: &World) {
    let epoch = suspects::current(&world.epoch);
    let mut out = [u64::MAX; 2];
    world.record.lookup(epoch, NOW, AT, &mut out, |out| {
        out.fill(world.state.load(Ordering::Relaxed));
    });
    assert_eq!(out[0], out[1], "a torn record was accepted: {out:?}");
    assert!(
        out[0] >= epoch,
        "a record of state {} was accepted at epoch {epoch}",
        out[0]
    );
}

#[test]
fn picks_accept_only_whole_records_of_their_epoch() {
    // Builder::new reads LOOM_MAX_PREEMPTIONS; without it, PREEMPTIONS.
    let mut model = loom::model::Builder::new();
    if model.preemption_bound.is_none() {
        model.preemption_bound = Some(PREEMPTIONS);
    }
    model.check(|| {
        let world = Arc::new(World {
            state: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            // Two words: a record of 65 to 128 members.
            record: Suspects::new(128),
        });
        let reporter = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                for n in 1..=REPORTS {
                    world.state.store(n, Ordering::Relaxed);
                    suspects::advance(&world.epoch);
                }
            })
        };
        let picker = {
            let world = Arc::clone(&world);
            thread::spawn(move || pick(&world))
        };
        pick(&world);
        reporter.join().unwrap();
        picker.join().unwrap();
    });
}
