//! `configMapEdit` against a stand-in cluster holding the ConfigMap and the Deployment.

use super::*;

/// nginx's site config in a ConfigMap, as a Deployment mounts it.
const SITE: &str = "server {\n    listen 80;\n    # PHP behind FastCGI\n    location ~ \\.php$ {\n        fastcgi_pass php:9000;\n        fastcgi_buffer_size 4k;\n    }\n}\n";
const CONFIG_MAP: &str = "/api/v1/namespaces/web/configmaps/nginx";

/// A cluster holding the ConfigMap and the Deployment: the rollout completes only with
/// a buffer of at least `needs`; the first ConfigMap patch meets a conflict; `meddle`
/// changes the key after salve's first read, as a person editing it at the same time.
struct NginxCluster {
    text: String,
    version: u64,
    needs: &'static str,
    conflicted: bool,
    reads: u32,
    meddle: bool,
    /// Writes that land but whose answer is lost (a 500 after the commit).
    lost_answers: u32,
}

impl NginxCluster {
    fn answer(
        &mut self,
        seen: &crate::kubernetes::api_server::Seen,
    ) -> crate::kubernetes::api_server::Reply {
        use crate::kubernetes::api_server::Reply;
        let config_map = |text: &str, version: u64| {
            json!({ "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": { "namespace": "web", "name": "nginx", "resourceVersion": version.to_string() },
                    "data": { "default.conf": text, "other.conf": "# untouched\n" } })
        };
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", CONFIG_MAP) => {
                self.reads += 1;
                if self.meddle && self.reads == 2 {
                    self.text = self.text.replace("listen 80;", "listen 8080;");
                    self.version += 1;
                }
                Reply::Json(200, config_map(&self.text, self.version))
            }
            ("PATCH", CONFIG_MAP) => {
                let body = seen.body.clone().unwrap_or_default();
                if !self.conflicted {
                    self.conflicted = true;
                    self.version += 1;
                    return Reply::Json(
                        409,
                        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "the object has been modified", "reason": "Conflict", "code": 409 }),
                    );
                }
                if body["metadata"]["resourceVersion"] != json!(self.version.to_string()) {
                    return Reply::Json(
                        409,
                        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "stale", "reason": "Conflict", "code": 409 }),
                    );
                }
                self.text = body["data"]["default.conf"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.version += 1;
                if self.lost_answers > 0 {
                    self.lost_answers -= 1;
                    return Reply::Json(
                        500,
                        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "the answer was lost", "reason": "InternalError", "code": 500 }),
                    );
                }
                Reply::Json(200, config_map(&self.text, self.version))
            }
            ("PATCH", DEPLOYMENT) => Reply::Json(200, rollout(2, 1, 3, 3)),
            ("GET", DEPLOYMENT) => {
                let ready = self
                    .text
                    .contains(&format!("fastcgi_buffer_size {};", self.needs));
                Reply::Json(
                    200,
                    if ready {
                        rollout(2, 2, 3, 3)
                    } else {
                        rollout(2, 2, 3, 1)
                    },
                )
            }
            ("POST", "/apis/events.k8s.io/v1/namespaces/web/events") => {
                Reply::Json(201, json!({ "metadata": { "name": "e" } }))
            }
            _ => Reply::Json(
                404,
                json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "not found", "reason": "NotFound", "code": 404 }),
            ),
        }
    }
}

fn nginx_cluster(
    needs: &'static str,
    meddle: bool,
) -> (
    Client,
    tokio::sync::mpsc::UnboundedReceiver<crate::kubernetes::api_server::Seen>,
    std::sync::Arc<std::sync::Mutex<NginxCluster>>,
) {
    let cluster = std::sync::Arc::new(std::sync::Mutex::new(NginxCluster {
        text: SITE.to_string(),
        version: 10,
        needs,
        conflicted: meddle,
        reads: 0,
        meddle,
        lost_answers: 0,
    }));
    let shared = cluster.clone();
    let (client, seen) =
        crate::kubernetes::api_server::route(move |seen| shared.lock().unwrap().answer(seen));
    (client, seen, cluster)
}

fn config_map_policy(max: &str) -> Policy {
    policy_running(
        "{ deployment: { name: php } }",
        "workload: {}",
        &format!("[{{ configMapEdit: {{ configMap: nginx, key: default.conf, context: 'location ~ \\.php$', raise: [{{ directive: fastcgi_buffer_size, factor: 2, max: {max} }}] }} }}]"),
        "{ ready: { within: 200ms } }",
    )
}

fn drain(
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<crate::kubernetes::api_server::Seen>,
) -> Vec<crate::kubernetes::api_server::Seen> {
    let mut all = Vec::new();
    while let Ok(s) = seen.try_recv() {
        all.push(s);
    }
    all
}

#[tokio::test]
async fn a_configmap_key_is_raised_a_step_at_a_time_with_a_rollout_each_until_it_verifies() {
    let (client, mut seen, cluster) = nginx_cluster("16k", false);
    let executor = quick(client);
    let outcome = executor.run_attempt(&config_map_policy("64k"), 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    assert_eq!(outcome.verified, Some(true), "{outcome:?}");
    let detail = outcome.detail.clone().unwrap_or_default();
    assert_eq!(
        detail.steps,
        ["configMapEdit: edited configmap/web/nginx/default.conf: fastcgi_buffer_size 4k -> 8k in `location ~ \\.php$`; fastcgi_buffer_size 8k -> 16k in `location ~ \\.php$`; restarted the rollout of deployment/web/php after each step"],
        "{outcome:?}"
    );
    assert!(
        detail.diffs[0]
            .contains("-        fastcgi_buffer_size 4k;\n+        fastcgi_buffer_size 16k;"),
        "{:?}",
        detail.diffs
    );
    // Only the directive changed, byte for byte; the comment and the rest stay.
    assert_eq!(cluster.lock().unwrap().text, SITE.replace("4k;", "16k;"));

    let requests = drain(&mut seen);
    let patches: Vec<_> = requests
        .iter()
        .filter(|s| s.method == "PATCH" && s.path == CONFIG_MAP)
        .collect();
    // The conflict was read again and written with the new version; then the 2nd step.
    assert_eq!(patches.len(), 3, "{patches:#?}");
    for patch in &patches {
        assert!(patch.query.contains("fieldManager=salve"), "{patch:?}");
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        let body = patch.body.clone().unwrap_or_default();
        assert_eq!(
            body["data"].as_object().map(|d| d.len()),
            Some(1),
            "only the key: {body}"
        );
        assert!(body["metadata"]["resourceVersion"].is_string(), "{body}");
    }
    let rollouts = requests
        .iter()
        .filter(|s| s.method == "PATCH" && s.path == DEPLOYMENT)
        .count();
    assert_eq!(rollouts, 2, "one rollout per step");
    let events: Vec<_> = requests.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].body.as_ref().unwrap()["action"], "ConfigMapEdit");
}

#[tokio::test]
async fn an_edit_that_never_verifies_puts_the_original_text_back_and_rolls_out_again() {
    let (client, mut seen, cluster) = nginx_cluster("32k", false);
    let executor = quick(client);
    let outcome = executor.run_attempt(&config_map_policy("16k"), 1).await;
    assert_eq!(outcome.result, OutcomeResult::Failed, "{outcome:?}");
    let error = outcome
        .detail
        .clone()
        .and_then(|d| d.error)
        .unwrap_or_default();
    assert!(error.contains("which did not verify"), "{error}");
    assert!(
        error.contains("the original text is back and the rollout restarted again"),
        "{error}"
    );
    assert_eq!(cluster.lock().unwrap().text, SITE, "the original bytes");
    let requests = drain(&mut seen);
    let rollouts = requests
        .iter()
        .filter(|s| s.method == "PATCH" && s.path == DEPLOYMENT)
        .count();
    assert_eq!(rollouts, 3, "two steps, then one with the original");
}

#[tokio::test]
async fn a_key_someone_changes_meanwhile_is_left_as_they_wrote_it() {
    let (client, mut seen, cluster) = nginx_cluster("16k", true);
    let executor = quick(client);
    let outcome = executor.run_attempt(&config_map_policy("64k"), 1).await;
    assert_eq!(outcome.result, OutcomeResult::Failed, "{outcome:?}");
    let error = outcome
        .detail
        .clone()
        .and_then(|d| d.error)
        .unwrap_or_default();
    assert!(error.contains("was changed by someone else while salve was editing it; their version was left in place"), "{error}");
    assert!(cluster.lock().unwrap().text.contains("listen 8080;"));
    let requests = drain(&mut seen);
    assert!(
        requests.iter().all(|s| s.method == "GET"),
        "nothing written: {requests:#?}"
    );
}

#[tokio::test]
async fn a_configmap_already_at_the_cap_is_not_applicable_and_a_missing_key_fails() {
    let (client, mut seen, _cluster) = nginx_cluster("16k", false);
    let executor = quick(client);
    let outcome = executor.run_attempt(&config_map_policy("4k"), 1).await;
    assert_eq!(outcome.result, OutcomeResult::NotApplicable, "{outcome:?}");
    let policy = policy_running(
        "{ deployment: { name: php } }",
        "workload: {}",
        "[{ configMapEdit: { configMap: nginx, key: missing.conf, context: http, set: [{ directive: client_max_body_size, value: 8m }] } }]",
        "{ ready: { within: 200ms } }",
    );
    let outcome = executor.run_attempt(&policy, 2).await;
    assert_eq!(outcome.result, OutcomeResult::Failed, "{outcome:?}");
    let error = outcome.detail.and_then(|d| d.error).unwrap_or_default();
    assert!(
        error.contains("configmap/web/nginx/missing.conf: the ConfigMap has no such key"),
        "{error}"
    );
    assert!(drain(&mut seen).iter().all(|s| s.method == "GET"));
}

#[tokio::test]
async fn a_write_that_landed_though_its_answer_was_lost_is_not_taken_for_someone_elses() {
    let (client, _seen, cluster) = nginx_cluster("8k", false);
    cluster.lock().unwrap().lost_answers = 1;
    let executor = quick(client);
    let outcome = executor.run_attempt(&config_map_policy("64k"), 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    assert_eq!(cluster.lock().unwrap().text, SITE.replace("4k;", "8k;"));
}
