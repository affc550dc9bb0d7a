//! Every hash map and set under `src/` hashes with the fixed-seed
//! `FixedState`, so that no result depends on a per-run random seed.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn every_map_under_src_has_a_fixed_seed() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20, "found {} files", files.len());
    let mut found = Vec::new();
    for (path, text) in &files {
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with("use ") {
                continue;
            }
            let types = ["HashMap<", "HashSet<", "IndexMap<", "IndexSet<"];
            // Constructors that only exist for the randomly seeded hasher.
            let random = ["RandomState", "::new()", "::with_capacity("];
            let names_a_map = types.iter().any(|t| code.contains(t));
            let unseeded_type = names_a_map && !code.contains("FixedState");
            let unseeded_new = ["HashMap", "HashSet", "IndexMap", "IndexSet"]
                .iter()
                .any(|m| random.iter().any(|r| code.contains(&format!("{m}{r}"))))
                || code.contains("RandomState");
            if unseeded_type || unseeded_new {
                found.push(format!("{path}:{}: {code}", n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "maps without FixedState:\n{}",
        found.join("\n")
    );
}
