//! The fleet guard around drains: slots held in the agent (`lock: local`) and in a
//! real etcd, kept while a server stays drained, fenced before every ramp step.

use super::*;

/// A server left drained (its attempt did not verify) is still one of the group's
/// `maxConcurrent`: its slot stays taken until the server serves again, so no
/// other server of the group is drained meanwhile; the same server's next attempt
/// drains under the slot it kept, and a `ready` gives the slot back. Here in a
/// group held in the agent (`lock: local`).
#[tokio::test]
async fn a_server_left_drained_keeps_its_slot_until_it_serves_again() {
    let Some(h) = Haproxy::start("kept") else {
        return;
    };
    let guarded = |p: Policy| one_slot(p, crate::policy::FleetLockKind::Local);
    let b = guarded(draining(&h.socket()));
    let a = guarded(draining_on(&h.socket(), "web", "a"));
    let restarts = (0..4).map(|_| Ok("restarted".into())).collect();
    let executor = Scripted::new(restarts, false);
    let outcome = executor.run_attempt(&b, 1).await;
    assert_eq!(outcome.verified, Some(false), "{outcome:?}");
    assert_eq!(weight_of_b(&h).await.0 & 0x08, 0x08, "b stays drained");
    let steps = executor.run_attempt(&a, 2).await.detail.unwrap().steps;
    assert_eq!(
        steps[0],
        "drain: not drained: fleet web: all 1 slot(s) are taken, by web/b; the rest of the attempt goes on"
    );
    // b's next attempt finds its own slot, not a full group.
    let steps = executor.run_attempt(&b, 3).await.detail.unwrap().steps;
    assert!(
        steps[0].starts_with("drain: drained web/b: drain"),
        "{steps:?}"
    );
    let mut readying = b.clone();
    readying.spec.actions = vec![crate::policy::Action::Ready(crate::policy::LbServerArgs {
        haproxy: Some(h.server("web", "b")),
        nginx: None,
        gateway: None,
    })];
    let steps = executor
        .run_attempt(&readying, 4)
        .await
        .detail
        .unwrap()
        .steps;
    assert!(steps[0].starts_with("ready: "), "{steps:?}");
    assert_eq!(weight_of_b(&h).await, (0, 10));
    // b serves again: its slot is free for a.
    let steps = executor.run_attempt(&a, 5).await.detail.unwrap().steps;
    assert!(
        steps[0].starts_with("drain: drained web/a: ready"),
        "{steps:?}"
    );
    // a is left drained and keeps the slot; a person readies it by hand. The group
    // looks full to b, until the agent sees a serving again and gives its slot back.
    runtime_api(&h)
        .set_state("web", "a", crate::loadbalancer::haproxy::AdminState::Ready)
        .await
        .unwrap();
    let steps = executor.run_attempt(&b, 6).await.detail.unwrap().steps;
    assert!(
        steps[0].starts_with("drain: drained web/b: ready"),
        "{steps:?}"
    );
}

/// A node-side drain under a fleet guard: with the group's one slot taken by
/// another agent, nothing is drained and the restart still runs; once the slot is
/// free, the drain takes it and gives it back after the ramp; with etcd
/// unreachable, nothing is drained either and the journal says why.
#[tokio::test]
async fn a_drain_under_a_fleet_guard_takes_a_slot_or_drains_nothing() {
    use crate::fleet::tests::{ready, EtcdServer};
    use crate::fleet::{Acquired, FleetLock};
    let Some(h) = Haproxy::start("fleet") else {
        return;
    };
    let Some(etcd) = EtcdServer::start("executor", 23731) else {
        return;
    };
    ready(&etcd.etcd()).await;
    let policy = one_slot(draining(&h.socket()), crate::policy::FleetLockKind::Etcd);
    // node-a holds the group's only slot.
    let other = FleetLock::new(etcd.etcd(), Duration::from_secs(5));
    let Acquired::Held(held) = other.acquire("web", "node-a", 1).await.unwrap() else {
        panic!("a free slot");
    };
    let executor =
        Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&node_b_in(etcd.url())));
    let outcome = executor.run_attempt(&policy, 1).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let detail = outcome.detail.unwrap();
    assert_eq!(detail.escalate, None, "a full group is the guard at work");
    let steps = detail.steps;
    assert_eq!(
        steps,
        [
            "drain: not drained: fleet web: all 1 slot(s) are taken, by node-a; the rest of the attempt goes on",
            "restart: restarted",
        ]
    );
    assert_eq!(weight_of_b(&h).await, (0, 10), "never drained");
    // Half of the backend's two servers is one slot, the one node-a holds.
    let mut by_share = policy.clone();
    if let Some(fleet) = by_share.spec.fleet.as_mut() {
        fleet.max_concurrent = crate::policy::FleetSlots::Percent(50);
    }
    let executor =
        Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&node_b_in(etcd.url())));
    let outcome = executor.run_attempt(&by_share, 9).await;
    assert_eq!(
        outcome.detail.unwrap().steps[0],
        "drain: not drained: fleet web: all 1 slot(s) (50% of the servers) are taken, by node-a; the rest of the attempt goes on"
    );
    // A zero weight is a drain by another name: with the group full, it is not
    // set; any other weight is (giving weight back never waits for a slot).
    let weighing = |weight| {
        let mut p = policy.clone();
        p.spec.actions = vec![crate::policy::Action::SetWeight(
            crate::policy::SetWeightArgs {
                haproxy: Some(h.server("web", "b")),
                nginx: None,
                gateway: None,
                weight: crate::policy::LbWeight::Absolute(weight),
            },
        )];
        p
    };
    let executor = Scripted::new(vec![], true).with_fleet(Some(&node_b_in(etcd.url())));
    let outcome = executor.run_attempt(&weighing(0), 10).await;
    assert_eq!(
        outcome.detail.unwrap().steps[0],
        "setWeight: weight not set: fleet web: all 1 slot(s) are taken, by node-a; the rest of the attempt goes on"
    );
    assert_eq!(weight_of_b(&h).await, (0, 10));
    let outcome = executor.run_attempt(&weighing(10), 11).await;
    let step = outcome.detail.unwrap().steps[0].clone();
    assert!(
        step.starts_with("setWeight: set the weight 10 on web/b"),
        "a non-zero weight needs no slot: {step}"
    );
    // The slot free, the drain takes it, and gives it back when the attempt ends.
    other.release(held).await.unwrap();
    let executor =
        Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&node_b_in(etcd.url())));
    let outcome = executor.run_attempt(&policy, 2).await;
    let steps = outcome.detail.unwrap().steps;
    assert_eq!(
        steps[0],
        "drain: drained web/b: ready, weight 10 -> drain, weight 10"
    );
    assert!(
        steps.last().unwrap().starts_with("ramp: step 3 of 3"),
        "{steps:?}"
    );
    assert!(etcd
        .etcd()
        .range("/salve/fleet/web/")
        .await
        .unwrap()
        .is_empty());
    // etcd out of reach: no drain, the restart still runs.
    let (nowhere, _bound) = crate::signal::http::test_server::refused_url();
    let executor =
        Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&node_b_in(nowhere)));
    let outcome = executor.run_attempt(&policy, 3).await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let detail = outcome.detail.unwrap();
    assert!(
        detail
            .escalate
            .as_deref()
            .is_some_and(|e| e.contains("is unreachable")),
        "a person hears that nothing was drained: {detail:?}"
    );
    let steps = detail.steps;
    assert!(
        steps[0].starts_with("drain: not drained: fleet web: etcd at http://127.0.0.1:")
            && steps[0].contains("is unreachable"),
        "{steps:?}"
    );
    assert_eq!(steps[1], "restart: restarted");
    assert_eq!(weight_of_b(&h).await, (0, 10));
}

/// An agent whose fleet slot vanished while it healed (its lease ran out while it was
/// stopped, say) does not touch the load balancer again: no ramp, the node stays
/// drained, and a person hears of it.
#[tokio::test]
async fn a_holder_that_lost_its_slot_does_not_ramp() {
    use crate::fleet::tests::{ready, EtcdServer};
    let Some(h) = Haproxy::start("fenced") else {
        return;
    };
    let Some(etcd) = EtcdServer::start("fenced", 23741) else {
        return;
    };
    ready(&etcd.etcd()).await;
    let server = serde_json::json!({ "socket": h.socket(), "backend": "web", "server": "b" });
    let doc = serde_json::json!({
        "apiVersion": "salve.dev/v1alpha1",
        "kind": "RemediationPolicy",
        "metadata": { "name": "php-b" },
        "spec": {
            "target": { "unit": "php8.2-fpm.service" },
            "trigger": [{ "unit": { "activeState": ["failed"] } }],
            "actions": [
                { "drain": { "haproxy": server, "ramp": { "steps": 2, "interval": "10ms" } } },
                { "exec": { "command": ["/bin/sleep", "1"] } },
                { "restart": {} }
            ],
            "verify": { "unit": {} },
            "fleet": { "group": "web", "lock": "etcd" }
        }
    });
    let policy = crate::policy::decode_resource(&doc, "test").expect("valid");
    let executor =
        Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&node_b_in(etcd.url())));
    let running = spawn_attempt(executor, policy);
    // Once the server is drained (so the slot was taken and the drain is done; the
    // key alone could vanish between the attempt's create and its count), the slot
    // is taken away while the attempt sleeps.
    let client = etcd.etcd();
    let api = runtime_api(&h);
    let mut drained = false;
    for _ in 0..200 {
        if api.server("web", "b").await.unwrap().admin & 0x08 == 0x08 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(drained, "the attempt drained web/b");
    let keys = client.range("/salve/fleet/web/").await.unwrap();
    assert_eq!(keys.len(), 1, "the attempt took the group's slot");
    client.delete(&keys[0].key).await.unwrap();
    let outcome = running.await.unwrap();
    let detail = outcome.detail.unwrap();
    assert_eq!(
        detail.steps.last().map(String::as_str),
        Some("ramp: not run: fleet web: this agent lost its slot (its lease ran out while it was stopped or cut off); it must not act on the load balancer; web/b stays drained"),
        "{:?}",
        detail.steps
    );
    assert!(detail.escalate.is_some_and(|e| e.contains("lost its slot")));
    assert_eq!(
        api.server("web", "b").await.unwrap().admin & 0x08,
        0x08,
        "still drained"
    );
}

/// The slot is checked before every step of a ramp: lost midway, the ramp stops
/// where it is.
#[tokio::test]
async fn a_slot_lost_midway_stops_the_ramp_where_it_is() {
    use crate::fleet::tests::{ready, EtcdServer};
    let Some(h) = Haproxy::start("midway") else {
        return;
    };
    let Some(etcd) = EtcdServer::start("midway", 23751) else {
        return;
    };
    ready(&etcd.etcd()).await;
    let policy = one_slot(
        node_side(serde_json::json!({
            "haproxy": { "socket": h.socket(), "backend": "web", "server": "b" },
            "ramp": { "steps": 2, "interval": "2s" }
        })),
        crate::policy::FleetLockKind::Etcd,
    );
    let executor =
        Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&node_b_in(etcd.url())));
    let running = spawn_attempt(executor, policy);
    // Step 1 of 2 done (b ready at weight 5): the slot is taken away.
    let api = runtime_api(&h);
    let mut stepped = false;
    for _ in 0..150 {
        let b = api.server("web", "b").await.unwrap();
        if b.admin & 0x08 == 0 && b.weight == 5 {
            stepped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stepped, "the first step never came");
    let client = etcd.etcd();
    for kv in client.range("/salve/fleet/web/").await.unwrap() {
        client.delete(&kv.key).await.unwrap();
    }
    let outcome = running.await.unwrap();
    let detail = outcome.detail.unwrap();
    assert_eq!(
        detail.steps.last().map(String::as_str),
        Some("ramp: stopped after step 1 of 2: fleet web: this agent lost its slot (its lease ran out while it was stopped or cut off); it must not act on the load balancer; web/b keeps its weight 5"),
        "{:?}",
        detail.steps
    );
    assert!(detail.escalate.is_some());
    assert_eq!(api.server("web", "b").await.unwrap().weight, 5);
}
