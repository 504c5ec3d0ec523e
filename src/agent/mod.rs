//! The host agent: wires signals → engine → actions → journal on a systemd host.
//!
//! One task owns the engine and the journal's queue, so decisions are made and
//! journalled in a single order. The journal's thread writes and fsyncs; an attempt
//! waits for its intent to be durable before its first action, and an attempt whose
//! intent cannot be written does not run and fails. The loop itself never waits for
//! the disk. At start the guard state is rebuilt from the journal.

mod attempts;
mod clock;
mod logs;
mod probes;
mod recovery;
mod service;
mod watch_files;

use crate::action::{Executor, SystemdUnits, DEFAULT_JOB_TIMEOUT};
use crate::audit::{
    decision_record, outcome_record, AuditError, Durable, Journal, JournalWriter, Sink,
};
use crate::config::Config;
use crate::engine::{Decision, Engine, Event, Outcome, Verdict};
use crate::policy::{self, Diagnostics, Policy};
use crate::systemd::{self, Bus, SystemdHandle};
use clock::Clock;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

pub struct AgentOptions {
    pub policy_paths: Vec<PathBuf>,
    pub config: Config,
    pub bus: Bus,
    /// Wraps the opened journal before its writer thread takes it: `None` writes the
    /// journal itself. Fault injection (a disk that stalls) goes here.
    pub journal_sink: Option<WrapSink>,
    /// Stands in for the D-Bus link to systemd: `None` connects to `bus`. The agent's
    /// own tests put a scripted systemd here, so its loop runs without root or a bus.
    pub systemd_link: Option<LinkFactory>,
}

/// See [`AgentOptions::journal_sink`].
pub type WrapSink = Box<dyn FnOnce(Journal) -> Box<dyn Sink> + Send>;

/// See [`AgentOptions::systemd_link`]: given the units to watch, where unit events go
/// and the shutdown signal, starts a link and returns the handle actions use.
pub type LinkFactory = Box<
    dyn FnOnce(Vec<String>, mpsc::Sender<Event>, watch::Receiver<bool>) -> SystemdHandle + Send,
>;

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
    /// Shared with escalation tasks, which journal that their notifications went out.
    journal: Arc<JournalWriter>,
    clock: Clock,
    executor: Arc<Executor<SystemdUnits>>,
    events: mpsc::Sender<Event>,
    attempts: attempts::Attempts,
    running: HashMap<u64, Running>,
    decisions: Vec<Decision>,
}

pub async fn run(options: AgentOptions) -> Result<(), AgentError> {
    let policies = load_host_policies(&options.policy_paths).map_err(AgentError::Policies)?;
    let journal_path = options.config.journal_path.clone();
    let journal = Journal::open(&journal_path, options.config.rotation)?;
    let clock = Clock::start();
    let recovered = recovery::recover(&journal_path, &policies, &clock)?;
    let journal = match options.journal_sink {
        Some(wrap) => JournalWriter::start(wrap(journal), journal_path.clone())?,
        None => JournalWriter::start(journal, journal_path.clone())?,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (events_tx, mut events_rx) = mpsc::channel::<Event>(1024);

    let units = units_of(&policies);
    let (handle, link_task) = match options.systemd_link {
        Some(start) => (start(units, events_tx.clone(), stop_rx.clone()), None),
        None => {
            let (link, handle) = systemd::link(
                options.bus.clone(),
                units,
                events_tx.clone(),
                stop_rx.clone(),
            );
            (handle, Some(tokio::spawn(link.run())))
        }
    };
    let mut probes = probes::Probes::start(&policies, &events_tx);
    let mut logs = logs::Logs::start(&policies, &events_tx);

    let mut engine = Engine::new(policies, options.config.limits.clone());
    if recovered.unreadable > 0 {
        tracing::warn!(
            lines = recovered.unreadable,
            "journal lines that could not be read were left out of the guard state"
        );
    }
    for record in recovered.unfinished {
        tracing::warn!(policy = %record.policy, target = %record.target, attempt_id = ?record.entry.id(), "an attempt was cut off by the agent's last stop: journalled as unknown, counted as failed");
        journal.record(record);
    }
    engine.restore(&recovered.past, recovered.last_attempt_id);
    tracing::info!(
        past_events = recovered.past.len(),
        last_attempt_id = recovered.last_attempt_id,
        "guard state rebuilt from the journal"
    );
    let mut agent = Agent {
        engine,
        journal: Arc::new(journal),
        clock,
        executor: Arc::new(Executor::new(
            SystemdUnits::new(handle, DEFAULT_JOB_TIMEOUT)
                .with_keep_backups(options.config.config_backups),
        )),
        events: events_tx,
        attempts: attempts::Attempts::default(),
        running: HashMap::new(),
        decisions: Vec::new(),
    };
    agent.resend_escalations(recovered.unsent_escalations);
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
            lost = agent.attempts.next_lost() => agent.handle(Event::Outcome(lost)),
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
    // Escalations in flight are waited for too: the circuit they belong to is open,
    // and a notification cut off now would never be sent.
    while !agent.running.is_empty() || agent.attempts.running() > 0 {
        tokio::select! {
            Some(event) = events_rx.recv() => {
                if let Event::Outcome(outcome) = &event {
                    agent.journal_outcome(outcome);
                }
            }
            ended = agent.attempts.next() => {
                if let attempts::Ended::Lost(lost) = ended {
                    agent.journal_outcome(&lost);
                }
            }
            _ = &mut grace => {
                tracing::error!(abandoned = agent.running.len(), tasks = agent.attempts.running(), "attempts or escalations still running at shutdown; their outcome is not journalled");
                break;
            }
        }
    }
    probes.stop();
    logs.stop();
    let _ = stop_tx.send(true);
    if let Some(link_task) = link_task {
        let _ = link_task.await;
    }
    // Blocks until what is queued is on disk: nothing else needs the runtime now. An
    // escalation abandoned at the grace's end may still hold the writer; its drop
    // then flushes and joins instead.
    let Agent { journal, .. } = agent;
    if let Ok(journal) = Arc::try_unwrap(journal) {
        journal.close();
    }
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
/// The record that an escalation's actions ran.
fn escalation_sent(policy: &Policy, failures: Vec<String>) -> crate::audit::Record {
    crate::audit::Record {
        ts: SystemTime::now(),
        policy: policy.name().to_string(),
        target: crate::engine::target_name(policy),
        entry: crate::audit::Entry::EscalationSent { failures },
    }
}

/// The agent acts on systemd units; a policy on anything else is refused at load.
fn load_host_policies(paths: &[PathBuf]) -> Result<Vec<Policy>, crate::policy::Diagnostics> {
    let policies = policy::load(paths)?;
    policy::only_targets(
        &policies,
        |t| t.unit().is_some(),
        "the host agent acts on systemd units; Kubernetes targets are the operator's",
    )?;
    Ok(policies)
}

fn units_of(policies: &[Policy]) -> Vec<String> {
    let set: BTreeSet<String> = policies
        .iter()
        .filter_map(|p| p.spec.target.unit().map(|u| u.to_string()))
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
        self.journal.record(record);
    }

    fn carry_out(&mut self, decisions: &[Decision]) {
        for decision in decisions {
            let policy = self.engine.policy(decision.policy).clone();
            let span = tracing::info_span!("decision", policy = policy.name(), target = %crate::engine::target_name(&policy));
            let _enter = span.enter();
            let record = decision_record(decision, &policy, SystemTime::now());
            match &decision.verdict {
                Verdict::Act {
                    attempt_id,
                    attempt,
                    ..
                } => {
                    tracing::info!(attempt_id, attempt, "acting");
                    let durable = self.journal.write(record);
                    self.start_attempt(policy, *attempt_id, durable);
                }
                Verdict::Escalate {
                    attempts,
                    dry_run: false,
                } => {
                    tracing::warn!(attempts, "circuit open: escalating");
                    let durable = self.journal.write(record);
                    self.escalate(policy, *attempts, Some(durable));
                }
                Verdict::Escalate { .. } => self.journal.record(record),
                Verdict::Skip { reason, .. } => {
                    tracing::info!(reason = reason.as_str(), "skipped");
                    self.journal.record(record);
                }
            }
        }
    }

    /// Runs the policy's escalation once its `escalate` record is durable (`None`: it
    /// already is), then journals that it went out.
    fn escalate(&mut self, policy: Policy, attempts: u32, decided: Option<Durable>) {
        let executor = Arc::clone(&self.executor);
        let journal = Arc::clone(&self.journal);
        self.attempts.spawn_escalation(async move {
            if let Some(decided) = decided {
                if let Err(e) = decided.await {
                    tracing::error!(policy = policy.name(), error = %e, "escalation not journalled: not sent");
                    return;
                }
            }
            let failures = executor.run_escalation(&policy, attempts).await;
            journal.record(escalation_sent(&policy, failures));
        });
    }

    /// Escalations the journal shows decided but never sent (the agent died while
    /// notifying) go out now, if their circuit is still open: a page must not be lost
    /// to a crash. At least once: one cut off after sending is sent twice.
    fn resend_escalations(&mut self, unsent: Vec<(String, String, u32)>) {
        let now = self.clock.now();
        for (name, target, attempts) in unsent {
            let Some(id) = self.engine.policy_id(&name) else {
                continue;
            };
            let policy = self.engine.policy(id).clone();
            if crate::engine::target_name(&policy) != target || !self.engine.circuit_open(id, now) {
                continue;
            }
            tracing::warn!(policy = %name, target = %target, "an escalation was cut off by the agent's last stop: sending it now");
            self.escalate(policy, attempts, None);
        }
    }

    /// Starts the attempt's task: it waits for its intent to be on disk (no action runs
    /// without its journal record), then runs, and reports its outcome as an event.
    fn start_attempt(&mut self, policy: Policy, attempt_id: u64, intent: Durable) {
        self.running.insert(
            attempt_id,
            Running {
                policy: policy.clone(),
                started: tokio::time::Instant::now(),
            },
        );
        let executor = Arc::clone(&self.executor);
        let events = self.events.clone();
        let name = policy.name().to_string();
        self.attempts.spawn_attempt(attempt_id, name, async move {
            let outcome = match intent.await {
                Ok(()) => executor.run_attempt(&policy, attempt_id).await,
                Err(e) => {
                    // Tell the engine the attempt failed so it backs off instead of
                    // waiting forever.
                    tracing::error!(error = %e, attempt_id, "intent not journalled: the attempt does not run");
                    attempts::failed(
                        &policy,
                        attempt_id,
                        format!("not run: the journal could not record the intent: {e}"),
                    )
                }
            };
            let _ = events.send(Event::Outcome(outcome)).await;
        });
    }

    /// Loads the policies again; an invalid set is rejected with every error logged,
    /// and the agent keeps running the last good set.
    fn reload(&mut self, paths: &[PathBuf], probes: &mut probes::Probes, logs: &mut logs::Logs) {
        match load_host_policies(paths) {
            Ok(policies) => {
                let new_units: BTreeSet<String> = units_of(&policies).into_iter().collect();
                let old_units: BTreeSet<String> =
                    units_of(self.engine.policies()).into_iter().collect();
                for unit in new_units.difference(&old_units) {
                    let executor = Arc::clone(&self.executor);
                    let unit = unit.clone();
                    tokio::spawn(async move {
                        if let Err(e) = executor.family().watch_unit(&unit).await {
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
