//! A canary release keyed by name + version: `gpt-4` 1.4.0 serves most of
//! the traffic, 1.5.0 takes a 5% canary share, and 2.0.0 is deployed with a
//! small weight but not yet meant for clients pinned to 1.x.
//!
//! Shows a version requirement keeping traffic on 1.x, `Newest` sending
//! everything to the highest matching version, the per-candidate reasons of
//! `explain`, and rolling the canary back by draining it (weight 0).
//!
//! ```text
//! cargo run --example canary_by_version
//! ```

use std::error::Error;

use modelfleet::select::WeightedRoundRobin;
use modelfleet::{Deployment, Policy, Registry, Request, Selector, VersionPreference};

/// Requests sent for each split.
const REQUESTS: usize = 1_000;

/// The deployments: version, endpoint, weight. All in priority tier 0.
const RELEASES: [(&str, &str, u32); 3] = [
    ("1.4.0", "http://10.0.1.1/v1", 95),
    ("1.5.0", "http://10.0.1.2/v1", 5),
    ("2.0.0", "http://10.0.1.3/v1", 1),
];

fn deployment(version: &str, endpoint: &str, weight: u32) -> Result<Deployment, Box<dyn Error>> {
    Ok(Deployment::builder("openai-api-compatible", "gpt-4")
        .version(version)
        .endpoint(endpoint)
        .weight(weight)
        .priority(0)
        .build()?)
}

/// Sends `n` requests and prints how many went to each version.
fn print_split(
    title: &str,
    selector: &Selector,
    request: &Request,
    n: usize,
) -> Result<(), Box<dyn Error>> {
    let mut counts = [0usize; RELEASES.len()];
    for _ in 0..n {
        let pick = selector.select(request)?;
        let version = pick
            .deployment()
            .version()
            .map(ToString::to_string)
            .unwrap_or_default();
        let i = RELEASES
            .iter()
            .position(|(v, _, _)| *v == version)
            .ok_or("a pick of an unknown version")?;
        counts[i] += 1;
    }
    println!("== {title}: {n} requests");
    for ((version, _, _), count) in RELEASES.iter().zip(counts) {
        println!(
            "  {version:<6} {count:>4} ({:.1}%)",
            100.0 * count as f64 / n as f64
        );
    }
    println!();
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut registry = Registry::new(Policy::NAME_VERSION);
    for (version, endpoint, weight) in RELEASES {
        registry.insert(deployment(version, endpoint, weight)?)?;
    }
    println!("== policy {}", registry.policy());
    for d in registry.deployments() {
        println!("  {d} (weight {})", d.weight());
    }
    println!();

    let selector = Selector::builder(&registry)
        .strategy(WeightedRoundRobin::new())
        .build();

    // No requirement: every version is a candidate, 2.0.0 included.
    print_split(
        "no version requirement",
        &selector,
        &Request::new("gpt-4"),
        REQUESTS,
    )?;

    // `^1` removes 2.0.0: 1.4.0 and 1.5.0 share the traffic 95/5.
    let pinned = Request::new("gpt-4").version("^1".parse()?);
    print_split("version ^1", &selector, &pinned, REQUESTS)?;

    // `Newest` keeps only the highest version matching `^1`: 1.5.0.
    let newest = pinned.clone().version_preference(VersionPreference::Newest);
    print_split("version ^1, Newest", &selector, &newest, REQUESTS)?;

    println!("== explain(version ^1, Newest)");
    print!("{}", selector.explain(&newest)?);
    println!();

    // Roll the canary back: upsert 1.5.0 again with weight 0. Under
    // name+version it has the same key, so it is replaced in place; a
    // selector is a snapshot, so build a new one from the updated registry.
    let canary = registry
        .deployments()
        .find(|d| d.version() == Some(&semver::Version::new(1, 5, 0)))
        .ok_or("no 1.5.0 deployment")?;
    let drained = canary.to_builder().weight(0).build()?;
    let previous = registry.upsert(drained).ok_or("1.5.0 was not replaced")?;
    println!(
        "== rollback: upsert 1.5.0 with weight 0 (was weight {}); {} deployments",
        previous.weight(),
        registry.len()
    );
    let selector = Selector::builder(&registry)
        .strategy(WeightedRoundRobin::new())
        .build();
    println!();
    print_split("after rollback, version ^1", &selector, &pinned, REQUESTS)?;
    print_split(
        "after rollback, version ^1, Newest",
        &selector,
        &newest,
        REQUESTS,
    )?;

    println!("== explain(version ^1, Newest) after rollback");
    print!("{}", selector.explain(&newest)?);
    Ok(())
}
