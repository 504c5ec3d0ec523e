//! The config-edit policies shipped in policies/, run against the lab's real nginx and
//! php-fpm: header buffers raised (and capped), socket permissions fixed, fastcgi_pass
//! aligned, the pool grown under load, and a failed `nginx -t` that leaves the file
//! exactly as it was.

use crate::harness::*;
use salve::audit::{Entry, Record};
use salve::lab::{Lab, Scenario};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A shipped policy with its production paths and URLs pointed at this lab.
fn shipped_policy(env: &Env, file: &str) -> String {
    let lab = env.lab();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("policies")
            .join(file),
    )
    .expect("shipped policy");
    let s = |p: std::path::PathBuf| p.display().to_string();
    let swaps = [
        ("/etc/nginx/sites-enabled/default", s(lab.nginx_site())),
        ("/etc/nginx/nginx.conf", s(lab.nginx_conf())),
        ("/var/log/nginx/error.log", s(lab.nginx_error_log())),
        ("/etc/php/8.2/fpm/pool.d/www.conf", s(lab.pool_conf())),
        ("/etc/php/8.2/fpm/php-fpm.conf", s(lab.php_fpm_conf())),
        ("/var/log/php8.2-fpm.log", s(lab.php_fpm_log())),
        ("127.0.0.1:8480", format!("127.0.0.1:{}", lab.http_port())),
    ];
    let mut text = text;
    for (from, to) in swaps {
        text = text.replace(from, &to);
    }
    // A path this list missed would have the test edit the host's own configs.
    for host_path in ["/etc/", "/var/log/"] {
        let left: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains(host_path))
            .collect();
        assert!(
            left.is_empty(),
            "{file} still names the host's {host_path}: {left:?}"
        );
    }
    text
}

/// The agent as production runs it for config edits: the shipped unit as `salve`, plus
/// the shipped config-edit drop-in and nothing else.
fn start(env: &Env, name: &str, yaml: &str) -> Agent {
    let policies = env.dir.join("policies");
    write_policy(&policies, name, yaml);
    Agent::start_unit(env, &policies, &["salve.service.d/config-edits.conf"])
}

fn outcomes(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| matches!(r.entry, Entry::Outcome { .. }))
        .collect()
}

fn outcome_parts(r: &Record) -> (String, Option<String>, Vec<String>) {
    match &r.entry {
        Entry::Outcome {
            result,
            error,
            diffs,
            ..
        } => (format!("{result:?}"), error.clone(), diffs.clone()),
        _ => unreachable!("only outcomes are passed here"),
    }
}

/// Waits for the agent's first outcome; its (result, error, diffs).
fn first_outcome(agent: &Agent, within: Duration) -> (String, Option<String>, Vec<String>) {
    assert!(
        wait_until(within, || agent.count("outcome") >= 1),
        "no outcome\n{}",
        agent.log_text()
    );
    outcome_parts(outcomes(&agent.records())[0])
}

/// Waits for `path` to answer 200 (salve healed it), then for the attempt's outcome.
fn healed(
    lab: &Lab,
    agent: &Agent,
    path: &str,
    within: Duration,
) -> (String, Option<String>, Vec<String>) {
    let answered = wait_until(within, || http_status(lab.http_port(), path) == Some(200));
    assert!(answered, "{path} never answered 200\n{}", agent.log_text());
    first_outcome(agent, Duration::from_secs(10))
}

fn nginx_config_is_valid(lab: &Lab) -> bool {
    Command::new("/usr/sbin/nginx")
        .args(["-t", "-q", "-e", "stderr", "-c"])
        .arg(lab.nginx_conf())
        .status()
        .is_ok_and(|s| s.success())
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn big_headers_get_raised_buffers_and_the_page_answers_200() {
    let Some(env) = lab("big-header") else { return };
    let lab = env.lab();
    let site = lab.nginx_site();
    let original = read(&site);
    let agent = start(
        &env,
        "buffers.yaml",
        &shipped_policy(&env, "nginx-header-buffers.yaml"),
    );

    // For the record: what the config-edit drop-in costs in systemd's own terms.
    let exposure = exposure(lab, "salve.service");
    eprintln!("salve.service with config-edits.conf: exposure {exposure}");
    assert_eq!(http_status(lab.http_port(), "/big-header.php"), Some(502));
    let (result, error, diffs) = healed(lab, &agent, "/big-header.php", Duration::from_secs(40));
    assert_eq!(result, "Ok", "{error:?}\n{}", agent.log_text());
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(
        diffs[0].contains("+        fastcgi_buffer_size "),
        "{}",
        diffs[0]
    );
    assert!(
        diffs[0].contains("+        fastcgi_buffers 8 "),
        "{}",
        diffs[0]
    );
    assert!(
        nginx_config_is_valid(lab),
        "nginx -t fails on the edited config"
    );
    let backups = salve::action::config_edit::backups(&site);
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(
        read(&backups[0]),
        original,
        "the backup holds the original bytes"
    );
    // Lossless: exactly two lines added at the top of the block, every other byte kept.
    let edited = String::from_utf8(read(&site)).unwrap();
    let value = |name: &str| {
        edited
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim_end_matches(';').to_string())
            .unwrap_or_else(|| panic!("no {name} in\n{edited}"))
    };
    let expected = String::from_utf8(original).unwrap().replacen(
        "    location ~ \\.php$ {\n",
        &format!(
            "    location ~ \\.php$ {{\n        fastcgi_buffer_size {};\n        fastcgi_buffers {};\n",
            value("fastcgi_buffer_size "),
            value("fastcgi_buffers ")
        ),
        1,
    );
    assert_eq!(edited, expected);
}

#[test]
fn headers_beyond_the_cap_escalate_and_leave_the_config_unchanged() {
    let Some(env) = lab("header-cap") else { return };
    let lab = env.lab();
    let site = lab.nginx_site();
    let original = read(&site);
    let webhook = Webhook::start();
    let yaml = shipped_policy(&env, "nginx-header-buffers.yaml")
        .replace("/big-header.php", "/huge-header.php")
        .replace("cooldown: 30s", "cooldown: 1s")
        .replace("http://127.0.0.1:9093/hooks/salve", &webhook.url);
    let agent = start(&env, "buffers.yaml", &yaml);

    let escalated = wait_until(Duration::from_secs(120), || {
        // Each request writes a fresh "too big header" line: the evidence for the next attempt.
        assert_ne!(http_status(lab.http_port(), "/huge-header.php"), Some(200));
        std::thread::sleep(Duration::from_millis(300));
        agent.count("escalate") >= 1
    });
    assert!(escalated, "no escalation\n{}", agent.log_text());
    assert!(
        wait_until(Duration::from_secs(5), || webhook.count() >= 1),
        "webhook not called"
    );
    let records = agent.records();
    let done = outcomes(&records);
    assert_eq!(done.len(), 2, "maxAttempts: 2");
    for outcome in done {
        let (result, error, diffs) = outcome_parts(outcome);
        let error = error.unwrap_or_default();
        assert_eq!(result, "Failed");
        assert!(
            error.contains("still failing verification at the cap"),
            "{error}"
        );
        assert!(error.contains("original restored and applied"), "{error}");
        assert!(
            diffs[0].contains("fastcgi_buffer_size 64k;"),
            "{}",
            diffs[0]
        );
        assert!(!diffs[0].contains("128k"), "past the cap: {}", diffs[0]);
    }
    assert_eq!(read(&site), original, "config unchanged after the attempts");
    assert_eq!(http_status(lab.http_port(), "/ping.php"), Some(200));
}

#[test]
fn a_root_only_socket_gets_nginx_permissions_back() {
    let Some(env) = lab("socket-permissions") else {
        return;
    };
    let lab = env.lab();
    let agent = start(
        &env,
        "socket.yaml",
        &shipped_policy(&env, "php-fpm-socket-permissions.yaml"),
    );
    lab.break_scenario(Scenario::SocketPermissions)
        .expect("lock the socket");
    let log = String::from_utf8_lossy(&read(&lab.nginx_error_log())).to_string();
    assert!(
        log.contains("(13: Permission denied) while connecting to upstream"),
        "{log}"
    );
    let (result, error, diffs) = healed(lab, &agent, "/ping.php", Duration::from_secs(30));
    assert_eq!(result, "Ok", "{error:?}");
    assert!(
        diffs[0].contains("-listen.mode = 0600\n") && diffs[0].contains("+listen.mode = 0660\n"),
        "{}",
        diffs[0]
    );
    let pool = String::from_utf8(read(&lab.pool_conf())).unwrap();
    for line in [
        "listen.owner = www-data",
        "listen.group = www-data",
        "listen.mode = 0660",
    ] {
        assert!(pool.lines().any(|l| l == line), "{line} missing:\n{pool}");
    }
}

#[test]
fn a_fastcgi_pass_to_nowhere_is_diagnosed_and_aligned_to_the_pool() {
    let Some(env) = lab("fastcgi-mismatch") else {
        return;
    };
    let lab = env.lab();
    lab.break_scenario(Scenario::FastcgiMismatch)
        .expect("point nginx elsewhere");

    let diagnose = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["diagnose", "--json", "--nginx-conf"])
        .arg(lab.nginx_conf())
        .arg("--fpm-conf")
        .arg(lab.php_fpm_conf())
        .arg("--error-log")
        .arg(lab.nginx_error_log())
        .args(["--bus", &lab.bus_address()])
        .output()
        .expect("run salve diagnose");
    assert_eq!(
        diagnose.status.code(),
        Some(1),
        "findings mean exit 1: {diagnose:?}"
    );
    let report: serde_json::Value = serde_json::from_slice(&diagnose.stdout).expect("JSON report");
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["kind"] == "fastcgi_pass_mismatch")
        .unwrap_or_else(|| panic!("no mismatch finding: {report:#}"));
    let site = lab.nginx_site().display().to_string();
    let line = std::fs::read_to_string(lab.nginx_site())
        .unwrap()
        .lines()
        .position(|l| l.contains("fastcgi_pass"))
        .unwrap()
        + 1;
    assert_eq!(finding["file"], site.as_str(), "{finding:#}");
    assert_eq!(finding["line"], line, "{finding:#}");
    assert_eq!(
        finding["policy"], "nginx-fastcgi-pass-mismatch",
        "{finding:#}"
    );

    let yaml = shipped_policy(&env, "nginx-fastcgi-pass-mismatch.yaml")
        .replace("cooldown: 1m", "cooldown: 1s");
    let agent = start(&env, "align.yaml", &yaml);
    let (result, _, diffs) = healed(lab, &agent, "/ping.php", Duration::from_secs(30));
    assert_eq!(result, "Ok");
    assert!(
        diffs[0].contains(        "-        fastcgi_pass unix:/run/php/php7.4-fpm.sock;\n+        fastcgi_pass unix:/run/php/php8.2-fpm.sock;"),
        "{}",
        diffs[0]
    );

    // Stopping PHP-FPM logs the same "No such file" line: the policy fires, finds every
    // fastcgi_pass already right, and that attempt does not count toward its circuit.
    // With maxAttempts 2, a third firing after a real failure would have escalated.
    std::thread::sleep(Duration::from_millis(1200));
    lab.break_scenario(Scenario::Stop).expect("stop the pool");
    for fired in 2..=3 {
        assert_eq!(http_status(lab.http_port(), "/ping.php"), Some(502));
        assert!(
            wait_until(Duration::from_secs(10), || agent.count("outcome") >= fired),
            "no outcome #{fired}\n{}",
            agent.log_text()
        );
        let records = agent.records();
        let (result, error, diffs) = outcome_parts(outcomes(&records)[fired - 1]);
        assert_eq!(result, "NotApplicable", "{error:?}");
        assert!(error.unwrap_or_default().contains("nothing to change"));
        assert!(diffs.is_empty());
        // The backoff after a not-applicable attempt: 1s x 2.
        std::thread::sleep(Duration::from_millis(2200));
    }
    assert_eq!(agent.count("escalate"), 0);
}

/// Ten clients at once against work.php; returns how many did not get a 200.
fn burst_errors(port: u16) -> usize {
    let clients: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                http_status_within(port, "/work.php", Duration::from_secs(10))
            })
        })
        .collect();
    clients
        .into_iter()
        .map(|c| c.join().ok().flatten())
        .filter(|status| *status != Some(200))
        .count()
}

#[test]
fn an_exhausted_pool_is_grown_within_its_cap_and_errors_drop() {
    let Some(env) = lab("exhaustion") else { return };
    let lab = env.lab();
    lab.break_scenario(Scenario::Exhaustion)
        .expect("shrink the pool");
    // Measured before salve watches: once it does, its restart lands mid-burst.
    let before = burst_errors(lab.http_port());
    assert!(
        before > 0,
        "one worker should not serve ten 0.5 s requests within 3 s"
    );
    // Here php-fpm warned under the first burst only, not again under a second one
    // two seconds later; a restarted pool warns afresh.
    lab.systemctl(&["restart", "php8.2-fpm.service"])
        .expect("restart the pool");
    let webhook = Webhook::start();
    let yaml = shipped_policy(&env, "php-fpm-max-children.yaml")
        .replace("http://127.0.0.1:9093/hooks/salve", &webhook.url);
    let agent = start(&env, "children.yaml", &yaml);
    // The load again, now with salve following the pool's log.
    burst_errors(lab.http_port());
    let (result, error, diffs) = first_outcome(&agent, Duration::from_secs(30));
    let records = agent.records();
    assert_eq!(result, "Ok", "{error:?}\n{}", agent.log_text());
    assert!(
        diffs[0].contains("-pm.max_children = 1\n+pm.max_children = 2"),
        "{}",
        diffs[0]
    );
    let evidence: Vec<String> = records
        .iter()
        .find_map(|r| match &r.entry {
            Entry::Intent { evidence, .. } => Some(evidence.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        evidence
            .iter()
            .any(|e| e.contains("server reached pm.max_children setting (1)")),
        "{evidence:?}"
    );
    assert_eq!(webhook.count(), 1, "the policy tells a person too");
    assert!(wait_until(Duration::from_secs(10), || http_status(
        lab.http_port(),
        "/ping.php"
    ) == Some(200)));
    let after = burst_errors(lab.http_port());
    eprintln!("exhaustion: {before}/10 requests failed before the raise, {after}/10 after");
    assert!(after < before, "errors before {before}, after {after}");
}

#[test]
fn an_edit_that_fails_nginx_t_leaves_the_file_byte_for_byte() {
    let Some(env) = lab("validation-failure") else {
        return;
    };
    let lab = env.lab();
    let site = lab.nginx_site();
    let original = read(&site);
    // Raising fastcgi_buffer_size alone past 8k breaks nginx's rule that
    // fastcgi_busy_buffers_size (2 x 16k) stay below all fastcgi_buffers minus one (28k).
    let yaml = shipped_policy(&env, "nginx-header-buffers.yaml")
        .replace(
            "          - { directive: fastcgi_buffer_size, factor: 2, max: 64k }\n          - { directive: fastcgi_buffers, factor: 2, max: 64k }\n",
            "          - { directive: fastcgi_buffer_size, factor: 4, max: 64k }\n",
        );
    assert!(yaml.contains("factor: 4"));
    let agent = start(&env, "buffers.yaml", &yaml);
    assert_eq!(http_status(lab.http_port(), "/big-header.php"), Some(502));
    let (result, error, diffs) = first_outcome(&agent, Duration::from_secs(20));
    let error = error.unwrap_or_default();
    assert_eq!(result, "Failed");
    assert!(
        error.contains("validation failed, file not replaced"),
        "{error}"
    );
    assert!(
        error.contains("fastcgi_busy_buffers_size"),
        "nginx's own reason: {error}"
    );
    assert!(
        diffs[0].contains("+        fastcgi_buffer_size 16k;"),
        "{}",
        diffs[0]
    );
    assert_eq!(read(&site), original, "byte for byte");
    let leftovers: Vec<_> = std::fs::read_dir(site.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != "app.conf")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no candidate or backup left: {leftovers:?}"
    );
    assert_eq!(http_status(lab.http_port(), "/ping.php"), Some(200));
}

#[test]
fn upstream_timeouts_are_told_to_a_person_not_restarted() {
    let Some(env) = lab("upstream-timeout") else {
        return;
    };
    let lab = env.lab();
    let webhook = Webhook::start();
    let yaml = shipped_policy(&env, "nginx-upstream-timeout.yaml")
        .replace("http://127.0.0.1:9093/hooks/salve", &webhook.url);
    let agent = start(&env, "timeout.yaml", &yaml);
    let invocation = unit_state(lab, "php8.2-fpm.service", "InvocationID");
    lab.break_scenario(Scenario::Hang)
        .expect("occupy every worker");
    // Five requests that each wait out nginx's 3 s fastcgi_read_timeout: five 504s.
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let port = lab.http_port();
            std::thread::spawn(move || {
                http_status_within(port, "/ping.php", Duration::from_secs(10))
            })
        })
        .collect();
    let statuses: Vec<Option<u16>> = clients
        .into_iter()
        .map(|c| c.join().ok().flatten())
        .collect();
    assert!(statuses.iter().all(|s| *s == Some(504)), "{statuses:?}");
    assert!(
        wait_until(Duration::from_secs(10), || webhook.count() >= 1),
        "no notification\n{}",
        agent.log_text()
    );
    let records = agent.records();
    let intents = intents(&records);
    match &intents[0].entry {
        Entry::Intent {
            actions, evidence, ..
        } => {
            assert_eq!(actions, &["notify"]);
            assert!(evidence[0].contains("5 matching line(s)"), "{evidence:?}");
            assert!(
                evidence[0].contains("upstream timed out (110"),
                "{evidence:?}"
            );
        }
        other => panic!("not an intent: {other:?}"),
    }
    assert_eq!(
        unit_state(lab, "php8.2-fpm.service", "InvocationID"),
        invocation,
        "never restarted"
    );
}

/// A stand-in for a CDN that answers 502 to everything.
fn broken_edge() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

#[test]
fn an_edge_502_with_a_healthy_origin_is_classified_and_only_notified() {
    let Some(env) = lab("edge") else { return };
    let lab = env.lab();
    let edge = format!("http://127.0.0.1:{}/ping.php", broken_edge());
    let diagnose = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["diagnose", "--json", "--no-systemd", "--nginx-conf"])
        .arg(lab.nginx_conf())
        .arg("--fpm-conf")
        .arg(lab.php_fpm_conf())
        .args(["--public-url", &edge, "--origin-url", &lab.ping_url()])
        .output()
        .expect("run salve diagnose");
    assert_eq!(diagnose.status.code(), Some(1), "{diagnose:?}");
    let report: serde_json::Value = serde_json::from_slice(&diagnose.stdout).expect("JSON");
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["edge"], "{report:#}");
    assert_eq!(report["findings"][0]["policy"], "edge-502");

    let webhook = Webhook::start();
    let yaml = shipped_policy(&env, "edge-502.yaml")
        .replace(&lab.ping_url(), &edge)
        .replace(
            "interval: 10s, timeout: 5s",
            "interval: 500ms, timeout: 500ms",
        )
        .replace("http://127.0.0.1:9093/hooks/salve", &webhook.url);
    let invocation = unit_state(lab, "nginx.service", "InvocationID");
    let agent = start(&env, "edge.yaml", &yaml);
    assert!(
        wait_until(Duration::from_secs(15), || webhook.count() >= 1),
        "no notification\n{}",
        agent.log_text()
    );
    let records = agent.records();
    match &intents(&records)[0].entry {
        Entry::Intent { actions, .. } => assert_eq!(actions, &["notify"]),
        other => panic!("not an intent: {other:?}"),
    }
    assert_eq!(
        unit_state(lab, "nginx.service", "InvocationID"),
        invocation,
        "origin untouched"
    );
    assert_eq!(http_status(lab.http_port(), "/ping.php"), Some(200));
}

/// The base unit alone holds no capability: a config edit cannot write the root-owned
/// config, says so in the journal, and the agent keeps running (a call its system-call
/// filter denies fails with EPERM instead of killing it with SIGSYS).
#[test]
fn without_the_config_edit_drop_in_an_edit_fails_cleanly_and_the_agent_stays_up() {
    let Some(env) = lab("no-drop-in") else { return };
    let lab = env.lab();
    let site = lab.nginx_site();
    let original = read(&site);
    let policies = env.dir.join("policies");
    write_policy(
        &policies,
        "buffers.yaml",
        &shipped_policy(&env, "nginx-header-buffers.yaml"),
    );
    let agent = Agent::start_unit(&env, &policies, &[]);
    assert_eq!(http_status(lab.http_port(), "/big-header.php"), Some(502));
    let (result, error, _) = first_outcome(&agent, Duration::from_secs(20));
    assert_eq!(result, "Failed", "{error:?}");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("Permission denied") && error.contains("config-edits.conf"),
        "{error}"
    );
    assert_eq!(read(&site), original, "the config is untouched");
    assert_eq!(unit_state(lab, "salve.service", "ActiveState"), "active");
    assert_eq!(unit_state(lab, "salve.service", "NRestarts"), "0");
    agent.stop();
}
