//! Load-balancer benchmark (`make bench-lb`, root): in one lab of two nodes behind
//! Debian's haproxy, 200 requests/s through haproxy (half GET, half POST, 1,000 of
//! each per run) while node b's PHP-FPM pool is SIGKILLed, for (i) haproxy alone, the
//! pool left dead, with four settings from a plain TCP check to the best it has
//! (`option httpchk` every 500 ms, down after 2, `retry-on all-retryable-errors`,
//! `option redispatch`), and (ii) `salve agent` draining node b on systemd's D-Bus
//! push, healing it and ramping its weight back, in front of a plain HTTP check and
//! the best one. Client-visible failures (5xx or no answer), GET and POST
//! apart, and the span from the first failure to the last, each next to its target.

// Shared with bench-restart, which also signals monit through its grandchild.
#[allow(dead_code)]
#[path = "../common/owned.rs"]
mod owned;

use anyhow::{bail, Context, Result};
use owned::Owned;
use salve::lab::{
    check_packages, check_root, failures, HaproxyChecks, Lab, LabConfig, LabGuard, LbKind, Load,
    Node, Sample, Scenario, Topology, LB_BACKEND, NODE_WEIGHT,
};
use salve::loadbalancer::haproxy::RuntimeApi;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// This benchmark's own port, apart from the lab tests' (18480), the e2e tests'
/// (18490), bench-restart's (18520) and the demo's (8480); the lab takes four more.
const PORT: u16 = 18530;
const RATE: u32 = 200;
/// 1,000 GET and 1,000 POST at 200 requests/s.
const RUN: Duration = Duration::from_secs(10);
/// When in the run the pool is killed.
const CRASH_AT: Duration = Duration::from_secs(3);
const RUNS: usize = 2;
const RAMP_STEPS: u32 = 2;
const RAMP_INTERVAL: Duration = Duration::from_millis(300);
/// The targets for salve: the POSTs already inside the dead pool at the crash
/// (about two at 200/s with a few ms each), no GET, and a short span.
const TARGET_POST: usize = 2;
const TARGET_SPAN: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!("load-balancer benchmark: not run without --bench (run `make bench-lb` as root)");
        return ExitCode::SUCCESS;
    }
    if check_root().is_err() {
        eprintln!(
            "the load-balancer benchmark needs root: it boots the lab. Run: sudo make bench-lb"
        );
        return ExitCode::from(1);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load-balancer benchmark failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// One run's figures.
struct Run {
    gets: usize,
    posts: usize,
    span: Duration,
    requests: usize,
    /// From the kill to haproxy showing node b drained (salve only).
    drained_after: Option<Duration>,
    /// From node b answering 200 again to its full weight back (salve only).
    weight_back_after_heal: Option<Duration>,
}

fn run() -> Result<()> {
    check_packages()?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-lb");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let config = LabConfig {
        dir: dir.join("lab"),
        http_port: PORT,
        topology: Topology::Fleet(LbKind::Haproxy),
    };
    let lab = LabGuard::new(Lab::up_with_progress(&config, &mut |step| {
        eprintln!("lab: {step}")
    })?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let socket = lab.haproxy_socket().context("the lab has haproxy")?;
    let api = RuntimeApi::new(&socket, Duration::from_secs(5));

    let reference = [
        HaproxyChecks {
            http: false,
            inter: Duration::from_secs(2),
            fall: 3,
            retry_on_errors: false,
        },
        HaproxyChecks {
            http: true,
            inter: Duration::from_secs(2),
            fall: 3,
            retry_on_errors: false,
        },
        HaproxyChecks {
            http: true,
            inter: Duration::from_millis(500),
            fall: 2,
            retry_on_errors: false,
        },
        HaproxyChecks::BEST,
    ];
    let mut rows: Vec<(String, Vec<Run>)> = Vec::new();
    for checks in reference {
        lab.set_haproxy_checks(checks)?;
        let mut runs = Vec::new();
        for n in 1..=RUNS {
            eprintln!("(i) haproxy alone, {checks}: run {n} of {RUNS}");
            runs.push(measure(&lab, &socket, false)?);
            // Node b back, and up again in haproxy's eyes, before the next run.
            let out = lab.systemctl(&["restart", Node::B.unit()])?;
            if !out.status.success() {
                bail!("cannot restart {}", Node::B.unit());
            }
            wait_up(&runtime, &api)?;
        }
        rows.push((format!("haproxy alone, {checks}"), runs));
    }
    let mut agent = start_agent(&dir, &lab, &socket)?;
    // salve with a plain health check, and with the best one.
    for checks in [reference[1], HaproxyChecks::BEST] {
        lab.set_haproxy_checks(checks)?;
        let mut runs = Vec::new();
        for n in 1..=RUNS {
            eprintln!("(ii) salve draining on the D-Bus push, haproxy {checks}: run {n} of {RUNS}");
            runs.push(measure(&lab, &socket, true)?);
            agent.check_running()?;
            wait_up(&runtime, &api)?;
        }
        rows.push((format!("salve drain, haproxy {checks}"), runs));
    }
    agent.stop();
    drop(lab);
    // Every salve run must have drained node b: a drain that failed would still heal
    // the pool, and the rows would measure a restart, not a drain.
    let journal = salve::audit::read_journal(&dir.join("journal.jsonl"))?;
    let drained = journal
        .records
        .iter()
        .filter(|r| match &r.entry {
            salve::audit::Entry::Outcome { steps, .. } => steps
                .first()
                .is_some_and(|s| s.starts_with("drain: drained ")),
            _ => false,
        })
        .count();
    report(&rows);
    println!(
        "salve's journal: {drained} attempts drained node b (of {} runs)",
        2 * RUNS
    );
    if drained < 2 * RUNS {
        bail!(
            "salve drained node b in {drained} of {} runs: see {}",
            2 * RUNS,
            dir.join("agent.log").display()
        );
    }
    Ok(())
}

/// One run: the load through haproxy, node b's pool killed at `CRASH_AT`, and (with
/// salve) haproxy's view of node b and node b's own answer watched every 5 ms.
fn measure(lab: &Lab, socket: &Path, salve: bool) -> Result<Run> {
    let load = Load::start(lab.lb_port().context("a load balancer")?, RATE);
    thread::sleep(CRASH_AT);
    let done = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Watch>> = Arc::default();
    let watcher = {
        let (done, seen) = (Arc::clone(&done), Arc::clone(&seen));
        let (socket, port) = (socket.to_path_buf(), lab.node_port(Node::B));
        thread::spawn(move || watch(&socket, port, &done, &seen))
    };
    let crashed = Instant::now();
    lab.break_node(Scenario::Crash, Node::B)?;
    thread::sleep(RUN.saturating_sub(CRASH_AT));
    done.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    let samples: Vec<Sample> = load.finish();
    let (gets, posts, span) = failures(&samples);
    let watch = seen.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Run {
        gets,
        posts,
        span,
        requests: samples.len(),
        drained_after: salve
            .then(|| {
                watch
                    .drained
                    .map(|at| at.saturating_duration_since(crashed))
            })
            .flatten(),
        weight_back_after_heal: match (salve, watch.healed, watch.restored) {
            (true, Some(healed), Some(restored)) => {
                Some(restored.saturating_duration_since(healed))
            }
            _ => None,
        },
    })
}

#[derive(Default)]
struct Watch {
    drained: Option<Instant>,
    /// Node b's first 200 after it was drained.
    healed: Option<Instant>,
    /// Node b ready at its full weight again after it was drained.
    restored: Option<Instant>,
}

fn watch(socket: &Path, port: u16, done: &AtomicBool, seen: &Mutex<Watch>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let api = RuntimeApi::new(socket, Duration::from_secs(2));
    while !done.load(Ordering::SeqCst) {
        let state = runtime
            .block_on(api.server(LB_BACKEND, Node::B.server()))
            .ok();
        let now = Instant::now();
        let mut w = seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = state {
            let drained = state.admin & 0x08 != 0;
            if drained && w.drained.is_none() {
                w.drained = Some(now);
            }
            if w.drained.is_some()
                && w.restored.is_none()
                && !drained
                && state.weight == NODE_WEIGHT
            {
                w.restored = Some(now);
            }
        }
        if w.drained.is_some() && w.healed.is_none() {
            drop(w);
            if answers_200(port) {
                seen.lock().unwrap_or_else(|e| e.into_inner()).healed = Some(Instant::now());
            }
        } else {
            drop(w);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Whether node b's own nginx site answers ping.php with 200 now.
fn answers_200(port: u16) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /ping.php HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = String::new();
    let _ = BufReader::new(stream).read_line(&mut head);
    head.split_whitespace().nth(1) == Some("200")
}

/// haproxy sees node b up, ready, at its full weight.
fn wait_up(runtime: &tokio::runtime::Runtime, api: &RuntimeApi) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(b) = runtime.block_on(api.server(LB_BACKEND, Node::B.server())) {
            if b.serving() && b.weight == NODE_WEIGHT {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("node b is not up at haproxy 30 s after its pool came back");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn start_agent(dir: &Path, lab: &Lab, socket: &Path) -> Result<Owned> {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies)?;
    let policy = format!(
        "apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: node-b-pool
spec:
  target:
    unit: {unit}
  trigger:
    - unit: {{ activeState: [failed] }}
  actions:
    - drain:
        haproxy: {{ socket: {socket}, backend: {LB_BACKEND}, server: {server} }}
        ramp: {{ steps: {RAMP_STEPS}, interval: {ramp}ms }}
    - restart: {{}}
  verify:
    http: {{ url: \"http://127.0.0.1:{port}/ping.php\", status: [200], within: 15s }}
  guard: {{ cooldown: 0s, maxAttempts: 100, window: 1h, backoff: 1.0 }}
",
        unit = Node::B.unit(),
        server = Node::B.server(),
        socket = socket.display(),
        ramp = RAMP_INTERVAL.as_millis(),
        port = lab.node_port(Node::B),
    );
    std::fs::write(policies.join("node-b.yaml"), policy)?;
    let log = std::fs::File::create(dir.join("agent.log"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_salve"))
        .arg("agent")
        .arg("--policies")
        .arg(&policies)
        .args(["--bus", &lab.bus_address(), "--journal"])
        .arg(dir.join("journal.jsonl"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start salve agent")?;
    let mut agent = Owned::new("salve agent", child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(dir.join("agent.log"))
        .unwrap_or_default()
        .contains("watching systemd units")
    {
        agent.check_running()?;
        if Instant::now() > deadline {
            bail!("the agent did not start watching within 15 s");
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(agent)
}

fn report(rows: &[(String, Vec<Run>)]) {
    println!();
    println!(
        "load-balancer benchmark: {RATE} requests/s through haproxy 2.6 in front of two nginx + php8.2-fpm nodes (half GET, half POST, {} s per run), node b's pool SIGKILLed {} s in; {RUNS} runs each",
        RUN.as_secs(),
        CRASH_AT.as_secs()
    );
    println!(
        "{:<100} {:>8} {:>9} {:>12} {:>9}",
        "", "GET 5xx", "POST 5xx", "errors span", "requests"
    );
    for (name, runs) in rows {
        for (i, r) in runs.iter().enumerate() {
            println!(
                "{:<100} {:>8} {:>9} {:>9} ms {:>9}",
                format!("{name}, run {}", i + 1),
                r.gets,
                r.posts,
                r.span.as_millis(),
                r.requests
            );
        }
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let ramp = RAMP_INTERVAL * RAMP_STEPS;
    for (name, runs) in rows.iter().filter(|(name, _)| name.starts_with("salve")) {
        let worst = |f: &dyn Fn(&Run) -> u128| runs.iter().map(f).max().unwrap_or(0);
        let (gets, posts, span) = (
            worst(&|r| r.gets as u128),
            worst(&|r| r.posts as u128),
            worst(&|r| r.span.as_millis()),
        );
        println!();
        println!(
            "{name}, worst run: GET 5xx {gets} (target 0: {}), POST 5xx {posts} (target <= {TARGET_POST}, the requests in flight at the crash: {}), span {span} ms (target <= {} ms: {})",
            verdict(gets == 0),
            verdict(posts <= TARGET_POST as u128),
            TARGET_SPAN.as_millis(),
            verdict(span <= TARGET_SPAN.as_millis()),
        );
        for (i, r) in runs.iter().enumerate() {
            let show = |d: Option<Duration>| {
                d.map_or("not seen".to_string(), |d| format!("{} ms", d.as_millis()))
            };
            println!(
                "  run {}: node b drained {} after the kill (systemctl kill included); full weight back {} after it answered again (target <= the ramp, {} x {} ms = {} ms: {})",
                i + 1,
                show(r.drained_after),
                show(r.weight_back_after_heal),
                RAMP_STEPS,
                RAMP_INTERVAL.as_millis(),
                ramp.as_millis(),
                verdict(r.weight_back_after_heal.is_some_and(|d| d <= ramp)),
            );
        }
    }
}
