use super::*;
use crate::audit::Verification;

fn record(clock: &Clock, secs_ago: u64, entry: Entry) -> Record {
    Record {
        ts: clock.wall_origin() - Duration::from_secs(secs_ago),
        policy: "php-fpm-down".into(),
        target: "php8.2-fpm.service".into(),
        entry,
    }
}

fn intent(id: u64) -> Entry {
    Entry::Intent {
        id,
        attempt: 1,
        actions: vec!["restart".into()],
        dry_run: false,
        evidence: Vec::new(),
    }
}

fn outcome(id: u64, result: OutcomeResult, passed: Option<bool>) -> Entry {
    Entry::Outcome {
        id,
        result,
        error: None,
        duration_ms: 5,
        steps: Vec::new(),
        verification: passed.map(|passed| Verification {
            passed,
            detail: String::new(),
        }),
        diffs: Vec::new(),
    }
}

#[test]
fn intents_pair_with_their_outcomes_and_the_unanswered_become_unknown() {
    let clock = Clock::start();
    let records = [
        record(&clock, 300, intent(7)),
        record(&clock, 299, outcome(7, OutcomeResult::Ok, Some(false))),
        record(&clock, 200, intent(8)),
        record(&clock, 100, intent(9)),
        record(&clock, 99, outcome(9, OutcomeResult::Ok, Some(true))),
        record(
            &clock,
            50,
            Entry::Escalate {
                actions: vec![],
                attempts: 3,
                dry_run: false,
                evidence: Vec::new(),
            },
        ),
    ];
    let now = clock.wall_origin();
    let got = from_records(&records, &clock, now);
    let kinds: Vec<PastKind> = got.past.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PastKind::Attempt {
                result: Some(OutcomeResult::Ok),
                succeeded: false
            },
            PastKind::Attempt {
                result: None,
                succeeded: false
            },
            PastKind::Attempt {
                result: Some(OutcomeResult::Ok),
                succeeded: true
            },
            PastKind::Escalated,
        ]
    );
    assert_eq!(got.past[1].at, clock.on_engine_clock(records[2].ts));
    assert_eq!(got.unfinished.len(), 1);
    let closing = &got.unfinished[0];
    assert!(
        matches!(&closing.entry, Entry::Outcome { id: 8, result: OutcomeResult::Unknown, error: Some(e), .. } if e == UNKNOWN_OUTCOME),
        "{closing:?}"
    );
    assert_eq!(closing.target, "php8.2-fpm.service");
}

#[test]
fn recover_reads_only_the_window_but_ids_continue_after_the_highest_ever() {
    let dir = crate::audit::TestDir::new("recover");
    let path = dir.0.join("journal.jsonl");
    let clock = Clock::start();
    let mut journal = crate::audit::Journal::open(&path, Default::default()).unwrap();
    // Outside every window (2 days ago), then inside it.
    journal
        .append(&record(&clock, 2 * 86_400, intent(50)))
        .unwrap();
    journal
        .append(&record(
            &clock,
            2 * 86_400 - 1,
            outcome(50, OutcomeResult::Failed, None),
        ))
        .unwrap();
    journal.append(&record(&clock, 60, intent(3))).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"not json\n"))
        .unwrap();
    drop(journal);
    let yaml = "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: { name: php-fpm-down }\nspec:\n  target: { unit: php8.2-fpm.service }\n  trigger:\n    - unit: { activeState: [failed] }\n  actions:\n    - restart: {}\n  guard: { cooldown: 10s, maxAttempts: 2, window: 1h }\n";
    let (policy, errors) = crate::policy::parse_file(std::path::Path::new("test.yaml"), yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let got = recover(&path, &policy, &clock).unwrap();
    assert_eq!(got.past.len(), 1, "{:?}", got.past);
    assert_eq!(got.last_attempt_id, 50);
    assert_eq!(got.unfinished.len(), 1);
    assert_eq!(got.unreadable, 1);
}

#[test]
fn an_escalation_without_its_sent_record_is_to_be_sent_again() {
    let clock = Clock::start();
    let escalate = || Entry::Escalate {
        actions: vec!["notify".into()],
        attempts: 2,
        dry_run: false,
        evidence: Vec::new(),
    };
    let sent = record(&clock, 10, Entry::EscalationSent { failures: vec![] });
    let done = from_records(
        &[record(&clock, 20, escalate()), sent],
        &clock,
        clock.wall_origin(),
    );
    assert!(done.unsent_escalations.is_empty());
    let cut_off = from_records(
        &[record(&clock, 20, escalate())],
        &clock,
        clock.wall_origin(),
    );
    assert_eq!(
        cut_off.unsent_escalations,
        [(
            "php-fpm-down".to_string(),
            "php8.2-fpm.service".to_string(),
            2
        )]
    );
}
