//! Breaking the lab on purpose, one real cause of a 502/504 at a time, and repairing it.

use super::files::{self, MAX_CHILDREN, PHP_FPM_UNIT};
use super::nodes::Node;
use super::{http, Lab, LabError};
use std::fmt;
use std::fs;
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

/// How long a scenario may take to show its effect before it counts as not taken.
const TAKE_EFFECT: Duration = Duration::from_secs(15);

/// The line crashloop appends to the pool file. PHP-FPM refuses to start on it:
/// `ERROR: [<pool file>:N] unknown entry 'salve_lab_crashloop'`.
const BROKEN_DIRECTIVE: &str =
    "\n; salve lab crashloop: PHP-FPM refuses this unknown entry, so every start fails\nsalve_lab_crashloop = broken\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// SIGKILL every process of the pool: the unit ends `failed`, nginx answers 502.
    Crash,
    /// A clean `systemctl stop`: the unit is `inactive`, its socket gone.
    Stop,
    /// `systemctl disable`: still running, but would not come back after a reboot.
    Disable,
    /// A broken pool config plus a crash: every later start fails until `repair`.
    CrashLoop,
    /// Every worker stuck in a slow script: the unit stays active, ping.php gets 504.
    Hang,
    /// The pool's socket owned by root with mode 0600: nginx gets `13: Permission denied`.
    SocketPermissions,
    /// nginx's fastcgi_pass names a socket no pool listens on.
    FastcgiMismatch,
    /// `pm.max_children = 1`: under load PHP-FPM logs "server reached pm.max_children".
    Exhaustion,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::Crash,
        Scenario::Stop,
        Scenario::Disable,
        Scenario::CrashLoop,
        Scenario::Hang,
        Scenario::SocketPermissions,
        Scenario::FastcgiMismatch,
        Scenario::Exhaustion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Crash => "crash",
            Scenario::Stop => "stop",
            Scenario::Disable => "disable",
            Scenario::CrashLoop => "crashloop",
            Scenario::Hang => "hang",
            Scenario::SocketPermissions => "socket-permissions",
            Scenario::FastcgiMismatch => "fastcgi-mismatch",
            Scenario::Exhaustion => "exhaustion",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Scenario::Crash => "SIGKILL every process of php8.2-fpm.service (master and workers)",
            Scenario::Stop => "systemctl stop php8.2-fpm.service",
            Scenario::Disable => "systemctl disable php8.2-fpm.service (it keeps running)",
            Scenario::CrashLoop => {
                "break the pool config so every start fails, then crash the pool"
            }
            Scenario::Hang => "occupy every PHP-FPM worker with a slow request",
            Scenario::SocketPermissions => {
                "give the pool socket to root with mode 0600, so nginx may not open it"
            }
            Scenario::FastcgiMismatch => {
                "point nginx's fastcgi_pass at /run/php/php7.4-fpm.sock, where no pool listens"
            }
            Scenario::Exhaustion => "shrink the pool to pm.max_children = 1",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| LabError::UnknownScenario(s.to_owned()))
    }
}

impl Lab {
    /// Breaks `node` of a lab of two nodes: the scenarios that act on a pool
    /// (crash, stop, disable, hang); the others change files node a alone has.
    pub(super) fn inflict_on(&self, scenario: Scenario, node: Node) -> Result<(), LabError> {
        if node == Node::A {
            return self.inflict(scenario);
        }
        if self.topology.lb().is_none() {
            return Err(failed(
                scenario,
                "this lab has one node: start it with `salve lab up --nodes 2` for node b".into(),
            ));
        }
        let unit = node.unit();
        match scenario {
            Scenario::Crash => self.crash(scenario, unit),
            Scenario::Stop => self.systemctl_ok(&["stop", unit]).map(|_| ()),
            Scenario::Disable => self.systemctl_ok(&["disable", unit]).map(|_| ()),
            Scenario::Hang => self.hang(node),
            other => Err(failed(
                other,
                "on node b only crash, stop, disable and hang: the other scenarios break files of node a".into(),
            )),
        }
    }

    pub(super) fn inflict(&self, scenario: Scenario) -> Result<(), LabError> {
        match scenario {
            Scenario::Crash => self.crash(scenario, PHP_FPM_UNIT),
            // `systemctl stop` and `disable` return once systemd has done it. Reading the
            // state back would race with whatever heals the lab (salve acts within
            // milliseconds), so their exit status is the proof.
            Scenario::Stop => self.systemctl_ok(&["stop", PHP_FPM_UNIT]).map(|_| ()),
            Scenario::Disable => self.systemctl_ok(&["disable", PHP_FPM_UNIT]).map(|_| ()),
            Scenario::CrashLoop => {
                self.break_pool_config()?;
                self.crash(scenario, PHP_FPM_UNIT)
            }
            Scenario::Hang => self.hang(Node::A),
            Scenario::SocketPermissions => self.lock_socket(),
            Scenario::FastcgiMismatch => self.mismatch_fastcgi_pass(),
            Scenario::Exhaustion => self.shrink_pool(),
        }
    }

    /// `systemctl kill` signals every process in the unit's cgroup: killing only the
    /// master would leave its workers answering for a while and hide the outage.
    /// Done when the unit is `failed` (Restart=no, the lab's default) or systemd has
    /// counted a restart (a `set_php_fpm_restart` drop-in brought it back itself).
    fn crash(&self, scenario: Scenario, pool: &str) -> Result<(), LabError> {
        let restarts_before = self.restarts(pool)?;
        let invocation_before = self.invocation(pool)?;
        self.systemctl_ok(&["kill", "--signal=SIGKILL", pool])?;
        let deadline = Instant::now() + TAKE_EFFECT;
        loop {
            let unit = self.unit_status(pool)?;
            // Done once systemd saw the crash: the unit failed, or something already
            // started it again (systemd's own Restart= counts in NRestarts; an agent's
            // restart shows as a new invocation), faster than this loop could look.
            if unit.active_state == "failed"
                || self.restarts(pool)? > restarts_before
                || self.invocation(pool)? != invocation_before
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(
                    scenario,
                    format!(
                        "{pool} is {} {TAKE_EFFECT:?} after SIGKILL",
                        unit.active_state
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pool's current `InvocationID`: a new one for every start.
    fn invocation(&self, pool: &str) -> Result<String, LabError> {
        let output = self.systemctl_ok(&["show", "--property=InvocationID", "--value", pool])?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// systemd's count of automatic restarts of the pool (`NRestarts`).
    fn restarts(&self, pool: &str) -> Result<u64, LabError> {
        let output = self.systemctl_ok(&["show", "--property=NRestarts", "--value", pool])?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(0))
    }

    /// Appends an invalid directive to the pool file, keeping the original bytes for
    /// `repair` (once: breaking an already broken pool keeps the first backup).
    fn break_pool_config(&self) -> Result<(), LabError> {
        let layout = self.layout();
        let (pool, backup) = (layout.pool_conf(), layout.pool_backup());
        let original = if backup.exists() {
            fs::read(&backup).map_err(|e| LabError::io("read", &backup, e))?
        } else {
            let bytes = fs::read(&pool).map_err(|e| LabError::io("read", &pool, e))?;
            files::write_bytes(&backup, &bytes, 0o644)?;
            bytes
        };
        let mut broken = original;
        broken.extend_from_slice(BROKEN_DIRECTIVE.as_bytes());
        files::write_bytes(&pool, &broken, 0o644)
    }

    /// Sends one slow request per worker and holds the connections until ping.php
    /// stops answering 200, which proves every worker is taken. The workers then stay
    /// in `sleep()` (PHP does not notice the client leaving while it sleeps) until
    /// slow.php returns or the pool is restarted; nothing is left running here.
    fn hang(&self, node: Node) -> Result<(), LabError> {
        let scenario = Scenario::Hang;
        let (pool, port) = (node.unit(), node.port(self.http_port));
        let unit = self.unit_status(pool)?;
        if unit.active_state != "active" {
            return Err(failed(
                scenario,
                format!(
                    "{pool} is {}, not active: run `salve lab repair` first",
                    unit.active_state
                ),
            ));
        }
        let mut held = Vec::with_capacity(MAX_CHILDREN);
        for _ in 0..MAX_CHILDREN {
            let stream = http::send_get(port, "/slow.php", Duration::from_secs(5))
                .map_err(|e| failed(scenario, format!("cannot send a slow request: {e}")))?;
            held.push(stream);
        }
        let deadline = Instant::now() + TAKE_EFFECT;
        loop {
            thread::sleep(Duration::from_millis(200));
            let probe = self.probe(port, "/ping.php");
            if !probe.is_ok() {
                tracing::debug!(%probe, "ping.php no longer answers 200: every worker is busy");
                break;
            }
            if Instant::now() >= deadline {
                return Err(failed(scenario, "ping.php kept answering 200".into()));
            }
        }
        drop(held);
        self.expect_active_state(scenario, pool, &["active"])
    }

    pub(super) fn restore(&self) -> Result<(), LabError> {
        let layout = self.layout();
        // Configs back to a fresh lab's, whatever a scenario or salve changed.
        files::write_configs(&layout, self.http_port, self.topology)?;
        let (pool, backup) = (layout.pool_conf(), layout.pool_backup());
        if backup.exists() {
            let original = fs::read(&backup).map_err(|e| LabError::io("read", &backup, e))?;
            files::write_bytes(&pool, &original, 0o644)?;
            fs::remove_file(&backup).map_err(|e| LabError::io("remove", &backup, e))?;
        }
        // reset-failed clears a start-rate limit a crash loop may have hit; it fails
        // harmlessly on a unit that is not failed.
        let extra = self.topology.extra_units();
        let pools: Vec<&str> = [PHP_FPM_UNIT]
            .into_iter()
            .chain(
                extra
                    .iter()
                    .copied()
                    .filter(|u| [Node::B.unit(), super::nodes::PHP_FPM_UNIT_BACKUP].contains(u)),
            )
            .collect();
        let mut failed_ones = pools.clone();
        failed_ones.push(files::NGINX_UNIT);
        let _ = self.systemctl(&[&["reset-failed"], failed_ones.as_slice()].concat());
        self.systemctl_ok(&[&["enable"], pools.as_slice()].concat())?;
        // A restart also ends the hang scenario: the stuck workers go with the pool.
        self.systemctl_ok(&[&["restart"], pools.as_slice()].concat())?;
        self.systemctl_ok(&["restart", files::NGINX_UNIT])?;
        // The load balancer forgets every drain and weight salve gave it.
        if extra.contains(&super::nodes::HAPROXY_UNIT) {
            self.systemctl_ok(&["restart", super::nodes::HAPROXY_UNIT])?;
        }
        self.wait_healthy(super::HEALTH_TIMEOUT)
    }

    fn expect_active_state(
        &self,
        scenario: Scenario,
        pool: &str,
        wanted: &[&str],
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + TAKE_EFFECT;
        loop {
            let unit = self.unit_status(pool)?;
            if wanted.contains(&unit.active_state.as_str()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(
                    scenario,
                    format!(
                        "{pool} is {} after {TAKE_EFFECT:?}, expected {}",
                        unit.active_state,
                        wanted.join(" or ")
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

pub(super) fn failed(scenario: Scenario, detail: String) -> LabError {
    LabError::ScenarioFailed {
        scenario: scenario.name(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_parses_from_its_name() {
        for scenario in Scenario::ALL {
            assert_eq!(scenario.name().parse::<Scenario>().unwrap(), scenario);
        }
        assert_eq!(
            "CrashLoop".parse::<Scenario>().unwrap(),
            Scenario::CrashLoop
        );
    }

    #[test]
    fn an_unknown_scenario_lists_the_known_ones() {
        let err = "explode".parse::<Scenario>().unwrap_err().to_string();
        assert!(
            err.contains("explode") && err.contains("crashloop"),
            "{err}"
        );
    }
}
