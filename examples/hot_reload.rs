//! Hot reload: a live `Fleet` keeps serving picks from worker threads while
//! the control plane drains one node and adds another.
//!
//! Three worker threads, each with its own `FleetHandle`, pick `gpt-4`
//! deployments in three phases (before, during and after the reload), kept
//! in step with a `Barrier`. Between the first two barriers the main thread
//! installs the new registry version while the workers are picking. The
//! program prints the traffic split of each phase and the changes `install`
//! returned.
//!
//! Run with `cargo run --example hot_reload`.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use modelfleet::select::WeightedRoundRobin;
use modelfleet::{Change, Deployment, Fleet, Policy, Registry, Request};

const WORKERS: usize = 3;
/// Picks per worker and phase.
const PICKS: usize = 4_000;
const PHASES: [&str; 3] = ["before", "during", "after"];

fn node(ip: &str, weight: u32) -> Result<Deployment, modelfleet::Error> {
    Deployment::builder("openai-api-compatible", "gpt-4")
        .endpoint(&format!("http://{ip}/v1"))
        .weight(weight)
        .build()
}

/// Picks per deployment (its endpoint, for short lines).
type Split = BTreeMap<String, usize>;

/// Prints one phase's picks per endpoint, listing every endpoint of either
/// version (a drained node shows 0).
fn print_split(phase: &str, note: &str, endpoints: &[String], split: &Split) {
    let total: usize = split.values().sum();
    println!("{phase} ({total} picks{note}):");
    for endpoint in endpoints {
        let n = split.get(endpoint).copied().unwrap_or(0);
        let share = 100.0 * n as f64 / total as f64;
        let bar = "#".repeat((share / 2.5).round() as usize);
        let line = format!("  {endpoint:<22} {n:>6}  {share:5.1}%  {bar}");
        println!("{}", line.trim_end());
    }
}

fn main() -> Result<(), modelfleet::Error> {
    // Version 1: three nodes keyed by name + endpoint, weights 2:1:1.
    let mut registry = Registry::new(Policy::NAME_ENDPOINT);
    registry.insert(node("10.0.0.1", 2)?)?;
    registry.insert(node("10.0.0.2", 1)?)?;
    registry.insert(node("10.0.0.3", 1)?)?;
    let fleet = Fleet::new(registry.clone(), |b| b.strategy(WeightedRoundRobin::new()));
    println!(
        "serving {} deployments of gpt-4 with {}, {WORKERS} workers",
        registry.len(),
        fleet.selector().strategy_name()
    );

    // Version 2: 10.0.0.2 drained (weight 0: kept, no new traffic), 10.0.0.4 added.
    let mut next = registry.clone();
    next.upsert(node("10.0.0.2", 0)?);
    next.insert(node("10.0.0.4", 1)?)?;

    // Phase boundaries: every worker and the main thread meet here.
    let barrier = Barrier::new(WORKERS + 1);
    let request = Request::new("gpt-4");

    let (splits, changes) = thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (fleet, barrier, request) = (&fleet, &barrier, &request);
                scope.spawn(move || {
                    let handle = fleet.handle();
                    let mut splits = vec![Split::new(); PHASES.len()];
                    for split in &mut splits {
                        barrier.wait(); // phase starts
                        for i in 0..PICKS {
                            let pick = handle.select(request).expect("gpt-4 is served");
                            let endpoint = pick.deployment().endpoint().map(|u| u.to_string());
                            *split.entry(endpoint.unwrap_or_default()).or_default() += 1;
                            // Report the outcome: feeds the latency estimate.
                            pick.succeed(
                                Duration::from_millis(i as u64),
                                Duration::from_millis(40),
                            );
                        }
                    }
                    splits
                })
            })
            .collect();

        barrier.wait(); // "before" starts
        barrier.wait(); // "during" starts: reload while the workers pick
        let changes = fleet.install(next.clone(), Duration::from_secs(1));
        barrier.wait(); // "after" starts

        let mut total = vec![Split::new(); PHASES.len()];
        for worker in workers {
            let splits = worker.join().expect("worker panicked");
            for (sum, split) in total.iter_mut().zip(splits) {
                for (endpoint, n) in split {
                    *sum.entry(endpoint).or_default() += n;
                }
            }
        }
        (total, changes)
    });

    let mut endpoints: Vec<String> = registry
        .deployments()
        .chain(next.deployments())
        .filter_map(|d| d.endpoint().map(|u| u.to_string()))
        .collect();
    endpoints.sort();
    endpoints.dedup();

    println!();
    print_split(PHASES[0], "", &endpoints, &splits[0]);
    println!("\ninstall returned {} change(s):", changes.len());
    for change in &changes {
        match change {
            Change::Updated { before, after, .. } => println!(
                "  {change}  (weight {} -> {}{})",
                before.weight(),
                after.weight(),
                if after.weight() == 0 { ", drained" } else { "" }
            ),
            _ => println!("  {change}"),
        }
    }
    println!();
    let racing = ", racing the install: this split varies from run to run";
    print_split(PHASES[1], racing, &endpoints, &splits[1]);
    println!();
    print_split(PHASES[2], "", &endpoints, &splits[2]);

    // The drained node gets no new traffic, and nothing is left in flight.
    assert!(!splits[2].contains_key("http://10.0.0.2/v1"));
    let selector = fleet.selector();
    for key in fleet.registry().keys() {
        assert_eq!(selector.in_flight(key), Some(0));
    }
    Ok(())
}
