//! The request filters, and why a candidate was removed.

use std::fmt;

use semver::Version;

use super::Slot;
use crate::health::State;
use crate::names::names;
use crate::{Request, TagMatch};

/// Why a deployment is not a candidate for a request.
///
/// ```
/// use modelfleet::select::Reason;
/// assert_eq!(Reason::ContextWindow.to_string(), "context window smaller than the request's tokens");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Reason {
    /// Weight 0: drained.
    Drained,
    /// Another provider than the requested one.
    Provider,
    /// A required label is missing or has another value.
    Labels,
    /// The tag does not match the requested tags.
    Tags,
    /// No version, or one outside the requested range.
    Version,
    /// A matching version, but not the newest one among the candidates.
    NotNewest,
    /// A known context window smaller than the request's token estimate.
    ContextWindow,
    /// Excluded by the request (already tried).
    Excluded,
    /// Cooling down after failures (see [`health`](crate::health)).
    Cooling,
    /// Ejected as an outlier.
    Ejected,
    /// At its `max_in_flight` limit.
    InFlightLimit,
    /// At its `rpm` limit over the rolling minute.
    RpmLimit,
    /// At its `tpm` limit over the rolling minute.
    TpmLimit,
}

names! {
    Reason;
    /// Every reason, in the order the filters run.
    ///
    /// ```
    /// use modelfleet::select::Reason;
    /// assert_eq!(Reason::ALL[0], Reason::Drained);
    /// assert!(Reason::ALL.contains(&Reason::TpmLimit));
    /// ```
    pub const ALL;
    /// The reason's short name (`drained`, `provider`, …).
    ///
    /// ```
    /// assert_eq!(modelfleet::select::Reason::NotNewest.as_str(), "not_newest");
    /// ```
    pub fn as_str;
    {
        Reason::Drained => "drained" = Reason::Drained,
        Reason::Provider => "provider" = Reason::Provider,
        Reason::Labels => "labels" = Reason::Labels,
        Reason::Tags => "tags" = Reason::Tags,
        Reason::Version => "version" = Reason::Version,
        Reason::NotNewest => "not_newest" = Reason::NotNewest,
        Reason::ContextWindow => "context_window" = Reason::ContextWindow,
        Reason::Excluded => "excluded" = Reason::Excluded,
        Reason::Cooling => "cooling" = Reason::Cooling,
        Reason::Ejected => "ejected" = Reason::Ejected,
        Reason::InFlightLimit => "max_in_flight" = Reason::InFlightLimit,
        Reason::RpmLimit => "rpm" = Reason::RpmLimit,
        Reason::TpmLimit => "tpm" = Reason::TpmLimit,
    }
}

impl Reason {
    /// Whether the reason is the deployment's state (health or a limit)
    /// rather than what the request asked for: such candidates may come
    /// back by themselves.
    ///
    /// ```
    /// use modelfleet::select::Reason;
    /// assert!(Reason::Cooling.is_transient());
    /// assert!(!Reason::Labels.is_transient());
    /// ```
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Reason::Cooling
                | Reason::Ejected
                | Reason::InFlightLimit
                | Reason::RpmLimit
                | Reason::TpmLimit
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Drained => "drained (weight 0)",
            Reason::Provider => "another provider",
            Reason::Labels => "a required label is missing or differs",
            Reason::Tags => "tag does not match",
            Reason::Version => "version outside the requested range",
            Reason::NotNewest => "not the newest matching version",
            Reason::ContextWindow => "context window smaller than the request's tokens",
            Reason::Excluded => "excluded by the request",
            Reason::Cooling => "cooling down",
            Reason::Ejected => "ejected as an outlier",
            Reason::InFlightLimit => "at its max_in_flight limit",
            Reason::RpmLimit => "at its requests-per-minute limit",
            Reason::TpmLimit => "at its tokens-per-minute limit",
        })
    }
}

/// How many candidates each filter removed (each candidate counted once,
/// under the first filter it failed, in the order of [`Reason::ALL`]).
///
/// ```
/// use modelfleet::select::{Reason, Removed};
/// let mut r = Removed::default();
/// r.add(Reason::Labels);
/// r.add(Reason::Labels);
/// r.add(Reason::Drained);
/// assert_eq!(r.count(Reason::Labels), 2);
/// assert_eq!(r.total(), 3);
/// assert_eq!(r.iter().collect::<Vec<_>>(), [(Reason::Drained, 1), (Reason::Labels, 2)]);
/// assert_eq!(r.to_string(), "drained removed 1, labels removed 2");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Removed {
    counts: [u32; Reason::ALL.len()],
}

impl Removed {
    /// Counts one more candidate removed for `reason`.
    ///
    /// See [`Removed`] for an example.
    pub fn add(&mut self, reason: Reason) {
        let i = reason.index();
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    /// How many candidates `reason` removed.
    ///
    /// See [`Removed`] for an example.
    pub fn count(&self, reason: Reason) -> u32 {
        self.counts[reason.index()]
    }

    /// All candidates removed.
    ///
    /// See [`Removed`] for an example.
    pub fn total(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// The non-zero counts, in filter order.
    ///
    /// See [`Removed`] for an example.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u32)> + '_ {
        Reason::ALL
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (*r, n))
    }
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (r, n) in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{} removed {n}", r.as_str())?;
        }
        if first {
            f.write_str("no candidates")?;
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Removed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(r, n)| (r.as_str(), n)))
    }
}

/// A request's filters, ready to test candidates.
pub(crate) struct Filter<'a> {
    pub(crate) request: &'a Request,
    /// With [`VersionPreference::Newest`](crate::VersionPreference::Newest):
    /// the highest version among the candidates passing every other filter.
    pub(crate) newest: Option<&'a Version>,
    /// The request's time, in nanoseconds of the caller's clock.
    pub(crate) now: u64,
    /// Whether cooling and ejected deployments are removed (not in panic mode).
    pub(crate) check_health: bool,
    /// Whether the request filters nothing ([`Request::is_plain`]): then a
    /// tier member (weight > 0) passes every request filter, and only its
    /// state is checked.
    pub(crate) plain: bool,
}

impl<'a> Filter<'a> {
    /// Tests one deployment; the first failing filter is the reason.
    pub(crate) fn passes(&self, slot: &Slot) -> Result<(), Reason> {
        self.passes_request(slot)?;
        self.passes_state(slot)
    }

    /// Tests a member of a tier (weight > 0), as [`passes`](Self::passes)
    /// does, but for what is already known: with `indexed`, the provider,
    /// label, tag and exclusion filters were applied by the tier's index;
    /// without `check_state`, the tier is clear (no member is out or
    /// limited). A plain request skips the request filters. The hot loop of
    /// a filtered or disturbed pick, so it reads as little as it can.
    #[inline]
    pub(crate) fn passes_member(
        &self,
        slot: &Slot,
        indexed: bool,
        check_state: bool,
    ) -> Result<(), Reason> {
        debug_assert!(slot.weight > 0, "tier members have weight > 0");
        if !self.plain {
            if indexed {
                self.passes_unindexed(slot)?;
            } else {
                self.passes_request(slot)?;
            }
        }
        if check_state {
            self.passes_state(slot)?;
        }
        Ok(())
    }

    /// The request filters the tier index does not answer: version
    /// requirement, newest version, context window.
    fn passes_unindexed(&self, slot: &Slot) -> Result<(), Reason> {
        let d = &slot.deployment;
        let r = self.request;
        if let Some(req) = r.version_req()
            && !d.version().is_some_and(|v| req.matches(v))
        {
            return Err(Reason::Version);
        }
        if let Some(newest) = self.newest
            && d.version() != Some(newest)
        {
            return Err(Reason::NotNewest);
        }
        if let (Some(tokens), Some(window)) = (r.token_estimate(), d.context_window())
            && window < tokens
        {
            return Err(Reason::ContextWindow);
        }
        Ok(())
    }

    /// The deployment's health and limits at the request's time.
    #[inline]
    pub(crate) fn passes_state(&self, slot: &Slot) -> Result<(), Reason> {
        if self.check_health {
            match slot.state.out_at(self.now) {
                Some((State::Ejected, _)) => return Err(Reason::Ejected),
                Some(_) => return Err(Reason::Cooling),
                None => {}
            }
        }
        if !slot.limited {
            return Ok(());
        }
        let limits = slot.deployment.limits();
        if limits
            .max_in_flight
            .is_some_and(|m| slot.state.in_flight() >= m.get())
        {
            return Err(Reason::InFlightLimit);
        }
        if limits
            .rpm
            .is_some_and(|m| slot.state.picks_per_minute(self.now) >= u64::from(m.get()))
        {
            return Err(Reason::RpmLimit);
        }
        if limits
            .tpm
            .is_some_and(|m| slot.state.tokens_per_minute(self.now) >= m.get())
        {
            return Err(Reason::TpmLimit);
        }
        Ok(())
    }

    /// What the request asks for, whatever the deployment's state.
    pub(crate) fn passes_request(&self, slot: &Slot) -> Result<(), Reason> {
        self.passes_before_newest(slot)?;
        if let Some(newest) = self.newest
            && slot.deployment.version() != Some(newest)
        {
            return Err(Reason::NotNewest);
        }
        self.passes_after_newest(slot)
    }

    /// Every filter that runs before the newest-version one.
    pub(crate) fn passes_before_newest(&self, slot: &Slot) -> Result<(), Reason> {
        let d = &slot.deployment;
        let r = self.request;
        if d.weight() == 0 {
            return Err(Reason::Drained);
        }
        if r.required_provider().is_some_and(|p| p != d.provider()) {
            return Err(Reason::Provider);
        }
        if !r
            .required_labels()
            .iter()
            .all(|(k, v)| d.label(k) == Some(v.as_str()))
        {
            return Err(Reason::Labels);
        }
        let tags = r.requested_tags();
        if !tags.is_empty() {
            let ok = match (r.tag_match_mode(), d.tag()) {
                (_, None) => false,
                (TagMatch::Any, Some(t)) => tags.iter().any(|x| x == t),
                (TagMatch::All, Some(t)) => tags.iter().all(|x| x == t),
            };
            if !ok {
                return Err(Reason::Tags);
            }
        }
        if let Some(req) = r.version_req()
            && !d.version().is_some_and(|v| req.matches(v))
        {
            return Err(Reason::Version);
        }
        Ok(())
    }

    /// The filters after the newest-version one. The newest version is taken
    /// among deployments passing *every other* filter, so these also run
    /// when it is computed: once the newest deployments are excluded (tried),
    /// the next version down becomes the newest.
    pub(crate) fn passes_after_newest(&self, slot: &Slot) -> Result<(), Reason> {
        let d = &slot.deployment;
        let r = self.request;
        if let (Some(tokens), Some(window)) = (r.token_estimate(), d.context_window())
            && window < tokens
        {
            return Err(Reason::ContextWindow);
        }
        if r.excluded().contains(&slot.key) {
            return Err(Reason::Excluded);
        }
        Ok(())
    }
}
