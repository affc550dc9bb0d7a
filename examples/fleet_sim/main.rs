// ci: skip — needs a fleet file and an events file; .ci/run replays every
// sample in examples/fleets/ against its golden output instead.
//! `fleet_sim`: a dry run of a fleet file.
//!
//! Loads a fleet file (TOML or JSON, by extension), replays events from a
//! JSON-lines file or standard input, and prints one JSON object per line:
//! which deployment served each request, or why none could.
//!
//! ```text
//! cargo run --example fleet_sim -- examples/fleets/dify-by-endpoint.toml examples/fleets/dify-by-endpoint.events.jsonl
//! cargo run --example fleet_sim -- CONFIG [EVENTS] [--explain] [--summary]
//! ```
//!
//! A bad command line, fleet file or events line exits with status 2 and a
//! message naming the file, the line and the field; the events file is
//! checked whole before anything is replayed.
//!
//! This file reads the command line; [`run`] does the whole dry run and
//! returns what it printed, so that tests run it in-process (they include
//! this file as a module). The fleet file is read in `load`, its problems
//! are placed on their lines in `locate`, the events file is checked in
//! `events` and replayed in `replay`.

#[cfg(feature = "serde")]
mod events;
#[cfg(feature = "serde")]
mod load;
#[cfg(feature = "serde")]
mod locate;
#[cfg(feature = "serde")]
mod replay;

#[cfg(feature = "serde")]
use std::fmt;
#[cfg(feature = "serde")]
use std::io::Read;

/// The command line, as `fleet_sim --help` shows it.
#[cfg(feature = "serde")]
pub(crate) const USAGE: &str = "usage: fleet_sim CONFIG [EVENTS] [--explain] [--summary]
  CONFIG    a fleet file: .toml or .json
  EVENTS    a JSON-lines events file (default: standard input)
  --explain add each candidate's verdict to every request's line
  --summary end with the traffic share of each deployment";

/// What went wrong before anything was replayed: one line per problem.
/// The tool exits with status 2.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure(pub(crate) Vec<String>);

#[cfg(feature = "serde")]
impl Failure {
    fn one(line: String) -> Self {
        Self(vec![line])
    }
}

#[cfg(feature = "serde")]
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// Output flags.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// Add each candidate's verdict to every request's line.
    pub(crate) explain: bool,
    /// End with the traffic share of each deployment.
    pub(crate) summary: bool,
}

/// What a run printed, and its exit status.
#[cfg(feature = "serde")]
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
#[cfg(feature = "serde")]
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

#[cfg(feature = "serde")]
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
    let loaded = load::load_config(config_file, &read(config_file)?)?;
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
    let events = events::parse_events(&name, &text, &loaded)?;
    Ok(replay::replay(&loaded, &events, options))
}

#[cfg(feature = "serde")]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = run(&args, std::io::stdin().lock());
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    std::process::exit(out.status);
}

#[cfg(not(feature = "serde"))]
fn main() {
    eprintln!("fleet_sim needs the `serde` feature (on by default)");
    std::process::exit(2);
}
