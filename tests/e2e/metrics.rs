//! The agent's metrics end to end: Debian's Prometheus scrapes a real agent healing
//! (and failing to heal) the lab's pool. The target is up with no scrape error, every
//! family the agent exports reads back through Prometheus's query API with the values
//! the journal shows, and `promtool check metrics` finds nothing to say about the
//! text. `/healthz` and `/readyz` answer beside them. The status page, in Debian's
//! headless Chromium, shows an open circuit as such.

use crate::harness::*;
use salve::lab::Scenario;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// This test's own ports: the agent's listener and Prometheus's.
const METRICS_PORT: u16 = 18947;
const PROMETHEUS_PORT: u16 = 18990;

/// Debian's Prometheus, started by this test, stopped by its PID.
struct Prometheus(Child);

impl Prometheus {
    fn start(dir: &Path) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, scrape_timeout: 1s }}\nscrape_configs:\n  - job_name: salve\n    static_configs: [ {{ targets: [\"127.0.0.1:{METRICS_PORT}\"] }} ]\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("prometheus-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/prometheus (Debian's prometheus package; scripts/setup-test.sh installs it)");
        Prometheus(child)
    }

    /// One instant query's result vector.
    fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let Some((200, body)) = http_get(PROMETHEUS_PORT, &path) else {
            return Vec::new();
        };
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr);
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop_child(&mut self.0);
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The families in a scrape, with their types, from its `# TYPE` lines.
fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

/// The crash policy with one attempt, verified within 2s (against a pool that crashes
/// at once the attempt fails, the circuit opens and the policy escalates), plus
/// `more` policy files, and an agent running them with its metrics on this test's
/// port (and the status page when `status_page`).
fn start_one_attempt_agent(env: &Env, more: &[(&str, String)], status_page: bool) -> Agent {
    let policies = env.dir.join("policies");
    let yaml = crate::agent::down_policy(
        &env.lab().ping_url(),
        "{ cooldown: 1s, maxAttempts: 1, window: 10m, backoff: 1.0 }",
        "",
    )
    .replace("within: 10s", "within: 2s");
    write_policy(&policies, "down.yaml", &yaml);
    for (file, yaml) in more {
        write_policy(&policies, file, yaml);
    }
    let config = env.dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "metrics: {{ listen: \"127.0.0.1:{METRICS_PORT}\", statusPage: {status_page} }}\ncontrol: {{ socket: {} }}\n",
            env.dir.join("control.sock").display()
        ),
    )
    .expect("write the agent config");
    Agent::start(
        env,
        &policies,
        &["--config", config.to_str().expect("UTF-8 path")],
    )
}

#[test]
fn prometheus_scrapes_every_family_the_agent_exports() {
    let Some(env) = lab("metrics_prometheus") else {
        return;
    };
    let lab = env.lab();
    // Beside it its rehearsal, in dry run: every trigger is a `dry_run` skip.
    let rehearsal =
        crate::agent::down_policy(&lab.ping_url(), "{ cooldown: 1s }", "  dryRun: true\n")
            .replace("name: php-fpm-down", "name: php-fpm-down-rehearsal");
    let agent = start_one_attempt_agent(&env, &[("rehearsal.yaml", rehearsal)], false);
    assert_eq!(
        http_get(METRICS_PORT, "/healthz"),
        Some((200, "ok\n".into()))
    );
    assert_eq!(
        http_get(METRICS_PORT, "/readyz"),
        Some((200, "ready\n".into()))
    );

    lab.break_scenario(Scenario::CrashLoop).expect("crash loop");
    assert!(
        wait_until(Duration::from_secs(30), || agent.count("escalate") == 1),
        "the one attempt fails and the circuit opens:\n{}",
        agent.log_text()
    );
    assert!(
        agent.count("skip") >= 1,
        "the rehearsal skipped as a dry run:\n{:#?}",
        agent.records()
    );
    // A reload, counted.
    agent.signal("-HUP");
    assert!(
        wait_until(Duration::from_secs(10), || agent
            .log_text()
            .contains("policies reloaded")),
        "{}",
        agent.log_text()
    );

    let (status, text) = http_get(METRICS_PORT, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{text}");
    let exported = families(&text);
    let mut names: Vec<&str> = exported.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let mut expected = salve::metrics::FAMILIES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "every family has a sample by now:\n{text}");

    // promtool, Prometheus's own linter for the text format: nothing to report.
    std::fs::write(env.dir.join("scrape.txt"), &text).expect("keep the scrape");
    let mut lint = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    {
        use std::io::Write;
        let mut stdin = lint.stdin.take().expect("promtool's stdin");
        stdin.write_all(text.as_bytes()).expect("feed promtool");
    }
    let lint = lint.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        lint.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );

    let prometheus = Prometheus::start(&env.dir);
    assert!(
        wait_until(Duration::from_secs(60), || prometheus
            .value("up{job=\"salve\"}")
            == Some(1.0)),
        "Prometheus scrapes the agent:\n{}",
        std::fs::read_to_string(env.dir.join("prometheus.log")).unwrap_or_default()
    );
    let (_, targets) = http_get(PROMETHEUS_PORT, "/api/v1/targets").expect("targets");
    let targets: serde_json::Value = serde_json::from_str(&targets).expect("targets JSON");
    let active = &targets["data"]["activeTargets"][0];
    assert_eq!(active["health"], "up", "{targets}");
    assert_eq!(active["lastError"], "", "no scrape error: {targets}");
    assert_eq!(
        prometheus.value("scrape_samples_post_metric_relabeling{job=\"salve\"}"),
        prometheus.value("scrape_samples_scraped{job=\"salve\"}"),
        "every sample scraped is kept"
    );

    for (family, kind) in &exported {
        // A histogram's samples are its _bucket, _sum and _count series.
        let expr = match kind.as_str() {
            "histogram" => format!("{family}_count{{job=\"salve\"}}"),
            _ => format!("{family}{{job=\"salve\"}}"),
        };
        assert!(
            !prometheus.query(&expr).is_empty(),
            "{expr} reads back through Prometheus's query API"
        );
    }
    // The values are the journal's.
    let policy = "policy=\"php-fpm-down\"";
    assert_eq!(
        prometheus.value(&format!("salve_escalations_total{{{policy}}}")),
        Some(1.0)
    );
    assert_eq!(
        prometheus.value(&format!(
            "salve_circuit_open{{{policy},target=\"php8.2-fpm.service\"}}"
        )),
        Some(1.0)
    );
    assert_eq!(
        prometheus.value(&format!("sum(salve_attempts_total{{{policy}}})")),
        Some(1.0)
    );
    let skips = prometheus
        .value("salve_skips_total{policy=\"php-fpm-down-rehearsal\",reason=\"dry_run\"}")
        .expect("dry_run skips");
    assert!(skips >= 1.0);
    assert_eq!(
        prometheus.value("salve_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(prometheus.value("salve_policies"), Some(2.0));
    assert!(
        prometheus
            .value("salve_journal_write_seconds_count")
            .unwrap_or(0.0)
            >= 3.0
    );
    lab.repair().expect("repair the lab");
    drop(prometheus);
    agent.stop();
}

/// Debian's Chromium, headless, on a page of this test: its DOM after rendering, and a
/// screenshot. A fresh profile in the test's directory; no network but loopback is
/// asked for (the background-networking flags), so nothing waits on a closed network.
fn chromium(dir: &Path, url: &str, screenshot: &Path) -> String {
    let run = |extra: &[String]| {
        let out = Command::new("/usr/bin/chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .expect("start /usr/bin/chromium (Debian's chromium package; scripts/setup-test.sh installs it)");
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run(&[format!("--screenshot={}", screenshot.display())]);
    run(&["--dump-dom".to_string()])
}

#[test]
fn the_status_page_shows_an_open_circuit_in_a_real_browser() {
    let Some(env) = lab("metrics_status_page") else {
        return;
    };
    let lab = env.lab();
    let agent = start_one_attempt_agent(&env, &[], true);
    lab.break_scenario(Scenario::CrashLoop).expect("crash loop");
    assert!(
        wait_until(Duration::from_secs(30), || agent.count("escalate") == 1),
        "the one attempt fails and the circuit opens:\n{}",
        agent.log_text()
    );

    let screenshot = env.dir.join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let dom = chromium(
        &env.dir,
        &format!("http://127.0.0.1:{METRICS_PORT}/"),
        &screenshot,
    );
    std::fs::write(env.dir.join("status-page.html"), &dom).expect("keep the DOM");
    let png = std::fs::read(&screenshot).expect("chromium took a screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a PNG of the page ({} bytes)",
        png.len()
    );
    // The DOM as the browser built it: the open circuit's row, marked as such.
    let row = dom
        .find("data-policy=\"php-fpm-down\"")
        .map(|at| &dom[dom[..at].rfind("<tr").unwrap_or(0)..])
        .and_then(|from| from.split_once("</tr>").map(|(row, _)| row))
        .unwrap_or_else(|| panic!("the policy's row in the DOM:\n{dom}"));
    assert!(row.contains("class=\"state-circuit-open\""), "{row}");
    assert!(row.contains("data-state=\"circuit open\""), "{row}");
    assert!(row.contains(">circuit open</span>"), "{row}");
    assert!(row.contains("1/1"), "one attempt of one: {row}");
    assert!(
        dom.contains("<title>salve: 1 open circuit(s)</title>"),
        "{dom}"
    );
    // The journal's story, newest first: the escalation above the failed attempt.
    let journal = dom
        .split_once("id=\"journal\"")
        .map(|(_, rest)| rest)
        .expect("the journal table");
    let escalate = journal.find("<td>escalate</td>").expect("the escalation");
    let outcome = journal
        .find("<td>outcome</td>")
        .expect("the failed attempt");
    let intent = journal
        .find("<td>intent</td>")
        .expect("the attempt's intent");
    assert!(escalate < outcome && outcome < intent, "{journal}");
    // No script: the browser ran none, the page forbids any.
    assert!(!dom.contains("<script"), "{dom}");
    let (_, head, _) = http_get_whole(METRICS_PORT, "/").expect("the page again");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    lab.repair().expect("repair the lab");
    agent.stop();
}
