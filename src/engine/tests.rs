//! One test per guardrail rule, each driving the engine with explicit times.

use super::*;
use crate::policy::parse_file;
use std::path::Path;
use std::time::Duration;

pub(crate) fn policy_yaml(
    name: &str,
    unit: &str,
    trigger: &str,
    guard: &str,
    extra: &str,
) -> String {
    format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ unit: {unit} }}\n  trigger:\n{trigger}\n  actions:\n    - restart: {{}}\n  escalate:\n    - notify: {{ webhook: \"http://127.0.0.1:9093/\" }}\n  guard: {guard}\n{extra}"
    )
}

pub(crate) fn engine_from(yaml: &[String], limits: Limits) -> Engine {
    let mut policies = Vec::new();
    for text in yaml {
        let (found, errors) = parse_file(Path::new("test.yaml"), text);
        assert!(errors.is_empty(), "{errors:?}\n{text}");
        policies.extend(found);
    }
    Engine::new(policies, limits)
}

const DOWN: &str = "    - unit: { activeState: [failed, inactive] }";
const GUARD: &str = "{ cooldown: 10s, maxAttempts: 3, window: 10m, backoff: 2.0 }";

fn one(trigger: &str, guard: &str, extra: &str) -> Engine {
    engine_from(
        &[policy_yaml("p", "php.service", trigger, guard, extra)],
        Limits::default(),
    )
}

fn at(secs: f64) -> Timestamp {
    Timestamp::from_duration(Duration::from_secs_f64(secs))
}

fn unit(name: &str, state: ActiveState) -> Event {
    Event::Unit(UnitObservation {
        name: name.into(),
        active_state: Some(state),
        sub_state: None,
        unit_file_state: None,
        result: None,
        n_restarts: None,
    })
}

fn outcome(policy: &str, result: OutcomeResult) -> Event {
    Event::Outcome(Outcome {
        policy: policy.into(),
        attempt_id: None,
        result,
        verified: None,
        detail: None,
    })
}

fn feed(engine: &mut Engine, secs: f64, event: Event) -> Vec<Verdict> {
    let mut out = Vec::new();
    engine.handle(at(secs), &event, &mut out);
    out.into_iter().map(|d| d.verdict).collect()
}

fn acts(verdicts: &[Verdict]) -> usize {
    verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Act { .. }))
        .count()
}

fn skip_reason(verdicts: &[Verdict]) -> Option<SkipReason> {
    verdicts.iter().find_map(|v| match v {
        Verdict::Skip { reason, .. } => Some(*reason),
        _ => None,
    })
}

use crate::policy::ActiveState::{self, Active, Failed};

#[test]
fn unit_failure_acts_immediately_without_debounce() {
    let mut e = one(DOWN, GUARD, "");
    let v = feed(&mut e, 0.0, unit("php.service", Failed));
    assert!(
        matches!(v.as_slice(), [Verdict::Act { attempt: 1, .. }]),
        "{v:?}"
    );
}

#[test]
fn debounce_waits_for_the_condition_to_hold_for_its_whole_duration() {
    let mut e = one(&format!("{DOWN}\n      for: 5s"), GUARD, "");
    assert!(feed(&mut e, 0.0, unit("php.service", Failed)).is_empty());
    assert_eq!(e.next_deadline(), Some(at(5.0)));
    assert!(feed(&mut e, 4.9, Event::Tick {}).is_empty());
    assert_eq!(acts(&feed(&mut e, 5.0, Event::Tick {})), 1);
}

#[test]
fn a_flap_resets_the_debounce() {
    let mut e = one(&format!("{DOWN}\n      for: 5s"), GUARD, "");
    feed(&mut e, 0.0, unit("php.service", Failed));
    feed(&mut e, 3.0, unit("php.service", Active));
    feed(&mut e, 4.0, unit("php.service", Failed));
    assert!(
        feed(&mut e, 6.0, Event::Tick {}).is_empty(),
        "held only 2s since the flap"
    );
    assert_eq!(acts(&feed(&mut e, 9.0, Event::Tick {})), 1);
}

#[test]
fn cooldown_blocks_a_second_attempt_until_it_has_passed() {
    let mut e = one(DOWN, GUARD, "");
    feed(&mut e, 0.0, unit("php.service", Failed));
    let v = feed(&mut e, 1.0, outcome("p", OutcomeResult::Ok));
    assert_eq!(skip_reason(&v), Some(SkipReason::Cooldown));
    assert!(matches!(v[0], Verdict::Skip { retry_at: Some(t), .. } if t == at(10.0)));
    assert!(feed(&mut e, 9.9, Event::Tick {}).is_empty());
    assert_eq!(acts(&feed(&mut e, 10.0, Event::Tick {})), 1);
}

#[test]
fn backoff_multiplies_the_cooldown_after_each_failure_and_success_resets_it() {
    let mut e = one(DOWN, GUARD, "");
    feed(&mut e, 0.0, unit("php.service", Failed));
    feed(&mut e, 1.0, outcome("p", OutcomeResult::Failed));
    assert_eq!(e.next_deadline(), Some(at(20.0)), "10s * 2^1");
    assert_eq!(acts(&feed(&mut e, 20.0, Event::Tick {})), 1);
    feed(&mut e, 21.0, outcome("p", OutcomeResult::TimedOut));
    assert_eq!(e.next_deadline(), Some(at(60.0)), "20s start + 10s * 2^2");
    assert_eq!(acts(&feed(&mut e, 60.0, Event::Tick {})), 1);
    // The unit is still failed after the third attempt: a fourth would exceed
    // maxAttempts, so the circuit opens as soon as the outcome arrives.
    let v = feed(&mut e, 61.0, outcome("p", OutcomeResult::Ok));
    assert!(
        matches!(
            v.as_slice(),
            [Verdict::Escalate {
                attempts: 3,
                dry_run: false
            }]
        ),
        "{v:?}"
    );
}

#[test]
fn failed_verification_counts_as_a_failed_attempt() {
    let mut e = one(DOWN, GUARD, "");
    feed(&mut e, 0.0, unit("php.service", Failed));
    let verify_failed = Event::Outcome(Outcome {
        policy: "p".into(),
        attempt_id: None,
        result: OutcomeResult::Ok,
        verified: Some(false),
        detail: None,
    });
    feed(&mut e, 1.0, verify_failed);
    assert_eq!(
        e.next_deadline(),
        Some(at(20.0)),
        "backoff applied as for a failure"
    );
}

#[test]
fn crash_loop_opens_circuit_after_max_attempts_and_escalates_exactly_once() {
    let mut e = one(
        DOWN,
        "{ cooldown: 1s, maxAttempts: 2, window: 1m, backoff: 1.0 }",
        "",
    );
    let mut all = feed(&mut e, 0.0, unit("php.service", Failed));
    all.extend(feed(&mut e, 0.5, outcome("p", OutcomeResult::Failed)));
    all.extend(feed(&mut e, 1.0, Event::Tick {}));
    all.extend(feed(&mut e, 1.5, outcome("p", OutcomeResult::Failed)));
    for t in 2..59 {
        all.extend(feed(&mut e, t as f64, unit("php.service", Failed)));
    }
    assert_eq!(acts(&all), 2);
    let escalations = all
        .iter()
        .filter(|v| matches!(v, Verdict::Escalate { .. }))
        .count();
    assert_eq!(escalations, 1, "{all:?}");
    assert!(e.circuit_open(PolicyId(0), at(58.0)));
}

#[test]
fn attempts_that_did_not_apply_never_open_the_circuit_but_back_off() {
    let mut e = one(
        DOWN,
        "{ cooldown: 1s, maxAttempts: 2, window: 1m, backoff: 2.0 }",
        "",
    );
    let mut all = feed(&mut e, 0.0, unit("php.service", Failed));
    let mut started = vec![0.0];
    all.extend(feed(
        &mut e,
        0.5,
        outcome("p", OutcomeResult::NotApplicable),
    ));
    for t in 1..=30 {
        let v = feed(&mut e, t as f64, Event::Tick {});
        let acted = acts(&v) > 0;
        all.extend(v);
        if acted {
            started.push(t as f64);
            all.extend(feed(
                &mut e,
                t as f64 + 0.5,
                outcome("p", OutcomeResult::NotApplicable),
            ));
        }
    }
    assert_eq!(
        started,
        [0.0, 2.0, 6.0, 14.0, 30.0],
        "cooldown 1s, doubling after each"
    );
    assert!(
        !all.iter().any(|v| matches!(v, Verdict::Escalate { .. })),
        "{all:?}"
    );
    assert!(!e.circuit_open(PolicyId(0), at(30.0)));
}

#[test]
fn circuit_closes_when_its_window_has_passed() {
    let mut e = one(
        DOWN,
        "{ cooldown: 1s, maxAttempts: 1, window: 1m, backoff: 1.0 }",
        "",
    );
    feed(&mut e, 0.0, unit("php.service", Failed));
    let v = feed(&mut e, 1.0, outcome("p", OutcomeResult::Failed));
    assert!(matches!(v.as_slice(), [Verdict::Escalate { .. }]), "{v:?}");
    assert_eq!(e.next_deadline(), Some(at(61.0)));
    let v = feed(&mut e, 61.0, Event::Tick {});
    assert!(
        matches!(v.as_slice(), [Verdict::Act { attempt: 1, .. }]),
        "{v:?}"
    );
}

#[test]
fn a_person_can_reset_an_open_circuit() {
    let mut e = one(
        DOWN,
        "{ cooldown: 1s, maxAttempts: 1, window: 1h, backoff: 1.0 }",
        "",
    );
    feed(&mut e, 0.0, unit("php.service", Failed));
    feed(&mut e, 1.0, outcome("p", OutcomeResult::Failed));
    assert!(e.circuit_open(PolicyId(0), at(2.0)));
    let v = feed(&mut e, 2.0, Event::Reset(Reset { policy: "p".into() }));
    assert_eq!(acts(&v), 1);
}

#[test]
fn dry_run_decides_and_skips_but_never_acts() {
    let mut e = one(DOWN, GUARD, "  dryRun: true\n");
    let v = feed(&mut e, 0.0, unit("php.service", Failed));
    assert!(
        matches!(
            v.as_slice(),
            [Verdict::Skip {
                reason: SkipReason::DryRun,
                attempt: Some(1),
                ..
            }]
        ),
        "{v:?}"
    );
    let mut later = Vec::new();
    for t in 1..200 {
        later.extend(feed(&mut e, t as f64, Event::Tick {}));
    }
    assert!(later.iter().all(|v| !v.is_executable()), "{later:?}");
    assert!(later
        .iter()
        .any(|v| matches!(v, Verdict::Escalate { dry_run: true, .. })));
}

#[test]
fn agent_wide_dry_run_applies_to_every_policy() {
    let limits = Limits {
        dry_run: true,
        ..Limits::default()
    };
    let mut e = engine_from(&[policy_yaml("p", "php.service", DOWN, GUARD, "")], limits);
    let v = feed(&mut e, 0.0, unit("php.service", Failed));
    assert_eq!(skip_reason(&v), Some(SkipReason::DryRun));
}

#[test]
fn storm_cap_limits_actions_per_minute_across_policies() {
    let yaml: Vec<String> = (0..5)
        .map(|i| policy_yaml(&format!("p{i}"), &format!("u{i}.service"), DOWN, GUARD, ""))
        .collect();
    let limits = Limits {
        max_actions_per_minute: 2,
        max_concurrent: 100,
        dry_run: false,
    };
    let mut e = engine_from(&yaml, limits);
    let mut all = Vec::new();
    for i in 0..5 {
        all.extend(feed(&mut e, 0.0, unit(&format!("u{i}.service"), Failed)));
    }
    assert_eq!(acts(&all), 2);
    assert_eq!(
        all.iter()
            .filter(|v| matches!(
                v,
                Verdict::Skip {
                    reason: SkipReason::StormCap,
                    ..
                }
            ))
            .count(),
        3
    );
    for i in 0..2 {
        feed(&mut e, 1.0, outcome(&format!("p{i}"), OutcomeResult::Ok));
    }
    assert_eq!(
        acts(&feed(&mut e, 60.0, Event::Tick {})),
        2,
        "the cap frees after 60s"
    );
}

#[test]
fn max_concurrent_holds_back_until_a_slot_frees() {
    let yaml: Vec<String> = (0..3)
        .map(|i| policy_yaml(&format!("p{i}"), &format!("u{i}.service"), DOWN, GUARD, ""))
        .collect();
    let limits = Limits {
        max_actions_per_minute: 100,
        max_concurrent: 1,
        dry_run: false,
    };
    let mut e = engine_from(&yaml, limits);
    assert_eq!(acts(&feed(&mut e, 0.0, unit("u0.service", Failed))), 1);
    let v = feed(&mut e, 0.0, unit("u1.service", Failed));
    assert_eq!(skip_reason(&v), Some(SkipReason::MaxConcurrent));
    let v = feed(&mut e, 2.0, outcome("p0", OutcomeResult::Ok));
    assert!(
        v.iter().any(|v| matches!(v, Verdict::Act { .. })),
        "waiting policy acts once a slot frees: {v:?}"
    );
}

#[test]
fn the_restart_own_transitions_are_ignored_while_it_is_in_flight() {
    let mut e = one(
        DOWN,
        "{ cooldown: 0s, maxAttempts: 3, window: 10m, backoff: 1.0 }",
        "",
    );
    let mut all = feed(&mut e, 0.0, unit("php.service", Failed));
    for (t, s) in [
        (0.001, ActiveState::Deactivating),
        (0.002, ActiveState::Inactive),
        (0.003, ActiveState::Activating),
        (0.030, Active),
    ] {
        all.extend(feed(&mut e, t, unit("php.service", s)));
    }
    all.extend(feed(&mut e, 0.031, outcome("p", OutcomeResult::Ok)));
    assert_eq!(acts(&all), 1, "one crash, one restart: {all:?}");
    let in_flight = all
        .iter()
        .filter(|v| {
            matches!(
                v,
                Verdict::Skip {
                    reason: SkipReason::InFlight,
                    ..
                }
            )
        })
        .count();
    assert_eq!(in_flight, 1, "reported once, not per transition");
}

#[test]
fn outcomes_for_unknown_policies_or_stale_attempts_are_ignored() {
    let mut e = one(DOWN, GUARD, "");
    feed(&mut e, 0.0, unit("php.service", Failed));
    assert!(feed(&mut e, 1.0, outcome("nope", OutcomeResult::Ok)).is_empty());
    let stale = Event::Outcome(Outcome {
        policy: "p".into(),
        attempt_id: Some(99),
        result: OutcomeResult::Ok,
        verified: None,
        detail: None,
    });
    assert!(feed(&mut e, 1.0, stale).is_empty());
    let v = feed(&mut e, 1.0, unit("php.service", Failed));
    assert_eq!(
        skip_reason(&v),
        Some(SkipReason::InFlight),
        "attempt 1 still in flight"
    );
}

#[test]
fn a_skip_is_reported_once_per_reason_while_the_condition_keeps_holding() {
    let mut e = one(DOWN, GUARD, "");
    feed(&mut e, 0.0, unit("php.service", Failed));
    feed(&mut e, 0.5, outcome("p", OutcomeResult::Ok));
    let mut all = Vec::new();
    for i in 0..9 {
        all.extend(feed(&mut e, 1.0 + i as f64, unit("php.service", Failed)));
    }
    assert!(
        all.is_empty(),
        "cooldown skip already reported at 0.5s: {all:?}"
    );
}

#[test]
fn http_success_resets_the_consecutive_failure_count() {
    let trig =
        "    - http: { url: \"http://127.0.0.1/ping\", failures: 2, interval: 1s, timeout: 1s }";
    let mut e = one(trig, GUARD, "");
    let probe = |status: u16| {
        Event::Http(HttpObservation {
            url: "http://127.0.0.1/ping".into(),
            status: Some(status),
            error: None,
        })
    };
    assert!(feed(&mut e, 0.0, probe(502)).is_empty());
    assert!(feed(&mut e, 1.0, probe(200)).is_empty());
    assert!(feed(&mut e, 2.0, probe(503)).is_empty());
    assert_eq!(acts(&feed(&mut e, 3.0, probe(504))), 1);
}

#[test]
fn log_matches_count_only_within_their_window() {
    let trig = "    - log: { path: /var/log/x.log, pattern: 'refused', count: 2, within: 10s }";
    let mut e = one(trig, GUARD, "");
    let line = |text: &str| {
        Event::Log(LogLine {
            path: "/var/log/x.log".into(),
            line: text.into(),
        })
    };
    assert!(feed(
        &mut e,
        0.0,
        line("connect() failed (111: Connection refused)")
    )
    .is_empty());
    assert!(feed(&mut e, 5.0, line("favicon.ico not found")).is_empty());
    assert!(
        feed(&mut e, 11.0, line("again refused")).is_empty(),
        "the first hit expired"
    );
    assert_eq!(acts(&feed(&mut e, 12.0, line("refused")),), 1);
}

#[test]
fn unit_file_state_triggers_the_enable_policy() {
    let trig = "    - unit: { unitFileState: [disabled] }";
    let mut e = one(trig, GUARD, "");
    let obs = Event::Unit(UnitObservation {
        name: "php.service".into(),
        active_state: Some(Active),
        sub_state: Some("running".into()),
        unit_file_state: Some(crate::policy::UnitFileState::Disabled),
        result: None,
        n_restarts: None,
    });
    let v = feed(&mut e, 0.0, obs);
    assert!(
        matches!(&v[..], [Verdict::Act { evidence, .. }] if evidence[0].contains("unitFileState=disabled")),
        "{v:?}"
    );
}

#[test]
fn a_successful_attempt_resets_the_backoff() {
    let mut e = one(DOWN, GUARD, "");
    feed(&mut e, 0.0, unit("php.service", Failed));
    feed(&mut e, 1.0, outcome("p", OutcomeResult::Failed));
    assert_eq!(
        acts(&feed(&mut e, 20.0, Event::Tick {})),
        1,
        "cooldown doubled to 20s"
    );
    feed(&mut e, 20.5, unit("php.service", Active));
    feed(&mut e, 21.0, outcome("p", OutcomeResult::Ok));
    let v = feed(&mut e, 30.0, unit("php.service", Failed));
    assert_eq!(
        acts(&v),
        1,
        "back to the base 10s cooldown after a success: {v:?}"
    );
}

#[test]
fn two_policies_on_one_target_share_its_attempt_in_flight_and_its_history() {
    let probe =
        "    - http: { url: \"http://127.0.0.1/ping\", failures: 1, interval: 1s, timeout: 1s }";
    let yaml = [
        policy_yaml("down", "php.service", DOWN, GUARD, ""),
        policy_yaml(
            "probe",
            "php.service",
            probe,
            "{ cooldown: 1s, maxAttempts: 1, window: 10m, backoff: 1.0 }",
            "",
        ),
    ];
    let mut e = engine_from(&yaml, Limits::default());
    let v = feed(&mut e, 0.0, unit("php.service", Failed));
    assert_eq!(acts(&v), 1);
    let bad = Event::Http(HttpObservation {
        url: "http://127.0.0.1/ping".into(),
        status: Some(502),
        error: None,
    });
    let v = feed(&mut e, 0.5, bad.clone());
    assert_eq!(
        skip_reason(&v),
        Some(SkipReason::InFlight),
        "no second restart while the first runs"
    );
    feed(&mut e, 1.0, outcome("down", OutcomeResult::Ok));
    feed(&mut e, 1.1, unit("php.service", Active));
    // The probe policy allows 1 attempt per 10m, and the target already had one.
    let v = feed(&mut e, 5.0, bad);
    assert!(
        matches!(v.as_slice(), [Verdict::Escalate { attempts: 1, .. }]),
        "{v:?}"
    );
}

#[test]
fn evidence_seen_while_an_attempt_runs_does_not_trigger_another() {
    let log = "    - log: { path: /var/log/x.log, pattern: 'refused', count: 1, within: 30s }";
    let mut e = one(&format!("{DOWN}\n{log}"), GUARD, "");
    assert_eq!(acts(&feed(&mut e, 0.0, unit("php.service", Failed))), 1);
    // Written by nginx while the restart runs: about the outage being fixed.
    feed(
        &mut e,
        0.1,
        Event::Log(LogLine {
            path: "/var/log/x.log".into(),
            line: "connect() refused".into(),
        }),
    );
    feed(&mut e, 0.2, unit("php.service", Active));
    let verified = Event::Outcome(Outcome {
        policy: "p".into(),
        attempt_id: None,
        result: OutcomeResult::Ok,
        verified: Some(true),
        detail: None,
    });
    let mut later = feed(&mut e, 0.3, verified);
    for t in 1..60 {
        later.extend(feed(&mut e, t as f64, Event::Tick {}));
    }
    assert_eq!(acts(&later), 0, "{later:?}");
}

#[test]
fn a_freed_slot_goes_to_the_policy_that_waited_first() {
    let yaml: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| {
            policy_yaml(
                n,
                &format!("{n}.service"),
                DOWN,
                "{ cooldown: 0s, maxAttempts: 10, window: 10m, backoff: 1.0 }",
                "",
            )
        })
        .collect();
    let limits = Limits {
        max_actions_per_minute: 100,
        max_concurrent: 1,
        dry_run: false,
    };
    let mut e = engine_from(&yaml, limits);
    assert_eq!(acts(&feed(&mut e, 0.0, unit("a.service", Failed))), 1);
    assert_eq!(
        skip_reason(&feed(&mut e, 0.1, unit("b.service", Failed))),
        Some(SkipReason::MaxConcurrent)
    );
    let mut out = Vec::new();
    e.handle(at(1.0), &outcome("a", OutcomeResult::Failed), &mut out);
    let first_act = out
        .iter()
        .find(|d| matches!(d.verdict, Verdict::Act { .. }))
        .expect("someone acts");
    assert_eq!(first_act.policy, PolicyId(1), "b waited first: {out:?}");
}

#[test]
fn a_builtin_log_pattern_fires_on_the_nginx_line_it_names() {
    let trig =
        "    - log: { path: /var/log/nginx/error.log, match: nginx.upstream_connect_failed }";
    let mut e = one(trig, GUARD, "");
    let line = |text: &str| {
        Event::Log(LogLine {
            path: "/var/log/nginx/error.log".into(),
            line: text.into(),
        })
    };
    let noise = "2026/11/24 22:00:31 [error] 812#812: *43 open() \"/var/www/html/favicon.ico\" failed (2: No such file or directory)";
    assert!(feed(&mut e, 0.0, line(noise)).is_empty());
    let crit = "2026/11/24 22:00:30 [crit] 812#812: *41 connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET /ping.php HTTP/1.1\"";
    let v = feed(&mut e, 1.0, line(crit));
    assert!(
        matches!(&v[..], [Verdict::Act { evidence, .. }] if evidence[0].contains("(nginx.upstream_connect_failed)")),
        "{v:?}"
    );
}
