//! Where a shared fleet's reports leave what other replicas should hear.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use crate::ModelKey;
use crate::health::FailureKind;

/// Events waiting for [`Fleet::events`](crate::Fleet::events) at most; later
/// ones are counted and dropped (the fleet's snapshot still carries every
/// out-state that lasts).
const CAPACITY: usize = 65_536;

/// A transition seen by a report, in library time (ns).
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    Cooled(Arc<ModelKey>, u64, FailureKind),
    Ejected(Arc<ModelKey>, u64),
}

/// The transitions reports made, shared by every version of one fleet.
/// Reports lock it only when a deployment goes out.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pending: Mutex<Vec<Pending>>,
    dropped: AtomicU64,
}

impl Outbox {
    pub(crate) fn push(&self, event: Pending) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() < CAPACITY {
            pending.push(event);
        } else {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn take(&self) -> Vec<Pending> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Transitions dropped because the outbox was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}
