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
        conditions: Default::default(),
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

fn pod_with(conditions: &[(&str, crate::policy::ConditionValue)], restarts: u32) -> Event {
    let Event::Pod(mut obs) = pod(None, None, restarts) else {
        unreachable!("pod() makes a pod")
    };
    obs.conditions = conditions
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    Event::Pod(obs)
}

#[test]
fn a_pod_not_ready_for_the_whole_hold_is_acted_on_and_one_ready_again_is_not() {
    use crate::policy::ConditionValue::{False, True};
    let mut e = pod_policy("pod: { condition: Ready }\n      for: 2m");
    assert!(feed(&mut e, 0.0, pod_with(&[("Ready", True)], 0)).is_empty());
    feed(&mut e, 10.0, pod_with(&[("Ready", False)], 0));
    // Ready again before the hold ended: the clock starts over.
    feed(&mut e, 100.0, pod_with(&[("Ready", True)], 0));
    assert!(feed(&mut e, 140.0, Event::Tick {}).is_empty());
    feed(&mut e, 150.0, pod_with(&[("Ready", False)], 0));
    assert!(feed(&mut e, 260.0, Event::Tick {}).is_empty());
    let decided = feed(&mut e, 271.0, Event::Tick {});
    assert_eq!(acts(&decided), 1);
    let evidence = match &decided[0] {
        Verdict::Act { evidence, .. } => evidence.join(" "),
        other => panic!("{other:?}"),
    };
    assert!(evidence.contains("Ready=False"), "{evidence}");

    // With container constraints too, all must hold: not Ready and restarted 3 times.
    let mut e = pod_policy("pod: { condition: Ready, status: [\"False\", Unknown], restarts: 3 }");
    assert!(feed(&mut e, 0.0, pod_with(&[("Ready", False)], 2)).is_empty());
    assert!(feed(&mut e, 1.0, pod_with(&[("Ready", True)], 3)).is_empty());
    // A pod that does not report Ready at all is Unknown.
    assert_eq!(acts(&feed(&mut e, 2.0, pod_with(&[], 3))), 1);
}

#[test]
fn a_deployment_past_its_progress_deadline_is_acted_on_whatever_its_replicas() {
    use crate::policy::ConditionValue::{False, True};
    let policy = |trigger: &str| {
        let yaml = format!("apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: p, namespace: web }}\nspec:\n  target: {{ deployment: {{ name: php }} }}\n  trigger:\n    - {trigger}\n  actions:\n    - restart: {{}}\n  guard: {{ cooldown: 10s, maxAttempts: 5, window: 1h }}\n");
        engine_from(&[yaml], Limits::default())
    };
    let deployment = |available: u32, progressing: crate::policy::ConditionValue| {
        Event::Workload(WorkloadObservation {
            kind: WorkloadKind::Deployment,
            namespace: "web".into(),
            name: "php".into(),
            labels: BTreeMap::new(),
            replicas: 3,
            available,
            conditions: [("Progressing".to_string(), progressing)].into(),
            deleted: false,
        })
    };
    // Only the condition counts: replicas may all be up on the old ReplicaSet.
    let mut e = policy("workload: { condition: Progressing }");
    assert!(feed(&mut e, 0.0, deployment(1, True)).is_empty());
    let decided = feed(&mut e, 1.0, deployment(3, False));
    assert_eq!(acts(&decided), 1);
    let evidence = match &decided[0] {
        Verdict::Act { evidence, .. } => evidence.join(" "),
        other => panic!("{other:?}"),
    };
    assert!(
        evidence.contains("3 of 3 replicas available, Progressing=False"),
        "{evidence}"
    );

    // Both given: both must hold.
    let mut e = policy("workload: { condition: Progressing, unavailable: 2 }");
    assert!(feed(&mut e, 0.0, deployment(2, False)).is_empty());
    assert!(feed(&mut e, 1.0, deployment(1, True)).is_empty());
    assert_eq!(acts(&feed(&mut e, 2.0, deployment(1, False))), 1);

    // Neither given: one replica unavailable, as before.
    let mut e = policy("workload: {}");
    assert!(feed(&mut e, 0.0, deployment(3, False)).is_empty());
    assert_eq!(acts(&feed(&mut e, 1.0, deployment(2, True))), 1);
}
