//! Picking a deployment per request.
//!
//! A [`Selector`] is built from a [`Registry`](crate::Registry) and a
//! [`Strategy`]. For each [`Request`](crate::Request) it runs one pipeline:
//!
//! 1. **candidates**: the deployments of the requested model;
//! 2. **filters**: drained (weight 0), provider, labels, tags, version,
//!    newest version, context window, excluded keys — each removed
//!    candidate has a [`Reason`];
//! 3. **tier**: the lowest [priority](crate::Deployment::priority) that still
//!    has a candidate (a tier-k deployment is picked only when every tier
//!    below k is empty after filtering);
//! 4. **strategy**: one of that tier's candidates.
//!
//! The result is a [`Pick`]: the deployment, its key and tier, and an
//! in-flight guard that counts the request as outstanding until the pick is
//! dropped or [completed](Pick::succeed). [`Selector::explain`] reports what
//! each filter did to each candidate; [`Selector::plan`] yields the order in
//! which to try deployments for retries and fallbacks.
//!
//! # Cost
//!
//! `select` takes no lock and allocates nothing: the model is found in a
//! fixed-seed hash map (a request for a model not in the normal form of a
//! policy that [normalizes model
//! names](crate::IdentityPolicy::model_normalizer) calls the normalizer
//! first, which may allocate), tiers, cumulative weights and hash rings are
//! precomputed, and per-deployment counters are atomics on their own cache
//! lines. A request with no filter
//! ([`Request::is_plain`](crate::Request::is_plain)) on a tier where every
//! member is healthy and unlimited uses the precomputed tables directly:
//! O(1), on average for the searches of a weight line or a hash ring (a
//! bucket index narrows each to a few entries), and in expectation for the
//! points a ring walk tests before one accepts the key.
//!
//! Otherwise (request filters, or a member of the tier cooling, ejected,
//! ramping up or limited) the candidates are a bit mask over the tier,
//! built on the stack:
//!
//! - the provider, labels, tags and excluded keys come from an inverted
//!   index built with the tier: O(n / 64) word operations, whatever the
//!   number of labels;
//! - version requirements, the newest version and context windows are
//!   tested in one pass over the members the index kept (k);
//! - health and limits are tested only for the tier's suspects: the
//!   members that were cooling, ejected or ramping up when the tier's
//!   record was made, and the limited ones. The record is made in one pass
//!   over the tier's states (O(n)) by the first pick after a report that
//!   put a deployment out, then kept, without a lock, for every later pick
//!   until the next such report;
//! - then round robin and power of two rank candidates by counting bits
//!   (O(n / 64)), and the weighted strategies walk the kept members'
//!   weights from the tier's prefix sums (O(k), whole words at once, a
//!   mostly full word as its range less the members missing from it);
//!   power of two's weighted least request (per-weight load, unequal
//!   weights) reads every candidate's load, O(k) with or without filters.
//!
//! Tiers of more than 4,096 members have no index: each member is tested
//! through its deployment, in a few passes (O(n)).
//!
//! # Threads and handles
//!
//! `Selector` is `Send + Sync`; `select(&self, …)` may be called from many
//! threads at once. Its state is in two parts:
//!
//! - **shared** by every handle: the deployments, their latency estimates
//!   and health (one cache line per deployment), and their in-flight counts,
//!   each split over four stripes on their own cache lines: a handle counts
//!   on the stripe of its number, so handles `h` and `h + 1` never write the
//!   same line, and a count is the sum of its stripes. With a strategy that
//!   [reads the load](Strategy::reads_load) every handle counts on one
//!   stripe instead, so that reading a candidate's load is one load, not
//!   four (the threads read each other's writes either way);
//! - **per handle**: the rotation cursors, the random source and the
//!   in-flight stripe. A
//!   [`clone`](Clone::clone) is a new handle over the same shared part with
//!   its own cursors and a random source derived from the seed and the
//!   handle's number.
//!
//! Give each thread its own handle (as Envoy gives each worker its own
//! load-balancer state): threads then never write the same cache line on the
//! hot path, and each handle's rotation is exact. Threads sharing one handle
//! are correct too, but contend on its cursor and interleave their turns.
//!
//! # Determinism
//!
//! Same registry, strategy, seed and sequence of calls on one handle ⇒ the
//! same picks. The selector reads no clock; latency reports carry the time.

// `Selector`'s methods, one part per file, in the order its docs list them
// (rustdoc lists impl blocks in module order).
mod selector;

mod pipeline;

mod outcome;

mod explain;

mod plan;

mod build;
mod filter;
mod flags;
mod index;
mod owned;
mod pick;
mod reason;
mod ring;
mod rng;
mod schedule;
mod search;
mod strategy;
mod stride;
mod suspects;
mod tables;

// The atomics `suspects.rs` takes from its parent module (a model checker
// substitutes its own when it compiles that file).
use std::sync::atomic;

pub use build::{InFlight, SelectorBuilder};
pub use explain::{Explanation, Verdict};
pub use owned::OwnedPick;
pub use pick::Pick;
pub use plan::Plan;
pub use reason::{Reason, Removed};
pub use ring::Ring;
pub use selector::Selector;
// Every public item of `strategy/`: the trait, what a strategy sees, and
// every built-in (declared by the table in `strategy/mod.rs`).
pub use strategy::*;

pub(crate) use build::Drained;
pub(crate) use plan::Attempts;
pub(crate) use tables::Slot;
