//! The load-balancer actions through the executor: drains and ramps on a real HAProxy
//! (`drain_and_ramp`), fleet slots held in the agent and in a real etcd
//! (`fleet_slots`), and nginx upstream edits checked by a real `nginx -t`
//! (`nginx_upstream`).

mod drain_and_ramp;
mod fleet_slots;
mod nginx_upstream;

use super::*;
use crate::action::load_balancer::tests::Haproxy;

/// A node-side policy on php8.2-fpm.service: `drain` with these arguments, restart,
/// verify the unit.
fn node_side(drain: serde_json::Value) -> Policy {
    let doc = serde_json::json!({
        "apiVersion": "salve.dev/v1alpha1",
        "kind": "RemediationPolicy",
        "metadata": { "name": "php-b" },
        "spec": {
            "target": { "unit": "php8.2-fpm.service" },
            "trigger": [{ "unit": { "activeState": ["failed"] } }],
            "actions": [{ "drain": drain }, { "restart": {} }],
            "verify": { "unit": {} }
        }
    });
    crate::policy::decode_resource(&doc, "test").expect("the test policy is valid")
}

/// Drains server `b` of backend `web` behind `socket`, ramping back in 3 steps.
fn draining(socket: &std::path::Path) -> Policy {
    draining_on(socket, "web", "b")
}

fn draining_on(socket: &std::path::Path, backend: &str, name: &str) -> Policy {
    let server = serde_json::json!({ "socket": socket, "backend": backend, "server": name });
    node_side(serde_json::json!({ "haproxy": server, "ramp": { "steps": 3, "interval": "10ms" } }))
}

/// Server `b`'s (admin state, weight) at HAProxy.
async fn weight_of_b(h: &Haproxy) -> (u32, u32) {
    let b = runtime_api(h).server("web", "b").await.unwrap();
    (b.admin, b.weight)
}

/// `policy` under the fleet guard of group `web`, one slot, held in `lock`.
fn one_slot(mut policy: Policy, lock: crate::policy::FleetLockKind) -> Policy {
    policy.spec.fleet = Some(crate::policy::FleetGuard {
        group: "web".into(),
        max_concurrent: crate::policy::FleetSlots::Count(1),
        lock,
    });
    policy
}

/// This agent as the member `node-b` of the fleet whose slots are in `etcd`.
fn node_b_in(etcd: crate::policy::HttpUrl) -> crate::config::FleetConfig {
    crate::config::FleetConfig {
        etcd,
        member: "node-b".into(),
        ttl: Duration::from_secs(5),
    }
}

/// Runs `policy`'s attempt 1 on a task of its own, so the test can act meanwhile.
fn spawn_attempt(
    executor: Executor<Scripted>,
    policy: Policy,
) -> tokio::task::JoinHandle<crate::engine::Outcome> {
    tokio::spawn(async move { executor.run_attempt(&policy, 1).await })
}

fn runtime_api(h: &Haproxy) -> crate::loadbalancer::haproxy::RuntimeApi {
    crate::loadbalancer::haproxy::RuntimeApi::new(&h.socket(), Duration::from_secs(5))
}
