//! What a person at the control socket asks of the engine: pauses with an expiry, and
//! a picture of every policy's state (`salve status`).
//!
//! A pause holds back new attempts on what it names, a target or a policy, until it
//! expires or is lifted; every decision it holds back is journalled as a skip with
//! reason `paused`, once per episode as any skip. An attempt already running goes on.

use super::decision::Decision;
use super::time::Timestamp;
use super::{Engine, PolicyId, Role};
use serde::Serialize;

/// What a pause (or a resume) names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PauseScope {
    /// A target, as the journal names it (`php8.2-fpm.service`, `pod/web/php-0`).
    Target(String),
    /// A policy by name: all its targets (a selector's every object).
    Policy(String),
}

impl std::fmt::Display for PauseScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PauseScope::Target(t) => write!(f, "target {t}"),
            PauseScope::Policy(p) => write!(f, "policy {p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pause {
    pub scope: PauseScope,
    pub until: Timestamp,
}

/// How many pauses may be in force at once: far more than a person declares, and a
/// bound on what a script gone wrong can make the engine keep.
pub const MAX_PAUSES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PauseError {
    #[error("no policy is named {0}")]
    UnknownPolicy(String),
    #[error("no policy acts on a target named {0}")]
    UnknownTarget(String),
    #[error("{MAX_PAUSES} pauses are in force already; resume some first")]
    TooMany,
}

/// One policy's state as `salve status` shows it: a written policy, or one object of
/// a selector policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    pub policy: String,
    pub target: String,
    /// A selector policy's own line: it acts only through its objects' lines.
    pub selector: bool,
    pub dry_run: bool,
    /// Attempts started within the policy's window.
    pub attempts: u32,
    pub max_attempts: u32,
    /// The attempt running now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u64>,
    /// While the circuit is open: when it closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_open_until: Option<Timestamp>,
    /// The earliest instant the guard allows the next attempt, when that is later than
    /// now (a cooldown, an open circuit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    /// While paused: until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<Timestamp>,
    /// Whether a trigger holds now.
    pub triggered: bool,
}

impl Engine {
    /// Pauses what `scope` names until `until` (a later pause of the same scope
    /// replaces it). The policies it names are re-decided, so a skip says so at once.
    pub fn pause(
        &mut self,
        now: Timestamp,
        scope: PauseScope,
        until: Timestamp,
        out: &mut Vec<Decision>,
    ) -> Result<(), PauseError> {
        let named = self.paused_by(&scope);
        // A selector that has selected nothing yet is still a policy to pause: the
        // objects it selects later are held back as they appear.
        let selector_named = match &scope {
            PauseScope::Policy(p) => self.policies().any(|policy| policy.name() == p),
            PauseScope::Target(_) => false,
        };
        if named.is_empty() && !selector_named {
            return Err(match scope {
                PauseScope::Policy(p) => PauseError::UnknownPolicy(p),
                PauseScope::Target(t) => PauseError::UnknownTarget(t),
            });
        }
        self.pauses.retain(|p| p.until > now && p.scope != scope);
        if self.pauses.len() >= MAX_PAUSES {
            return Err(PauseError::TooMany);
        }
        self.pauses.push(Pause { scope, until });
        self.redecide(now, named, out);
        Ok(())
    }

    /// Lifts the pause of `scope`; whether there was one. What it held back is decided
    /// again at once.
    pub fn resume(&mut self, now: Timestamp, scope: &PauseScope, out: &mut Vec<Decision>) -> bool {
        let lifted = self
            .pauses
            .iter()
            .any(|p| p.until > now && &p.scope == scope);
        self.pauses.retain(|p| p.until > now && &p.scope != scope);
        if lifted {
            let named = self.paused_by(scope);
            self.redecide(now, named, out);
        }
        lifted
    }

    /// The pauses in force at `now`: what each names, and until when.
    pub fn pauses(&self, now: Timestamp) -> Vec<(PauseScope, Timestamp)> {
        self.pauses
            .iter()
            .filter(|p| p.until > now)
            .map(|p| (p.scope.clone(), p.until))
            .collect()
    }

    fn redecide(&mut self, now: Timestamp, ids: Vec<PolicyId>, out: &mut Vec<Decision>) {
        for &id in &ids {
            self.states[id.index()].last_skip = None;
        }
        for id in ids {
            self.evaluate(now, id, out);
        }
        self.drop_stale_timers();
    }

    /// The policies (and selector instances) a pause of `scope` holds back.
    fn paused_by(&self, scope: &PauseScope) -> Vec<PolicyId> {
        (0..self.states.len())
            .filter(|&i| matches!(self.states[i].role, Role::Named | Role::Instance { .. }))
            .filter(|&i| match scope {
                PauseScope::Policy(p) => self.policies[i].name() == p,
                PauseScope::Target(t) => &self.target_names[i] == t,
            })
            .map(|i| PolicyId(i as u32))
            .collect()
    }

    /// Until when policy `id` is paused at `now`, if it is: the latest of the pauses
    /// that name it.
    pub(super) fn paused_until(&self, id: PolicyId, now: Timestamp) -> Option<Timestamp> {
        if self.pauses.is_empty() {
            return None;
        }
        let name = self.policies[id.index()].name();
        let target = &self.target_names[id.index()];
        self.pauses
            .iter()
            .filter(|p| p.until > now)
            .filter(|p| match &p.scope {
                PauseScope::Policy(n) => n == name,
                PauseScope::Target(t) => t == target,
            })
            .map(|p| p.until)
            .max()
    }

    /// Every policy's state at `now`: the written ones in order, each selector
    /// followed by its objects (by target name).
    pub fn status(&self, now: Timestamp) -> Vec<PolicyStatus> {
        let mut lines = Vec::new();
        for i in 0..self.written {
            let id = PolicyId(i as u32);
            match self.states[i].role {
                Role::Selector => {
                    lines.push(self.status_of(id, now));
                    let mut objects: Vec<PolicyId> = (self.written..self.states.len())
                        .filter(|&j| self.states[j].role == Role::Instance { of: id })
                        .map(|j| PolicyId(j as u32))
                        .collect();
                    objects.sort_by(|a, b| {
                        self.target_names[a.index()].cmp(&self.target_names[b.index()])
                    });
                    lines.extend(objects.into_iter().map(|o| self.status_of(o, now)));
                }
                _ => lines.push(self.status_of(id, now)),
            }
        }
        lines
    }

    fn status_of(&self, id: PolicyId, now: Timestamp) -> PolicyStatus {
        let policy = &self.policies[id.index()];
        let state = &self.states[id.index()];
        let guard = &policy.spec.guard;
        let selector = state.role == Role::Selector;
        let mut line = PolicyStatus {
            policy: policy.name().to_string(),
            target: self.target_names[id.index()].clone(),
            selector,
            dry_run: policy.spec.dry_run || self.limits.dry_run,
            attempts: 0,
            max_attempts: guard.max_attempts,
            in_flight: None,
            circuit_open_until: None,
            next_attempt_at: None,
            paused_until: None,
            triggered: false,
        };
        if selector {
            return line;
        }
        let target = &self.targets[state.target.0 as usize].guard;
        let seen = target.summary(guard, now);
        line.attempts = seen.attempts;
        line.in_flight = target.in_flight;
        line.circuit_open_until = seen.circuit_open_until;
        line.next_attempt_at = seen.next_attempt_at;
        line.paused_until = self.paused_until(id, now);
        line.triggered = state.triggers.iter().any(|t| t.holds_since.is_some());
        line
    }
}
