//! The request path: [`Selector::select`] and the pipeline behind it
//! (model, filters, tier, strategy), and the errors it reports.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Selector;
use super::filter::Filter;
use super::index::{self, MASK_WORDS, Mask};
use super::pick::{Lease, Pick};
use super::reason::{Reason, Removed};
use super::strategy::{Candidates, Context};
use super::suspects;
use super::tables::{Group, Tier};
use crate::health::Unhealthy;
use crate::health::state::nanos;
use crate::{Error, Request, VersionPreference};

/// How long (ns) before a pick's time its tier's record of suspects is
/// made for (see [`Selector::suspects`]).
const RECORD_LEEWAY: u64 = 1_000_000_000;

impl Selector {
    /// Picks a deployment for `request`.
    ///
    /// No lock, no allocation on success (but for a policy's [model-name
    /// normalizer](crate::IdentityPolicy::model_normalizer), called for a
    /// request not in normal form). Cost: O(1) to find the model, then
    /// the strategy's cost (see
    /// [`BuiltinStrategy`](crate::select::BuiltinStrategy)) when the request
    /// has no filters and the lowest tier is healthy and unlimited;
    /// otherwise each tier inspected is narrowed to a mask first (see the
    /// [module docs](crate::select#cost)).
    ///
    /// Health is judged at the request's [time](Request::at), or at the
    /// latest report time the selector has seen when the request has none.
    ///
    /// # Errors
    ///
    /// - [`Error::UnknownModel`] if no deployment serves the model;
    /// - [`Error::Unavailable`] if deployments pass the request's filters but
    ///   all are cooling, ejected or at a limit (with the earliest time one
    ///   returns), and the [health policy](crate::health::Unhealthy) says fail;
    /// - [`Error::NoEligible`] if the request's filters removed every
    ///   deployment (with the count each filter removed), or the strategy
    ///   refused every candidate.
    ///
    /// ```
    /// use modelfleet::{Deployment, Error, Registry, Request, Selector};
    /// use modelfleet::select::{Reason, RoundRobin};
    ///
    /// let reg: Registry = [Deployment::builder("openai", "gpt-4").label("region", "us").build()?]
    ///     .into_iter()
    ///     .collect();
    /// let s = Selector::new(&reg, RoundRobin);
    /// match s.select(&Request::new("gpt-4").label("region", "eu")) {
    ///     Err(Error::NoEligible { removed, .. }) => assert_eq!(removed.count(Reason::Labels), 1),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(matches!(s.select(&Request::new("gpt-5")), Err(Error::UnknownModel { .. })));
    /// # Ok::<(), modelfleet::Error>(())
    /// ```
    pub fn select(&self, request: &Request) -> Result<Pick<'_>, Error> {
        self.select_at(request, None)
    }

    /// [`select`](Self::select) at `at` (ns) when given, instead of the
    /// request's own time.
    pub(crate) fn select_at(&self, request: &Request, at: Option<u64>) -> Result<Pick<'_>, Error> {
        let (index, priority) = self.choose_at(request, at)?;
        Ok(Pick::new(Lease::new(self, index, priority)))
    }

    /// The pipeline behind [`select`](Self::select), with this handle's
    /// rotation cursors, random source and in-flight stripe. Counts the
    /// chosen deployment in flight, so the caller holds the result in a
    /// [`Lease`] at once; returns its index in [`slots`](Self::slot_at) and
    /// its priority.
    pub(crate) fn choose(&self, request: &Request) -> Result<(usize, u32), Error> {
        self.choose_at(request, None)
    }

    /// [`choose`](Self::choose) at `at` (ns) when given, instead of the
    /// request's own time.
    pub(crate) fn choose_at(
        &self,
        request: &Request,
        at: Option<u64>,
    ) -> Result<(usize, u32), Error> {
        let local = &self.local;
        let (gi, group) = self.group(request)?;
        let now = at.unwrap_or_else(|| self.now(request));
        let ctx = Context::new(&local.rng, &local.cursors[gi], request.affinity_key());
        let strategy = self.shared.chooser.get();
        let slots = &self.shared.slots[..];
        if request.is_plain()
            && let Some(tier) = group.tiers.first().filter(|t| t.is_clear(now))
        {
            let candidates = Candidates::complete(slots, tier);
            return match strategy.choose(&candidates, &ctx) {
                Some(c) => Ok(self.pick(tier, c.position(), now, local.stripe)),
                None => Err(self.refused(group, request, now)),
            };
        }
        let mut filter = self.filter(group, request, now);
        if self.should_panic(group, &filter) {
            filter.check_health = false;
        }
        let slow = self.shared.health.slow_start.as_ref();
        let indexable = filter.uses_index();
        let unindexed = filter.tests_members();
        let mut buffer: Mask;
        for (ti, tier) in group.tiers.iter().enumerate() {
            let clear = tier.is_clear(now);
            let ramp_policy = slow.filter(|_| !clear);
            let mut ramping = false;
            let mut candidates = match &tier.index {
                // Indexed tier: the candidates become a mask, narrowed by the
                // index, then by one pass over the members it kept for what
                // the index cannot answer (state, versions, context window).
                Some(ix) => {
                    let words;
                    (buffer, words) = index::full(tier.members.len());
                    let mask = &mut buffer[..words];
                    if indexable {
                        ix.narrow(request, mask);
                        self.exclude(gi, ti, request, mask);
                    }
                    if !clear || unindexed {
                        // Tested one by one: in a disturbed tier, the
                        // members whose state may exclude them (suspects);
                        // with a request filter the index cannot answer,
                        // every member the mask kept.
                        let mut suspects = [0u64; MASK_WORDS];
                        let suspects = &mut suspects[..words];
                        if !clear {
                            self.suspects(tier, now, suspects);
                        }
                        let test =
                            |w: usize, word: u64| if unindexed { word } else { word & suspects[w] };
                        index::retain_in(mask, test, |p| {
                            let suspect = index::has(suspects, p);
                            let slot = &slots[tier.members[p] as usize];
                            let kept = filter.passes_member(slot, true, suspect).is_ok();
                            if kept
                                && suspect
                                && !ramping
                                && let Some(s) = ramp_policy
                            {
                                ramping = slot.state.slow_factor(now, s) < 1.0;
                            }
                            kept
                        });
                    }
                    Candidates::masked(slots, tier, &filter, mask, !clear)
                }
                // A tier too large to index: every member is tested.
                None => Candidates::tested(slots, tier, &filter, !indexable, !clear),
            };
            // Weights are scaled for slow start only while a candidate is
            // ramping up: otherwise they are the plain weights, and weighted
            // round robin keeps its exact windows of Σw picks.
            if let Some(s) = ramp_policy
                && (ramping || tier.index.is_none() && candidates.iter().any(|c| c.ramping(now, s)))
            {
                candidates.scale_for_slow_start(s);
            }
            if candidates.is_empty() {
                continue;
            }
            return match strategy.choose(&candidates, &ctx) {
                Some(c) => Ok(self.pick(tier, c.position(), now, local.stripe)),
                None => Err(self.refused(group, request, now)),
            };
        }
        Err(self.nothing_left(group, &filter))
    }

    /// Fills `out` with the members of `tier` (disturbed: some member may be
    /// out, ramping up or limited) that a pick at `now` must test: those
    /// busy at the time of the tier's record, or limited. The record is
    /// computed here, in one pass over the tier's states, when a report
    /// that put a deployment out (through any version that may share its
    /// state) has advanced the epoch since it was last computed, or when it
    /// was computed for a later time. The epoch is read before the states:
    /// a report seen in it is seen in them.
    fn suspects(&self, tier: &Tier, now: u64, out: &mut [u64]) {
        let epoch = suspects::current(&self.shared.epoch);
        // Made for a moment a little before `now`, so that picks on other
        // threads whose requests carry slightly earlier times can use it
        // too (at the cost of testing members that came back within it).
        let at = now.saturating_sub(RECORD_LEEWAY);
        tier.suspects.lookup(epoch, now, at, out, |out| {
            let ramp = self.shared.health.slow_start.map_or(0, |s| nanos(s.window));
            out.fill(0);
            for (p, &i) in tier.members.iter().enumerate() {
                let slot = &self.shared.slots[i as usize];
                if slot.limited || slot.state.busy_until(ramp) > at {
                    out[p / 64] |= 1 << (p % 64);
                }
            }
        });
    }

    /// Clears from `mask` (over tier `ti` of group `gi`) the members the
    /// request excludes.
    fn exclude(&self, gi: usize, ti: usize, request: &Request, mask: &mut [u64]) {
        for key in request.excluded() {
            if let Some(&i) = self.shared.by_key.get(key) {
                let slot = &self.shared.slots[i as usize];
                if slot.group as usize == gi && slot.tier == Some(ti as u32) {
                    let p = slot.position as usize;
                    mask[p / 64] &= !(1 << (p % 64));
                }
            }
        }
    }

    pub(crate) fn now(&self, request: &Request) -> u64 {
        request
            .time()
            .map_or_else(|| self.shared.latest.load(Ordering::Relaxed), nanos)
    }

    pub(crate) fn group(&self, request: &Request) -> Result<(usize, &Group), Error> {
        let models = &self.shared.models;
        // A request in normal form is found without normalizing it.
        let found = models.get(request.model()).copied().or_else(|| {
            let normal = (self.shared.normalize?)(request.model());
            models.get(&*normal).copied()
        });
        match found {
            Some(gi) => Ok((gi as usize, &self.shared.groups[gi as usize])),
            None => Err(Error::UnknownModel {
                model: request.model().chars().take(256).collect(),
            }),
        }
    }

    pub(crate) fn filter<'a>(
        &'a self,
        group: &Group,
        request: &'a Request,
        now: u64,
    ) -> Filter<'a> {
        let mut filter = Filter {
            request,
            newest: None,
            now,
            check_health: true,
            plain: request.is_plain(),
        };
        if request.version_preference_mode() == VersionPreference::Newest {
            filter.newest = group
                .all
                .iter()
                .map(|&i| &self.shared.slots[i as usize])
                .filter(|s| {
                    filter.passes_before_newest(s).is_ok() && filter.passes_after_newest(s).is_ok()
                })
                .filter_map(|s| s.deployment.version())
                .max();
        }
        filter
    }

    /// Envoy's panic mode: below the threshold share of healthy eligible
    /// deployments (all tiers), health is ignored. O(n).
    pub(crate) fn should_panic(&self, group: &Group, filter: &Filter<'_>) -> bool {
        let Unhealthy::Panic { threshold_percent } = self.shared.health.unhealthy else {
            return false;
        };
        let (mut eligible, mut healthy) = (0u64, 0u64);
        for &i in &group.all {
            let slot = &self.shared.slots[i as usize];
            if filter.passes_request(slot).is_ok() {
                eligible += 1;
                if slot.state.out_at(filter.now).is_none() {
                    healthy += 1;
                }
            }
        }
        eligible > 0 && healthy * 100 < u64::from(threshold_percent) * eligible
    }

    fn pick(&self, tier: &Tier, position: usize, now: u64, stripe: usize) -> (usize, u32) {
        let index = tier.members[position] as usize;
        let slot = &self.shared.slots[index];
        if self.shared.counted {
            slot.state.acquire(stripe);
        }
        if slot.rpm_limited {
            slot.state.count_pick(now);
        }
        (index, tier.priority)
    }

    fn removed(&self, group: &Group, filter: &Filter<'_>) -> (Removed, Option<u64>) {
        let mut removed = Removed::default();
        let mut retry_at: Option<u64> = None;
        for &i in &group.all {
            let slot = &self.shared.slots[i as usize];
            if let Err(r) = filter.passes(slot) {
                removed.add(r);
                if matches!(r, Reason::Cooling | Reason::Ejected)
                    && let Some((_, until)) = slot.state.out_at(filter.now)
                {
                    retry_at = Some(retry_at.map_or(until, |t| t.min(until)));
                }
            }
        }
        (removed, retry_at)
    }

    fn nothing_left(&self, group: &Group, filter: &Filter<'_>) -> Error {
        let (removed, retry_at) = self.removed(group, filter);
        let model = filter.request.model().to_owned();
        if removed.iter().any(|(r, _)| r.is_transient()) {
            Error::Unavailable {
                model,
                retry_at: retry_at.map(Duration::from_nanos),
                removed,
            }
        } else {
            Error::NoEligible { model, removed }
        }
    }

    fn refused(&self, group: &Group, request: &Request, now: u64) -> Error {
        let filter = self.filter(group, request, now);
        Error::NoEligible {
            model: request.model().to_owned(),
            removed: self.removed(group, &filter).0,
        }
    }
}
