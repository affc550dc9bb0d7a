//! Usage as replicas share it: what this replica counted per deployment
//! and wall-clock minute ([`Own`]), and what it heard from the others
//! ([`Merged`]), a grow-only count per (deployment, replica, minute).

use std::collections::HashMap;
use std::sync::Arc;

use crate::ModelKey;
use crate::hash::FixedState;
use crate::share::ReplicaId;

/// One deployment's running counts in one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Count {
    pub(crate) minute: u64,
    pub(crate) requests: u64,
    pub(crate) tokens: u64,
}

/// This replica's counts, made from the deployments' ever-growing totals
/// by difference: what grew since the last export counts in the minute of
/// the export.
#[derive(Debug, Default)]
pub(crate) struct Own {
    entries: HashMap<Arc<ModelKey>, OwnEntry, FixedState>,
}

#[derive(Debug, Default)]
struct OwnEntry {
    /// The totals at the last export.
    seen: (u64, u64),
    current: Count,
    previous: Count,
}

impl Own {
    /// Counts the growth of `key`'s totals to `totals` in `minute`; the
    /// count of that minute if it grew.
    pub(crate) fn record(
        &mut self,
        key: &Arc<ModelKey>,
        totals: (u64, u64),
        minute: u64,
    ) -> Option<Count> {
        let entry = self.entries.entry(Arc::clone(key)).or_default();
        let grew = (
            totals.0.saturating_sub(entry.seen.0),
            totals.1.saturating_sub(entry.seen.1),
        );
        entry.seen = totals;
        if entry.current.minute != minute {
            entry.previous = entry.current;
            entry.current = Count {
                minute,
                ..Count::default()
            };
        }
        if grew == (0, 0) {
            return None;
        }
        entry.current.requests = entry.current.requests.saturating_add(grew.0);
        entry.current.tokens = entry.current.tokens.saturating_add(grew.1);
        Some(entry.current)
    }

    /// Every count of `minute` and the minute before, for a snapshot.
    pub(crate) fn recent(&self, minute: u64) -> impl Iterator<Item = (&ModelKey, Count)> {
        self.entries.iter().flat_map(move |(key, e)| {
            [e.previous, e.current]
                .into_iter()
                .filter(move |c| c.minute + 1 >= minute && (c.requests, c.tokens) != (0, 0))
                .map(move |c| (&**key, c))
        })
    }

    /// Forgets deployments `keep` says are gone.
    pub(crate) fn retain(&mut self, keep: impl Fn(&ModelKey) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }
}

/// The other replicas' counts: the largest heard per (deployment, replica,
/// minute), so a repeated or older event changes nothing.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    counts: HashMap<(ModelKey, ReplicaId, u64), (u64, u64), FixedState>,
}

impl Merged {
    /// Merges one count; whether it raised anything.
    pub(crate) fn merge(&mut self, key: &ModelKey, replica: &ReplicaId, count: Count) -> bool {
        let slot = self
            .counts
            .entry((key.clone(), replica.clone(), count.minute))
            .or_default();
        let merged = (slot.0.max(count.requests), slot.1.max(count.tokens));
        let raised = merged != *slot;
        *slot = merged;
        raised
    }

    /// Each deployment's usage over the rolling minute ending `elapsed_ms`
    /// into `minute`: the counts of this minute (and of the next, from a
    /// replica whose clock is ahead) in full, and the previous minute's by
    /// the share of it still within the last 60 s. Drops older counts.
    pub(crate) fn rolling(
        &mut self,
        minute: u64,
        elapsed_ms: u64,
    ) -> HashMap<ModelKey, (u64, u64), FixedState> {
        self.counts
            .retain(|(_, _, m), _| m.saturating_add(1) >= minute);
        let mut sums: HashMap<ModelKey, (u64, u64), FixedState> = HashMap::default();
        let left = 60_000u64.saturating_sub(elapsed_ms.min(60_000));
        for ((key, _, m), &(requests, tokens)) in &self.counts {
            let (r, t) = if *m < minute {
                let part = |n: u64| (u128::from(n) * u128::from(left) / 60_000) as u64;
                (part(requests), part(tokens))
            } else {
                (requests, tokens)
            };
            let sum = sums.entry(key.clone()).or_default();
            *sum = (sum.0.saturating_add(r), sum.1.saturating_add(t));
        }
        sums
    }
}
