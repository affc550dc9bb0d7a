//! Fixtures shared by the integration tests: times, `openai/gpt-4` nodes
//! on `http://{ip}/v1` with their keys under `name+endpoint`, registries of
//! them, and the optional parts of a generated deployment.

// Each test binary compiles this module on its own and uses only some of
// it; the rest would warn as dead code in that binary.
#![allow(dead_code)]

use std::time::Duration;

use modelfleet::{Deployment, DeploymentBuilder, ModelKey, Policy, Registry, Request, Selector};

/// `n` seconds.
pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `n` milliseconds.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `openai/gpt-4` at `http://{ip}/v1`, with every other setting default.
#[track_caller]
pub(crate) fn node(ip: &str) -> Deployment {
    Deployment::builder("openai", "gpt-4")
        .endpoint(&format!("http://{ip}/v1"))
        .build()
        .unwrap()
}

/// [`node`] in priority tier `priority`.
#[track_caller]
pub(crate) fn node_at(ip: &str, priority: u32) -> Deployment {
    Deployment::builder("openai", "gpt-4")
        .endpoint(&format!("http://{ip}/v1"))
        .priority(priority)
        .build()
        .unwrap()
}

/// The key of a [`node`] under `name+endpoint`.
#[track_caller]
pub(crate) fn key(ip: &str) -> ModelKey {
    format!("openai/gpt-4@http://{ip}/v1").parse().unwrap()
}

/// `nodes` under `name+endpoint`, in order.
#[track_caller]
pub(crate) fn registry(nodes: &[Deployment]) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for d in nodes {
        reg.insert(d.clone()).unwrap();
    }
    reg
}

/// Deployments of `model` at `http://n0.test/v1`, `http://n1.test/v1`, …
/// with these weights, under `name+endpoint`.
#[track_caller]
pub(crate) fn weighted(model: &str, weights: &[u32]) -> Registry {
    let mut reg = Registry::new(Policy::NAME_ENDPOINT);
    for (i, w) in weights.iter().enumerate() {
        reg.insert(
            Deployment::builder("openai", model)
                .endpoint(&format!("http://n{i}.test/v1"))
                .weight(*w)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    reg
}

/// `b` with the endpoint, tag and version that are given.
pub(crate) fn with_parts(
    mut b: DeploymentBuilder,
    endpoint: Option<&str>,
    tag: Option<&str>,
    version: Option<&str>,
) -> DeploymentBuilder {
    if let Some(e) = endpoint {
        b = b.endpoint(e);
    }
    if let Some(t) = tag {
        b = b.tag(t);
    }
    if let Some(v) = version {
        b = b.version(v);
    }
    b
}

/// `text` with `{kinds}` and `{strategies}` replaced by the lists an
/// "expected one of" message gives: every failure kind's name and every
/// built-in strategy's, in table order. Pinned messages name the lists
/// this way so that a new kind or strategy changes one table, not every
/// test that quotes it.
pub(crate) fn names(text: &str) -> String {
    let kinds: Vec<&str> = modelfleet::health::FailureKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let strategies: Vec<String> = modelfleet::select::BuiltinStrategy::all()
        .iter()
        .map(ToString::to_string)
        .collect();
    text.replace("{kinds}", &kinds.join(", "))
        .replace("{strategies}", &strategies.join(", "))
}

/// Every General_Category Cf code point of Unicode 16.0, listed range by
/// range from the standard (independently of the crate's table).
pub(crate) fn format_chars() -> Vec<char> {
    let ranges: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    ranges
        .iter()
        .flat_map(|&(lo, hi)| (lo..=hi).filter_map(char::from_u32))
        .collect()
}

/// What a name may not hold: every Cf character and the two separators.
pub(crate) fn refused_in_names() -> Vec<char> {
    let mut all = format_chars();
    all.extend(['\u{2028}', '\u{2029}']);
    all
}

/// The key `s` picks for a `gpt-4` request at `t`; panics with the error.
#[track_caller]
pub(crate) fn pick_key(s: &Selector, t: Duration) -> ModelKey {
    s.select(&Request::new("gpt-4").at(t))
        .unwrap_or_else(|e| panic!("at {t:?}: {e}"))
        .key()
        .clone()
}
