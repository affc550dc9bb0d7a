//! The `fleet_sim` example, run in-process: every sample fleet in
//! `examples/fleets/` against its golden output (as `.ci/run` does with the
//! built example), and the exit-status-2 paths, which name the file, the
//! line and the field and replay nothing.

#![cfg(feature = "serde")]

#[allow(dead_code)]
#[path = "../examples/fleet_sim/main.rs"]
mod sim;
mod support;

use std::path::{Path, PathBuf};

fn run(args: &[&str]) -> sim::RunOutput {
    run_with_stdin(args, "")
}

fn run_with_stdin(args: &[&str], stdin: &str) -> sim::RunOutput {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    sim::run(&args, stdin.as_bytes())
}

/// What `.ci/run` compares with a golden file: standard output, standard
/// error, then `[exit status N]` when N is not 0.
fn as_ci_sees_it(out: &sim::RunOutput) -> String {
    let mut text = format!("{}{}", out.stdout, out.stderr);
    while text.ends_with('\n') {
        text.pop();
    }
    if out.status != 0 {
        text.push_str(&format!("\n[exit status {}]", out.status));
    }
    text.push('\n');
    text
}

fn fleets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleets")
}

#[test]
fn every_sample_fleet_matches_its_golden_output() {
    // Relative paths, as in the golden files.
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let mut configs: Vec<PathBuf> = std::fs::read_dir(fleets())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("toml" | "json")
            )
        })
        .collect();
    configs.sort();
    assert!(configs.len() >= 6, "{configs:?}");
    let mut formats = (0, 0);
    for config in configs {
        let name = config.file_stem().unwrap().to_str().unwrap().to_owned();
        let base = format!("examples/fleets/{name}");
        let ext = config.extension().unwrap().to_str().unwrap();
        if ext == "toml" {
            formats.0 += 1;
        } else {
            formats.1 += 1;
        }
        let mut args = vec![format!("{base}.{ext}")];
        let events = format!("{base}.events.jsonl");
        if Path::new(&events).exists() {
            args.push(events);
        }
        if let Ok(flags) = std::fs::read_to_string(format!("{base}.flags")) {
            args.extend(flags.split_whitespace().map(str::to_owned));
        }
        let out = sim::run(&args, std::io::empty());
        let golden = std::fs::read_to_string(format!("{base}.golden"))
            .unwrap_or_else(|e| panic!("{base}.golden: {e}"));
        assert_eq!(as_ci_sees_it(&out), golden, "fleet_sim {}", args.join(" "));
    }
    assert!(formats.0 > 0 && formats.1 > 0, "samples in both formats");
}

#[test]
fn the_dify_samples_show_both_identities() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    // By name: refused, naming both entries and the key they share.
    let out = run(&["examples/fleets/dify-by-name.toml"]);
    assert_eq!(out.status, 2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("deployments[1]"), "{}", out.stderr);
    assert!(out.stderr.contains("deployments[0]"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("same key, openai-api-compatible/gpt-4,")
    );
    // By name + endpoint: both kept, traffic alternates.
    let out = run(&[
        "examples/fleets/dify-by-endpoint.toml",
        "examples/fleets/dify-by-endpoint.events.jsonl",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let keys: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split("\"key\":\"").nth(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(keys.len(), 6);
    for pair in keys.windows(2) {
        assert_ne!(pair[0], pair[1]);
    }
}

#[test]
fn a_coarse_key_shows_the_endpoint_tag_and_version_that_serve() {
    let dir = scratch("coarse");
    // Keyed by name: the key names neither endpoint, tag nor version.
    let config = write(
        &dir,
        "fleet.toml",
        r#"identity = "name"
[[deployments]]
provider = "openai"
model = "gpt-4"
endpoint = "HTTP://Node1:80/v1/"
tag = "canary"
version = "1.4.0"

[[deployments]]
provider = "openai"
model = "gpt-4o-mini"
"#,
    );
    let events = [
        r#"{"at_ms": 0, "request": {"model": "gpt-4"}}"#,
        r#"{"at_ms": 1, "request": {"model": "gpt-4o-mini"}}"#,
    ]
    .join("\n");
    let out = run_with_stdin(&[&config, "-"], &events);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"request":0,"key":"openai/gpt-4","endpoint":"http://node1/v1","tag":"canary","version":"1.4.0","tier":0}"#,
            r#"{"request":1,"key":"openai/gpt-4o-mini","endpoint":null,"tag":null,"version":null,"tier":0}"#,
        ],
        "{}",
        out.stdout
    );
}

/// A scratch directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fleet_sim")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const GOOD_TOML: &str = r#"identity = "name+endpoint"

[[deployments]]
provider = "openai"
model = "gpt-4"
endpoint = "http://10.0.0.1/v1"

[[deployments]]
provider = "openai"
model = "gpt-4"
endpoint = "http://10.0.0.2/v1"
"#;

#[track_caller]
fn fails(out: &sim::RunOutput) -> String {
    assert_eq!(out.status, 2, "{out:?}");
    assert!(out.stdout.is_empty(), "nothing is replayed: {out:?}");
    out.stderr.trim_end().to_owned()
}

#[test]
fn bad_configs_exit_2_naming_file_line_and_field() {
    let dir = scratch("bad_configs");
    let events = write(&dir, "events.jsonl", "");

    // A semantic problem in TOML: the line of the field.
    let bad = GOOD_TOML.replace("http://10.0.0.2/v1", "http://10.0.0.2/v1?key=secret");
    let config = write(&dir, "endpoint.toml", &bad);
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!(
            "{config}:11: deployments[1].endpoint: has a query string; endpoints may not carry one (it often holds secrets)"
        )
    );

    // Every problem, each on its line, in JSON.
    let json = r#"{
  "identity": "name+region",
  "health": {
    "ejection": { "max_percent": 150 }
  },
  "deployments": [
    { "provider": "openai", "model": "gpt-4" },
    {
      "provider": "openai",
      "model": "gpt-4",
      "weight": -1
    }
  ]
}"#;
    let config = write(&dir, "many.json", json);
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!(
            "{config}:2: identity: unknown identity policy \"name+region\": discriminators are \"endpoint\", \"tag\" and \"version\"\n\
             {config}:4: health.ejection.max_percent: must be at most 100, got 150\n\
             {config}:11: deployments[1].weight: -1 is negative"
        )
    );

    // A structural problem: the format's line and column, and the field
    // found there.
    let config = write(&dir, "typo.json", "{\n  \"identiy\": \"name\"\n}");
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!(
            "{config}:2:11: identiy: unknown field `identiy`, expected one of `identity`, `strategy`, `seed`, `health`, `on_duplicate`, `fallbacks`, `deployments`"
        )
    );
    let config = write(
        &dir,
        "type.json",
        "{\n  \"deployments\": [\n    {\"provider\": \"a\", \"model\": \"b\"},\n    {\"provider\": \"a\", \"model\": 5}\n  ]\n}\n",
    );
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!(
            "{config}:4:32: deployments[1].model: invalid type: integer `5`, expected a string"
        )
    );
    let config = write(
        &dir,
        "typo.toml",
        "identity = \"name\"\n\n[health]\npreset = 3\n",
    );
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!("{config}:4:10: health.preset: wanted string or table")
    );
    let config = write(&dir, "field.toml", "[health.ejection]\nmax_pct = 5\n");
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!(
            "{config}:2:1: health.ejection.max_pct: unknown field `max_pct`, expected one of `consecutive_failures`, `base_ms`, `max_ms`, `max_percent`, `interval_ms`"
        )
    );
    let config = write(&dir, "syntax.toml", "identity = \"name\n");
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!("{config}:1:17: invalid basic string, expected `\"`")
    );

    // A semantic problem in a TOML table: the line of the field itself.
    let config = write(
        &dir,
        "table.toml",
        &format!("{GOOD_TOML}\n[health.ejection]\nbase_ms = 1000\nmax_percent = 150\n"),
    );
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!("{config}:15: health.ejection.max_percent: must be at most 100, got 150")
    );

    // Duplicates name both entries.
    let config = write(
        &dir,
        "dup.toml",
        &GOOD_TOML.replace("name+endpoint", "name"),
    );
    let err = fails(&run(&[&config, &events]));
    assert!(
        err.starts_with(&format!(
            "{config}:8: deployments[1]: openai/gpt-4@http://10.0.0.2/v1 has the same key, openai/gpt-4, as deployments[0]"
        )),
        "{err}"
    );

    // Unreadable files and unknown formats.
    let missing = dir.join("missing.toml");
    let missing = missing.to_str().unwrap();
    assert!(fails(&run(&[missing])).starts_with(&format!("fleet_sim: {missing}: ")));
    let yaml = write(&dir, "fleet.yaml", "identity: name\n");
    assert_eq!(
        fails(&run(&[&yaml])),
        format!("fleet_sim: {yaml}: unknown config format: the name must end in .toml or .json")
    );
}

#[test]
fn bad_event_lines_exit_2_naming_file_line_and_field() {
    let dir = scratch("bad_events");
    let config = write(&dir, "fleet.toml", GOOD_TOML);
    let cases: &[(&str, &str)] = &[
        (
            r#"{"at_ms": 0, "request": {"modle": "gpt-4"}}"#,
            "request.modle: unknown field, expected one of model, provider, labels, tags, tag_match, version, newest, affinity, tokens, exclude, fallbacks",
        ),
        (r#"{"at_ms": 0, "request": {}}"#, "request.model: required"),
        (
            r#"{"at_ms": 0, "request": {"model": "gpt-4", "version": "^x"}}"#,
            r#"request.version: "^x" is not a version requirement: unexpected character 'x' while parsing major version number"#,
        ),
        (
            r#"{"at_ms": 0, "request": {"model": "gpt-4", "tokens": -3}}"#,
            "request.tokens: invalid value: integer `-3`, expected u32",
        ),
        (
            r#"{"at_ms": 0, "request": {"model": "gpt-4", "exclude": ["openai"]}}"#,
            r#"request.exclude[0]: malformed model key "openai": expected provider/model"#,
        ),
        (
            r#"{"at_ms": 0, "request": {"model": "gpt-4", "tag_match": "some"}}"#,
            r#"request.tag_match: unknown tag match "some": expected any or all"#,
        ),
        (r#"{"request": {"model": "gpt-4"}}"#, "at_ms: required"),
        (
            r#"{"at_ms": "soon", "request": {"model": "gpt-4"}}"#,
            r#"at_ms: invalid type: string "soon", expected u64"#,
        ),
        (
            r#"{"at_ms": 0, "requset": {"model": "gpt-4"}}"#,
            "requset: unknown field, expected one of at_ms, request, complete, outcome, latency_ms, retry_after_ms, tokens, upsert, remove",
        ),
        (
            r#"{"at_ms": 0, "complete": 7, "outcome": "success", "latency_ms": 5}"#,
            "complete: request 7 has not been made yet (1 request so far)",
        ),
        (
            r#"{"at_ms": 0, "complete": 0, "outcome": "fail"}"#,
            r#"outcome: unknown outcome "fail": expected one of success, {kinds}"#,
        ),
        (
            r#"{"at_ms": 0, "complete": 0, "outcome": "success"}"#,
            "latency_ms: required when the outcome is success",
        ),
        (
            r#"{"at_ms": 0, "complete": 0, "outcome": "timeout", "retry_after_ms": 5}"#,
            "retry_after_ms: only a rate_limited or overloaded outcome has one, not timeout",
        ),
        (r#"{"at_ms": 0, "complete": 0}"#, "outcome: required"),
        (
            r#"{"at_ms": 0, "request": {"model": "gpt-4"}, "outcome": "success"}"#,
            "outcome: only a complete event has this field",
        ),
        (
            r#"{"at_ms": 0, "upsert": {"provider": "openai", "model": "gpt-4", "endpoint": "http://u:p@10.0.0.3/v1", "tag": ""}}"#,
            "upsert.endpoint: carries credentials (user or password); keep secrets out of endpoints",
        ),
        (
            r#"{"at_ms": 0, "upsert": {"model": "gpt-4"}}"#,
            "upsert: missing field `provider`",
        ),
        (
            r#"{"at_ms": 0, "remove": "openai/gpt-4@http://10.0.0.9/v1"}"#,
            "remove: no deployment has key openai/gpt-4@http://10.0.0.9/v1 at this point",
        ),
        (
            r#"{"at_ms": 0, "remove": "gpt-4"}"#,
            r#"remove: malformed model key "gpt-4": expected provider/model"#,
        ),
        (
            r#"{"at_ms": 0}"#,
            "an event has exactly one of request, complete, upsert, remove; this one has none",
        ),
        (
            r#"{"at_ms": 0, "request": {"model": "gpt-4"}, "remove": "openai/gpt-4@"}"#,
            "an event has exactly one of request, complete, upsert, remove; this one has request, remove",
        ),
        (r#"[1, 2]"#, "an event is a JSON object"),
        (
            r#"{"at_ms": 0, "request": "#,
            "column 24: EOF while parsing a value",
        ),
    ];
    let first = r#"{"at_ms": 0, "request": {"model": "gpt-4"}}"#;
    for (i, (line, expected)) in cases.iter().enumerate() {
        // A good line, a blank line, the bad one (line 3), then a good one:
        // nothing is replayed.
        let text = format!("{first}\n\n{line}\n{first}\n");
        let events = write(&dir, &format!("events{i}.jsonl"), &text);
        let got = fails(&run(&[&config, &events]));
        // The upsert case has a second problem on the same line.
        let got = got.lines().next().unwrap().to_owned();
        assert_eq!(
            got,
            format!("{events}:3: {}", support::names(expected)),
            "{line}"
        );
    }

    // Order in time, completions once, and several problems at once.
    let text = [
        r#"{"at_ms": 10, "request": {"model": "gpt-4"}}"#,
        r#"{"at_ms": 5, "request": {"model": "gpt-4"}}"#,
        r#"{"at_ms": 20, "complete": 0, "outcome": "success", "latency_ms": 5}"#,
        r#"{"at_ms": 30, "complete": 0, "outcome": "server_error"}"#,
        r#"{"at_ms": 40, "upsert": {"provider": "openai", "model": "gpt-4", "tag": " x", "weight": -1, "colour": 1}}"#,
    ]
    .join("\n");
    let events = write(&dir, "order.jsonl", &text);
    assert_eq!(
        fails(&run(&[&config, &events])),
        format!(
            "{events}:2: at_ms: 5 is earlier than 10, the time of line 1\n\
             {events}:4: complete: request 0 was already completed on line 3\n\
             {events}:5: upsert.colour: unknown field, expected one of `provider`, `model`, `upstream_model`, `endpoint`, `tag`, `version`, `labels`, `weight`, `priority`, `limits`, `context_window`, `cooldown_ms`, `credential`\n\
             {events}:5: upsert.tag: \" x\" starts or ends with white space\n\
             {events}:5: upsert.weight: -1 is negative"
        )
    );

    // From standard input the file is called <stdin>.
    let out = run_with_stdin(&[&config], "{\"at_ms\": 0}\n");
    assert_eq!(
        fails(&out),
        "<stdin>:1: an event has exactly one of request, complete, upsert, remove; this one has none"
    );
}

/// An overloaded outcome takes `retry_after_ms` and cools its deployment
/// until then, as a rate limit does.
#[test]
fn an_overloaded_outcome_cools_until_its_retry_after() {
    let dir = scratch("overloaded");
    let config = write(&dir, "fleet.toml", GOOD_TOML);
    let events = [
        r#"{"at_ms": 0, "request": {"model": "gpt-4"}}"#,
        r#"{"at_ms": 1, "request": {"model": "gpt-4"}}"#,
        r#"{"at_ms": 10, "complete": 0, "outcome": "overloaded", "retry_after_ms": 5000}"#,
        r#"{"at_ms": 11, "complete": 1, "outcome": "overloaded", "retry_after_ms": 7000}"#,
        r#"{"at_ms": 20, "request": {"model": "gpt-4"}}"#,
    ]
    .join("\n");
    let out = run_with_stdin(&[&config, "-"], &events);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let last = out.stdout.lines().last().unwrap();
    assert!(
        last.starts_with(
            r#"{"request":2,"error":"unavailable","message":"no deployment of \"gpt-4\" is available until 5010ms"#
        ),
        "{last}"
    );
}

#[test]
fn events_from_stdin_and_registry_changes() {
    let dir = scratch("stdin");
    let config = write(&dir, "fleet.toml", GOOD_TOML);
    let events = [
        r#"{"at_ms": 0, "request": {"model": "gpt-4"}}"#,
        r#"{"at_ms": 10, "upsert": {"provider": "openai", "model": "gpt-4", "endpoint": "http://10.0.0.3/v1"}}"#,
        r#"{"at_ms": 20, "remove": "openai/gpt-4@http://10.0.0.1/v1"}"#,
        r#"{"at_ms": 30, "request": {"model": "gpt-4", "exclude": ["openai/gpt-4@http://10.0.0.2/v1"]}}"#,
        r#"{"at_ms": 40, "complete": 0, "outcome": "success", "latency_ms": 30, "tokens": 100}"#,
        r#"{"at_ms": 50, "request": {"model": "gpt-4", "provider": "azure"}}"#,
    ]
    .join("\n");
    let out = run_with_stdin(&[&config, "-", "--summary", "--explain"], &events);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", out.stdout);
    assert!(lines[0].starts_with(r#"{"request":0,"key":"openai/gpt-4@http://10.0.0."#));
    assert_eq!(
        lines[1],
        r#"{"upsert":"openai/gpt-4@http://10.0.0.3/v1","new":true}"#
    );
    assert_eq!(lines[2], r#"{"remove":"openai/gpt-4@http://10.0.0.1/v1"}"#);
    assert!(
        lines[3].starts_with(r#"{"request":1,"key":"openai/gpt-4@http://10.0.0.3/v1","endpoint":"http://10.0.0.3/v1","tag":null,"version":null,"tier":0,"explain":{"tier":0,"candidates":[{"key":"openai/gpt-4@http://10.0.0.2/v1","tier":0,"in_flight":"#),
        "{}",
        lines[3]
    );
    assert!(lines[3].contains(r#""verdict":"excluded""#));
    assert!(lines[4].starts_with(
        r#"{"request":2,"error":"no_eligible","message":"no deployment of \"gpt-4\" is eligible: provider removed 2""#
    ));
    assert!(
        lines[5].starts_with(r#"{"summary":{"requests":3,"served":2,"failed":1,"in_flight":1,"#)
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(fails(&run(&[])), sim::USAGE);
    assert_eq!(fails(&run(&["a.toml", "b.jsonl", "c"])), sim::USAGE);
    assert_eq!(fails(&run(&["--help"])), sim::USAGE);
    assert_eq!(
        fails(&run(&["a.toml", "--verbose"])),
        format!("fleet_sim: unknown flag --verbose\n{}", sim::USAGE)
    );
}
