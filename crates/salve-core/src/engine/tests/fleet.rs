//! `maxUnhealthy`: when too many of a selector's objects are unhealthy at once salve
//! acts on none, escalates once, and acts again only after the count has settled.

use super::*;
use std::collections::BTreeMap;

fn fleet_engine(max: &str, hold: &str) -> Engine {
    let yaml = format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: php, namespace: web }}\nspec:\n  target: {{ pods: {{ selector: {{ app: php }} }} }}\n  trigger:\n    - pod: {{ reason: [CrashLoopBackOff] }}\n      for: {hold}\n  actions:\n    - restart: {{}}\n  escalate:\n    - notify: {{ webhook: \"http://127.0.0.1:9/hook\" }}\n  guard: {{ cooldown: 10s, maxAttempts: 3, window: 1h, backoff: 1.0, maxUnhealthy: {max}, settle: 60s }}\n"
    );
    engine_from(&[yaml], Limits::default())
}

fn pod(name: &str, crashing: bool) -> Event {
    Event::Pod(PodObservation {
        namespace: "web".into(),
        name: name.into(),
        labels: BTreeMap::from([("app".to_string(), "php".to_string())]),
        containers: vec![ContainerObservation {
            name: "php".into(),
            waiting: crashing.then(|| "CrashLoopBackOff".into()),
            last_terminated: None,
            restarts: 0,
        }],
        conditions: Default::default(),
        deleted: false,
    })
}

fn gone(name: &str) -> Event {
    match pod(name, false) {
        Event::Pod(mut obs) => {
            obs.deleted = true;
            Event::Pod(obs)
        }
        _ => unreachable!(),
    }
}

fn decide(e: &mut Engine, secs: f64, event: Event) -> Vec<(String, Verdict)> {
    let mut out = Vec::new();
    e.handle(at(secs), &event, &mut out);
    out.into_iter()
        .map(|d| (target_name(&e.policy(d.policy)), d.verdict))
        .collect()
}

fn acted_on(decisions: &[(String, Verdict)]) -> Vec<&str> {
    decisions
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Act { .. }))
        .map(|(t, _)| t.as_str())
        .collect()
}

fn escalations(decisions: &[(String, Verdict)]) -> Vec<(&str, &Vec<String>)> {
    decisions
        .iter()
        .filter_map(|(t, v)| match v {
            Verdict::Escalate {
                attempts: 0,
                evidence,
                ..
            } => Some((t.as_str(), evidence)),
            _ => None,
        })
        .collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("php-{i}")).collect()
}

/// Seen healthy, then each crashing one second apart from t=1.
fn all_crash(e: &mut Engine, pods: &[String]) -> Vec<(String, Verdict)> {
    for p in pods {
        assert!(decide(e, 0.0, pod(p, false)).is_empty());
    }
    let mut seen = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        seen.extend(decide(e, 1.0 + i as f64, pod(p, true)));
    }
    seen
}

#[test]
fn over_the_limit_nothing_is_acted_on_and_one_escalation_names_the_storm() {
    let mut e = fleet_engine("2", "30s");
    let pods = names(5);
    let mut seen = all_crash(&mut e, &pods);
    // Every `for` passes; each pod is decided at its own deadline.
    for t in [31.0, 32.0, 33.0, 34.0, 35.0, 40.0] {
        seen.extend(decide(&mut e, t, Event::Tick {}));
    }
    assert!(acted_on(&seen).is_empty(), "{seen:?}");
    let storms = escalations(&seen);
    assert_eq!(storms.len(), 1, "{seen:?}");
    let (target, evidence) = storms[0];
    assert_eq!(target, "pods web/app=php");
    assert!(
        evidence[0]
            .starts_with("3 of 5 selected objects unhealthy, over maxUnhealthy 2 (2 allowed)"),
        "{evidence:?}"
    );
    assert_eq!(
        evidence[1],
        "unhealthy: pod/web/php-0, pod/web/php-1, pod/web/php-2"
    );
    // Each held pod says why, once.
    let held: Vec<&str> = seen
        .iter()
        .filter(|(_, v)| {
            matches!(
                v,
                Verdict::Skip {
                    reason: SkipReason::MaxUnhealthy,
                    ..
                }
            )
        })
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(held.len(), 5, "{seen:?}");
}

#[test]
fn after_the_storm_salve_waits_the_settle_delay_then_acts_on_those_still_unhealthy() {
    let mut e = fleet_engine("2", "30s");
    let pods = names(5);
    all_crash(&mut e, &pods);
    decide(&mut e, 40.0, Event::Tick {});
    // Three recover at t=100: two are left, within the limit. Settling starts.
    let mut seen = Vec::new();
    for p in &pods[..3] {
        seen.extend(decide(&mut e, 100.0, pod(p, false)));
    }
    assert!(acted_on(&seen).is_empty(), "{seen:?}");
    assert!(
        e.next_deadline().is_some_and(|t| t <= at(160.0)),
        "the pods still unhealthy are woken when the settling ends"
    );
    assert!(acted_on(&decide(&mut e, 159.0, pod("php-3", true))).is_empty());
    let after = decide(&mut e, 160.0, Event::Tick {});
    let mut acted = acted_on(&after);
    acted.sort_unstable();
    assert_eq!(acted, ["pod/web/php-3", "pod/web/php-4"], "{after:?}");
    assert!(escalations(&after).is_empty());
}

#[test]
fn a_storm_that_returns_while_settling_is_not_escalated_again() {
    let mut e = fleet_engine("1", "0s");
    let pods = names(3);
    let mut seen = all_crash(&mut e, &pods);
    // Within the limit, the first pod was acted on before the second made it a storm.
    assert_eq!(acted_on(&seen), ["pod/web/php-0"]);
    seen.extend(decide(&mut e, 50.0, pod("php-1", false)));
    seen.extend(decide(&mut e, 50.0, pod("php-2", false)));
    // php-0's attempt is still running: it counts. Settling starts when it is over...
    seen.extend(decide(&mut e, 70.0, pod("php-1", true)));
    seen.extend(decide(&mut e, 200.0, Event::Tick {}));
    assert_eq!(escalations(&seen).len(), 1, "{seen:?}");
    assert_eq!(acted_on(&seen), ["pod/web/php-0"], "{seen:?}");
}

#[test]
fn a_percentage_rounds_up_over_the_selected_objects() {
    // 30% of 10 is 3: three crashing pods are each acted on, a fourth makes a storm.
    let mut e = fleet_engine("30%", "0s");
    let pods = names(10);
    for p in &pods {
        decide(&mut e, 0.0, pod(p, false));
    }
    let mut seen = Vec::new();
    for (i, p) in pods[..4].iter().enumerate() {
        seen.extend(decide(&mut e, 1.0 + i as f64, pod(p, true)));
    }
    assert_eq!(
        acted_on(&seen),
        ["pod/web/php-0", "pod/web/php-1", "pod/web/php-2"]
    );
    assert_eq!(escalations(&seen).len(), 1);
    // Two selected pods at 30% still leave room for one.
    let mut small = fleet_engine("30%", "0s");
    decide(&mut small, 0.0, pod("a", false));
    decide(&mut small, 0.0, pod("b", false));
    assert_eq!(
        acted_on(&decide(&mut small, 1.0, pod("a", true))),
        ["pod/web/a"]
    );
}

#[test]
fn within_the_limit_each_pod_is_healed_on_its_own() {
    let mut e = fleet_engine("2", "0s");
    let pods = names(5);
    let seen = all_crash(&mut e, &pods[..2]);
    assert_eq!(acted_on(&seen), ["pod/web/php-0", "pod/web/php-1"]);
    assert!(escalations(&seen).is_empty());
}

#[test]
fn deleting_the_unhealthy_objects_ends_the_storm() {
    let mut e = fleet_engine("1", "30s");
    let pods = names(3);
    all_crash(&mut e, &pods);
    decide(&mut e, 40.0, Event::Tick {});
    decide(&mut e, 50.0, gone("php-0"));
    decide(&mut e, 50.0, gone("php-1"));
    // One unhealthy pod of one: within the limit since t=50.
    assert!(acted_on(&decide(&mut e, 100.0, Event::Tick {})).is_empty());
    assert_eq!(
        acted_on(&decide(&mut e, 110.0, Event::Tick {})),
        ["pod/web/php-2"]
    );
}

#[test]
fn a_reload_keeps_the_storm_and_its_count() {
    let mut e = fleet_engine("2", "30s");
    let pods = names(5);
    all_crash(&mut e, &pods);
    decide(&mut e, 40.0, Event::Tick {});
    let policies: Vec<_> = e.policies().cloned().collect();
    let mut out = Vec::new();
    e.replace_policies(at(41.0), policies, &mut out);
    let seen: Vec<(String, Verdict)> = out
        .into_iter()
        .map(|d| (target_name(&e.policy(d.policy)), d.verdict))
        .collect();
    assert!(acted_on(&seen).is_empty(), "{seen:?}");
    assert!(escalations(&seen).is_empty(), "{seen:?}");
    // Still five unhealthy: one recovering leaves four, over the limit.
    assert!(acted_on(&decide(&mut e, 200.0, pod("php-0", false))).is_empty());
    assert!(acted_on(&decide(&mut e, 300.0, Event::Tick {})).is_empty());
}

#[test]
fn a_dry_run_storm_escalates_as_a_preview() {
    let mut e = fleet_engine("1", "0s");
    let mut out = Vec::new();
    let policies: Vec<_> = e
        .policies()
        .cloned()
        .map(|mut p| {
            p.spec.dry_run = true;
            p
        })
        .collect();
    e.replace_policies(at(0.0), policies, &mut out);
    let seen = all_crash(&mut e, &names(2));
    assert!(acted_on(&seen).is_empty());
    assert!(seen.iter().any(|(_, v)| matches!(
        v,
        Verdict::Escalate {
            dry_run: true,
            attempts: 0,
            ..
        }
    )));
}

/// The load balancer's side, in one agent: one policy per server, each probing its
/// server, all in fleet group `web` with `maxUnhealthy`.
fn group_engine(servers: &[&str], max: &str) -> Engine {
    let yaml: Vec<String> = servers
        .iter()
        .map(|s| {
            format!(
                "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: lb-{s} }}\nspec:\n  target: {{ haproxy: {{ socket: /run/haproxy/admin.sock, backend: web, server: {s} }} }}\n  trigger:\n    - http: {{ url: \"http://127.0.0.1/{s}\", failures: 2, interval: 1s, timeout: 500ms }}\n      for: 2s\n  actions:\n    - drain: {{ ramp: {{ steps: 2, interval: 1s }} }}\n  verify:\n    http: {{ url: \"http://127.0.0.1/{s}\", status: [200], within: 1m }}\n  fleet: {{ group: web, maxConcurrent: 1, lock: local }}\n  guard: {{ cooldown: 10s, maxAttempts: 3, window: 1h, backoff: 1.0, maxUnhealthy: {max}, settle: 30s }}\n  escalate:\n    - notify: {{ webhook: \"http://127.0.0.1:9/hook\" }}\n"
            )
        })
        .collect();
    engine_from(&yaml, Limits::default())
}

fn probe(server: &str, status: u16) -> Event {
    Event::Http(HttpObservation {
        url: format!("http://127.0.0.1/{server}"),
        status: Some(status),
        error: None,
    })
}

/// Every server's probe answers `status` at `secs`.
fn probes(e: &mut Engine, secs: f64, servers: &[&str], status: u16) -> Vec<(String, Verdict)> {
    let mut seen = Vec::new();
    for s in servers {
        seen.extend(decide(e, secs, probe(s, status)));
    }
    seen
}

#[test]
fn a_fleet_group_in_one_agent_is_counted_as_a_selector_is() {
    let servers = ["node-a", "node-b", "node-c"];
    let mut e = group_engine(&servers, "1");
    let mut seen = probes(&mut e, 0.0, &servers, 200);
    // Every server fails at once: held, none drained, one escalation for the group.
    for t in [1.0, 2.0] {
        seen.extend(probes(&mut e, t, &servers, 502));
    }
    for t in [4.0, 5.0, 10.0] {
        seen.extend(decide(&mut e, t, Event::Tick {}));
    }
    assert!(acted_on(&seen).is_empty(), "{seen:?}");
    let storms = escalations(&seen);
    assert_eq!(storms.len(), 1, "{seen:?}");
    let (target, evidence) = storms[0];
    assert_eq!(target, "haproxy:web/node-a@/run/haproxy/admin.sock");
    assert!(
        evidence[0].starts_with(
            "2 of 3 policies of fleet group web unhealthy, over maxUnhealthy 1 (1 allowed)"
        ),
        "{evidence:?}"
    );
    // The storm began with the second server counted: it names those two.
    assert!(evidence[1].contains("web/node-b"), "{evidence:?}");
    // Two come back: after the settle, the one still failing is drained.
    seen = probes(&mut e, 20.0, &servers[..2], 200);
    seen.extend(decide(&mut e, 21.0, probe("node-c", 502)));
    assert!(acted_on(&seen).is_empty(), "{seen:?}");
    seen.extend(decide(&mut e, 50.0, Event::Tick {}));
    assert_eq!(
        acted_on(&seen),
        ["haproxy:web/node-c@/run/haproxy/admin.sock"],
        "{seen:?}"
    );
    assert!(escalations(&seen).is_empty());
}

#[test]
fn within_the_groups_limit_a_failing_server_is_drained_at_once() {
    let servers = ["node-a", "node-b"];
    let mut e = group_engine(&servers, "1");
    probes(&mut e, 0.0, &servers, 200);
    let mut seen = Vec::new();
    for t in [1.0, 2.0] {
        seen.extend(decide(&mut e, t, probe("node-b", 502)));
    }
    seen.extend(decide(&mut e, 4.0, Event::Tick {}));
    assert_eq!(
        acted_on(&seen),
        ["haproxy:web/node-b@/run/haproxy/admin.sock"]
    );
    assert!(escalations(&seen).is_empty());
}

#[test]
fn a_reload_keeps_a_fleet_groups_storm() {
    let servers = ["node-a", "node-b"];
    let mut e = group_engine(&servers, "1");
    probes(&mut e, 0.0, &servers, 200);
    let mut seen = Vec::new();
    for t in [1.0, 2.0] {
        seen.extend(probes(&mut e, t, &servers, 502));
    }
    seen.extend(decide(&mut e, 5.0, Event::Tick {}));
    assert_eq!(escalations(&seen).len(), 1, "{seen:?}");
    let again = group_engine(&servers, "1");
    let policies: Vec<_> = again.policies().cloned().collect();
    let mut out = Vec::new();
    e.replace_policies(at(6.0), policies, &mut out);
    e.handle(at(9.0), &Event::Tick {}, &mut out);
    assert!(
        out.iter()
            .all(|d| !matches!(d.verdict, Verdict::Act { .. } | Verdict::Escalate { .. })),
        "{out:?}"
    );
}

/// Every server failing, counted as a storm from the first decision after the
/// failures (all `for`s passed).
fn all_failing(e: &mut Engine, servers: &[&str]) -> Vec<(String, Verdict)> {
    let mut seen = probes(e, 0.0, servers, 200);
    for t in [1.0, 2.0] {
        seen.extend(probes(e, t, servers, 502));
    }
    seen.extend(decide(e, 5.0, Event::Tick {}));
    seen
}

#[test]
fn a_groups_storm_outlives_a_reload_that_changes_its_first_policy() {
    let servers = ["node-a", "node-b", "node-c"];
    let mut e = group_engine(&servers, "1");
    assert_eq!(escalations(&all_failing(&mut e, &servers)).len(), 1);
    // node-a's policy goes: node-b's now counts the group, and the storm is its.
    let fewer: Vec<_> = e.policies().skip(1).cloned().collect();
    let mut out = Vec::new();
    e.replace_policies(at(6.0), fewer, &mut out);
    for t in [7.0, 8.0, 9.0] {
        for s in &servers[1..] {
            e.handle(at(t), &probe(s, 502), &mut out);
        }
    }
    assert!(
        out.iter()
            .all(|d| !matches!(d.verdict, Verdict::Act { .. } | Verdict::Escalate { .. })),
        "{out:?}"
    );
}

#[test]
fn a_reload_that_forms_a_group_counts_every_member_before_any_acts() {
    let servers = ["node-a", "node-b"];
    let grouped = group_engine(&servers, "1");
    // The same policies with neither fleet nor maxUnhealthy, every server failing
    // for a while already, each attempt over (failed, so within its cooldown).
    let loose: Vec<_> = grouped
        .policies()
        .cloned()
        .map(|mut p| {
            p.spec.fleet = None;
            p.spec.guard.max_unhealthy = None;
            p
        })
        .collect();
    let mut e = Engine::new(loose, Limits::default());
    let mut seen = all_failing(&mut e, &servers);
    assert_eq!(acted_on(&seen).len(), 2);
    for s in servers {
        seen = decide(
            &mut e,
            6.0,
            Event::Outcome(Outcome {
                policy: format!("lb-{s}"),
                attempt_id: None,
                result: OutcomeResult::Failed,
                verified: None,
                detail: None,
            }),
        );
        assert!(acted_on(&seen).is_empty());
    }
    let mut out = Vec::new();
    let policies: Vec<_> = grouped.policies().cloned().collect();
    e.replace_policies(at(7.0), policies, &mut out);
    for t in [8.0, 20.0, 30.0] {
        for s in servers {
            e.handle(at(t), &probe(s, 502), &mut out);
        }
    }
    assert!(
        out.iter()
            .all(|d| !matches!(d.verdict, Verdict::Act { .. })),
        "both fail: the group holds both: {out:?}"
    );
    assert_eq!(
        out.iter()
            .filter(|d| matches!(d.verdict, Verdict::Escalate { attempts: 0, .. }))
            .count(),
        1,
        "{out:?}"
    );
}

#[test]
fn a_storm_that_begins_while_paused_is_escalated_when_the_pause_ends() {
    let servers = ["node-a", "node-b"];
    let mut e = group_engine(&servers, "1");
    let mut out = Vec::new();
    e.pause(
        at(0.0),
        PauseScope::Policy("lb-node-a".into()),
        at(60.0),
        &mut out,
    )
    .unwrap();
    let seen = all_failing(&mut e, &servers);
    assert!(
        escalations(&seen).is_empty(),
        "no page in a deploy window: {seen:?}"
    );
    assert!(acted_on(&seen).is_empty());
    let seen = probes(&mut e, 61.0, &servers, 502);
    assert_eq!(escalations(&seen).len(), 1, "{seen:?}");
    let seen = probes(&mut e, 62.0, &servers, 502);
    assert!(escalations(&seen).is_empty(), "once: {seen:?}");
}
