//! Per-target guardrails: cooldown, backoff, the circuit, resets, and targets shared by policies.

use super::*;

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
                dry_run: false,
                ..
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
    // Opened by the outcome at 1.5 s, for one window: closed at 61.5 s exactly.
    assert!(e.circuit_open(PolicyId(0), at(61.499)));
    assert!(!e.circuit_open(PolicyId(0), at(61.5)));
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
    let v = feed(
        &mut e,
        2.0,
        Event::Reset(Reset {
            policy: "p".into(),
            target: None,
        }),
    );
    assert_eq!(acts(&v), 1);
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
fn a_reset_journals_each_policy_on_the_target_once() {
    let guard = "{ cooldown: 1s, maxAttempts: 1, window: 1h, backoff: 1.0 }";
    let yaml = [
        policy_yaml("a", "php.service", DOWN, guard, ""),
        policy_yaml("b", "php.service", DOWN, guard, ""),
    ];
    let mut e = engine_from(&yaml, Limits::default());
    feed(&mut e, 0.0, unit("php.service", Failed));
    let v = feed(&mut e, 1.0, outcome("a", OutcomeResult::Failed));
    assert!(
        matches!(
            v.as_slice(),
            [
                Verdict::Escalate { .. },
                Verdict::Skip {
                    reason: SkipReason::CircuitOpen,
                    ..
                }
            ]
        ),
        "{v:?}"
    );
    // The reset closes the circuit: a acts again, and b, re-decided when a's attempt
    // started, says once that one is in flight.
    let v = feed(
        &mut e,
        2.0,
        Event::Reset(Reset {
            policy: "a".into(),
            target: None,
        }),
    );
    assert!(
        matches!(
            v.as_slice(),
            [
                Verdict::Act { .. },
                Verdict::Skip {
                    reason: SkipReason::InFlight,
                    ..
                }
            ]
        ),
        "{v:?}"
    );
}
