//! A selector's objects: each gets a guard of its own, instances come and go with the
//! objects, guards outlive them for as long as they can count, and churn costs no
//! memory.

use super::super::instances::RECLAIM_FLOOR;
use super::*;
use std::collections::BTreeMap;

const SELECTOR: &str = "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: { name: php, namespace: web }\nspec:\n  target: { pods: { selector: { app: php } } }\n  trigger:\n    - pod: { reason: [CrashLoopBackOff] }\n  actions:\n    - restart: {}\n  guard: { cooldown: 10s, maxAttempts: 2, window: 1h, backoff: 1.0 }\n";

fn selector_engine() -> Engine {
    engine_from(&[SELECTOR.to_string()], Limits::default())
}

fn labels(app: &str) -> BTreeMap<String, String> {
    [("app".to_string(), app.to_string())].into()
}

fn pod_in(namespace: &str, name: &str, app: &str, crashing: bool, deleted: bool) -> Event {
    Event::Pod(PodObservation {
        namespace: namespace.into(),
        name: name.into(),
        labels: labels(app),
        containers: vec![ContainerObservation {
            name: "php".into(),
            waiting: crashing.then(|| "CrashLoopBackOff".into()),
            last_terminated: None,
            restarts: 0,
        }],
        conditions: Default::default(),
        deleted,
    })
}

fn pod(name: &str, crashing: bool) -> Event {
    pod_in("web", name, "php", crashing, false)
}

/// Feeds `event` and returns each decision with the target its policy names.
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

/// Reports each attempt in `decisions` as `result`; returns what the engine then decided.
fn done(
    e: &mut Engine,
    secs: f64,
    decisions: &[(String, Verdict)],
    result: OutcomeResult,
) -> Vec<(String, Verdict)> {
    let mut then = Vec::new();
    for (_, v) in decisions {
        if let Verdict::Act { attempt_id, .. } = v {
            let report = Event::Outcome(Outcome {
                policy: "php".into(),
                attempt_id: Some(*attempt_id),
                result,
                verified: None,
                detail: None,
            });
            then.extend(decide(e, secs, report));
        }
    }
    then
}

#[test]
fn each_selected_pod_has_a_guard_of_its_own() {
    let mut e = selector_engine();
    for name in ["php-a", "php-b", "php-c"] {
        assert!(decide(&mut e, 0.0, pod(name, false)).is_empty());
    }
    // php-a crash-loops and uses up its two attempts, then its circuit opens.
    let first = decide(&mut e, 1.0, pod("php-a", true));
    assert_eq!(acted_on(&first), ["pod/web/php-a"]);
    done(&mut e, 2.0, &first, OutcomeResult::Failed);
    let second = decide(&mut e, 20.0, pod("php-a", true));

    assert_eq!(acted_on(&second), ["pod/web/php-a"]);
    // The second failure uses up the window's attempts: the circuit opens at once.
    let third = done(&mut e, 21.0, &second, OutcomeResult::Failed);
    assert!(
        third.iter().any(
            |(t, v)| t == "pod/web/php-a" && matches!(v, Verdict::Escalate { attempts: 2, .. })
        ),
        "{third:?}"
    );
    // Its siblings' guards are untouched: each acts at once, on itself only.
    for (i, name) in ["php-b", "php-c"].into_iter().enumerate() {
        let d = decide(&mut e, 41.0 + i as f64, pod(name, true));
        assert_eq!(acted_on(&d), [format!("pod/web/{name}").as_str()], "{d:?}");
        assert!(
            d.iter().all(|(t, _)| *t == format!("pod/web/{name}")),
            "{d:?}"
        );
    }
    // The policy as written is one; its instances are the engine's own.
    assert_eq!(e.policies().len(), 1);
}

#[test]
fn a_selector_selects_by_kind_namespace_and_every_label() {
    let mut e = selector_engine();
    assert!(decide(&mut e, 0.0, pod_in("shop", "php-x", "php", true, false)).is_empty());
    assert!(decide(&mut e, 0.0, pod_in("web", "nginx-x", "nginx", true, false)).is_empty());
    let node = Event::Node(NodeObservation {
        name: "php-x".into(),
        labels: labels("php"),
        conditions: BTreeMap::new(),
        deleted: false,
    });
    assert!(decide(&mut e, 0.0, node).is_empty());
    assert_eq!(
        acted_on(&decide(
            &mut e,
            1.0,
            pod_in("web", "php-x", "php", true, false)
        )),
        ["pod/web/php-x"]
    );
}

#[test]
fn a_pod_that_comes_back_under_its_name_meets_its_own_history() {
    let mut e = selector_engine();
    let first = decide(&mut e, 0.0, pod("php-0", true));
    assert_eq!(acted_on(&first), ["pod/web/php-0"]);
    // The attempt deletes the pod; the StatefulSet brings it back, still crashing.
    assert!(decide(&mut e, 1.0, pod_in("web", "php-0", "php", false, true)).is_empty());
    done(&mut e, 2.0, &first, OutcomeResult::Ok);
    let back = decide(&mut e, 3.0, pod("php-0", true));
    assert!(
        matches!(
            back.as_slice(),
            [(
                _,
                Verdict::Skip {
                    reason: SkipReason::Cooldown,
                    ..
                }
            )]
        ),
        "the cooldown from before the deletion holds: {back:?}"
    );
}

#[test]
fn a_pod_that_loses_the_label_is_no_longer_acted_on() {
    let mut e = selector_engine();
    assert!(decide(&mut e, 0.0, pod("php-0", false)).is_empty());
    assert!(decide(&mut e, 1.0, pod_in("web", "php-0", "debug", true, false)).is_empty());
    assert_eq!(
        acted_on(&decide(&mut e, 2.0, pod("php-0", true))),
        ["pod/web/php-0"]
    );
}

#[test]
fn a_reload_keeps_each_instance_and_its_guard() {
    let mut e = selector_engine();
    let first = decide(&mut e, 0.0, pod("php-a", true));
    done(&mut e, 1.0, &first, OutcomeResult::Failed);
    assert!(decide(&mut e, 2.0, pod("php-b", false)).is_empty());
    let edited = SELECTOR.replace("maxAttempts: 2", "maxAttempts: 3");
    let mut out = Vec::new();
    let (policies, errors) = crate::policy::parse_file(Path::new("p.yaml"), &edited);
    assert!(errors.is_empty(), "{errors:?}");
    e.replace_policies(at(3.0), policies, &mut out);
    // php-a's instance is back, still in its cooldown, and says so once.
    let says: Vec<(String, Verdict)> = out
        .into_iter()
        .map(|d| (target_name(&e.policy(d.policy)), d.verdict))
        .collect();
    assert!(
        says.iter().all(|(t, v)| t == "pod/web/php-a"
            && matches!(
                v,
                Verdict::Skip {
                    reason: SkipReason::Cooldown,
                    ..
                }
            )),
        "{says:?}"
    );
    // The reload gave php-a its instance back at once, from what was known of it: its
    // cooldown ends at 10s and it acts then, with no new word from the pod, and the
    // first attempt still counts.
    let later = decide(&mut e, 15.0, Event::Tick {});
    assert!(
        matches!(
            later.as_slice(),
            [(t, Verdict::Act { attempt: 2, .. })] if t == "pod/web/php-a"
        ),
        "{later:?}"
    );
}

/// A known pod keeps only the labels a selector reads: a reload that selects by a
/// label nobody read before finds the pod on its next observation (the operator's new
/// watch lists it at once), while the selectors of old keep theirs through the reload.
#[test]
fn a_known_object_keeps_the_labels_selectors_read() {
    let mut e = selector_engine();
    let mut crashing = pod("php-a", true);
    if let Event::Pod(p) = &mut crashing {
        p.labels.insert("tier".into(), "web".into());
        p.labels
            .insert("pod-template-hash".into(), "7d9c5b6f48".into());
    }
    assert_eq!(
        acted_on(&decide(&mut e, 0.0, crashing.clone())),
        ["pod/web/php-a"]
    );
    let kept: Vec<&String> = e.objects["pod/web/php-a"].labels.keys().collect();
    assert_eq!(kept, ["app"]);
    let by_tier = SELECTOR
        .replace("name: php,", "name: tier,")
        .replace("selector: { app: php }", "selector: { tier: web }");
    let both = format!("{SELECTOR}---\n{by_tier}");
    let (policies, errors) = crate::policy::parse_file(Path::new("p.yaml"), &both);
    assert!(errors.is_empty(), "{errors:?}");
    let mut out = Vec::new();
    e.replace_policies(at(1.0), policies, &mut out);
    let instances = |e: &Engine| -> Vec<String> {
        (e.written..e.policies.len())
            .filter(|&i| matches!(e.states[i].role, Role::Instance { .. }))
            .map(|i| format!("{} on {}", e.policies[i].name(), e.target_names[i]))
            .collect()
    };
    assert_eq!(instances(&e), ["php on pod/web/php-a"]);
    decide(&mut e, 2.0, crashing);
    let mut now = instances(&e);
    now.sort();
    assert_eq!(now, ["php on pod/web/php-a", "tier on pod/web/php-a"]);
    let kept: Vec<&String> = e.objects["pod/web/php-a"].labels.keys().collect();
    assert_eq!(kept, ["app", "tier"]);
}

#[test]
fn a_reset_names_one_of_a_selectors_targets_or_all() {
    let mut e = selector_engine();
    for (name, t) in [("php-a", 0.0), ("php-b", 30.0)] {
        let d = decide(&mut e, t, pod(name, true));
        done(&mut e, t + 1.0, &d, OutcomeResult::Failed);
        let d = decide(&mut e, t + 20.0, pod(name, true));
        let open = done(&mut e, t + 21.0, &d, OutcomeResult::Failed);
        assert!(
            open.iter()
                .any(|(_, v)| matches!(v, Verdict::Escalate { .. })),
            "{open:?}"
        );
    }
    let reset = |target: Option<&str>| {
        Event::Reset(Reset {
            policy: "php".into(),
            target: target.map(String::from),
        })
    };
    let one = decide(&mut e, 60.0, reset(Some("pod/web/php-b")));
    assert_eq!(acted_on(&one), ["pod/web/php-b"]);
    let all = decide(&mut e, 70.0, reset(None));
    assert_eq!(
        acted_on(&all),
        ["pod/web/php-a"],
        "php-b is in flight: {all:?}"
    );
}

#[test]
fn pods_churning_through_a_selector_take_no_memory_for_ever() {
    let mut e = selector_engine();
    let mut out = Vec::new();
    for i in 0..20_000u32 {
        let t = at(i as f64 * 10.0);
        let name = format!("php-{i}");
        // Every tenth pod crashes and is acted on; its attempt reports back at once.
        let crashing = i % 10 == 0;
        out.clear();
        e.handle(t, &pod(&name, crashing), &mut out);
        for d in &out {
            if let Verdict::Act { attempt_id, .. } = d.verdict {
                let report = Event::Outcome(Outcome {
                    policy: "php".into(),
                    attempt_id: Some(attempt_id),
                    result: OutcomeResult::Ok,
                    verified: None,
                    detail: None,
                });
                e.handle(t, &report, &mut Vec::new());
            }
        }
        e.handle(t, &pod_in("web", &name, "php", false, true), &mut out);
    }
    // 20,000 pods came and went, 2,000 of them acted on; the last hour's attempts
    // (360 of the pods were seen in it, 36 acted on) are all a guard may still count.
    assert!(e.policies.len() <= 2, "{} slots", e.policies.len());
    assert!(e.objects.is_empty());
    // Targets are looked over each time their number doubles: at most twice what can
    // still count is kept.
    assert!(
        e.targets.len() <= (2 * 37).max(RECLAIM_FLOOR) + 1,
        "{}",
        e.targets.len()
    );
}

#[test]
fn a_restart_of_salve_restores_the_guard_of_a_selected_object_not_yet_seen() {
    let mut e = selector_engine();
    let failed = |secs: f64| PastEvent {
        at: at(secs),
        policy: "php".into(),
        target: "pod/web/php-a".into(),
        kind: PastKind::Attempt {
            result: Some(OutcomeResult::Failed),
            succeeded: false,
        },
    };
    e.restore(&[failed(0.0), failed(20.0)], 2);
    // Both attempts of the window were used before the restart: the circuit opens at
    // once, and the sibling the journal does not name acts as before.
    let d = decide(&mut e, 30.0, pod("php-a", true));
    assert!(
        matches!(d.as_slice(), [(_, Verdict::Escalate { attempts: 2, .. })]),
        "{d:?}"
    );
    let d = decide(&mut e, 31.0, pod("php-b", true));
    assert!(
        matches!(
            d.as_slice(),
            [(
                _,
                Verdict::Act {
                    attempt: 1,
                    attempt_id: 3,
                    ..
                }
            )]
        ),
        "{d:?}"
    );
}

/// Pods that come and go at `secs`, enough to make the engine look for targets to
/// forget more than once.
fn churn(e: &mut Engine, secs: f64) {
    for i in 0..(4 * RECLAIM_FLOOR) {
        let name = format!("churn-{i}");
        e.handle(at(secs), &pod(&name, false), &mut Vec::new());
        e.handle(
            at(secs),
            &pod_in("web", &name, "php", false, true),
            &mut Vec::new(),
        );
    }
}

#[test]
fn a_deleted_pods_open_circuit_outlasts_the_churn_until_it_closes() {
    let mut e = selector_engine();
    let first = decide(&mut e, 0.0, pod("php-0", true));
    done(&mut e, 1.0, &first, OutcomeResult::Failed);
    let second = decide(&mut e, 20.0, pod("php-0", true));
    let opened = done(&mut e, 21.0, &second, OutcomeResult::Failed);
    assert!(
        opened
            .iter()
            .any(|(_, v)| matches!(v, Verdict::Escalate { .. })),
        "{opened:?}"
    );
    assert!(decide(&mut e, 22.0, pod_in("web", "php-0", "php", true, true)).is_empty());
    // Past the window of the last attempt (20s + 1h), the circuit (opened at 21s for
    // an hour) is still open: the guard is kept through the churn, and the pod back
    // meets it.
    churn(&mut e, 3_620.2);
    let back = decide(&mut e, 3_620.5, pod("php-0", true));
    assert!(
        matches!(
            back.as_slice(),
            [(
                _,
                Verdict::Skip {
                    reason: SkipReason::CircuitOpen,
                    ..
                }
            )]
        ),
        "{back:?}"
    );
    // Once the circuit has closed and no attempt counts, the guard is forgotten, and
    // the pod starts afresh.
    assert!(decide(&mut e, 3_620.6, pod_in("web", "php-0", "php", true, true)).is_empty());
    churn(&mut e, 3_700.0);
    assert!(!e
        .target_index
        .contains_key(&(TargetKey::parse("pod/web/php-0").unwrap(), false)));
    let fresh = decide(&mut e, 3_701.0, pod("php-0", true));
    assert!(
        matches!(fresh.as_slice(), [(_, Verdict::Act { attempt: 1, .. })]),
        "{fresh:?}"
    );
}

#[test]
fn a_deleted_pods_attempts_and_attempt_in_flight_outlast_the_churn() {
    let mut e = selector_engine();
    // An attempt in flight when its pod goes (the restart deletes it).
    let first = decide(&mut e, 0.0, pod("php-0", true));
    assert!(decide(&mut e, 1.0, pod_in("web", "php-0", "php", true, true)).is_empty());
    churn(&mut e, 2.0);
    done(&mut e, 3.0, &first, OutcomeResult::Failed);
    // Its attempt still counts: the pod back within the cooldown waits, then its
    // second attempt is the window's second.
    let back = decide(&mut e, 4.0, pod("php-0", true));
    assert!(
        matches!(
            back.as_slice(),
            [(
                _,
                Verdict::Skip {
                    reason: SkipReason::Cooldown,
                    ..
                }
            )]
        ),
        "{back:?}"
    );
    let second = decide(&mut e, 20.0, pod("php-0", true));
    assert!(
        second
            .iter()
            .any(|(_, v)| matches!(v, Verdict::Act { attempt: 2, .. })),
        "{second:?}"
    );
    // The pod, still crash-looping, has used the window's two attempts: its circuit
    // opens as the second reports back.
    let opened = done(&mut e, 21.0, &second, OutcomeResult::Ok);
    assert!(
        opened
            .iter()
            .any(|(_, v)| matches!(v, Verdict::Escalate { attempts: 2, .. })),
        "{opened:?}"
    );
    // Gone again, and back half an hour and a churn later: the open circuit held.
    assert!(decide(&mut e, 30.0, pod_in("web", "php-0", "php", false, true)).is_empty());
    churn(&mut e, 1_800.0);
    let third = decide(&mut e, 1_801.0, pod("php-0", true));
    assert!(
        matches!(
            third.as_slice(),
            [(
                _,
                Verdict::Skip {
                    reason: SkipReason::CircuitOpen,
                    ..
                }
            )]
        ),
        "{third:?}"
    );
}

#[test]
fn an_object_leaving_one_selector_stays_with_the_others() {
    let tier = SELECTOR
        .replace("name: php,", "name: web-tier,")
        .replace("selector: { app: php }", "selector: { tier: web }");
    let mut e = engine_from(&[SELECTOR.to_string(), tier], Limits::default());
    let both = |crashing: bool, tier: bool| {
        let mut labels = labels("php");
        if tier {
            labels.insert("tier".into(), "web".into());
        }
        Event::Pod(PodObservation {
            namespace: "web".into(),
            name: "php-0".into(),
            labels,
            containers: vec![ContainerObservation {
                name: "php".into(),
                waiting: crashing.then(|| "CrashLoopBackOff".into()),
                last_terminated: None,
                restarts: 0,
            }],
            conditions: Default::default(),
            deleted: false,
        })
    };
    assert!(decide(&mut e, 0.0, both(false, true)).is_empty());
    // The pod loses `tier`: web-tier lets go of it, php keeps it.
    assert!(decide(&mut e, 1.0, both(false, false)).is_empty());
    let acted = decide(&mut e, 2.0, both(true, false));
    assert_eq!(acted_on(&acted), ["pod/web/php-0"]);
    assert!(acted
        .iter()
        .all(|(_, v)| !matches!(v, Verdict::Skip { .. })));
    // Its target's guard still knows php's instance: the outcome re-decides it.
    let after = done(&mut e, 3.0, &acted, OutcomeResult::Failed);
    assert!(
        matches!(
            after.as_slice(),
            [(
                _,
                Verdict::Skip {
                    reason: SkipReason::Cooldown,
                    ..
                }
            )]
        ),
        "{after:?}"
    );
}

#[test]
fn the_journal_of_a_named_policys_old_target_makes_no_guard() {
    let mut e = engine_from(
        &[policy_yaml("p", "php.service", DOWN, GUARD, "")],
        Limits::default(),
    );
    let before = e.targets.len();
    e.restore(
        &[PastEvent {
            at: at(0.0),
            policy: "p".into(),
            target: "old.service".into(),
            kind: PastKind::Escalated,
        }],
        1,
    );
    assert_eq!(e.targets.len(), before);
}

#[test]
fn a_pod_deleted_while_it_waits_for_a_slot_leaves_the_others_their_places() {
    let limits = Limits {
        max_concurrent: 1,
        ..Limits::default()
    };
    let mut e = engine_from(&[SELECTOR.to_string()], limits);
    let first = decide(&mut e, 0.0, pod("php-a", true));
    assert_eq!(acted_on(&first), ["pod/web/php-a"]);
    for name in ["php-b", "php-c"] {
        let held = decide(&mut e, 1.0, pod(name, true));
        assert!(
            matches!(
                held.as_slice(),
                [(
                    _,
                    Verdict::Skip {
                        reason: SkipReason::MaxConcurrent,
                        ..
                    }
                )]
            ),
            "{held:?}"
        );
    }
    assert!(decide(&mut e, 2.0, pod_in("web", "php-b", "php", true, true)).is_empty());
    // php-a's slot frees: php-c, still waiting, takes it.
    let then = done(&mut e, 3.0, &first, OutcomeResult::Ok);
    assert_eq!(acted_on(&then), ["pod/web/php-c"], "{then:?}");
}

#[test]
fn an_outcome_naming_a_selector_but_no_attempt_is_ignored() {
    let mut e = selector_engine();
    let report = |secs: f64, e: &mut Engine| {
        decide(
            e,
            secs,
            Event::Outcome(Outcome {
                policy: "php".into(),
                attempt_id: None,
                result: OutcomeResult::Failed,
                verified: None,
                detail: None,
            }),
        )
    };
    // Before any object is seen, and while an attempt is in flight: nothing changes.
    assert!(report(0.0, &mut e).is_empty());
    assert!(!e.circuit_open(PolicyId(0), at(0.0)));
    let first = decide(&mut e, 1.0, pod("php-a", true));
    assert!(report(2.0, &mut e).is_empty());
    let in_flight = decide(&mut e, 3.0, pod("php-a", true));
    assert!(
        matches!(
            in_flight.as_slice(),
            [(
                _,
                Verdict::Skip {
                    reason: SkipReason::InFlight,
                    ..
                }
            )]
        ),
        "{in_flight:?}"
    );
    done(&mut e, 4.0, &first, OutcomeResult::Ok);
}

#[test]
fn a_restored_open_circuit_of_an_object_not_yet_seen_stays_open_for_the_window() {
    let mut e = selector_engine();
    e.restore(
        &[PastEvent {
            at: at(0.0),
            policy: "php".into(),
            target: "pod/web/php-a".into(),
            kind: PastKind::Escalated,
        }],
        1,
    );
    let d = decide(&mut e, 600.0, pod("php-a", true));
    assert!(
        matches!(
            d.as_slice(),
            [(_, Verdict::Skip {
                reason: SkipReason::CircuitOpen,
                retry_at: Some(closes),
                ..
            })] if *closes == at(3_600.0)
        ),
        "{d:?}"
    );
}

#[test]
fn a_selector_that_has_selected_nothing_yet_can_be_paused_and_its_objects_wait() {
    let mut e = selector_engine();
    let mut out = Vec::new();
    e.pause(
        at(0.0),
        PauseScope::Policy("php".into()),
        at(60.0),
        &mut out,
    )
    .expect("a selector is a policy to pause, objects or none");
    let seen = decide(&mut e, 1.0, pod("php-0", true));
    assert!(acted_on(&seen).is_empty(), "{seen:?}");
    assert!(
        seen.iter().any(|(t, v)| t == "pod/web/php-0"
            && matches!(
                v,
                Verdict::Skip {
                    reason: SkipReason::Paused,
                    ..
                }
            )),
        "{seen:?}"
    );
    let after = decide(&mut e, 60.0, Event::Tick {});
    assert_eq!(acted_on(&after), ["pod/web/php-0"], "{after:?}");
}
