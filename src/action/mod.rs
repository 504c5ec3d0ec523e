//! Executors: carry out an attempt's actions in order, then its verification, and
//! report the outcome as an engine event.
//!
//! The attempt (actions in order, stop at the first failure, what counts as not
//! applicable, verification, the outcome) is written once, in [`Executor`]. What acts
//! on one family of targets is a [`Family`]: systemd units are the first (`units.rs`);
//! Kubernetes objects and load balancers each add one module implementing it, and
//! nothing else here changes.

pub mod config_edit;
pub mod exec;
pub mod kubernetes;
pub mod load_balancer;
pub mod notify;
pub mod systemd;
mod units;

pub use units::SystemdUnits;

use crate::engine::{AttemptDetail, Outcome, OutcomeResult};
use crate::policy::{Action, HttpVerify, Policy, Verify};
use crate::systemd::UnitOpError;
use std::future::Future;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long one systemd job may take before the attempt counts as timed out.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(90);
/// How often verification looks again.
const VERIFY_EVERY: Duration = Duration::from_millis(100);
/// One call to etcd: it answers in milliseconds when it is well.
const FLEET_TIMEOUT: Duration = Duration::from_secs(3);

/// What acts on one family of targets. A family carries out its own actions and its
/// own verification; the attempt around them, the shared actions (`notify`, `exec`)
/// and HTTP verification are [`Executor`]'s.
pub trait Family: Sized + Send + Sync + 'static {
    /// Carries out `action` on the policy's target; `None` for an action this family
    /// does not have (the executor runs the shared ones). `executor` gives the family
    /// the policy's whole verification, which a config edit runs with its change in
    /// place.
    fn act<'a>(
        &'a self,
        executor: &'a Executor<Self>,
        policy: &'a Policy,
        action: &'a Action,
    ) -> impl Future<Output = Option<Acted>> + Send + 'a;

    /// Whether the family has a dry run of its own to rehearse a dry-run policy's
    /// changes with (the API server's; systemd has none).
    const REHEARSES: bool = false;

    /// Sends `action`'s change through the target system's own dry run, which checks
    /// it as if for real (the API server: admission, validation, RBAC) and stores
    /// nothing: what the change would be, or why it would be refused. `None` for an
    /// action the family cannot rehearse.
    fn rehearse<'a>(
        &'a self,
        _policy: &'a Policy,
        _action: &'a Action,
    ) -> impl Future<Output = Option<Result<String, Failure>>> + Send + 'a {
        std::future::ready(None)
    }

    /// Reloads a unit of this host: an nginx load balancer after salve edited one of
    /// its upstreams. Only a family on a systemd host has units to reload.
    fn reload_unit<'a>(
        &'a self,
        unit: &'a crate::policy::UnitName,
    ) -> impl Future<Output = Result<(), String>> + Send + 'a {
        std::future::ready(Err(format!(
            "cannot reload {unit}: this salve does not run on a systemd host"
        )))
    }

    /// Sets a Gateway API route backend's weight through the API server: the journal
    /// line and the weights it had. Only the Kubernetes family reaches an API server.
    fn weigh_route<'a>(
        &'a self,
        _policy: &'a Policy,
        backend: &'a crate::policy::GatewayBackend,
        _weight: load_balancer::RouteWeight,
    ) -> impl Future<Output = Result<(String, load_balancer::RouteWeights), Failure>> + Send + 'a
    {
        std::future::ready(Err(Failure::failed(format!(
            "cannot weigh HTTPRoute {}: only the operator reaches the API server",
            backend.route
        ))))
    }

    /// The family's own part of `verify` (systemd: `verify.unit`): whether it passed
    /// and what it saw; `None` when the policy asks nothing of it.
    fn verify_target<'a>(
        &'a self,
        policy: &'a Policy,
        verify: &'a Verify,
    ) -> impl Future<Output = Option<(bool, String)>> + Send + 'a;
}

/// What one action did.
pub struct Acted {
    pub result: Result<String, Failure>,
    /// The change a config edit made or tried.
    pub diff: Option<String>,
    /// What verification saw with a config edit in place, when it ran and passed.
    pub verified: Option<String>,
}

impl Acted {
    pub fn done(result: Result<String, Failure>) -> Acted {
        Acted {
            result,
            diff: None,
            verified: None,
        }
    }
}

pub struct Executor<F> {
    family: F,
    /// Where `fleet` slots are taken, and this agent's name among the members.
    fleet: Option<(crate::fleet::FleetLock, String)>,
    /// Where the slots of `lock: local` groups are held.
    local_fleet: crate::fleet::FleetLock,
    /// Slots of servers an attempt left drained (unverified, or a drain with no ramp),
    /// by slot key: a drained server is one of the group's `maxConcurrent` until it
    /// serves again, so its slot stays taken (and renewed) until a later attempt gives
    /// its weight back or a `ready` readies it.
    kept_slots: std::sync::Mutex<std::collections::BTreeMap<String, KeptSlot>>,
    /// Policies whose last drain could not be made and has been escalated: the next
    /// such attempt does not escalate again, a drain that succeeds clears it.
    drain_trouble: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// A slot kept for a server left drained: the slot, where it is held, and the server
/// (to see whether it serves again).
type KeptSlot = (
    crate::fleet::Slot,
    crate::policy::FleetLockKind,
    Option<load_balancer::DrainedServer>,
);

/// What the config edits and drains of one attempt left for its outcome.
#[derive(Default)]
struct EditTrail {
    diffs: Vec<String>,
    /// What the last config edit's verification saw, while nothing has changed since.
    verified: Option<String>,
    /// Servers drained with a ramp back, and the weight each had: given back once the
    /// attempt verifies, and only then.
    ramps: Vec<(load_balancer::DrainedServer, crate::policy::Ramp, u32)>,
    /// The fleet slot this attempt holds, where, and for which server; given back
    /// when the attempt ends (kept while `left_drained`).
    fleet_slot: Option<KeptSlot>,
    /// A drain (or a weight of 0) under the slot was made and its server has not been
    /// given weight back since.
    left_drained: bool,
    /// Why this attempt may not drain, once a fleet slot was refused it.
    fleet_refused: Option<load_balancer::NotDrained>,
    /// Why this attempt asks for an escalation of its own (see `AttemptDetail`).
    escalate: Option<String>,
    /// The policy's escalation runs, not an attempt: after how many attempts.
    escalating: Option<u32>,
}

/// Why an action did not succeed: what kind of failure it is (decided from the error's
/// type where it arose), and the words for the journal.
#[derive(Debug)]
pub struct Failure {
    pub timed_out: bool,
    /// The action had nothing to do here (see `OutcomeResult::NotApplicable`).
    pub not_applicable: bool,
    pub message: String,
}

impl Failure {
    pub fn failed(message: String) -> Failure {
        Failure {
            timed_out: false,
            not_applicable: false,
            message,
        }
    }
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

impl<F: Family> Executor<F> {
    pub fn new(family: F) -> Self {
        Executor {
            family,
            fleet: None,
            local_fleet: crate::fleet::FleetLock::local(),
            kept_slots: Default::default(),
            drain_trouble: Default::default(),
        }
    }

    /// Takes `fleet` slots in etcd for the policies that ask for them.
    pub fn with_fleet(mut self, fleet: Option<&crate::config::FleetConfig>) -> Self {
        self.fleet = fleet.map(|f| {
            let etcd = crate::fleet::etcd::Etcd::new(f.etcd.clone(), FLEET_TIMEOUT);
            (crate::fleet::FleetLock::new(etcd, f.ttl), f.member.clone())
        });
        self
    }

    /// The lock a group's slots are held in, and this agent's name there: `None` for
    /// etcd when the config names none.
    fn fleet_lock(
        &self,
        kind: crate::policy::FleetLockKind,
    ) -> Option<(&crate::fleet::FleetLock, &str)> {
        match kind {
            crate::policy::FleetLockKind::Etcd => self
                .fleet
                .as_ref()
                .map(|(lock, member)| (lock, member.as_str())),
            crate::policy::FleetLockKind::Local => Some((
                &self.local_fleet,
                self.fleet.as_ref().map_or("local", |(_, member)| member),
            )),
        }
    }

    /// At an attempt's end: the slot goes back, unless its server stays drained.
    async fn give_back_fleet_slot(&self, trail: &mut EditTrail) {
        let Some((slot, kind, server)) = trail.fleet_slot.take() else {
            return;
        };
        if trail.left_drained && !slot.lost() {
            tracing::info!(slot = %slot.key, "the server stays drained: its fleet slot stays taken");
            self.kept_slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(slot.key.clone(), (slot, kind, server));
            return;
        }
        self.release_slot(slot, kind).await;
    }

    /// Gives back the slots this agent keeps in `group` for servers that serve again
    /// by now (readied by hand, by a later attempt's ramp that failed midway, or after
    /// the policy gave up waiting): whether any was. Asked when the group is full, so
    /// a kept slot never outlives its drain for long.
    pub(crate) async fn reclaim_kept_slots(&self, group: &str) -> bool {
        let prefix = crate::fleet::FleetLock::group_prefix(group);
        let kept: Vec<(String, KeptSlot)> = {
            let mut kept = self.kept_slots.lock().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<String> = kept
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| kept.remove(&k).map(|v| (k, v)))
                .collect()
        };
        let mut freed = false;
        for (key, (slot, kind, server)) in kept {
            let serving = match &server {
                Some(server) => load_balancer::serving(server.as_ref())
                    .await
                    .unwrap_or(false),
                None => false,
            };
            if serving || slot.lost() {
                tracing::info!(slot = %key, "the server a kept fleet slot was for serves again: slot given back");
                self.release_slot(slot, kind).await;
                freed = true;
            } else {
                self.kept_slots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, (slot, kind, server));
            }
        }
        freed
    }

    /// The slot a server left drained by an earlier attempt still holds, if any.
    fn kept_slot(&self, key: &str) -> Option<KeptSlot> {
        self.kept_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
    }

    async fn release_slot(&self, slot: crate::fleet::Slot, kind: crate::policy::FleetLockKind) {
        if let Some((lock, _)) = self.fleet_lock(kind) {
            if let Err(e) = lock.release(slot).await {
                // Its lease runs out within the TTL all the same.
                tracing::warn!(error = %e, "could not give the fleet slot back");
            }
        }
    }

    pub fn family(&self) -> &F {
        &self.family
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
        if let Some(failure) = self
            .ramp_back(policy, verified, &mut trail, &mut steps)
            .await
        {
            result = OutcomeResult::Failed;
            error.get_or_insert(format!("ramp: {failure}"));
        }
        self.give_back_fleet_slot(&mut trail).await;
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
                escalate: trail.escalate,
            }),
        }
    }

    /// A dry-run policy's actions through the family's own dry run, in order, up to
    /// the first the target system refuses: whether every change was accepted, and
    /// each action's line. `None` when the family rehearses none of them.
    pub async fn rehearse(&self, policy: &Policy) -> Option<(bool, Vec<String>)> {
        let mut steps = Vec::new();
        let mut rehearsed = false;
        for action in &policy.spec.actions {
            let Some(answer) = Box::pin(self.family.rehearse(policy, action)).await else {
                steps.push(format!(
                    "{}: not rehearsed (nothing is sent in a dry run)",
                    action.name()
                ));
                continue;
            };
            rehearsed = true;
            match answer {
                Ok(would) => steps.push(format!("{}: {would}", action.name())),
                Err(refused) => {
                    steps.push(format!("{}: {}", action.name(), refused.message));
                    return Some((false, steps));
                }
            }
        }
        rehearsed.then_some((true, steps))
    }

    /// Runs the policy's `escalate` actions; returns the failures, if any.
    pub async fn run_escalation(&self, policy: &Policy, attempts: u32) -> Vec<String> {
        let mut failures = Vec::new();
        let mut trail = EditTrail {
            escalating: Some(attempts),
            ..EditTrail::default()
        };
        for action in &policy.spec.escalate {
            if let Err(f) = self.run_action(policy, action, 0, &mut trail).await {
                failures.push(format!("{}: {}", action.name(), f.message));
            }
        }
        self.give_back_fleet_slot(&mut trail).await;
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
        // Boxed: a family's actions together make a large future, and every attempt in
        // flight would carry that size for its whole life (a thousand pods crashing at
        // once are a thousand attempts).
        if let Some(acted) = Box::pin(self.family.act(self, policy, action)).await {
            trail.diffs.extend(acted.diff);
            if acted.result.is_ok() {
                trail.verified = acted.verified;
            }
            return acted.result;
        }
        let target = crate::engine::target_name(policy);
        match action {
            Action::Notify(args) => {
                let notice = notify::Notice {
                    policy: policy.name(),
                    target: &target,
                    attempt_id,
                    escalation: trail.escalating,
                    window: policy.spec.guard.window,
                    at: std::time::SystemTime::now(),
                };
                let body = notify::body(args.format, &notice);
                Ok(notify::post_webhook(&args.webhook, &body, args.timeout)
                    .await
                    .map(|status| format!("webhook answered {status}"))?)
            }
            Action::Drain(_) | Action::Ready(_) | Action::SetWeight(_) => {
                self.shift(policy, action, trail).await
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
            // Validation keeps every other action to the families that have it.
            other => Err(Failure::failed(format!(
                "`{}` cannot act on {target}",
                other.name()
            ))),
        }
    }

    /// The policy's verification: whether it passed and what it saw; `None` without one.
    pub async fn verify(&self, policy: &Policy) -> Option<(bool, String)> {
        let verify = policy.spec.verify.as_ref()?;
        let mut checks = Vec::new();
        let mut passed = true;
        if let Some(http) = &verify.http {
            let (ok, detail) = self.verify_http(http).await;
            passed &= ok;
            checks.push(detail);
        }
        if let Some((ok, detail)) = self.family.verify_target(policy, verify).await {
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
}

#[cfg(test)]
mod tests;
