//! Processes the benchmark starts (the agent, monit) and must stop again: by their own
//! PID, never by name, and also when the benchmark fails half-way.

use anyhow::{Context, Result};
use std::fs;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The agent waits up to 30 s for attempts in flight on SIGTERM; none are in flight
/// when the benchmark stops it, so a few seconds is plenty before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct Owned {
    name: &'static str,
    child: Child,
    /// The process to signal: the child itself, or (for monit started through nsenter,
    /// which forks into the sandbox's PID namespace) the child's own child.
    target: u32,
}

impl Owned {
    pub fn new(name: &'static str, child: Child) -> Owned {
        let target = child.id();
        Owned {
            name,
            child,
            target,
        }
    }

    /// Signals `pid` from now on instead of the child; `pid` must be the child's child.
    pub fn signal_grandchild(&mut self, pid: u32) {
        self.target = pid;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn target(&self) -> u32 {
        self.target
    }

    /// Whether the child still runs; an exit is reported with its status.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => anyhow::bail!("{} exited early ({status})", self.name),
            Err(e) => Err(e).with_context(|| format!("cannot wait for {}", self.name)),
        }
    }

    /// SIGTERM, a grace period, then SIGKILL; waits for the child either way.
    pub fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        self.signal("-TERM");
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} (pid {}) ignored SIGTERM for {STOP_GRACE:?}: SIGKILL",
            self.name, self.target
        );
        self.signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, signal: &str) {
        // The grandchild is signalled only while it is still the child's child, so a
        // reused PID is never hit.
        if self.target != self.child.id() && parent_of(self.target) != Some(self.child.id()) {
            return;
        }
        let _ = Command::new("kill")
            .args([signal, &self.target.to_string()])
            .stdin(Stdio::null())
            .status();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The parent PID from /proc/PID/stat (the field after the `(comm)`, which may itself
/// hold spaces and parentheses).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The first process whose parent is `parent`, waiting up to `within` for it.
pub fn child_of(parent: u32, within: Duration) -> Option<u32> {
    let deadline = Instant::now() + within;
    loop {
        let found = fs::read_dir("/proc").ok()?.find_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            (parent_of(pid) == Some(parent)).then_some(pid)
        });
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
