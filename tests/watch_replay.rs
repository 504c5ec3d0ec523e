//! A recorded Kubernetes watch stream (pods entering CrashLoopBackOff, a node going
//! NotReady, as the API server sends them: whole objects, managedFields and all)
//! replayed through the operator's own decoding (`kubernetes::observe`) and the same
//! engine. Attempts complete as `ok` a second after they start. Regenerate after an
//! intended change with `SALVE_BLESS=1 cargo test --test watch_replay`.

use k8s_openapi::api::core::v1::{Node, Pod};
use salve::config::Config;
use salve::engine::{Engine, Event, OutcomeResult, Timestamp};
use salve::kubernetes::observe;
use salve::policy;
use salve::simulate::{self, AssumeOutcome, TimedEvent};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

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
    let expected_path = dir.join("expected.jsonl");
    if std::env::var_os("SALVE_BLESS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with SALVE_BLESS=1 to create it)",
            expected_path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "the replay's decisions differ from expected.jsonl"
    );
}
