//! The attempt in flight: its own transitions, stale outcomes, and skips reported once.

use super::*;

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
