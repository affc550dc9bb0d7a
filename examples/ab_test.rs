//! An A/B test of two `gpt-4` arms: `control` takes 90% of the traffic and
//! `candidate` 10%, each on its own endpoint, keyed by name + tag.
//!
//! Shows the exact split of weighted round robin, the approximate split of
//! seeded weighted random, routing a request to one arm by its tag, and
//! keeping each user on one arm with consistent hashing.
//!
//! ```text
//! cargo run --example ab_test
//! ```

use std::error::Error;

use modelfleet::select::{ConsistentHash, WeightedRandom, WeightedRoundRobin};
use modelfleet::{Deployment, Policy, Registry, Request, Selector};

/// The arms of the test: tag, endpoint, weight.
const ARMS: [(&str, &str, u32); 2] = [
    ("control", "http://10.0.0.1/v1", 90),
    ("candidate", "http://10.0.0.2/v1", 10),
];

/// Requests sent through each strategy.
const REQUESTS: usize = 1_000;

/// The arm (index into [`ARMS`]) one request is routed to.
fn arm(selector: &Selector, request: &Request) -> Result<usize, Box<dyn Error>> {
    let pick = selector.select(request)?;
    let tag = pick.deployment().tag();
    Ok(ARMS
        .iter()
        .position(|(t, _, _)| Some(*t) == tag)
        .ok_or("a pick outside the two arms")?)
}

/// Counts, per arm, the picks of `n` requests.
fn split(selector: &Selector, request: &Request, n: usize) -> Result<[usize; 2], Box<dyn Error>> {
    let mut counts = [0; 2];
    for _ in 0..n {
        counts[arm(selector, request)?] += 1;
    }
    Ok(counts)
}

fn print_split(counts: [usize; 2]) {
    let total: usize = counts.iter().sum();
    for ((tag, _, weight), n) in ARMS.iter().zip(counts) {
        println!(
            "  {tag:<9} (weight {weight:>2}): {n:>4} of {total} ({:.1}%)",
            100.0 * n as f64 / total as f64
        );
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut registry = Registry::new(Policy::NAME_TAG);
    for (tag, endpoint, weight) in ARMS {
        registry.insert(
            Deployment::builder("openai-api-compatible", "gpt-4")
                .tag(tag)
                .endpoint(endpoint)
                .weight(weight)
                .build()?,
        )?;
    }
    println!("== policy {}: {} arms", registry.policy(), registry.len());
    for (key, deployment) in &registry {
        println!("  {key} (weight {})", deployment.weight());
    }

    let request = Request::new("gpt-4");

    // 1. Weighted round robin: every 100 consecutive picks hold exactly 90
    //    control and 10 candidate, so 1,000 picks split exactly 900/100.
    println!();
    println!("== {REQUESTS} requests, weighted_round_robin");
    let wrr = Selector::builder(&registry)
        .strategy(WeightedRoundRobin::new())
        .build();
    let counts = split(&wrr, &request, REQUESTS)?;
    print_split(counts);
    println!("  exact 900/100: {}", counts == [900, 100]);

    // 2. Weighted random: independent draws, about 90/10; the seed fixes them.
    println!();
    println!("== {REQUESTS} requests, weighted_random (seed 7)");
    let random = Selector::builder(&registry)
        .strategy(WeightedRandom::new())
        .seed(7)
        .build();
    let counts = split(&random, &request, REQUESTS)?;
    print_split(counts);
    let again = Selector::builder(&registry)
        .strategy(WeightedRandom::new())
        .seed(7)
        .build();
    println!(
        "  a second selector with seed 7 gives the same split: {}",
        split(&again, &request, REQUESTS)? == counts
    );

    // 3. A request for one arm: the tag filter removes the other arm, whatever
    //    the weights say.
    println!();
    println!("== Request::tag(\"candidate\"), weighted_round_robin");
    let tagged = Request::new("gpt-4").tag("candidate");
    print_split(split(&wrr, &tagged, 20)?);
    let pick = wrr.select(&tagged)?;
    println!("  picked {}", pick.deployment());
    drop(pick);

    // 4. Sticky arms: with consistent hashing, a user's affinity key always
    //    lands on the same arm, and the users as a whole split about 90/10.
    println!();
    println!("== Request::affinity(user), consistent_hash");
    let sticky = Selector::builder(&registry)
        .strategy(ConsistentHash::default())
        .build();
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        let req = Request::new("gpt-4").affinity(user);
        let counts = split(&sticky, &req, 50)?;
        let (tag, _, _) = ARMS[arm(&sticky, &req)?];
        if counts.contains(&50) {
            println!("  {user:<6} -> {tag} (all 50 of its requests)");
        } else {
            return Err(format!("{user} moved between arms: {counts:?}").into());
        }
    }
    let mut users = [0; 2];
    for i in 0..10_000 {
        users[arm(
            &sticky,
            &Request::new("gpt-4").affinity(&format!("user-{i}")),
        )?] += 1;
    }
    println!("  10,000 users by arm:");
    print_split(users);
    Ok(())
}
