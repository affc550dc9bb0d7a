//! A fleet's side of sharing with other replicas ([`crate::share`]): the
//! events it makes and the events it absorbs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::Fleet;
use crate::hash::FixedState;
use crate::health::state::nanos;
use crate::share::{
    Absorbed, Count, Event, MAX_AHEAD, Merged, Outbox, Own, Pending, ReplicaId, Transition,
    minute_of,
};
use crate::{Clock, IdentityPolicy, ModelKey};

/// What a sharing fleet keeps beside its versions.
pub(super) struct Sharing {
    pub(super) replica: ReplicaId,
    pub(super) outbox: Arc<Outbox>,
    pub(super) clock: Arc<dyn Clock>,
    usage: Mutex<Usage>,
}

#[derive(Default)]
struct Usage {
    own: Own,
    merged: Merged,
    /// Deployments whose state holds other replicas' usage.
    remote: HashSet<ModelKey, FixedState>,
}

impl Sharing {
    pub(super) fn new(replica: ReplicaId, clock: Arc<dyn Clock>) -> Self {
        Self {
            replica,
            outbox: Arc::default(),
            clock,
            usage: Mutex::default(),
        }
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<P: IdentityPolicy + Clone> Fleet<P> {
    /// This fleet's replica, if it shares ([`FleetBuilder::share`](super::FleetBuilder::share)).
    ///
    /// See [`crate::share`] for an example.
    pub fn replica(&self) -> Option<&ReplicaId> {
        self.share.as_ref().map(|s| &s.replica)
    }

    /// What this replica learned since the last call, for the others: the
    /// cooldowns and ejections its reports started, and the usage of its
    /// deployments with limits that grew (a running count per deployment
    /// and wall-clock minute). Empty when the fleet does not share.
    ///
    /// Cost: O(events + deployments with an `rpm`, `tpm` or in-flight
    /// limit); call it from a sync task, not per request.
    ///
    /// See [`crate::share`] for an example.
    pub fn events(&self) -> Vec<Event> {
        let Some(share) = &self.share else {
            return Vec::new();
        };
        let wall = |at: u64| share.clock.system_time(Duration::from_nanos(at));
        let mut events: Vec<Event> = share
            .outbox
            .take()
            .into_iter()
            .map(|p| match p {
                Pending::Cooled(key, until, kind) => (
                    key,
                    Transition::Cooled {
                        until: wall(until),
                        kind: Some(kind),
                    },
                ),
                Pending::Ejected(key, until) => (key, Transition::Ejected { until: wall(until) }),
            })
            .map(|(key, t)| Event::new(share.replica.clone(), (*key).clone(), t))
            .collect();
        let minute = minute_of(share.clock.system_time(share.clock.now()));
        let version = self.current.load();
        let mut usage = share.usage();
        for slot in version.shared.slots.iter().filter(|s| s.limited) {
            if let Some(c) = usage
                .own
                .record(&slot.key, slot.state.usage_totals(), minute)
            {
                events.push(Event::new(
                    share.replica.clone(),
                    (*slot.key).clone(),
                    Transition::Usage {
                        minute: c.minute,
                        requests: c.requests,
                        tokens: c.tokens,
                    },
                ));
            }
        }
        usage.own.retain(|k| version.slot(k).is_some());
        events
    }

    /// Everything this replica would tell a replica that just joined, or
    /// that lost events: every cooldown and ejection that lasts at the
    /// clock's now, and its own usage of this minute and the last. Empty
    /// when the fleet does not share. Cost: O(deployments).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use modelfleet::health::{FailureKind, HealthPolicy, Report};
    /// use modelfleet::share::ReplicaId;
    /// use modelfleet::{Clock, Deployment, Fleet, ManualClock, Registry, Request};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// let clock = Arc::new(ManualClock::new());
    /// let health = HealthPolicy::default().validated()?;
    /// let a = Fleet::builder(reg.clone()).selector(|b| b.health(health)).share(ReplicaId::new("a")?, clock.clone()).build();
    /// let limited = Report::failure(clock.now(), FailureKind::rate_limited(Some(Duration::from_secs(30))));
    /// a.select(&Request::new("gpt-4"))?.complete(limited);
    /// let _ = a.events(); // sent before "late" was there
    ///
    /// let late = Fleet::builder(reg).share(ReplicaId::new("late")?, clock.clone()).build();
    /// late.absorb(&a.snapshot());
    /// assert!(late.select(&Request::new("gpt-4")).is_err());
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn snapshot(&self) -> Vec<Event> {
        let Some(share) = &self.share else {
            return Vec::new();
        };
        let now = share.clock.now();
        let t = nanos(now);
        let wall = |at: u64| share.clock.system_time(Duration::from_nanos(at));
        let version = self.current.load();
        let mut events = Vec::new();
        for slot in version.shared.slots.iter() {
            let (cool, eject) = slot.state.out_ends();
            let ev = |t| Event::new(share.replica.clone(), (*slot.key).clone(), t);
            if crate::health::state::lasts(cool, t) {
                events.push(ev(Transition::Cooled {
                    until: wall(cool),
                    kind: None,
                }));
            }
            if crate::health::state::lasts(eject, t) {
                events.push(ev(Transition::Ejected { until: wall(eject) }));
            }
        }
        let minute = minute_of(share.clock.system_time(now));
        let usage = share.usage();
        for (key, c) in usage.own.recent(minute) {
            events.push(Event::new(
                share.replica.clone(),
                key.clone(),
                Transition::Usage {
                    minute: c.minute,
                    requests: c.requests,
                    tokens: c.tokens,
                },
            ));
        }
        events
    }

    /// Takes what other replicas saw: cooldowns and ejections end no
    /// earlier here than there, and their usage counts toward this fleet's
    /// `rpm` and `tpm` limits. Idempotent and order-independent (see
    /// [`crate::share`]): absorbing a batch twice, or its events in any
    /// order, leaves the same state. Events of this fleet's own replica are
    /// ignored. Also refreshes the others' usage over the rolling minute,
    /// so call it every sync interval, with no events if none came.
    ///
    /// Cost: O(events + (deployment, replica, minute) counts heard in the
    /// last two minutes).
    ///
    /// See [`crate::share`] for an example.
    pub fn absorb<'e>(&self, events: impl IntoIterator<Item = &'e Event>) -> Absorbed {
        let mut absorbed = Absorbed::default();
        let Some(share) = &self.share else {
            for _ in events {
                absorbed.ignored += 1;
            }
            return absorbed;
        };
        let now = share.clock.now();
        let t = nanos(now);
        let wall_now = share.clock.system_time(now);
        let minute = minute_of(wall_now);
        let horizon = wall_now.checked_add(MAX_AHEAD);
        let version = self.current.load();
        let mut usage = share.usage();
        for event in events {
            let slot = match version.slot(event.key()) {
                Some(slot) if *event.replica() != share.replica => slot,
                _ => {
                    absorbed.ignored += 1;
                    continue;
                }
            };
            let out = match *event.transition() {
                Transition::Cooled { until, .. } => Some((until, false)),
                Transition::Ejected { until } => Some((until, true)),
                Transition::Usage {
                    minute: m,
                    requests,
                    tokens,
                } => {
                    if m.saturating_add(1) < minute || m > minute.saturating_add(1) {
                        absorbed.refused += 1;
                    } else if usage.merged.merge(
                        event.key(),
                        event.replica(),
                        Count {
                            minute: m,
                            requests,
                            tokens,
                        },
                    ) {
                        absorbed.applied += 1;
                    } else {
                        absorbed.stale += 1;
                    }
                    None
                }
            };
            let Some((until, ejected)) = out else {
                continue;
            };
            if horizon.is_none_or(|h| until > h) {
                absorbed.refused += 1;
                continue;
            }
            let end = nanos(share.clock.at_system_time(until));
            if end <= t || !version.absorb(slot, end, ejected) {
                absorbed.stale += 1;
            } else {
                absorbed.applied += 1;
            }
        }
        let elapsed_ms = wall_now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| (d.as_millis() % 60_000) as u64);
        let sums = usage.merged.rolling(minute, elapsed_ms);
        for (key, &(requests, tokens)) in &sums {
            if let Some(slot) = version.slot(key) {
                slot.state.set_remote_usage(t, requests, tokens);
            }
        }
        let before = std::mem::take(&mut usage.remote);
        for key in before.into_iter().filter(|k| !sums.contains_key(k)) {
            if let Some(slot) = version.slot(&key) {
                slot.state.set_remote_usage(t, 0, 0);
            }
        }
        usage.remote = sums.into_keys().collect();
        absorbed
    }

    /// Transitions dropped because no sync task took them in time (the
    /// outbox holds a bounded number); [`snapshot`](Self::snapshot) still
    /// carries every out-state that lasts.
    ///
    /// ```
    /// use modelfleet::{Deployment, Fleet, Registry};
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
    /// assert_eq!(Fleet::new(reg, |b| b).dropped_events(), 0);
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn dropped_events(&self) -> u64 {
        self.share.as_ref().map_or(0, |s| s.outbox.dropped())
    }
}
