//! One crash and its recovery as a client of nginx sees it, repeated, and the figures.

use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use salve::lab::{Lab, PHP_FPM_UNIT};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};
use zbus_systemd::systemd1::ManagerProxy;

pub const REPETITIONS: usize = 20;
/// Between two probes. 1 ms bounds the timing error to about a millisecond (plus one
/// request, ~0.3 ms here) while leaving the two cores to the restarters.
pub const POLL: Duration = Duration::from_millis(1);
/// nginx answers at once, with 200 or 502; a request that waits longer is queued on a
/// pool that is starting, and is simply retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Monit needs up to a cycle (1 s) plus a start; far past that, the restarter failed.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
const READY_LIMIT: Duration = Duration::from_secs(30);
const SIGKILL: i32 = 9;

/// Sends the crash over the lab's D-Bus: `KillUnit(unit, "all", SIGKILL)` is what
/// `systemctl kill --signal=SIGKILL` sends (every process in the unit's cgroup,
/// master and workers), but one round trip instead of forking nsenter + systemctl,
/// so the timestamp taken just before it is the moment of the kill.
pub struct Killer {
    runtime: tokio::runtime::Runtime,
    manager: ManagerProxy<'static>,
}

impl Killer {
    pub fn connect(address: &str) -> Result<Killer> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build a tokio runtime for the D-Bus client")?;
        let manager = runtime
            .block_on(async {
                let connection = zbus::connection::Builder::address(address).build().await?;
                ManagerProxy::new(&connection).await
            })
            .with_context(|| format!("cannot reach the lab's systemd on {address}"))?;
        Ok(Killer { runtime, manager })
    }

    fn kill_pool(&self) -> Result<()> {
        let call = self
            .manager
            .kill_unit(PHP_FPM_UNIT.into(), "all".into(), SIGKILL);
        self.runtime
            .block_on(call)
            .with_context(|| format!("KillUnit({PHP_FPM_UNIT}, all, SIGKILL) failed"))
    }
}

/// What the probes saw during the outages of one restarter.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    pub bad_gateway: u64,
    /// Any other status than 200 and 502.
    pub other_status: u64,
    /// Refused, reset, timed out: nginx itself never stopped, so expected to stay 0.
    pub no_answer: u64,
}

#[derive(Debug)]
pub struct Summary {
    /// Kill → first 200, one per crash, sorted.
    pub recoveries: Vec<Duration>,
    pub seen: Seen,
}

impl Summary {
    /// Nearest-rank percentile: the smallest sample with at least `q` of them ≤ it.
    pub fn percentile(&self, q: f64) -> Duration {
        let n = self.recoveries.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.recoveries[rank - 1]
    }

    pub fn max(&self) -> Duration {
        self.percentile(1.0)
    }
}

/// A random pause of 0.5–1.5 s between crashes.
pub fn pause(rng: &mut Rng) -> Duration {
    Duration::from_millis(500 + rng.next_u64() % 1001)
}

/// Crashes the pool [`REPETITIONS`] times with whatever restarter is in place.
pub fn run(lab: &Lab, killer: &Killer, rng: &mut Rng, label: &str) -> Result<Summary> {
    let mut recoveries = Vec::with_capacity(REPETITIONS);
    let mut seen = Seen::default();
    for round in 1..=REPETITIONS {
        wait_ready(lab)?;
        // Start rate limiting (5 starts per 10 s by default) is meant for crash loops,
        // not for a benchmark crashing the pool every second: reset its counter while
        // the pool is up, the same for every restarter, outside the timed part.
        lab.systemctl(&["reset-failed", PHP_FPM_UNIT])?;
        thread::sleep(pause(rng));
        let (took, this) = crash_once(lab, killer)
            .with_context(|| format!("{label}: crash {round} of {REPETITIONS}"))?;
        eprintln!(
            "  {label:<22} crash {round:>2}/{REPETITIONS}: first 200 after {:>7.1} ms ({} × 502)",
            ms(took),
            this.bad_gateway
        );
        recoveries.push(took);
        seen.bad_gateway += this.bad_gateway;
        seen.other_status += this.other_status;
        seen.no_answer += this.no_answer;
    }
    wait_ready(lab)?;
    recoveries.sort();
    Ok(Summary { recoveries, seen })
}

/// Kills the pool and polls ping.php until it answers 200 again, after the outage has
/// been seen at least once (a 200 before that would be a request the dying pool still
/// served, not a recovery).
fn crash_once(lab: &Lab, killer: &Killer) -> Result<(Duration, Seen)> {
    let port = lab.http_port();
    let mut seen = Seen::default();
    let mut outage_seen = false;
    let killed = Instant::now();
    killer.kill_pool()?;
    loop {
        let answer = status(port);
        let at = killed.elapsed();
        match answer {
            Ok(200) if outage_seen => return Ok((at, seen)),
            Ok(200) => {}
            Ok(502) => seen.bad_gateway += 1,
            Ok(_) => seen.other_status += 1,
            Err(_) => seen.no_answer += 1,
        }
        outage_seen |= !matches!(answer, Ok(200));
        if at > RECOVERY_LIMIT {
            bail!(
                "{} did not answer 200 within {RECOVERY_LIMIT:?} of the kill (outage seen: {outage_seen})",
                lab.ping_url()
            );
        }
        thread::sleep(POLL);
    }
}

/// Until the pool unit is active and ping.php answers 200: the state every crash
/// starts from.
fn wait_ready(lab: &Lab) -> Result<()> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let status = lab.status()?;
        if status.php_fpm.active_state == "active" && status.ping.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the lab did not come back within {READY_LIMIT:?}:\n{status}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One GET /ping.php on a fresh connection (a kept-alive one would hide nothing here,
/// but a fresh one is what a new visitor gets). HTTP/1.0 so nginx closes after the
/// answer.
fn status(port: u16) -> io::Result<u16> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, REQUEST_TIMEOUT)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    stream.write_all(b"GET /ping.php HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut answer = Vec::with_capacity(512);
    stream.read_to_end(&mut answer)?;
    // "HTTP/1.1 200 OK": the status is the second word of the first line.
    let first_line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    std::str::from_utf8(first_line)
        .ok()
        .and_then(|text| text.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer"))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
