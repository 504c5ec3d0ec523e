//! The first family: systemd units on this host, through the D-Bus link. Its actions
//! are the unit operations and the config edits (which a unit applies); its own
//! verification is `verify.unit`.

use super::{config_edit, systemd, Acted, Executor, Failure, Family, VERIFY_EVERY};
use crate::policy::{Action, Policy, UnitVerify, Verify};
use crate::systemd::{SystemdHandle, UnitOp, UnitOpError};
use std::time::{Duration, Instant};

/// Subscribing to one more unit is two D-Bus calls.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SystemdUnits {
    pub(super) systemd: SystemdHandle,
    pub(super) job_timeout: Duration,
    /// Backups of an edited config kept per file.
    pub(super) keep_backups: usize,
}

impl SystemdUnits {
    pub fn new(systemd: SystemdHandle, job_timeout: Duration) -> Self {
        SystemdUnits {
            systemd,
            job_timeout,
            keep_backups: config_edit::DEFAULT_KEEP_BACKUPS,
        }
    }

    /// Keeps the newest `keep` backups of each edited config (at least one).
    pub fn with_keep_backups(mut self, keep: usize) -> Self {
        self.keep_backups = keep.max(1);
        self
    }

    /// Starts watching `unit` (a reload brought a policy on it); its state arrives as an
    /// event like every watched unit's.
    pub async fn watch_unit(&self, unit: &str) -> Result<(), UnitOpError> {
        self.systemd
            .run(unit, UnitOp::Watch, WATCH_TIMEOUT)
            .await
            .map(|_| ())
    }

    pub(in crate::action) async fn unit_op(
        &self,
        unit: &str,
        op: UnitOp,
    ) -> Result<String, Failure> {
        let done = self.systemd.run(unit, op, self.job_timeout).await?;
        if !done.succeeded() {
            return Err(Failure {
                timed_out: done.completion.timed_out(),
                not_applicable: false,
                message: done.completion.to_string(),
            });
        }
        // Operations without a job (reset-failed, kill, enable, …) answer "ok".
        Ok(done.completion.to_string())
    }

    async fn verify_unit(&self, name: &str, unit: &UnitVerify) -> (bool, String) {
        let deadline = Instant::now() + unit.within;
        let mut last: String;
        loop {
            match self.systemd.run(name, UnitOp::Query, unit.within).await {
                Ok(done) => {
                    let state = done.state.active_state;
                    last = format!("activeState={}", state.map_or("?", |s| s.as_str()));
                    if state.is_some_and(|s| unit.active_state.contains(&s)) {
                        return (true, format!("unit {name} {last}"));
                    }
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() + VERIFY_EVERY > deadline {
                return (
                    false,
                    format!(
                        "unit {name} not in the expected state within {}: {last}",
                        humantime::format_duration(unit.within)
                    ),
                );
            }
            tokio::time::sleep(VERIFY_EVERY).await;
        }
    }
}

/// The unit a host policy acts on. The agent loads no policy with another target, so
/// this fails only if that check were lost; then the attempt fails, it does not panic.
fn unit_of(policy: &Policy) -> Result<&str, Failure> {
    policy
        .spec
        .target
        .unit()
        .map(|u| u.as_str())
        .ok_or_else(|| {
            Failure::failed(format!(
                "target {} is not a systemd unit",
                crate::engine::target_name(policy)
            ))
        })
}

impl Family for SystemdUnits {
    async fn act<'a>(
        &'a self,
        executor: &'a Executor<Self>,
        policy: &'a Policy,
        action: &'a Action,
    ) -> Option<Acted> {
        if let Some(op) = systemd::unit_op(action) {
            let result = match unit_of(policy) {
                Ok(unit) => self.unit_op(unit, op).await,
                Err(failure) => Err(failure),
            };
            return Some(Acted::done(result));
        }
        if !action.is_config_edit() {
            return None;
        }
        let done = self.run_config_edit(executor, policy, action).await;
        let verified = done.verification.filter(|_| done.result.is_ok());
        Some(Acted {
            result: done.result.map_err(|message| Failure {
                timed_out: false,
                not_applicable: done.not_applicable,
                message,
            }),
            diff: done.diff,
            verified,
        })
    }

    async fn reload_unit<'a>(&'a self, unit: &'a crate::policy::UnitName) -> Result<(), String> {
        self.unit_op(unit.as_str(), crate::systemd::UnitOp::Reload)
            .await
            .map(|_| ())
            .map_err(|failure| format!("reload of {unit}: {}", failure.message))
    }

    async fn verify_target<'a>(
        &'a self,
        policy: &'a Policy,
        verify: &'a Verify,
    ) -> Option<(bool, String)> {
        let unit = verify.unit.as_ref()?;
        Some(match unit_of(policy) {
            Ok(name) => self.verify_unit(name, unit).await,
            Err(failure) => (false, failure.message),
        })
    }
}
