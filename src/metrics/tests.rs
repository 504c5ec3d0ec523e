use super::*;
use crate::engine::{AttemptDetail, Outcome, OutcomeResult, PolicyStatus, SkipReason, Timestamp};
use std::path::Path;
use std::time::Duration;

fn policy() -> Policy {
    let yaml = "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: { name: fpm-down }\nspec:\n  target: { unit: php8.2-fpm.service }\n  trigger: [ { unit: { activeState: [failed] } } ]\n  actions: [ { resetFailed: {} }, { restart: {} } ]\n";
    let (mut found, errors) = crate::policy::parse_file(Path::new("p.yaml"), yaml);
    assert!(errors.is_empty(), "{errors:?}");
    found.remove(0)
}

fn outcome(result: OutcomeResult, verified: Option<bool>) -> Outcome {
    Outcome {
        policy: "fpm-down".into(),
        attempt_id: Some(1),
        result,
        verified,
        detail: Some(AttemptDetail::default()),
    }
}

fn line(policy: &str, target: &str, open: Option<u64>, paused: Option<u64>) -> PolicyStatus {
    PolicyStatus {
        policy: policy.into(),
        target: target.into(),
        selector: false,
        dry_run: false,
        attempts: 0,
        max_attempts: 3,
        in_flight: None,
        circuit_open_until: open.map(|s| Timestamp::from_millis(s * 1000)),
        next_attempt_at: None,
        paused_until: paused.map(|s| Timestamp::from_millis(s * 1000)),
        triggered: false,
    }
}

#[test]
fn attempts_are_counted_by_policy_actions_and_result() {
    let m = Metrics::new();
    let p = policy();
    m.attempt_finished(
        &p,
        &outcome(OutcomeResult::Ok, Some(true)),
        Duration::from_millis(40),
    );
    m.attempt_finished(
        &p,
        &outcome(OutcomeResult::Ok, Some(false)),
        Duration::from_secs(3),
    );
    m.attempt_finished(
        &p,
        &outcome(OutcomeResult::TimedOut, None),
        Duration::from_secs(90),
    );
    let text = m.encode(&[], Timestamp::default());
    for expected in [
        r#"salve_attempts_total{policy="fpm-down",action="resetFailed+restart",result="ok"} 1"#,
        r#"salve_attempts_total{policy="fpm-down",action="resetFailed+restart",result="not_verified"} 1"#,
        r#"salve_attempts_total{policy="fpm-down",action="resetFailed+restart",result="timed_out"} 1"#,
        r#"salve_attempt_duration_seconds_count{action="resetFailed+restart"} 3"#,
        r#"salve_attempt_duration_seconds_bucket{action="resetFailed+restart",le="0.05"} 1"#,
        r#"salve_attempt_duration_seconds_bucket{action="resetFailed+restart",le="5"} 2"#,
        "# TYPE salve_attempts_total counter",
        "# TYPE salve_attempt_duration_seconds histogram",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    // The Prometheus text format, not OpenMetrics: no `# EOF` terminator.
    assert!(!text.contains("# EOF"), "{text}");
}

#[test]
fn skips_escalations_reloads_and_the_journal_are_counted() {
    let m = Metrics::new();
    m.skipped("fpm-down", SkipReason::Cooldown);
    m.skipped("fpm-down", SkipReason::Cooldown);
    m.skipped("fpm-down", SkipReason::Paused);
    m.escalated("fpm-down");
    m.reloaded(true);
    m.reloaded(false);
    m.policies_loaded(7);
    m.decided(Duration::from_micros(300));
    m.journal_written(Duration::from_millis(2), true);
    assert!(!m.journal_failing());
    m.journal_written(Duration::from_millis(2), false);
    assert!(
        m.journal_failing(),
        "a failed write makes the agent not ready"
    );
    let text = m.encode(&[], Timestamp::default());
    for expected in [
        r#"salve_skips_total{policy="fpm-down",reason="cooldown"} 2"#,
        r#"salve_skips_total{policy="fpm-down",reason="paused"} 1"#,
        r#"salve_escalations_total{policy="fpm-down"} 1"#,
        r#"salve_reloads_total{result="ok"} 1"#,
        r#"salve_reloads_total{result="refused"} 1"#,
        "salve_policies 7",
        "salve_signal_to_decision_seconds_count 1",
        "salve_journal_write_seconds_count 2",
        "salve_journal_write_errors_total 1",
        &format!(
            r#"salve_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    m.journal_written(Duration::from_millis(1), true);
    assert!(!m.journal_failing(), "ready again once a write succeeds");
}

#[test]
fn circuit_and_pause_gauges_follow_the_engine_at_each_scrape() {
    let m = Metrics::new();
    let now = Timestamp::from_millis(100_000);
    let mut selector = line("pods", "namespace/*", None, None);
    selector.selector = true;
    let status = vec![
        line("fpm-down", "php8.2-fpm.service", Some(160), None),
        line("nginx-down", "nginx.service", None, Some(400)),
        // Expired at now: reported as closed.
        line("old", "old.service", Some(50), Some(99)),
        selector,
    ];
    let text = m.encode(&status, now);
    for expected in [
        r#"salve_circuit_open{policy="fpm-down",target="php8.2-fpm.service"} 1"#,
        r#"salve_paused{policy="fpm-down",target="php8.2-fpm.service"} 0"#,
        r#"salve_circuit_open{policy="nginx-down",target="nginx.service"} 0"#,
        r#"salve_paused{policy="nginx-down",target="nginx.service"} 1"#,
        r#"salve_circuit_open{policy="old",target="old.service"} 0"#,
        r#"salve_paused{policy="old",target="old.service"} 0"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(
        !text.contains("namespace/*"),
        "a selector is not a target: {text}"
    );
    // A target gone from the engine leaves the gauges at the next scrape.
    let text = m.encode(&status[..1], now);
    assert!(!text.contains("nginx.service"), "{text}");
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new();
    let status = vec![line("p", "nginx:up/a\"b\\c@/etc/x", Some(10), None)];
    let text = m.encode(&status, Timestamp::default());
    assert!(
        text.contains(r#"target="nginx:up/a\"b\\c@/etc/x"} 1"#),
        "{text}"
    );
}

#[test]
fn every_family_named_in_families_is_exported_and_no_other() {
    let m = Metrics::new();
    let p = policy();
    m.attempt_finished(
        &p,
        &outcome(OutcomeResult::Ok, None),
        Duration::from_millis(1),
    );
    m.skipped("fpm-down", SkipReason::Cooldown);
    m.escalated("fpm-down");
    m.reloaded(true);
    let text = m.encode(&[line("p", "t", None, None)], Timestamp::default());
    let mut exported: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    exported.sort_unstable();
    let mut named = FAMILIES.to_vec();
    named.sort_unstable();
    assert_eq!(exported, named);
}
