//! A reference model of the guardrails, written from the README's "Guardrails (engine
//! semantics)" section and nothing else: no engine type but the public event and
//! decision vocabulary, no shared helper. It is deliberately naive where the engine is
//! clever: it keeps every attempt and every log hit, and it re-decides every policy on
//! every event and at every instant anything could change, instead of indexing
//! watchers and keeping timers. Agreement with the engine, decision by decision, is
//! what the property in `main.rs` checks.

use salve_core::engine::{AlertStatus, Event, Limits, OutcomeResult, SkipReason, Timestamp};
use salve_core::policy::{ActiveState, Condition, Policy, UnitFileState};
use std::collections::HashMap;
use std::time::Duration;

/// A decision as the model states it: what the README says is observable.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Said {
    Act {
        policy: String,
        attempt_id: u64,
        attempt: u32,
        evidence: usize,
    },
    Escalate {
        policy: String,
        attempts: u32,
        dry_run: bool,
    },
    Skip {
        policy: String,
        reason: &'static str,
        retry_at: Option<Timestamp>,
        attempt: Option<u32>,
        evidence: usize,
    },
}

const STORM_WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct UnitView {
    active: Option<ActiveState>,
    sub: Option<String>,
    file: Option<UnitFileState>,
}

#[derive(Default, Clone)]
struct TriggerMemory {
    /// Since when the condition has held without a break.
    since: Option<Timestamp>,
    http_failures: u32,
    log_hits: Vec<Timestamp>,
    /// Firing alerts heard: (fingerprint, start, acted on).
    alerts: Vec<(String, String, bool)>,
    /// The status page's last reading not yet acted on: its listen queue, or no answer.
    fpm: Option<Option<u32>>,
    /// Status reads in a row without an answer (an attempt does not reset them).
    fpm_unanswered: u32,
}

#[derive(Default)]
struct PolicyMemory {
    triggers: Vec<TriggerMemory>,
    /// The skip reason last reported while the condition kept holding.
    reported: Option<&'static str>,
    /// The instants at which this policy is to be decided again with no new event: a
    /// `for` that ends, a log hit that leaves its window, and the moment what held it
    /// back (cooldown, circuit, storm cap) passes.
    wake: Vec<Timestamp>,
}

/// Guard state lives with the target unit (its shadow for dry-run policies).
type TargetKey = (String, bool);

#[derive(Default)]
struct TargetMemory {
    starts: Vec<Timestamp>,
    last_start: Option<Timestamp>,
    failures_since_success: u32,
    circuit_until: Option<Timestamp>,
    running: Option<u64>,
}

pub struct Model {
    policies: Vec<Policy>,
    limits: Limits,
    units: HashMap<String, UnitView>,
    memory: HashMap<String, PolicyMemory>,
    targets: HashMap<TargetKey, TargetMemory>,
    attempt_target: HashMap<u64, TargetKey>,
    real_starts: Vec<Timestamp>,
    running: u32,
    waiting: Vec<String>,
    next_attempt_id: u64,
}

fn key(policy: &Policy, limits: &Limits) -> TargetKey {
    (
        policy
            .spec
            .target
            .unit()
            .map_or("", |u| u.as_str())
            .to_string(),
        policy.spec.dry_run || limits.dry_run,
    )
}

impl Model {
    pub fn new(policies: Vec<Policy>, limits: Limits) -> Self {
        let mut model = Model {
            policies: Vec::new(),
            limits,
            units: HashMap::new(),
            memory: HashMap::new(),
            targets: HashMap::new(),
            attempt_target: HashMap::new(),
            real_starts: Vec::new(),
            running: 0,
            waiting: Vec::new(),
            next_attempt_id: 1,
        };
        model.install(policies);
        model
    }

    fn install(&mut self, policies: Vec<Policy>) {
        let mut memory = HashMap::new();
        for policy in &policies {
            let name = policy.name().to_string();
            let old_policy = self.policies.iter().find(|p| p.name() == name);
            let mut fresh = PolicyMemory {
                triggers: vec![TriggerMemory::default(); policy.spec.trigger.len()],
                reported: None,
                wake: Vec::new(),
            };
            if let (Some(old_policy), Some(old)) = (old_policy, self.memory.remove(&name)) {
                // README: a policy whose name survives keeps what its unchanged
                // triggers saw.
                fresh.reported = old.reported;
                for (t, trigger) in policy.spec.trigger.iter().enumerate() {
                    let same = old_policy
                        .spec
                        .trigger
                        .get(t)
                        .is_some_and(|o| format!("{o:?}") == format!("{trigger:?}"));
                    if same {
                        fresh.triggers[t] = old.triggers[t].clone();
                    }
                }
            }
            memory.insert(name, fresh);
        }
        self.waiting.retain(|w| memory.contains_key(w));
        self.memory = memory;
        self.policies = policies;
    }

    pub fn reload(&mut self, now: Timestamp, policies: Vec<Policy>) -> Vec<Said> {
        self.install(policies);
        let mut out = Vec::new();
        self.decide_all(now, &mut out);
        out
    }

    /// README: a policy is decided when one of its own signals arrives, at its own
    /// instants, when its target's guard changes (an attempt starts or ends, the circuit
    /// opens, a reset), when a concurrency slot frees while it waits, and at a reload.
    pub fn handle(&mut self, now: Timestamp, event: &Event) -> Vec<Said> {
        let mut out = Vec::new();
        // Instants come first: a late event never jumps ahead of an expired cooldown.
        for i in 0..self.policies.len() {
            let memory = self
                .memory
                .get_mut(self.policies[i].name())
                .expect("installed");
            if memory.wake.contains(&now) {
                memory.wake.retain(|&t| t != now);
                self.decide_and_follow(now, i, &mut out);
            }
        }
        let mut concerned = Vec::new();
        match event {
            Event::Unit(obs) => {
                let view = self.units.entry(obs.name.clone()).or_default();
                if obs.active_state.is_some() {
                    view.active = obs.active_state;
                }
                if obs.sub_state.is_some() {
                    view.sub = obs.sub_state.clone();
                }
                if obs.unit_file_state.is_some() {
                    view.file = obs.unit_file_state;
                }
                for (i, policy) in self.policies.iter().enumerate() {
                    let watches = policy
                        .spec
                        .trigger
                        .iter()
                        .any(|t| matches!(t.condition, Condition::Unit(_)));
                    if watches && policy.spec.target.unit().map_or("", |u| u.as_str()) == obs.name {
                        concerned.push(i);
                    }
                }
            }
            Event::Http(obs) => {
                for (i, policy) in self.policies.iter().enumerate() {
                    let memory = self.memory.get_mut(policy.name()).expect("installed");
                    for (t, trigger) in policy.spec.trigger.iter().enumerate() {
                        if let Condition::Http(c) = &trigger.condition {
                            if c.url.as_str() == obs.url {
                                let failed = obs.status.is_none_or(|s| c.status.contains(&s));
                                let m = &mut memory.triggers[t];
                                m.http_failures = if failed { m.http_failures + 1 } else { 0 };
                                concerned.push(i);
                            }
                        }
                    }
                }
            }
            Event::Log(line) => {
                for (i, policy) in self.policies.iter().enumerate() {
                    let memory = self.memory.get_mut(policy.name()).expect("installed");
                    for (t, trigger) in policy.spec.trigger.iter().enumerate() {
                        if let Condition::Log(c) = &trigger.condition {
                            if c.path == line.path && c.pattern.regex.is_match(&line.line) {
                                memory.triggers[t].log_hits.push(now);
                                concerned.push(i);
                            }
                        }
                    }
                }
            }
            Event::Outcome(outcome) => {
                let key = match outcome.attempt_id {
                    Some(id) => self.attempt_target.get(&id).cloned(),
                    None => self
                        .policies
                        .iter()
                        .find(|p| p.name() == outcome.policy)
                        .map(|p| key(p, &self.limits)),
                };
                let running = key
                    .as_ref()
                    .and_then(|k| self.targets.get(k))
                    .and_then(|t| t.running);
                let matches = running.is_some_and(|r| outcome.attempt_id.is_none_or(|a| a == r));
                if let (true, Some(key), Some(id)) = (matches, key, running) {
                    self.finish(&key, id, outcome);
                    // README rule 7: the freed slot goes to those held back, first
                    // come first served; then the target's policies are re-decided.
                    for name in std::mem::take(&mut self.waiting) {
                        concerned.extend(self.index_of(&name));
                    }
                    concerned.extend(self.on_target(&key));
                }
            }
            Event::Alert(alert) => {
                for (i, policy) in self.policies.iter().enumerate() {
                    let memory = self.memory.get_mut(policy.name()).expect("installed");
                    for (t, trigger) in policy.spec.trigger.iter().enumerate() {
                        let Condition::Alert(c) = &trigger.condition else {
                            continue;
                        };
                        let named = alert.labels.get("alertname") == Some(&c.name)
                            && c.labels.iter().all(|(k, v)| alert.labels.get(k) == Some(v));
                        if !named {
                            continue;
                        }
                        let heard = &mut memory.triggers[t].alerts;
                        let known = heard.iter().position(|(f, _, _)| *f == alert.fingerprint);
                        match (alert.status, known) {
                            (AlertStatus::Resolved, _) => {
                                heard.retain(|(f, _, _)| *f != alert.fingerprint)
                            }
                            (AlertStatus::Firing, Some(k)) => {
                                if heard[k].1 != alert.starts_at {
                                    heard[k] =
                                        (alert.fingerprint.clone(), alert.starts_at.clone(), false);
                                }
                            }
                            (AlertStatus::Firing, None) => heard.push((
                                alert.fingerprint.clone(),
                                alert.starts_at.clone(),
                                false,
                            )),
                        }
                        concerned.push(i);
                    }
                }
            }
            Event::PhpFpm(obs) => {
                for (i, policy) in self.policies.iter().enumerate() {
                    let memory = self.memory.get_mut(policy.name()).expect("installed");
                    for (t, trigger) in policy.spec.trigger.iter().enumerate() {
                        if let Condition::PhpFpm(c) = &trigger.condition {
                            if c.source() == obs.source {
                                let m = &mut memory.triggers[t];
                                m.fpm = Some(obs.status.as_ref().map(|s| s.listen_queue));
                                m.fpm_unanswered = match obs.status {
                                    Some(_) => 0,
                                    None => m.fpm_unanswered + 1,
                                };
                                concerned.push(i);
                            }
                        }
                    }
                }
            }
            // The model restates the guardrails over host targets; the generators make
            // no Kubernetes objects, so these never arrive.
            Event::Pod(_) | Event::Workload(_) | Event::Node(_) => {}
            Event::Reset(reset) => {
                if let Some(i) = self.index_of(&reset.policy) {
                    let key = key(&self.policies[i], &self.limits);
                    let target = self.targets.entry(key.clone()).or_default();
                    target.circuit_until = None;
                    target.starts.clear();
                    target.failures_since_success = 0;
                    for j in self.on_target(&key) {
                        let name = self.policies[j].name();
                        self.memory.get_mut(name).expect("installed").reported = None;
                        concerned.push(j);
                    }
                }
            }
            Event::Tick {} => {}
        }
        for i in concerned {
            self.decide_and_follow(now, i, &mut out);
        }
        out
    }

    fn on_target(&self, key: &TargetKey) -> Vec<usize> {
        (0..self.policies.len())
            .filter(|&i| self::key(&self.policies[i], &self.limits) == *key)
            .collect()
    }

    fn finish(&mut self, key: &TargetKey, id: u64, outcome: &salve_core::engine::Outcome) {
        self.attempt_target.remove(&id);
        self.running -= 1;
        let target = self.targets.get_mut(key).expect("running");
        target.running = None;
        let succeeded = outcome.result == OutcomeResult::Ok && outcome.verified != Some(false);
        if outcome.result == OutcomeResult::NotApplicable {
            // Does not count toward the circuit; the backoff grows as after a failure.
            if let Some(last) = target.last_start {
                if let Some(pos) = target.starts.iter().rposition(|&t| t == last) {
                    target.starts.remove(pos);
                }
            }
            target.failures_since_success += 1;
        } else if succeeded {
            target.failures_since_success = 0;
        } else {
            target.failures_since_success += 1;
        }
        // Evidence seen while the attempt ran is used up with it.
        for policy in &self.policies {
            if self::key(policy, &self.limits) == *key {
                let memory = self.memory.get_mut(policy.name()).expect("installed");
                memory.triggers.iter_mut().for_each(use_up);
                // Not fixed: the alerts still firing are news again.
                if !succeeded {
                    memory.triggers.iter_mut().for_each(rearm);
                }
            }
        }
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.policies.iter().position(|p| p.name() == name)
    }

    fn decide_all(&mut self, now: Timestamp, out: &mut Vec<Said>) {
        for i in 0..self.policies.len() {
            self.decide_and_follow(now, i, out);
        }
    }

    /// Decides policy `i`; when that changed its target's guard, the target's other
    /// policies are decided again, since their verdicts changed with it.
    fn decide_and_follow(&mut self, now: Timestamp, i: usize, out: &mut Vec<Said>) {
        let mut pending = vec![i];
        while !pending.is_empty() {
            let i = pending.remove(0);
            let changed = self.decide(now, i, out);
            // The triggers' own instants, once the attempt (if any) used up its
            // evidence; an instant that is already here has just been decided.
            let policy = &self.policies[i];
            let memory = self.memory.get_mut(policy.name()).expect("installed");
            for (trigger, m) in policy.spec.trigger.iter().zip(&memory.triggers) {
                memory.wake.extend(m.since.map(|s| s + trigger.hold));
                if let Condition::Log(c) = &trigger.condition {
                    memory
                        .wake
                        .extend(m.log_hits.iter().map(|&hit| hit + c.within));
                }
            }
            memory.wake.retain(|&t| t > now);
            if changed {
                let k = key(&self.policies[i], &self.limits);
                for (j, p) in self.policies.iter().enumerate() {
                    if j != i && key(p, &self.limits) == k {
                        pending.push(j);
                    }
                }
            }
        }
    }

    /// Rules 1 to 7 of the README, in their order. Returns whether the target's guard
    /// changed (an attempt, real or dry, started, or the circuit opened).
    fn decide(&mut self, now: Timestamp, i: usize, out: &mut Vec<Said>) -> bool {
        let policy = &self.policies[i];
        let name = policy.name().to_string();
        let guard = &policy.spec.guard;
        let dry_run = policy.spec.dry_run || self.limits.dry_run;
        let view = self
            .units
            .get(policy.spec.target.unit().map_or("", |u| u.as_str()));
        let memory = self.memory.get_mut(&name).expect("installed");

        // 1. `for`: which conditions held continuously long enough.
        memory.wake.clear();
        let mut satisfied = 0;
        for (t, trigger) in policy.spec.trigger.iter().enumerate() {
            let m = &mut memory.triggers[t];
            let holds = match &trigger.condition {
                Condition::Unit(c) => view.is_some_and(|v| {
                    (c.active_state.is_empty()
                        || v.active.is_some_and(|s| c.active_state.contains(&s)))
                        && (c.sub_state.is_empty()
                            || v.sub.as_ref().is_some_and(|s| c.sub_state.contains(s)))
                        && (c.unit_file_state.is_empty()
                            || v.file.is_some_and(|s| c.unit_file_state.contains(&s)))
                }),
                Condition::Http(c) => m.http_failures >= c.failures,
                Condition::Pod(_) | Condition::Workload(_) | Condition::Node(_) => false,
                Condition::Alert(_) => m.alerts.iter().any(|(_, _, used)| !used),
                // No answer holds; an answer holds with its queue at the threshold.
                // `failures` reads in a row without an answer hold; an answer holds
                // with its queue at the threshold.
                Condition::PhpFpm(c) => m.fpm.is_some_and(|queue| match queue {
                    None => m.fpm_unanswered >= c.failures,
                    Some(q) => q >= c.listen_queue.unwrap_or(1),
                }),
                Condition::Log(c) => {
                    m.log_hits
                        .iter()
                        .filter(|&&hit| hit + c.within > now)
                        .count()
                        >= c.count as usize
                }
            };
            if !holds {
                m.since = None;
            } else if m.since.is_none() {
                m.since = Some(now);
            }
            if m.since.is_some_and(|s| s + trigger.hold <= now) {
                satisfied += 1;
            }
        }
        if satisfied == 0 {
            memory.reported = None;
            return false;
        }
        let report = |out: &mut Vec<Said>,
                      memory: &mut PolicyMemory,
                      reason: SkipReason,
                      retry_at: Option<Timestamp>,
                      attempt: Option<u32>| {
            let reason = reason.as_str();
            if memory.reported != Some(reason) || reason == "dry_run" {
                memory.reported = Some(reason);
                out.push(Said::Skip {
                    policy: name.clone(),
                    reason,
                    retry_at,
                    attempt,
                    evidence: satisfied,
                });
            }
        };
        let target = self.targets.entry(key(policy, &self.limits)).or_default();
        // A circuit whose window has passed has closed, and the backoff starts afresh.
        if target.circuit_until.is_some_and(|until| now >= until) {
            target.circuit_until = None;
            target.failures_since_success = 0;
        }
        // 2. in flight.
        if target.running.is_some() {
            report(out, memory, SkipReason::InFlight, None, None);
            return false;
        }
        // 3. circuit.
        if let Some(until) = target.circuit_until {
            report(out, memory, SkipReason::CircuitOpen, Some(until), None);
            memory.wake.push(until);
            return false;
        }
        let within_window = |starts: &[Timestamp]| {
            starts.iter().filter(|&&s| s + guard.window > now).count() as u32
        };
        let recent = within_window(&target.starts);
        if recent >= guard.max_attempts {
            target.circuit_until = Some(now + guard.window);
            memory.wake.push(now + guard.window);
            memory.reported = Some("circuit_open");
            out.push(Said::Escalate {
                policy: name.clone(),
                attempts: recent,
                dry_run,
            });
            return true;
        }
        // 4. cooldown × backoff^failures, capped at the window.
        if let Some(last) = target.last_start {
            // Never two attempts on a target at the same instant.
            let gap = cooldown(guard, target.failures_since_success).max(Duration::from_nanos(1));
            if now < last + gap {
                report(out, memory, SkipReason::Cooldown, Some(last + gap), None);
                memory.wake.push(last + gap);
                return false;
            }
        }
        // 5. dry run: the attempt is walked, counted as failed, and reported.
        if dry_run {
            target.starts.push(now);
            target.last_start = Some(now);
            target.failures_since_success += 1;
            let attempt = within_window(&target.starts);
            report(out, memory, SkipReason::DryRun, None, Some(attempt));
            memory.reported = None;
            memory.triggers.iter_mut().for_each(use_up);
            memory.triggers.iter_mut().for_each(rearm);
            let gap = cooldown(guard, target.failures_since_success);
            memory.wake.push(now + gap.max(Duration::from_nanos(1)));
            return true;
        }
        // 6. storm cap over real attempts.
        let in_storm: Vec<Timestamp> = self
            .real_starts
            .iter()
            .copied()
            .filter(|&s| s + STORM_WINDOW > now)
            .collect();
        if in_storm.len() >= self.limits.max_actions_per_minute as usize {
            let oldest = in_storm.iter().min().copied().unwrap_or(now);
            report(
                out,
                memory,
                SkipReason::StormCap,
                Some(oldest + STORM_WINDOW),
                None,
            );
            memory.wake.push(oldest + STORM_WINDOW);
            return false;
        }
        // 7. max concurrent.
        if self.running >= self.limits.max_concurrent {
            report(out, memory, SkipReason::MaxConcurrent, None, None);
            if !self.waiting.contains(&name) {
                self.waiting.push(name.clone());
            }
            return false;
        }
        let id = self.next_attempt_id;
        self.next_attempt_id += 1;
        target.starts.push(now);
        target.last_start = Some(now);
        target.running = Some(id);
        self.attempt_target.insert(id, key(policy, &self.limits));
        self.real_starts.push(now);
        self.running += 1;
        memory.reported = None;
        memory.triggers.iter_mut().for_each(use_up);
        out.push(Said::Act {
            policy: name.clone(),
            attempt_id: id,
            attempt: within_window(&target.starts),
            evidence: satisfied,
        });
        true
    }

    /// Every instant at which some policy is to be decided with no new event.
    pub fn wake_times(&self, now: Timestamp) -> Vec<Timestamp> {
        let mut times: Vec<Timestamp> = self
            .memory
            .values()
            .flat_map(|m| m.wake.iter().copied())
            .collect();
        times.retain(|&t| t > now);
        times
    }
}

/// `cooldown × backoff^(failed attempts since the last success)`, capped at `window`.
fn cooldown(guard: &salve_core::policy::Guard, failures: u32) -> Duration {
    let secs = guard.cooldown.as_secs_f64() * guard.backoff.powi(failures as i32);
    if secs >= guard.window.as_secs_f64() {
        guard.window
    } else {
        Duration::from_secs_f64(secs)
    }
}

/// An attempt that fixed nothing (a dry run counts as one) leaves the alerts that
/// still fire fresh.
fn rearm(m: &mut TriggerMemory) {
    m.alerts.iter_mut().for_each(|a| a.2 = false);
}

/// HTTP failures, log lines and alerts are evidence an attempt uses up; unit state is
/// not. A used alert is still remembered: repeated, it is no news.
fn use_up(m: &mut TriggerMemory) {
    let fresh_alert = m.alerts.iter().any(|(_, _, used)| !used);
    if m.http_failures > 0 || !m.log_hits.is_empty() || fresh_alert || m.fpm.is_some() {
        m.fpm = None;
        m.http_failures = 0;
        m.log_hits.clear();
        m.alerts.iter_mut().for_each(|a| a.2 = true);
        m.since = None;
    }
}
