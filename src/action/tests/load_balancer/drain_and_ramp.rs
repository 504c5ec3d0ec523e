//! A node-side attempt: drain this node at the load balancer, restart, verify, then
//! the weight back in steps; an attempt that does not verify leaves it drained.

use super::*;

#[tokio::test]
async fn a_verified_node_gets_its_weight_back_in_steps() {
    let Some(h) = Haproxy::start("ramp") else {
        return;
    };
    let executor = Scripted::new(vec![Ok("restarted".into())], true);
    let outcome = executor.run_attempt(&draining(&h.socket()), 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let steps = outcome.detail.unwrap().steps;
    assert_eq!(
        steps,
        [
            "drain: drained web/b: ready, weight 10 -> drain, weight 10",
            "restart: restarted",
            "ramp: step 1 of 3: web/b: drain, weight 10 -> ready, weight 3",
            "ramp: step 2 of 3: web/b: ready, weight 3 -> ready, weight 6",
            "ramp: step 3 of 3: web/b: ready, weight 6 -> ready, weight 10",
        ]
    );
    assert_eq!(weight_of_b(&h).await, (0, 10));
}

#[tokio::test]
async fn a_node_that_does_not_verify_stays_drained() {
    let Some(h) = Haproxy::start("noramp") else {
        return;
    };
    let executor = Scripted::new(vec![Ok("restarted".into())], false);
    let outcome = executor.run_attempt(&draining(&h.socket()), 1).await;
    assert_eq!(outcome.verified, Some(false), "{outcome:?}");
    let steps = outcome.detail.unwrap().steps;
    assert_eq!(
        steps.last().map(String::as_str),
        Some("ramp: not run: web/b stays drained, as the attempt did not verify")
    );
    let (admin, weight) = weight_of_b(&h).await;
    assert_eq!((admin & 0x08, weight), (0x08, 10));
    // Nor does an attempt whose restart failed.
    let executor = Scripted::new(vec![Err(Failure::failed("no".into()))], true);
    let outcome = executor.run_attempt(&draining(&h.socket()), 2).await;
    assert_eq!(outcome.result, OutcomeResult::Failed);
    assert_eq!(weight_of_b(&h).await.0 & 0x08, 0x08);
}

#[tokio::test]
async fn a_ramp_haproxy_refuses_fails_the_attempt_and_leaves_the_weight_as_it_was() {
    let Some(h) = Haproxy::start("refused") else {
        return;
    };
    // A static balance algorithm takes no weight but 0% and 100%.
    let executor = Scripted::new(vec![Ok("restarted".into())], true);
    let outcome = executor
        .run_attempt(&draining_on(&h.socket(), "fixed10", "e"), 1)
        .await;
    assert_eq!(outcome.result, OutcomeResult::Failed, "{outcome:?}");
    let detail = outcome.detail.unwrap();
    assert_eq!(
        detail.error.as_deref(),
        Some("ramp: HAProxy refused `set weight fixed10/e 3`: Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.")
    );
    let e = runtime_api(&h).server("fixed10", "e").await.unwrap();
    assert_eq!((e.admin & 0x08, e.weight), (0x08, 10), "{e:?}");
}

/// The load balancer's own policy: its target is the server, probed over HTTP; the
/// drain names no server (the target is it), and the weight comes back once the
/// backend answers again.
#[tokio::test]
async fn a_backend_that_answers_again_gets_its_weight_back() {
    use crate::signal::http::test_server::{response, serve};
    let Some(h) = Haproxy::start("lbside") else {
        return;
    };
    let (url, _requests) = serve(vec![response(503, "down"), response(200, "ok")]).await;
    let target = serde_json::json!({ "socket": h.socket(), "backend": "web", "server": "b" });
    let doc = serde_json::json!({
        "apiVersion": "salve.dev/v1alpha1",
        "kind": "RemediationPolicy",
        "metadata": { "name": "lb-b" },
        "spec": {
            "target": { "haproxy": target },
            "trigger": [{ "http": { "url": url.as_str(), "failures": 2 } }],
            "actions": [{ "drain": { "ramp": { "steps": 2, "interval": "10ms" } } }],
            "verify": { "http": { "url": url.as_str(), "status": [200], "within": "10s" } }
        }
    });
    let policy = crate::policy::decode_resource(&doc, "test").expect("valid");
    assert_eq!(
        crate::engine::target_name(&policy),
        format!("haproxy:web/b@{}", h.socket().display())
    );
    let executor = Scripted::new(vec![], true);
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    assert_eq!(outcome.verified, Some(true));
    let steps = outcome.detail.unwrap().steps;
    assert_eq!(
        steps,
        [
            "drain: drained web/b: ready, weight 10 -> drain, weight 10",
            "ramp: step 1 of 2: web/b: drain, weight 10 -> ready, weight 5",
            "ramp: step 2 of 2: web/b: ready, weight 5 -> ready, weight 10",
        ]
    );
    assert_eq!(weight_of_b(&h).await, (0, 10));
}
