//! The status page: one read-only HTML page of what `salve status` says and the
//! journal's last records, refreshed by the browser itself every few seconds. No
//! script at all (the page's Content-Security-Policy forbids it): a page an on-call
//! person opens at 3 a.m. should need nothing but HTML and a little CSS.

use crate::audit::Record;
use crate::control::StatusReport;
use std::fmt::Write;

/// How many journal records the page shows, newest first.
pub const RECORDS_SHOWN: usize = 50;
/// Seconds between the browser's reloads of the page.
pub const REFRESH_SECONDS: u32 = 10;
/// The longest record detail shown; the rest is in `salve history`.
const DETAIL_SHOWN: usize = 300;

/// The page's own Content-Security-Policy: its inline style and nothing else.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Text made safe inside an element or a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn cut(text: &str, at: usize) -> String {
    match text.char_indices().nth(at) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// `circuit open` → `circuit-open`, for a CSS class.
fn class_of(state: &str) -> String {
    state
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fafafa}\
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}\
p.meta{color:#666;margin:0 0 1rem}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e3e3e3;font-size:.9rem;vertical-align:top}\
th{background:#f0f0f0}td.detail{font-family:ui-monospace,monospace;font-size:.8rem}\
.state{font-weight:600;padding:.1rem .45rem;border-radius:.3rem;white-space:nowrap}\
.state-ok{background:#e4f5e7;color:#1b6b2c}.state-circuit-open{background:#fde2e1;color:#a1160f}\
.state-paused{background:#fff1d6;color:#7a4b00}.state-acting,.state-triggered{background:#e3ecfd;color:#1a4aa1}\
.state-cooldown{background:#eee;color:#444}.state-selector{background:#f3e8fd;color:#5b2a86}\
tr.state-circuit-open td{background:#fff5f5}.none{color:#888}";

/// The whole page: `report` from the loop, `records` oldest first, `generated` the
/// time it was made.
pub fn render(report: &StatusReport, records: &[Record], generated: &str) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let open = report
        .policies
        .iter()
        .filter(|p| p.state == "circuit open")
        .count();
    // Writing into a String cannot fail.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>salve: {open} open circuit(s)</title><style>{STYLE}</style></head><body>\n\
<h1>salve</h1><p class=\"meta\">{policies} policies and targets, {open} open circuit(s), {pauses} pause(s) · generated {generated} · refreshed every {REFRESH_SECONDS}s · read-only: <code>salve pause</code>, <code>resume</code> and <code>reset</code> change it</p>\n",
        policies = report.policies.len(),
        pauses = report.pauses.len(),
        generated = escape(generated),
    );

    page.push_str("<h2>Targets</h2>\n<table id=\"targets\"><thead><tr><th>Policy</th><th>Target</th><th>State</th><th>Attempts</th><th>Circuit open until</th><th>Next attempt</th><th>Paused until</th><th>Last decision</th><th>Last outcome</th></tr></thead><tbody>\n");
    if report.policies.is_empty() {
        page.push_str("<tr><td colspan=\"9\" class=\"none\">no policies loaded</td></tr>\n");
    }
    for line in &report.policies {
        let state = class_of(&line.state);
        let or_none = |v: &Option<String>| match v {
            Some(v) => escape(v),
            None => "<span class=\"none\">–</span>".to_string(),
        };
        let decision = match (&line.last_decision, &line.last_decision_at) {
            (Some(d), Some(at)) => format!(
                "{} <span class=\"none\">at {}</span>",
                escape(d),
                escape(at)
            ),
            (Some(d), None) => escape(d),
            _ => or_none(&None),
        };
        let dry_run = if line.dry_run { " (dry run)" } else { "" };
        let _ = writeln!(
            page,
            "<tr class=\"state-{state}\" data-policy=\"{policy}\" data-target=\"{target}\" data-state=\"{state_text}\"><td>{policy}</td><td>{target}</td><td><span class=\"state state-{state}\">{state_text}</span>{dry_run}</td><td>{attempts}/{max}</td><td>{circuit}</td><td>{next}</td><td>{paused}</td><td>{decision}</td><td>{outcome}</td></tr>",
            policy = escape(&line.policy),
            target = escape(&line.target),
            state_text = escape(&line.state),
            attempts = line.attempts,
            max = line.max_attempts,
            circuit = or_none(&line.circuit_open_until),
            next = or_none(&line.next_attempt_at),
            paused = or_none(&line.paused_until),
            outcome = or_none(&line.last_outcome),
        );
    }
    page.push_str("</tbody></table>\n");

    page.push_str("<h2>Pauses</h2>\n<table id=\"pauses\"><thead><tr><th>Scope</th><th>Until</th><th>Reason</th><th>By</th></tr></thead><tbody>\n");
    if report.pauses.is_empty() {
        page.push_str("<tr><td colspan=\"4\" class=\"none\">no pause in force</td></tr>\n");
    }
    for pause in &report.pauses {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&pause.scope),
            escape(&pause.until),
            escape(pause.reason.as_deref().unwrap_or("")),
            escape(pause.by.as_deref().unwrap_or("")),
        );
    }
    page.push_str("</tbody></table>\n");

    let _ = writeln!(
        page,
        "<h2>Journal: the last {RECORDS_SHOWN} records, newest first</h2>\n<table id=\"journal\"><thead><tr><th>Time</th><th>Policy</th><th>Target</th><th>Kind</th><th>Detail</th></tr></thead><tbody>"
    );
    if records.is_empty() {
        page.push_str("<tr><td colspan=\"5\" class=\"none\">no records yet</td></tr>\n");
    }
    for record in records.iter().rev() {
        let detail = crate::audit::history::one_line(&crate::audit::history::detail(&record.entry));
        let _ = writeln!(
            page,
            "<tr class=\"kind-{kind}\"><td>{ts}</td><td>{policy}</td><td>{target}</td><td>{kind}</td><td class=\"detail\">{detail}</td></tr>",
            ts = escape(&crate::audit::format_ts(record.ts, false).unwrap_or_default()),
            policy = escape(&cut(&record.policy, 200)),
            target = escape(&cut(&record.target, 200)),
            kind = record.entry.kind(),
            detail = escape(&cut(&detail, DETAIL_SHOWN)),
        );
    }
    page.push_str("</tbody></table>\n</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Entry, Record};
    use crate::control::{PauseLine, PolicyLine};
    use std::time::{Duration, SystemTime};

    fn line(policy: &str, target: &str, state: &str) -> PolicyLine {
        PolicyLine {
            policy: policy.into(),
            target: target.into(),
            state: state.into(),
            attempts: 3,
            max_attempts: 3,
            ..Default::default()
        }
    }

    fn record(n: u64) -> Record {
        Record {
            ts: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n),
            policy: format!("policy-{n}"),
            target: "php8.2-fpm.service".into(),
            entry: Entry::EscalationSent {
                failures: vec![format!("failure {n}")],
            },
        }
    }

    #[test]
    fn an_open_circuit_is_shown_as_such_with_its_end() {
        let mut open = line("php-fpm-down", "php8.2-fpm.service", "circuit open");
        open.circuit_open_until = Some("2026-12-03T12:09:53Z".into());
        open.last_decision = Some("escalate after 3 attempt(s)".into());
        let report = StatusReport {
            policies: vec![open, line("nginx-down", "nginx.service", "ok")],
            pauses: vec![PauseLine {
                scope: "target nginx.service".into(),
                until: "2026-12-03T13:00:00Z".into(),
                reason: Some("deploy".into()),
                by: Some("uid 0 (root)".into()),
            }],
        };
        let page = render(&report, &[], "2026-12-03T12:00:00Z");
        assert!(
            page.contains("<title>salve: 1 open circuit(s)</title>"),
            "{page}"
        );
        assert!(
            page.contains("<tr class=\"state-circuit-open\" data-policy=\"php-fpm-down\" data-target=\"php8.2-fpm.service\" data-state=\"circuit open\">"),
            "{page}"
        );
        assert!(page.contains("<span class=\"state state-circuit-open\">circuit open</span>"));
        assert!(page.contains("2026-12-03T12:09:53Z"));
        assert!(page.contains("<td>target nginx.service</td><td>2026-12-03T13:00:00Z</td><td>deploy</td><td>uid 0 (root)</td>"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(page.contains("no records yet"));
    }

    #[test]
    fn names_from_files_and_clusters_cannot_inject_markup() {
        let report = StatusReport {
            policies: vec![line("p", "nginx:up/<script>alert(1)</script>@/x\"y", "ok")],
            pauses: Vec::new(),
        };
        let mut hostile = record(1);
        hostile.policy = "<img src=x onerror=alert(1)>".into();
        let page = render(&report, &[hostile], "now");
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;@/x&quot;y"));
    }

    #[test]
    fn records_are_shown_newest_first_and_cut_short() {
        let mut long = record(2);
        long.entry = Entry::EscalationSent {
            failures: vec!["x".repeat(5_000)],
        };
        let page = render(
            &StatusReport::default(),
            &[record(0), record(1), long],
            "now",
        );
        let (first, second) = (
            page.find("policy-2").unwrap(),
            page.find("policy-1").unwrap(),
        );
        assert!(first < second, "newest first");
        assert!(page.find("policy-1").unwrap() < page.find("policy-0").unwrap());
        assert!(
            !page.contains(&"x".repeat(DETAIL_SHOWN + 1)),
            "details are cut"
        );
        assert!(page.contains("no policies loaded"));
    }
}
