//! `select` allocates nothing after warm-up, and neither does dropping the
//! `Pick`, for every built-in strategy: on the plain path (with an affinity
//! key for consistent hashing) and with request filters; and neither do a
//! `FleetHandle` or a `Fleet` once the handle has seen the current version.
//!
//! A counting global allocator wraps the system allocator. It counts only
//! on the thread that turned counting on, and all checks live in ONE test
//! function, so nothing else (another test, the harness) can add to the
//! counts while a region is measured.
//!
//! Implementing `GlobalAlloc` needs `unsafe`; the library itself stays
//! `#![forbid(unsafe_code)]` (in src/lib.rs). This allow requires the
//! package-wide lint in Cargo.toml to be `deny`, not `forbid`.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use modelfleet::select::{BuiltinStrategy, ConsistentHash, Latency, Load, PowerOfTwo};
use modelfleet::select::{RoundRobin, WeightedRoundRobin};
use std::time::Duration;

use modelfleet::health::{FailureKind, HealthPolicy, Report};
use modelfleet::{Deployment, Fleet, Policy, Registry, Request, Selector, VersionPreference};

/// Calls of `alloc`, `alloc_zeroed` and `realloc` on a counting thread.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// Calls of `dealloc` on a counting thread.
static DEALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted. A const-initialized
    /// `Cell` needs no allocation and no destructor, so the allocator may
    /// read it.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counters are plain atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            DEALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Heap calls `(allocations, deallocations)` made by this thread while `f` runs.
fn heap_calls<R>(f: impl FnOnce() -> R) -> ((usize, usize), R) {
    let (a, d) = (
        ALLOCS.load(Ordering::SeqCst),
        DEALLOCS.load(Ordering::SeqCst),
    );
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    let calls = (
        ALLOCS.load(Ordering::SeqCst) - a,
        DEALLOCS.load(Ordering::SeqCst) - d,
    );
    (calls, r)
}

/// Two tiers of `gpt-4` (tier 1 is never reached), mixed weights, regions,
/// versions and context windows.
fn registry() -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for i in 0..12u32 {
        reg.insert(
            Deployment::builder("openai", "gpt-4")
                .endpoint(&format!("http://n{i}.test/v1"))
                .weight(1 + i % 4)
                .priority(u32::from(i >= 10))
                .label("region", if i % 3 == 0 { "us" } else { "eu" })
                .version(if i % 2 == 0 { "1.2.0" } else { "1.4.0" })
                .context_window(if i % 5 == 0 { 4_096 } else { 32_768 })
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    reg
}

const ROUNDS: usize = 500;

/// Selects `ROUNDS` times after a warm-up, holding the picks in a vector
/// with room for all, then drops them; asserts that neither the selects
/// nor the drops touched the heap.
#[track_caller]
fn assert_no_heap(sel: &Selector, requests: &[Request], what: &str) {
    let mut held = Vec::with_capacity(ROUNDS);
    for req in requests {
        for _ in 0..16 {
            drop(sel.select(req).expect("warm-up pick"));
        }
    }
    let (calls, ()) = heap_calls(|| {
        for i in 0..ROUNDS {
            let pick = sel.select(&requests[i % requests.len()]).expect("pick");
            black_box(pick.key());
            held.push(pick);
        }
    });
    assert_eq!(
        calls,
        (0, 0),
        "{what}: heap calls (alloc, dealloc) in select"
    );
    assert_eq!(held.len(), ROUNDS);
    let (calls, ()) = heap_calls(|| held.clear());
    assert_eq!(
        calls,
        (0, 0),
        "{what}: heap calls (alloc, dealloc) dropping picks"
    );
    // And picks dropped right after selecting, the common pattern.
    let (calls, ()) = heap_calls(|| {
        for i in 0..ROUNDS {
            let pick = sel.select(&requests[i % requests.len()]).expect("pick");
            black_box(pick.deployment());
            drop(pick);
        }
    });
    assert_eq!(
        calls,
        (0, 0),
        "{what}: heap calls (alloc, dealloc) select + drop"
    );
}

#[test]
fn select_and_drop_allocate_nothing() {
    // The counter works: an allocation in a measured region is seen.
    let (calls, v) = heap_calls(|| black_box(Vec::<u64>::with_capacity(4)));
    assert_eq!(calls, (1, 0));
    let (calls, ()) = heap_calls(|| drop(v));
    assert_eq!(calls, (0, 1));

    let reg = registry();
    let users: Vec<String> = (0..8).map(|u| format!("user-{u}")).collect();
    let plain = [Request::new("gpt-4")];
    let sticky: Vec<Request> = users
        .iter()
        .map(|u| Request::new("gpt-4").affinity(u))
        .collect();
    let labelled = [Request::new("gpt-4").label("region", "eu")];
    let excluded_key = reg.keys().nth(1).unwrap().clone();
    let heavily_filtered: Vec<Request> = users
        .iter()
        .map(|u| {
            Request::new("gpt-4")
                .affinity(u)
                .provider("openai")
                .label("region", "eu")
                .version("^1".parse().unwrap())
                .version_preference(VersionPreference::Newest)
                .tokens(8_000)
                .exclude(excluded_key.clone())
        })
        .collect();
    assert!(plain[0].is_plain() && sticky.iter().all(Request::is_plain));
    assert!(!labelled[0].is_plain());

    let mut strategies = BuiltinStrategy::all().to_vec();
    strategies.push(ConsistentHash::with_bounded_load(1.25).unwrap().into());
    strategies.push(PowerOfTwo::new(Load::InFlightPerWeight).into());
    strategies.push(PowerOfTwo::new(Load::PeakEwma).into());
    strategies.push(Latency::with_buffer(0.1).unwrap().into());

    for strategy in strategies {
        let sel = Selector::builder(&reg).strategy(strategy).seed(7).build();
        // The plain path; consistent hashing gets affinity keys (without
        // one it falls back to weighted random, also checked).
        assert_no_heap(&sel, &plain, &format!("{strategy}, plain"));
        assert_no_heap(&sel, &sticky, &format!("{strategy}, plain with affinity"));
        // The filtered paths.
        assert_no_heap(&sel, &labelled, &format!("{strategy}, label filter"));
        assert_no_heap(
            &sel,
            &heavily_filtered,
            &format!("{strategy}, every filter"),
        );
    }

    // Round robin and weighted round robin with a label filter, on fresh
    // selectors (no earlier plain traffic on their cursors).
    for strategy in [
        BuiltinStrategy::from(RoundRobin),
        BuiltinStrategy::from(WeightedRoundRobin::new()),
    ] {
        let sel = Selector::with_seed(&reg, strategy, 11);
        assert_no_heap(&sel, &labelled, &format!("{strategy}, fresh, label filter"));
    }

    // Health bookkeeping: completing picks with reports (successes, every
    // failure kind, a rate limit with Retry-After that cools, server errors
    // that eject) and then selecting on the checked path allocate nothing.
    let sel = Selector::builder(&reg)
        .health(HealthPolicy::default().validated().unwrap())
        .seed(3)
        .build();
    let secs = Duration::from_secs;
    let mut kinds: Vec<FailureKind> = FailureKind::ALL.to_vec();
    kinds.push(FailureKind::rate_limited(Some(secs(5))));
    let timed: Vec<Request> = (0..kinds.len() as u64 + 8)
        .map(|t| Request::new("gpt-4").at(secs(t)))
        .collect();
    // Warm up every lazily sized structure once.
    drop(sel.select(&timed[0]).unwrap());
    let (calls, ()) = heap_calls(|| {
        for (t, kind) in kinds.iter().enumerate() {
            if let Ok(pick) = sel.select(&timed[t]) {
                pick.complete(Report::failure(secs(t as u64), *kind).tokens(100));
            }
            if let Ok(pick) = sel.select(&timed[t]) {
                pick.complete(Report::success(secs(t as u64), Duration::from_millis(40)));
            }
        }
        for request in &timed {
            if let Ok(pick) = sel.select(request) {
                drop(pick);
            }
        }
    });
    assert_eq!(
        calls,
        (0, 0),
        "heap calls (alloc, dealloc) with health reports"
    );

    // A fleet handle, once it has made its handle of the current version:
    // select, hold, drop; and the fleet's own select.
    let fleet = Fleet::new(reg.clone(), |b| {
        b.strategy(WeightedRoundRobin::new()).seed(5)
    });
    let handle = fleet.handle();
    drop(handle.select(&plain[0]).unwrap());
    drop(fleet.select(&plain[0]).unwrap());
    let mut held = Vec::with_capacity(ROUNDS);
    let (calls, ()) = heap_calls(|| {
        for i in 0..ROUNDS {
            let request = if i % 2 == 0 { &plain[0] } else { &labelled[0] };
            held.push(handle.select(request).unwrap());
            drop(fleet.select(request).unwrap());
        }
        held.clear();
    });
    assert_eq!(calls, (0, 0), "heap calls (alloc, dealloc) on a fleet");
}
