//! Booting systemd as PID 1 of a private PID namespace, running commands inside it,
//! and taking it down again.

use super::cgroup;
use super::exec;
use super::files::Layout;
use super::record::{Process, Record};
use super::LabError;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const NSENTER: &str = "/usr/bin/nsenter";
/// Plain, untranslated, unpaged systemctl output: the lab parses some of it. And no
/// SysV compatibility: `systemctl enable` would otherwise run update-rc.d for units
/// that also have an /etc/init.d script (boot.sh hides those scripts as well).
const SYSTEMCTL_ENV: &[(&str, &str)] = &[
    ("SYSTEMCTL_SKIP_SYSV", "1"),
    ("SYSTEMD_PAGER", "cat"),
    ("SYSTEMD_COLORS", "0"),
    ("LC_ALL", "C"),
];
/// `systemctl exit` stops nginx (SIGQUIT, up to its 5 s stop timeout) and the pool
/// (up to 10 s) before systemd leaves; past this, SIGKILL.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// On a host whose PID 1 is systemd, two managers must not share one cgroup subtree:
/// the sandbox then starts in a delegated scope of its own.
pub fn host_runs_systemd() -> bool {
    fs::read_to_string("/proc/1/comm").is_ok_and(|comm| comm.trim() == "systemd")
}

/// Starts `setsid [systemd-run --scope …] unshare … boot.sh`, detached from our session
/// and with its console in boot.log. The returned child is the `unshare` process.
pub fn spawn(layout: &Layout, scoped: bool) -> Result<Child, LabError> {
    let log_path = layout.boot_log();
    let log = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&log_path)
        .map_err(|e| LabError::io("create", &log_path, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| LabError::io("open", &log_path, e))?;
    let mut args: Vec<String> = Vec::new();
    if scoped {
        args.extend(
            [
                "systemd-run",
                "--scope",
                "-p",
                "Delegate=yes",
                "--quiet",
                "--collect",
                "--",
            ]
            .map(String::from),
        );
    }
    args.extend(
        [
            "unshare",
            "--pid",
            "--fork",
            // If unshare dies, its child (the sandbox's PID 1, and so the whole
            // namespace) is killed with it: no orphaned sandbox.
            "--kill-child",
            "--mount",
            "--mount-proc",
            "--cgroup",
            "--uts",
            "--ipc",
        ]
        .map(String::from),
    );
    args.push(layout.boot_script().to_string_lossy().into_owned());
    // `setsid` called from a process that is not a group leader (any child we spawn)
    // execs in place, so the PID we get is unshare's.
    Command::new("/usr/bin/setsid")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|cause| LabError::Spawn {
            command: exec::display("setsid", &args),
            cause,
        })
}

/// Finds the sandbox's PID 1 (unshare's only child) and waits until it is systemd.
pub fn find_systemd(
    launcher: &mut Child,
    layout: &Layout,
    timeout: Duration,
) -> Result<Process, LabError> {
    let deadline = Instant::now() + timeout;
    let pid = launcher.id();
    loop {
        if let Ok(Some(status)) = launcher.try_wait() {
            return Err(LabError::SandboxExited {
                status: status.to_string(),
                log: layout.boot_log(),
            });
        }
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(child) = children.split_whitespace().find_map(|c| c.parse().ok()) {
            let comm = fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.trim() == "systemd" {
                if let Some(process) = Process::current(child) {
                    return Ok(process);
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(LabError::BootTimeout {
                what: "start systemd",
                after: timeout,
                log: layout.boot_log(),
            });
        }
        thread::sleep(POLL);
    }
}

/// Waits for `systemctl is-system-running --wait` to settle; returns its state
/// (`running`, or `degraded` when some unit failed).
pub fn wait_running(
    systemd: &Process,
    layout: &Layout,
    timeout: Duration,
) -> Result<String, LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        if !systemd.is_alive() {
            return Err(LabError::SandboxExited {
                status: "systemd exited".into(),
                log: layout.boot_log(),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let output = match systemctl(systemd.pid, &["is-system-running", "--wait"], left) {
            Err(LabError::CommandTimeout { .. }) => {
                return Err(LabError::BootTimeout {
                    what: "finish booting",
                    after: timeout,
                    log: layout.boot_log(),
                })
            }
            other => other?,
        };
        let state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        match state.as_str() {
            "running" | "degraded" => return Ok(state),
            // Before systemd has opened its private socket, systemctl cannot connect
            // and prints nothing (or "offline"): try again.
            "" | "offline" | "initializing" | "starting" => {}
            _ => {
                return Err(LabError::SystemNotRunning {
                    state,
                    log: layout.boot_log(),
                })
            }
        }
        if Instant::now() >= deadline {
            return Err(LabError::BootTimeout {
                what: "finish booting",
                after: timeout,
                log: layout.boot_log(),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `nsenter -t PID -a systemctl ARGS…`: systemctl run in every namespace of the
/// sandbox, talking to the sandbox's systemd.
pub fn systemctl(pid: u32, args: &[&str], timeout: Duration) -> Result<Output, LabError> {
    let pid = pid.to_string();
    let mut argv = vec!["-t", pid.as_str(), "-a", "systemctl"];
    argv.extend_from_slice(args);
    exec::run(NSENTER, &argv, SYSTEMCTL_ENV, timeout)
}

/// Ends the sandbox: `systemctl exit` inside, then SIGKILL to its PID 1 if it is still
/// there, then reaps the launcher and removes the cgroups the sandbox left.
pub fn teardown(record: &Record, launcher: Option<&mut Child>) -> Result<(), LabError> {
    let systemd = record.systemd;
    if systemd.is_alive() {
        if let Err(e) = systemctl(systemd.pid, &["exit"], Duration::from_secs(10)) {
            tracing::warn!(pid = systemd.pid, error = %e, "systemctl exit failed; killing the sandbox");
        }
        if !wait_gone(&systemd, EXIT_TIMEOUT) {
            tracing::warn!(
                pid = systemd.pid,
                "sandbox still running after systemctl exit; sending SIGKILL"
            );
            // PID 1 of a PID namespace: the kernel kills every process in it too.
            kill(&systemd);
            if !wait_gone(&systemd, KILL_TIMEOUT) {
                return Err(LabError::Unkillable {
                    pid: systemd.pid,
                    after: KILL_TIMEOUT,
                });
            }
        }
    }
    match launcher {
        Some(child) => reap(child),
        None => {
            // Started by another salve process: unshare leaves as soon as its child
            // is gone. Only if it lingers is it killed, after checking it is still
            // the process we recorded.
            if !wait_gone(&record.launcher, KILL_TIMEOUT) {
                kill(&record.launcher);
                wait_gone(&record.launcher, KILL_TIMEOUT);
            }
        }
    }
    if !record.scoped {
        let stuck = cgroup::remove_leftovers(&record.cgroups, KILL_TIMEOUT);
        if !stuck.is_empty() {
            tracing::warn!(cgroups = ?stuck, "could not remove cgroups the sandbox created");
        }
    }
    Ok(())
}

fn reap(child: &mut Child) {
    let deadline = Instant::now() + KILL_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) | Err(_) = child.try_wait() {
            return;
        }
        thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL by PID, only while that PID is still the process we recorded.
fn kill(process: &Process) {
    if !process.is_alive() {
        return;
    }
    let pid = process.pid.to_string();
    if let Err(e) = exec::run_ok("/bin/kill", &["-KILL", pid.as_str()], &[], KILL_TIMEOUT) {
        tracing::warn!(pid = process.pid, error = %e, "kill failed");
    }
}

fn wait_gone(process: &Process, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process.is_alive() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
    true
}
