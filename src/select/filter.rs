//! The request filters: each rule once, composed in the order of
//! [`Reason::ALL`] for the tests the pipeline needs.

use semver::Version;

use super::reason::Reason;
use super::tables::Slot;
use crate::health::State;
use crate::{Deployment, Request, TagMatch};

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

    /// Whether the request filters on fields the tier index answers:
    /// provider, labels, tags, exclusions.
    #[inline]
    pub(crate) fn uses_index(&self) -> bool {
        let r = self.request;
        r.required_provider().is_some()
            || !r.required_labels().is_empty()
            || !r.requested_tags().is_empty()
            || !r.excluded().is_empty()
    }

    /// Whether the request filters on fields the tier index does not
    /// answer, tested member by member by [`passes_unindexed`](Self::passes_unindexed).
    #[inline]
    pub(crate) fn tests_members(&self) -> bool {
        self.request.version_req().is_some()
            || self.newest.is_some()
            || self.request.token_estimate().is_some()
    }

    /// The request filters the tier index does not answer: version
    /// requirement, newest version, context window.
    fn passes_unindexed(&self, slot: &Slot) -> Result<(), Reason> {
        let d = &slot.deployment;
        self.version(d)?;
        self.newest(d)?;
        self.context_window(d)
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
        // `used + needed > limit`, written so that it cannot overflow: a
        // saturated sum would never exceed a limit of `u64::MAX`.
        if limits.tpm.is_some_and(|m| {
            let used = slot.state.tokens_per_minute(self.now);
            self.tokens_needed() > m.get().saturating_sub(used)
        }) {
            return Err(Reason::TpmLimit);
        }
        Ok(())
    }

    /// The tokens the request needs within a `tpm` limit: its estimate, and
    /// at least one, so that without an estimate a deployment at its limit
    /// is skipped and below it is not.
    #[inline]
    fn tokens_needed(&self) -> u64 {
        self.request
            .token_estimate()
            .map_or(1, |n| u64::from(n).max(1))
    }

    /// What the request asks for, whatever the deployment's state.
    pub(crate) fn passes_request(&self, slot: &Slot) -> Result<(), Reason> {
        self.passes_before_newest(slot)?;
        self.newest(&slot.deployment)?;
        self.passes_after_newest(slot)
    }

    /// Every filter that runs before the newest-version one.
    pub(crate) fn passes_before_newest(&self, slot: &Slot) -> Result<(), Reason> {
        let d = &slot.deployment;
        if slot.weight == 0 {
            return Err(Reason::Drained);
        }
        self.provider(d)?;
        self.labels(d)?;
        self.tags(d)?;
        self.version(d)
    }

    /// The filters after the newest-version one. The newest version is taken
    /// among deployments passing *every other* filter, so these also run
    /// when it is computed: once the newest deployments are excluded (tried),
    /// the next version down becomes the newest.
    pub(crate) fn passes_after_newest(&self, slot: &Slot) -> Result<(), Reason> {
        self.context_window(&slot.deployment)?;
        if self.request.excluded().contains(&slot.key) {
            return Err(Reason::Excluded);
        }
        Ok(())
    }

    #[inline]
    fn provider(&self, d: &Deployment) -> Result<(), Reason> {
        if self
            .request
            .required_provider()
            .is_some_and(|p| p != d.provider())
        {
            return Err(Reason::Provider);
        }
        Ok(())
    }

    #[inline]
    fn labels(&self, d: &Deployment) -> Result<(), Reason> {
        if !self
            .request
            .required_labels()
            .iter()
            .all(|(k, v)| d.label(k) == Some(v.as_str()))
        {
            return Err(Reason::Labels);
        }
        Ok(())
    }

    #[inline]
    fn tags(&self, d: &Deployment) -> Result<(), Reason> {
        let r = self.request;
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
        Ok(())
    }

    #[inline]
    fn version(&self, d: &Deployment) -> Result<(), Reason> {
        if let Some(req) = self.request.version_req()
            && !d.version().is_some_and(|v| req.matches(v))
        {
            return Err(Reason::Version);
        }
        Ok(())
    }

    #[inline]
    fn newest(&self, d: &Deployment) -> Result<(), Reason> {
        if let Some(newest) = self.newest
            && d.version() != Some(newest)
        {
            return Err(Reason::NotNewest);
        }
        Ok(())
    }

    #[inline]
    fn context_window(&self, d: &Deployment) -> Result<(), Reason> {
        if let (Some(tokens), Some(window)) = (self.request.token_estimate(), d.context_window())
            && window < tokens
        {
            return Err(Reason::ContextWindow);
        }
        Ok(())
    }
}
