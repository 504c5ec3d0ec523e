//! Executors: carry out an attempt's actions in order, then its verification, and
//! report the outcome as an engine event.

pub mod config_edit;
pub mod exec;
pub mod notify;
pub mod systemd;

use crate::engine::{AttemptDetail, Outcome, OutcomeResult};
use crate::policy::{Action, HttpVerify, Policy, UnitVerify};
use crate::signal::systemd::{SystemdHandle, UnitOp, UnitOpError};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long one systemd job may take before the attempt counts as timed out.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(90);
/// Subscribing to one more unit is two D-Bus calls.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often verification looks again.
const VERIFY_EVERY: Duration = Duration::from_millis(100);

pub struct Executor {
    systemd: SystemdHandle,
    job_timeout: Duration,
    /// Backups of an edited config kept per file.
    keep_backups: usize,
}

/// What the config edits of one attempt left for its outcome.
#[derive(Default)]
struct EditTrail {
    diffs: Vec<String>,
    /// What the last config edit's verification saw, while nothing has changed since.
    verified: Option<String>,
}

/// Why an action did not succeed: what kind of failure it is (decided from the error's
/// type where it arose), and the words for the journal.
struct Failure {
    timed_out: bool,
    /// The action had nothing to do here (see `OutcomeResult::NotApplicable`).
    not_applicable: bool,
    message: String,
}

impl From<UnitOpError> for Failure {
    fn from(e: UnitOpError) -> Self {
        Failure {
            timed_out: e.timed_out(),
            not_applicable: false,
            message: e.to_string(),
        }
    }
}

impl From<exec::ExecError> for Failure {
    fn from(e: exec::ExecError) -> Self {
        Failure {
            timed_out: matches!(e, exec::ExecError::TimedOut { .. }),
            not_applicable: false,
            message: e.to_string(),
        }
    }
}

impl From<notify::NotifyError> for Failure {
    fn from(e: notify::NotifyError) -> Self {
        Failure {
            timed_out: e.timed_out(),
            not_applicable: false,
            message: e.to_string(),
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
        .ok_or_else(|| Failure {
            timed_out: false,
            not_applicable: false,
            message: format!("target {} is not a systemd unit", policy.spec.target),
        })
}

/// What a policy's program learns of the attempt that runs it, beside its argv.
fn context_vars(policy: &Policy, attempt_id: u64) -> Vec<(String, String)> {
    vec![
        ("SALVE_POLICY".to_string(), policy.name().to_string()),
        (
            "SALVE_TARGET".to_string(),
            crate::engine::target_name(policy),
        ),
        ("SALVE_ATTEMPT_ID".to_string(), attempt_id.to_string()),
    ]
}

impl Executor {
    pub fn new(systemd: SystemdHandle, job_timeout: Duration) -> Self {
        Executor {
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

    /// Runs the policy's actions in order (stopping at the first failure), then its
    /// verification. Never panics and never returns early: the outcome is always
    /// reported, so the engine always learns the attempt is over.
    pub async fn run_attempt(&self, policy: &Policy, attempt_id: u64) -> Outcome {
        let started = Instant::now();
        let mut result = OutcomeResult::Ok;
        let mut error = None;
        let mut steps = Vec::new();
        let mut trail = EditTrail::default();
        // Whether an earlier action of this attempt changed anything: then a later
        // "nothing to do" does not make the whole attempt not applicable.
        let mut changed_anything = false;
        for action in &policy.spec.actions {
            // `instrument`, not `enter`: an entered guard held across an await would
            // leak the span into whatever else runs on this thread meanwhile.
            let span = tracing::info_span!("action", policy = policy.name(), target = %crate::engine::target_name(policy), action = action.name(), attempt_id);
            let ran = self
                .run_action(policy, action, attempt_id, &mut trail)
                .instrument(span.clone())
                .await;
            if ran.is_ok() && !matches!(action, Action::Notify(_)) {
                changed_anything = true;
            }
            match &ran {
                Ok(done) => steps.push(format!("{}: {done}", action.name())),
                Err(failure) => steps.push(format!("{}: {}", action.name(), failure.message)),
            }
            if let Err(failure) = ran {
                let _enter = span.enter();
                result = if failure.timed_out {
                    OutcomeResult::TimedOut
                } else if failure.not_applicable && !changed_anything {
                    OutcomeResult::NotApplicable
                } else {
                    OutcomeResult::Failed
                };
                tracing::warn!(error = %failure.message, "action failed");
                error = Some(format!("{}: {}", action.name(), failure.message));
                break;
            }
        }
        // A config edit verified its own change (that is how a raise knows when to
        // stop); verifying again could only disagree by chance, and then the attempt
        // would count as failed while the edit stays.
        let (verified, verification) = match (result, trail.verified.take()) {
            (OutcomeResult::Ok, Some(seen)) => (
                Some(true),
                Some(format!("{seen} (with the config edit in place)")),
            ),
            (OutcomeResult::Ok, None) => self.verify(policy).await.unzip(),
            _ => (None, None),
        };
        Outcome {
            policy: policy.name().to_string(),
            attempt_id: Some(attempt_id),
            result,
            verified,
            detail: Some(AttemptDetail {
                error,
                duration_ms: Some(started.elapsed().as_millis().min(u64::MAX as u128) as u64),
                steps,
                verification,
                diffs: trail.diffs,
            }),
        }
    }

    /// Starts watching `unit` (a reload brought a policy on it); its state arrives as an
    /// event like every watched unit's.
    pub async fn watch_unit(&self, unit: &str) -> Result<(), UnitOpError> {
        self.systemd
            .run(unit, UnitOp::Watch, WATCH_TIMEOUT)
            .await
            .map(|_| ())
    }

    /// Runs the policy's `escalate` actions; returns the failures, if any.
    pub async fn run_escalation(&self, policy: &Policy, attempts: u32) -> Vec<String> {
        let mut failures = Vec::new();
        for action in &policy.spec.escalate {
            if let Err(f) = self
                .run_action(policy, action, 0, &mut EditTrail::default())
                .await
            {
                failures.push(format!("{}: {}", action.name(), f.message));
            }
        }
        if !failures.is_empty() {
            tracing::warn!(policy = policy.name(), attempts, failures = ?failures, "escalation incomplete");
        }
        failures
    }

    async fn run_action(
        &self,
        policy: &Policy,
        action: &Action,
        attempt_id: u64,
        trail: &mut EditTrail,
    ) -> Result<String, Failure> {
        // Anything but a notification after a verified edit changes the world again.
        if !matches!(action, Action::Notify(_)) {
            trail.verified = None;
        }
        let unit = unit_of(policy)?;
        if let Some(op) = systemd::unit_op(action) {
            let done = self.systemd.run(unit, op, self.job_timeout).await?;
            if !done.succeeded() {
                return Err(Failure {
                    timed_out: done.completion.timed_out(),
                    not_applicable: false,
                    message: done.completion.to_string(),
                });
            }
            // Operations without a job (reset-failed, kill, enable, …) answer "ok".
            return Ok(done.completion.to_string());
        }
        match action {
            Action::Notify(args) => {
                let body = serde_json::json!({
                    "policy": policy.name(),
                    "target": unit,
                    "attemptId": attempt_id,
                    "message": format!("salve: policy {} on {unit}", policy.name()),
                });
                Ok(notify::post_webhook(&args.webhook, &body, args.timeout)
                    .await
                    .map(|status| format!("webhook answered {status}"))?)
            }
            Action::Exec(args) => {
                let env = exec::ExecEnv {
                    vars: context_vars(policy, attempt_id)
                        .into_iter()
                        .chain(args.env.iter().cloned())
                        .collect(),
                };
                Ok(exec::run(&args.command, &env, args.timeout)
                    .await
                    .map(|_| "exited 0".to_string())?)
            }
            Action::NginxEdit(_) | Action::PhpFpmEdit(_) | Action::AlignFastcgiPass(_) => {
                let done = self.run_config_edit(policy, action).await;
                trail.diffs.extend(done.diff);
                trail.verified = done.verification.filter(|_| done.result.is_ok());
                done.result.map_err(|message| Failure {
                    timed_out: false,
                    not_applicable: done.not_applicable,
                    message,
                })
            }
            // `unit_op` covered every systemd action above.
            _ => Ok("ok".to_string()),
        }
    }

    /// The policy's verification: whether it passed and what it saw; `None` without one.
    async fn verify(&self, policy: &Policy) -> Option<(bool, String)> {
        let verify = policy.spec.verify.as_ref()?;
        let mut checks = Vec::new();
        let mut passed = true;
        if let Some(http) = &verify.http {
            let (ok, detail) = self.verify_http(http).await;
            passed &= ok;
            checks.push(detail);
        }
        if let Some(unit) = &verify.unit {
            let (ok, detail) = self.verify_unit(policy, unit).await;
            passed &= ok;
            checks.push(detail);
        }
        Some((passed, checks.join("; ")))
    }

    async fn verify_http(&self, http: &HttpVerify) -> (bool, String) {
        let started = Instant::now();
        match crate::signal::http::wait_for_status(
            &http.url,
            &http.status,
            http.within,
            VERIFY_EVERY,
        )
        .await
        {
            Ok(status) => (
                true,
                format!(
                    "HTTP {status} from {} after {}ms",
                    http.url,
                    started.elapsed().as_millis()
                ),
            ),
            Err(last) => (
                false,
                format!(
                    "{} not healthy within {}: {last}",
                    http.url,
                    humantime::format_duration(http.within)
                ),
            ),
        }
    }

    async fn verify_unit(&self, policy: &Policy, unit: &UnitVerify) -> (bool, String) {
        let name = match unit_of(policy) {
            Ok(name) => name,
            Err(failure) => return (false, failure.message),
        };
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
