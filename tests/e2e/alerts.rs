//! Alerts in and out, end to end with Debian's Alertmanager (0.25): alerts posted to
//! it as Prometheus posts them reach the agent through its webhook, with the bearer
//! token from a credentials file. A firing alert fires its policy once, however often
//! Alertmanager repeats the notification; a resolved one cancels a trigger still in
//! its `for`; and the escalation goes back to Alertmanager as an alert of its own
//! (`POST /api/v2/alerts`), routed to the team's receiver, beside salve's JSON and a
//! Slack-shaped message.

use crate::harness::*;
use salve::audit::{Entry, Record};
use salve::control::StatusReport;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

/// This test's own ports: the agent's alert receiver and Alertmanager's API.
const RECEIVER_PORT: u16 = 18948;
const ALERTMANAGER_PORT: u16 = 18993;
const UNIT: &str = "php8.2-fpm.service";
const TOKEN: &str = "e2e-0123456789abcdef-token";

/// Debian's Alertmanager, started by this test, stopped by its PID.
struct Alertmanager(Child);

impl Alertmanager {
    /// Routes `PhpFpm*` alerts to the agent (repeated every 2 s, to show they fire
    /// nothing more) and salve's own alerts to `team`.
    fn start(dir: &Path, team: &str) -> Alertmanager {
        let token = dir.join("alertmanager.token");
        std::fs::write(&token, TOKEN).expect("write the token");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                r#"route:
  receiver: salve
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
  routes:
    - matchers: ['job="salve"']
      receiver: team
receivers:
  - name: salve
    webhook_configs:
      - url: http://127.0.0.1:{RECEIVER_PORT}/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials_file: {}
  - name: team
    webhook_configs:
      - url: {team}
"#,
                token.display()
            ),
        )
        .expect("write alertmanager.yml");
        let log = std::fs::File::create(dir.join("alertmanager.log")).expect("alertmanager log");
        let child = Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("alertmanager-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{ALERTMANAGER_PORT}"))
            // No gossip: one Alertmanager, no port of its own for a cluster.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/prometheus-alertmanager (Debian's prometheus-alertmanager package; scripts/setup-test.sh installs it)");
        let am = Alertmanager(child);
        assert!(
            wait_until(Duration::from_secs(20), || http_status(
                ALERTMANAGER_PORT,
                "/-/ready"
            ) == Some(200)),
            "Alertmanager never got ready:\n{}",
            std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
        );
        am
    }

    /// Posts one alert as Prometheus does; `ends` in the past resolves it.
    fn post(&self, name: &str, labels: &[(&str, &str)], ends: SystemTime) {
        let mut all: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string().into()))
            .collect();
        all.insert("alertname".into(), name.into());
        let body = serde_json::json!([{
            "labels": all,
            "annotations": { "summary": "from the e2e test" },
            "startsAt": rfc3339(SystemTime::now() - Duration::from_secs(60)),
            "endsAt": rfc3339(ends),
        }]);
        let status = http_post(ALERTMANAGER_PORT, "/api/v2/alerts", &body.to_string());
        assert_eq!(status, Some(200), "Alertmanager took the alert");
    }

    /// The alerts Alertmanager holds now, active ones only.
    fn alerts(&self) -> Vec<serde_json::Value> {
        let Some((200, body)) = http_get(ALERTMANAGER_PORT, "/api/v2/alerts?active=true") else {
            return Vec::new();
        };
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        stop_child(&mut self.0);
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One POST of JSON to 127.0.0.1:`port`; the status, `None` when nothing answered.
fn http_post(port: u16, path: &str, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

fn policy(name: &str, trigger: &str, guard: &str, escalate: &str) -> String {
    format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: {name}
spec:
  target:
    unit: {UNIT}
  trigger:
{trigger}
  actions:
    - restart: {{}}
  guard: {guard}
{escalate}"#
    )
}

fn status(socket: &Path) -> StatusReport {
    let out = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .expect("run salve status");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("status --json is the report")
}

fn state_of(socket: &Path, policy: &str) -> String {
    status(socket)
        .policies
        .into_iter()
        .find(|p| p.policy == policy)
        .map(|p| p.state)
        .unwrap_or_default()
}

fn acts_of<'a>(records: &'a [Record], policy: &str) -> Vec<&'a Record> {
    intents(records)
        .into_iter()
        .filter(|r| r.policy == policy)
        .collect()
}

#[test]
fn alertmanager_fires_a_policy_once_per_alert_and_takes_its_escalation() {
    let Some(env) = lab("alerts_alertmanager") else {
        return;
    };
    let team = Webhook::start();
    let am = Alertmanager::start(&env.dir, &team.url);
    let policies = env.dir.join("policies");
    let am_url = format!("http://127.0.0.1:{ALERTMANAGER_PORT}/api/v2/alerts");
    let escalate = format!(
        "  escalate:\n    - notify: {{ webhook: \"{am_url}\", format: alertmanager }}\n    - notify: {{ webhook: \"{}\", format: slack }}\n    - notify: {{ webhook: \"{}\" }}\n",
        team.url, team.url
    );
    write_policy(
        &policies,
        "slow.yaml",
        &policy(
            "php-fpm-slow",
            "    - alert: { name: PhpFpmSlow, labels: { instance: web-1 } }",
            "{ cooldown: 1s, maxAttempts: 1, window: 10m, backoff: 1.0 }",
            &escalate,
        ),
    );
    write_policy(
        &policies,
        "queue.yaml",
        &policy(
            "php-fpm-queue",
            "    - alert: { name: PhpFpmQueue }\n      for: 10s",
            "{ cooldown: 1s }",
            "",
        ),
    );
    let token = env.dir.join("receiver.token");
    std::fs::write(&token, TOKEN).expect("write the receiver's token");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the token");
    }
    let socket = env.dir.join("control.sock");
    let config = env.dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "metrics: {{ enabled: false }}\ncontrol: {{ socket: {} }}\nalerts: {{ listen: \"127.0.0.1:{RECEIVER_PORT}\", tokenFile: {} }}\n",
            socket.display(),
            token.display()
        ),
    )
    .expect("write the agent config");
    let agent = Agent::start(
        &env,
        &policies,
        &["--config", config.to_str().expect("UTF-8 path")],
    );
    agent.wait_for_log("receiving Alertmanager's webhook", Duration::from_secs(10));
    let later = SystemTime::now() + Duration::from_secs(600);

    // One firing alert: one attempt, whatever Alertmanager repeats.
    am.post(
        "PhpFpmSlow",
        &[("instance", "web-1"), ("pool", "www")],
        later,
    );
    assert!(
        wait_until(Duration::from_secs(20), || acts_of(
            &agent.records(),
            "php-fpm-slow"
        )
        .len()
            == 1),
        "the alert fired the policy\n{}",
        agent.log_text()
    );
    let records = agent.records();
    let act = acts_of(&records, "php-fpm-slow")[0];
    let Entry::Intent { evidence, .. } = &act.entry else {
        unreachable!("intents are intents");
    };
    assert!(
        evidence[0].starts_with("alert PhpFpmSlow: 1 firing and not acted on yet, last: {instance=\"web-1\", pool=\"www\""),
        "{evidence:?}"
    );
    // Alertmanager repeats the notification every 2 s: three more, and still one act.
    let received = |agent: &Agent| {
        agent
            .log_text()
            .matches("alert notification received")
            .count()
    };
    let before = received(&agent);
    assert!(
        wait_until(Duration::from_secs(20), || received(&agent) >= before + 3),
        "Alertmanager repeated the notification\n{}",
        agent.log_text()
    );
    assert_eq!(
        acts_of(&agent.records(), "php-fpm-slow").len(),
        1,
        "deduplicated"
    );
    // Another policy's alert, resolved while its trigger is in its `for`: no act.
    am.post("PhpFpmQueue", &[("instance", "web-1")], later);
    assert!(
        wait_until(Duration::from_secs(10), || state_of(
            &socket,
            "php-fpm-queue"
        ) == "triggered"),
        "the queue alert holds the trigger: {:?}",
        status(&socket)
    );
    am.post(
        "PhpFpmQueue",
        &[("instance", "web-1")],
        SystemTime::now() - Duration::from_secs(1),
    );
    assert!(
        wait_until(Duration::from_secs(10), || state_of(
            &socket,
            "php-fpm-queue"
        ) != "triggered"),
        "the resolved alert ended the trigger: {:?}",
        status(&socket)
    );
    std::thread::sleep(Duration::from_secs(11));
    assert!(
        acts_of(&agent.records(), "php-fpm-queue").is_empty(),
        "resolved within its for"
    );

    // A repeat that fired would have met the circuit (one attempt) and escalated.
    let escalated = |records: &[Record]| {
        records
            .iter()
            .any(|r| r.policy == "php-fpm-slow" && matches!(r.entry, Entry::Escalate { .. }))
    };
    assert!(!escalated(&agent.records()), "no repeat reached the guard");
    assert_eq!(team.count(), 0, "nothing escalated yet");
    // A second alert for the slow pool: the circuit (one attempt) opens, and the
    // escalation goes out in all three shapes.
    am.post(
        "PhpFpmSlow",
        &[("instance", "web-1"), ("pool", "www-2")],
        later,
    );
    assert!(
        wait_until(Duration::from_secs(20), || team.count() >= 3),
        "the team heard of the escalation\n{}",
        agent.log_text()
    );
    let bodies = team.bodies.lock().expect("bodies").clone();
    let json_of = |raw: &String| -> serde_json::Value {
        raw.split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or_default()
    };
    let sent: Vec<serde_json::Value> = bodies.iter().map(json_of).collect();
    let slack = sent.iter().find(|b| b.get("text").is_some());
    let ours = sent.iter().find(|b| b.get("event").is_some());
    let relayed = sent.iter().find(|b| b.get("groupKey").is_some());
    let expected =
        "salve: php8.2-fpm.service is still failing after 1 attempt(s) of policy php-fpm-slow";
    assert!(
        slack.is_some_and(|b| b["text"].as_str().is_some_and(|t| t.starts_with(expected))),
        "{sent:?}"
    );
    assert!(
        ours.is_some_and(|b| b["event"] == "escalation"
            && b["policy"] == "php-fpm-slow"
            && b["attempts"] == 1),
        "{sent:?}"
    );
    // Alertmanager took salve's alert and routed it to the team like any other.
    let relayed = relayed.expect("Alertmanager relayed salve's alert to the team");
    let alert = &relayed["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "SalveEscalation", "{relayed}");
    assert_eq!(alert["labels"]["policy"], "php-fpm-slow");
    assert_eq!(alert["labels"]["target"], UNIT);
    assert_eq!(alert["status"], "firing");
    assert!(alert["annotations"]["summary"]
        .as_str()
        .is_some_and(|s| s.starts_with(expected)));
    assert!(
        am.alerts()
            .iter()
            .any(|a| a["labels"]["alertname"] == "SalveEscalation"),
        "Alertmanager holds salve's alert"
    );
    let records = agent.records();
    assert_eq!(
        acts_of(&records, "php-fpm-slow").len(),
        1,
        "the circuit held"
    );
    assert!(escalated(&records), "the escalation is journalled");
    // Without the token, nothing reaches the engine.
    assert_eq!(
        http_post(RECEIVER_PORT, "/alertmanager", "{}"),
        Some(401),
        "no token, no alerts"
    );
    drop(agent);
}
