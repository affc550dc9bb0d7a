//! Memory per deployment in a [`Registry`], estimated from type sizes and the
//! heap strings of a typical deployment, and, on Linux, checked against the
//! growth of the resident set while 100,000 deployments are added; then the
//! growth when a [`Selector`] (its copy of the deployments plus their live
//! state) is built over them.
//!
//! ```text
//! cargo run --release --example sizes
//! ```

use std::error::Error;
use std::mem::size_of;

use modelfleet::select::WeightedRoundRobin;
use modelfleet::{Deployment, IdentityPolicy, ModelKey, Policy, Registry, Selector};

/// Deployments added for the resident-set check.
const N: usize = 100_000;

/// A heap allocation of `len` bytes as glibc's malloc lays it out: 8 bytes of
/// header, rounded up to 16 bytes, at least 32. Empty strings do not allocate.
fn malloc_chunk(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len + 8).div_ceil(16).max(2) * 16
    }
}

/// One deployment of the 100k fleet: distinct endpoints, one model.
fn deployment(i: usize) -> Result<Deployment, Box<dyn Error>> {
    Ok(Deployment::builder("openai-api-compatible", "gpt-4")
        .endpoint(&format!(
            "http://10.{}.{}.{}/v1",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        ))
        .build()?)
}

/// The strings a key holds on the heap: provider, model, endpoint URL.
fn key_strings(key: &ModelKey) -> [usize; 3] {
    let endpoint = match key.endpoint() {
        modelfleet::Discriminator::Present(url) => url.as_str().len(),
        _ => 0,
    };
    [key.provider().len(), key.model().len(), endpoint]
}

/// The resident set size of this process in bytes (Linux only).
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() -> Result<(), Box<dyn Error>> {
    let policy = Policy::NAME_ENDPOINT;
    let d = deployment(1)?;
    let key = policy.key(&d);

    let deployment_inline = size_of::<Deployment>();
    let key_inline = size_of::<ModelKey>();
    println!("size_of::<Deployment>() = {deployment_inline} bytes");
    println!("size_of::<ModelKey>()   = {key_inline} bytes");
    println!("typical deployment: {d} (policy {policy})");

    // A registry entry: the IndexMap bucket (hash + two pointers: the key
    // and the deployment are shared behind `Arc`s) and its slot in the hash
    // table (8-byte index + 1 control byte, at most 7/8 full), plus the
    // per-model index: another bucket (hash + key pointer) and slot.
    let ptr = size_of::<usize>();
    let slot = (ptr + 1) * 8 / 7;
    let inline = (ptr + 2 * ptr + slot) + (ptr + ptr + slot);

    // Heap: the two `Arc` allocations (two counters + the value), and the
    // strings: the deployment's provider, model and endpoint, and the same
    // three in its key (stored once, shared by both maps).
    let arcs = malloc_chunk(2 * ptr + key_inline) + malloc_chunk(2 * ptr + deployment_inline);
    let endpoint_len = d.endpoint().map_or(0, |u| u.as_str().len());
    let deployment_strings = [d.provider().len(), d.model().len(), endpoint_len];
    let strings: Vec<usize> = deployment_strings
        .into_iter()
        .chain(key_strings(&key))
        .collect();
    let heap_bytes: usize = strings.iter().sum();
    let heap_malloc: usize = strings.iter().map(|&n| malloc_chunk(n)).sum::<usize>() + arcs;

    println!();
    println!("estimate per deployment under {policy}:");
    println!("  inline (map buckets + hash slots): {inline} bytes");
    println!(
        "  heap: the key and deployment allocations ({arcs} bytes) and {heap_bytes} bytes of strings in {} allocations; {heap_malloc} bytes as glibc malloc chunks",
        strings.iter().filter(|&&n| n > 0).count()
    );
    println!(
        "  total: {} bytes (at full capacity; growth by doubling leaves up to 2x inline slack)",
        inline + heap_malloc
    );

    // Cross-check: how much the resident set grows while N deployments are
    // built and added to an empty registry (temporary strings are freed and
    // reused on the way, so only what the registry keeps is counted).
    match rss() {
        Some(before) => {
            let mut registry = Registry::new(policy);
            for i in 0..N {
                registry.insert(deployment(i)?)?;
            }
            let after = rss().unwrap_or(before);
            println!();
            println!(
                "measured: resident set grew {} bytes per deployment over {} deployments",
                after.saturating_sub(before) / registry.len(),
                registry.len()
            );
            // The selector over the same registry: its own copy of each
            // deployment and key, the per-deployment live state (one cache
            // line of atomics, shared across versions), tiers and tables.
            let selector = Selector::new(&registry, WeightedRoundRobin);
            let with_selector = rss().unwrap_or(after);
            println!(
                "measured: a selector over it grew the resident set {} bytes per deployment ({} deployments)",
                with_selector.saturating_sub(after) / selector.len(),
                selector.len()
            );
        }
        None => println!("(no /proc/self/statm here: resident set not measured)"),
    }
    Ok(())
}
