//! Several deployments of one model, keyed by an identity policy you choose,
//! and picked per request.
//!
//! A platform that identifies a model by *provider + model name* can hold one
//! deployment of it: register an OpenAI-compatible `gpt-4` on
//! `http://192.168.0.1/v1` and again on `http://192.168.0.2/v1`, and the second
//! silently replaces the first. modelfleet makes identity a [policy](Policy)
//! ([`name`](Policy::NAME), [`name+endpoint`](Policy::NAME_ENDPOINT),
//! `name+tag`, `name+version`, any combination, or your own), keeps the
//! deployments in a [`Registry`] with exact uniqueness and override rules,
//! and reports what a change of policy would merge before anything is lost.
//!
//! ```
//! use modelfleet::{Deployment, Error, Policy, Registry};
//!
//! let node = |ip: &str| {
//!     Deployment::builder("openai-api-compatible", "gpt-4")
//!         .endpoint(&format!("http://{ip}/v1"))
//!         .build()
//! };
//!
//! // Keyed by name only (Dify's behaviour), the second node overrides the first.
//! let mut by_name = Registry::new(Policy::NAME);
//! by_name.upsert(node("192.168.0.1")?);
//! let previous = by_name.upsert(node("192.168.0.2")?);
//! assert_eq!(by_name.len(), 1);
//! assert_eq!(previous.unwrap().endpoint().unwrap().as_str(), "http://192.168.0.1/v1");
//!
//! // Keyed by name + endpoint, both are kept.
//! let mut fleet = Registry::new(Policy::NAME_ENDPOINT);
//! fleet.insert(node("192.168.0.1")?)?;
//! fleet.insert(node("192.168.0.2")?)?;
//! assert_eq!(fleet.len(), 2);
//!
//! // Going back to name-only would merge them: reported, nothing lost.
//! let err = fleet.rekey(Policy::NAME).unwrap_err();
//! assert!(matches!(err, Error::Collisions { .. }));
//! assert_eq!(fleet.len(), 2);
//! # Ok::<(), modelfleet::Error>(())
//! ```
//!
//! # Vocabulary
//!
//! - [`Deployment`]: one reachable serving of a model (provider, model,
//!   endpoint, tag, version, labels, weight, priority, limits), built and
//!   validated by [`Deployment::builder`].
//! - [`ModelKey`]: the identity of a deployment under a policy, with a text
//!   form that round-trips exactly.
//! - [`IdentityPolicy`] and the built-in [`Policy`]: what makes a deployment
//!   unique.
//! - [`Registry`]: deployments keyed by [`ModelKey`]; [`Registry::diff`] and
//!   [`Registry::apply`] move it between versions.
//! - [`Request`]: what a caller asks for (model, filters, affinity, time).
//! - [`Selector`]: picks a deployment per request: filters, priority tiers,
//!   a [strategy](select::Strategy), [health]; returns a [`Pick`]
//!   that holds an in-flight slot and takes the outcome report.
//! - [`Fleet`]: a registry and its selector shared by many threads while
//!   new versions are installed.
//!
//! # Selecting
//!
//! ```
//! use modelfleet::{Deployment, Policy, Registry, Request, Selector};
//! use modelfleet::select::ConsistentHash;
//!
//! let mut reg = Registry::new(Policy::NAME_ENDPOINT);
//! for ip in ["192.168.0.1", "192.168.0.2"] {
//!     reg.insert(Deployment::builder("openai-api-compatible", "gpt-4")
//!         .endpoint(&format!("http://{ip}/v1"))
//!         .build()?)?;
//! }
//! let selector = Selector::builder(&reg).strategy(ConsistentHash::default()).seed(1).build();
//! let req = Request::new("gpt-4").affinity("user-42");
//! let first = selector.select(&req)?.key().clone();
//! assert_eq!(selector.select(&req)?.key(), &first); // sticky
//! # Ok::<(), modelfleet::Error>(())
//! ```
//!
//! # A request's life: select, report, install
//!
//! A [`Fleet`] holds the current registry and its selector. Each request
//! is a [`select`](Fleet::select); the pick holds an in-flight slot until
//! its outcome is reported, which feeds [health]; a new registry version is
//! installed while threads keep selecting.
//!
//! ```
//! use std::time::Duration;
//! use modelfleet::health::{FailureKind, HealthPolicy, Report, State};
//! use modelfleet::{Deployment, Fleet, Policy, Registry, Request};
//!
//! let node = |ip: &str| {
//!     Deployment::builder("openai-api-compatible", "gpt-4")
//!         .endpoint(&format!("http://{ip}/v1"))
//!         .build()
//! };
//! let mut reg = Registry::new(Policy::NAME_ENDPOINT);
//! reg.insert(node("10.0.0.1")?)?;
//! reg.insert(node("10.0.0.2")?)?;
//! // Dify's health preset: a connection error cools a deployment for 10 s.
//! let dify = HealthPolicy::dify().validated()?;
//! let fleet = Fleet::new(reg.clone(), |b| b.seed(7).health(dify));
//!
//! // Select, send the request to `pick.deployment()`, report the outcome.
//! let now = Duration::from_secs(1);
//! let pick = fleet.select(&Request::new("gpt-4").at(now))?;
//! let failed = pick.key().clone();
//! pick.complete(Report::failure(now, FailureKind::ConnectionError));
//!
//! // The failed deployment cools down; requests go to the other one.
//! let health = fleet.health(now);
//! let cooling: Vec<_> = health.iter().filter(|h| h.state == State::Cooling).collect();
//! assert_eq!(cooling.len(), 1);
//! assert_eq!(cooling[0].key, failed);
//! for _ in 0..3 {
//!     let pick = fleet.select(&Request::new("gpt-4").at(now))?;
//!     assert_ne!(pick.key(), &failed);
//!     pick.succeed(now, Duration::from_millis(120));
//! }
//!
//! // A new version: one more node. Kept deployments keep their health.
//! let mut next = reg.clone();
//! next.insert(node("10.0.0.3")?)?;
//! let changes = fleet.install(next, now);
//! assert_eq!(changes.to_string(), "+ openai-api-compatible/gpt-4@http://10.0.0.3/v1");
//! assert_eq!(fleet.health(now).iter().filter(|h| h.state == State::Cooling).count(), 1);
//! # Ok::<(), modelfleet::Error>(())
//! ```
//!
//! # Concurrency model
//!
//! Selection state is split by how often it changes and who changes it, so
//! that the request path takes no lock and threads do not write shared cache
//! lines:
//!
//! - **read-only per version**: deployments, keys, tiers, cumulative weights,
//!   hash rings — built once by [`SelectorBuilder::build`] or
//!   [`Selector::rebuild`];
//! - **shared, per deployment**: latency estimate, health and usage windows
//!   — atomics on one cache line per deployment — and the in-flight count,
//!   split over four cache-line stripes, one per handle number modulo four
//!   (one for all handles when the strategy reads the load); all kept
//!   across versions for every deployment that stays;
//! - **per handle**: rotation cursors, the seeded random source and the
//!   in-flight stripe — each `selector.clone()` or [`Fleet::handle`] has its
//!   own, so exact rotation and exact weighted windows hold per handle, and
//!   threads with their own handles write no common cache line on a pick;
//! - **per fleet**: the current version, behind an atomic pointer swap
//!   ([`arc_swap`]): a writer builds the next version off the request path
//!   and swaps it in; readers never block and each `select` sees one
//!   version whole.
//!
//! # Purity
//!
//! The crate reads no clock, spawns no thread, does no I/O and keeps no global
//! state; its hash maps use a fixed-seed hash, so the same inputs give the
//! same results on every run and platform.
//!
//! # Feature flags
//!
//! - `serde` (default): `Serialize`/`Deserialize` for deployments, keys,
//!   policies, registries and registry changes; `Serialize` for explanations
//!   and health snapshots. Validated types deserialize through their
//!   parsers, so serde cannot build an invalid value; credentials are read but
//!   never written.
//! - `http`: [`http`](mod@http) classifies HTTP responses (status,
//!   `Retry-After`, error bodies) and transport errors as failure kinds
//!   and outcomes, on the `http` crate's types.
//! - `tower`: `modelfleet::tower`, a tower `Layer` that routes HTTP
//!   requests over a [`Fleet`]: picks along its plan, moves the URI onto
//!   the deployment's endpoint, retries failures worth it on another
//!   deployment, reports when the response body ends. Implies `http`; no
//!   async runtime.
//!
//! # Rust version
//!
//! Requires Rust 1.95 or later: the oldest toolchain the crate is built and
//! tested with.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod config;
mod deployment;
mod discriminators;
mod endpoint;
mod error;
mod fleet;
mod hash;
pub mod health;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod key;
mod name;
mod names;
pub mod policy;
mod registry;
mod request;
pub mod select;
pub mod share;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
#[cfg(feature = "serde")]
mod unique_keys;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use deployment::builder::DeploymentBuilder;
pub use deployment::{Credential, Deployment, Limits, MAX_COOLDOWN, MAX_VERSION_LEN};
pub use endpoint::{CharClass, EndpointProblem, MAX_ENDPOINT_LEN};
pub use error::{Error, Field};
pub use fleet::{Drain, Fleet, FleetBuilder, FleetHandle, FleetPlan};
pub use key::{Discriminator, ModelKey};
pub use name::{MAX_NAME_LEN, NameProblem};
#[doc(inline)]
pub use policy::{Discriminators, IdentityPolicy, Policy};
pub use registry::diff::{Change, Changes};
pub use registry::{Collision, Iter, Registry};
pub use request::{Request, TagMatch, VersionPreference};
#[doc(inline)]
pub use select::{Explanation, OwnedPick, Pick, Plan, Selector, SelectorBuilder, Verdict};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
