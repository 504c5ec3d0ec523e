//! The Grafana dashboard in deploy/grafana/ reads only what salve exports: every
//! metric its expressions name is a series of a real scrape, every exported family is
//! on it, and Prometheus's own parser (`promtool check rules`) accepts every
//! expression.

use salve::engine::{Outcome, OutcomeResult, PolicyStatus, SkipReason, Timestamp};
use salve::metrics::{Metrics, FAMILIES};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard() -> serde_json::Value {
    let path = repository().join("deploy/grafana/salve-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every PromQL expression on the dashboard, named by where it is.
fn expressions(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a Prometheus expression");
            found.push((
                format!("panel {} target {}", panel["title"], target["refId"]),
                expr.to_string(),
            ));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            found.push((format!("variable {}", variable["name"]), query.to_string()));
        }
    }
    found
}

/// The series names of a scrape with a sample in every family.
fn exported_series() -> BTreeSet<String> {
    let yaml = "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: { name: p }\nspec:\n  target: { unit: a.service }\n  trigger: [ { unit: { activeState: [failed] } } ]\n  actions: [ { restart: {} } ]\n";
    let (policies, errors) = salve::policy::parse_file(Path::new("p.yaml"), yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let metrics = Metrics::new();
    let outcome = Outcome {
        policy: "p".into(),
        attempt_id: Some(1),
        result: OutcomeResult::Ok,
        verified: Some(true),
        detail: None,
    };
    metrics.attempt_finished(&policies[0], &outcome, Duration::from_millis(5));
    metrics.skipped("p", SkipReason::Cooldown);
    metrics.escalated("p");
    metrics.reloaded(true);
    let status = PolicyStatus {
        policy: "p".into(),
        target: "a.service".into(),
        selector: false,
        dry_run: false,
        attempts: 0,
        max_attempts: 3,
        in_flight: None,
        circuit_open_until: None,
        next_attempt_at: None,
        paused_until: None,
        triggered: false,
    };
    let text = metrics.encode(&[status], Timestamp::default());
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("salve_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        rest = &rest[at + word.len()..];
        names.push(word);
    }
    names
}

#[test]
fn every_expression_names_an_exported_metric_and_every_family_is_shown() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "salve-overview");
    let exported = exported_series();
    let mut shown = BTreeSet::new();
    for (place, expr) in expressions(&dashboard) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{place} reads no salve metric: {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{place} names {name}, which salve does not export: {expr}\nexported: {exported:?}"
            );
            shown.insert(name);
        }
    }
    for family in FAMILIES {
        assert!(
            shown.iter().any(|s| s == family
                || s.strip_prefix(family)
                    .is_some_and(|rest| ["_bucket", "_sum", "_count"].contains(&rest))),
            "{family} is exported but on no panel"
        );
    }
}

#[test]
fn prometheus_parses_every_expression() {
    let promtool = Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing under CI: scripts/setup-test.sh installs Debian's prometheus"
        );
        eprintln!("SKIPPED: promtool not installed (run scripts/setup-test.sh)");
        return;
    }
    // Grafana's variables, as Grafana would fill them in.
    let rules: Vec<serde_json::Value> = expressions(&dashboard())
        .into_iter()
        .enumerate()
        .filter(|(_, (place, _))| place.starts_with("panel"))
        .map(|(i, (_, expr))| {
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__range", "6h")
                .replace("$instance", ".*");
            serde_json::json!({ "record": format!("salve_dashboard:expression_{i}"), "expr": expr })
        })
        .collect();
    let file =
        std::env::temp_dir().join(format!("salve-dashboard-rules-{}.json", std::process::id()));
    // JSON is YAML: promtool reads it as a rule file.
    std::fs::write(
        &file,
        serde_json::json!({ "groups": [ { "name": "dashboard", "rules": rules } ] }).to_string(),
    )
    .expect("write the rule file");
    let out = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
