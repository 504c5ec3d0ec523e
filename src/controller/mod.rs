//! The loop every runtime shares (`salve agent` on a host, `salve operator` in a
//! cluster): decisions from the engine become journalled attempts and escalations,
//! carried out by a target family's executor, whose outcomes come back as events.
//!
//! One task owns the engine and the journal's queue, so decisions are made and
//! journalled in a single order. The journal's thread writes and fsyncs; an attempt
//! waits for its intent to be durable before its first action, and an attempt whose
//! intent cannot be written does not run and fails. The loop itself never waits for
//! the disk.

pub mod attempts;
pub mod clock;
pub mod recovery;
pub(crate) mod report;
pub mod spec_pause;

use crate::action::{Executor, Family};
use crate::audit::{decision_record, outcome_record, Durable, JournalWriter};
use crate::engine::{Decision, Engine, Event, Outcome, SkipReason, Verdict};
use crate::policy::Policy;
use clock::Clock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::mpsc;

/// An attempt in flight. It keeps its own copy of the policy: a reload may renumber or
/// remove policies before the attempt reports back.
pub struct Running {
    policy: Policy,
    started: tokio::time::Instant,
}

pub struct Controller<F> {
    pub engine: Engine,
    /// Shared with escalation tasks, which journal that their notifications went out.
    pub journal: Arc<JournalWriter>,
    pub clock: Clock,
    pub executor: Arc<Executor<F>>,
    /// Where outcomes are sent; the runtime's signals go to the same queue.
    pub events: crate::signal::EventSender,
    pub attempts: attempts::Attempts,
    pub running: HashMap<u64, Running>,
    decisions: Vec<Decision>,
    /// Each policy's (and selector object's) latest, for `salve status`.
    pub last_seen: HashMap<(String, String), LastSeen>,
    /// Why each pause in force was declared, and by whom, by its scope's text.
    pub pause_notes: HashMap<String, (Option<String>, String)>,
    /// What `/metrics` exports; counted here as decisions are carried out.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The policies' `spec.pause`s in force, by policy name.
    spec_pauses: HashMap<String, spec_pause::Declared>,
}

/// The last decision journalled for a policy on a target, and its last outcome.
#[derive(Debug, Clone, Default)]
pub struct LastSeen {
    pub decision: String,
    pub decided_at: Option<SystemTime>,
    pub outcome: Option<String>,
}

/// How many (policy, target) pairs `last_seen` keeps before it forgets those no
/// policy acts on any more: pods come and go by the thousand.
const LAST_SEEN_LIMIT: usize = 10_000;

/// A record's decision as `salve status` says it.
fn decision_text(entry: &crate::audit::Entry) -> Option<String> {
    use crate::audit::Entry;
    Some(match entry {
        Entry::Intent { attempt, .. } => format!("act (attempt {attempt})"),
        Entry::Skip { reason, .. } => format!("skip: {reason}"),
        Entry::Escalate { attempts: 0, .. } => "escalate".to_string(),
        Entry::Escalate { attempts, .. } => format!("escalate after {attempts} attempt(s)"),
        _ => return None,
    })
}

/// The record that an escalation's actions ran.
fn escalation_sent(policy: &Policy, failures: Vec<String>) -> crate::audit::Record {
    crate::audit::Record {
        ts: SystemTime::now(),
        policy: policy.name().to_string(),
        target: crate::engine::target_name(policy),
        entry: crate::audit::Entry::EscalationSent { failures },
    }
}

pub async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl<F: Family> Controller<F> {
    pub fn new(
        engine: Engine,
        journal: JournalWriter,
        clock: Clock,
        executor: Executor<F>,
        events: crate::signal::EventSender,
    ) -> Self {
        Controller {
            engine,
            journal: Arc::new(journal),
            clock,
            executor: Arc::new(executor),
            events,
            attempts: attempts::Attempts::default(),
            running: HashMap::new(),
            decisions: Vec::new(),
            last_seen: HashMap::new(),
            pause_notes: HashMap::new(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            spec_pauses: HashMap::new(),
        }
    }

    /// Counts into `metrics` (shared with the journal's writer and the HTTP listener)
    /// instead of a set of its own.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        metrics.policies_loaded(self.engine.policies().len());
        self.metrics = metrics;
        self
    }

    /// Answers the HTTP listener (`crate::web`).
    pub fn answer(&self, ask: crate::web::Ask) {
        match ask {
            crate::web::Ask::Status(reply) => {
                let now = self.clock.now();
                let _ = reply.send((self.engine.status(now), now));
            }
            crate::web::Ask::Report(reply) => {
                let _ = reply.send(self.report());
            }
            crate::web::Ask::Ping(reply) => {
                let _ = reply.send(());
            }
        }
    }

    /// Runs `act` on the engine at now, then carries out what it decided (a person's
    /// pause, resume or reset through the control socket).
    pub fn with_engine<R>(
        &mut self,
        act: impl FnOnce(&mut Engine, crate::engine::Timestamp, &mut Vec<Decision>) -> R,
    ) -> R {
        let now = self.clock.now();
        let mut decisions = Vec::new();
        let result = act(&mut self.engine, now, &mut decisions);
        self.carry_out(&decisions);
        result
    }

    fn remember(&mut self, policy: &str, target: &str) -> &mut LastSeen {
        let key = (policy.to_string(), target.to_string());
        if self.last_seen.len() >= LAST_SEEN_LIMIT && !self.last_seen.contains_key(&key) {
            let now = self.clock.now();
            let live: std::collections::HashSet<(String, String)> = self
                .engine
                .status(now)
                .into_iter()
                .map(|line| (line.policy, line.target))
                .collect();
            self.last_seen.retain(|k, _| live.contains(k));
            if self.last_seen.len() >= LAST_SEEN_LIMIT {
                self.last_seen.clear();
            }
        }
        self.last_seen.entry(key).or_default()
    }

    /// When the engine next needs a tick, on the runtime's clock.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        let engine = self.engine.next_deadline();
        // A spec pause's end is journalled when it comes, even if nothing else happens.
        let spec_pause_ends = self
            .spec_pauses
            .values()
            .map(|declared| self.clock.ahead(declared.until))
            .min();
        engine
            .into_iter()
            .chain(spec_pause_ends)
            .min()
            .map(|t| self.clock.instant_of(t))
    }

    /// Installs a new policy set and carries out what it decides at once.
    pub fn replace_policies(&mut self, policies: Vec<Policy>) {
        self.metrics.policies_loaded(policies.len());
        let now = self.clock.now();
        let mut decisions = Vec::new();
        self.engine.replace_policies(now, policies, &mut decisions);
        self.carry_out(&decisions);
        self.apply_spec_pauses();
    }

    /// Takes the outcomes of attempts already running, with no new decisions: the
    /// runtime is stopping. Waits at most `grace`.
    pub async fn finish(
        &mut self,
        events: &mut mpsc::Receiver<crate::signal::Observed>,
        grace: std::time::Duration,
    ) {
        let grace = tokio::time::sleep(grace);
        tokio::pin!(grace);
        // Escalations in flight are waited for too: the circuit they belong to is open,
        // and a notification cut off now would never be sent.
        while !self.running.is_empty() || self.attempts.running() > 0 {
            tokio::select! {
                Some(observed) = events.recv() => {
                    if let Event::Outcome(outcome) = &observed.event {
                        self.journal_outcome(outcome);
                    }
                }
                ended = self.attempts.next() => {
                    if let attempts::Ended::Lost(lost) = ended {
                        self.journal_outcome(&lost);
                    }
                }
                _ = &mut grace => {
                    tracing::error!(abandoned = self.running.len(), tasks = self.attempts.running(), "attempts or escalations still running at shutdown; their outcome is not journalled");
                    break;
                }
            }
        }
    }

    /// Blocks until what is queued is on disk. An escalation abandoned at the grace's
    /// end may still hold the writer; its drop then flushes and joins instead.
    pub fn close(self) {
        if let Ok(journal) = Arc::try_unwrap(self.journal) {
            journal.close();
        }
    }

    /// Handles an event from the loop's queue, and counts how long it waited there and
    /// in the engine (a signal's; outcomes and ticks are not signals).
    pub fn observe(&mut self, observed: crate::signal::Observed) {
        let signal = !matches!(
            observed.event,
            Event::Outcome(_) | Event::Tick {} | Event::Reset(_)
        );
        self.handle(observed.event);
        if signal {
            self.metrics.decided(observed.queued.elapsed());
        }
    }

    pub fn handle(&mut self, event: Event) {
        if let Event::Outcome(outcome) = &event {
            self.journal_outcome(outcome);
        }
        let now = self.clock.now();
        self.decisions.clear();
        let mut decisions = std::mem::take(&mut self.decisions);
        self.engine.handle(now, &event, &mut decisions);
        self.carry_out(&decisions);
        self.decisions = decisions;
        self.expire_spec_pauses();
    }

    pub fn journal_outcome(&mut self, outcome: &Outcome) {
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
        let said = match (&outcome.result, outcome.verified) {
            (result, Some(true)) => format!("{}, verified", result.as_str()),
            (result, Some(false)) => format!("{}, not verified", result.as_str()),
            (result, None) => result.as_str().to_string(),
        };
        self.remember(&record.policy, &record.target).outcome = Some(said);
        self.metrics
            .attempt_finished(policy, outcome, running.started.elapsed());
        self.journal.record(record);
        // A drain the attempt could not make: the heal went on, and a person hears of
        // it once, as of a storm (`attempts: 0`: no circuit opened). One cut off by a
        // crash of the agent is not sent again (only an open circuit's are).
        if let Some(why) = outcome.detail.as_ref().and_then(|d| d.escalate.clone()) {
            // Only the escalation's notifications: the node was healed, so its other
            // actions (a `stop`, an `exec`) are not what this is about.
            let mut policy = running.policy;
            policy
                .spec
                .escalate
                .retain(|a| matches!(a, crate::policy::Action::Notify(_)));
            tracing::warn!(policy = policy.name(), reason = %why, "a drain could not be made: escalating");
            self.metrics.escalated(policy.name());
            let decided = self.journal.write(crate::audit::drain_escalation(
                &policy,
                &why,
                SystemTime::now(),
            ));
            self.escalate(policy, 0, Some(decided));
        }
    }

    fn carry_out(&mut self, decisions: &[Decision]) {
        for decision in decisions {
            let policy = self.engine.policy(decision.policy).into_owned();
            let span = tracing::info_span!("decision", policy = policy.name(), target = %crate::engine::target_name(&policy));
            let _enter = span.enter();
            let record = decision_record(decision, &policy, SystemTime::now());
            if let Some(text) = decision_text(&record.entry) {
                let seen = self.remember(&record.policy, &record.target);
                seen.decision = text;
                seen.decided_at = Some(record.ts);
            }
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
                    ..
                } => {
                    tracing::warn!(attempts, "circuit open: escalating");
                    self.metrics.escalated(policy.name());
                    let durable = self.journal.write(record);
                    self.escalate(policy, *attempts, Some(durable));
                }
                Verdict::Escalate { .. } => self.journal.record(record),
                Verdict::Skip { reason, .. } => {
                    tracing::info!(reason = reason.as_str(), "skipped");
                    self.metrics.skipped(policy.name(), *reason);
                    self.journal.record(record);
                    if *reason == SkipReason::DryRun && F::REHEARSES {
                        self.rehearse(policy);
                    }
                }
            }
        }
    }

    /// Sends a dry run's changes through the target system's own dry run and journals
    /// its answer after the `dry_run` skip: a policy tried in dry run shows whether
    /// its changes would pass admission and RBAC before it is let act.
    fn rehearse(&mut self, policy: Policy) {
        let executor = Arc::clone(&self.executor);
        let journal = Arc::clone(&self.journal);
        self.attempts.spawn_escalation(async move {
            let Some((accepted, steps)) = executor.rehearse(&policy).await else {
                return;
            };
            if !accepted {
                tracing::warn!(policy = policy.name(), steps = ?steps, "the dry run's change would be refused");
            }
            journal.record(crate::audit::Record {
                ts: SystemTime::now(),
                policy: policy.name().to_string(),
                target: crate::engine::target_name(&policy),
                entry: crate::audit::Entry::Rehearsal { accepted, steps },
            });
        });
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

    /// Guard state from what happened before: at the agent's start (its journal), at a
    /// leader's takeover (the records every replica left in the cluster). Attempts cut
    /// off before they reported back (a kill, a crash, the last leader gone) are
    /// journalled as `unknown` and count as failed; escalations never sent are sent.
    /// Before any event is handled.
    pub fn rebuild_guards(&mut self, recovered: recovery::Recovered, source: &'static str) {
        if recovered.unreadable > 0 {
            tracing::warn!(
                lines = recovered.unreadable,
                source,
                "records that could not be read were left out of the guard state"
            );
        }
        for record in recovered.unfinished {
            tracing::warn!(policy = %record.policy, target = %record.target, attempt_id = ?record.entry.id(), "an attempt was cut off before it reported back: journalled as unknown, counted as failed");
            self.journal.record(record);
        }
        self.engine
            .restore(&recovered.past, recovered.last_attempt_id);
        tracing::info!(
            past_events = recovered.past.len(),
            last_attempt_id = recovered.last_attempt_id,
            source,
            "guard state rebuilt"
        );
        self.resend_escalations(recovered.unsent_escalations);
        for paused in recovered.pauses {
            let until = self.clock.ahead(paused.until);
            let scope = paused.scope.clone();
            match self.with_engine(|engine, now, out| engine.pause(now, scope, until, out)) {
                Ok(()) => {
                    tracing::info!(scope = %paused.scope, by = %paused.by, "a pause declared before this start is still in force");
                    self.pause_notes
                        .insert(paused.scope.to_string(), (paused.reason, paused.by));
                }
                Err(e) => {
                    tracing::warn!(scope = %paused.scope, error = %e, "a pause declared before this start names nothing now")
                }
            }
        }
        // The policies' own pauses come from their spec, not from the journal.
        self.apply_spec_pauses();
    }

    /// Escalations the journal shows decided but never sent (the agent died while
    /// notifying) go out now, if their circuit is still open: a page must not be lost
    /// to a crash. At least once: one cut off after sending is sent twice.
    pub fn resend_escalations(&mut self, unsent: Vec<(String, String, u32)>) {
        let now = self.clock.now();
        for (name, target, attempts) in unsent {
            let Some(id) = self.engine.policy_id(&name) else {
                continue;
            };
            let policy = self.engine.policy(id).into_owned();
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
}
