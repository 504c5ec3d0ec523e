//! `/metrics` over 1,000 targets: each scrape is a new HTTP connection to the agent's
//! listener (`salve::web`), which asks a loop owning a real engine of 1,000 policies
//! (one unit each, a third of their circuits open, a tenth paused) for its status and
//! encodes every family. Latency p50/p99/max next to the target (p99 ≤ 5 ms), and the
//! same encode without HTTP and the loop as the reference, measured in the same run.
//!
//! Run with `make bench`.

use salve::engine::{
    Decision, Engine, Event, Limits, Outcome, OutcomeResult, PauseScope, SkipReason, Timestamp,
    UnitObservation, Verdict,
};
use salve::metrics::Metrics;
use salve::policy::{parse_file, ActiveState};
use salve::web::{Ask, WebConfig};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TARGETS: usize = 1_000;
const SCRAPES: usize = 2_000;
const TARGET_P99: Duration = Duration::from_millis(5);

fn engine() -> Engine {
    let mut all = Vec::with_capacity(TARGETS);
    for i in 0..TARGETS {
        let yaml = format!(
            "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: site-{i:04}-down }}\nspec:\n  target: {{ unit: site-{i:04}.service }}\n  trigger:\n    - unit: {{ activeState: [failed] }}\n  actions:\n    - resetFailed: {{}}\n    - restart: {{}}\n  guard: {{ cooldown: 1s, maxAttempts: 1, window: 1h }}\n"
        );
        let (found, errors) = parse_file(Path::new("bench.yaml"), &yaml);
        assert!(errors.is_empty(), "{errors:?}");
        all.extend(found);
    }
    Engine::new(
        all,
        Limits {
            max_actions_per_minute: 100_000,
            max_concurrent: 100_000,
            dry_run: false,
        },
    )
}

/// Every third unit fails once and its one attempt fails: its circuit opens. Every
/// tenth policy is paused. The metrics count what the engine decided.
fn drive(engine: &mut Engine, metrics: &Metrics) -> Timestamp {
    let mut out: Vec<Decision> = Vec::new();
    let now = Timestamp::from_millis(1_000);
    for i in (0..TARGETS).step_by(3) {
        out.clear();
        let failed = Event::Unit(UnitObservation {
            name: format!("site-{i:04}.service"),
            active_state: Some(ActiveState::Failed),
            sub_state: None,
            unit_file_state: None,
            result: None,
            n_restarts: None,
        });
        engine.handle(now, &failed, &mut out);
        for decision in out.clone() {
            if let Verdict::Act { attempt_id, .. } = decision.verdict {
                let name = engine.policy(decision.policy).name().to_string();
                let outcome = Outcome {
                    policy: name,
                    attempt_id: Some(attempt_id),
                    result: OutcomeResult::Failed,
                    verified: None,
                    detail: None,
                };
                let policy = engine.policy(decision.policy).into_owned();
                metrics.attempt_finished(&policy, &outcome, Duration::from_millis(40));
                metrics.skipped(policy.name(), SkipReason::Cooldown);
                metrics.escalated(policy.name());
                let mut after = Vec::new();
                engine.handle(now, &Event::Outcome(outcome), &mut after);
            }
        }
    }
    for i in (0..TARGETS).step_by(10) {
        let scope = PauseScope::Policy(format!("site-{i:04}-down"));
        let until = Timestamp::from_millis(3_600_000);
        let _ = engine.pause(now, scope, until, &mut out);
    }
    now
}

fn scrape(address: std::net::SocketAddr) -> usize {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = Vec::with_capacity(512 * 1024);
    stream.read_to_end(&mut body).expect("answer");
    assert!(
        body.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&body[..200.min(body.len())])
    );
    body.len()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let scrapes = if bench { SCRAPES } else { 20 };
    let metrics = Arc::new(Metrics::new());
    let mut engine = engine();
    let now = drive(&mut engine, &metrics);
    let status = engine.status(now);
    let open = status
        .iter()
        .filter(|s| s.circuit_open_until.is_some())
        .count();
    let paused = status.iter().filter(|s| s.paused_until.is_some()).count();
    assert!(open > 300 && paused >= 100, "{open} open, {paused} paused");

    // The reference: the encode alone, as the loop's answer would feed it.
    let mut alone = Vec::with_capacity(scrapes);
    let mut size = 0;
    for _ in 0..scrapes {
        let started = Instant::now();
        let status = engine.status(now);
        size = metrics.encode(&status, now).len();
        alone.push(started.elapsed());
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = WebConfig {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        status_page: false,
    };
    let mut listening = runtime
        .block_on(salve::web::listen(&config, Arc::clone(&metrics), None))
        .expect("listen")
        .expect("a listener");
    let address = listening.address;
    // The loop: owns the engine and answers the listener's asks, as the agent's does.
    let served = std::thread::spawn(move || {
        runtime.block_on(async move {
            while let Some(ask) = listening.asks.recv().await {
                match ask {
                    Ask::Status(reply) => {
                        let _ = reply.send((engine.status(now), now));
                    }
                    Ask::Report(_) | Ask::Ping(_) => {}
                }
            }
        })
    });
    for _ in 0..scrapes.min(50) {
        scrape(address); // warm-up
    }
    let mut over_http = Vec::with_capacity(scrapes);
    let mut bytes = 0;
    for _ in 0..scrapes {
        let started = Instant::now();
        bytes = scrape(address);
        over_http.push(started.elapsed());
    }
    drop(served);
    if !bench {
        println!(
            "scrape benchmark: smoke run ok ({bytes} bytes a scrape; use `make bench` for figures)"
        );
        return;
    }
    alone.sort_unstable();
    over_http.sort_unstable();
    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
    let p99 = percentile(&over_http, 0.99);
    println!("salve /metrics benchmark: {TARGETS} targets ({open} circuits open, {paused} paused), {scrapes} scrapes, a new connection each");
    println!("{:<44} {:>8} {:>8} {:>8}", "", "p50 ms", "p99 ms", "max ms");
    println!(
        "{:<44} {:>8} {:>8} {:>8}  target p99 ≤ {} ms: {}",
        "GET /metrics (HTTP, the loop's status, encode)",
        ms(percentile(&over_http, 0.5)),
        ms(p99),
        ms(*over_http.last().expect("scrapes")),
        TARGET_P99.as_millis(),
        if p99 <= TARGET_P99 { "PASS" } else { "MISSED" }
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8}  reference: the same status and encode, no HTTP",
        "engine status + encode alone",
        ms(percentile(&alone, 0.5)),
        ms(percentile(&alone, 0.99)),
        ms(*alone.last().expect("scrapes")),
    );
    println!("scrape size: {size} bytes of text ({bytes} with the HTTP head)");
}
