//! What can go wrong with the lab, phrased so an operator knows what to do next.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "salve lab needs root (it starts systemd in its own namespaces): run it with sudo, e.g. `sudo salve lab up`"
    )]
    NotRoot,

    #[error(
        "package {package} is missing ({binary} not found): run `sudo scripts/install-lab-packages.sh` (or apt-get install nginx php8.2-fpm)"
    )]
    MissingPackage {
        package: &'static str,
        binary: &'static str,
    },

    #[error(
        "lab directory {dir} is under /tmp or /var/tmp, which the sandbox replaces with an empty tmpfs: choose another with --dir (default /var/lib/salve-lab)"
    )]
    DirUnderTmp { dir: PathBuf },

    #[error(
        "lab directory {dir} must be an absolute path of letters, digits and / . _ - + (it is written unquoted into nginx, PHP-FPM and systemd configs): choose another with --dir"
    )]
    DirUnsafe { dir: PathBuf },

    #[error(
        "PHP-FPM workers run as www-data and cannot reach {dir}: {blocker} is not searchable by others; run `chmod o+x {blocker}` or choose another --dir"
    )]
    DirNotTraversable { dir: PathBuf, blocker: PathBuf },

    #[error(
        "lab directory {dir} is not safe for root to write into: {writable} can be changed by a user other than root (owner uid {uid}, mode {mode:o}); the lab runs nginx and systemd as root on these files, so every directory on the way must be root's alone: choose another --dir"
    )]
    DirNotRootOwned {
        dir: PathBuf,
        writable: PathBuf,
        uid: u32,
        mode: u32,
    },

    #[error(
        "port {port} on 127.0.0.1 is not free ({cause}): stop what listens there or choose another with --port"
    )]
    PortInUse { port: u16, cause: std::io::Error },

    #[error(
        "a lab of two nodes listens on --port {port} and the four ports after it: choose a port below 65532"
    )]
    PortsOutOfRange { port: u16 },

    #[error(
        "a lab is already running from {dir} (systemd pid {pid}): run `sudo salve lab down --dir {dir}` first"
    )]
    AlreadyRunning { dir: PathBuf, pid: u32 },

    #[error(
        "another systemd sandbox (pid {pids}) is running in this cgroup and would share unit cgroups with a new lab: take it down first (`sudo salve lab down --dir DIR`)"
    )]
    SandboxBusy { pids: String },

    #[error("no lab is running from {dir} (no lab.json there): start one with `sudo salve lab up --dir {dir}`")]
    NotRunning { dir: PathBuf },

    #[error(
        "the lab recorded in {dir}/lab.json (systemd pid {pid}) is no longer running: `sudo salve lab down --dir {dir}` clears the record, `sudo salve lab up --dir {dir}` starts a new lab"
    )]
    Gone { dir: PathBuf, pid: u32 },

    #[error(
        "cannot read the lab record {path}: {cause}; if no lab is running there, delete the file"
    )]
    Record {
        path: PathBuf,
        cause: serde_json::Error,
    },

    #[error("cannot {action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("cannot run `{command}`: {cause}")]
    Spawn {
        command: String,
        cause: std::io::Error,
    },

    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("`{command}` did not finish within {after:?} and was killed; stderr so far: {stderr}")]
    CommandTimeout {
        command: String,
        after: Duration,
        stderr: String,
    },

    #[error("the sandbox exited while booting ({status}); the output of boot.sh is in {log}")]
    SandboxExited { status: String, log: PathBuf },

    #[error("the sandbox did not {what} within {after:?}; the output of boot.sh is in {log}")]
    BootTimeout {
        what: &'static str,
        after: Duration,
        log: PathBuf,
    },

    #[error("systemd in the sandbox reports `{state}` instead of running; the output of boot.sh is in {log}")]
    SystemNotRunning { state: String, log: PathBuf },

    #[error(
        "{url} did not answer 200 within {after:?} (last: {last}); see {nginx_log} and {php_log}"
    )]
    NotHealthy {
        url: String,
        after: Duration,
        last: String,
        nginx_log: PathBuf,
        php_log: PathBuf,
    },

    #[error("the sandbox (systemd pid {pid}) was still alive {after:?} after SIGKILL")]
    Unkillable { pid: u32, after: Duration },

    #[error("scenario {scenario} did not take effect: {detail}")]
    ScenarioFailed {
        scenario: &'static str,
        detail: String,
    },

    #[error("unknown scenario `{0}`: expected one of crash, stop, disable, crashloop, hang")]
    UnknownScenario(String),

    #[error("invalid {what} `{value}`: {hint}")]
    InvalidSetting {
        what: &'static str,
        value: String,
        hint: &'static str,
    },
}

impl LabError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        cause: std::io::Error,
    ) -> Self {
        LabError::Io {
            action,
            path: path.into(),
            cause,
        }
    }
}
