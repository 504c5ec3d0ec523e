//! A person's pauses and the status picture (`salve pause`, `salve status`).

use super::*;

fn verdicts(out: Vec<Decision>) -> Vec<Verdict> {
    out.into_iter().map(|d| d.verdict).collect()
}

fn pause(e: &mut Engine, secs: f64, scope: PauseScope, until: f64) -> Vec<Verdict> {
    let mut out = Vec::new();
    e.pause(at(secs), scope, at(until), &mut out)
        .expect("a known scope");
    verdicts(out)
}

#[test]
fn a_paused_target_is_skipped_as_paused_until_the_pause_expires() {
    let mut e = one(DOWN, GUARD, "");
    assert!(pause(&mut e, 0.0, PauseScope::Target("php.service".into()), 60.0).is_empty());
    let seen = feed(&mut e, 1.0, unit("php.service", Failed));
    assert_eq!(acts(&seen), 0);
    assert_eq!(skip_reason(&seen), Some(SkipReason::Paused));
    let Verdict::Skip { retry_at, .. } = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(*retry_at, Some(at(60.0)));
    // Once per episode, as any skip.
    assert!(feed(&mut e, 2.0, unit("php.service", Failed)).is_empty());
    assert_eq!(e.next_deadline(), Some(at(60.0)));
    let after = feed(&mut e, 60.0, Event::Tick {});
    assert_eq!(acts(&after), 1, "{after:?}");
    assert!(e.pauses(at(60.0)).is_empty(), "an expired pause is gone");
}

#[test]
fn resuming_acts_at_once_on_what_the_pause_held_back() {
    let mut e = one(DOWN, GUARD, "");
    pause(&mut e, 0.0, PauseScope::Policy("p".into()), 3600.0);
    assert_eq!(
        skip_reason(&feed(&mut e, 1.0, unit("php.service", Failed))),
        Some(SkipReason::Paused)
    );
    let mut out = Vec::new();
    assert!(e.resume(at(5.0), &PauseScope::Policy("p".into()), &mut out));
    assert_eq!(acts(&verdicts(out)), 1);
    let mut out = Vec::new();
    assert!(!e.resume(at(6.0), &PauseScope::Policy("p".into()), &mut out));
}

#[test]
fn a_pause_names_something_that_exists_and_outlives_a_reload() {
    let mut e = one(DOWN, GUARD, "");
    let mut out = Vec::new();
    assert_eq!(
        e.pause(at(0.0), PauseScope::Policy("q".into()), at(9.0), &mut out),
        Err(PauseError::UnknownPolicy("q".into()))
    );
    assert_eq!(
        e.pause(
            at(0.0),
            PauseScope::Target("nginx.service".into()),
            at(9.0),
            &mut out
        ),
        Err(PauseError::UnknownTarget("nginx.service".into()))
    );
    pause(&mut e, 0.0, PauseScope::Target("php.service".into()), 100.0);
    let again: Vec<_> = e.policies().cloned().collect();
    e.replace_policies(at(1.0), again, &mut out);
    assert_eq!(
        skip_reason(&feed(&mut e, 2.0, unit("php.service", Failed))),
        Some(SkipReason::Paused)
    );
    assert_eq!(
        e.pauses(at(2.0)),
        [(PauseScope::Target("php.service".into()), at(100.0))]
    );
}

#[test]
fn the_number_of_pauses_is_bounded() {
    let yaml: Vec<String> = (0..=MAX_PAUSES)
        .map(|i| policy_yaml(&format!("p{i}"), &format!("u{i}.service"), DOWN, GUARD, ""))
        .collect();
    let mut e = engine_from(&yaml, Limits::default());
    let mut out = Vec::new();
    for i in 0..MAX_PAUSES {
        e.pause(
            at(0.0),
            PauseScope::Policy(format!("p{i}")),
            at(10.0),
            &mut out,
        )
        .unwrap();
    }
    assert_eq!(
        e.pause(
            at(0.0),
            PauseScope::Policy(format!("p{MAX_PAUSES}")),
            at(10.0),
            &mut out
        ),
        Err(PauseError::TooMany)
    );
    // Expired pauses make room.
    e.pause(
        at(11.0),
        PauseScope::Policy(format!("p{MAX_PAUSES}")),
        at(20.0),
        &mut out,
    )
    .unwrap();
}

#[test]
fn status_shows_each_policys_guard_circuit_and_pause() {
    let mut e = one(
        DOWN,
        "{ cooldown: 10s, maxAttempts: 1, window: 10m, backoff: 1.0 }",
        "",
    );
    let line = &e.status(at(0.0))[0];
    assert_eq!(
        (line.policy.as_str(), line.target.as_str()),
        ("p", "php.service")
    );
    assert_eq!(
        (line.attempts, line.max_attempts, line.triggered),
        (0, 1, false)
    );
    assert_eq!(acts(&feed(&mut e, 1.0, unit("php.service", Failed))), 1);
    let line = &e.status(at(2.0))[0];
    assert_eq!(line.in_flight, Some(1));
    assert!(line.triggered);
    feed(&mut e, 3.0, outcome("p", OutcomeResult::Failed));
    // The one attempt failed: the next decision opens the circuit.
    feed(&mut e, 20.0, Event::Tick {});
    let line = &e.status(at(21.0))[0];
    assert_eq!(line.in_flight, None);
    assert_eq!(line.attempts, 1);
    assert!(line.circuit_open_until.is_some(), "{line:?}");
    assert_eq!(line.next_attempt_at, line.circuit_open_until);
    pause(&mut e, 22.0, PauseScope::Policy("p".into()), 90.0);
    assert_eq!(e.status(at(23.0))[0].paused_until, Some(at(90.0)));
}
