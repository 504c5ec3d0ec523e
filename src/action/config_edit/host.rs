//! The agent's side of a config edit: the real checker, systemd, and the policy's verify.

use super::validate::Checker;
use super::{align::AlignPlanner, fpm::FpmPlanner, nginx::NginxPlanner, run_edit, EditHost};
use crate::action::Executor;
use crate::policy::{Action, ApplyWith, Policy, UnitName};
use crate::signal::systemd::UnitOp;
use std::path::Path;

struct AgentHost<'a> {
    executor: &'a Executor,
    policy: &'a Policy,
    checker: Checker,
    unit: &'a UnitName,
    apply: ApplyWith,
}

impl EditHost for AgentHost<'_> {
    async fn validate(&self, file: &Path, candidate: &[u8]) -> Result<(), String> {
        self.checker.check(file, candidate).await
    }

    async fn apply(&self) -> Result<(), String> {
        let op = match self.apply {
            ApplyWith::Reload => UnitOp::Reload,
            ApplyWith::Restart => UnitOp::Restart,
        };
        let done = self
            .executor
            .systemd
            .run(self.unit.as_str(), op, self.executor.job_timeout)
            .await?;
        if done.succeeded() {
            Ok(())
        } else {
            Err(format!(
                "{} of {}: job {}",
                self.apply.as_str(),
                self.unit,
                done.job_result
            ))
        }
    }

    async fn verify(&self) -> Option<(bool, String)> {
        self.executor.verify(self.policy).await
    }
}

impl Executor {
    /// Runs one config-edit action; returns its result and the diff it made or tried.
    pub(in crate::action) async fn run_config_edit(
        &self,
        policy: &Policy,
        action: &Action,
    ) -> (Result<String, String>, Option<String>) {
        let target = &policy.spec.target.unit;
        let outcome = match action {
            Action::NginxEdit(args) => {
                let host = AgentHost {
                    executor: self,
                    policy,
                    checker: Checker::nginx(&args.config),
                    unit: args.unit.as_ref().unwrap_or(target),
                    apply: args.apply,
                };
                run_edit(&args.file, &mut NginxPlanner { args }, &host).await
            }
            Action::PhpFpmEdit(args) => {
                let host = AgentHost {
                    executor: self,
                    policy,
                    checker: Checker::php_fpm(&args.config),
                    unit: args.unit.as_ref().unwrap_or(target),
                    apply: args.apply,
                };
                run_edit(&args.file, &mut FpmPlanner { args }, &host).await
            }
            Action::AlignFastcgiPass(args) => {
                let fpm = match crate::webconf::fpm::load(&args.fpm_config) {
                    Ok(fpm) => fpm,
                    Err(e) => return (Err(e.to_string()), None),
                };
                let host = AgentHost {
                    executor: self,
                    policy,
                    checker: Checker::nginx(&args.config),
                    unit: args.unit.as_ref().unwrap_or(target),
                    apply: args.apply,
                };
                run_edit(&args.file, &mut AlignPlanner::new(args, &fpm), &host).await
            }
            _ => return (Err(format!("{} is not a config edit", action.name())), None),
        };
        match outcome {
            Ok(report) => {
                tracing::info!(file_change = %report.summary, "config edit applied and verified");
                (Ok(report.summary), report.diff)
            }
            Err((why, diff)) => (Err(why), diff),
        }
    }
}
