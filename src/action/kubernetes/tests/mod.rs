//! The Kubernetes family, request by request, against the API-server stand-in; each
//! attempt runs through the same `Executor` as the systemd family's.

use super::*;
use crate::engine::OutcomeResult;
use crate::kubernetes::api_server::{serve, Expect};
use serde_json::{json, Value};
use std::path::Path;
use std::time::UNIX_EPOCH;

fn policy(target: &str) -> Policy {
    let yaml = format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: php, namespace: web }}\nspec:\n  target: {target}\n  trigger:\n    - pod: {{ reason: [CrashLoopBackOff] }}\n  actions:\n    - restart: {{}}\n"
    )
    .replace(
        "pod: { reason: [CrashLoopBackOff] }",
        if target.contains("pods") {
            "pod: { reason: [CrashLoopBackOff] }"
        } else {
            "workload: {}"
        },
    );
    let (mut found, errors) = crate::policy::parse_file(Path::new("p.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    found.remove(0)
}

/// 2026-12-02T05:00:00Z, as the wall clock of these tests.
fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_187_600)
}

fn family(client: Client) -> Executor<KubernetesObjects> {
    Executor::new(
        KubernetesObjects::new(client, Some("salve-0".into()))
            .with_clock(fixed_clock)
            .with_retry(Retry {
                tries: 3,
                first_pause: Duration::from_millis(1),
            }),
    )
}

fn event_about(namespace: &'static str, kind: &'static str, name: &'static str) -> Expect {
    Expect::new(
        "POST",
        format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
    )
    .content_type("application/json")
    .body(move |event: &Value| {
        assert_eq!(event["reason"], EVENT_REASON, "{event}");
        assert_eq!(event["action"], "Restart", "{event}");
        assert_eq!(event["type"], "Normal", "{event}");
        assert_eq!(event["reportingController"], "salve", "{event}");
        assert_eq!(event["reportingInstance"], "salve-0", "{event}");
        assert_eq!(event["regarding"]["kind"], kind, "{event}");
        assert_eq!(event["regarding"]["name"], name, "{event}");
        assert!(
            event["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("salve policy php: ")),
            "{event}"
        );
    })
    .answer(201, json!({ "metadata": { "name": "x" } }))
}

fn pod_json() -> Value {
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "namespace": "web", "name": "php-0" } })
}

#[tokio::test]
async fn restarting_a_pod_deletes_it_and_records_an_event() {
    let (client, server) = serve(vec![
        Expect::new("DELETE", "/api/v1/namespaces/web/pods/php-0").answer(200, pod_json()),
        event_about("web", "Pod", "php-0"),
    ]);
    let executor = family(client);
    let outcome = executor
        .run_attempt(&policy("{ pods: { name: php-0 } }"), 7)
        .await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let steps = outcome.detail.map(|d| d.steps).unwrap_or_default();
    assert_eq!(steps, ["restart: deleted pod/web/php-0"]);
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_pod_already_gone_is_restarted_as_asked() {
    let (client, server) = serve(vec![
        Expect::new("DELETE", "/api/v1/namespaces/web/pods/php-0").fails(404, "NotFound"),
        event_about("web", "Pod", "php-0"),
    ]);
    let executor = family(client);
    let outcome = executor
        .run_attempt(&policy("{ pods: { name: php-0 } }"), 1)
        .await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let steps = outcome.detail.map(|d| d.steps).unwrap_or_default();
    assert_eq!(steps, ["restart: pod/web/php-0 was already gone"]);
    drop(executor);
    server.await.unwrap();
}

fn restarted_at_patch(path: &str) -> Expect {
    Expect::new("PATCH", path)
        .query("fieldManager", "salve")
        .content_type("application/strategic-merge-patch+json")
        .body(|patch: &Value| {
            assert_eq!(
                patch,
                &json!({ "spec": { "template": { "metadata": { "annotations": {
                    "kubectl.kubernetes.io/restartedAt": "2026-12-02T05:00:00Z"
                } } } } })
            );
        })
}

#[tokio::test]
async fn a_workload_restarts_its_rollout_through_429_and_500() {
    let path = "/apis/apps/v1/namespaces/web/deployments/php";
    let (client, server) = serve(vec![
        restarted_at_patch(path).fails(429, "TooManyRequests"),
        restarted_at_patch(path).fails(500, "InternalError"),
        restarted_at_patch(path).answer(
            200,
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "namespace": "web", "name": "php" } }),
        ),
        event_about("web", "Deployment", "php"),
    ]);
    let executor = family(client);
    let outcome = executor
        .run_attempt(&policy("{ deployment: { name: php } }"), 2)
        .await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let steps = outcome.detail.map(|d| d.steps).unwrap_or_default();
    assert_eq!(
        steps,
        ["restart: restarted the rollout of deployment/web/php"]
    );
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_statefulset_the_api_server_keeps_refusing_fails_the_attempt_and_records_nothing() {
    let path = "/apis/apps/v1/namespaces/db/statefulsets/mariadb";
    let (client, server) = serve(vec![
        restarted_at_patch(path).fails(500, "InternalError"),
        restarted_at_patch(path).fails(503, "ServiceUnavailable"),
        restarted_at_patch(path).fails(500, "InternalError"),
    ]);
    let executor = family(client);
    let outcome = executor
        .run_attempt(
            &policy("{ statefulset: { namespace: db, name: mariadb } }"),
            3,
        )
        .await;
    assert_eq!(outcome.result, OutcomeResult::Failed, "{outcome:?}");
    let error = outcome.detail.and_then(|d| d.error).unwrap_or_default();
    assert_eq!(
        error,
        "restart: the API server refused to change statefulset/db/mariadb: the server says InternalError (500 InternalError)"
    );
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_forbidden_change_is_not_retried() {
    let path = "/apis/apps/v1/namespaces/web/deployments/php";
    let (client, server) = serve(vec![restarted_at_patch(path).fails(403, "Forbidden")]);
    let executor = family(client);
    let outcome = executor
        .run_attempt(&policy("{ deployment: { name: php } }"), 4)
        .await;
    assert_eq!(outcome.result, OutcomeResult::Failed, "{outcome:?}");
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn an_event_the_api_server_refuses_costs_the_restart_nothing() {
    let (client, server) = serve(vec![
        Expect::new("DELETE", "/api/v1/namespaces/web/pods/php-0").answer(200, pod_json()),
        Expect::new("POST", "/apis/events.k8s.io/v1/namespaces/web/events").fails(403, "Forbidden"),
    ]);
    let executor = family(client);
    let outcome = executor
        .run_attempt(&policy("{ pods: { name: php-0 } }"), 5)
        .await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let steps = outcome.detail.map(|d| d.steps).unwrap_or_default();
    assert_eq!(steps.len(), 1);
    assert!(
        steps[0].starts_with("restart: deleted pod/web/php-0 (Event not recorded: "),
        "{steps:?}"
    );
    drop(executor);
    server.await.unwrap();
}

/// A policy on `target` running `actions` (YAML flow list items), with `verify` when
/// it is not empty.
fn policy_running(target: &str, trigger: &str, actions: &str, verify: &str) -> Policy {
    let verify = if verify.is_empty() {
        String::new()
    } else {
        format!("  verify: {verify}\n")
    };
    let yaml = format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: php, namespace: web }}\nspec:\n  target: {target}\n  trigger:\n    - {trigger}\n  actions: {actions}\n{verify}"
    );
    let (mut found, errors) = crate::policy::parse_file(Path::new("p.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    found.remove(0)
}

fn recorded(
    namespace: &'static str,
    kind: &'static str,
    name: &'static str,
    action: &'static str,
) -> Expect {
    Expect::new(
        "POST",
        format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
    )
    .body(move |event: &Value| {
        assert_eq!(event["reason"], EVENT_REASON, "{event}");
        assert_eq!(event["action"], action, "{event}");
        assert_eq!(event["regarding"]["kind"], kind, "{event}");
        assert_eq!(event["regarding"]["name"], name, "{event}");
    })
    .answer(201, json!({ "metadata": { "name": "x" } }))
}

fn scale_of(replicas: i32, version: &str) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": { "namespace": "web", "name": "php", "resourceVersion": version },
        "spec": { "replicas": replicas }
    })
}

fn scale_patch(path: &'static str, version: &'static str, replicas: i32) -> Expect {
    Expect::new("PATCH", path)
        .query("fieldManager", "salve")
        .content_type("application/merge-patch+json")
        .body(move |patch: &Value| {
            assert_eq!(
                patch,
                &json!({ "metadata": { "resourceVersion": version }, "spec": { "replicas": replicas } })
            );
        })
}

const SCALE: &str = "/apis/apps/v1/namespaces/web/deployments/php/scale";

#[tokio::test]
async fn scaling_reads_the_replicas_and_adds_within_the_bounds_reading_again_after_a_conflict() {
    let (client, server) = serve(vec![
        Expect::new("GET", SCALE).answer(200, scale_of(2, "41")),
        // An autoscaler changed it between the read and the write: read again.
        scale_patch(SCALE, "41", 4).fails(409, "Conflict"),
        Expect::new("GET", SCALE).answer(200, scale_of(3, "42")),
        scale_patch(SCALE, "42", 5).answer(200, scale_of(5, "43")),
        recorded("web", "Deployment", "php", "Scale"),
    ]);
    let executor = family(client);
    let policy = policy_running(
        "{ deployment: { name: php } }",
        "workload: {}",
        "[{ scale: { by: 2, min: 1, max: 5 } }]",
        "",
    );
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let steps = outcome.detail.map(|d| d.steps).unwrap_or_default();
    assert_eq!(
        steps,
        ["scale: scaled deployment/web/php from 3 to 5 replicas"]
    );
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_workload_at_its_maximum_is_not_scaled_and_the_attempt_fails() {
    let (client, server) = serve(vec![Expect::new("GET", SCALE).answer(200, scale_of(5, "7"))]);
    let executor = family(client);
    let policy = policy_running(
        "{ deployment: { name: php } }",
        "workload: {}",
        "[{ scale: { max: 5 } }]",
        "",
    );
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.result, OutcomeResult::Failed, "{outcome:?}");
    let error = outcome.detail.and_then(|d| d.error).unwrap_or_default();
    assert_eq!(
        error,
        "scale: deployment/web/php has 5 replicas, and the policy allows at most 5"
    );
    drop(executor);
    server.await.unwrap();
}

fn deployment_with_limit(limit: Option<&str>, version: &str) -> Value {
    let resources = match limit {
        Some(l) => json!({ "limits": { "memory": l, "cpu": "1" } }),
        None => json!({}),
    };
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "namespace": "web", "name": "php", "resourceVersion": version, "generation": 3 },
        "spec": {
            "selector": { "matchLabels": { "app": "php" } },
            "template": { "spec": { "containers": [
                { "name": "nginx", "image": "nginx", "resources": { "limits": { "memory": "64Mi" } } },
                { "name": "php", "image": "php", "resources": resources }
            ] } }
        }
    })
}

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/web/deployments/php";
const RAISE: &str = "[{ raiseMemoryLimit: { container: php, factor: 1.5, max: 1Gi } }]";

#[tokio::test]
async fn an_oom_killed_container_gets_its_memory_limit_raised_by_a_step() {
    let (client, server) = serve(vec![
        Expect::new("GET", DEPLOYMENT).answer(200, deployment_with_limit(Some("256Mi"), "9")),
        Expect::new("PATCH", DEPLOYMENT)
            .query("fieldManager", "salve")
            .content_type("application/strategic-merge-patch+json")
            .body(|patch: &Value| {
                assert_eq!(
                    patch,
                    &json!({
                        "metadata": { "resourceVersion": "9" },
                        "spec": { "template": { "spec": { "containers": [
                            { "name": "php", "resources": { "limits": { "memory": "384Mi" } } }
                        ] } } }
                    })
                );
            })
            .answer(200, deployment_with_limit(Some("384Mi"), "10")),
        recorded("web", "Deployment", "php", "RaiseMemoryLimit"),
    ]);
    let executor = family(client);
    let policy = policy_running("{ deployment: { name: php } }", "workload: {}", RAISE, "");
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let steps = outcome.detail.map(|d| d.steps).unwrap_or_default();
    assert_eq!(
        steps,
        ["raiseMemoryLimit: raised the memory limit of container php in deployment/web/php from 256Mi to 384Mi"]
    );
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_limit_at_its_cap_or_missing_is_left_alone() {
    for (limit, error) in [
        (
            Some("1Gi"),
            "raiseMemoryLimit: deployment/web/php: container php has a memory limit of 1Gi, at the policy's cap of 1Gi",
        ),
        (
            None,
            "raiseMemoryLimit: deployment/web/php: container php has no memory limit to raise (it may use all the node has)",
        ),
    ] {
        let (client, server) = serve(vec![
            Expect::new("GET", DEPLOYMENT).answer(200, deployment_with_limit(limit, "9"))
        ]);
        let executor = family(client);
        let policy = policy_running("{ deployment: { name: php } }", "workload: {}", RAISE, "");
        let outcome = executor.run_attempt(&policy, 1).await;
        assert_eq!(outcome.result, OutcomeResult::Failed, "{outcome:?}");
        assert_eq!(outcome.detail.and_then(|d| d.error).unwrap_or_default(), error);
        drop(executor);
        server.await.unwrap();
    }
}

#[tokio::test]
async fn cordoning_marks_the_node_unschedulable() {
    let (client, server) = serve(vec![
        Expect::new("PATCH", "/api/v1/nodes/worker-1")
            .query("fieldManager", "salve")
            .content_type("application/merge-patch+json")
            .body(|patch: &Value| {
                assert_eq!(patch, &json!({ "spec": { "unschedulable": true } }));
            })
            .answer(
                200,
                json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": "worker-1" } }),
            ),
        recorded("default", "Node", "worker-1", "Cordon"),
    ]);
    let executor = family(client);
    let policy = policy_running(
        "{ node: { name: worker-1 } }",
        "node: {}",
        "[{ cordon: {} }]",
        "",
    );
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    drop(executor);
    server.await.unwrap();
}

fn rollout(generation: i64, observed: i64, updated: i32, available: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "namespace": "web", "name": "php", "generation": generation },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "php" } }, "template": {} },
        "status": { "observedGeneration": observed, "updatedReplicas": updated, "availableReplicas": available }
    })
}

fn quick(client: Client) -> Executor<KubernetesObjects> {
    Executor::new(
        KubernetesObjects::new(client, Some("salve-0".into()))
            .with_clock(fixed_clock)
            .with_poll(Duration::from_millis(5))
            .with_retry(Retry {
                tries: 3,
                first_pause: Duration::from_millis(1),
            }),
    )
}

#[tokio::test]
async fn a_rollout_restart_is_verified_once_every_replica_is_updated_and_available() {
    let (client, server) = serve(vec![
        restarted_at_patch(DEPLOYMENT).answer(200, rollout(4, 3, 3, 3)),
        recorded("web", "Deployment", "php", "Restart"),
        // The controller has not seen the new template yet, then is half way.
        Expect::new("GET", DEPLOYMENT).answer(200, rollout(4, 3, 3, 3)),
        Expect::new("GET", DEPLOYMENT).answer(200, rollout(4, 4, 2, 3)),
        Expect::new("GET", DEPLOYMENT).answer(200, rollout(4, 4, 3, 3)),
    ]);
    let executor = quick(client);
    let policy = policy_running(
        "{ deployment: { name: php } }",
        "workload: {}",
        "[{ rolloutRestart: {} }]",
        "{ ready: { within: 10s } }",
    );
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    assert_eq!(outcome.verified, Some(true), "{outcome:?}");
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_deleted_pod_is_verified_by_its_replicaset_and_a_node_that_stays_not_ready_fails() {
    let deleted = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "namespace": "web", "name": "php-7d9c-x2x", "uid": "u-1",
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "php-7d9c", "uid": "rs-1", "controller": true }] }
    });
    let replicaset = |ready: i32| {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": { "namespace": "web", "name": "php-7d9c" },
            "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "php" } } },
            "status": { "replicas": 2, "readyReplicas": ready }
        })
    };
    let pod = "/api/v1/namespaces/web/pods/php-7d9c-x2x";
    let rs = "/apis/apps/v1/namespaces/web/replicasets/php-7d9c";
    let (client, server) = serve(vec![
        Expect::new("DELETE", pod).answer(200, deleted.clone()),
        recorded("web", "Pod", "php-7d9c-x2x", "Restart"),
        // Still terminating under the same uid, then gone: its ReplicaSet replaces it.
        Expect::new("GET", pod).answer(200, deleted),
        Expect::new("GET", pod).fails(404, "NotFound"),
        Expect::new("GET", rs).answer(200, replicaset(1)),
        Expect::new("GET", pod).fails(404, "NotFound"),
        Expect::new("GET", rs).answer(200, replicaset(2)),
    ]);
    let executor = quick(client);
    let policy = policy_running(
        "{ pods: { name: php-7d9c-x2x } }",
        "pod: { reason: [CrashLoopBackOff] }",
        "[{ deletePod: {} }]",
        "{ ready: { within: 10s } }",
    );
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    assert_eq!(outcome.verified, Some(true), "{outcome:?}");
    drop(executor);
    server.await.unwrap();

    // A node that stays NotReady fails its verification at `within`.
    let not_ready = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": { "name": "worker-1" },
        "status": { "conditions": [{ "type": "Ready", "status": "False" }] }
    });
    let mut script = vec![
        Expect::new("PATCH", "/api/v1/nodes/worker-1").answer(200, not_ready.clone()),
        recorded("default", "Node", "worker-1", "Cordon"),
    ];
    script.extend(
        (0..3).map(|_| Expect::new("GET", "/api/v1/nodes/worker-1").answer(200, not_ready.clone())),
    );
    let (client, _server) = serve(script);
    let executor =
        Executor::new(KubernetesObjects::new(client, None).with_poll(Duration::from_millis(40)));
    let policy = policy_running(
        "{ node: { name: worker-1 } }",
        "node: {}",
        "[{ cordon: {} }]",
        "{ ready: { within: 100ms } }",
    );
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.verified, Some(false), "{outcome:?}");
    assert!(!outcome.succeeded());
    assert_eq!(
        outcome.detail.and_then(|d| d.verification).as_deref(),
        Some("not ready within 100ms: node/worker-1 Ready=False")
    );
}

mod config_map;
mod rehearsal;
mod route;
