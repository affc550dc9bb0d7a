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

#[cfg(feature = "serde")]
mod sim;

#[cfg(feature = "serde")]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = sim::run(&args, std::io::stdin().lock());
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    std::process::exit(out.status);
}

#[cfg(not(feature = "serde"))]
fn main() {
    eprintln!("fleet_sim needs the `serde` feature (on by default)");
    std::process::exit(2);
}
