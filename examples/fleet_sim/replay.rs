//! Replaying checked events against a [`Fleet`] and writing one JSON object
//! per line: the deployment that served each request (its key, endpoint,
//! tag and version) or why none could, registry changes, and an optional
//! traffic summary.

use modelfleet::health::Report;
use modelfleet::{Deployment, Error, Explanation, Fleet, OwnedPick};
use serde::Serialize;

use super::Options;
use super::events::{Action, Event};
use super::load::Loaded;

#[derive(Serialize)]
struct Picked<'a> {
    request: usize,
    key: String,
    /// Where the request would go, whatever the key keeps of it: under a
    /// coarse identity (`name`) the key names no endpoint. Always present
    /// (`null` when the deployment has none), so that every served line has
    /// the same fields in the same order.
    endpoint: Option<String>,
    tag: Option<&'a str>,
    version: Option<String>,
    tier: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Explain>,
}

#[derive(Serialize)]
struct Refused {
    request: usize,
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Explain>,
}

#[derive(Serialize)]
struct Explain {
    tier: Option<u32>,
    candidates: Vec<Verdict>,
}

#[derive(Serialize)]
struct Verdict {
    key: String,
    tier: u32,
    in_flight: u32,
    verdict: &'static str,
}

#[derive(Serialize)]
struct ReplacedLine {
    replaced: String,
    earlier: usize,
    later: usize,
}

#[derive(Serialize)]
struct NoteLine {
    complete: usize,
    note: String,
}

#[derive(Serialize)]
struct UpsertLine {
    upsert: String,
    new: bool,
}

#[derive(Serialize)]
struct RemoveLine {
    remove: String,
}

#[derive(Serialize)]
struct SummaryLine {
    summary: Summary,
}

#[derive(Serialize)]
struct Summary {
    requests: usize,
    served: usize,
    failed: usize,
    in_flight: usize,
    share: Vec<Share>,
}

#[derive(Serialize)]
struct Share {
    key: String,
    picks: u64,
    percent: f64,
}

fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::UnknownModel { .. } => "unknown_model",
        Error::NoEligible { .. } => "no_eligible",
        Error::Unavailable { .. } => "unavailable",
        _ => "error",
    }
}

/// Each candidate's verdict: the filter that removed it, `candidate` in the
/// tier a pick comes from, or `standby` when a lower tier has candidates.
fn explain(why: &Explanation) -> Explain {
    let candidates = why
        .candidates()
        .iter()
        .map(|v| Verdict {
            key: v.key().to_string(),
            tier: v.priority(),
            in_flight: v.in_flight(),
            verdict: match (v.removed(), why.tier()) {
                (Some(r), _) => r.as_str(),
                (None, Some(t)) if t == v.priority() => "candidate",
                (None, _) => "standby",
            },
        })
        .collect();
    Explain {
        tier: why.tier(),
        candidates,
    }
}

/// The endpoint as printed: without user, password, query or fragment,
/// though a fleet file cannot give an endpoint any of them.
fn endpoint(d: &Deployment) -> Option<String> {
    d.endpoint().map(|url| {
        let mut url = url.clone();
        // Only fails for URLs that cannot have a user (no host), which then
        // have none to remove.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        url.to_string()
    })
}

fn line(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Replays checked events; returns the output lines.
///
/// Requests are served by a [`Fleet`] with the file's settings; a request
/// stays in flight until its completion event (or the end). Registry changes
/// install a new version, which keeps the live state of every deployment
/// that stays.
pub(crate) fn replay(loaded: &Loaded, events: &[Event], options: Options) -> Vec<String> {
    let built = &loaded.fleet;
    let mut out = Vec::new();
    for r in &built.replaced {
        out.push(line(&ReplacedLine {
            replaced: r.key.to_string(),
            earlier: r.earlier,
            later: r.later,
        }));
    }
    let fleet: Fleet = built.fleet();
    let mut registry = built.registry.clone();
    let mut held: Vec<Option<OwnedPick>> = Vec::new();
    let mut failed = 0usize;
    // Key → picks, in order of first pick.
    let mut share: Vec<(String, u64)> = Vec::new();
    for event in events {
        match &event.action {
            Action::Request(spec) => {
                let n = held.len();
                let primary = spec.request(&spec.model, event.at);
                let explain = options
                    .explain
                    .then(|| fleet.selector().explain(&primary).ok())
                    .flatten()
                    .map(|why| explain(&why));
                let mut result = fleet.select(&primary).map(|p| (p, None));
                if result.is_err() {
                    for model in &spec.fallbacks {
                        if let Ok(p) = fleet.select(&spec.request(model, event.at)) {
                            result = Ok((p, Some(model.as_str())));
                            break;
                        }
                    }
                }
                match result {
                    Ok((pick, fallback)) => {
                        let key = pick.key().to_string();
                        let d = pick.deployment();
                        match share.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, count)) => *count += 1,
                            None => share.push((key.clone(), 1)),
                        }
                        out.push(line(&Picked {
                            request: n,
                            key,
                            endpoint: endpoint(d),
                            tag: d.tag(),
                            version: d.version().map(ToString::to_string),
                            tier: pick.priority(),
                            fallback,
                            explain,
                        }));
                        held.push(Some(pick));
                    }
                    Err(e) => {
                        failed += 1;
                        let retry_at_ms = match &e {
                            Error::Unavailable { retry_at, .. } => {
                                retry_at.map(|t| t.as_millis() as u64)
                            }
                            _ => None,
                        };
                        out.push(line(&Refused {
                            request: n,
                            error: error_kind(&e),
                            message: e.to_string(),
                            retry_at_ms,
                            explain,
                        }));
                        held.push(None);
                    }
                }
            }
            Action::Complete {
                request,
                outcome,
                tokens,
            } => match held.get_mut(*request).and_then(Option::take) {
                Some(pick) => pick.complete(Report::new(event.at, *outcome).tokens(*tokens)),
                None => out.push(line(&NoteLine {
                    complete: *request,
                    note: format!("request {request} was not served: nothing to complete"),
                })),
            },
            Action::Upsert(d) => {
                let key = registry.key_of(d);
                let new = registry.upsert((**d).clone()).is_none();
                fleet.install(registry.clone(), event.at);
                out.push(line(&UpsertLine {
                    upsert: key.to_string(),
                    new,
                }));
            }
            Action::Remove(key) => {
                registry.remove(key);
                fleet.install(registry.clone(), event.at);
                out.push(line(&RemoveLine {
                    remove: key.to_string(),
                }));
            }
        }
    }
    if options.summary {
        let requests = held.len();
        let served = requests - failed;
        let in_flight = held.iter().filter(|p| p.is_some()).count();
        let share = share
            .into_iter()
            .map(|(key, picks)| Share {
                percent: (picks as f64 * 1000.0 / served.max(1) as f64).round() / 10.0,
                key,
                picks,
            })
            .collect();
        out.push(line(&SummaryLine {
            summary: Summary {
                requests,
                served,
                failed,
                in_flight,
                share,
            },
        }));
    }
    drop(held);
    out
}
