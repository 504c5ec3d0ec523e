use super::*;
use std::time::Duration;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn rec(secs: u64, policy: &str, target: &str, entry: Entry) -> Record {
    Record {
        ts: at(secs),
        policy: policy.into(),
        target: target.into(),
        entry,
    }
}

fn intent(id: u64, dry_run: bool) -> Entry {
    Entry::Intent {
        id,
        attempt: 1,
        actions: vec!["restart".into()],
        dry_run,
        evidence: vec![],
    }
}

fn outcome(id: u64, result: OutcomeResult) -> Entry {
    Entry::Outcome {
        id,
        result,
        error: None,
        duration_ms: 10,
        steps: Vec::new(),
        verification: None,
        diffs: Vec::new(),
    }
}

fn skip(reason: &str, dry_run: bool) -> Entry {
    Entry::Skip {
        reason: reason.into(),
        detail: None,
        dry_run,
    }
}

/// A small journal: two policies, every kind, every result.
fn sample() -> Vec<Record> {
    vec![
        rec(0, "web", "nginx", intent(1, false)),
        rec(1, "web", "nginx", outcome(1, OutcomeResult::Failed)),
        rec(2, "db", "pg", intent(2, false)),
        rec(3, "db", "pg", outcome(2, OutcomeResult::Ok)),
        rec(4, "web", "nginx", skip("cooldown", false)),
        rec(5, "web", "nginx", intent(3, false)),
        rec(6, "web", "nginx", outcome(3, OutcomeResult::TimedOut)),
        rec(7, "web", "nginx", intent(4, true)),
        rec(8, "db", "pg", skip("dry_run", true)),
        rec(
            9,
            "web",
            "nginx",
            Entry::Escalate {
                actions: vec!["notify".into()],
                attempts: 3,
                dry_run: false,
                evidence: Vec::new(),
            },
        ),
    ]
}

/// Positions in `sample()` of what `f` selects, for compact assertions.
fn picked(f: HistoryFilter) -> Vec<u64> {
    let records = sample();
    filter(&records, &f)
        .into_iter()
        .map(|r| r.ts.duration_since(at(0)).unwrap().as_secs())
        .collect()
}

fn with_outcome(o: OutcomeFilter) -> HistoryFilter {
    HistoryFilter {
        outcome: Some(o),
        ..HistoryFilter::default()
    }
}

#[test]
fn no_filter_keeps_everything_in_order() {
    assert_eq!(
        picked(HistoryFilter::default()),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn policy_target_and_since_filters() {
    let by_policy = HistoryFilter {
        policy: Some("db".into()),
        ..HistoryFilter::default()
    };
    assert_eq!(picked(by_policy), [2, 3, 8]);
    let by_target = HistoryFilter {
        target: Some("nginx".into()),
        ..HistoryFilter::default()
    };
    assert_eq!(picked(by_target), [0, 1, 4, 5, 6, 7, 9]);
    let since = HistoryFilter {
        since: Some(at(7)),
        ..HistoryFilter::default()
    };
    assert_eq!(picked(since), [7, 8, 9], "since is inclusive");
    let none = HistoryFilter {
        policy: Some("we".into()),
        ..HistoryFilter::default()
    };
    assert!(picked(none).is_empty(), "policy match is exact");
}

#[test]
fn result_filters_keep_the_matching_intent() {
    assert_eq!(picked(with_outcome(OutcomeFilter::Failed)), [0, 1]);
    assert_eq!(picked(with_outcome(OutcomeFilter::Ok)), [2, 3]);
    assert_eq!(picked(with_outcome(OutcomeFilter::TimedOut)), [5, 6]);
}

#[test]
fn skipped_and_dry_run_filters() {
    assert_eq!(picked(with_outcome(OutcomeFilter::Skipped)), [4, 8]);
    assert_eq!(picked(with_outcome(OutcomeFilter::DryRun)), [7, 8]);
}

#[test]
fn intent_pairing_respects_policy() {
    // Same id under another policy must not drag in an unrelated intent.
    let records = vec![
        rec(0, "db", "pg", intent(1, false)),
        rec(1, "web", "nginx", intent(1, false)),
        rec(2, "web", "nginx", outcome(1, OutcomeResult::Failed)),
    ];
    let got = filter(&records, &with_outcome(OutcomeFilter::Failed));
    assert_eq!(got, [&records[1], &records[2]]);
}

#[test]
fn filters_combine() {
    let f = HistoryFilter {
        policy: Some("web".into()),
        since: Some(at(5)),
        outcome: Some(OutcomeFilter::TimedOut),
        ..HistoryFilter::default()
    };
    assert_eq!(picked(f), [5, 6]);
}

#[test]
fn outcome_filter_parsing() {
    let cases = [
        ("ok", OutcomeFilter::Ok),
        ("failed", OutcomeFilter::Failed),
        ("timed_out", OutcomeFilter::TimedOut),
        ("timed-out", OutcomeFilter::TimedOut),
        ("skipped", OutcomeFilter::Skipped),
        ("dry_run", OutcomeFilter::DryRun),
        ("dry-run", OutcomeFilter::DryRun),
        ("Failed", OutcomeFilter::Failed),
    ];
    for (text, want) in cases {
        assert_eq!(text.parse::<OutcomeFilter>().unwrap(), want, "{text}");
    }
    let err = "broken".parse::<OutcomeFilter>().unwrap_err().to_string();
    assert!(err.contains("\"broken\""), "{err}");
    for accepted in ["ok", "failed", "timed_out", "skipped", "dry_run"] {
        assert!(err.contains(accepted), "{err} lacks {accepted}");
    }
}

#[test]
fn table_details_for_each_kind() {
    let records = [
        rec(
            0,
            "web",
            "nginx",
            Entry::Intent {
                id: 1,
                attempt: 2,
                actions: vec!["restart".into(), "enable".into()],
                dry_run: true,
                evidence: vec![],
            },
        ),
        rec(
            1,
            "web",
            "nginx",
            Entry::Outcome {
                id: 1,
                result: OutcomeResult::Failed,
                error: Some("exit 1".into()),
                duration_ms: 1532,
                steps: Vec::new(),
                verification: Some(Verification {
                    passed: false,
                    detail: "still 503".into(),
                }),
                diffs: Vec::new(),
            },
        ),
        rec(
            2,
            "web",
            "nginx",
            Entry::Outcome {
                id: 2,
                result: OutcomeResult::Ok,
                error: None,
                duration_ms: 120,
                steps: Vec::new(),
                verification: Some(Verification {
                    passed: true,
                    detail: "200 OK".into(),
                }),
                diffs: Vec::new(),
            },
        ),
        rec(
            3,
            "web",
            "nginx",
            Entry::Skip {
                reason: "cooldown".into(),
                detail: Some("12s left".into()),
                dry_run: false,
            },
        ),
        rec(9, "web", "nginx", sample().pop().unwrap().entry),
    ];
    let refs: Vec<&Record> = records.iter().collect();
    let table = render_table(&refs);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert_eq!(
        lines[0],
        "TIME                  POLICY  TARGET  KIND      DETAIL"
    );
    assert_eq!(
        lines[1],
        "2023-11-14T22:13:20Z  web     nginx   intent    attempt 2: restart, enable (dry run)"
    );
    assert!(lines[2].ends_with("failed after 1532ms: exit 1; verify failed: still 503"));
    assert!(lines[3].ends_with("ok after 120ms; verified: 200 OK"));
    assert!(lines[4].ends_with("skip      cooldown: 12s left"));
    assert!(lines[5].ends_with("circuit open after 3 attempts: notify"));
}

#[test]
fn table_header_is_aligned_with_columns() {
    let records = [rec(0, "a-long-policy-name", "t", skip("in_flight", false))];
    let refs: Vec<&Record> = records.iter().collect();
    let table = render_table(&refs);
    let lines: Vec<&str> = table.lines().collect();
    for (column, value) in [
        ("POLICY", "a-long-policy-name"),
        ("TARGET", "t"),
        ("KIND", "skip"),
    ] {
        let header_at = lines[0].find(column).unwrap();
        let value_at = lines[1].find(value).unwrap();
        assert_eq!(header_at, value_at, "{column} misaligned:\n{table}");
    }
    assert!(
        lines.iter().all(|l| !l.ends_with(' ')),
        "trailing spaces:\n{table}"
    );
}

#[test]
fn table_escapes_newlines_and_reports_empty_input() {
    let mut r = rec(0, "p", "t", outcome(1, OutcomeResult::TimedOut));
    if let Entry::Outcome { error, .. } = &mut r.entry {
        *error = Some("line one\nline two".into());
    }
    let table = render_table(&[&r]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("timed out after 10ms: line one\\nline two"));
    assert_eq!(render_table(&[]), "no journal records match\n");
}

#[test]
fn json_output_is_journal_lines() {
    let records = sample();
    let refs: Vec<&Record> = records.iter().take(3).collect();
    let json = render_json(&refs);
    let back: Vec<Record> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, records[..3]);
    assert!(json.ends_with('\n'));
    assert!(json.lines().next().unwrap().contains(r#""kind":"intent""#));
}
