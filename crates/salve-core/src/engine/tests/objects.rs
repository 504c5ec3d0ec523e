//! Kubernetes objects: a pod's state is live, but a container's last termination is
//! news only when it happens; a deleted object holds nothing.

use super::*;
use std::collections::BTreeMap;

fn pod_policy(trigger: &str) -> Engine {
    let yaml = format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: p, namespace: web }}\nspec:\n  target: {{ pods: {{ name: php-0 }} }}\n  trigger:\n    - {trigger}\n  actions:\n    - restart: {{}}\n  guard: {{ cooldown: 10s, maxAttempts: 5, window: 1h }}\n"
    );
    engine_from(&[yaml], Limits::default())
}

fn pod(waiting: Option<&str>, last: Option<&str>, restarts: u32) -> Event {
    pod_event("php-0", waiting, last, restarts, false)
}

fn pod_event(
    name: &str,
    waiting: Option<&str>,
    last: Option<&str>,
    restarts: u32,
    deleted: bool,
) -> Event {
    Event::Pod(PodObservation {
        namespace: "web".into(),
        name: name.into(),
        labels: BTreeMap::new(),
        containers: vec![ContainerObservation {
            name: "php".into(),
            waiting: waiting.map(String::from),
            last_terminated: last.map(String::from),
            restarts,
        }],
        deleted,
    })
}

fn ok(e: &mut Engine, secs: f64, attempt_id: u64) {
    feed(
        e,
        secs,
        Event::Outcome(Outcome {
            policy: "p".into(),
            attempt_id: Some(attempt_id),
            result: OutcomeResult::Ok,
            verified: None,
            detail: None,
        }),
    );
}

#[test]
fn an_oom_kill_is_acted_on_when_it_happens_not_while_its_record_lingers() {
    let mut e = pod_policy("pod: { reason: [OOMKilled] }");
    assert!(feed(&mut e, 0.0, pod(None, None, 0)).is_empty());
    // Seen for the first time already OOMKilled once: history, not news.
    let mut fresh = pod_policy("pod: { reason: [OOMKilled] }");
    assert!(feed(&mut fresh, 0.0, pod(None, Some("OOMKilled"), 1)).is_empty());

    assert_eq!(
        acts(&feed(&mut e, 60.0, pod(None, Some("OOMKilled"), 1))),
        1
    );
    ok(&mut e, 62.0, 1);
    // The restarted container runs; its last termination still says OOMKilled.
    for t in [120.0, 180.0, 600.0] {
        assert!(
            feed(&mut e, t, pod(None, Some("OOMKilled"), 1)).is_empty(),
            "acted again at {t}s on an old termination"
        );
    }
    // A new OOM kill is new evidence.
    assert_eq!(
        acts(&feed(&mut e, 700.0, pod(None, Some("OOMKilled"), 2))),
        1
    );
    // A termination for another reason is not this policy's.
    ok(&mut e, 702.0, 2);
    assert!(feed(&mut e, 800.0, pod(None, Some("Error"), 3)).is_empty());
}

#[test]
fn a_waiting_reason_is_live_state_and_a_deleted_pod_holds_nothing() {
    let mut e = pod_policy("pod: { reason: [CrashLoopBackOff] }\n      for: 30s");
    feed(&mut e, 0.0, pod(Some("CrashLoopBackOff"), Some("Error"), 2));
    // Deleted before the debounce ended: nothing to act on.
    feed(&mut e, 20.0, pod_event("php-0", None, None, 0, true));
    assert!(feed(&mut e, 40.0, Event::Tick {}).is_empty());
    // Another pod's trouble is not this policy's.
    assert!(feed(
        &mut e,
        41.0,
        pod_event("php-1", Some("CrashLoopBackOff"), None, 9, false)
    )
    .is_empty());
    // Back and crash-looping for the whole debounce: acted on.
    feed(
        &mut e,
        50.0,
        pod(Some("CrashLoopBackOff"), Some("Error"), 1),
    );
    assert_eq!(acts(&feed(&mut e, 80.0, Event::Tick {})), 1);
}

#[test]
fn restarts_count_per_container_and_nodes_default_to_ready_false_or_unknown() {
    let mut e = pod_policy("pod: { restarts: 3 }");
    assert!(feed(&mut e, 0.0, pod(None, Some("Error"), 2)).is_empty());
    assert_eq!(acts(&feed(&mut e, 1.0, pod(None, Some("Error"), 3))), 1);

    let yaml = "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: { name: n }\nspec:\n  target: { node: { name: worker-1 } }\n  trigger:\n    - node: {}\n  actions:\n    - notify: { webhook: \"http://127.0.0.1:9/\" }\n".to_string();
    let mut e = engine_from(&[yaml], Limits::default());
    let node = |conditions: &[(&str, crate::policy::ConditionValue)], deleted| {
        Event::Node(NodeObservation {
            name: "worker-1".into(),
            labels: BTreeMap::new(),
            conditions: conditions
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            deleted,
        })
    };
    use crate::policy::ConditionValue::{False, True};
    assert!(feed(&mut e, 0.0, node(&[("Ready", True)], false)).is_empty());
    assert!(feed(
        &mut e,
        1.0,
        node(&[("Ready", True), ("MemoryPressure", True)], false)
    )
    .is_empty());
    // Not reporting Ready at all is Unknown, which the default counts.
    assert_eq!(
        acts(&feed(
            &mut e,
            2.0,
            node(&[("MemoryPressure", False)], false)
        )),
        1
    );
}
