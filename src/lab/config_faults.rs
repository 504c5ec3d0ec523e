//! Scenarios that break the lab through its configs, the way people do by hand: a pool
//! socket nginx may not open, a fastcgi_pass pointing nowhere, a pool too small for its
//! load. Each edits one line of the lab's own files and applies it through systemd.

use super::files::{self, NGINX_UNIT, PHP_FPM_SOCKET, PHP_FPM_UNIT};
use super::scenario::{failed, Scenario};
use super::{Lab, LabError};
use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// The socket of the PHP that Debian 11 shipped: after an upgrade to Debian 12 (PHP
/// 8.2) a site still pointing there is the classic mismatch.
pub const MISMATCHED_SOCKET: &str = "/run/php/php7.4-fpm.sock";

/// Long enough for a reload on a loaded CI machine.
const TAKE_EFFECT: Duration = Duration::from_secs(15);

impl Lab {
    pub(super) fn lock_socket(&self) -> Result<(), LabError> {
        let pool = self.layout().pool_conf();
        replace_lines(
            &pool,
            &[
                ("listen.owner = www-data", "listen.owner = root"),
                ("listen.group = www-data", "listen.group = root"),
                ("listen.mode = 0660", "listen.mode = 0600"),
            ],
        )?;
        self.systemctl_ok(&["restart", PHP_FPM_UNIT])?;
        self.wait_for_bad_gateway(Scenario::SocketPermissions)
    }

    pub(super) fn mismatch_fastcgi_pass(&self) -> Result<(), LabError> {
        let site = self.layout().nginx_site();
        let from = format!("fastcgi_pass unix:{PHP_FPM_SOCKET};");
        let to = format!("fastcgi_pass unix:{MISMATCHED_SOCKET};");
        replace_lines(&site, &[(from.as_str(), to.as_str())])?;
        // Restart, not reload: after a reload nginx's old workers keep answering with the
        // old config for about 100 ms, so a test could see a 200 after the break.
        self.systemctl_ok(&["restart", NGINX_UNIT])?;
        self.wait_for_bad_gateway(Scenario::FastcgiMismatch)
    }

    pub(super) fn shrink_pool(&self) -> Result<(), LabError> {
        let pool = self.layout().pool_conf();
        let max = files::MAX_CHILDREN;
        let lines = [
            format!("pm.max_children = {max}"),
            format!("pm.start_servers = {max}"),
            format!("pm.max_spare_servers = {max}"),
        ];
        let shrunk = [
            "pm.max_children = 1",
            "pm.start_servers = 1",
            "pm.max_spare_servers = 1",
        ];
        let pairs: Vec<(&str, &str)> = lines.iter().map(String::as_str).zip(shrunk).collect();
        replace_lines(&pool, &pairs)?;
        self.systemctl_ok(&["restart", PHP_FPM_UNIT])?;
        self.wait_healthy(TAKE_EFFECT)
    }

    /// Moves the pool (and nginx's fastcgi_pass) from its socket to 127.0.0.1:`port`:
    /// PHP-FPM reports the listen queue of a TCP listener only. `repair` moves it back.
    pub fn pool_on_tcp(&self, port: u16) -> Result<(), LabError> {
        let listen = format!("listen = {PHP_FPM_SOCKET}");
        let tcp = format!("listen = 127.0.0.1:{port}");
        replace_lines(
            &self.layout().pool_conf(),
            &[(listen.as_str(), tcp.as_str())],
        )?;
        let pass = format!("fastcgi_pass unix:{PHP_FPM_SOCKET};");
        let tcp_pass = format!("fastcgi_pass 127.0.0.1:{port};");
        replace_lines(
            &self.layout().nginx_site(),
            &[(pass.as_str(), tcp_pass.as_str())],
        )?;
        self.systemctl_ok(&["restart", PHP_FPM_UNIT])?;
        self.systemctl_ok(&["restart", NGINX_UNIT])?;
        self.wait_healthy(TAKE_EFFECT)
    }

    /// Reloads take effect a moment after systemctl returns; a scenario is only done
    /// once the site really answers 502.
    fn wait_for_bad_gateway(&self, scenario: Scenario) -> Result<(), LabError> {
        let deadline = Instant::now() + TAKE_EFFECT;
        loop {
            let probe = self.probe_ping();
            if probe.status() == Some(502) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(
                    scenario,
                    format!("ping.php answers {probe}, not 502"),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Replaces whole lines (compared trimmed), keeping their indentation; every `from`
/// must be present, so a lab whose configs drifted fails loudly instead of silently
/// not breaking.
fn replace_lines(path: &Path, pairs: &[(&str, &str)]) -> Result<(), LabError> {
    let text = fs::read_to_string(path).map_err(|e| LabError::io("read", path, e))?;
    let mut out = String::with_capacity(text.len());
    let mut found = vec![false; pairs.len()];
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        match pairs.iter().position(|(from, _)| *from == trimmed) {
            Some(i) => {
                found[i] = true;
                let indent = &line[..line.len() - line.trim_start().len()];
                out.push_str(indent);
                out.push_str(pairs[i].1);
                out.push('\n');
            }
            None => out.push_str(line),
        }
    }
    if let Some(i) = found.iter().position(|f| !f) {
        return Err(LabError::io(
            "find the line to change in",
            path,
            std::io::Error::other(format!("no line `{}`: run `salve lab repair`", pairs[i].0)),
        ));
    }
    files::write(path, &out, 0o644)
}
