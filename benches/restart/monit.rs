//! Monit as the restarter: Debian's monit, run inside the sandbox (its PID, mount and
//! cgroup namespaces: it must read the pool's pid file and PIDs as the sandbox sees
//! them, and its `systemctl` must reach the sandbox's systemd), with every file of its
//! own in the lab directory.

use crate::owned::{child_of, Owned};
use anyhow::{bail, Context, Result};
use salve::lab::{Lab, PHP_FPM_UNIT};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const MONIT: &str = "/usr/bin/monit";
/// The lab's php-fpm.conf `pid =`, under the sandbox's private /run.
const POOL_PID_FILE: &str = "/run/php/php8.2-fpm.pid";
/// With -v, monit logs this once per cycle while the pool runs: the cycle's heartbeat.
const HEARTBEAT: &str = "'php-fpm' process is running with pid";
/// Cycles timed to verify the period.
pub const CYCLES: usize = 5;
const START_LIMIT: Duration = Duration::from_secs(15);

pub struct Monit {
    process: Owned,
    log: PathBuf,
}

/// Writes monitrc and starts `monit -I` (foreground, so it is our process to stop)
/// through nsenter; returns once monit has checked the pool once.
pub fn start(lab: &Lab) -> Result<Monit> {
    let dir = lab.dir().join("monit");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (rc, log, out) = (
        dir.join("monitrc"),
        dir.join("monit.log"),
        dir.join("monit.out"),
    );
    let d = dir.display();
    // `set daemon 1`: the shortest cycle monit has. Without `restart program`, monit
    // runs `start program` for a process that does not exist.
    let text = format!(
        "set daemon 1\n\
         set idfile {d}/monit.id\n\
         set statefile {d}/monit.state\n\
         set pidfile {d}/monit.pid\n\
         set log {log}\n\
         check process php-fpm with pidfile {POOL_PID_FILE}\n\
         \x20 start program = \"/bin/systemctl start {PHP_FPM_UNIT}\"\n\
         \x20 stop program = \"/bin/systemctl stop {PHP_FPM_UNIT}\"\n",
        log = log.display()
    );
    let _ = fs::remove_file(&rc);
    let _ = fs::remove_file(&log);
    // monit refuses a control file that others can read: created 0600, never wider.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&rc)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", rc.display()))?;
    let output = fs::File::create(&out).with_context(|| format!("cannot create {d}"))?;
    let errors = output
        .try_clone()
        .context("cannot share monit's output file")?;
    let child = Command::new("/usr/bin/nsenter")
        .args(["-t", &lab.pid().to_string(), "-a", MONIT, "-I", "-v", "-c"])
        .arg(&rc)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
        .context("cannot start monit through /usr/bin/nsenter")?;
    let mut process = Owned::new("monit", child);
    // nsenter forks to enter the PID namespace: monit is its child, and the process
    // to signal.
    let Some(monit) = child_of(process.pid(), Duration::from_secs(5)) else {
        process.check_running().context("see the output of monit")?;
        bail!("nsenter (pid {}) started no monit", process.pid());
    };
    process.signal_grandchild(monit);
    let monit = Monit { process, log };
    let deadline = Instant::now() + START_LIMIT;
    while monit.heartbeats() == 0 {
        if Instant::now() >= deadline {
            bail!(
                "monit did not check the pool within {START_LIMIT:?}; see {} and {}",
                monit.log.display(),
                out.display()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(monit)
}

impl Monit {
    fn heartbeats(&self) -> usize {
        fs::read_to_string(&self.log)
            .map(|text| text.matches(HEARTBEAT).count())
            .unwrap_or(0)
    }

    /// monit's actual cycle: the time between heartbeats over [`CYCLES`] cycles, timed
    /// from the first new heartbeat (so from a cycle boundary) to the last.
    pub fn cycle(&mut self) -> Result<Duration> {
        let limit = Instant::now() + Duration::from_secs(5 * CYCLES as u64);
        let base = self.heartbeats();
        let first = self.wait_heartbeats(base + 1, limit)?;
        let last = self.wait_heartbeats(base + 1 + CYCLES, limit)?;
        Ok((last - first) / CYCLES as u32)
    }

    fn wait_heartbeats(&mut self, count: usize, limit: Instant) -> Result<Instant> {
        while self.heartbeats() < count {
            self.process.check_running()?;
            if Instant::now() >= limit {
                bail!(
                    "monit stopped logging its checks of the pool; see {}",
                    self.log.display()
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
        Ok(Instant::now())
    }

    pub fn pid(&self) -> u32 {
        self.process.target()
    }

    pub fn stop(mut self) {
        self.process.stop();
    }
}
