//! Every public type is `Send + Sync + Unpin`, so deployments, keys and
//! registries can be shared between threads and held across `.await`s;
//! a fleet's picks and per-thread handles are `Send`, to complete or use on
//! another thread. A type that loses one of these auto traits (an `Rc`, a
//! `Cell`, a raw pointer added to a field) fails to compile here.

#![allow(clippy::extra_unused_type_parameters)]

use modelfleet::{
    Change, Clock, Collision, Credential, Deployment, DeploymentBuilder, Discriminator,
    Discriminators, Drain, EndpointProblem, Error, Field, Fleet, FleetBuilder, FleetHandle,
    FleetPlan, IdentityPolicy, Iter, Limits, ManualClock, ModelKey, MonotonicClock, NameProblem,
    OwnedPick, Policy, Registry,
};

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_unpin<T: Unpin>() {}

fn assert_auto<T: Send + Sync + Unpin>() {
    assert_send::<T>();
    assert_sync::<T>();
    assert_unpin::<T>();
}

#[test]
fn core_types() {
    assert_auto::<modelfleet::share::ReplicaId>();
    assert_auto::<modelfleet::share::Event>();
    assert_auto::<modelfleet::share::Transition>();
    assert_auto::<modelfleet::share::Absorbed>();
    assert_auto::<Deployment>();
    assert_auto::<DeploymentBuilder>();
    assert_auto::<Credential>();
    assert_auto::<Limits>();
    assert_auto::<ModelKey>();
    assert_auto::<Policy>();
    assert_auto::<Discriminators>();
    assert_auto::<Discriminator<String>>();
    assert_auto::<Discriminator<&str>>();
    assert_auto::<Discriminator<semver::Version>>();
    assert_auto::<Discriminator<&url::Url>>();
}

#[test]
fn registry_types() {
    assert_auto::<Registry>();
    assert_auto::<Registry<Policy>>();
    assert_auto::<Registry<Box<dyn IdentityPolicy>>>();
    assert_auto::<Registry<std::sync::Arc<dyn IdentityPolicy>>>();
    assert_auto::<Collision>();
    assert_auto::<Iter<'static>>();
}

/// What async code needs of a value it moves into a spawned task or a
/// response body.
fn assert_owned<T: Send + Sync + 'static>() {}
fn assert_clone<T: Clone>() {}

#[test]
fn clock_types() {
    assert_owned::<ManualClock>();
    assert_owned::<MonotonicClock>();
    assert_owned::<std::sync::Arc<dyn Clock>>();
    assert_clone::<MonotonicClock>();
}

#[test]
fn fleet_types() {
    assert_send::<Fleet>();
    assert_sync::<Fleet>();
    assert_send::<Fleet<Policy>>();
    assert_sync::<Fleet<Policy>>();
    assert_owned::<OwnedPick>();
    assert_owned::<FleetHandle>();
    assert_owned::<FleetPlan>();
    assert_owned::<Drain<Policy>>();
    assert_owned::<FleetBuilder<Policy>>();
    assert_clone::<Fleet>();
    assert_clone::<FleetHandle>();
    assert_owned::<Fleet>();
    assert_send::<Change>();
    assert_sync::<Change>();
}

#[test]
fn error_types() {
    assert_auto::<Error>();
    assert_auto::<Field>();
    assert_auto::<NameProblem>();
    assert_auto::<EndpointProblem>();
}

/// Errors can travel through `Box<dyn Error + Send + Sync>` (what `anyhow`
/// and most async runtimes need).
#[test]
fn error_boxes_as_send_sync() {
    let err = Deployment::builder("", "gpt-4").build().unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync + 'static> = Box::new(err);
    assert_eq!(
        boxed.to_string(),
        "deployment <empty>/gpt-4: provider is empty"
    );
}

/// The tower adapter's values: a layer and its services are shared by
/// connection tasks, a response body moves into the server's task, the
/// error travels boxed.
#[cfg(feature = "tower")]
#[test]
fn tower_types() {
    use bytes::Bytes;
    use http_body_util::Full;
    use modelfleet::tower::{
        Error, FleetLayer, FleetLayerBuilder, FleetService, FromExtension, Once, ReportingBody,
        ResponseFuture,
    };

    assert_owned::<FleetLayer>();
    assert_clone::<FleetLayer>();
    assert_owned::<FleetLayerBuilder<Policy, FromExtension>>();
    assert_owned::<FleetService<(), Policy, FromExtension>>();
    assert_clone::<FleetService<(), Policy, FromExtension>>();
    assert_auto::<ReportingBody<Full<Bytes>>>();
    assert_send::<ResponseFuture<Full<Bytes>>>();
    assert_unpin::<ResponseFuture<Full<Bytes>>>();
    assert_auto::<Once<Full<Bytes>>>();
    assert_auto::<Error>();
    assert_auto::<FromExtension>();
}
