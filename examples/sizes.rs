//! Memory per deployment in a [`Registry`], estimated from type sizes and the
//! heap strings of a typical deployment, and checked against the live heap
//! (bytes allocated and not freed, counted by a wrapping allocator) and, on
//! Linux, the growth of the resident set while 100,000 deployments are
//! added; then the same two measures for a [`Selector`] (its slots, live
//! state and tables; it shares the registry's keys and deployments) built
//! over them.
//!
//! ```text
//! cargo run --release --example sizes
//! ```
//!
//! The allocator wrapper needs `unsafe`; the library itself stays
//! `#![forbid(unsafe_code)]` (in src/lib.rs).

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use modelfleet::select::WeightedRoundRobin;
use modelfleet::{Deployment, IdentityPolicy, ModelKey, Policy, Registry, Selector};

/// Deployments added for the resident-set check.
const N: usize = 100_000;

/// Bytes allocated and not yet freed, as requested (not as the allocator
/// rounds them).
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Allocations not yet freed.
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting what is live.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        BLOCKS.fetch_add(1, Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        BLOCKS.fetch_sub(1, Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live heap bytes and allocations.
fn live() -> (usize, usize) {
    (LIVE.load(Relaxed), BLOCKS.load(Relaxed))
}

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

    // Cross-check: how much the live heap and the resident set grow while N
    // deployments are built and added to an empty registry (temporary
    // strings are freed and reused on the way, so only what the registry
    // keeps is counted).
    let (heap_before, blocks_before) = live();
    let rss_before = rss();
    let mut registry = Registry::new(policy);
    for i in 0..N {
        registry.insert(deployment(i)?)?;
    }
    let (heap_after, blocks_after) = live();
    let rss_after = rss();
    // The selector over the same registry: it shares each key and
    // deployment, and adds its slots, the per-deployment live state (cache
    // lines of atomics, shared across versions), tiers and tables.
    let selector = Selector::new(&registry, WeightedRoundRobin::new());
    let (heap_selector, blocks_selector) = live();
    let rss_selector = rss();
    let per = |bytes: usize| bytes as f64 / N as f64;
    println!();
    println!(
        "measured: registry live heap {:.0} bytes per deployment in {:.2} allocations ({N} deployments)",
        per(heap_after.saturating_sub(heap_before)),
        per(blocks_after.saturating_sub(blocks_before)),
    );
    println!(
        "measured: selector live heap {:.0} bytes per deployment in {:.2} allocations, in addition",
        per(heap_selector.saturating_sub(heap_after)),
        per(blocks_selector.saturating_sub(blocks_after)),
    );
    match (rss_before, rss_after, rss_selector) {
        (Some(before), Some(after), Some(with_selector)) => {
            println!(
                "measured: resident set grew {:.0} bytes per deployment with the registry, {:.0} more with the selector",
                per(after.saturating_sub(before)),
                per(with_selector.saturating_sub(after)),
            );
        }
        _ => println!("(no /proc/self/statm here: resident set not measured)"),
    }
    drop(selector);
    Ok(())
}
