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
