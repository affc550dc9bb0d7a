//! Property tests of [`Registry::diff`] and [`Registry::apply`].
//!
//! Registries are built by random `insert`/`upsert`/`remove`/re-add
//! sequences under one random built-in policy per case, from small pools (2
//! providers, 2 models, 3 endpoints counting "none", 2 tags, 2 versions,
//! weights 0..=3, 2 priorities, an optional label, an optional credential
//! out of 2), reusing a palette of a
//! few deployments per case, so keys collide often and removals followed by
//! additions reorder the registry often. The second (and third) registry is
//! either built independently or derived from the first by more operations,
//! so both unrelated and nearby pairs are covered.
//!
//! Properties:
//! 1. round trip: `a.apply(&a.diff(&b))` gives a registry equal to `b`
//!    (`==` compares order too) but for credentials, which are never
//!    carried: each key of `b` also in `a` has `a`'s credential, each other
//!    none; the per-model index is `b`'s; the diff is empty exactly when
//!    `a` and `b` are equal without credentials, and has the documented
//!    shape (removals, then updates, then additions in `b`'s order, no
//!    credential in any change, `credential_withheld` exactly where `b`'s
//!    deployment has one);
//! 2. equal registries give an empty diff;
//! 3. composition: applying `diff(a, b)` then `diff(b, c)` to `a` gives `c`
//!    (credentials: `a`'s for the keys in all three), and the two lists
//!    applied as one give `c` with `a`'s credentials for the keys in `a`
//!    and `c`;
//! 4. all or nothing: a change list with one bad change in the middle
//!    (removing a missing key, adding a stored key, an update against a
//!    stale `before`, an update of a missing key, a deployment under the
//!    wrong key) fails with `Error::InvalidChange` naming that change's
//!    index and key, and leaves the registry equal to what it was;
//! 5. `Changes` survives a `serde_json` round trip, applies through it
//!    exactly as in memory, and no credential appears in the JSON;
//! 6. upserting deployments equal to stored ones changes nothing: the diff
//!    is empty; upserting changed ones (same keys) gives only updates.

use std::collections::HashSet;

use modelfleet::{Change, Changes, Deployment, Error, ModelKey, Policy, Registry};
use proptest::prelude::*;
use proptest::sample::{Index, select};

mod support;

const PROVIDERS: &[&str] = &["openai", "azure"];
const MODELS: &[&str] = &["gpt-4", "llama-3"];
const ENDPOINTS: &[Option<&str>] = &[None, Some("http://10.0.0.1/v1"), Some("http://10.0.0.2/v1")];
const TAGS: &[Option<&str>] = &[None, Some("canary")];
const VERSIONS: &[Option<&str>] = &[None, Some("1.0.0")];
/// Credential references and values; none may appear in serialized changes.
const CREDENTIALS: &[Option<&str>] = &[None, Some("env:SECRET_KEY_A"), Some("sk-live-SECRET-B")];

fn deployment() -> impl Strategy<Value = Deployment> {
    (
        select(PROVIDERS),
        select(MODELS),
        select(ENDPOINTS),
        select(TAGS),
        select(VERSIONS),
    )
        .prop_map(|(provider, model, endpoint, tag, version)| {
            let b = Deployment::builder(provider, model);
            support::with_parts(b, endpoint, tag, version)
                .build()
                .unwrap()
        })
}

/// A palette deployment with another weight, priority and label, so that
/// the same key comes back with different contents (an update).
fn variant(
    base: &Deployment,
    weight: u32,
    priority: u32,
    region: Option<&str>,
    credential: Option<&str>,
) -> Deployment {
    let mut b = base.to_builder().weight(weight).priority(priority);
    if let Some(r) = region {
        b = b.label("region", r);
    }
    if let Some(c) = credential {
        b = b.credential(c);
    }
    b.build().unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Deployment),
    Upsert(Deployment),
    /// Removes the key this deployment has under the registry's policy.
    Remove(Deployment),
    /// Removes the key, then adds the deployment back (at the end).
    Readd(Deployment),
}

/// Operations over a palette: index into the palette, weight, priority,
/// label, kind.
type RawOps = Vec<(
    Index,
    u32,
    u32,
    Option<&'static str>,
    Option<&'static str>,
    u8,
)>;

fn raw_ops(max: usize) -> impl Strategy<Value = RawOps> {
    prop::collection::vec(
        (
            any::<Index>(),
            0u32..=3,
            0u32..2,
            select(vec![None, Some("eu"), Some("us")]),
            select(CREDENTIALS),
            0u8..10,
        ),
        0..max,
    )
}

fn to_ops(palette: &[Deployment], raw: &RawOps) -> Vec<Op> {
    raw.iter()
        .map(|(i, w, p, region, credential, kind)| {
            let d = variant(i.get(palette), *w, *p, *region, *credential);
            match kind {
                0..=2 => Op::Insert(d),
                3..=5 => Op::Upsert(d),
                6..=7 => Op::Remove(d),
                _ => Op::Readd(d),
            }
        })
        .collect()
}

fn run(reg: &mut Registry, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Insert(d) => {
                let _ = reg.insert(d.clone());
            }
            Op::Upsert(d) => {
                reg.upsert(d.clone());
            }
            Op::Remove(d) => {
                reg.remove(&reg.key_of(d));
            }
            Op::Readd(d) => {
                reg.remove(&reg.key_of(d));
                reg.upsert(d.clone());
            }
        }
    }
}

/// One case: a policy, a palette, and three registries `a`, `b`, `c`. Each
/// of `b` and `c` is built either from scratch or from the one before it.
#[derive(Debug)]
struct Case {
    a: Registry,
    b: Registry,
    c: Registry,
}

fn case() -> impl Strategy<Value = Case> {
    (
        select(Policy::all().to_vec()),
        prop::collection::vec(deployment(), 1..5),
        raw_ops(24),
        raw_ops(24),
        raw_ops(24),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(policy, palette, oa, ob, oc, b_from_a, c_from_b)| {
            let mut a = Registry::new(policy);
            run(&mut a, &to_ops(&palette, &oa));
            let mut b = if b_from_a {
                a.clone()
            } else {
                Registry::new(policy)
            };
            run(&mut b, &to_ops(&palette, &ob));
            let mut c = if c_from_b {
                b.clone()
            } else {
                Registry::new(policy)
            };
            run(&mut c, &to_ops(&palette, &oc));
            Case { a, b, c }
        })
}

/// Entries in order, for readable failure messages.
fn entries(reg: &Registry) -> Vec<String> {
    reg.iter()
        .map(|(k, d)| format!("{k} w{} p{}", d.weight(), d.priority()))
        .collect()
}

/// `to` with the credentials a diff leaves: each key also in `from` has
/// `from`'s credential, each other key none.
fn carried(from: &Registry, to: &Registry) -> Registry {
    let mut out = Registry::new(*to.policy());
    for (k, d) in to.iter() {
        let d = d.without_credential();
        let d = match from.get(k).and_then(Deployment::credential) {
            Some(c) => d.to_builder().credential(c.expose()).build().unwrap(),
            None => d,
        };
        out.insert(d).unwrap();
    }
    out
}

/// `reg` without any credential.
fn stripped(reg: &Registry) -> Registry {
    carried(&Registry::new(*reg.policy()), reg)
}

/// Every credential of the pools appears nowhere in `text`.
#[cfg(feature = "serde")]
#[track_caller]
fn assert_no_credential(text: &str) {
    for c in CREDENTIALS.iter().flatten() {
        assert!(!text.contains(c), "{c} in {text}");
        assert!(!text.contains("SECRET"), "{text}");
    }
}

/// `got` equals `want`, order included, and so does its per-model index.
#[track_caller]
fn assert_same(got: &Registry, want: &Registry, what: &str) {
    assert_eq!(
        got,
        want,
        "{what}: {:?} != {:?}",
        entries(got),
        entries(want)
    );
    for model in MODELS {
        assert!(
            got.of_model(model).eq(want.of_model(model)),
            "{what}: of_model({model:?}) differs"
        );
    }
    let got_models: HashSet<&str> = got.models().collect();
    let want_models: HashSet<&str> = want.models().collect();
    assert_eq!(got_models, want_models, "{what}: models()");
}

/// The documented shape of `a.diff(&b)`: removals, then updates, then
/// additions; every change is about the right key with the right contents;
/// additions come in `b`'s order.
#[track_caller]
fn assert_shape(a: &Registry, b: &Registry, changes: &Changes) {
    let rank = |c: &Change| match c {
        Change::Removed { .. } => 0,
        Change::Updated { .. } => 1,
        Change::Added { .. } => 2,
        _ => unreachable!("no other change kind is produced"),
    };
    let ranks: Vec<u8> = changes.iter().map(rank).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "changes out of order: {changes}"
    );
    let mut seen = HashSet::new();
    let mut added_positions = Vec::new();
    for c in changes {
        match c {
            Change::Removed { key, .. } => {
                assert!(a.contains(key), "removes {key}, absent from a");
                assert!(seen.insert(("-", key.clone())), "{key} removed twice");
            }
            Change::Updated {
                key, before, after, ..
            } => {
                assert!(before.credential().is_none() && after.credential().is_none());
                let before_cred = a.get(key).unwrap().without_credential();
                assert_eq!(&before_cred, before, "update of {key}: before");
                let after_cred = b.get(key).unwrap().without_credential();
                assert_eq!(&after_cred, after, "update of {key}: after");
                assert_ne!(before, after, "update of {key} changes nothing");
                assert!(seen.insert(("~", key.clone())), "{key} updated twice");
            }
            Change::Added {
                key,
                deployment,
                credential_withheld,
                ..
            } => {
                let source = b.get(key).unwrap();
                assert_eq!(
                    &source.without_credential(),
                    deployment,
                    "addition of {key}"
                );
                assert_eq!(*credential_withheld, source.credential().is_some());
                assert_eq!(&b.key_of(deployment), key);
                added_positions.push(b.position(key).unwrap());
                assert!(seen.insert(("+", key.clone())), "{key} added twice");
            }
            _ => unreachable!(),
        }
    }
    assert!(
        added_positions.windows(2).all(|w| w[0] < w[1]),
        "additions not in b's order: {changes}"
    );
    // Additions are exactly b's tail: everything after the kept prefix.
    if let Some(&first) = added_positions.first() {
        assert_eq!(
            added_positions,
            (first..b.len()).collect::<Vec<_>>(),
            "additions are not b's tail"
        );
    }
    assert_eq!(changes.len(), changes.as_slice().len());
    assert_eq!(changes.is_empty(), changes.as_slice().is_empty());
    assert_eq!(changes.to_string().lines().count(), changes.len());
}

/// A bad change for `state` (the registry after the valid prefix), chosen
/// by `kind`; `apply` must refuse it and name its key.
fn bad_change(state: &Registry, palette: &[Deployment], kind: u8, pick: Index) -> Change {
    let stored: Vec<(&ModelKey, &Deployment)> = state.iter().collect();
    let absent = Deployment::builder("openai", "absent-model")
        .build()
        .unwrap();
    // A palette key that is not stored, or a key of a model no pool has.
    let missing = palette
        .iter()
        .map(|d| state.key_of(d))
        .find(|k| !state.contains(k))
        .unwrap_or_else(|| state.key_of(&absent));
    match kind {
        // Add a key that is stored.
        1 if !stored.is_empty() => {
            let (k, d) = *pick.get(&stored);
            Change::added(k.clone(), d.clone())
        }
        // Update against a stale `before` (the stored one with another weight).
        2 if !stored.is_empty() => {
            let (k, d) = *pick.get(&stored);
            let stale = d.to_builder().weight(d.weight() + 7).build().unwrap();
            Change::updated(k.clone(), stale, d.clone())
        }
        // Update of a key that is not stored.
        3 => {
            let d = palette
                .iter()
                .find(|d| state.key_of(d) == missing)
                .unwrap_or(&absent)
                .clone();
            Change::updated(missing, d.clone(), d)
        }
        // Add a deployment under a key it does not have.
        4 => Change::added(
            state.key_of(&absent),
            Deployment::builder("openai", "gpt-4").build().unwrap(),
        ),
        // Remove a key that is not stored (also the fallback when nothing is).
        _ => Change::removed(missing),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(case in case()) {
        let Case { a, b, .. } = case;
        let changes = a.diff(&b);
        assert_shape(&a, &b, &changes);
        prop_assert_eq!(
            changes.is_empty(),
            stripped(&a) == stripped(&b),
            "empty diff iff equal without credentials: {}",
            changes
        );
        let mut got = a.clone();
        got.apply(&changes).unwrap();
        assert_same(&got, &carried(&a, &b), "a + diff(a, b)");
        // And back.
        let back = b.diff(&a);
        assert_shape(&b, &a, &back);
        let mut got = b.clone();
        got.apply(&back).unwrap();
        assert_same(&got, &carried(&b, &a), "b + diff(b, a)");
    }

    #[test]
    fn equal_registries_give_no_change(case in case()) {
        for reg in [&case.a, &case.b, &case.c] {
            prop_assert!(reg.diff(reg).is_empty());
            prop_assert!(reg.diff(&reg.clone()).is_empty());
            let mut same = reg.clone();
            same.apply(&reg.diff(reg)).unwrap();
            prop_assert_eq!(&same, reg);
        }
        // Equal contents built another way (re-inserted in order).
        let mut rebuilt = Registry::new(*case.a.policy());
        for d in case.a.deployments() {
            rebuilt.insert(d.clone()).unwrap();
        }
        prop_assert!(case.a.diff(&rebuilt).is_empty());
        prop_assert!(rebuilt.diff(&case.a).is_empty());
    }

    #[test]
    fn diffs_compose(case in case()) {
        let Case { a, b, c } = case;
        let mut got = a.clone();
        got.apply(&a.diff(&b)).unwrap();
        got.apply(&b.diff(&c)).unwrap();
        assert_same(&got, &carried(&carried(&a, &b), &c), "a + diff(a, b) + diff(b, c)");
        // The composed list applied in one call gives c too.
        let both: Changes = a.diff(&b).into_iter().chain(b.diff(&c)).collect();
        let mut got = a.clone();
        got.apply(&both).unwrap();
        assert_same(&got, &carried(&a, &c), "a + (diff(a, b) ++ diff(b, c))");
    }

    #[test]
    fn apply_is_all_or_nothing(
        case in case(),
        palette in prop::collection::vec(deployment(), 1..5),
        at in any::<Index>(),
        kind in 0u8..5,
        pick in any::<Index>(),
    ) {
        let Case { a, b, .. } = case;
        let valid: Vec<Change> = a.diff(&b).into_iter().collect();
        let index = at.index(valid.len() + 1);
        // The registry the bad change meets.
        let mut state = a.clone();
        state.apply(&valid[..index].to_vec().into()).unwrap();
        let bad = bad_change(&state, &palette, kind, pick);
        let mut list = valid[..index].to_vec();
        list.push(bad.clone());
        list.extend(valid[index..].iter().cloned());
        let list: Changes = list.into();

        let mut reg = a.clone();
        match reg.apply(&list) {
            Err(Error::InvalidChange { index: i, key, problem, .. }) => {
                prop_assert_eq!(i, index, "wrong index for {} ({})", bad, problem);
                prop_assert_eq!(&*key, bad.key(), "wrong key ({})", problem);
            }
            other => prop_assert!(false, "{} at {} in {}: got {:?}", bad, index, list, other),
        }
        assert_same(&reg, &a, "registry after a refused apply");
    }

    #[test]
    fn upserting_equal_deployments_changes_nothing(
        case in case(),
        order in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let a = case.a;
        let stored: Vec<Deployment> = a.deployments().cloned().collect();
        let mut same = a.clone();
        if !stored.is_empty() {
            for i in &order {
                let previous = same.upsert(i.get(&stored).clone());
                prop_assert_eq!(previous.as_ref(), Some(i.get(&stored)));
            }
        }
        prop_assert!(a.diff(&same).is_empty(), "{}", a.diff(&same));
        prop_assert_eq!(&same, &a);
    }

    #[test]
    fn upserting_changed_deployments_gives_only_updates(
        case in case(),
        order in prop::collection::vec((any::<Index>(), 4u32..6), 0..12),
    ) {
        let a = case.a;
        let stored: Vec<Deployment> = a.deployments().cloned().collect();
        let mut changed = a.clone();
        let mut keys = HashSet::new();
        if !stored.is_empty() {
            for (i, w) in &order {
                let d = i.get(&stored).to_builder().weight(*w).build().unwrap();
                keys.insert(a.key_of(&d));
                changed.upsert(d);
            }
        }
        let changes = a.diff(&changed);
        prop_assert!(changes.iter().all(|c| matches!(c, Change::Updated { .. })), "{}", changes);
        prop_assert_eq!(changes.len(), keys.len());
        let mut got = a.clone();
        got.apply(&changes).unwrap();
        assert_same(&got, &changed, "a + updates");
    }
}

/// Serialization of `Changes` (the `serde` feature).
#[cfg(feature = "serde")]
mod serde_changes {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn changes_serde_round_trip(case in case()) {
            let Case { a, b, .. } = case;
            for (from, to) in [(&a, &b), (&b, &a)] {
                let changes = from.diff(to);
                let json = serde_json::to_string(&changes).unwrap();
                assert_no_credential(&json);
                let back: Changes = serde_json::from_str(&json)
                    .unwrap_or_else(|e| panic!("{e}: {json}"));
                prop_assert_eq!(&back, &changes, "{}", json);
                // Through JSON, the list applies exactly as in memory.
                let mut in_memory = from.clone();
                in_memory.apply(&changes).unwrap();
                let mut got = from.clone();
                got.apply(&back).unwrap_or_else(|e| panic!("{e}: {json}"));
                assert_same(&got, &in_memory, "diff through JSON");
                assert_same(&got, &carried(from, to), "diff through JSON");
            }
        }
    }

    #[test]
    fn credentials_are_not_serialized() {
        let mut a = Registry::new(Policy::NAME_ENDPOINT);
        a.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint("http://10.0.0.1/v1")
                .build()
                .unwrap(),
        )
        .unwrap();
        let mut b = a.clone();
        b.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint("http://10.0.0.2/v1")
                .credential("env:SECRET_KEY_2")
                .build()
                .unwrap(),
        )
        .unwrap();
        let changes = a.diff(&b);
        let json = serde_json::to_string(&changes).unwrap();
        assert!(!json.contains("SECRET_KEY_2"), "{json}");
        assert!(json.contains(r#""op":"added""#), "{json}");
        let back: Changes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, changes);
        // Everything but the credential comes back, and the change says
        // that one was withheld.
        let [
            Change::Added {
                deployment,
                credential_withheld: true,
                ..
            },
        ] = back.as_slice()
        else {
            panic!("{back:?}");
        };
        assert!(deployment.credential().is_none());
        assert_eq!(
            deployment
                .to_builder()
                .credential("env:SECRET_KEY_2")
                .build()
                .unwrap(),
            *b.get(back.as_slice()[0].key()).unwrap()
        );
        // A hand-made change of a deployment holding a credential
        // serializes without it, and says so.
        let key = back.as_slice()[0].key().clone();
        let by_hand: Changes =
            vec![Change::added(key.clone(), b.get(&key).unwrap().clone())].into();
        let json = serde_json::to_string(&by_hand).unwrap();
        assert!(!json.contains("SECRET_KEY_2"), "{json}");
        assert_eq!(serde_json::from_str::<Changes>(&json).unwrap(), changes);
    }

    /// A diff shipped as JSON applies to the registry it was computed
    /// from even when that registry's deployments hold credentials, and
    /// the receiver keeps its own credential for the key it updates.
    #[test]
    fn a_shipped_diff_applies_to_deployments_with_credentials() {
        let node = |ip: &str, w: u32| {
            Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://{ip}/v1"))
                .weight(w)
                .credential("sk-live-receiver")
        };
        let mut a = Registry::new(Policy::NAME_ENDPOINT);
        a.insert(node("10.0.0.1", 1).build().unwrap()).unwrap();
        let mut b = Registry::new(Policy::NAME_ENDPOINT);
        b.insert(
            node("10.0.0.1", 2)
                .credential("sk-live-sender")
                .build()
                .unwrap(),
        )
        .unwrap();
        let changes = a.diff(&b);
        let json = serde_json::to_string(&changes).unwrap();
        assert!(!json.contains("sk-live"), "{json}");
        let back: Changes = serde_json::from_str(&json).unwrap();
        let mut got = a.clone();
        got.apply(&back).unwrap_or_else(|e| panic!("{e}: {json}"));
        let d = got.deployments().next().unwrap();
        assert_eq!(d.weight(), 2);
        assert_eq!(d.credential().map(|c| c.expose()), Some("sk-live-receiver"));
    }

    #[test]
    fn unknown_fields_in_a_change_are_refused() {
        let json = r#"[{"op":"removed","key":"openai/gpt-4@","extra":1}]"#;
        assert!(serde_json::from_str::<Changes>(json).is_err());
        let json = r#"[{"op":"renamed","key":"openai/gpt-4@"}]"#;
        assert!(serde_json::from_str::<Changes>(json).is_err());
        let json = r#"[{"op":"removed","key":"openai/gpt-4@"}]"#;
        let changes: Changes = serde_json::from_str(json).unwrap();
        assert_eq!(changes.to_string(), "- openai/gpt-4@");
    }
}
