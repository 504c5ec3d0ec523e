//! lab.json: what a running lab is, so `status`, `break` and `down` from another
//! process find it, and process identities so we never signal a recycled PID.

use super::cgroup::Baseline;
use super::LabError;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub dir: PathBuf,
    pub http_port: u16,
    /// One node, or two behind a load balancer (a record from before there was a
    /// choice is one node).
    #[serde(default)]
    pub topology: super::nodes::Topology,
    /// The sandbox's systemd, as the host sees it.
    pub systemd: Process,
    /// The `unshare` that forked it (its parent on the host).
    pub launcher: Process,
    /// Started inside `systemd-run --scope` (host PID 1 is systemd): the host's
    /// systemd owns and removes the cgroups, so no baseline is kept.
    pub scoped: bool,
    /// Child cgroups that existed beside the sandbox before it booted; any others left
    /// after it exits were created by it and are removed by `down`.
    pub cgroups: Vec<Baseline>,
}

/// A PID plus its start time (clock ticks since boot, /proc/PID/stat field 22): the
/// pair names one process for the machine's uptime, even after the PID is reused.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub start_ticks: u64,
}

impl Process {
    /// The process now running as `pid`, if any.
    pub fn current(pid: u32) -> Option<Process> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, after_comm) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
        if fields.first() == Some(&"Z") {
            return None; // exited, waiting for its parent to reap it
        }
        let start_ticks = fields.get(19)?.parse().ok()?;
        Some(Process { pid, start_ticks })
    }

    pub fn is_alive(&self) -> bool {
        Process::current(self.pid).as_ref() == Some(self)
    }
}

pub fn write(path: &Path, record: &Record) -> Result<(), LabError> {
    let json = serde_json::to_string_pretty(record).map_err(|cause| LabError::Record {
        path: path.to_path_buf(),
        cause,
    })?;
    super::files::write(path, &(json + "\n"), 0o644)
}

pub fn read(path: &Path) -> Result<Option<Record>, LabError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::io("read", path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|cause| LabError::Record {
            path: path.to_path_buf(),
            cause,
        })
}

pub fn remove(path: &Path) -> Result<(), LabError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io("remove", path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_different_start_time_is_not() {
        let me = Process::current(std::process::id()).unwrap();
        assert!(me.is_alive());
        let recycled = Process {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!recycled.is_alive());
    }
}
