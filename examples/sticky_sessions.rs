//! Sticky sessions over four `gpt-4` endpoints, keyed by name + endpoint,
//! with consistent hashing on a per-user affinity key.
//!
//! Shows how 10,000 users spread over the endpoints, that removing an
//! endpoint moves only its own users, that adding one moves about 1/5 of
//! them (all to the new endpoint), and how a bounded load factor caps a hot
//! key that would otherwise pile every request on one endpoint.
//!
//! ```text
//! cargo run --example sticky_sessions
//! ```

use std::collections::BTreeMap;
use std::error::Error;

use modelfleet::select::ConsistentHash;
use modelfleet::{Deployment, Pick, Policy, Registry, Request, Selector};

/// Users, each with its own affinity key `user-{i}`.
const USERS: usize = 10_000;

/// Requests held in flight at once for the hot key.
const HOT_PICKS: usize = 100;

fn endpoint(i: u32) -> String {
    format!("http://10.0.2.{i}/v1")
}

fn deployment(i: u32) -> Result<Deployment, Box<dyn Error>> {
    Ok(Deployment::builder("openai-api-compatible", "gpt-4")
        .endpoint(&endpoint(i))
        .build()?)
}

fn consistent_hash(registry: &Registry) -> Selector {
    Selector::builder(registry)
        .strategy(ConsistentHash::default())
        .build()
}

/// The endpoint each user lands on, in user order.
fn assign(selector: &Selector) -> Result<Vec<String>, Box<dyn Error>> {
    (0..USERS)
        .map(|i| {
            let pick = selector.select(&Request::new("gpt-4").affinity(&format!("user-{i}")))?;
            let url = pick
                .deployment()
                .endpoint()
                .ok_or("a pick without endpoint")?;
            Ok(url.to_string())
        })
        .collect()
}

fn print_holdings(assignment: &[String]) {
    let mut per_endpoint: BTreeMap<&str, usize> = BTreeMap::new();
    for url in assignment {
        *per_endpoint.entry(url).or_default() += 1;
    }
    for (url, n) in per_endpoint {
        println!("  {url:<20} {n:>5} users");
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut registry = Registry::new(Policy::NAME_ENDPOINT);
    for i in 1..=4 {
        registry.insert(deployment(i)?)?;
    }
    let original = registry.clone();

    // 1. Where 10,000 users land on four endpoints of equal weight.
    println!(
        "== {USERS} users over {} endpoints, consistent_hash",
        registry.len()
    );
    let before = assign(&consistent_hash(&registry))?;
    print_holdings(&before);

    // 2. Remove one endpoint. A selector is a snapshot: build a new one.
    //    Only the removed endpoint's users move; everyone else stays.
    let removed = endpoint(3);
    let key = registry
        .keys()
        .find(|k| k.to_string().ends_with(&format!("@{removed}")))
        .cloned()
        .ok_or("no such endpoint")?;
    registry.remove(&key).ok_or("not removed")?;
    println!();
    println!("== remove {removed}, rebuild the selector");
    let after = assign(&consistent_hash(&registry))?;
    print_holdings(&after);
    let held = before.iter().filter(|url| **url == removed).count();
    let moved: Vec<usize> = (0..USERS).filter(|&i| before[i] != after[i]).collect();
    let moved_from_removed = moved.iter().filter(|&&i| before[i] == removed).count();
    println!(
        "  moved: {} users ({moved_from_removed} of them from {removed}, which held {held})",
        moved.len()
    );
    println!(
        "  everyone else stayed: {} of {} users on the other endpoints kept theirs",
        USERS - held - (moved.len() - moved_from_removed),
        USERS - held
    );

    // 3. Add a fifth endpoint to the original four: about 1/5 of the users
    //    move, all of them to the new endpoint.
    let mut grown = original.clone();
    grown.insert(deployment(5)?)?;
    println!();
    println!(
        "== add {} to the original four, rebuild the selector",
        endpoint(5)
    );
    let after = assign(&consistent_hash(&grown))?;
    print_holdings(&after);
    let moved: Vec<usize> = (0..USERS).filter(|&i| before[i] != after[i]).collect();
    let to_new = moved.iter().filter(|&&i| after[i] == endpoint(5)).count();
    println!(
        "  moved: {} of {USERS} users ({:.1}%, about 1/5), {to_new} of them to the new endpoint",
        moved.len(),
        100.0 * moved.len() as f64 / USERS as f64
    );

    // 4. A hot key: 100 requests of one session in flight at once. Plain
    //    consistent hashing sends them all to its endpoint; with a bounded
    //    load factor of 1.25, an endpoint holding ceil(1.25 x (in-flight + 1) / 4)
    //    picks is skipped and the overflow goes to the next endpoints on the ring.
    for (title, strategy) in [
        ("consistent_hash", ConsistentHash::default()),
        (
            "consistent_hash, bounded load 1.25",
            ConsistentHash::with_bounded_load(1.25)?,
        ),
    ] {
        let selector = Selector::builder(&original).strategy(strategy).build();
        let hot = Request::new("gpt-4").affinity("session-hot");
        let held: Vec<Pick<'_>> = (0..HOT_PICKS)
            .map(|_| selector.select(&hot))
            .collect::<Result<_, _>>()?;
        println!();
        println!("== {HOT_PICKS} picks for one affinity key held in flight, {title}");
        for key in original.keys() {
            let in_flight = selector.in_flight(key).ok_or("unknown key")?;
            println!("  {key}  in flight {in_flight:>3}");
        }
        if let Some(factor) = strategy.bounded_load() {
            let n = original.len() as f64;
            let cap = (factor * HOT_PICKS as f64 / n).ceil();
            let most = original
                .keys()
                .filter_map(|key| selector.in_flight(key))
                .max()
                .unwrap_or(0);
            println!(
                "  most loaded: {most}; the cap for the last pick was ceil({factor} x {HOT_PICKS} / {n}) = {cap}"
            );
        }
        drop(held);
    }
    Ok(())
}
