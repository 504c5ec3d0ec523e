//! What `salve lab status` shows: the two units as systemd sees them, and what a
//! client of nginx sees.

use super::files::{NGINX_UNIT, PHP_FPM_UNIT};
use super::http::Probe;
use super::{exec, Lab, LabError};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    pub unit: String,
    /// `active`, `failed`, `inactive`, `activating`…
    pub active_state: String,
    pub sub_state: String,
    /// `enabled`, `disabled`…
    pub unit_file_state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabStatus {
    pub dir: PathBuf,
    pub pid: u32,
    pub ping_url: String,
    pub nginx: UnitStatus,
    pub php_fpm: UnitStatus,
    pub ping: Probe,
    /// A lab of two nodes: node b's pool, etcd and haproxy.
    pub extra: Vec<UnitStatus>,
    /// A lab of two nodes: ping.php through the load balancer, and its URL.
    pub through_lb: Option<(Probe, String)>,
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "lab {} (sandbox systemd pid {})",
            self.dir.display(),
            self.pid
        )?;
        for unit in [&self.nginx, &self.php_fpm].into_iter().chain(&self.extra) {
            writeln!(
                f,
                "  {:<26} {:<22} {}",
                unit.unit,
                format!("{} ({})", unit.active_state, unit.sub_state),
                unit.unit_file_state
            )?;
        }
        write!(f, "  {:<26} {} ({})", "ping.php", self.ping, self.ping_url)?;
        if let Some((probe, url)) = &self.through_lb {
            write!(f, "\n  {:<26} {probe} ({url})", "through the LB")?;
        }
        Ok(())
    }
}

impl Lab {
    pub(super) fn read_status(&self) -> Result<LabStatus, LabError> {
        Ok(LabStatus {
            dir: self.dir.clone(),
            pid: self.pid(),
            ping_url: self.ping_url(),
            nginx: self.unit_status(NGINX_UNIT)?,
            php_fpm: self.unit_status(PHP_FPM_UNIT)?,
            ping: self.probe_ping(),
            extra: self
                .topology
                .extra_units()
                .into_iter()
                .map(|unit| self.unit_status(unit))
                .collect::<Result<_, _>>()?,
            through_lb: self.lb_port().map(|port| {
                (
                    self.probe(port, "/ping.php"),
                    format!("http://127.0.0.1:{port}/ping.php"),
                )
            }),
        })
    }

    pub(super) fn unit_status(&self, unit: &str) -> Result<UnitStatus, LabError> {
        let args = [
            "show",
            "--property=ActiveState",
            "--property=SubState",
            "--property=UnitFileState",
            unit,
        ];
        let output = self.systemctl(&args)?;
        let output = exec::check(format!("systemctl {}", args.join(" ")), output)?;
        let text = String::from_utf8_lossy(&output.stdout);
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("")
                .to_owned()
        };
        Ok(UnitStatus {
            unit: unit.to_owned(),
            active_state: value("ActiveState"),
            sub_state: value("SubState"),
            unit_file_state: value("UnitFileState"),
        })
    }
}
