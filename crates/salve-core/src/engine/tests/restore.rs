//! Guard state replayed from the journal at start: a restart of the agent is not a
//! second chance for a crash loop.

use super::*;

fn attempt(secs: f64, result: Option<OutcomeResult>) -> PastEvent {
    PastEvent {
        at: at(secs),
        policy: "p".into(),
        target: "php.service".into(),
        kind: PastKind::Attempt {
            result,
            succeeded: result == Some(OutcomeResult::Ok),
        },
    }
}

#[test]
fn attempts_before_a_restart_count_toward_max_attempts() {
    // maxAttempts 3 in 10m: two failed attempts and one the agent died in.
    let mut e = one(DOWN, GUARD, "");
    e.restore(
        &[
            attempt(100.0, Some(OutcomeResult::Failed)),
            attempt(120.0, Some(OutcomeResult::Failed)),
            attempt(160.0, None),
        ],
        41,
    );
    let v = feed(&mut e, 300.0, unit("php.service", Failed));
    assert!(
        matches!(v.as_slice(), [Verdict::Escalate { attempts: 3, .. }]),
        "{v:?}"
    );
}

#[test]
fn backoff_carries_over_and_new_attempt_ids_follow_the_journal() {
    let mut e = one(DOWN, GUARD, "");
    // One failure: the next attempt waits 10s * 2 from the last start.
    e.restore(&[attempt(100.0, Some(OutcomeResult::Failed))], 41);
    let v = feed(&mut e, 110.0, unit("php.service", Failed));
    assert!(
        matches!(v.as_slice(), [Verdict::Skip { reason: SkipReason::Cooldown, retry_at: Some(t), .. }] if *t == at(120.0)),
        "{v:?}"
    );
    let v = feed(&mut e, 120.0, Event::Tick {});
    assert!(
        matches!(
            v.as_slice(),
            [Verdict::Act {
                attempt_id: 42,
                attempt: 2,
                ..
            }]
        ),
        "{v:?}"
    );
}

#[test]
fn an_open_circuit_stays_open_across_a_restart() {
    let mut e = one(DOWN, GUARD, "");
    e.restore(
        &[
            attempt(0.0, Some(OutcomeResult::Failed)),
            attempt(20.0, Some(OutcomeResult::Failed)),
            attempt(60.0, Some(OutcomeResult::Failed)),
            PastEvent {
                at: at(61.0),
                policy: "p".into(),
                target: "php.service".into(),
                kind: PastKind::Escalated,
            },
        ],
        3,
    );
    let v = feed(&mut e, 200.0, unit("php.service", Failed));
    assert!(
        matches!(v.as_slice(), [Verdict::Skip { reason: SkipReason::CircuitOpen, retry_at: Some(t), .. }] if *t == at(661.0)),
        "{v:?}"
    );
    // No second escalation while it stays open; an attempt once the window has passed.
    assert!(feed(&mut e, 300.0, Event::Tick {}).is_empty());
    assert_eq!(acts(&feed(&mut e, 661.0, Event::Tick {})), 1);
}

#[test]
fn a_past_success_resets_the_backoff_and_history_of_unknown_targets_is_ignored() {
    let mut e = one(DOWN, GUARD, "");
    e.restore(
        &[
            attempt(100.0, Some(OutcomeResult::Failed)),
            attempt(120.0, Some(OutcomeResult::Ok)),
            PastEvent {
                target: "other.service".into(),
                ..attempt(125.0, Some(OutcomeResult::Failed))
            },
        ],
        0,
    );
    // Cooldown 10s from the last start, no backoff: the success reset it.
    assert_eq!(acts(&feed(&mut e, 130.0, unit("php.service", Failed))), 1);
}

#[test]
fn attempts_that_did_not_apply_replay_as_backoff_not_toward_the_circuit() {
    // maxAttempts 2: two past attempts that found nothing to change.
    let mut e = one(
        DOWN,
        "{ cooldown: 5s, maxAttempts: 2, window: 10m, backoff: 2.0 }",
        "",
    );
    e.restore(
        &[
            attempt(100.0, Some(OutcomeResult::NotApplicable)),
            attempt(200.0, Some(OutcomeResult::NotApplicable)),
        ],
        7,
    );
    // Not the circuit: the backoff grew twice, 5s * 2^2 after the last start.
    let v = feed(&mut e, 210.0, unit("php.service", Failed));
    assert!(
        matches!(v.as_slice(), [Verdict::Skip { reason: SkipReason::Cooldown, retry_at: Some(t), .. }] if *t == at(220.0)),
        "{v:?}"
    );
    assert_eq!(acts(&feed(&mut e, 220.0, Event::Tick {})), 1);
}

#[test]
fn an_attempt_after_a_past_circuit_closed_starts_the_backoff_afresh() {
    let guard = "{ cooldown: 5s, maxAttempts: 2, window: 10s, backoff: 2.0 }";
    let mut e = one(DOWN, guard, "");
    let escalated = PastEvent {
        at: at(1.0),
        policy: "p".into(),
        target: "php.service".into(),
        kind: PastKind::Escalated,
    };
    // Failed at 0 and 0.5, circuit open 1..11, failed again at 20 (after it closed).
    e.restore(
        &[
            attempt(0.0, Some(OutcomeResult::Failed)),
            attempt(0.5, Some(OutcomeResult::Failed)),
            escalated,
            attempt(20.0, Some(OutcomeResult::Failed)),
        ],
        2,
    );
    // One failure since the circuit closed: 5s * 2^1 from 20.
    let v = feed(&mut e, 25.0, unit("php.service", Failed));
    assert!(
        matches!(v.as_slice(), [Verdict::Skip { reason: SkipReason::Cooldown, retry_at: Some(t), .. }] if *t == at(30.0)),
        "{v:?}"
    );
}

#[test]
fn attempts_of_the_last_minute_before_a_restart_count_toward_the_storm_cap() {
    let yaml = [
        policy_yaml("p", "php.service", DOWN, GUARD, ""),
        policy_yaml("q", "nginx.service", DOWN, GUARD, ""),
    ];
    let limits = Limits {
        max_actions_per_minute: 1,
        ..Limits::default()
    };
    let mut e = engine_from(&yaml, limits);
    // p acted 30 s before this start; the cap of one a minute holds across it.
    e.restore(&[attempt(100.0, Some(OutcomeResult::Ok))], 1);
    let v = feed(&mut e, 130.0, unit("nginx.service", Failed));
    assert!(
        matches!(v.as_slice(), [Verdict::Skip { reason: SkipReason::StormCap, retry_at: Some(t), .. }] if *t == at(160.0)),
        "{v:?}"
    );
    assert_eq!(acts(&feed(&mut e, 160.0, Event::Tick {})), 1);
}
