//! The lab: a disposable systemd sandbox with nginx and PHP-FPM, for the demo and the
//! end-to-end tests.
//!
//! systemd 252 runs as PID 1 of a private PID namespace (README, "The lab"), with
//! private tmpfs mounts on /run, /tmp, /var/tmp and /var/log/journal, a private /dev,
//! host-facing boot units masked, /etc/init.d hidden, and its units only in
//! /run/units (boot.rs says why each is needed). nginx listens on 127.0.0.1 (the
//! sandbox shares the host's network) in front of a php8.2-fpm pool on a Unix socket
//! under the sandbox's /run/php. Every file the lab writes is in its own directory.

mod accounts;
mod boot;
mod cgroup;
mod config_faults;
mod error;
mod exec;
mod files;
mod guard;
mod http;
mod load;
mod nodes;
mod preflight;
mod record;
mod restart;
mod sandbox;
mod scenario;
mod status;

pub use accounts::SALVE_USER;
pub use config_faults::MISMATCHED_SOCKET;
pub use error::LabError;
pub use files::{status_socket_of, NGINX_UNIT, PHP_FPM_SOCKET, PHP_FPM_UNIT};
pub use guard::LabGuard;
pub use http::Probe;
pub use load::{failures, Load, Sample};
pub use nodes::{
    HaproxyChecks, LbKind, Node, Topology, ETCD_UNIT, HAPROXY_UNIT, LB_BACKEND, NODE_WEIGHT,
    PHP_FPM_UNIT_B, PHP_FPM_UNIT_BACKUP, POOLS_UPSTREAM,
};
pub use preflight::{check_packages, check_root};
pub use scenario::Scenario;
pub use status::{LabStatus, UnitStatus};

use files::Layout;
use record::{Process, Record};
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::thread;
use std::time::{Duration, Instant};

/// Not under /var/lib/salve, the agent's own StateDirectory, which the `salve` user
/// owns: the lab's files are written by root and run by root's systemd.
pub const DEFAULT_DIR: &str = "/var/lib/salve-lab";
pub const DEFAULT_HTTP_PORT: u16 = 8480;

/// systemd in the sandbox reaches `running` in well under a second here; 30 s leaves
/// room for a loaded CI machine without hanging a test run.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longer than nginx's 3 s fastcgi_read_timeout, so a hung pool reads as a 504.
const PROBE_TIMEOUT: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// The lab's own state directory; never under /tmp or /var/tmp.
    pub dir: PathBuf,
    pub http_port: u16,
    pub topology: Topology,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            dir: PathBuf::from(DEFAULT_DIR),
            http_port: DEFAULT_HTTP_PORT,
            topology: Topology::Single,
        }
    }
}

/// A running lab. Teardown is explicit ([`Lab::down`]); [`LabGuard`] does it on drop.
#[derive(Debug)]
pub struct Lab {
    dir: PathBuf,
    http_port: u16,
    topology: Topology,
    record: Record,
    /// The `unshare` process, when this process started the lab: reaped on `down`.
    launcher: Option<Child>,
}

impl Lab {
    /// Boots a lab and returns once ping.php answers 200. Tears down whatever it
    /// started if any step fails.
    pub fn up(config: &LabConfig) -> Result<Lab, LabError> {
        Lab::up_with_progress(config, &mut |_| {})
    }

    /// [`Lab::up`], reporting each step to `progress` (for a person watching).
    pub fn up_with_progress(
        config: &LabConfig,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Lab, LabError> {
        let started = Instant::now();
        let layout = Layout::new(&config.dir);
        progress("checking root, packages, lab directory and port");
        preflight::check(&config.dir)?;
        preflight::check_fleet_packages(config.topology)?;
        let extra_ports = config.topology.extra_ports(config.http_port)?;
        if let Some(previous) = record::read(&layout.record())? {
            if previous.systemd.is_alive() {
                return Err(LabError::AlreadyRunning {
                    dir: config.dir.clone(),
                    pid: previous.systemd.pid,
                });
            }
            progress("clearing the record of a lab that is no longer running");
            clear_stale(&layout, &previous)?;
        }
        let scoped = sandbox::host_runs_systemd();
        if !scoped {
            let busy = cgroup::busy_pids();
            if !busy.is_empty() {
                let pids: Vec<String> = busy.iter().map(u32::to_string).collect();
                return Err(LabError::SandboxBusy {
                    pids: pids.join(", "),
                });
            }
        }
        preflight::check_port(config.http_port)?;
        for port in extra_ports {
            preflight::check_port(port)?;
        }
        files::create_dir(&config.dir)?;
        progress(&format!(
            "writing configs, units and boot.sh to {}",
            config.dir.display()
        ));
        files::write_all(&layout, config.http_port, config.topology)?;
        let cgroups = if scoped {
            Vec::new()
        } else {
            cgroup::snapshot()
        };

        progress("booting systemd as PID 1 of a private PID namespace");
        let mut launcher = sandbox::spawn(&layout, scoped)?;
        let launcher_process = Process::current(launcher.id());
        let systemd = sandbox::find_systemd(&mut launcher, &layout, BOOT_TIMEOUT);
        let (systemd, launcher_process) = match (systemd, launcher_process) {
            (Ok(systemd), Some(launcher_process)) => (systemd, launcher_process),
            (result, _) => {
                // unshare --kill-child takes the sandbox down with it.
                let _ = launcher.kill();
                let _ = launcher.wait();
                cgroup::remove_leftovers(&cgroups, Duration::from_secs(5));
                return Err(result.err().unwrap_or(LabError::SandboxExited {
                    status: "unshare exited at once".into(),
                    log: layout.boot_log(),
                }));
            }
        };
        let mut lab = Lab {
            dir: config.dir.clone(),
            http_port: config.http_port,
            topology: config.topology,
            record: Record {
                dir: config.dir.clone(),
                http_port: config.http_port,
                topology: config.topology,
                systemd,
                launcher: launcher_process,
                scoped,
                cgroups,
            },
            launcher: Some(launcher),
        };
        match lab.finish_boot(progress) {
            Ok(()) => {
                progress(&format!(
                    "lab is up in {:.1} s: {} answers 200",
                    started.elapsed().as_secs_f64(),
                    lab.ping_url()
                ));
                Ok(lab)
            }
            Err(e) => {
                progress("a step failed: tearing the sandbox down");
                if let Err(teardown) = lab.teardown() {
                    tracing::warn!(error = %teardown, "teardown after a failed start failed");
                }
                Err(e)
            }
        }
    }

    fn finish_boot(&mut self, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
        // Recorded before anything can fail, so `salve lab down` finds the sandbox
        // even if this process dies half-way.
        record::write(&self.layout().record(), &self.record)?;
        let state = sandbox::wait_running(&self.record.systemd, &self.layout(), BOOT_TIMEOUT)?;
        if state == "degraded" {
            let failed = self.systemctl(&["list-units", "--failed", "--plain", "--no-legend"])?;
            let failed = String::from_utf8_lossy(&failed.stdout).trim().to_owned();
            tracing::warn!(units = %failed, "the sandbox booted degraded");
            progress(&format!("systemd is degraded; failed units: {failed}"));
        }
        progress(&format!(
            "systemd is {state} as pid {}; starting dbus",
            self.pid()
        ));
        self.systemctl_ok(&["start", "dbus.socket", "dbus.service"])?;
        progress(&format!("starting {PHP_FPM_UNIT} and {NGINX_UNIT}"));
        self.systemctl_ok(&["enable", PHP_FPM_UNIT, NGINX_UNIT])?;
        self.systemctl_ok(&["start", PHP_FPM_UNIT, NGINX_UNIT])?;
        let extra = self.topology.extra_units();
        if !extra.is_empty() {
            progress(&format!("starting {}", extra.join(", ")));
            let enable: Vec<&str> = ["enable"]
                .into_iter()
                .chain(extra.iter().copied())
                .collect();
            self.systemctl_ok(&enable)?;
            let start: Vec<&str> = ["start"].into_iter().chain(extra.iter().copied()).collect();
            self.systemctl_ok(&start)?;
        }
        progress(&format!("waiting for {} to answer 200", self.ping_url()));
        self.wait_healthy(HEALTH_TIMEOUT)
    }

    /// The lab recorded in `dir/lab.json`, started by another process.
    pub fn attach(dir: &Path) -> Result<Lab, LabError> {
        let layout = Layout::new(dir);
        let Some(record) = record::read(&layout.record())? else {
            return Err(LabError::NotRunning {
                dir: dir.to_path_buf(),
            });
        };
        if !record.systemd.is_alive() {
            return Err(LabError::Gone {
                dir: dir.to_path_buf(),
                pid: record.systemd.pid,
            });
        }
        Ok(Lab {
            dir: dir.to_path_buf(),
            http_port: record.http_port,
            topology: record.topology,
            record,
            launcher: None,
        })
    }

    /// Clears `dir/lab.json` when its sandbox is gone (and the cgroups it left).
    /// Returns whether there was such a stale record.
    pub fn remove_stale_record(dir: &Path) -> Result<bool, LabError> {
        let layout = Layout::new(dir);
        match record::read(&layout.record())? {
            Some(record) if !record.systemd.is_alive() => {
                clear_stale(&layout, &record)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `systemctl exit` inside, wait for it (bounded), SIGKILL if still alive, then
    /// remove lab.json.
    pub fn down(mut self) -> Result<(), LabError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        sandbox::teardown(&self.record, self.launcher.as_mut())?;
        record::remove(&self.layout().record())
    }

    /// The sandbox's system bus, reachable from the host as root.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.pid()
        )
    }

    /// PID of the sandbox's systemd as the host sees it.
    pub fn pid(&self) -> u32 {
        self.record.systemd.pid
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    pub fn ping_url(&self) -> String {
        format!("http://127.0.0.1:{}/ping.php", self.http_port)
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The port a node's nginx site listens on.
    pub fn node_port(&self, node: Node) -> u16 {
        node.port(self.http_port)
    }

    /// The load balancer's port, in a lab of two nodes.
    pub fn lb_port(&self) -> Option<u16> {
        self.topology.lb().map(|_| self.http_port + 2)
    }

    /// etcd's client URL, in a lab of two nodes.
    pub fn etcd_url(&self) -> Option<String> {
        self.topology
            .lb()
            .map(|_| format!("http://127.0.0.1:{}", self.http_port + 3))
    }

    /// HAProxy's admin socket as the host reaches it, through the sandbox's root.
    pub fn haproxy_socket(&self) -> Option<PathBuf> {
        (self.topology.lb() == Some(LbKind::Haproxy)).then(|| {
            PathBuf::from(format!(
                "/proc/{}/root{}",
                self.pid(),
                nodes::HAPROXY_SOCKET
            ))
        })
    }

    /// Gives haproxy other health-check and retry settings (a restart: every drain and
    /// weight goes back to the config's), and waits until it serves again.
    pub fn set_haproxy_checks(&self, checks: HaproxyChecks) -> Result<(), LabError> {
        nodes::write_haproxy_cfg(&self.layout(), self.http_port, checks)?;
        self.systemctl_ok(&["restart", HAPROXY_UNIT])?;
        self.wait_healthy(HEALTH_TIMEOUT)
    }

    /// The file holding the nginx load balancer's `upstream`, when nginx fronts the nodes.
    pub fn lb_site(&self) -> Option<PathBuf> {
        (self.topology.lb() == Some(LbKind::Nginx)).then(|| self.layout().lb_site())
    }

    /// One GET of `path` on `port`, as a client sees it.
    pub fn probe(&self, port: u16, path: &str) -> Probe {
        http::probe(port, path, PROBE_TIMEOUT)
    }

    pub fn nginx_error_log(&self) -> PathBuf {
        self.layout().nginx_error_log()
    }

    pub fn php_fpm_log(&self) -> PathBuf {
        self.layout().php_fpm_log()
    }

    pub fn nginx_conf(&self) -> PathBuf {
        self.layout().nginx_conf()
    }

    /// The site's file, included from nginx.conf; the config-edit scenarios change it.
    pub fn nginx_site(&self) -> PathBuf {
        self.layout().nginx_site()
    }

    pub fn php_fpm_conf(&self) -> PathBuf {
        self.layout().php_fpm_conf()
    }

    /// The `salve` service user's (uid, gid) inside the sandbox.
    pub fn salve_ids(&self) -> Result<(u32, u32), LabError> {
        accounts::salve_ids(&self.layout())
    }

    pub fn pool_conf(&self) -> PathBuf {
        self.layout().pool_conf()
    }

    /// `nsenter -t PID -a systemctl ARGS…`; the output whatever the exit status.
    pub fn systemctl(&self, args: &[&str]) -> Result<Output, LabError> {
        if !self.record.systemd.is_alive() {
            return Err(LabError::Gone {
                dir: self.dir.clone(),
                pid: self.pid(),
            });
        }
        sandbox::systemctl(self.pid(), args, SYSTEMCTL_TIMEOUT)
    }

    fn systemctl_ok(&self, args: &[&str]) -> Result<Output, LabError> {
        let output = self.systemctl(args)?;
        exec::check(format!("systemctl {}", args.join(" ")), output)
    }

    pub fn break_scenario(&self, scenario: Scenario) -> Result<(), LabError> {
        self.inflict(scenario)
    }

    /// A scenario on one node of a lab of two.
    pub fn break_node(&self, scenario: Scenario, node: Node) -> Result<(), LabError> {
        self.inflict_on(scenario, node)
    }

    /// Undoes every scenario: rewrites every config as a fresh lab has it (whatever a
    /// scenario or salve changed), re-enables and restarts the pool, restarts nginx, and
    /// waits for ping.php to answer 200.
    pub fn repair(&self) -> Result<(), LabError> {
        self.restore()
    }

    pub fn status(&self) -> Result<LabStatus, LabError> {
        self.read_status()
    }

    /// One GET of ping.php, as a client sees it.
    pub fn probe_ping(&self) -> Probe {
        http::probe(self.http_port, "/ping.php", PROBE_TIMEOUT)
    }

    /// Every node (and the load balancer) answers ping.php with 200.
    pub(super) fn wait_healthy(&self, timeout: Duration) -> Result<(), LabError> {
        let mut ports = vec![self.http_port];
        if let Some(lb) = self.lb_port() {
            ports.extend([self.node_port(Node::B), lb]);
        }
        for port in ports {
            self.wait_healthy_on(port, timeout)?;
        }
        Ok(())
    }

    fn wait_healthy_on(&self, port: u16, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let probe = self.probe(port, "/ping.php");
            if probe.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::NotHealthy {
                    url: format!("http://127.0.0.1:{port}/ping.php"),
                    after: timeout,
                    last: probe.to_string(),
                    nginx_log: self.layout().nginx_error_log(),
                    php_log: self.layout().php_fpm_log(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn layout(&self) -> Layout {
        Layout::new(&self.dir)
    }
}

fn clear_stale(layout: &Layout, record: &Record) -> Result<(), LabError> {
    sandbox::teardown(record, None)?;
    record::remove(&layout.record())
}
