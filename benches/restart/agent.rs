//! The restarter under test: the real `salve agent` binary, on the lab's bus, with
//! 100 policies loaded, and its idle footprint read from /proc.

use crate::owned::Owned;
use anyhow::{bail, Context, Result};
use salve::audit::{read_journal, Entry, OutcomeResult};
use salve::lab::PHP_FPM_UNIT;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const POLICIES: usize = 100;
/// Of the filler policies, this many also probe HTTP and follow a log file, so the idle
/// figure includes the probe loops and log followers a real set of policies runs.
pub const PROBES_AND_FOLLOWERS: usize = 20;
const START_LIMIT: Duration = Duration::from_secs(15);

/// The policy under test, as `policies/php-fpm-down.yaml` minus what would slow or stop
/// a benchmark: no HTTP trigger or verify (the unit signal is the fast path measured
/// here), and a guard that never blocks 20 crashes in half a minute.
const POOL_POLICY: &str = "apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: php-fpm-down
spec:
  target:
    unit: php8.2-fpm.service
  trigger:
    - unit: { activeState: [failed, inactive] }
  actions:
    - resetFailed: {}
    - restart: {}
  guard: { cooldown: 0s, maxAttempts: 1000, window: 1h, backoff: 1.0 }
";

/// The default storm cap (30 attempts a minute) would hold back a crash a second. The
/// metrics listener (on this benchmark's own port) and the status page are on, so the
/// idle figures include them.
const CONFIG: &str =
    "maxActionsPerMinute: 10000\nmetrics: { listen: \"127.0.0.1:18521\", statusPage: true }\n";
/// Where CONFIG's listener is.
const METRICS_PORT: u16 = 18521;
/// While idling, `/metrics` is read this often, as Prometheus does by default, and the
/// status page as often as a browser left open on it reloads it.
const SCRAPE_EVERY: Duration = Duration::from_secs(15);
const PAGE_EVERY: Duration = Duration::from_secs(10);

/// Filler policy N: a unit of its own (absent from the lab, so `inactive`, never
/// `failed`: the trigger never holds), watched over D-Bus like any other target. The
/// first `PROBES_AND_FOLLOWERS` also probe `probe_url` every second (failing only on a
/// 599, which nginx never sends) and follow a log file of their own (never matching).
fn filler(n: usize, probe_url: &str, logs: &Path) -> String {
    let extra = if n <= PROBES_AND_FOLLOWERS {
        format!(
            "    - http: {{ url: \"{probe_url}\", status: [599], interval: 1s, timeout: 1s }}\n    - log: {{ path: {}/site-{n:03}.log, pattern: 'salve-bench-never-matches', count: 1, within: 1m }}\n",
            logs.display()
        )
    } else {
        String::new()
    };
    format!(
        "apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: site-{n:03}-down
spec:
  target:
    unit: bench-site-{n:03}.service
  trigger:
    - unit: {{ activeState: [failed] }}
{extra}  actions:
    - resetFailed: {{}}
    - restart: {{}}
"
    )
}

pub struct Agent {
    process: Owned,
    log: PathBuf,
    journal: PathBuf,
}

pub struct Footprint {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub cpu_percent: f64,
    pub ticks: u64,
    pub ticks_per_second: u64,
    pub interval: Duration,
}

/// Writes the policies and config into `dir` and starts the agent on `bus`; returns
/// once it watches the units.
/// `probe_url` is what the probing fillers request: a path nginx answers itself (a
/// 404), so their probes cost salve a full HTTP exchange without taking PHP-FPM's
/// workers from the crash being measured.
pub fn start(dir: &Path, bus: &str, probe_url: &str) -> Result<Agent> {
    let policies = dir.join("policies");
    let logs = dir.join("logs");
    for d in [&policies, &logs] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    for n in 1..=PROBES_AND_FOLLOWERS {
        let log = logs.join(format!("site-{n:03}.log"));
        fs::write(&log, "").with_context(|| format!("cannot create {}", log.display()))?;
    }
    let mut files = vec![("000-php-fpm-down.yaml".to_string(), POOL_POLICY.to_string())];
    files.extend((1..POLICIES).map(|n| {
        (
            format!("{n:03}-site-down.yaml"),
            filler(n, probe_url, &logs),
        )
    }));
    for (name, text) in files {
        let path = policies.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let config = dir.join("config.yaml");
    fs::write(&config, CONFIG).with_context(|| format!("cannot write {}", config.display()))?;
    let (log, journal) = (dir.join("agent.log"), dir.join("journal.jsonl"));
    let out = fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out
        .try_clone()
        .context("cannot share the agent's log file")?;

    // Cargo builds the binary for benches and tells where: target/release/salve here.
    let binary = env!("CARGO_BIN_EXE_salve");
    let child = Command::new(binary)
        .arg("agent")
        .arg("--policies")
        .arg(&policies)
        .arg("--config")
        .arg(&config)
        .args(["--bus", bus, "--journal"])
        .arg(&journal)
        // The default level, whatever the caller's environment says: an agent logging
        // at debug would not be the agent measured.
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {binary}"))?;
    let mut agent = Agent {
        process: Owned::new("salve agent", child),
        log,
        journal,
    };
    let deadline = Instant::now() + START_LIMIT;
    while !agent.log_text().contains("watching systemd units") {
        agent
            .process
            .check_running()
            .with_context(|| format!("see {}", agent.log.display()))?;
        if Instant::now() >= deadline {
            bail!(
                "salve agent did not watch the lab's units within {START_LIMIT:?}; see {}",
                agent.log.display()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(agent)
}

impl Agent {
    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Attempts the journal holds on the pool: (intents, outcomes that were ok).
    pub fn attempts(&self) -> Result<(usize, usize)> {
        let read = read_journal(&self.journal)
            .with_context(|| format!("cannot read {}", self.journal.display()))?;
        let on_pool = || read.records.iter().filter(|r| r.target == PHP_FPM_UNIT);
        let intents = on_pool().filter(|r| r.entry.kind() == "intent").count();
        let ok = on_pool()
            .filter(|r| {
                matches!(
                    r.entry,
                    Entry::Outcome {
                        result: OutcomeResult::Ok,
                        ..
                    }
                )
            })
            .count();
        Ok((intents, ok))
    }

    /// CPU used over `interval` of doing nothing (utime + stime from /proc/PID/stat),
    /// and the resident set at its end (VmRSS).
    pub fn footprint(&mut self, interval: Duration) -> Result<Footprint> {
        let pid = self.process.pid();
        let ticks_per_second = clock_ticks()?;
        let (before, started) = (cpu_ticks(pid)?, Instant::now());
        let (mut scraped, mut paged) = (0u32, 0u32);
        while started.elapsed() < interval {
            let at = started.elapsed();
            if at >= SCRAPE_EVERY * scraped {
                get(METRICS_PORT, "/metrics")?;
                scraped += 1;
            }
            if at >= PAGE_EVERY * paged {
                get(METRICS_PORT, "/")?;
                paged += 1;
            }
            thread::sleep(Duration::from_millis(50).min(interval.saturating_sub(at)));
        }
        let (after, interval) = (cpu_ticks(pid)?, started.elapsed());
        self.process.check_running()?;
        let ticks = after.saturating_sub(before);
        let cpu_seconds = ticks as f64 / ticks_per_second as f64;
        Ok(Footprint {
            rss_bytes: status_kib(pid, "VmRSS:")? * 1024,
            peak_rss_bytes: status_kib(pid, "VmHWM:")? * 1024,
            cpu_percent: 100.0 * cpu_seconds / interval.as_secs_f64(),
            ticks,
            ticks_per_second,
            interval,
        })
    }

    pub fn stop(mut self) {
        self.process.stop();
    }
}

/// One GET to the agent's listener, which must answer 200.
fn get(port: u16, path: &str) -> Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("the agent's metrics listener on port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        bail!(
            "GET {path}: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    Ok(())
}

/// utime + stime (fields 14 and 15 of /proc/PID/stat, counted after the `(comm)`).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|end| stat[end + 1..].split_whitespace().collect())
        .unwrap_or_default();
    // After the comm, field 3 (state) is index 0, so utime (14) is 11, stime (15) 12.
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (field(11), field(12)) {
        (Some(user), Some(system)) => Ok(user + system),
        _ => bail!("{path} has no utime/stime: {stat:?}"),
    }
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("{path} has no {key} line"))
}

/// The kernel's USER_HZ, the unit of utime/stime (100 on Linux almost everywhere).
fn clock_ticks() -> Result<u64> {
    let output = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("cannot run `getconf CLK_TCK`")?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("`getconf CLK_TCK` printed no number")
}
