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
