//! Registry changes shipped with versions (`Fleet::apply_version`,
//! `Fleet::install_version`): a replica applies them in order, refuses
//! stale and gapped versions, recovers from a gap with a full snapshot and
//! ends equal to the source registry, whatever the channel duplicated,
//! reordered or lost.

use std::time::Duration;

use modelfleet::{Changes, Deployment, Error, Fleet, Policy, Registry};
use proptest::prelude::*;

/// A registry of the pool's deployments `present`, with the given weights.
fn registry(present: &[(bool, u32)]) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, &(on, weight)) in present.iter().enumerate() {
        if on {
            let d = Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://10.0.0.{i}/v1"))
                .weight(weight)
                .build()
                .unwrap();
            reg.insert(d).unwrap();
        }
    }
    reg
}

/// What the channel does with one shipped message.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Deliver,
    Lose,
    Twice,
    Late,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_replica_ends_equal_to_the_source_whatever_the_channel_does(
        versions in prop::collection::vec(prop::collection::vec((any::<bool>(), 0u32..4), 6), 1..12),
        fates in prop::collection::vec(
            prop_oneof![4 => Just(Fate::Deliver), 1 => Just(Fate::Lose), 1 => Just(Fate::Twice), 1 => Just(Fate::Late)],
            12,
        ),
    ) {
        // The source: version v is `sources[v]`, version 0 the empty one.
        let mut sources = vec![Registry::new(Policy::NAME_ENDPOINT)];
        sources.extend(versions.iter().map(|v| registry(v)));
        let shipped: Vec<(u64, Changes)> = (1..sources.len())
            .map(|v| (v as u64, sources[v - 1].diff(&sources[v])))
            .collect();

        // The channel's order: late messages come after the rest.
        let mut arriving = Vec::new();
        let mut late = Vec::new();
        for (m, fate) in shipped.iter().zip(&fates) {
            match fate {
                Fate::Deliver => arriving.push(m),
                Fate::Lose => {}
                Fate::Twice => arriving.extend([m, m]),
                Fate::Late => late.push(m),
            }
        }
        arriving.extend(late);

        let replica = Fleet::new(Registry::new(Policy::NAME_ENDPOINT), |b| b);
        for (version, changes) in arriving {
            match replica.apply_version(*version, changes, Duration::ZERO) {
                Ok(()) => {}
                Err(Error::OutOfOrder { have, got, .. }) if got <= have => {
                    prop_assert_eq!(replica.version(), have, "a refused version changes nothing");
                }
                Err(Error::OutOfOrder { have, got, .. }) => {
                    prop_assert_eq!(replica.version(), have);
                    // Recovery: the source's snapshot at the newest version.
                    let newest = sources.len() - 1;
                    prop_assert!(got as usize <= newest);
                    replica
                        .install_version(newest as u64, sources[newest].clone(), Duration::ZERO)
                        .unwrap();
                }
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
            // Whatever happened, the replica holds the source at its version.
            prop_assert_eq!(&replica.registry(), &sources[replica.version() as usize]);
        }
        // A replica that lost the last messages catches up by snapshot.
        let newest = sources.len() - 1;
        if (replica.version() as usize) < newest {
            replica.install_version(newest as u64, sources[newest].clone(), Duration::ZERO).unwrap();
        }
        prop_assert_eq!(replica.registry(), sources[newest].clone());
        prop_assert_eq!(replica.version(), newest as u64);
    }
}

#[test]
fn a_stale_snapshot_is_refused_and_the_same_one_is_harmless() {
    let fleet = Fleet::new(Registry::new(Policy::NAME_ENDPOINT), |b| b);
    let one = registry(&[(true, 1)]);
    fleet
        .install_version(5, one.clone(), Duration::ZERO)
        .unwrap();
    let changes = fleet
        .install_version(5, one.clone(), Duration::ZERO)
        .unwrap();
    assert!(changes.is_empty());
    let err = fleet
        .install_version(4, Registry::new(Policy::NAME_ENDPOINT), Duration::ZERO)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::OutOfOrder {
            have: 5,
            got: 4,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "changes to version 4 do not follow registry version 5"
    );
    assert_eq!(fleet.registry(), one);
    // u64::MAX has no successor: nothing follows it, and nothing panics.
    fleet
        .install_version(u64::MAX, one.clone(), Duration::ZERO)
        .unwrap();
    let none = Changes::default();
    assert!(matches!(
        fleet.apply_version(u64::MAX, &none, Duration::ZERO),
        Err(Error::OutOfOrder { .. })
    ));
}

#[test]
fn changes_that_do_not_apply_leave_the_version() {
    let fleet = Fleet::new(registry(&[(true, 1)]), |b| b);
    let bad = registry(&[(true, 1)]).diff(&registry(&[(false, 1), (true, 1)]));
    // Applied to a registry without 10.0.0.0 they cannot remove it.
    fleet.apply_version(1, &bad, Duration::ZERO).unwrap();
    assert!(fleet.apply_version(2, &bad, Duration::ZERO).is_err());
    assert_eq!(fleet.version(), 1);
}
