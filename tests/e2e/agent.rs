//! The agent heals PHP-FPM in the lab: crash, disable, crash loop, D-Bus restart, dry
//! run, a broken policy dropped in, and a hung pool.

use crate::harness::*;
use salve::audit::Entry;
use salve::lab::Scenario;
use std::time::{Duration, Instant};

const UNIT: &str = "php8.2-fpm.service";

/// The lab's crash policy on php8.2-fpm, verified at `ping` within 10s.
pub(crate) fn down_policy(ping: &str, guard: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: php-fpm-down
spec:
  target:
    unit: {UNIT}
  trigger:
    - unit: {{ activeState: [failed, inactive] }}
  actions:
    - resetFailed: {{}}
    - restart: {{}}
  verify:
    http: {{ url: "{ping}", status: [200], within: 10s }}
  guard: {guard}
{extra}"#
    )
}

/// The lab's crash policy with `GUARD` in `<test dir>/policies`, and an agent running it
/// with `args`.
fn start_with_down_policy(env: &Env, args: &[&str]) -> Agent {
    let policies = env.dir.join("policies");
    let yaml = down_policy(&env.lab().ping_url(), GUARD, "");
    write_policy(&policies, "down.yaml", &yaml);
    Agent::start(env, &policies, args)
}

const GUARD: &str = "{ cooldown: 2s, maxAttempts: 3, window: 1m, backoff: 1.0 }";

#[test]
fn crash_is_healed_within_five_seconds_and_journalled() {
    let Some(env) = lab("crash") else { return };
    let lab = env.lab();
    let agent = start_with_down_policy(&env, &[]);
    assert_eq!(http_status(lab.http_port(), "/ping.php"), Some(200));

    let killed = Instant::now();
    lab.break_scenario(Scenario::Crash).expect("crash the pool");
    let saw_502 = wait_until(Duration::from_secs(2), || {
        http_status(lab.http_port(), "/ping.php") == Some(502)
    });
    let healed = wait_until(Duration::from_secs(5), || {
        http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    let took = killed.elapsed();
    assert!(
        healed,
        "ping.php not 200 within 5s of the crash\n{}",
        agent.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || agent.count("outcome") >= 1),
        "no outcome journalled"
    );

    let records = agent.records();
    let intents = intents(&records);
    assert_eq!(intents.len(), 1, "one crash, one restart: {records:#?}");
    match &intents[0].entry {
        Entry::Intent {
            actions,
            evidence,
            dry_run: false,
            ..
        } => {
            assert_eq!(actions, &["resetFailed", "restart"]);
            assert!(evidence.iter().any(|e| e.contains("activeState=failed") || e.contains("activeState=inactive")), "{evidence:?}");
        }
        other => panic!("expected an intent, got {other:?}"),
    }
    let outcome = records
        .iter()
        .find(|r| r.entry.kind() == "outcome")
        .expect("outcome");
    match &outcome.entry {
        Entry::Outcome {
            result,
            verification: Some(v),
            steps,
            ..
        } => {
            assert_eq!(*result, salve::engine::OutcomeResult::Ok);
            // The job result of each action is journalled.
            assert_eq!(steps, &["resetFailed: ok", "restart: job done"]);
            assert!(v.passed, "verification failed: {}", v.detail);
        }
        other => panic!("expected a verified outcome, got {other:?}"),
    }
    eprintln!("crash healed in {took:?} (502 seen: {saw_502})");
    agent.stop();
}

#[test]
fn disabled_unit_is_enabled_again_and_journalled() {
    let Some(env) = lab("disable") else { return };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    let yaml = format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: php-fpm-not-enabled
spec:
  target: {{ unit: {UNIT} }}
  trigger:
    - unit: {{ unitFileState: [disabled] }}
  actions:
    - enable: {{}}
  guard: {{ cooldown: 5s, maxAttempts: 3, window: 1h }}
"#
    );
    write_policy(&policies, "enable.yaml", &yaml);
    let agent = Agent::start(&env, &policies, &[]);
    lab.break_scenario(Scenario::Disable).expect("disable");
    let enabled = wait_until(Duration::from_secs(10), || {
        unit_state(lab, UNIT, "UnitFileState") == "enabled"
    });
    assert!(enabled, "unit not enabled again\n{}", agent.log_text());
    assert!(wait_until(Duration::from_secs(5), || agent
        .count("outcome")
        == 1));
    let records = agent.records();
    assert_eq!(intents(&records).len(), 1, "{records:#?}");
    assert!(
        matches!(&intents(&records)[0].entry, Entry::Intent { actions, .. } if actions == &["enable"])
    );
    agent.stop();
}

#[test]
fn crash_loop_stops_at_max_attempts_and_escalates_exactly_once() {
    let Some(env) = lab("crashloop") else { return };
    let lab = env.lab();
    let hook = Webhook::start();
    let policies = env.dir.join("policies");
    let escalate = format!(
        "  escalate:\n    - notify: {{ webhook: \"{}\" }}\n",
        hook.url
    );
    let guard = "{ cooldown: 1s, maxAttempts: 2, window: 1m, backoff: 1.0 }";
    let mut yaml = down_policy(&lab.ping_url(), guard, &escalate);
    yaml = yaml.replace("within: 10s", "within: 2s");
    write_policy(&policies, "down.yaml", &yaml);
    let agent = Agent::start(&env, &policies, &[]);
    lab.break_scenario(Scenario::CrashLoop).expect("crash loop");
    let escalated = wait_until(Duration::from_secs(30), || hook.count() >= 1);
    assert!(escalated, "no escalation\n{}", agent.log_text());
    // Stay a while: nothing more may happen within the window.
    std::thread::sleep(Duration::from_secs(6));
    let records = agent.records();
    assert_eq!(
        intents(&records).len(),
        2,
        "exactly maxAttempts restarts: {records:#?}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.entry.kind() == "escalate")
            .count(),
        1
    );
    assert_eq!(hook.count(), 1, "the webhook is called exactly once");
    let bodies = hook
        .bodies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert!(
        bodies[0].contains("\"policy\":\"php-fpm-down\""),
        "{bodies:?}"
    );
    let outcomes = records
        .iter()
        .filter(|r| matches!(r.entry, Entry::Outcome { .. }))
        .count();
    assert_eq!(outcomes, 2);
    lab.repair().expect("repair the lab");
    agent.stop();
}

/// A FIFO at a log trigger's path once froze the agent in open(2) on its only runtime
/// thread: no crash was healed and SIGTERM went unanswered. Now the path is refused
/// (logged once) and everything else goes on: the crash is healed as fast as ever,
/// and SIGTERM stops the agent promptly.
#[test]
fn a_fifo_at_a_log_path_never_stalls_healing_or_shutdown() {
    let Some(env) = lab("fifo-log") else { return };
    let lab = env.lab();
    let fifo = env.dir.join("error.log");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let log_trigger = format!(
        "    - log: {{ path: {}, pattern: 'connect\\(\\) to unix:', count: 1, within: 30s }}\n",
        fifo.display()
    );
    let yaml = down_policy(&lab.ping_url(), GUARD, "").replace(
        "    - unit: { activeState: [failed, inactive] }\n",
        &format!("    - unit: {{ activeState: [failed, inactive] }}\n{log_trigger}"),
    );
    assert!(yaml.contains("error.log"), "{yaml}");
    let policies = env.dir.join("policies");
    write_policy(&policies, "down.yaml", &yaml);
    let agent = Agent::start(&env, &policies, &[]);
    agent.wait_for_log("not a regular file", Duration::from_secs(5));
    let killed = Instant::now();
    lab.break_scenario(Scenario::Crash).expect("crash the pool");
    let healed = wait_until(Duration::from_secs(5), || {
        agent.count("outcome") >= 1 && http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    assert!(
        healed,
        "not healed within 5 s with a FIFO at a log path\n{}",
        agent.log_text()
    );
    eprintln!(
        "healed in {:?} with a FIFO at the log path",
        killed.elapsed()
    );
    let stopping = Instant::now();
    let log = agent.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        stopping.elapsed()
    );
    assert!(log.contains("salve agent stopped"), "{log}");
}

/// Guard state lives in the journal, not in the process: an agent killed after each
/// attempt (an OOM, a watchdog kill) still stops at maxAttempts and escalates once.
#[test]
fn an_agent_killed_after_every_attempt_still_stops_at_max_attempts() {
    let Some(env) = lab("killed-agent") else {
        return;
    };
    let lab = env.lab();
    let hook = Webhook::start();
    let policies = env.dir.join("policies");
    let escalate = format!(
        "  escalate:\n    - notify: {{ webhook: \"{}\" }}\n",
        hook.url
    );
    let guard = "{ cooldown: 1s, maxAttempts: 2, window: 1h, backoff: 1.0 }";
    let yaml = down_policy(&lab.ping_url(), guard, &escalate).replace("within: 10s", "within: 2s");
    write_policy(&policies, "down.yaml", &yaml);
    lab.break_scenario(Scenario::CrashLoop).expect("crash loop");
    let journal = env.dir.join("journal.jsonl");
    let mut logs = String::new();
    for round in 1..=5 {
        let before = salve::audit::read_journal(&journal)
            .map(|r| r.records.len())
            .unwrap_or(0);
        let agent = Agent::start(&env, &policies, &[]);
        // Each round ends at the first thing the agent decides about the failed unit:
        // an attempt, the escalation, or the skip of an open circuit.
        let decided = wait_until(Duration::from_secs(20), || {
            agent.records()[before..].iter().any(|r| match &r.entry {
                Entry::Intent { .. } | Entry::Escalate { .. } => true,
                Entry::Skip { reason, .. } => reason == "circuit_open",
                _ => false,
            })
        });
        let log = agent.kill();
        assert!(decided, "round {round}: the agent decided nothing\n{log}");
        logs.push_str(&log);
    }
    let records = salve::audit::read_journal(&journal).unwrap().records;
    let intents = intents(&records).len();
    let escalations = records
        .iter()
        .filter(|r| r.entry.kind() == "escalate")
        .count();
    assert!(
        intents <= 2,
        "{intents} attempts for maxAttempts 2: {records:#?}"
    );
    assert_eq!(escalations, 1, "{records:#?}\n{logs}");
    // The notification may have been cut off by a kill; an agent that then runs long
    // enough sends it (again: at least once) and journals that it went out.
    let agent = Agent::start(&env, &policies, &[]);
    let sent = wait_until(Duration::from_secs(10), || {
        agent.count("escalationSent") >= 1
    });
    logs.push_str(&agent.stop());
    assert!(sent, "the escalation was never sent\n{logs}");
    assert!(hook.count() >= 1, "nobody was paged");
    let records = salve::audit::read_journal(&journal).unwrap().records;
    let unknown = records
        .iter()
        .filter(|r| {
            matches!(
                r.entry,
                Entry::Outcome {
                    result: salve::audit::OutcomeResult::Unknown,
                    ..
                }
            )
        })
        .count();
    let outcomes = records
        .iter()
        .filter(|r| r.entry.kind() == "outcome")
        .count();
    assert_eq!(
        outcomes, intents,
        "every intent is closed, as unknown if the agent died: {records:#?}"
    );
    eprintln!("{intents} attempts, {unknown} closed as unknown, {escalations} escalation");
    lab.repair().expect("repair the lab");
}

/// The bus dies while salve's restart job runs: the job's result can no longer arrive,
/// so the attempt ends `failed` (journalled, never left in flight), the agent
/// reconnects, and the unit is up once systemd finishes the job.
#[test]
fn dbus_killed_mid_restart_journals_the_outcome_and_the_unit_heals_after_reconnect() {
    let Some(env) = lab("dbus-mid-restart") else {
        return;
    };
    let lab = env.lab();
    // A restart that takes 2 s, so the bus can be killed in the middle of it.
    let dropin = std::path::PathBuf::from(format!("/proc/{}/root/run/units/{UNIT}.d", lab.pid()));
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("50-slow-start.conf"),
        "[Service]\nExecStartPre=/bin/sleep 2\n",
    )
    .unwrap();
    lab.systemctl(&["daemon-reload"]).unwrap();
    let agent = start_with_down_policy(&env, &[]);
    lab.break_scenario(Scenario::Crash).expect("crash");
    assert!(
        wait_until(Duration::from_secs(5), || unit_state(
            lab,
            UNIT,
            "ActiveState"
        ) == "activating"),
        "the restart never began\n{}",
        agent.log_text()
    );
    // SIGKILL, not a clean stop: the daemon vanishes mid-conversation.
    lab.systemctl(&["kill", "--signal=KILL", "dbus.service"])
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || unit_state(
        lab,
        "dbus.service",
        "ActiveState"
    ) != "active"));
    lab.systemctl(&["start", "dbus.service"]).unwrap();
    let outcome = wait_until(Duration::from_secs(20), || agent.count("outcome") >= 1);
    assert!(outcome, "no outcome journalled\n{}", agent.log_text());
    agent.wait_for_reconnect(Duration::from_secs(15));
    let healed = wait_until(Duration::from_secs(20), || {
        http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    assert!(
        healed,
        "not healed after the bus came back\n{}",
        agent.log_text()
    );
    let records = agent.records();
    let first = records
        .iter()
        .find(|r| r.entry.kind() == "outcome")
        .expect("an outcome");
    eprintln!("outcome with the bus killed mid-restart: {:?}", first.entry);
    agent.stop();
}

#[test]
fn agent_reconnects_after_dbus_restart_and_still_heals() {
    let Some(env) = lab("dbus-restart") else {
        return;
    };
    let lab = env.lab();
    let agent = start_with_down_policy(&env, &[]);
    lab.systemctl(&["restart", "dbus.service"])
        .expect("restart dbus");
    agent.wait_for_log("D-Bus connection lost", Duration::from_secs(10));
    agent.wait_for_reconnect(Duration::from_secs(15));
    lab.break_scenario(Scenario::Crash).expect("crash");
    let healed = wait_until(Duration::from_secs(10), || {
        agent.count("intent") >= 1 && http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    assert!(
        healed,
        "not healed after the D-Bus restart\n{}",
        agent.log_text()
    );
    agent.stop();
}

#[test]
fn dry_run_restarts_nothing_and_journals_its_decisions() {
    let Some(env) = lab("dry-run") else { return };
    let lab = env.lab();
    let agent = start_with_down_policy(&env, &["--dry-run"]);
    lab.break_scenario(Scenario::Crash).expect("crash");
    let journalled = wait_until(Duration::from_secs(5), || {
        agent.records().iter().any(|r| matches!(&r.entry, Entry::Skip { reason, dry_run: true, .. } if reason == "dry_run"))
    });
    assert!(
        journalled,
        "no dry-run decision journalled\n{}",
        agent.log_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        unit_state(lab, UNIT, "ActiveState"),
        "failed",
        "dry run must not restart"
    );
    assert_eq!(agent.count("intent"), 0);
    assert_eq!(http_status(lab.http_port(), "/ping.php"), Some(502));
    agent.stop();
}

#[test]
fn broken_policy_dropped_in_is_rejected_and_the_old_set_keeps_healing() {
    let Some(env) = lab("broken-policy") else {
        return;
    };
    let lab = env.lab();
    let agent = start_with_down_policy(&env, &[]);
    let policies = env.dir.join("policies");
    write_policy(&policies, "broken.yaml", "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: { name: broken }\nspec:\n  target: { unit: x.service }\n  trigger: [{ unit: { activeState: [faild] } }]\n  actions: [{ restart: {} }]\n");
    agent.wait_for_log("broken.yaml:6:37", Duration::from_secs(5));
    agent.wait_for_log("keeping the last good policy set", Duration::from_secs(2));
    lab.break_scenario(Scenario::Crash).expect("crash");
    let healed = wait_until(Duration::from_secs(8), || {
        agent.count("intent") >= 1 && http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    assert!(healed, "old policy set did not heal\n{}", agent.log_text());
    agent.stop();
}

#[test]
fn a_policy_on_a_new_unit_dropped_in_is_watched_without_a_restart() {
    let Some(env) = lab("new-unit") else {
        return;
    };
    let lab = env.lab();
    let agent = start_with_down_policy(&env, &[]);
    let policies = env.dir.join("policies");
    write_policy(
        &policies,
        "nginx.yaml",
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: { name: nginx-down }\nspec:\n  target: { unit: nginx.service }\n  trigger: [{ unit: { activeState: [failed, inactive] } }]\n  actions: [{ start: {} }]\n",
    );
    agent.wait_for_log("watching one more unit", Duration::from_secs(5));
    lab.systemctl(&["stop", "nginx.service"])
        .expect("stop nginx");
    let healed = wait_until(Duration::from_secs(8), || {
        http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    assert!(healed, "nginx was not started again\n{}", agent.log_text());
    let records = agent.records();
    assert!(
        records
            .iter()
            .any(|r| r.policy == "nginx-down" && matches!(r.entry, Entry::Intent { .. })),
        "{records:#?}"
    );
    agent.stop();
}

#[test]
fn hung_pool_is_caught_by_the_http_probe_and_restarted() {
    let Some(env) = lab("hang") else { return };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    let ping = lab.ping_url();
    let yaml = format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: php-fpm-hung
spec:
  target: {{ unit: {UNIT} }}
  trigger:
    - http: {{ url: "{ping}", status: [502, 503, 504], failures: 2, interval: 1s, timeout: 1s }}
  actions:
    - restart: {{}}
  verify:
    http: {{ url: "{ping}", status: [200], within: 10s }}
  guard: {{ cooldown: 5s, maxAttempts: 2, window: 1m }}
"#
    );
    write_policy(&policies, "hung.yaml", &yaml);
    let agent = Agent::start(&env, &policies, &[]);
    lab.break_scenario(Scenario::Hang).expect("hang the pool");
    assert_eq!(
        unit_state(lab, UNIT, "ActiveState"),
        "active",
        "a hung pool is still active"
    );
    let restarted = wait_until(Duration::from_secs(20), || agent.count("intent") >= 1);
    assert!(restarted, "probe never fired\n{}", agent.log_text());
    let healed = wait_until(Duration::from_secs(15), || {
        http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    assert!(
        healed,
        "ping.php not 200 after the restart\n{}",
        agent.log_text()
    );
    let records = agent.records();
    assert!(
        matches!(&intents(&records)[0].entry, Entry::Intent { evidence, .. } if evidence.iter().any(|e| e.starts_with("http ")))
    );
    lab.repair().expect("repair");
    agent.stop();
}

/// The shipped unit file, run by the lab's systemd: `Type=notify` reaches active only
/// after READY=1, and the watchdog does not kill an agent that pings it.
#[test]
fn shipped_unit_runs_the_agent_under_systemd_with_readiness_and_watchdog() {
    let Some(env) = lab("systemd-unit") else {
        return;
    };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    write_policy(
        &policies,
        "down.yaml",
        &down_policy(&lab.ping_url(), GUARD, ""),
    );
    let units = std::path::PathBuf::from(format!("/proc/{}/root/etc/systemd/system", lab.pid()));
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/systemd/salve.service"
    ))
    .expect("deploy/systemd/salve.service");
    std::fs::write(units.join("salve.service"), shipped).expect("install the unit in the lab");
    // Only what a test lab must change: no `salve` user exists here, the binary is the
    // one under test, and state stays in the test's folder (StateDirectory= would
    // create /var/lib/salve, which the sandbox shares with the host).
    let journal = env.dir.join("journal.jsonl");
    let dropin = format!(
        "[Service]\nUser=\nUser=root\nGroup=\nGroup=root\nSupplementaryGroups=\nStateDirectory=\nReadWritePaths=\nReadWritePaths={dir}\nWatchdogSec=2s\nExecStart=\nExecStart={bin} agent --policies {policies} --journal {journal}\n",
        dir = env.dir.display(),
        bin = env!("CARGO_BIN_EXE_salve"),
        policies = policies.display(),
        journal = journal.display(),
    );
    std::fs::create_dir_all(units.join("salve.service.d")).expect("drop-in dir");
    std::fs::write(units.join("salve.service.d/test.conf"), dropin).expect("drop-in");
    lab.systemctl(&["daemon-reload"]).expect("daemon-reload");
    let started = lab
        .systemctl(&["start", "salve.service"])
        .expect("start salve");
    let status = |p: &str| unit_state(lab, "salve.service", p);
    assert!(
        started.status.success() && status("ActiveState") == "active",
        "salve.service did not become active: {}\n{}",
        String::from_utf8_lossy(&started.stderr),
        String::from_utf8_lossy(
            &lab.systemctl(&["status", "salve.service"])
                .expect("status")
                .stdout
        )
    );
    // Three watchdog periods: a silent agent would be killed and restarted by now.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(status("ActiveState"), "active");
    assert_eq!(status("NRestarts"), "0", "the watchdog restarted the agent");
    lab.break_scenario(Scenario::Crash).expect("crash");
    let healed = wait_until(Duration::from_secs(5), || {
        http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    assert!(healed, "the agent under systemd did not heal the pool");
    let stopped = lab
        .systemctl(&["stop", "salve.service"])
        .expect("stop salve");
    assert!(stopped.status.success());
    assert_eq!(
        status("Result"),
        "success",
        "SIGTERM should end the agent cleanly"
    );
    let records = salve::audit::read_journal(&journal)
        .expect("journal")
        .records;
    assert!(
        records.iter().any(|r| r.entry.kind() == "outcome"),
        "{records:#?}"
    );
}

/// SIGTERM while an attempt runs: the agent waits for it and journals its outcome.
#[test]
fn sigterm_finishes_and_journals_the_attempt_in_flight() {
    let Some(env) = lab("sigterm") else { return };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    let yaml = format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: slow-fix
spec:
  target: {{ unit: {UNIT} }}
  trigger:
    - unit: {{ activeState: [failed] }}
  actions:
    - exec: {{ command: ["/bin/sleep", "2"], timeout: 10s }}
    - restart: {{}}
"#
    );
    write_policy(&policies, "slow.yaml", &yaml);
    let agent = Agent::start(&env, &policies, &[]);
    lab.break_scenario(Scenario::Crash).expect("crash");
    assert!(wait_until(Duration::from_secs(5), || agent.count("intent") == 1));
    let asked = Instant::now();
    let log = agent.stop();
    assert!(
        asked.elapsed() >= Duration::from_millis(500),
        "the agent did not wait for its attempt"
    );
    assert!(log.contains("finishing attempts in flight"), "{log}");
    let read = salve::audit::read_journal(&env.dir.join("journal.jsonl")).expect("journal");
    let outcome = read.records.iter().find(|r| r.entry.kind() == "outcome");
    match outcome.map(|r| &r.entry) {
        Some(Entry::Outcome { steps, result, .. }) => {
            assert_eq!(*result, salve::engine::OutcomeResult::Ok);
            assert_eq!(steps, &["exec: exited 0", "restart: job done"]);
        }
        other => panic!("no outcome journalled after SIGTERM: {other:?}\n{log}"),
    }
    assert_eq!(http_status(lab.http_port(), "/ping.php"), Some(200));
}

/// A log trigger with a built-in pattern: nginx's own error log tells salve the pool's
/// socket is gone, before any probe or unit signal is involved.
#[test]
fn nginx_error_log_line_triggers_a_restart_through_a_builtin_pattern() {
    let Some(env) = lab("log-trigger") else {
        return;
    };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    let yaml = format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: php-fpm-socket-gone
spec:
  target: {{ unit: {UNIT} }}
  trigger:
    - log: {{ path: {log}, match: nginx.upstream_connect_failed, count: 1, within: 30s }}
  actions:
    - restart: {{}}
  verify:
    http: {{ url: "{ping}", status: [200], within: 10s }}
"#,
        log = lab.nginx_error_log().display(),
        ping = lab.ping_url(),
    );
    write_policy(&policies, "log.yaml", &yaml);
    let agent = Agent::start(&env, &policies, &[]);
    agent.wait_for_log("following log", Duration::from_secs(5));
    // A clean stop removes the socket: the next request makes nginx log
    // "connect() to unix:… failed (2: No such file or directory)".
    lab.break_scenario(Scenario::Stop).expect("stop the pool");
    assert_eq!(http_status(lab.http_port(), "/ping.php"), Some(502));
    let healed = wait_until(Duration::from_secs(10), || {
        http_status(lab.http_port(), "/ping.php") == Some(200)
    });
    assert!(
        healed,
        "the log line did not lead to a restart\n{}",
        agent.log_text()
    );
    let records = agent.records();
    let evidence = match &intents(&records)[0].entry {
        Entry::Intent { evidence, .. } => evidence.join("\n"),
        other => panic!("expected an intent, got {other:?}"),
    };
    assert!(
        evidence.contains("(nginx.upstream_connect_failed)"),
        "{evidence}"
    );
    assert!(evidence.contains("No such file or directory"), "{evidence}");
    agent.stop();
}
