//! Golden tests for `salve simulate`: each folder under tests/fixtures/simulate holds
//! policies/, events.jsonl, an optional config.yaml, and expected.jsonl, the decisions
//! the engine must print. Regenerate after an intended change with
//! `SALVE_BLESS=1 cargo test --test simulate_golden` and review the diff. A recorded
//! Kubernetes watch stream is replayed the same way (at the end).

use salve::config::Config;
use salve::engine::{Engine, Event, OutcomeResult, Timestamp};
use salve::kubernetes::observe;
use salve::kubernetes::watched::{Node, Pod};
use salve::policy;
use salve::simulate::{self, AssumeOutcome, TimedEvent};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn replay(dir: &Path) -> String {
    let policies = policy::load(&[dir.join("policies")]).unwrap_or_else(|e| panic!("{e}"));
    let config_path = dir.join("config.yaml");
    let limits = if config_path.exists() {
        Config::load(Some(&config_path))
            .unwrap_or_else(|e| panic!("{e}"))
            .limits
    } else {
        Config::default().limits
    };
    let events_path = dir.join("events.jsonl");
    let text = std::fs::read_to_string(&events_path).unwrap();
    let events = simulate::parse_events(&events_path.display().to_string(), &text).unwrap();
    let mut engine = Engine::new(policies, limits);
    simulate::run(&mut engine, &events, None, None, None)
        .decisions
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

fn check(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/simulate")
        .join(name);
    let actual = replay(&dir);
    compare(&dir, &actual, name);
}

/// Compares `actual` with `dir`'s expected.jsonl (written first under SALVE_BLESS).
fn compare(dir: &Path, actual: &str, name: &str) {
    let expected_path = dir.join("expected.jsonl");
    if std::env::var_os("SALVE_BLESS").is_some() {
        std::fs::write(&expected_path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with SALVE_BLESS=1 to create it)",
            expected_path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "decisions for fixture {name} differ from expected.jsonl"
    );
}

#[test]
fn an_alert_fires_once_after_its_for_and_a_resolved_one_fires_nothing() {
    check("alerts");
}

#[test]
fn crash_is_restarted_once_and_its_own_transitions_are_ignored() {
    check("crash");
}

#[test]
fn flapping_unit_acts_only_after_holding_for_the_whole_debounce() {
    check("flapping");
}

#[test]
fn crash_loop_backs_off_then_opens_the_circuit_and_escalates_once() {
    check("crash-loop");
}

#[test]
fn storm_across_many_targets_is_held_to_the_global_cap() {
    check("storm");
}

#[test]
fn dry_run_walks_the_guardrails_but_never_acts() {
    check("dry-run");
}

#[test]
fn a_dry_run_preview_never_holds_back_the_live_policy_on_its_target() {
    check("dry-run-beside-live");
}

#[test]
fn http_failures_and_log_matches_fire_triggers() {
    check("probe-and-log");
}

#[test]
fn every_fixture_folder_has_a_test() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/simulate");
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alerts",
            "crash",
            "crash-loop",
            "dry-run",
            "dry-run-beside-live",
            "flapping",
            "k8s-crashloop",
            "k8s-oomkilled",
            "k8s-selector",
            "k8s-workload-and-node",
            "not-applicable",
            "probe-and-log",
            "storm"
        ]
    );
}

#[test]
fn replay_journal_reads_back_as_the_agent_would_have_written_it() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/simulate/crash-loop");
    let policies = policy::load(&[dir.join("policies")]).unwrap();
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let events = simulate::parse_events("events.jsonl", &text).unwrap();
    let mut engine = Engine::new(policies, Config::default().limits);
    let start = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let replay = simulate::run(&mut engine, &events, None, None, Some(start));

    let scratch = std::env::temp_dir().join(format!("salve-replay-journal-{}", std::process::id()));
    let path = scratch.join("journal.jsonl");
    let mut journal =
        salve::audit::Journal::open(&path, salve::audit::Rotation::default()).unwrap();
    for record in &replay.journal {
        journal.append(record).unwrap();
    }
    let read = salve::audit::read_journal(&path).unwrap();
    std::fs::remove_dir_all(&scratch).unwrap();

    assert!(read.problems.is_empty(), "{:?}", read.problems);
    assert_eq!(read.records, replay.journal);
    let kinds: Vec<&str> = read.records.iter().map(|r| r.entry.kind()).collect();
    assert_eq!(
        kinds,
        [
            "intent", "outcome", "skip", "intent", "outcome", "skip", "intent", "outcome",
            "escalate", "intent"
        ]
    );
    // Every outcome closes the intent before it, with the time the attempt took.
    for pair in read.records.windows(2) {
        if let (
            salve::audit::Entry::Intent { id, .. },
            salve::audit::Entry::Outcome {
                id: closed,
                duration_ms,
                ..
            },
        ) = (&pair[0].entry, &pair[1].entry)
        {
            assert_eq!(id, closed);
            assert_eq!(*duration_ms, 1000);
        }
    }
    assert_eq!(read.records[0].ts, start);
}

#[test]
fn attempts_that_do_not_apply_back_off_but_never_open_the_circuit() {
    check("not-applicable");
}

#[test]
fn a_crash_looping_pod_is_restarted_once() {
    check("k8s-crashloop");
}

#[test]
fn a_selector_matching_three_pods_gives_each_its_own_guard() {
    check("k8s-selector");
}

#[test]
fn an_oom_killed_container_is_restarted_once_then_escalated() {
    check("k8s-oomkilled");
}

#[test]
fn an_unavailable_deployment_and_a_not_ready_node_act_after_their_debounce() {
    check("k8s-workload-and-node");
}

// A recorded Kubernetes watch stream (pods entering CrashLoopBackOff, a node going
// NotReady, as the API server sends them: whole objects, managedFields and all)
// replayed through the operator's own decoding (`kubernetes::watched`, `observe`) and the same
// engine, attempts completing `ok` a second after they start. Its folder is
// tests/fixtures/kubernetes/watch-replay.

/// One watch event as the API server sends it, with when it came.
fn event(line: &str) -> TimedEvent {
    let value: Value = serde_json::from_str(line).expect("a JSON line");
    let at: Timestamp = serde_json::from_value(value["at"].clone()).expect("a time");
    let deleted = match value["type"].as_str() {
        Some("ADDED" | "MODIFIED") => false,
        Some("DELETED") => true,
        other => panic!("watch event type {other:?}"),
    };
    let object = value["object"].clone();
    let event: Event = match object["kind"].as_str() {
        Some("Pod") => {
            let pod: Pod = serde_json::from_value(object).expect("a Pod");
            observe::pod(&pod, deleted)
        }
        Some("Node") => {
            let node: Node = serde_json::from_value(object).expect("a Node");
            observe::node(&node, deleted)
        }
        other => panic!("kind {other:?}"),
    };
    TimedEvent { at, event }
}

#[test]
fn a_recorded_stream_of_crash_loops_and_a_node_going_not_ready_replays_through_the_engine() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubernetes/watch-replay");
    let policies = policy::load(&[dir.join("policies")]).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(dir.join("stream.jsonl")).unwrap();
    let events: Vec<TimedEvent> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(event)
        .collect();
    let mut engine = Engine::new(policies, Config::default().limits);
    let assume = AssumeOutcome {
        result: OutcomeResult::Ok,
        after: Duration::from_secs(1),
    };
    let actual: String = simulate::run(&mut engine, &events, Some(assume), None, None)
        .decisions
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    compare(&dir, &actual, "kubernetes/watch-replay");
}
