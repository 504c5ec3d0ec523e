//! PHP-FPM's status page as a signal, end to end: the lab's pool shrunk to one worker
//! (the exhaustion scenario) and moved to a TCP listener (PHP reports the listen
//! queue of those only), its status page read over FastCGI at its own
//! `pm.status_listen`. Under a burst of slow requests the listen queue stays above 0
//! and the policy fires, before nginx has answered (or logged) a single 504.

use crate::harness::*;
use salve::audit::Entry;
use salve::lab::Scenario;
use std::time::{Duration, SystemTime};

/// The pool's own TCP port in this test.
const FPM_PORT: u16 = 18491;

#[test]
fn a_listen_queue_that_stays_above_zero_fires_before_nginx_logs_a_504() {
    let Some(env) = lab("fpm_status_queue") else {
        return;
    };
    let lab = env.lab();
    lab.pool_on_tcp(FPM_PORT).expect("move the pool to TCP");
    lab.break_scenario(Scenario::Exhaustion)
        .expect("shrink the pool");
    // The status listener inside the sandbox, reached through its root.
    let status = format!(
        "unix:/proc/{}/root{}",
        lab.pid(),
        salve::lab::status_socket_of(salve::lab::PHP_FPM_SOCKET)
    );
    let webhook = Webhook::start();
    let yaml = format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: php-fpm-queue
spec:
  target:
    unit: php8.2-fpm.service
  trigger:
    - phpFpm: {{ status: "{status}", listenQueue: 1, interval: 250ms, timeout: 250ms }}
      for: 500ms
  actions:
    - notify: {{ webhook: "{}" }}
"#,
        webhook.url
    );
    let policies = env.dir.join("policies");
    write_policy(&policies, "queue.yaml", &yaml);
    let agent = Agent::start(&env, &policies, &[]);
    agent.wait_for_log("reading PHP-FPM's status page", Duration::from_secs(10));
    // The pool answers its status page while idle: no decision yet.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        intents(&agent.records()).is_empty(),
        "an idle pool fires nothing"
    );

    // Ten clients at once on one worker holding each for 0.5 s: the queue fills, and
    // the last of them wait past nginx's 3 s fastcgi_read_timeout.
    let port = lab.http_port();
    let started = SystemTime::now();
    let clients: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                let status = http_status_within(port, "/work.php", Duration::from_secs(10));
                (status, SystemTime::now())
            })
        })
        .collect();
    let answers: Vec<(Option<u16>, SystemTime)> =
        clients.into_iter().filter_map(|c| c.join().ok()).collect();
    let first_504 = answers
        .iter()
        .filter(|(status, _)| *status == Some(504))
        .map(|(_, at)| *at)
        .min()
        .expect("the burst got 504s: one worker cannot serve ten 0.5 s requests within 3 s");
    assert!(
        wait_until(Duration::from_secs(10), || !intents(&agent.records())
            .is_empty()),
        "the listen queue fired the policy\n{}",
        agent.log_text()
    );
    let records = agent.records();
    let intent = intents(&records)[0];
    let Entry::Intent { evidence, .. } = &intent.entry else {
        unreachable!("intents are intents");
    };
    assert!(
        evidence[0].contains(": pool www: listen queue ") && evidence[0].contains("0 idle of 1"),
        "{evidence:?}"
    );
    let since = |t: SystemTime| t.duration_since(started).unwrap_or_default();
    eprintln!(
        "fpm status: the policy fired {:?} into the burst, nginx's first 504 came at {:?}",
        since(intent.ts),
        since(first_504)
    );
    assert!(
        intent.ts < first_504,
        "fired at {:?}, first 504 at {:?}",
        since(intent.ts),
        since(first_504)
    );
    // nginx logs each 504 as it answers it: none is older than the decision.
    let log = std::fs::read_to_string(lab.nginx_error_log()).unwrap_or_default();
    let timed_out: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("upstream timed out"))
        .collect();
    assert!(!timed_out.is_empty(), "nginx logged its 504s:\n{log}");
    let decided = humantime::format_rfc3339_seconds(intent.ts).to_string();
    eprintln!(
        "decided at {decided}; nginx's first 504 line: {}",
        timed_out[0]
    );
    // nginx writes `2026/12/03 17:35:06` (the lab's clock is UTC, as the host's).
    let logged = timed_out[0]
        .get(..19)
        .map(|t| t.replace('/', "-").replacen(' ', "T", 1) + "Z")
        .unwrap_or_default();
    assert!(
        logged.as_str() >= decided.as_str(),
        "nginx's first 504 at {logged} came before the decision at {decided}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || webhook.count() >= 1),
        "the policy's notify went out"
    );
}
