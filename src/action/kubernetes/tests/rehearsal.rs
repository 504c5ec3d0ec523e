//! A dry-run policy's changes, rehearsed with the API server's own dry run: every
//! write carries `dryRun=All` (the stand-in fails any request whose dry-run flag is
//! not the one expected), nothing is recorded as an Event, nothing is verified, and a
//! refusal is quoted.

use super::*;

const SITE: &str =
    "server {\n    location ~ \\.php$ {\n        fastcgi_pass php:9000;\n        fastcgi_buffer_size 4k;\n    }\n}\n";

#[tokio::test]
async fn a_pod_is_deleted_in_a_dry_run_only_and_no_event_is_recorded() {
    let (client, server) = serve(vec![Expect::new(
        "DELETE",
        "/api/v1/namespaces/web/pods/php-0",
    )
    .dry_run()
    .answer(200, pod_json())]);
    let executor = family(client);
    let rehearsed = executor
        .rehearse(&policy("{ pods: { name: php-0 } }"))
        .await;
    assert_eq!(
        rehearsed,
        Some((
            true,
            vec!["restart: would delete pod/web/php-0".to_string()]
        ))
    );
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn scaling_is_read_for_real_and_written_in_a_dry_run() {
    let (client, server) = serve(vec![
        Expect::new("GET", SCALE).answer(200, scale_of(2, "41")),
        scale_patch(SCALE, "41", 3)
            .query("dryRun", "All")
            .dry_run()
            .answer(200, scale_of(3, "41")),
    ]);
    let executor = family(client);
    let policy = policy_running(
        "{ deployment: { name: php } }",
        "workload: {}",
        "[{ scale: { by: 1, max: 4 } }, { notify: { webhook: \"http://127.0.0.1:9/hook\" } }]",
        "",
    );
    let rehearsed = executor.rehearse(&policy).await;
    assert_eq!(
        rehearsed,
        Some((
            true,
            vec![
                "scale: would scale deployment/web/php from 2 to 3 replicas".to_string(),
                "notify: not rehearsed (nothing is sent in a dry run)".to_string(),
            ]
        ))
    );
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_change_rbac_forbids_is_reported_refused_and_the_rest_is_not_tried() {
    let (client, server) = serve(vec![Expect::new("PATCH", "/api/v1/nodes/worker-1")
        .query("fieldManager", "salve")
        .query("dryRun", "All")
        .dry_run()
        .fails(403, "Forbidden")]);
    let executor = family(client);
    let policy = policy_running(
        "{ node: { name: worker-1 } }",
        "node: {}",
        "[{ cordon: {} }, { notify: { webhook: \"http://127.0.0.1:9/hook\" } }]",
        "",
    );
    let (accepted, steps) = executor.rehearse(&policy).await.expect("rehearsed");
    assert!(!accepted);
    assert_eq!(
        steps,
        ["cordon: the API server refused to change node/worker-1: the server says Forbidden (403 Forbidden)"]
    );
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_config_map_edit_rehearses_its_first_step_and_the_rollout() {
    let config_map = json!({ "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "namespace": "web", "name": "nginx", "resourceVersion": "5" },
        "data": { "default.conf": SITE } });
    let path = "/api/v1/namespaces/web/configmaps/nginx";
    let (client, server) = serve(vec![
        Expect::new("GET", path).answer(200, config_map.clone()),
        Expect::new("GET", path).answer(200, config_map.clone()),
        Expect::new("PATCH", path)
            .query("dryRun", "All")
            .query("fieldManager", "salve")
            .content_type("application/merge-patch+json")
            .body(|patch: &Value| {
                assert_eq!(patch["metadata"]["resourceVersion"], "5");
                let text = patch["data"]["default.conf"].as_str().unwrap_or_default();
                assert!(text.contains("fastcgi_buffer_size 8k;"), "{text}");
            })
            .dry_run()
            .answer(200, config_map),
        restarted_at_patch("/apis/apps/v1/namespaces/web/deployments/php")
            .query("dryRun", "All")
            .dry_run()
            .answer(
                200,
                json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "namespace": "web", "name": "php" } }),
            ),
    ]);
    let executor = family(client);
    let policy = policy_running(
        "{ deployment: { name: php } }",
        "workload: {}",
        "[{ configMapEdit: { configMap: nginx, key: default.conf, context: 'location ~ \\.php$', raise: [{ directive: fastcgi_buffer_size, factor: 2, max: 64k }] } }]",
        "{ ready: { within: 200ms } }",
    );
    let (accepted, steps) = executor.rehearse(&policy).await.expect("rehearsed");
    assert!(accepted, "{steps:?}");
    assert_eq!(steps.len(), 1);
    assert_eq!(
        steps,
        ["configMapEdit: would edit configmap/web/nginx/default.conf: fastcgi_buffer_size 4k -> 8k in `location ~ \\.php$`, then restart the rollout of deployment/web/php"]
    );
    drop(executor);
    server.await.unwrap();
}

#[tokio::test]
async fn a_policy_with_nothing_to_rehearse_makes_no_request() {
    let (client, server) = serve(vec![]);
    let executor = family(client);
    let policy = policy_running(
        "{ deployment: { name: php } }",
        "workload: {}",
        "[{ notify: { webhook: \"http://127.0.0.1:9/hook\" } }]",
        "",
    );
    assert_eq!(executor.rehearse(&policy).await, None);
    drop(executor);
    server.await.unwrap();
}
