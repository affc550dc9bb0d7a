//! The dry run behind `fleet_sim`: load a fleet file, check a whole events
//! file, replay it against a [`Fleet`], and write one JSON object per line.
//!
//! Kept apart from `main.rs` so that tests run it in-process.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::time::Duration;

use modelfleet::config::{BuiltFleet, DeploymentEntry, FleetConfig, PathSegment};
use modelfleet::health::{FailureKind, Outcome, Report};
use modelfleet::{
    Error, Explanation, Fleet, FleetPick, ModelKey, Policy, Registry, Request, TagMatch,
    VersionPreference,
};
use semver::VersionReq;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The command line, as `fleet_sim --help` shows it.
pub(crate) const USAGE: &str = "usage: fleet_sim CONFIG [EVENTS] [--explain] [--summary]
  CONFIG    a fleet file: .toml or .json
  EVENTS    a JSON-lines events file (default: standard input)
  --explain add each candidate's verdict to every request's line
  --summary end with the traffic share of each deployment";

/// What went wrong before anything was replayed: one line per problem.
/// The tool exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure(pub(crate) Vec<String>);

impl Failure {
    fn one(line: String) -> Self {
        Self(vec![line])
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// Output flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// Add each candidate's verdict to every request's line.
    pub(crate) explain: bool,
    /// End with the traffic share of each deployment.
    pub(crate) summary: bool,
}

/// What a run printed, and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunOutput {
    /// 0 on success, 2 for a bad command line, config or events file.
    pub(crate) status: i32,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// Runs the tool: `args` without the program name; `stdin` is read when no
/// events file is given.
pub(crate) fn run(args: &[String], stdin: impl Read) -> RunOutput {
    match run_inner(args, stdin) {
        Ok(lines) => RunOutput {
            status: 0,
            stdout: lines.iter().map(|l| format!("{l}\n")).collect(),
            stderr: String::new(),
        },
        Err(failure) => RunOutput {
            status: 2,
            stdout: String::new(),
            stderr: format!("{failure}\n"),
        },
    }
}

fn run_inner(args: &[String], mut stdin: impl Read) -> Result<Vec<String>, Failure> {
    let mut options = Options::default();
    let mut files = Vec::new();
    for a in args {
        match a.as_str() {
            "--explain" => options.explain = true,
            "--summary" => options.summary = true,
            "-h" | "--help" => return Err(Failure::one(USAGE.to_owned())),
            s if s.starts_with("--") => {
                return Err(Failure::one(format!(
                    "fleet_sim: unknown flag {s}\n{USAGE}"
                )));
            }
            _ => files.push(a.as_str()),
        }
    }
    let (config_file, events_file) = match files[..] {
        [c] => (c, None),
        [c, "-"] => (c, None),
        [c, e] => (c, Some(e)),
        _ => return Err(Failure::one(USAGE.to_owned())),
    };
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|e| Failure::one(format!("fleet_sim: {path}: {e}")))
    };
    let loaded = load_config(config_file, &read(config_file)?)?;
    let (name, text) = match events_file {
        Some(path) => (path.to_owned(), read(path)?),
        None => {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|e| Failure::one(format!("fleet_sim: <stdin>: {e}")))?;
            ("<stdin>".to_owned(), text)
        }
    };
    let events = parse_events(&name, &text, &loaded)?;
    Ok(replay(&loaded, &events, options))
}

// ---------------------------------------------------------------------------
// The fleet file
// ---------------------------------------------------------------------------

/// A checked fleet file.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The fleet.
    pub(crate) fleet: BuiltFleet,
}

enum Format {
    Json,
    Toml,
}

/// Reads and checks a fleet file; the format follows the extension
/// (`.toml` or `.json`). Every problem is reported as `file:line: place:
/// problem` (the line where the format or the place can be found).
pub(crate) fn load_config(name: &str, text: &str) -> Result<Loaded, Failure> {
    let format = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("toml") => Format::Toml,
        Some("json") => Format::Json,
        _ => {
            return Err(Failure::one(format!(
                "fleet_sim: {name}: unknown config format: the name must end in .toml or .json"
            )));
        }
    };
    // The format's own errors stop parsing; they name the line and column,
    // and the field found there.
    let structural = |offset: Option<usize>, message: &str| {
        let Some(offset) = offset else {
            return Failure::one(format!("{name}: {message}"));
        };
        let (line, column) = line_column(text, offset);
        let path = match format {
            Format::Json => json_path_at(text, offset),
            Format::Toml => toml_path_at(text, offset),
        };
        let field = if path.is_empty() {
            String::new()
        } else {
            format!(" {}:", render_path(&path))
        };
        Failure::one(format!("{name}:{line}:{column}:{field} {message}"))
    };
    let config: FleetConfig = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            let offset = (e.line() > 0).then(|| {
                let start: usize = text
                    .split_inclusive('\n')
                    .take(e.line() - 1)
                    .map(str::len)
                    .sum();
                start + e.column().saturating_sub(1)
            });
            structural(offset, message)
        })?,
        Format::Toml => toml::from_str(text)
            .map_err(|e| structural(e.span().map(|s| s.start), e.message().trim_end()))?,
    };
    let fleet = config.build().map_err(|errors| {
        Failure(
            errors
                .iter()
                .map(|e| {
                    let line = match format {
                        Format::Json => json_line(text, e.segments()),
                        Format::Toml => toml_line(text, e.segments()),
                    };
                    let place = line.map_or(String::new(), |l| format!(":{l}"));
                    format!("{name}{place}: {e}")
                })
                .collect(),
        )
    })?;
    Ok(Loaded { fleet })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A place as `ConfigError::path` writes it: `deployments[1].endpoint`.
fn render_path(path: &[PathSegment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSegment::Index(i) => s.push_str(&format!("[{i}]")),
            PathSegment::Key(k)
                if !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSegment::Key(k) => s.push_str(&format!("[{k:?}]")),
            _ => {}
        }
    }
    s
}

/// One entry of a TOML table or array: its place, its key's span, its value.
type Entry<'a, 'i> = (
    PathSegment,
    Option<std::ops::Range<usize>>,
    &'a toml::Spanned<toml::de::DeValue<'i>>,
);

/// The place of the innermost key or value of a TOML document at byte
/// `offset`.
fn toml_path_at(text: &str, offset: usize) -> Vec<PathSegment> {
    use toml::de::{DeTable, DeValue};
    // A table's span is its header only, so every entry is searched.
    fn walk(value: &DeValue<'_>, offset: usize, path: &mut Vec<PathSegment>) -> bool {
        let inside = |span: std::ops::Range<usize>| {
            span.start <= offset && offset < span.end.max(span.start + 1)
        };
        let entries: Vec<Entry<'_, '_>> = match value {
            DeValue::Table(t) => t
                .iter()
                .map(|(k, v)| (PathSegment::Key(k.get_ref().to_string()), Some(k.span()), v))
                .collect(),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (PathSegment::Index(i), None, v))
                .collect(),
            _ => return false,
        };
        for (seg, key, v) in entries {
            path.push(seg);
            if key.is_some_and(inside) || inside(v.span()) {
                walk(v.get_ref(), offset, path);
                return true;
            }
            if walk(v.get_ref(), offset, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    if let Ok(root) = DeTable::parse(text) {
        walk(&DeValue::Table(root.into_inner()), offset, &mut path);
    }
    path
}

/// The place of the innermost key or value of a JSON document at byte
/// `offset`.
fn json_path_at(text: &str, offset: usize) -> Vec<PathSegment> {
    let mut scan = JsonScan {
        text: text.as_bytes(),
        at: 0,
    };
    let mut path = Vec::new();
    scan.space();
    scan.locate(offset, &mut path);
    path
}

/// The line of the deepest part of `path` found in a TOML document.
fn toml_line(text: &str, path: &[PathSegment]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut here = DeValue::Table(root.into_inner());
    for seg in path {
        let next = match seg {
            PathSegment::Key(k) => here.get(k.as_str()),
            PathSegment::Index(i) => here.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        span = Some(next.span());
        here = next.get_ref().clone();
    }
    span.map(|s| line_column(text, s.start).0)
}

/// The line of the deepest part of `path` found in a JSON document.
fn json_line(text: &str, path: &[PathSegment]) -> Option<usize> {
    let mut scan = JsonScan {
        text: text.as_bytes(),
        at: 0,
    };
    scan.space();
    let mut found = None;
    for seg in path {
        if !scan.enter(seg) {
            break;
        }
        found = Some(scan.at);
    }
    found.map(|offset| line_column(text, offset).0)
}

/// Just enough of a JSON reader to find where a value starts (the text is
/// known to be valid JSON).
struct JsonScan<'a> {
    text: &'a [u8],
    at: usize,
}

impl JsonScan<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.space();
        let ok = self.peek() == Some(b);
        if ok {
            self.at += 1;
            self.space();
        }
        ok
    }

    /// Reads a string and returns it decoded.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'\\' => self.at += 1,
                b'"' => break,
                _ => {}
            }
        }
        let raw = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        serde_json::from_str(raw).ok()
    }

    fn skip_value(&mut self) {
        self.space();
        match self.peek() {
            Some(b'"') => {
                self.string();
            }
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                self.space();
                if self.eat(close) {
                    return;
                }
                loop {
                    if open == b'{' {
                        self.string();
                        self.eat(b':');
                    }
                    self.skip_value();
                    if !self.eat(b',') {
                        self.eat(close);
                        return;
                    }
                }
            }
            _ => {
                while matches!(self.peek(), Some(b) if !b",}] \t\r\n".contains(&b)) {
                    self.at += 1;
                }
            }
        }
        self.space();
    }

    /// Walks the value here, recording in `path` the keys and indices
    /// leading to byte `offset` (a key counts as part of its entry).
    fn locate(&mut self, offset: usize, path: &mut Vec<PathSegment>) -> bool {
        self.space();
        match self.peek() {
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                self.space();
                if self.eat(close) {
                    return false;
                }
                let mut i = 0;
                loop {
                    let start = self.at;
                    let seg = if open == b'{' {
                        let k = self.string().unwrap_or_default();
                        self.eat(b':');
                        PathSegment::Key(k)
                    } else {
                        PathSegment::Index(i)
                    };
                    if offset < start {
                        return false;
                    }
                    path.push(seg);
                    let value_start = self.at;
                    if offset < value_start || self.locate(offset, path) {
                        return true;
                    }
                    if offset < self.at {
                        return true;
                    }
                    path.pop();
                    i += 1;
                    if !self.eat(b',') {
                        self.eat(close);
                        return false;
                    }
                }
            }
            _ => {
                self.skip_value();
                false
            }
        }
    }

    /// Moves to the start of the value at `seg` inside the current value.
    fn enter(&mut self, seg: &PathSegment) -> bool {
        self.space();
        match (seg, self.peek()) {
            (PathSegment::Key(key), Some(b'{')) => {
                self.at += 1;
                self.space();
                while self.peek() == Some(b'"') {
                    let k = self.string();
                    self.eat(b':');
                    if k.as_deref() == Some(key.as_str()) {
                        return true;
                    }
                    self.skip_value();
                    if !self.eat(b',') {
                        break;
                    }
                }
                false
            }
            (PathSegment::Index(i), Some(b'[')) => {
                self.at += 1;
                self.space();
                for _ in 0..*i {
                    self.skip_value();
                    if !self.eat(b',') {
                        return false;
                    }
                }
                !matches!(self.peek(), Some(b']') | None)
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

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
    model: String,
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
    fallbacks: Vec<String>,
}

impl RequestSpec {
    fn request(&self, model: &str, at: Duration) -> Request {
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
const OUTCOMES: &str = "success, rate_limited, timeout, server_error, connection_error, \
    authentication_error, not_found, bad_request, context_window_exceeded, content_filtered, other";

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
            Some(latency) => Some(Outcome::Success { latency }),
            None => {
                errs.push((
                    "latency_ms".to_owned(),
                    "required when the outcome is success".to_owned(),
                ));
                None
            }
        },
        Some(name) => match name.parse::<FailureKind>() {
            Ok(FailureKind::RateLimited { .. }) => Some(Outcome::Failure {
                kind: FailureKind::RateLimited { retry_after },
                latency,
            }),
            Ok(kind) => {
                if retry_after.is_some() {
                    errs.push((
                        "retry_after_ms".to_owned(),
                        format!("only a rate_limited outcome has one, not {kind}"),
                    ));
                }
                Some(Outcome::Failure { kind, latency })
            }
            Err(_) => {
                errs.push((
                    "outcome".to_owned(),
                    format!("unknown outcome {name:?}: expected one of {OUTCOMES}"),
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

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct Picked<'a> {
    request: usize,
    key: String,
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
    let mut held: Vec<Option<FleetPick<'_>>> = Vec::new();
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
                        match share.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, count)) => *count += 1,
                            None => share.push((key.clone(), 1)),
                        }
                        out.push(line(&Picked {
                            request: n,
                            key,
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
