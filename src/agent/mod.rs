//! The host agent: wires signals → engine → actions → journal on a systemd host.
//!
//! One task owns the engine and the journal, so decisions are made and journalled in a
//! single order. Every decision is journalled (and fsync'd) before anything runs: an
//! attempt whose intent cannot be written is not started, and the engine is told it
//! failed.

mod clock;
mod logs;
mod probes;
mod service;
mod watch_files;

use crate::action::{Executor, DEFAULT_JOB_TIMEOUT};
use crate::audit::{decision_record, outcome_record, AuditError, Journal};
use crate::config::Config;
use crate::engine::{AttemptDetail, Decision, Engine, Event, Outcome, OutcomeResult, Verdict};
use crate::policy::{self, Diagnostics, Policy};
use crate::signal::systemd::{self, Bus};
use clock::Clock;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub struct AgentOptions {
    pub policy_paths: Vec<PathBuf>,
    pub config: Config,
    pub bus: Bus,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the policies are invalid; the agent did not start:\n{0}")]
    Policies(Diagnostics),
    #[error(transparent)]
    Journal(#[from] AuditError),
    #[error("cannot install the {0} handler: {1}")]
    Signal(&'static str, std::io::Error),
}

/// How long SIGTERM waits for attempts in flight to finish and be journalled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// An attempt in flight. It keeps its own copy of the policy: a reload may renumber or
/// remove policies before the attempt reports back.
struct Running {
    policy: Policy,
    started: tokio::time::Instant,
}

struct Agent {
    engine: Engine,
    journal: Journal,
    clock: Clock,
    executor: Arc<Executor>,
    events: mpsc::Sender<Event>,
    attempts: JoinSet<()>,
    running: HashMap<u64, Running>,
    decisions: Vec<Decision>,
}

pub async fn run(options: AgentOptions) -> Result<(), AgentError> {
    let policies = policy::load(&options.policy_paths).map_err(AgentError::Policies)?;
    let journal = Journal::open(&options.config.journal_path, options.config.rotation)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (events_tx, mut events_rx) = mpsc::channel::<Event>(1024);

    let units = units_of(&policies);
    let (link, handle) = systemd::link(
        options.bus.clone(),
        units,
        events_tx.clone(),
        stop_rx.clone(),
    );
    let link_task = tokio::spawn(link.run());
    let mut probes = probes::Probes::start(&policies, &events_tx);
    let mut logs = logs::Logs::start(&policies, &events_tx);

    let mut agent = Agent {
        engine: Engine::new(policies, options.config.limits.clone()),
        journal,
        clock: Clock::start(),
        executor: Arc::new(Executor::new(handle, DEFAULT_JOB_TIMEOUT)),
        events: events_tx,
        attempts: JoinSet::new(),
        running: HashMap::new(),
        decisions: Vec::new(),
    };
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| AgentError::Signal("SIGHUP", e))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| AgentError::Signal("SIGTERM", e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| AgentError::Signal("SIGINT", e))?;
    let mut file_changes = watch_files::watch(&options.policy_paths);
    let mut watchdog = service::watchdog();
    tracing::info!(
        policies = agent.engine.policies().len(),
        journal = %options.config.journal_path.display(),
        bus = %options.bus,
        "salve agent started"
    );
    service::ready();

    loop {
        let deadline = agent
            .engine
            .next_deadline()
            .map(|t| agent.clock.instant_of(t));
        tokio::select! {
            Some(event) = events_rx.recv() => agent.handle(event),
            _ = sleep_until_opt(deadline) => agent.handle(Event::Tick {}),
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading policies");
                agent.reload(&options.policy_paths, &mut probes, &mut logs);
            }
            Some(()) = file_changes.recv() => {
                tracing::info!("policy files changed: reloading");
                agent.reload(&options.policy_paths, &mut probes, &mut logs);
            }
            _ = service::tick(&mut watchdog) => service::watchdog_ping(),
            Some(_) = agent.attempts.join_next(), if !agent.attempts.is_empty() => {}
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    service::stopping();
    tracing::info!(
        in_flight = agent.running.len(),
        "stopping: finishing attempts in flight"
    );
    // No new decisions from here: only outcomes of attempts already running are taken,
    // journalled, and shown to the engine.
    let grace = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(grace);
    while !agent.running.is_empty() {
        tokio::select! {
            Some(event) = events_rx.recv() => {
                if let Event::Outcome(outcome) = &event {
                    agent.journal_outcome(outcome);
                }
            }
            _ = &mut grace => {
                tracing::error!(abandoned = agent.running.len(), "attempts still running at shutdown; their outcome is not journalled");
                break;
            }
        }
    }
    probes.stop();
    logs.stop();
    let _ = stop_tx.send(true);
    let _ = link_task.await;
    tracing::info!("salve agent stopped");
    Ok(())
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Every unit a policy targets: watched for state, and the object of its actions.
fn units_of(policies: &[Policy]) -> Vec<String> {
    let set: BTreeSet<String> = policies
        .iter()
        .map(|p| p.spec.target.unit.to_string())
        .collect();
    set.into_iter().collect()
}

impl Agent {
    fn handle(&mut self, event: Event) {
        if let Event::Outcome(outcome) = &event {
            self.journal_outcome(outcome);
        }
        let now = self.clock.now();
        self.decisions.clear();
        let mut decisions = std::mem::take(&mut self.decisions);
        self.engine.handle(now, &event, &mut decisions);
        self.carry_out(&decisions);
        self.decisions = decisions;
    }

    fn journal_outcome(&mut self, outcome: &Outcome) {
        let Some(id) = outcome.attempt_id else { return };
        let Some(running) = self.running.remove(&id) else {
            return;
        };
        let policy = &running.policy;
        let record = outcome_record(
            policy,
            id,
            outcome,
            running.started.elapsed(),
            SystemTime::now(),
        );
        tracing::info!(policy = policy.name(), attempt_id = id, result = ?outcome.result, verified = ?outcome.verified, "attempt finished");
        if let Err(e) = self.journal.append(&record) {
            tracing::error!(error = %e, "cannot journal an attempt's outcome");
        }
    }

    fn carry_out(&mut self, decisions: &[Decision]) {
        for decision in decisions {
            let policy = self.engine.policy(decision.policy).clone();
            let span = tracing::info_span!("decision", policy = policy.name(), target = %policy.spec.target.unit);
            let _enter = span.enter();
            let record = decision_record(decision, &policy, SystemTime::now());
            let journalled = self.journal.append(&record);
            match (&decision.verdict, journalled) {
                (
                    Verdict::Act {
                        attempt_id,
                        attempt,
                        ..
                    },
                    Ok(()),
                ) => {
                    tracing::info!(attempt_id, attempt, "acting");
                    self.start_attempt(policy, *attempt_id);
                }
                (Verdict::Act { attempt_id, .. }, Err(e)) => {
                    // No action runs without its journal record. Tell the engine the
                    // attempt failed so it backs off instead of waiting forever.
                    tracing::error!(error = %e, attempt_id, "intent not journalled: the attempt does not run");
                    let failed = Outcome {
                        policy: policy.name().to_string(),
                        attempt_id: Some(*attempt_id),
                        result: OutcomeResult::Failed,
                        verified: None,
                        detail: Some(AttemptDetail {
                            error: Some(format!(
                                "not run: the journal could not record the intent: {e}"
                            )),
                            ..AttemptDetail::default()
                        }),
                    };
                    let _ = self.events.try_send(Event::Outcome(failed));
                }
                (
                    Verdict::Escalate {
                        attempts,
                        dry_run: false,
                    },
                    journalled,
                ) => {
                    if let Err(e) = journalled {
                        tracing::error!(error = %e, "escalation not journalled: not sent");
                        continue;
                    }
                    tracing::warn!(attempts, "circuit open: escalating");
                    let executor = Arc::clone(&self.executor);
                    let attempts = *attempts;
                    self.attempts.spawn(async move {
                        executor.run_escalation(&policy, attempts).await;
                    });
                }
                (Verdict::Escalate { .. }, _) | (Verdict::Skip { .. }, _) => {
                    if let Verdict::Skip { reason, .. } = &decision.verdict {
                        tracing::info!(reason = reason.as_str(), "skipped");
                    }
                }
            }
        }
    }

    fn start_attempt(&mut self, policy: Policy, attempt_id: u64) {
        self.running.insert(
            attempt_id,
            Running {
                policy: policy.clone(),
                started: tokio::time::Instant::now(),
            },
        );
        let executor = Arc::clone(&self.executor);
        let events = self.events.clone();
        self.attempts.spawn(async move {
            let outcome = executor.run_attempt(&policy, attempt_id).await;
            let _ = events.send(Event::Outcome(outcome)).await;
        });
    }

    /// Loads the policies again; an invalid set is rejected with every error logged,
    /// and the agent keeps running the last good set.
    fn reload(&mut self, paths: &[PathBuf], probes: &mut probes::Probes, logs: &mut logs::Logs) {
        match policy::load(paths) {
            Ok(policies) => {
                let new_units: BTreeSet<String> = units_of(&policies).into_iter().collect();
                let old_units: BTreeSet<String> =
                    units_of(self.engine.policies()).into_iter().collect();
                for unit in new_units.difference(&old_units) {
                    let executor = Arc::clone(&self.executor);
                    let unit = unit.clone();
                    tokio::spawn(async move {
                        if let Err(e) = executor.watch_unit(&unit).await {
                            tracing::warn!(unit = %unit, error = %e, "watching the unit a reloaded policy names did not complete");
                        }
                    });
                }
                probes.restart(&policies, &self.events);
                logs.restart(&policies, &self.events);
                let count = policies.len();
                let now = self.clock.now();
                let mut decisions = Vec::new();
                self.engine.replace_policies(now, policies, &mut decisions);
                tracing::info!(policies = count, "policies reloaded");
                self.carry_out(&decisions);
            }
            Err(diagnostics) => {
                for d in &diagnostics.0 {
                    tracing::error!(location = %d, "invalid policy");
                }
                tracing::error!(
                    errors = diagnostics.0.len(),
                    "reload rejected: keeping the last good policy set"
                );
            }
        }
    }
}
