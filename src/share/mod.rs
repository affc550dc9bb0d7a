//! Sharing health and usage between replicas: the pure seam.
//!
//! Several replicas of a service each hold a [`Fleet`] of the same
//! deployments. Each learns from its own reports; sharing makes what one
//! learns count on all of them. What a fleet learns leaves it as
//! [`Event`]s ([`Fleet::events`]) and enters the others through
//! [`Fleet::absorb`]. Moving the events (through Redis, say) is an
//! adapter's job; the core only makes and takes them, and reads no clock
//! but the one the fleet was given.
//!
//! # What is shared
//!
//! - **Cooldowns and ejections**: a deployment one replica put out is out
//!   on every replica that absorbs the event, until the same end.
//! - **Usage**: each replica's picks (of deployments with an `rpm` limit)
//!   and reported tokens per deployment and wall-clock minute, so that
//!   `rpm` and `tpm` limits hold for the replicas together. A fleet's rpm
//!   and tpm checks count its own rolling minute plus the others' usage as
//!   last absorbed.
//!
//! What stays local: rotation cursors, random sources, in-flight counts,
//! latency estimates, failure counts and ejection history (how long the
//! next ejection lasts), drains.
//!
//! # Merging
//!
//! Absorbing is idempotent and order-independent, so an adapter may
//! duplicate, reorder or replay events:
//!
//! - an out-state's later end wins (an older or repeated event changes
//!   nothing);
//! - usage events carry a replica's running count for one deployment and
//!   minute, and a fleet keeps the largest it heard per (deployment,
//!   replica, minute) and sums over replicas.
//!
//! A deployment comes back when its end passes: there is no early restore
//! to share.
//!
//! # Time and clock skew
//!
//! Events carry wall-clock times ([`SystemTime`]), converted through each
//! fleet's [`Clock`](crate::Clock). Replicas' clocks that disagree by `s`
//! move a shared end by `s` (a cooldown heard from a replica whose clock is
//! ahead ends `s` early here) and move usage by `s` across minute edges;
//! NTP-synchronized hosts (milliseconds) see no difference that matters.
//! Beyond a minute of skew, usage from the other replica falls outside the
//! minutes a fleet counts ([`Absorbed::refused`]) and limits are held per
//! replica again. An end more than [`MAX_AHEAD`] past the receiver's now is
//! refused as garbage; an end already past is stale.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use modelfleet::health::{FailureKind, HealthPolicy, Report};
//! use modelfleet::share::ReplicaId;
//! use modelfleet::{Deployment, Fleet, ManualClock, Registry, Request};
//!
//! let reg: Registry = [Deployment::builder("openai", "gpt-4").build()?].into_iter().collect();
//! let replica = |name: &str, clock: &Arc<ManualClock>| -> Result<Fleet, modelfleet::Error> {
//!     let health = HealthPolicy::default().validated()?;
//!     Ok(Fleet::builder(reg.clone())
//!         .selector(move |b| b.health(health))
//!         .share(ReplicaId::new(name)?, clock.clone())
//!         .build())
//! };
//! let clock = Arc::new(ManualClock::new());
//! let (a, b) = (replica("a", &clock)?, replica("b", &clock)?);
//!
//! use modelfleet::Clock;
//! let pick = a.select(&Request::new("gpt-4"))?;
//! pick.complete(Report::failure(clock.now(), FailureKind::rate_limited(Some(Duration::from_secs(30)))));
//! assert_eq!(a.replica().map(|r| r.as_str()), Some("a"));
//! let absorbed = b.absorb(&a.events());
//! assert_eq!(absorbed.applied, 1);
//! assert!(b.select(&Request::new("gpt-4")).is_err()); // b honours a's 429
//! clock.advance(Duration::from_secs(30));
//! assert!(b.select(&Request::new("gpt-4")).is_ok());
//! # Ok::<(), modelfleet::Error>(())
//! ```
//!
//! [`Fleet`]: crate::Fleet
//! [`Fleet::events`]: crate::Fleet::events
//! [`Fleet::absorb`]: crate::Fleet::absorb

mod outbox;
mod usage;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(crate) use outbox::{Outbox, Pending};
pub(crate) use usage::{Count, Merged, Own};

use crate::health::FailureKind;
use crate::name::check_name;
use crate::{Error, ModelKey};

/// How far past the receiver's now a shared end may lie: two days, more
/// than the longest cooldown override ([`MAX_COOLDOWN`](crate::MAX_COOLDOWN))
/// and ejections of sane policies. A later end is refused as garbage.
pub const MAX_AHEAD: Duration = Duration::from_secs(2 * 24 * 3600);

/// The name of one replica: who saw an event. Names follow the rules of
/// deployment names (no control or invisible characters, at most
/// [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes).
///
/// ```
/// use modelfleet::share::ReplicaId;
/// assert_eq!(ReplicaId::new("gateway-0")?.as_str(), "gateway-0");
/// assert!(ReplicaId::new("").is_err());
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId(Arc<str>);

impl ReplicaId {
    /// A replica named `name`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidReplica`] if the name breaks the name rules.
    ///
    /// See [`ReplicaId`] for an example.
    pub fn new(name: &str) -> Result<Self, Error> {
        check_name(name).map_err(|problem| Error::InvalidReplica { problem })?;
        Ok(Self(name.into()))
    }

    /// The name.
    ///
    /// See [`ReplicaId`] for an example.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one replica saw of one deployment.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use modelfleet::share::{Event, ReplicaId, Transition};
/// let e = Event::new(
///     ReplicaId::new("a")?,
///     "openai/gpt-4@".parse()?,
///     Transition::Ejected { until: SystemTime::UNIX_EPOCH + Duration::from_secs(60) },
/// );
/// assert_eq!(e.replica().as_str(), "a");
/// # Ok::<(), modelfleet::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    replica: ReplicaId,
    key: ModelKey,
    transition: Transition,
}

impl Event {
    /// `replica` saw `transition` of the deployment under `key`.
    ///
    /// See [`Event`] for an example.
    pub fn new(replica: ReplicaId, key: ModelKey, transition: Transition) -> Self {
        Self {
            replica,
            key,
            transition,
        }
    }

    /// The replica that saw it.
    ///
    /// See [`Event`] for an example.
    pub fn replica(&self) -> &ReplicaId {
        &self.replica
    }

    /// The deployment.
    ///
    /// See [`Event`] for an example.
    pub fn key(&self) -> &ModelKey {
        &self.key
    }

    /// What it saw.
    ///
    /// See [`Event`] for an example.
    pub fn transition(&self) -> &Transition {
        &self.transition
    }
}

/// What changed, in wall-clock time.
///
/// ```
/// use std::time::SystemTime;
/// use modelfleet::health::FailureKind;
/// use modelfleet::share::Transition;
/// let t = Transition::Cooled { until: SystemTime::UNIX_EPOCH, kind: Some(FailureKind::Timeout) };
/// assert!(matches!(t, Transition::Cooled { .. }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transition {
    /// Cooling down until `until`.
    Cooled {
        /// When the cooldown ends.
        until: SystemTime,
        /// The failure that started or lengthened it, when the event came
        /// from the report itself; `None` in a
        /// [`snapshot`](crate::Fleet::snapshot), since a deployment's
        /// state keeps the end, not its cause. Receivers act on the end
        /// alone.
        kind: Option<FailureKind>,
    },
    /// Ejected as an outlier until `until`.
    Ejected {
        /// When the ejection ends.
        until: SystemTime,
    },
    /// The replica's running count, for the deployment, within one
    /// wall-clock minute: picks (of a deployment with an `rpm` limit) and
    /// reported tokens.
    Usage {
        /// Minutes since the Unix epoch.
        minute: u64,
        /// Picks so far in that minute.
        requests: u64,
        /// Tokens reported so far in that minute.
        tokens: u64,
    },
}

/// What [`Fleet::absorb`](crate::Fleet::absorb) did with a batch of events.
///
/// ```
/// use modelfleet::share::Absorbed;
/// assert_eq!(Absorbed::default().applied, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Absorbed {
    /// Events that changed state here.
    pub applied: usize,
    /// Events this fleet already knew, or that had ended.
    pub stale: usize,
    /// Events of a deployment this fleet does not have, or of this
    /// fleet's own replica.
    pub ignored: usize,
    /// Events out of bounds: an end more than [`MAX_AHEAD`] away, a minute
    /// not the receiver's current, previous or next one.
    pub refused: usize,
}

/// Minutes since the Unix epoch at `t` (0 before it).
pub(crate) fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}
