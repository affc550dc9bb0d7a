//! Property tests of [`Registry`] against a plain model (a `Vec` of
//! `(key, deployment)`), driven by random `insert`/`upsert`/`remove`
//! sequences under every built-in identity policy (and a custom one).
//!
//! The generators draw from small pools (2 providers, 3 models, 3 endpoints
//! counting "none" and one endpoint written two ways, 2 tags counting
//! "none", 3 versions counting "none", weights 0..=4), and each case reuses
//! a palette of a few deployments, so keys collide often under every policy.
//!
//! Properties (DESIGN.md §3 items 1–4):
//! 1. uniqueness: `len()` is the number of distinct keys, no two entries
//!    share a key;
//! 2. override: `upsert` replaces in place and returns the previous
//!    deployment, `insert` of an existing key fails with `Error::Duplicate`
//!    and changes nothing, `upsert` is idempotent;
//! 3. order: iteration follows the first insertion of each live key, a key
//!    removed and added again goes to the end;
//! 4. refinement between policies, `collisions` and `rekey`;
//!
//! plus the per-model index (`of_model`, `of_provider_model`) and
//! `FromIterator`/`Extend`.

use std::collections::HashSet;
use std::fmt;

use modelfleet::{
    Collision, Deployment, Discriminators, Error, IdentityPolicy, ModelKey, Policy, Registry,
};
use proptest::prelude::*;
use proptest::sample::select;

mod support;

const PROVIDERS: &[&str] = &["openai", "azure"];
/// `GPT-4` is another model for the built-in policies, and the same model
/// as `gpt-4` for [`CaseInsensitive`].
const MODELS: &[&str] = &["gpt-4", "GPT-4", "meta-llama/Llama-3#8B"];
/// The second and third spellings are one endpoint.
const ENDPOINTS: &[Option<&str>] = &[
    None,
    Some("http://10.0.0.1/v1"),
    Some("HTTP://10.0.0.1:80/v1/"),
    Some("http://10.0.0.2/v1"),
];
const TAGS: &[Option<&str>] = &[None, Some("canary")];
const VERSIONS: &[Option<&str>] = &[None, Some("1.0.0"), Some("2.0.0-rc.1")];

fn deployment() -> impl Strategy<Value = Deployment> {
    (
        select(PROVIDERS),
        select(MODELS),
        select(ENDPOINTS),
        select(TAGS),
        select(VERSIONS),
        0u32..=4,
    )
        .prop_map(|(provider, model, endpoint, tag, version, weight)| {
            let b = Deployment::builder(provider, model).weight(weight);
            support::with_parts(b, endpoint, tag, version)
                .build()
                .unwrap()
        })
}

/// A few deployments per case, reused by the operations with other weights
/// and priorities, so that the same keys come back again and again.
fn deployments(max: usize) -> impl Strategy<Value = Vec<Deployment>> {
    (
        prop::collection::vec(deployment(), 1..6),
        prop::collection::vec((any::<prop::sample::Index>(), 0u32..=4, 0u32..2), 0..max),
    )
        .prop_map(|(palette, picks)| {
            picks
                .into_iter()
                .map(|(i, weight, priority)| {
                    i.get(&palette)
                        .to_builder()
                        .weight(weight)
                        .priority(priority)
                        .build()
                        .unwrap()
                })
                .collect()
        })
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Deployment),
    Upsert(Deployment),
    /// Removes the key this deployment has under the registry's policy.
    Remove(Deployment),
    /// Removes the key and adds the deployment back at once.
    Readd(Deployment),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    (deployments(48), prop::collection::vec(0u8..10, 48)).prop_map(|(ds, kinds)| {
        ds.into_iter()
            .zip(kinds)
            .map(|(d, kind)| match kind {
                0..=2 => Op::Insert(d),
                3..=5 => Op::Upsert(d),
                6..=8 => Op::Remove(d),
                _ => Op::Readd(d),
            })
            .collect()
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    select(Policy::all().to_vec())
}

/// A custom policy: provider + model compared without case + endpoint. Two
/// deployments with different model names can share a key, so an `upsert`
/// can move a key from one model's group to another's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CaseInsensitive;

impl IdentityPolicy for CaseInsensitive {
    fn key(&self, d: &Deployment) -> ModelKey {
        ModelKey::new(d.provider(), &d.model().to_lowercase())
            .and_then(|k| k.with_endpoint(d.endpoint()))
            .unwrap()
    }
}

impl fmt::Display for CaseInsensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("case-insensitive")
    }
}

/// The reference model: a vector in registry order.
type Model = Vec<(ModelKey, Deployment)>;

fn find(model: &Model, key: &ModelKey) -> Option<usize> {
    model.iter().position(|(k, _)| k == key)
}

/// Checks everything a registry promises against the model.
#[track_caller]
fn assert_matches_model<P>(reg: &Registry<P>, model: &Model)
where
    P: IdentityPolicy,
{
    // Same entries, same order.
    let entries: Vec<(ModelKey, Deployment)> =
        reg.iter().map(|(k, d)| (k.clone(), d.clone())).collect();
    assert_eq!(&entries, model, "registry and model disagree");
    assert_eq!(reg.len(), model.len());
    assert_eq!(reg.is_empty(), model.is_empty());
    assert_eq!(reg.iter().len(), model.len());
    assert!(reg.keys().eq(model.iter().map(|(k, _)| k)));
    assert!(reg.deployments().eq(model.iter().map(|(_, d)| d)));
    assert!(reg.iter().rev().eq(model.iter().rev().map(|(k, d)| (k, d))));

    // Uniqueness: no two entries share a key, and len() is the number of
    // distinct keys among the live deployments.
    let keys: HashSet<&ModelKey> = reg.keys().collect();
    assert_eq!(keys.len(), reg.len(), "two entries share a key");
    let live: HashSet<ModelKey> = reg.deployments().map(|d| reg.key_of(d)).collect();
    assert_eq!(live.len(), reg.len(), "two live deployments share a key");

    for (i, (k, d)) in reg.iter().enumerate() {
        assert_eq!(
            &reg.key_of(d),
            k,
            "a deployment is stored under another key"
        );
        assert_eq!(reg.get(k), Some(d));
        assert_eq!(reg.position(k), Some(i));
        assert!(reg.contains(k));
    }
    assert_index_matches(reg);
}

/// `of_model` and `of_provider_model` return exactly the matching
/// deployments, in registry order, both ways round.
#[track_caller]
fn assert_index_matches<P: IdentityPolicy>(reg: &Registry<P>) {
    for model in MODELS.iter().copied().chain(["absent", "gpt"]) {
        let want: Vec<_> = reg.iter().filter(|(_, d)| d.model() == model).collect();
        let got: Vec<_> = reg.of_model(model).collect();
        assert_eq!(got, want, "of_model({model:?})");
        let back: Vec<_> = reg.of_model(model).rev().collect();
        assert!(
            back.iter().eq(want.iter().rev()),
            "of_model({model:?}).rev()"
        );
        for provider in PROVIDERS.iter().copied().chain(["absent"]) {
            let want: Vec<_> = reg
                .iter()
                .filter(|(_, d)| d.model() == model && d.provider() == provider)
                .collect();
            let got: Vec<_> = reg.of_provider_model(provider, model).collect();
            assert_eq!(got, want, "of_provider_model({provider:?}, {model:?})");
        }
    }
    // Every model with deployments is listed, once.
    let listed: Vec<&str> = reg.models().collect();
    let listed_set: HashSet<&str> = listed.iter().copied().collect();
    let want: HashSet<&str> = reg.deployments().map(Deployment::model).collect();
    assert_eq!(listed.len(), listed_set.len(), "a model is listed twice");
    assert_eq!(listed_set, want);
}

/// Applies one operation to both the registry and the model, checking what
/// the registry returns.
#[track_caller]
fn apply<P>(reg: &mut Registry<P>, model: &mut Model, op: &Op)
where
    P: IdentityPolicy + Clone + PartialEq + fmt::Debug,
{
    match op {
        Op::Insert(d) => {
            let key = reg.key_of(d);
            match find(model, &key) {
                Some(i) => {
                    let before = reg.clone();
                    match reg.insert(d.clone()) {
                        Err(Error::Duplicate {
                            key: k, existing, ..
                        }) => {
                            assert_eq!(*k, key, "the duplicate error names the key");
                            assert_eq!(
                                existing,
                                model[i].1.to_string(),
                                "and the stored deployment"
                            );
                        }
                        other => panic!("insert of an existing key gave {other:?}"),
                    }
                    assert_eq!(*reg, before, "a failed insert changed the registry");
                }
                None => {
                    assert_eq!(reg.insert(d.clone()).unwrap(), key);
                    model.push((key, d.clone()));
                }
            }
        }
        Op::Upsert(d) => {
            let key = reg.key_of(d);
            let position = reg.position(&key);
            assert_eq!(position, find(model, &key));
            let previous = reg.upsert(d.clone());
            match position {
                Some(i) => {
                    assert_eq!(
                        previous.as_ref(),
                        Some(&model[i].1),
                        "upsert returns the previous"
                    );
                    assert_eq!(reg.position(&key), Some(i), "upsert keeps the position");
                    model[i].1 = d.clone();
                }
                None => {
                    assert_eq!(previous, None);
                    model.push((key.clone(), d.clone()));
                    assert_eq!(reg.position(&key), Some(model.len() - 1));
                }
            }
            // Idempotent.
            let once = reg.clone();
            assert_eq!(reg.upsert(d.clone()).as_ref(), Some(d));
            assert_eq!(
                *reg, once,
                "a second upsert of the same deployment changed things"
            );
        }
        Op::Remove(d) => {
            let key = reg.key_of(d);
            let removed = reg.remove(&key);
            match find(model, &key) {
                Some(i) => assert_eq!(removed, Some(model.remove(i).1)),
                None => assert_eq!(removed, None),
            }
            assert!(!reg.contains(&key));
            assert_eq!(reg.position(&key), None);
            assert_eq!(reg.remove(&key), None);
        }
        Op::Readd(d) => {
            let key = reg.key_of(d);
            reg.remove(&key);
            if let Some(i) = find(model, &key) {
                model.remove(i);
            }
            reg.insert(d.clone()).unwrap();
            model.push((key.clone(), d.clone()));
            assert_eq!(
                reg.position(&key),
                Some(reg.len() - 1),
                "a re-added key goes last"
            );
        }
    }
    assert_matches_model(reg, model);
}

#[track_caller]
fn run<P>(policy: P, ops: &[Op]) -> Registry<P>
where
    P: IdentityPolicy + Clone + PartialEq + fmt::Debug,
{
    let mut reg = Registry::new(policy);
    let mut model = Model::new();
    for op in ops {
        apply(&mut reg, &mut model, op);
    }
    reg
}

/// What inserting `reg`'s deployments in order into a fresh registry under
/// `q` rejects, grouped by key: the first holder and every rejected one (by
/// their keys in `reg`), groups in order of their first holder.
fn fresh_insert_duplicates<P: IdentityPolicy, Q: IdentityPolicy>(
    reg: &Registry<P>,
    q: Q,
) -> Vec<(ModelKey, Vec<ModelKey>)> {
    let mut fresh = Registry::new(q);
    let mut groups: Vec<(usize, ModelKey, Vec<ModelKey>)> = Vec::new();
    for d in reg.deployments() {
        match fresh.insert(d.clone()) {
            Ok(_) => {}
            Err(Error::Duplicate { key, existing, .. }) => {
                let key = *key;
                let holder = fresh.get(&key).unwrap();
                assert_eq!(existing, holder.to_string());
                match groups.iter_mut().find(|(_, k, _)| *k == key) {
                    Some((_, _, members)) => members.push(reg.key_of(d)),
                    None => groups.push((
                        fresh.position(&key).unwrap(),
                        key.clone(),
                        vec![reg.key_of(holder), reg.key_of(d)],
                    )),
                }
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    groups.sort_by_key(|(first, _, _)| *first);
    groups.into_iter().map(|(_, k, m)| (k, m)).collect()
}

fn as_pairs(collisions: &[Collision]) -> Vec<(ModelKey, Vec<ModelKey>)> {
    collisions
        .iter()
        .map(|c| (c.key().clone(), c.deployments().to_vec()))
        .collect()
}

proptest! {
    /// Properties 1–3 and the per-model index, under every built-in policy.
    #[test]
    fn operations_match_the_model(policy in policy(), ops in ops()) {
        run(policy, &ops);
    }

    /// The same under a custom policy whose keys ignore the model's case:
    /// an upsert may change a key's model name, and the per-model index must
    /// follow, still in registry order.
    #[test]
    fn operations_match_the_model_under_a_custom_policy(ops in ops()) {
        run(CaseInsensitive, &ops);
    }

    /// Boxed policies behave as the policy they box.
    #[test]
    fn boxed_policy_behaves_alike(policy in policy(), ops in ops()) {
        let plain = run(policy, &ops);
        let boxed: Registry<Box<dyn IdentityPolicy>> = {
            let mut reg: Registry<Box<dyn IdentityPolicy>> = Registry::new(Box::new(policy));
            for op in &ops {
                match op {
                    Op::Insert(d) => { let _ = reg.insert(d.clone()); }
                    Op::Upsert(d) => { reg.upsert(d.clone()); reg.upsert(d.clone()); }
                    Op::Remove(d) => { let k = reg.key_of(d); reg.remove(&k); }
                    Op::Readd(d) => {
                        let k = reg.key_of(d);
                        reg.remove(&k);
                        reg.insert(d.clone()).unwrap();
                    }
                }
            }
            reg
        };
        prop_assert!(plain.iter().eq(boxed.iter()));
    }

    /// Property 4: if P refines Q, every P-collision is a Q-collision, and
    /// P keeps at least as many deployments as Q.
    #[test]
    fn refinement(ds in deployments(24)) {
        let policies = Policy::all();
        // Keys and upsert-built registries under each policy, computed once.
        let keys: Vec<Vec<ModelKey>> = policies
            .iter()
            .map(|p| ds.iter().map(|d| p.key(d)).collect())
            .collect();
        let regs: Vec<Registry> = policies
            .iter()
            .map(|&p| {
                let mut r = Registry::new(p);
                r.extend(ds.iter().cloned());
                r
            })
            .collect();
        for (pi, p) in policies.iter().enumerate() {
            for (qi, q) in policies.iter().enumerate() {
                prop_assert_eq!(
                    p.refines(q),
                    p.discriminators().contains(q.discriminators()),
                );
                if !p.refines(q) {
                    continue;
                }
                for a in 0..ds.len() {
                    for b in 0..ds.len() {
                        if keys[pi][a] == keys[pi][b] {
                            prop_assert_eq!(&keys[qi][a], &keys[qi][b], "{} collides, {} does not", p, q);
                        }
                    }
                }
                let (under_p, under_q) = (&regs[pi], &regs[qi]);
                prop_assert!(under_p.len() >= under_q.len(), "{} keeps {}, {} keeps {}", p, under_p.len(), q, under_q.len());
                // Going finer never merges anything.
                prop_assert!(under_q.collisions(p).is_empty());
            }
        }
        // `name` is the coarsest, `name+endpoint+tag+version` the finest.
        for &p in Policy::all() {
            prop_assert!(p.refines(&Policy::NAME));
            prop_assert!(Policy::NAME_ENDPOINT_TAG_VERSION.refines(&p));
            prop_assert!(p.refines(&p));
        }
    }

    /// Property 4 (rekey): `collisions(q)` is exactly what inserting the
    /// deployments into a fresh registry under `q` would reject; `rekey(q)`
    /// succeeds iff there is none and then keeps every deployment in order.
    #[test]
    fn collisions_and_rekey(p in policy(), q in policy(), ops in ops()) {
        let reg = run(p, &ops);
        let before = reg.clone();
        let collisions = reg.collisions(&q);
        prop_assert_eq!(as_pairs(&collisions), fresh_insert_duplicates(&reg, q));
        for c in &collisions {
            prop_assert!(c.deployments().len() >= 2);
            for k in c.deployments() {
                prop_assert_eq!(&q.key(reg.get(k).unwrap()), c.key());
            }
        }
        match reg.rekey(q) {
            Ok(rekeyed) => {
                prop_assert!(collisions.is_empty());
                prop_assert_eq!(*rekeyed.policy(), q);
                prop_assert!(rekeyed.deployments().eq(reg.deployments()));
                for (k, d) in rekeyed.iter() {
                    prop_assert_eq!(k, &q.key(d));
                }
                assert_index_matches(&rekeyed);
                // And back again, unchanged.
                prop_assert_eq!(rekeyed.collisions(&p).is_empty(), true);
                prop_assert_eq!(rekeyed.rekey(p).unwrap(), reg.clone());
            }
            Err(Error::Collisions { policy, collisions: reported, .. }) => {
                prop_assert!(!collisions.is_empty());
                prop_assert_eq!(policy, q.to_string());
                prop_assert_eq!(reported, collisions);
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
        prop_assert_eq!(reg, before, "rekey or collisions changed the registry");
    }

    /// Rekeying to a custom policy reports the same way.
    #[test]
    fn collisions_under_a_custom_policy(p in policy(), ops in ops()) {
        let reg = run(p, &ops);
        let collisions = reg.collisions(&CaseInsensitive);
        prop_assert_eq!(as_pairs(&collisions), fresh_insert_duplicates(&reg, CaseInsensitive));
        prop_assert_eq!(reg.rekey(CaseInsensitive).is_ok(), collisions.is_empty());
    }

    /// Property 7: `FromIterator` and `Extend` upsert.
    #[test]
    fn from_iterator_and_extend_upsert(p in policy(), ops in ops(), more in deployments(24)) {
        let mut looped = Registry::new(Policy::default());
        for d in &more {
            looped.upsert(d.clone());
        }
        let collected: Registry = more.iter().cloned().collect();
        prop_assert_eq!(&collected, &looped);
        prop_assert_eq!(*collected.policy(), Policy::NAME_ENDPOINT);

        let start = run(p, &ops);
        let mut extended = start.clone();
        extended.extend(more.iter().cloned());
        let mut looped = start;
        for d in &more {
            looped.upsert(d.clone());
        }
        prop_assert_eq!(&extended, &looped);
        assert_index_matches(&extended);
    }

    /// Registries are equal when their policies and entries, in order, are.
    #[test]
    fn equality_is_order_sensitive(p in policy(), ds in deployments(12)) {
        let mut forward = Registry::new(p);
        forward.extend(ds.iter().cloned());
        let mut backward = Registry::new(p);
        backward.extend(ds.iter().rev().cloned());
        let same_order = forward.keys().eq(backward.keys())
            && forward.deployments().eq(backward.deployments());
        prop_assert_eq!(forward == backward, same_order);
        let other_policy = Policy::new(if p.discriminators() == Discriminators::NONE {
            Discriminators::ALL
        } else {
            Discriminators::NONE
        });
        prop_assert_ne!(Registry::new(p), Registry::new(other_policy));
    }
}

/// The one-off behaviours the properties rely on, spelled out.
#[test]
fn dify_collision_and_fleet() {
    let node = |ip: &str, w: u32| {
        Deployment::builder("openai-api-compatible", "gpt-4")
            .endpoint(&format!("http://{ip}/v1"))
            .weight(w)
            .build()
            .unwrap()
    };
    let mut dify = Registry::new(Policy::NAME);
    assert_eq!(dify.upsert(node("192.168.0.1", 1)), None);
    assert_eq!(
        dify.upsert(node("192.168.0.2", 1)),
        Some(node("192.168.0.1", 1))
    );
    assert_eq!(dify.len(), 1);

    let mut fleet = Registry::new(Policy::NAME_ENDPOINT);
    fleet.insert(node("192.168.0.1", 1)).unwrap();
    fleet.insert(node("192.168.0.2", 1)).unwrap();
    fleet
        .insert(Deployment::builder("openai", "gpt-4o").build().unwrap())
        .unwrap();
    assert_eq!(fleet.of_model("gpt-4").count(), 2);
    let first = fleet.keys().next().unwrap().clone();
    // Re-adding moves to the end; upsert in place does not.
    fleet.upsert(node("192.168.0.1", 9));
    assert_eq!(fleet.position(&first), Some(0));
    fleet.remove(&first);
    fleet.insert(node("192.168.0.1", 1)).unwrap();
    assert_eq!(fleet.position(&first), Some(2));
    let order: Vec<String> = fleet.keys().map(ModelKey::to_string).collect();
    assert_eq!(
        order,
        [
            "openai-api-compatible/gpt-4@http://192.168.0.2/v1",
            "openai/gpt-4o@",
            "openai-api-compatible/gpt-4@http://192.168.0.1/v1",
        ]
    );
    let of_model: Vec<String> = fleet
        .of_model("gpt-4")
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(
        of_model,
        [
            "openai-api-compatible/gpt-4@http://192.168.0.2/v1",
            "openai-api-compatible/gpt-4@http://192.168.0.1/v1",
        ]
    );
}

/// Under a custom policy an upsert can change a key's model name; the
/// per-model index must stay in registry order.
#[test]
fn custom_policy_upsert_moving_between_models_keeps_registry_order() {
    let d = |model: &str, ep: &str| {
        Deployment::builder("openai", model)
            .endpoint(ep)
            .build()
            .unwrap()
    };
    let mut reg = Registry::new(CaseInsensitive);
    reg.insert(d("gpt-4", "http://a/")).unwrap();
    reg.insert(d("gpt-4", "http://b/")).unwrap();
    reg.upsert(d("GPT-4", "http://a/"));
    assert_eq!(reg.of_model("GPT-4").count(), 1);
    assert_eq!(reg.of_model("gpt-4").count(), 1);
    reg.upsert(d("gpt-4", "http://a/"));
    let endpoints: Vec<&str> = reg
        .of_model("gpt-4")
        .map(|(_, d)| d.endpoint().unwrap().as_str())
        .collect();
    assert_eq!(
        endpoints,
        ["http://a/", "http://b/"],
        "of_model is not in registry order"
    );
    assert_eq!(reg.of_model("GPT-4").count(), 0);
    assert_eq!(reg.models().collect::<Vec<_>>(), ["gpt-4"]);
}
