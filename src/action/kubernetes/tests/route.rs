//! A Gateway API backend drained, healed and ramped back through the API server, an
//! `HTTPRoute` request by request: the route read, its `spec.rules` patched with its
//! resourceVersion and field manager `salve`, a conflict read afresh.

use super::*;

const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/web/httproutes/shop";

/// The route: rule 0 splits between `php-a` and `php-b` (weight 10 each), rule 1 sends
/// everything to `php-b` on port 9000 without a weight (the Gateway API's 1).
fn route(version: u64, b_weight: Option<u64>) -> Value {
    let mut b = json!({ "name": "php-b", "port": 80 });
    if let Some(w) = b_weight {
        b["weight"] = json!(w);
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": { "namespace": "web", "name": "shop", "resourceVersion": version.to_string() },
        "spec": {
            "parentRefs": [{ "name": "edge" }],
            "rules": [
                { "backendRefs": [{ "name": "php-a", "port": 80, "weight": 10 }, b] },
                { "matches": [{ "path": { "type": "PathPrefix", "value": "/static" } }],
                  "backendRefs": [{ "name": "static", "port": 80 }] }
            ]
        }
    })
}

fn policy_draining(actions: &str) -> Policy {
    let yaml = format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: php, namespace: web }}\nspec:\n  target: {{ deployment: {{ name: php-b }} }}\n  trigger:\n    - workload: {{}}\n  actions:\n{actions}\n  verify: {{ ready: {{ within: 5s }} }}\n"
    );
    let (mut found, errors) = crate::policy::parse_file(Path::new("p.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    found.remove(0)
}

/// A patch of the route that sets php-b's weight in rule 0 to `weight`, every other
/// field as it was, with `version`.
fn patched(weight: u64, version: &'static str) -> Expect {
    Expect::new("PATCH", ROUTE)
        .query("fieldManager", "salve")
        .content_type("application/merge-patch+json")
        .body(move |patch: &Value| {
            assert_eq!(patch["metadata"]["resourceVersion"], version, "{patch}");
            let rules = &patch["spec"]["rules"];
            assert_eq!(rules[0]["backendRefs"][1]["name"], "php-b", "{patch}");
            assert_eq!(rules[0]["backendRefs"][1]["weight"], weight, "{patch}");
            assert_eq!(
                rules[0]["backendRefs"][0]["weight"], 10,
                "php-a untouched: {patch}"
            );
            assert_eq!(rules[1]["backendRefs"][0].get("weight"), None, "{patch}");
            assert_eq!(
                rules[1]["matches"][0]["path"]["value"], "/static",
                "{patch}"
            );
        })
}

/// php-b, its rollout complete: what `verify.ready` waits for.
fn rolled_out() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "namespace": "web", "name": "php-b", "generation": 2 },
        "spec": { "replicas": 1 },
        "status": { "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1 }
    })
}

#[tokio::test]
async fn a_drained_backend_gets_its_weight_back_in_steps_once_verified() {
    let deployment = rolled_out();
    let (client, server) = serve(vec![
        Expect::new("GET", ROUTE).answer(200, route(5, Some(10))),
        // Someone changed the route between the read and the write: read afresh.
        patched(0, "5").fails(409, "Conflict"),
        Expect::new("GET", ROUTE).answer(200, route(6, Some(10))),
        patched(0, "6").answer(200, route(7, Some(0))),
        Expect::new("PATCH", "/apis/apps/v1/namespaces/web/deployments/php-b")
            .answer(200, deployment.clone()),
        event_about("web", "Deployment", "php-b"),
        Expect::new("GET", "/apis/apps/v1/namespaces/web/deployments/php-b")
            .answer(200, deployment),
        Expect::new("GET", ROUTE).answer(200, route(8, Some(0))),
        patched(5, "8").answer(200, route(9, Some(5))),
        Expect::new("GET", ROUTE).answer(200, route(9, Some(5))),
        patched(10, "9").answer(200, route(10, Some(10))),
    ]);
    let executor = family(client);
    let policy = policy_draining(
        "    - drain: { gateway: { route: shop, service: php-b, port: 80 }, ramp: { steps: 2, interval: 10ms } }\n    - rolloutRestart: {}",
    );
    let outcome = executor.run_attempt(&policy, 3).await;
    drop(executor);
    server.await.unwrap();
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    assert_eq!(outcome.verified, Some(true), "{outcome:?}");
    let steps = outcome.detail.unwrap().steps;
    assert_eq!(
        steps[0],
        "drain: drained HTTPRoute web/shop backend php-b:80: weight 10 -> 0"
    );
    assert_eq!(
        &steps[2..],
        [
            "ramp: step 1 of 2: HTTPRoute web/shop backend php-b:80: weight 0 -> 5",
            "ramp: step 2 of 2: HTTPRoute web/shop backend php-b:80: weight 5 -> 10",
        ]
    );
}

/// php-b in two rules, beside php-a in each, at weights `first` and `second`.
fn two_rules(version: u64, first: u64, second: u64) -> Value {
    let rule = |w: u64| {
        json!({ "backendRefs": [
            { "name": "php-a", "port": 80, "weight": 10 },
            { "name": "php-b", "port": 80, "weight": w }
        ] })
    };
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": { "namespace": "web", "name": "shop", "resourceVersion": version.to_string() },
        "spec": { "parentRefs": [{ "name": "edge" }], "rules": [rule(first), rule(second)] }
    })
}

fn patched_both(first: u64, second: u64) -> Expect {
    Expect::new("PATCH", ROUTE)
        .query("fieldManager", "salve")
        .body(move |patch: &Value| {
            let rules = &patch["spec"]["rules"];
            assert_eq!(rules[0]["backendRefs"][1]["weight"], first, "{patch}");
            assert_eq!(rules[1]["backendRefs"][1]["weight"], second, "{patch}");
        })
}

/// A Service weighted differently in two rules gets each rule's own weight back, in
/// steps: a share of what it had there, not the largest everywhere.
#[tokio::test]
async fn each_rule_gets_its_own_weight_back() {
    let deployment = rolled_out();
    let (client, server) = serve(vec![
        Expect::new("GET", ROUTE).answer(200, two_rules(5, 10, 4)),
        patched_both(0, 0).answer(200, two_rules(6, 0, 0)),
        Expect::new("PATCH", "/apis/apps/v1/namespaces/web/deployments/php-b")
            .answer(200, deployment.clone()),
        event_about("web", "Deployment", "php-b"),
        Expect::new("GET", "/apis/apps/v1/namespaces/web/deployments/php-b")
            .answer(200, deployment),
        Expect::new("GET", ROUTE).answer(200, two_rules(6, 0, 0)),
        patched_both(5, 2).answer(200, two_rules(7, 5, 2)),
        Expect::new("GET", ROUTE).answer(200, two_rules(7, 5, 2)),
        patched_both(10, 4).answer(200, two_rules(8, 10, 4)),
    ]);
    let executor = family(client);
    let policy = policy_draining(
        "    - drain: { gateway: { route: shop, service: php-b }, ramp: { steps: 2, interval: 10ms } }\n    - rolloutRestart: {}",
    );
    let outcome = executor.run_attempt(&policy, 3).await;
    drop(executor);
    server.await.unwrap();
    assert_eq!(outcome.verified, Some(true), "{outcome:?}");
    let steps = outcome.detail.unwrap().steps;
    assert_eq!(
        steps[0],
        "drain: drained HTTPRoute web/shop backend php-b: weight 10, 4 -> 0"
    );
    assert_eq!(
        &steps[2..],
        [
            "ramp: step 1 of 2: HTTPRoute web/shop backend php-b: weight 0, 0 -> 5, 2",
            "ramp: step 2 of 2: HTTPRoute web/shop backend php-b: weight 5, 2 -> 10, 4",
        ]
    );
}

#[tokio::test]
async fn the_last_backend_of_a_rule_is_not_drained_and_the_heal_goes_on() {
    // php-a already at 0: draining php-b would leave rule 0 nothing.
    let mut at_zero = route(5, Some(10));
    at_zero["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(0);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "namespace": "web", "name": "php-b" }, "spec": { "replicas": 1 }
    });
    let (client, server) = serve(vec![
        Expect::new("GET", ROUTE).answer(200, at_zero),
        Expect::new("PATCH", "/apis/apps/v1/namespaces/web/deployments/php-b")
            .answer(200, deployment),
        event_about("web", "Deployment", "php-b"),
    ]);
    let executor = family(client);
    let yaml_actions =
        "    - drain: { gateway: { route: shop, service: php-b } }\n    - rolloutRestart: {}";
    let mut policy = policy_draining(yaml_actions);
    policy.spec.verify = None;
    let outcome = executor.run_attempt(&policy, 4).await;
    drop(executor);
    server.await.unwrap();
    let detail = outcome.detail.unwrap();
    assert_eq!(
        detail.steps[0],
        "drain: not drained: refused to drain HTTPRoute web/shop backend php-b: rule 0 of the route sends traffic to no other backend; the rest of the attempt goes on"
    );
    assert!(
        detail.steps[1].starts_with("rolloutRestart: "),
        "{:?}",
        detail.steps
    );
    assert!(detail.escalate.is_some());
}

#[tokio::test]
async fn a_route_without_the_service_is_a_clear_error() {
    let (client, server) = serve(vec![Expect::new("GET", ROUTE).answer(200, route(5, None))]);
    let executor = family(client);
    let mut policy =
        policy_draining("    - setWeight: { gateway: { route: shop, service: php-c }, weight: 3 }");
    policy.spec.verify = None;
    let outcome = executor.run_attempt(&policy, 5).await;
    drop(executor);
    server.await.unwrap();
    assert_eq!(outcome.result, OutcomeResult::Failed);
    assert_eq!(
        outcome.detail.unwrap().error.as_deref(),
        Some("setWeight: HTTPRoute web/shop backend php-c: no rule of the route sends traffic to that Service")
    );
}

#[tokio::test]
async fn a_dry_run_reads_the_route_for_real_and_patches_it_in_the_api_servers_dry_run() {
    let (client, server) = serve(vec![
        Expect::new("GET", ROUTE).answer(200, route(5, Some(10))),
        patched(0, "5")
            .query("dryRun", "All")
            .dry_run()
            .answer(200, route(5, Some(10))),
    ]);
    let executor = family(client);
    let mut policy = policy_draining("    - drain: { gateway: { route: shop, service: php-b } }");
    policy.spec.dry_run = true;
    let rehearsed = executor.rehearse(&policy).await;
    drop(executor);
    server.await.unwrap();
    assert_eq!(
        rehearsed,
        Some((
            true,
            vec!["drain: would set HTTPRoute web/shop backend php-b: weight 10 -> 0".to_string()]
        ))
    );
}

#[tokio::test]
async fn a_zero_weight_keeps_a_rule_served_and_a_backend_already_at_zero_is_not_ramped() {
    // php-a at 0: php-b is rule 0's only weighted backend.
    let mut only_b = route(5, Some(10));
    only_b["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(0);
    let (client, server) = serve(vec![Expect::new("GET", ROUTE).answer(200, only_b)]);
    let executor = family(client);
    let mut zero =
        policy_draining("    - setWeight: { gateway: { route: shop, service: php-b }, weight: 0 }");
    zero.spec.verify = None;
    let outcome = executor.run_attempt(&zero, 6).await;
    drop(executor);
    server.await.unwrap();
    assert_eq!(
        outcome.detail.unwrap().error.as_deref(),
        Some("setWeight: refused to drain HTTPRoute web/shop backend php-b: rule 0 of the route sends traffic to no other backend")
    );
    // php-b already at 0 (an earlier drain that never ramped): drained again, but
    // there is no weight to give back.
    let (client, server) = serve(vec![
        Expect::new("GET", ROUTE).answer(200, route(5, Some(0))),
        patched(0, "5").answer(200, route(6, Some(0))),
    ]);
    let executor = family(client);
    let mut again = policy_draining(
        "    - drain: { gateway: { route: shop, service: php-b }, ramp: { steps: 2, interval: 10ms } }",
    );
    again.spec.verify = None;
    let outcome = executor.run_attempt(&again, 7).await;
    drop(executor);
    server.await.unwrap();
    assert_eq!(
        outcome.detail.unwrap().steps,
        ["drain: drained HTTPRoute web/shop backend php-b: weight 0 -> 0; no ramp: its weight before is not known, give it back with setWeight"]
    );
}
