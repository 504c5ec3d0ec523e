//! The pool unit's restart policy, adjustable while the lab runs (for benchmarks that
//! compare salve with systemd's own `Restart=`).

use super::files::{self, PHP_FPM_UNIT};
use super::{Lab, LabError};
use std::fs;
use std::path::PathBuf;

impl Lab {
    /// Sets the pool unit's `Restart=` and `RestartSec=` through a drop-in in the
    /// sandbox's unit directory, then reloads systemd.
    pub fn set_php_fpm_restart(&self, restart: &str, restart_sec: &str) -> Result<(), LabError> {
        const RESTART: &[&str] = &[
            "no",
            "always",
            "on-success",
            "on-failure",
            "on-abnormal",
            "on-abort",
            "on-watchdog",
        ];
        if !RESTART.contains(&restart) {
            return Err(LabError::InvalidSetting {
                what: "Restart=",
                value: restart.to_owned(),
                hint:
                    "use no, always, on-success, on-failure, on-abnormal, on-abort or on-watchdog",
            });
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == ' ';
        if restart_sec.is_empty() || !restart_sec.chars().all(plain) {
            return Err(LabError::InvalidSetting {
                what: "RestartSec=",
                value: restart_sec.to_owned(),
                hint: "use a systemd time span such as 0, 100ms or 2s",
            });
        }
        // The sandbox's /etc/systemd/system is its /run/units, reachable from the host
        // through its root.
        let dropin = PathBuf::from(format!(
            "/proc/{}/root/run/units/{PHP_FPM_UNIT}.d",
            self.pid()
        ));
        fs::create_dir_all(&dropin).map_err(|e| LabError::io("create directory", &dropin, e))?;
        files::write(
            &dropin.join("50-salve-restart.conf"),
            &format!("[Service]\nRestart={restart}\nRestartSec={restart_sec}\n"),
            0o644,
        )?;
        self.systemctl_ok(&["daemon-reload"]).map(drop)
    }
}
