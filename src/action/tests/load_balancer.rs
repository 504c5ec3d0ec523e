//! The load-balancer actions through the executor: drains and ramps on a real HAProxy
//! and a real nginx's `nginx -t`, fleet slots in a real etcd.

use super::*;
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

/// A node-side attempt: drain this node at the load balancer, restart, verify, then
/// the weight back in steps; an attempt that does not verify leaves it drained.
mod drain_and_ramp {
    use super::*;
    use crate::action::load_balancer::tests::Haproxy;

    fn draining(socket: &std::path::Path) -> Policy {
        draining_on(socket, "web", "b")
    }

    fn draining_on(socket: &std::path::Path, backend: &str, name: &str) -> Policy {
        let server = serde_json::json!({ "socket": socket, "backend": backend, "server": name });
        super::node_side(
            serde_json::json!({ "haproxy": server, "ramp": { "steps": 3, "interval": "10ms" } }),
        )
    }

    async fn weight_of_b(h: &Haproxy) -> (u32, u32) {
        let api = crate::loadbalancer::haproxy::RuntimeApi::new(
            &h.socket(),
            std::time::Duration::from_secs(5),
        );
        let b = api.server("web", "b").await.unwrap();
        (b.admin, b.weight)
    }

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
        let api = crate::loadbalancer::haproxy::RuntimeApi::new(
            &h.socket(),
            std::time::Duration::from_secs(5),
        );
        let e = api.server("fixed10", "e").await.unwrap();
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
        let guarded = |mut p: Policy| {
            p.spec.fleet = Some(crate::policy::FleetGuard {
                group: "web".into(),
                max_concurrent: crate::policy::FleetSlots::Count(1),
                lock: crate::policy::FleetLockKind::Local,
            });
            p
        };
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
        let api = crate::loadbalancer::haproxy::RuntimeApi::new(
            &h.socket(),
            std::time::Duration::from_secs(5),
        );
        api.set_state("web", "a", crate::loadbalancer::haproxy::AdminState::Ready)
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
        let mut policy = draining(&h.socket());
        policy.spec.fleet = Some(crate::policy::FleetGuard {
            group: "web".into(),
            max_concurrent: crate::policy::FleetSlots::Count(1),
            lock: crate::policy::FleetLockKind::Etcd,
        });
        let fleet = |url: crate::policy::HttpUrl| crate::config::FleetConfig {
            etcd: url,
            member: "node-b".into(),
            ttl: Duration::from_secs(5),
        };
        // node-a holds the group's only slot.
        let other = FleetLock::new(etcd.etcd(), Duration::from_secs(5));
        let Acquired::Held(held) = other.acquire("web", "node-a", 1).await.unwrap() else {
            panic!("a free slot");
        };
        let executor =
            Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&fleet(etcd.url())));
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
            Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&fleet(etcd.url())));
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
        let executor = Scripted::new(vec![], true).with_fleet(Some(&fleet(etcd.url())));
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
            Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&fleet(etcd.url())));
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
            Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&fleet(nowhere)));
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
}

/// An agent whose fleet slot vanished while it healed (its lease ran out while it was
/// stopped, say) does not touch the load balancer again: no ramp, the node stays
/// drained, and a person hears of it.
#[tokio::test]
async fn a_holder_that_lost_its_slot_does_not_ramp() {
    use crate::action::load_balancer::tests::Haproxy;
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
    let fleet = crate::config::FleetConfig {
        etcd: etcd.url(),
        member: "node-b".into(),
        ttl: Duration::from_secs(5),
    };
    let executor = std::sync::Arc::new(
        Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&fleet)),
    );
    let running = {
        let executor = std::sync::Arc::clone(&executor);
        tokio::spawn(async move { executor.run_attempt(&policy, 1).await })
    };
    // Once the slot is taken (the drain is made right after), it is taken away.
    let client = etcd.etcd();
    let mut keys = Vec::new();
    for _ in 0..100 {
        keys = client.range("/salve/fleet/web/").await.unwrap();
        if !keys.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    let api = crate::loadbalancer::haproxy::RuntimeApi::new(&h.socket(), Duration::from_secs(5));
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
    use crate::action::load_balancer::tests::Haproxy;
    use crate::fleet::tests::{ready, EtcdServer};
    let Some(h) = Haproxy::start("midway") else {
        return;
    };
    let Some(etcd) = EtcdServer::start("midway", 23751) else {
        return;
    };
    ready(&etcd.etcd()).await;
    let mut policy = node_side(serde_json::json!({
        "haproxy": { "socket": h.socket(), "backend": "web", "server": "b" },
        "ramp": { "steps": 2, "interval": "2s" }
    }));
    policy.spec.fleet = Some(crate::policy::FleetGuard {
        group: "web".into(),
        max_concurrent: crate::policy::FleetSlots::Count(1),
        lock: crate::policy::FleetLockKind::Etcd,
    });
    let fleet = crate::config::FleetConfig {
        etcd: etcd.url(),
        member: "node-b".into(),
        ttl: Duration::from_secs(5),
    };
    let executor = std::sync::Arc::new(
        Scripted::new(vec![Ok("restarted".into())], true).with_fleet(Some(&fleet)),
    );
    let running = {
        let executor = std::sync::Arc::clone(&executor);
        tokio::spawn(async move { executor.run_attempt(&policy, 1).await })
    };
    // Step 1 of 2 done (b ready at weight 5): the slot is taken away.
    let api = crate::loadbalancer::haproxy::RuntimeApi::new(&h.socket(), Duration::from_secs(5));
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

/// A node-side attempt against an nginx load balancer: its upstream's server line
/// edited through the config-edit pipeline, each change checked by Debian's real
/// `nginx -t` before it replaces the file, and applied with a reload.
mod nginx_upstream {
    use super::*;
    use std::path::{Path, PathBuf};

    const NGINX: &str = "/usr/sbin/nginx";
    const UPSTREAM: &str = "# the two nodes\nupstream nodes {\n    server 127.0.0.1:18001 weight=10 max_fails=0;\n    server 127.0.0.1:18002 weight=10;  # node b\n}\nserver {\n    listen 127.0.0.1:18000;\n    location / { proxy_pass http://nodes; }\n}\n";

    /// nginx.conf and lb.conf in a directory of their own, every path nginx opens
    /// inside it (a check as root would otherwise create the host's temp dirs).
    struct Site {
        dir: PathBuf,
    }

    impl Site {
        fn new(name: &str) -> Option<Site> {
            if !Path::new(NGINX).exists() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{NGINX} is missing; under CI it must run"
                );
                eprintln!("skipping: {NGINX} is not installed");
                return None;
            }
            let dir =
                std::env::temp_dir().join(format!("salve-upstream-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let d = dir.display();
            std::fs::write(
                dir.join("nginx.conf"),
                format!("pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/t1;\n    proxy_temp_path {d}/t2;\n    fastcgi_temp_path {d}/t3;\n    uwsgi_temp_path {d}/t4;\n    scgi_temp_path {d}/t5;\n    include {d}/sites/*.conf;\n}}\n"),
            )
            .unwrap();
            std::fs::create_dir_all(dir.join("sites")).unwrap();
            std::fs::write(dir.join("sites/lb.conf"), UPSTREAM).unwrap();
            Some(Site { dir })
        }

        fn file(&self) -> PathBuf {
            self.dir.join("sites/lb.conf")
        }

        fn text(&self) -> String {
            std::fs::read_to_string(self.file()).unwrap()
        }

        fn policy(&self, server: &str) -> Policy {
            let nginx = serde_json::json!({
                "file": self.file(),
                "upstream": "nodes",
                "server": server,
                "config": self.dir.join("nginx.conf"),
                "unit": "lb-nginx.service"
            });
            node_side(
                serde_json::json!({ "nginx": nginx, "ramp": { "steps": 2, "interval": "10ms" } }),
            )
        }
    }

    impl Drop for Site {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[tokio::test]
    async fn a_drained_server_is_down_while_healing_and_back_byte_for_byte_after() {
        let Some(site) = Site::new("ramp") else {
            return;
        };
        let file = site.file();
        let executor = Scripted::new(vec![Ok("restarted".into())], true);
        let outcome = executor
            .run_attempt(&site.policy("127.0.0.1:18002"), 1)
            .await;
        assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
        let detail = outcome.detail.unwrap();
        let at = format!(
            "upstream nodes server 127.0.0.1:18002 in {}",
            file.display()
        );
        assert_eq!(
            detail.steps,
            [
                format!("drain: drained {at}: weight 10 -> down, weight 10"),
                "restart: restarted".to_string(),
                format!("ramp: step 1 of 2: {at}: down, weight 10 -> weight 5"),
                format!("ramp: step 2 of 2: {at}: weight 5 -> weight 10"),
            ]
        );
        assert_eq!(site.text(), UPSTREAM, "every byte as it was");
        assert_eq!(detail.diffs.len(), 3, "{:?}", detail.diffs);
        assert!(
            detail.diffs[0].contains("+    server 127.0.0.1:18002 weight=10 down;  # node b"),
            "{}",
            detail.diffs[0]
        );
        assert_eq!(
            executor.family().reloads.lock().unwrap().as_slice(),
            ["lb-nginx.service"; 3]
        );
    }

    #[tokio::test]
    async fn a_drain_nginx_t_refuses_leaves_the_file_as_it_was_and_reloads_nothing() {
        let Some(site) = Site::new("refused") else {
            return;
        };
        // Someone broke another file of the config: nginx still serves its old one,
        // and no edit may be swapped in until the config checks again.
        std::fs::write(
            site.dir.join("sites/typo.conf"),
            "server { listen 127.0.0.1:18009; bogus_directive on; }\n",
        )
        .unwrap();
        let executor = Scripted::new(vec![Ok("restarted".into())], true);
        let (drain, escalate) = not_drained(&executor, &site).await;
        assert!(
            drain.starts_with("drain: not drained: upstream nodes server 127.0.0.1:18002 in ")
                && drain.contains("validation failed, file not replaced: ")
                && drain.contains("unknown directive \"bogus_directive\"")
                && drain.ends_with("; the rest of the attempt goes on"),
            "{drain}"
        );
        assert!(escalate.is_some_and(|why| why.contains("bogus_directive")));
        assert_eq!(site.text(), UPSTREAM);
        assert!(executor.family().reloads.lock().unwrap().is_empty());
        // The same trouble again is not escalated twice.
        let (_, again) = not_drained(&executor, &site).await;
        assert_eq!(again, None);
    }

    /// A drain that could not be made: the pool is healed all the same (the restart
    /// ran and the attempt verified), its step says why, and the attempt asks for an
    /// escalation. Returns the drain's step and that request.
    async fn not_drained(executor: &Executor<Scripted>, site: &Site) -> (String, Option<String>) {
        let asked = executor.family().asked().len();
        let outcome = executor
            .run_attempt(&site.policy("127.0.0.1:18002"), 1)
            .await;
        assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
        assert_eq!(outcome.verified, Some(true));
        assert_eq!(
            executor.family().asked().len(),
            asked + 1,
            "the restart ran"
        );
        let detail = outcome.detail.unwrap();
        assert_eq!(
            detail.steps.len(),
            2,
            "no ramp for a server never drained: {:?}",
            detail.steps
        );
        (detail.steps[0].clone(), detail.escalate)
    }

    #[tokio::test]
    async fn a_reload_that_fails_puts_the_original_back() {
        let Some(site) = Site::new("reload") else {
            return;
        };
        let executor = Scripted::new(vec![Ok("restarted".into())], true);
        executor
            .family()
            .reload_fails
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (drain, escalate) = not_drained(&executor, &site).await;
        assert!(
            drain.contains(
                "applying the change failed: reload of lb-nginx.service: scripted failure"
            ) && drain.contains("original restored, but applying it failed"),
            "{drain}"
        );
        assert!(escalate.is_some());
        assert_eq!(site.text(), UPSTREAM);
    }

    #[tokio::test]
    async fn the_last_server_taking_requests_is_never_taken_down() {
        let Some(site) = Site::new("last") else {
            return;
        };
        let one_down = UPSTREAM.replace("weight=10 max_fails=0;", "weight=10 max_fails=0 down;");
        std::fs::write(site.file(), &one_down).unwrap();
        let executor = Scripted::new(vec![Ok("restarted".into())], true);
        let (drain, _) = not_drained(&executor, &site).await;
        assert!(
            drain.contains("refused to drain upstream nodes server 127.0.0.1:18002")
                && drain.contains("it is the last server taking requests in its upstream (127.0.0.1:18001: down, weight 10; 127.0.0.1:18002: weight 10)"),
            "{drain}"
        );
        assert_eq!(site.text(), one_down);
        assert!(executor.family().reloads.lock().unwrap().is_empty());
        // Once the other server is back, the drain is made, and a later trouble is
        // news again.
        std::fs::write(site.file(), UPSTREAM).unwrap();
        let outcome = executor
            .run_attempt(&site.policy("127.0.0.1:18002"), 2)
            .await;
        assert_eq!(outcome.detail.unwrap().escalate, None);
        std::fs::write(site.file(), &one_down).unwrap();
        let (_, escalate) = not_drained(&executor, &site).await;
        assert!(escalate.is_some());
    }
}
