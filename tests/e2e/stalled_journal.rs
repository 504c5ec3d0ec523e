//! The event loop never waits for the disk. The real agent runs here in this process
//! (so its journal can be given a disk that stalls: every intent takes 2 s to write)
//! against the lab's systemd, and while the first intent is being written:
//! - the watchdog keeps being pinged (on a notify socket of this test's own),
//! - the HTTP probe keeps probing (a server of this test's counts the requests),
//! - D-Bus events keep being decided (a dry-run policy on nginx journals a decision
//!   about nginx stopping, dated inside the stall),
//!
//! and the restart the intent announces starts only once the intent is on disk.

use crate::harness::*;
use salve::agent::{AgentOptions, WrapSink};
use salve::audit::{AuditError, Entry, Journal, Record, Sink};
use salve::config::Config;
use salve::lab::Scenario;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STALL: Duration = Duration::from_secs(2);

/// CLOCK_MONOTONIC in µs, the clock systemd's `*TimestampMonotonic` properties use.
fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// The journal on a disk that takes `STALL` for every intent.
struct StallingDisk {
    inner: Journal,
    /// (kind, monotonic µs when the write ended)
    written: Arc<Mutex<Vec<(&'static str, u64)>>>,
}

impl Sink for StallingDisk {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        if matches!(record.entry, Entry::Intent { .. }) {
            std::thread::sleep(STALL);
        }
        self.inner.append(record)?;
        self.written
            .lock()
            .unwrap()
            .push((record.entry.kind(), monotonic_us()));
        Ok(())
    }
}

/// Answers 200 to every GET and counts them, with the time of each.
fn probe_target() -> (u16, Arc<Mutex<Vec<u64>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() && line.starts_with("GET") {
                counter.lock().unwrap().push(monotonic_us());
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, seen)
}

#[test]
fn a_stalled_journal_holds_the_action_but_never_dbus_probes_or_the_watchdog() {
    let Some(env) = lab("stalled-journal") else {
        return;
    };
    let lab = env.lab();
    let (probe_port, probes) = probe_target();
    let policies = env.dir.join("policies");
    write_policy(
        &policies,
        "php.yaml",
        &format!(
            r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata: {{ name: php-fpm-down }}
spec:
  target: {{ unit: php8.2-fpm.service }}
  trigger:
    - unit: {{ activeState: [failed, inactive] }}
    - http: {{ url: "http://127.0.0.1:{probe_port}/health", status: [500], interval: 100ms, timeout: 100ms }}
  actions:
    - resetFailed: {{}}
    - restart: {{}}
  guard: {{ cooldown: 10s, maxAttempts: 3, window: 10m }}
"#
        ),
    );
    write_policy(
        &policies,
        "nginx.yaml",
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata: { name: nginx-watch }
spec:
  target: { unit: nginx.service }
  trigger:
    - unit: { activeState: [inactive, failed] }
  actions:
    - start: {}
  dryRun: true
"#,
    );
    // A notify socket of this test's own, and a 200 ms watchdog: a ping every 100 ms.
    let notify = env.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::env::set_var("NOTIFY_SOCKET", &notify);
    std::env::set_var("WATCHDOG_USEC", "200000");
    let pings = Arc::new(AtomicUsize::new(0));
    let ping_times = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(AtomicUsize::new(0));
    {
        let (pings, ping_times, ready) = (
            Arc::clone(&pings),
            Arc::clone(&ping_times),
            Arc::clone(&ready),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if text.contains("WATCHDOG=1") {
                            pings.fetch_add(1, Ordering::SeqCst);
                            ping_times.lock().unwrap().push(monotonic_us());
                        }
                        if text.contains("READY=1") {
                            ready.fetch_add(1, Ordering::SeqCst);
                        }
                        if text.contains("STOPPING=1") {
                            return;
                        }
                    }
                    Err(_) => continue,
                }
            }
        });
    }

    let written = Arc::new(Mutex::new(Vec::new()));
    let journal_path = env.dir.join("journal.jsonl");
    let wrap: WrapSink = {
        let written = Arc::clone(&written);
        Box::new(move |inner| Box::new(StallingDisk { inner, written }))
    };
    let config = Config {
        journal_path: journal_path.clone(),
        ..Config::default()
    };
    let options = AgentOptions {
        policy_paths: vec![policies.clone()],
        config,
        bus: lab.bus_address().parse().unwrap(),
        journal_sink: Some(wrap),
        systemd_link: None,
    };
    let agent = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(salve::agent::run(options))
    });
    let said_ready = wait_until(Duration::from_secs(10), || {
        ready.load(Ordering::SeqCst) > 0 || agent.is_finished()
    });
    if agent.is_finished() {
        panic!("the agent stopped at once: {:?}", agent.join());
    }
    assert!(said_ready, "the agent never said READY=1");
    std::thread::sleep(Duration::from_millis(500));

    let crashed_at = monotonic_us();
    lab.break_scenario(Scenario::Crash).unwrap();
    // While the intent is being written: a D-Bus event the agent must decide about.
    std::thread::sleep(Duration::from_millis(300));
    let nginx_stopped_at = monotonic_us();
    lab.systemctl(&["stop", "nginx.service"]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || written
            .lock()
            .unwrap()
            .iter()
            .any(|(k, _)| *k == "intent")),
        "the intent was never written"
    );
    let durable_at = written
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| *k == "intent")
        .unwrap()
        .1;
    assert!(
        durable_at >= crashed_at + STALL.as_micros() as u64,
        "the intent did not stall"
    );
    assert!(wait_until(Duration::from_secs(15), || unit_state(
        lab,
        "php8.2-fpm.service",
        "ActiveState"
    ) == "active"));
    lab.systemctl(&["start", "nginx.service"]).unwrap();

    // The restart began after the intent was durable.
    let restart_began: u64 =
        unit_state(lab, "php8.2-fpm.service", "InactiveExitTimestampMonotonic")
            .parse()
            .unwrap();
    assert!(
        restart_began >= durable_at,
        "the restart began {} µs before its intent was on disk",
        durable_at - restart_began
    );
    // The watchdog and the probe went on during the stall.
    let in_stall = |times: &[u64]| {
        times
            .iter()
            .filter(|&&t| t > crashed_at && t < durable_at)
            .count()
    };
    let stall_pings = in_stall(&ping_times.lock().unwrap());
    let stall_probes = in_stall(&probes.lock().unwrap());
    assert!(
        stall_pings >= 10,
        "{stall_pings} watchdog pings in a 2 s stall (one per 100 ms expected)"
    );
    assert!(
        stall_probes >= 10,
        "{stall_probes} probes in a 2 s stall (one per 100 ms expected)"
    );
    // The D-Bus event was decided while the intent was still being written: the
    // dry-run decision about nginx is dated inside the stall (its record waited in the
    // queue behind the intent, so its write time is later; its decision time is not).
    let records = salve::audit::read_journal(&journal_path).unwrap().records;
    let nginx = records
        .iter()
        .find(|r| r.policy == "nginx-watch" && r.entry.dry_run())
        .unwrap_or_else(|| panic!("no decision about nginx: {records:#?}"));
    let intent = records
        .iter()
        .find(|r| matches!(r.entry, Entry::Intent { .. }))
        .unwrap();
    let decided_after_intent = nginx.ts.duration_since(intent.ts).unwrap_or_default();
    assert!(
        decided_after_intent < STALL - Duration::from_millis(500),
        "nginx's stop was decided {decided_after_intent:?} after the intent: the loop waited for the disk"
    );
    eprintln!(
        "during a {STALL:?} stall: {stall_pings} watchdog pings, {stall_probes} probes, nginx decided {decided_after_intent:?} after the intent (stopped {} ms after the crash), restart began {} ms after the intent was durable",
        (nginx_stopped_at - crashed_at) / 1000,
        (restart_began - durable_at) / 1000
    );

    // SIGTERM to this process reaches the agent's handler: it finishes and returns.
    // SAFETY: kill(2) on our own pid.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    let stopped = agent.join().unwrap();
    std::env::remove_var("NOTIFY_SOCKET");
    std::env::remove_var("WATCHDOG_USEC");
    assert!(stopped.is_ok(), "{stopped:?}");
}
