//! Hostile input for every parser salve runs on files it does not control: policies,
//! nginx and PHP-FPM configs, `salve simulate` events. Each property starts from the
//! fixtures and mutates them (bytes and tokens inserted, ranges deleted, duplicated many
//! times over, truncated), and the parser must answer with a value or a positioned
//! error: no panic, no stack overflow (which would abort this binary), and output no
//! larger than the input can explain.
//!
//! cargo-fuzz would need a nightly toolchain; proptest runs on stable, in `make test`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::path::{Path, PathBuf};

/// At least this many cases per parser, in every `make test`.
const CASES: u32 = 2_000;

fn read_all(dir: &Path, ext: &[&str], out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            read_all(&path, ext, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ext.contains(&e))
        {
            out.push(std::fs::read(&path).expect("read a fixture"));
        }
    }
}

fn seeds(dirs: &[&str], ext: &[&str]) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in dirs {
        read_all(&root.join(dir), ext, &mut out);
    }
    assert!(!out.is_empty(), "no seed fixtures under {dirs:?}");
    out
}

/// One change to the bytes. Tokens are the syntax each format gives meaning to, so the
/// mutations reach deep into the parsers rather than stopping at the first bad byte.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    /// Repeats a range many times: deep nesting, huge lists, long lines.
    Repeat(usize, usize, usize),
    Truncate(usize),
    Replace(usize, u8),
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    ";",
    "[",
    "]",
    ":",
    "- ",
    "\n",
    "\r\n",
    "\"",
    "'",
    "\\",
    "#",
    "$",
    "=",
    "&a ",
    "*a",
    "!!str ",
    "---\n",
    "...\n",
    "include ",
    "location ",
    "if (",
    ") ",
    "[www]\n",
    "pm.",
    "\u{0}",
    "\u{feff}",
    "é",
    "\t",
    "  ",
    "0",
    "-1",
    "99999999999999999999",
    "1e309",
    "300000000000y",
    "null",
    "{\"at\":",
    "\"unit\":",
    "\"http\":",
    "\"log\":",
    "\"outcome\":",
    "\"tick\":{}",
    "}\n",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), prop::sample::select(TOKENS))
            .prop_map(|(at, t)| Mutation::Insert(at, t.as_bytes().to_vec())),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), 1usize..16, 2usize..2_000)
            .prop_map(|(at, n, times)| Mutation::Repeat(at, n, times)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Replace(at, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
        match m {
            Mutation::Insert(i, b) => {
                let i = at(*i);
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = at(*i);
                let end = (i + n).min(len);
                bytes.drain(i..end);
            }
            Mutation::Repeat(i, n, times) => {
                let i = at(*i);
                let end = (i + n).min(len);
                let chunk = bytes[i..end].to_vec();
                // Bounded so a case stays a few hundred KiB at most.
                let times = (*times).min(256 * 1024 / chunk.len().max(1));
                let repeated: Vec<u8> = chunk
                    .iter()
                    .copied()
                    .cycle()
                    .take(chunk.len() * times)
                    .collect();
                bytes.splice(i..end, repeated);
            }
            Mutation::Truncate(i) => bytes.truncate(at(*i)),
            Mutation::Replace(i, b) => {
                if len > 0 {
                    bytes[i % len] = *b;
                }
            }
        }
    }
    bytes
}

/// Runs `check` on `CASES` mutated seeds; any panic fails the test with the input.
fn mutated(seeds: Vec<Vec<u8>>, check: impl Fn(&str)) {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 1..12),
    )
        .prop_map(|(seed, ms)| apply(seed, &ms));
    runner
        .run(&strategy, |bytes| {
            check(&String::from_utf8_lossy(&bytes));
            Ok(())
        })
        .unwrap();
}

#[test]
fn policy_files_never_panic_and_errors_stay_proportionate() {
    let seeds = seeds(&["tests/fixtures/policies", "policies"], &["yaml", "yml"]);
    mutated(seeds, |text| {
        let (policies, errors) = salve::policy::parse_file(Path::new("fuzz.yaml"), text);
        // An almost empty document is missing a handful of required fields; beyond
        // those, every error needs some input of its own.
        assert!(
            errors.len() <= text.len() + 16,
            "{} errors for {} bytes",
            errors.len(),
            text.len()
        );
        // What was accepted is bounded by what was written, too.
        assert!(policies.len() <= text.len() / 10 + 1);
    });
}

#[test]
fn nginx_configs_never_panic_and_round_trip_when_they_parse() {
    let seeds = seeds(&["tests/fixtures/webconf"], &["conf"]);
    mutated(seeds, |text| {
        if let Ok(file) = salve::webconf::nginx::parse(Path::new("/etc/nginx/nginx.conf"), text) {
            // Lossless: what parsed is the text it came from, byte for byte.
            assert_eq!(file.text, text);
            assert!(file.directives.len() <= text.len());
        }
    });
}

#[test]
fn php_fpm_configs_never_panic() {
    let seeds = seeds(&["tests/fixtures/webconf"], &["conf"]);
    mutated(seeds, |text| {
        if let Ok(file) =
            salve::webconf::fpm::parse(Path::new("/etc/php/8.2/fpm/pool.d/www.conf"), text)
        {
            assert!(file.sections.len() <= text.len() + 1);
        }
    });
}

#[test]
fn simulate_events_never_panic() {
    let seeds = seeds(&["tests/fixtures/simulate"], &["jsonl"]);
    mutated(seeds, |text| {
        if let Ok(events) = salve::simulate::parse_events("events.jsonl", text) {
            assert!(events.len() <= text.lines().count());
        }
    });
}
