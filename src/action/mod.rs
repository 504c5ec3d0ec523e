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
use crate::policy::{Action, HttpVerify, LbServer, Policy, Verify};
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
    /// line and the weight it had. Only the Kubernetes family reaches an API server.
    fn weigh_route<'a>(
        &'a self,
        _policy: &'a Policy,
        backend: &'a crate::policy::GatewayBackend,
        _weight: load_balancer::RouteWeight,
    ) -> impl Future<Output = Result<(String, u32), Failure>> + Send + 'a {
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
    /// Policies whose last drain could not be made and has been escalated: the next
    /// such attempt does not escalate again, a drain that succeeds clears it.
    drain_trouble: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// Why a drain was not made, and whether a person must hear of it (a full group is
/// the fleet guard doing its job; etcd out of reach or a lost slot is not).
struct NotDrained {
    why: String,
    escalate: bool,
}

/// What the config edits and drains of one attempt left for its outcome.
#[derive(Default)]
struct EditTrail {
    diffs: Vec<String>,
    /// What the last config edit's verification saw, while nothing has changed since.
    verified: Option<String>,
    /// Servers drained with a ramp back, and the weight each had: given back once the
    /// attempt verifies, and only then.
    ramps: Vec<(load_balancer::DrainedServer, crate::policy::Ramp, u32)>,
    /// The fleet slot this attempt holds, given back when it ends.
    fleet_slot: Option<crate::fleet::Slot>,
    /// Why this attempt may not drain, once a fleet slot was refused it.
    fleet_refused: Option<NotDrained>,
    /// Why this attempt asks for an escalation of its own (see `AttemptDetail`).
    escalate: Option<String>,
    /// The policy's escalation runs, not an attempt.
    escalating: bool,
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

/// A policy's instance: each pod of a selector has its own drains and troubles.
fn trouble_key(policy: &Policy) -> String {
    format!("{}\n{}", policy.name(), crate::engine::target_name(policy))
}

fn lost_slot(group: &str) -> String {
    format!(
        "fleet {group}: this agent lost its slot (its lease ran out while it was stopped or cut off); it must not act on the load balancer"
    )
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

    /// Whether the attempt may drain now: it holds a fleet slot and still does (the
    /// fencing check), or took one just now. `Err` says why not.
    async fn fleet_slot(
        &self,
        guard: &crate::policy::FleetGuard,
        server: LbServer<'_>,
        trail: &mut EditTrail,
    ) -> Result<(), NotDrained> {
        use crate::fleet::Acquired;
        if let Some(refused) = &trail.fleet_refused {
            return Err(NotDrained {
                why: refused.why.clone(),
                escalate: refused.escalate,
            });
        }
        let Some((lock, member)) = &self.fleet else {
            return Err(NotDrained {
                why: format!(
                    "fleet {}: the policy's slots are held in etcd, and the agent config names none (`fleet.etcd`)",
                    guard.group
                ),
                escalate: true,
            });
        };
        let trouble = |why: String| NotDrained {
            why,
            escalate: true,
        };
        let refused = match &trail.fleet_slot {
            Some(slot) => match lock.still_held(slot).await {
                Ok(true) => return Ok(()),
                Ok(false) => trouble(lost_slot(&guard.group)),
                Err(e) => trouble(format!(
                    "fleet {}: cannot check this agent's slot: {e}",
                    guard.group
                )),
            },
            None => match self.fleet_slots(guard, server).await {
                Err(why) => trouble(why),
                Ok(slots) => match lock
                    .acquire_for(&guard.group, member, Some(&server.to_string()), slots)
                    .await
                {
                    Ok(Acquired::Held(slot)) => {
                        trail.fleet_slot = Some(slot);
                        return Ok(());
                    }
                    Ok(Acquired::Full { holders }) => NotDrained {
                        why: format!(
                            "fleet {}: all {slots} slot(s){} are taken, by {}",
                            guard.group,
                            match guard.max_concurrent {
                                crate::policy::FleetSlots::Percent(p) => {
                                    format!(" ({p}% of the servers)")
                                }
                                crate::policy::FleetSlots::Count(_) => String::new(),
                            },
                            holders.join(", ")
                        ),
                        escalate: false,
                    },
                    Err(e) => trouble(format!("fleet {}: {e}", guard.group)),
                },
            },
        };
        trail.fleet_refused = Some(NotDrained {
            why: refused.why.clone(),
            escalate: refused.escalate,
        });
        Err(refused)
    }

    /// The group's slots: its number, or its share of the servers behind the load
    /// balancer `server` is in, counted now.
    async fn fleet_slots(
        &self,
        guard: &crate::policy::FleetGuard,
        server: LbServer<'_>,
    ) -> Result<u32, String> {
        match guard.max_concurrent {
            crate::policy::FleetSlots::Count(n) => Ok(n),
            share => load_balancer::servers_behind(server)
                .await
                .map(|servers| share.of(servers))
                .map_err(|f| {
                    format!(
                        "fleet {}: cannot count the servers for {share}: {}",
                        guard.group, f.message
                    )
                }),
        }
    }

    /// Notes a drain that could not be made: escalated the first time since the
    /// policy's last good drain.
    fn drain_trouble(&self, policy: &Policy, why: &str, trail: &mut EditTrail) {
        // An escalation's own drain is not news of its own: it is the escalation.
        if trail.escalating {
            return;
        }
        let mut trouble = self.drain_trouble.lock().unwrap_or_else(|e| e.into_inner());
        if trouble.insert(trouble_key(policy)) {
            trail.escalate.get_or_insert_with(|| why.to_string());
        }
    }

    fn drain_made(&self, policy: &Policy) {
        let mut trouble = self.drain_trouble.lock().unwrap_or_else(|e| e.into_inner());
        trouble.remove(&trouble_key(policy));
    }

    /// Whether the attempt may still act on the load balancer for its ramp: it holds
    /// the fleet slot it drained under (or drained under none).
    async fn still_holds_slot(&self, policy: &Policy, trail: &EditTrail) -> Result<(), String> {
        let (Some(slot), Some((lock, _)), Some(guard)) =
            (&trail.fleet_slot, &self.fleet, &policy.spec.fleet)
        else {
            return Ok(());
        };
        match lock.still_held(slot).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(lost_slot(&guard.group)),
            Err(e) => Err(format!(
                "fleet {}: cannot check this agent's slot: {e}",
                guard.group
            )),
        }
    }

    async fn give_back_fleet_slot(&self, trail: &mut EditTrail) {
        if let (Some(slot), Some((lock, _))) = (trail.fleet_slot.take(), &self.fleet) {
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
        // Weight goes back only to a server whose attempt verified; one that did not
        // stays drained, and its policy's guard counts the failure. Nor does an agent
        // that lost its fleet slot meanwhile touch the load balancer again: the slot
        // is checked before every step.
        for (server, ramp, weight) in std::mem::take(&mut trail.ramps) {
            if verified != Some(true) {
                steps.push(format!(
                    "ramp: not run: {} stays drained, as the attempt did not verify",
                    server.as_ref()
                ));
                continue;
            }
            let weights = load_balancer::ramp_weights(weight, ramp.steps);
            for (i, &w) in weights.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(ramp.interval).await;
                }
                if let Err(why) = self.still_holds_slot(policy, &trail).await {
                    tracing::warn!(reason = %why, "ramp stopped");
                    steps.push(if i == 0 {
                        format!("ramp: not run: {why}; {} stays drained", server.as_ref())
                    } else {
                        format!(
                            "ramp: stopped after step {i} of {}: {why}; {} keeps its weight {}",
                            weights.len(),
                            server.as_ref(),
                            weights[i - 1]
                        )
                    });
                    self.drain_trouble(policy, &why, &mut trail);
                    break;
                }
                let n = weights.len();
                let step = match &server {
                    load_balancer::DrainedServer::Haproxy(s) => {
                        load_balancer::ramp_step(s, i, n, w).await
                    }
                    load_balancer::DrainedServer::Nginx(s) => {
                        load_balancer::nginx::ramp_step(&self.family, s, i, n, w, &mut trail.diffs)
                            .await
                    }
                    load_balancer::DrainedServer::Gateway(g) => self
                        .family
                        .weigh_route(policy, g, load_balancer::RouteWeight::To(w))
                        .await
                        .map(|(line, _)| format!("step {} of {n}: {line}", i + 1)),
                };
                match step {
                    Ok(line) => steps.push(format!("ramp: {line}")),
                    Err(failure) => {
                        steps.push(format!("ramp: {}", failure.message));
                        tracing::warn!(error = %failure.message, "the ramp back failed");
                        result = OutcomeResult::Failed;
                        error.get_or_insert(format!("ramp: {}", failure.message));
                        break;
                    }
                }
            }
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
            escalating: true,
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
                let body = serde_json::json!({
                    "policy": policy.name(),
                    "target": target,
                    "attemptId": attempt_id,
                    "message": format!("salve: policy {} on {target}", policy.name()),
                });
                Ok(notify::post_webhook(&args.webhook, &body, args.timeout)
                    .await
                    .map(|status| format!("webhook answered {status}"))?)
            }
            Action::Drain(args) => {
                let server =
                    load_balancer::server_of(&args.haproxy, &args.nginx, &args.gateway, policy)?;
                // Without a slot nothing is drained, and the rest of the attempt (a
                // restart of what is down here takes no capacity) still runs.
                if let Some(guard) = &policy.spec.fleet {
                    if let Err(refused) = self.fleet_slot(guard, server, trail).await {
                        tracing::warn!(reason = %refused.why, "not drained");
                        if refused.escalate {
                            self.drain_trouble(policy, &refused.why, trail);
                        }
                        return Ok(format!(
                            "not drained: {}; the rest of the attempt goes on",
                            refused.why
                        ));
                    }
                }
                // A drain the load balancer refuses (or nginx -t) must not keep the
                // node from being healed: the rest of the attempt goes on, and a
                // person hears of it once.
                let drained = match server {
                    LbServer::Haproxy(s) => load_balancer::drain(s)
                        .await
                        .map(|drained| (drained.line, drained.weight)),
                    LbServer::Nginx(s) => {
                        load_balancer::nginx::drain(&self.family, s, &mut trail.diffs).await
                    }
                    LbServer::Gateway(g) => self
                        .family
                        .weigh_route(policy, g, load_balancer::RouteWeight::Drain)
                        .await
                        .map(|(line, had)| (format!("drained {line}"), had)),
                };
                let (line, weight) = match drained {
                    Ok(done) => done,
                    Err(failure) => {
                        tracing::warn!(reason = %failure.message, "not drained");
                        let why = format!("{server}: {}", failure.message);
                        self.drain_trouble(policy, &why, trail);
                        return Ok(format!(
                            "not drained: {}; the rest of the attempt goes on",
                            failure.message
                        ));
                    }
                };
                self.drain_made(policy);
                // A server already at weight 0 (an earlier drain that never ramped,
                // a person) has no weight salve knows to give back.
                if let (Some(_), 0) = (&args.ramp, weight) {
                    return Ok(format!(
                        "{line}; no ramp: its weight before is not known, give it back with setWeight"
                    ));
                }
                if let Some(ramp) = &args.ramp {
                    trail.ramps.push((
                        load_balancer::DrainedServer::of(server),
                        ramp.clone(),
                        weight,
                    ));
                }
                Ok(line)
            }
            Action::Ready(args) => {
                match load_balancer::server_of(&args.haproxy, &args.nginx, &args.gateway, policy)? {
                    LbServer::Haproxy(s) => load_balancer::ready(s).await,
                    LbServer::Nginx(s) => {
                        load_balancer::nginx::weigh(&self.family, s, None, &mut trail.diffs).await
                    }
                    LbServer::Gateway(g) => self
                        .family
                        .weigh_route(policy, g, load_balancer::RouteWeight::Ready)
                        .await
                        .map(|(line, _)| format!("readied {line}")),
                }
            }
            Action::SetWeight(args) => {
                let server =
                    load_balancer::server_of(&args.haproxy, &args.nginx, &args.gateway, policy)?;
                // A zero weight is a drain by another name: under a fleet guard it
                // takes a slot first. Any other weight leaves the server serving (and
                // giving weight back must never wait for a slot).
                let zero = matches!(
                    args.weight,
                    crate::policy::LbWeight::Absolute(0) | crate::policy::LbWeight::Percent(0)
                );
                if let (Some(guard), true) = (&policy.spec.fleet, zero) {
                    if let Err(refused) = self.fleet_slot(guard, server, trail).await {
                        tracing::warn!(reason = %refused.why, "weight not set");
                        if refused.escalate {
                            self.drain_trouble(policy, &refused.why, trail);
                        }
                        return Ok(format!(
                            "weight not set: {}; the rest of the attempt goes on",
                            refused.why
                        ));
                    }
                }
                let absolute = || match args.weight {
                    crate::policy::LbWeight::Absolute(w) => Ok(w),
                    // Validation keeps nginx and Gateway API weights absolute.
                    crate::policy::LbWeight::Percent(_) => Err(Failure::failed(format!(
                        "{server} takes a whole weight, not {}",
                        args.weight
                    ))),
                };
                match server {
                    LbServer::Haproxy(s) => load_balancer::set_weight(s, args.weight).await,
                    LbServer::Nginx(s) => {
                        load_balancer::nginx::weigh(
                            &self.family,
                            s,
                            Some(absolute()?),
                            &mut trail.diffs,
                        )
                        .await
                    }
                    LbServer::Gateway(g) => self
                        .family
                        .weigh_route(policy, g, load_balancer::RouteWeight::To(absolute()?))
                        .await
                        .map(|(line, _)| format!("set the weight of {line}")),
                }
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
