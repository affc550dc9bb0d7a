//! The events file: JSON lines of requests, their completions and registry
//! changes, checked whole (every line, against the fleet as the earlier
//! lines leave it) before anything is replayed.

use std::collections::HashMap;
use std::time::Duration;

use modelfleet::config::{BuiltFleet, DeploymentEntry};
use modelfleet::health::{FailureKind, Outcome};
use modelfleet::{ModelKey, Policy, Registry, Request, TagMatch, VersionPreference};
use semver::VersionReq;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Failure;
use super::load::Loaded;

/// One checked event.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Its time.
    pub(crate) at: Duration,
    /// What happens.
    pub(crate) action: Action,
}

/// What an event does.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// A request; its number counts request events from 0.
    Request(Box<RequestSpec>),
    /// The completion of request `request`.
    Complete {
        /// The request's number.
        request: usize,
        /// How it ended.
        outcome: Outcome,
        /// Tokens it used.
        tokens: u64,
    },
    /// A deployment added or replaced (under the fleet's policy).
    Upsert(Box<modelfleet::Deployment>),
    /// A deployment removed.
    Remove(ModelKey),
}

/// A request event, checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestSpec {
    /// The model asked for.
    pub(crate) model: String,
    provider: Option<String>,
    labels: Vec<(String, String)>,
    tags: Vec<String>,
    tag_match: TagMatch,
    version: Option<VersionReq>,
    newest: bool,
    affinity: Option<String>,
    tokens: Option<u32>,
    exclude: Vec<ModelKey>,
    /// Explicit, or else the fleet's for the model.
    pub(crate) fallbacks: Vec<String>,
}

impl RequestSpec {
    /// The request for `model` (the one asked for or a fallback) at `at`.
    pub(crate) fn request(&self, model: &str, at: Duration) -> Request {
        let mut r = Request::new(model).at(at).tag_match(self.tag_match);
        if let Some(p) = &self.provider {
            r = r.provider(p);
        }
        for (k, v) in &self.labels {
            r = r.label(k, v);
        }
        for t in &self.tags {
            r = r.tag(t);
        }
        if let Some(v) = &self.version {
            r = r.version(v.clone());
        }
        if self.newest {
            r = r.version_preference(VersionPreference::Newest);
        }
        if let Some(a) = &self.affinity {
            r = r.affinity(a);
        }
        if let Some(t) = self.tokens {
            r = r.tokens(t);
        }
        for k in &self.exclude {
            r = r.exclude(k.clone());
        }
        r
    }
}

const EVENT_FIELDS: &str =
    "at_ms, request, complete, outcome, latency_ms, retry_after_ms, tokens, upsert, remove";
const REQUEST_FIELDS: &str = "model, provider, labels, tags, tag_match, version, newest, affinity, tokens, exclude, fallbacks";

/// Every outcome name: `success`, then every failure kind's.
fn outcomes() -> String {
    let kinds = FailureKind::ALL.iter().map(|k| k.as_str());
    std::iter::once("success")
        .chain(kinds)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Problems of one line: `(place, problem)`.
type LineErrors = Vec<(String, String)>;

/// One field of an object, deserialized; a problem names the field.
fn field<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    key: &str,
    place: &str,
    errs: &mut LineErrors,
) -> Option<T> {
    let v = obj.get(key)?;
    match T::deserialize(v) {
        Ok(t) => Some(t),
        Err(e) => {
            errs.push((place.to_owned(), e.to_string()));
            None
        }
    }
}

/// Reads and checks a whole events file (JSON lines; blank lines are
/// skipped) before anything is replayed. Every problem is reported as
/// `file:line: place: problem`.
pub(crate) fn parse_events(name: &str, text: &str, loaded: &Loaded) -> Result<Vec<Event>, Failure> {
    let mut problems = Vec::new();
    let mut events = Vec::new();
    let mut registry = loaded.fleet.registry.clone();
    let mut requests = 0usize;
    // Request number → line of its completion.
    let mut completed: HashMap<usize, usize> = HashMap::new();
    let mut last: Option<(u64, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let mut errs: LineErrors = Vec::new();
        let event = parse_event(
            raw,
            line,
            &loaded.fleet,
            &mut registry,
            &mut requests,
            &mut completed,
            &mut last,
            &mut errs,
        );
        for (place, problem) in errs {
            problems.push(if place.is_empty() {
                format!("{name}:{line}: {problem}")
            } else {
                format!("{name}:{line}: {place}: {problem}")
            });
        }
        events.extend(event);
    }
    if problems.is_empty() {
        Ok(events)
    } else {
        Err(Failure(problems))
    }
}

#[allow(clippy::too_many_arguments)]
fn parse_event(
    raw: &str,
    line: usize,
    fleet: &BuiltFleet,
    registry: &mut Registry<Policy>,
    requests: &mut usize,
    completed: &mut HashMap<usize, usize>,
    last: &mut Option<(u64, usize)>,
    errs: &mut LineErrors,
) -> Option<Event> {
    let value: Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) => {
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            errs.push((String::new(), format!("column {}: {message}", e.column())));
            return None;
        }
    };
    let Value::Object(obj) = value else {
        errs.push((String::new(), "an event is a JSON object".to_owned()));
        return None;
    };
    for k in obj.keys() {
        if !EVENT_FIELDS.split(", ").any(|f| f == k) {
            errs.push((
                k.clone(),
                format!("unknown field, expected one of {EVENT_FIELDS}"),
            ));
        }
    }
    let at_ms = match obj.get("at_ms") {
        None => {
            errs.push(("at_ms".to_owned(), "required".to_owned()));
            None
        }
        Some(_) => field::<u64>(&obj, "at_ms", "at_ms", errs),
    };
    if let (Some(at), Some((previous, previous_line))) = (at_ms, *last)
        && at < previous
    {
        errs.push((
            "at_ms".to_owned(),
            format!("{at} is earlier than {previous}, the time of line {previous_line}"),
        ));
    }
    if let Some(at) = at_ms {
        *last = Some((at, line));
    }
    let kinds: Vec<&str> = ["request", "complete", "upsert", "remove"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if kinds.len() != 1 {
        errs.push((
            String::new(),
            format!(
                "an event has exactly one of request, complete, upsert, remove; this one has {}",
                if kinds.is_empty() {
                    "none".to_owned()
                } else {
                    kinds.join(", ")
                }
            ),
        ));
        return None;
    }
    if kinds[0] != "complete" {
        for k in ["outcome", "latency_ms", "retry_after_ms", "tokens"] {
            if obj.contains_key(k) {
                errs.push((
                    k.to_owned(),
                    "only a complete event has this field".to_owned(),
                ));
            }
        }
    }
    let before = errs.len();
    let action = match kinds[0] {
        "request" => parse_request(&obj["request"], fleet, errs).map(|spec| {
            *requests += 1;
            Action::Request(Box::new(spec))
        }),
        "complete" => parse_complete(&obj, *requests, completed, line, errs),
        "upsert" => {
            let entry = match DeploymentEntry::deserialize(&obj["upsert"]) {
                Ok(e) => Some(e),
                Err(e) => {
                    errs.push(("upsert".to_owned(), e.to_string()));
                    None
                }
            };
            match entry.map(|e| e.build()) {
                Some(Ok(d)) => {
                    if errs.len() == before {
                        registry.upsert(d.clone());
                    }
                    Some(Action::Upsert(Box::new(d)))
                }
                Some(Err(problems)) => {
                    for p in &problems {
                        let place = match p.path().as_str() {
                            "" => "upsert".to_owned(),
                            path if path.starts_with('[') => format!("upsert{path}"),
                            path => format!("upsert.{path}"),
                        };
                        errs.push((place, p.message().to_owned()));
                    }
                    None
                }
                None => None,
            }
        }
        _ => match field::<String>(&obj, "remove", "remove", errs) {
            Some(text) => match text.parse::<ModelKey>() {
                Ok(key) if registry.contains(&key) => {
                    if errs.len() == before {
                        registry.remove(&key);
                    }
                    Some(Action::Remove(key))
                }
                Ok(key) => {
                    errs.push((
                        "remove".to_owned(),
                        format!("no deployment has key {key} at this point"),
                    ));
                    None
                }
                Err(e) => {
                    errs.push(("remove".to_owned(), e.to_string()));
                    None
                }
            },
            None => None,
        },
    };
    if !errs.is_empty() {
        return None;
    }
    Some(Event {
        at: Duration::from_millis(at_ms?),
        action: action?,
    })
}

fn parse_request(value: &Value, fleet: &BuiltFleet, errs: &mut LineErrors) -> Option<RequestSpec> {
    let Value::Object(obj) = value else {
        errs.push(("request".to_owned(), "must be an object".to_owned()));
        return None;
    };
    let before = errs.len();
    for k in obj.keys() {
        if !REQUEST_FIELDS.split(", ").any(|f| f == k) {
            errs.push((
                format!("request.{k}"),
                format!("unknown field, expected one of {REQUEST_FIELDS}"),
            ));
        }
    }
    let mut spec = RequestSpec::default();
    match field::<String>(obj, "model", "request.model", errs) {
        Some(m) => spec.model = m,
        None if !obj.contains_key("model") => {
            errs.push(("request.model".to_owned(), "required".to_owned()));
        }
        None => {}
    }
    spec.provider = field(obj, "provider", "request.provider", errs);
    if let Some(labels) =
        field::<std::collections::BTreeMap<String, String>>(obj, "labels", "request.labels", errs)
    {
        spec.labels = labels.into_iter().collect();
    }
    spec.tags = field(obj, "tags", "request.tags", errs).unwrap_or_default();
    if let Some(mode) = field::<String>(obj, "tag_match", "request.tag_match", errs) {
        match mode.as_str() {
            "any" => spec.tag_match = TagMatch::Any,
            "all" => spec.tag_match = TagMatch::All,
            other => errs.push((
                "request.tag_match".to_owned(),
                format!("unknown tag match {other:?}: expected any or all"),
            )),
        }
    }
    if let Some(v) = field::<String>(obj, "version", "request.version", errs) {
        match v.parse::<VersionReq>() {
            Ok(req) => spec.version = Some(req),
            Err(e) => errs.push((
                "request.version".to_owned(),
                format!("{v:?} is not a version requirement: {e}"),
            )),
        }
    }
    spec.newest = field(obj, "newest", "request.newest", errs).unwrap_or(false);
    spec.affinity = field(obj, "affinity", "request.affinity", errs);
    spec.tokens = field(obj, "tokens", "request.tokens", errs);
    if let Some(keys) = field::<Vec<String>>(obj, "exclude", "request.exclude", errs) {
        for (i, k) in keys.iter().enumerate() {
            match k.parse::<ModelKey>() {
                Ok(key) => spec.exclude.push(key),
                Err(e) => errs.push((format!("request.exclude[{i}]"), e.to_string())),
            }
        }
    }
    spec.fallbacks = match field::<Vec<String>>(obj, "fallbacks", "request.fallbacks", errs) {
        Some(list) => list,
        None => fleet.fallbacks_of(&spec.model).to_vec(),
    };
    (errs.len() == before).then_some(spec)
}

fn parse_complete(
    obj: &Map<String, Value>,
    requests: usize,
    completed: &mut HashMap<usize, usize>,
    line: usize,
    errs: &mut LineErrors,
) -> Option<Action> {
    let before = errs.len();
    let request = field::<u64>(obj, "complete", "complete", errs).and_then(|n| {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n >= requests {
            errs.push((
                "complete".to_owned(),
                format!(
                    "request {n} has not been made yet ({requests} request{} so far)",
                    if requests == 1 { "" } else { "s" }
                ),
            ));
            None
        } else if let Some(first) = completed.get(&n) {
            errs.push((
                "complete".to_owned(),
                format!("request {n} was already completed on line {first}"),
            ));
            None
        } else {
            Some(n)
        }
    });
    let latency = field::<u64>(obj, "latency_ms", "latency_ms", errs).map(Duration::from_millis);
    let retry_after =
        field::<u64>(obj, "retry_after_ms", "retry_after_ms", errs).map(Duration::from_millis);
    let tokens = field::<u64>(obj, "tokens", "tokens", errs).unwrap_or(0);
    let outcome = match field::<String>(obj, "outcome", "outcome", errs) {
        None if !obj.contains_key("outcome") => {
            errs.push(("outcome".to_owned(), "required".to_owned()));
            None
        }
        None => None,
        Some(name) if name == "success" => match latency {
            Some(latency) => Some(Outcome::success(latency)),
            None => {
                errs.push((
                    "latency_ms".to_owned(),
                    "required when the outcome is success".to_owned(),
                ));
                None
            }
        },
        Some(name) => match name.parse::<FailureKind>() {
            Ok(FailureKind::RateLimited { .. }) => Some(Outcome::failure(
                FailureKind::rate_limited(retry_after),
                latency,
            )),
            Ok(FailureKind::Overloaded { .. }) => Some(Outcome::failure(
                FailureKind::overloaded(retry_after),
                latency,
            )),
            Ok(kind) => {
                if retry_after.is_some() {
                    errs.push((
                        "retry_after_ms".to_owned(),
                        format!("only a rate_limited or overloaded outcome has one, not {kind}"),
                    ));
                }
                Some(Outcome::failure(kind, latency))
            }
            Err(_) => {
                errs.push((
                    "outcome".to_owned(),
                    format!("unknown outcome {name:?}: expected one of {}", outcomes()),
                ));
                None
            }
        },
    };
    if errs.len() != before {
        return None;
    }
    let request = request?;
    completed.insert(request, line);
    Some(Action::Complete {
        request,
        outcome: outcome?,
        tokens,
    })
}
