//! Outcome reports: what a completed pick, or a report by key, does to
//! the deployment's live state and to its tier's flags.

use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::Selector;
use super::suspects;
use super::tables::Slot;
use crate::ModelKey;
use crate::health::state::{DeploymentState, GroupView, nanos};
use crate::health::{HealthSnapshot, Report};
use crate::share::Pending;

impl Selector {
    /// Applies an outcome report to the deployment under `key`; returns
    /// `false` (and changes nothing) if the selector has no such deployment,
    /// e.g. one removed since the pick. Use it when the [`Pick`](crate::Pick) is gone;
    /// otherwise [`Pick::complete`](crate::Pick::complete) also releases the in-flight slot.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::{FailureKind, HealthPolicy, Report};
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).health(HealthPolicy::dify().validated()?).build();
    /// let key = s.select(&Request::new("gpt-4"))?.key().clone();
    /// let limited = Report::failure(Duration::from_secs(1), FailureKind::rate_limited(None));
    /// assert!(s.report(&key, limited));
    /// assert!(!s.report(&"openai/gone@".parse()?, limited));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn report(&self, key: &ModelKey, report: Report) -> bool {
        match self.shared.by_key.get(key) {
            Some(&i) => {
                self.apply(&self.shared.slots[i as usize], &report);
                true
            }
            None => false,
        }
    }

    /// The health of every deployment at `now`, in registry order: a
    /// read-only view for dashboards and logs. Allocates.
    ///
    /// ```
    /// use std::time::Duration;
    /// use modelfleet::health::{FailureKind, HealthPolicy, Report, State};
    /// use modelfleet::{Deployment, Registry, Request, Selector};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let s = Selector::builder(&reg).health(HealthPolicy::dify().validated()?).build();
    /// let pick = s.select(&Request::new("gpt-4"))?;
    /// pick.complete(Report::failure(Duration::from_secs(1), FailureKind::ConnectionError));
    /// let health = s.health(Duration::from_secs(5));
    /// assert_eq!(health[0].state, State::Cooling);
    /// assert_eq!(health[0].available_at, Some(Duration::from_secs(11)));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn health(&self, now: Duration) -> Vec<HealthSnapshot> {
        let t = nanos(now);
        let h = &self.shared.health;
        self.shared
            .slots
            .iter()
            .map(|slot| {
                let st = &slot.state;
                HealthSnapshot {
                    key: (*slot.key).clone(),
                    state: st.state_at(t, h.slow_start.as_ref()),
                    available_at: st.out_at(t).map(|(_, u)| Duration::from_nanos(u)),
                    ejections: st.ejections_at(t, h.ejection.map(|e| e.interval)),
                    consecutive_failures: st.consecutive_failures(),
                    in_flight: st.in_flight(),
                    latency: st.latency(),
                    requests_per_minute: st.picks_per_minute(t),
                    tokens_per_minute: st.tokens_per_minute(t),
                    cooldown: slot.deployment.cooldown(),
                }
            })
            .collect()
    }

    /// The slot under `key` in this version, if it shares `state`.
    pub(crate) fn same_slot(
        &self,
        key: &ModelKey,
        state: &Arc<CachePadded<DeploymentState>>,
    ) -> Option<&Slot> {
        self.slot(key).filter(|s| Arc::ptr_eq(&s.state, state))
    }

    pub(crate) fn apply(&self, slot: &Slot, report: &Report) {
        // Load first: most reports do not move the clock forward enough to
        // matter, and a load does not take the cache line from other cores.
        let t = nanos(report.time());
        if t > self.shared.latest.load(Ordering::Relaxed) {
            self.shared.latest.fetch_max(t, Ordering::Relaxed);
        }
        let shared = &*self.shared;
        let group = &shared.groups[slot.group as usize];
        let ejected_at = |now: u64| {
            group
                .all
                .iter()
                .filter(|&&i| shared.slots[i as usize].state.is_ejected_at(now))
                .count()
        };
        let view = GroupView {
            len: group.all.len(),
            ejected_at: &ejected_at,
        };
        let changed = slot.state.report(
            report,
            &shared.health,
            shared.latency_decay,
            &view,
            slot.cooldown,
        );
        if let Some(changed) = changed {
            if let Some(outbox) = &shared.outbox {
                if let Some((until, kind)) = changed.cooled {
                    outbox.push(Pending::Cooled(Arc::clone(&slot.key), until, kind));
                }
                if let Some(until) = changed.ejected {
                    outbox.push(Pending::Ejected(Arc::clone(&slot.key), until));
                }
            }
            self.disturb(slot, changed.out_until);
        }
    }

    /// Takes an out-state another replica saw (see
    /// [`DeploymentState::absorb`]); whether it changed anything. Nothing
    /// goes to the outbox: the event came from outside.
    pub(crate) fn absorb(&self, slot: &Slot, until: u64, ejected: bool) -> bool {
        match slot.state.absorb(until, ejected) {
            Some(changed) => {
                self.disturb(slot, changed.out_until);
                true
            }
            None => false,
        }
    }

    /// Tells the fast paths that `slot` is out until `out_until` (ns).
    fn disturb(&self, slot: &Slot, out_until: u64) {
        let shared = &*self.shared;
        let group = &shared.groups[slot.group as usize];
        // Raised for a drained deployment too: in a newer version sharing
        // its priority's flag it may be a candidate again.
        {
            let ramp = shared.health.slow_start.map_or(0, |s| nanos(s.window));
            let until = out_until.saturating_add(ramp);
            if let Some(flag) = group.flag(slot.deployment.priority()) {
                flag.fetch_max(until, Ordering::Relaxed);
            }
            // The state was written above; the build of a newer version
            // makes its flag the tracked one, then reads the state. With a
            // fence on both sides, either the build sees this report's
            // state or this report sees the newer flag (or both).
            fence(Ordering::SeqCst);
            slot.state.raise_tracked(until);
            // After the state is written: a pick that sees this advance
            // sees the state, and makes its tier's record anew.
            suspects::advance(&shared.epoch);
        }
    }
}
