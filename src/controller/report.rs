//! What a person reads of the running loop: `salve status` and the status page.

use super::Controller;
use crate::action::Family;
use crate::control::{PauseLine, PolicyLine, StatusReport};
use crate::engine::PolicyStatus;
use std::time::SystemTime;

pub(crate) fn rfc3339(ts: SystemTime) -> String {
    crate::audit::format_ts(ts, false).unwrap_or_default()
}

impl<F: Family> Controller<F> {
    /// `salve status`: each policy's line, with its last decision and outcome.
    pub fn report(&self) -> StatusReport {
        let clock = &self.clock;
        let now = clock.now();
        let wall = |t| rfc3339(clock.wall_of(t));
        let policies = self
            .engine
            .status(now)
            .into_iter()
            .map(|line| {
                let seen = self
                    .last_seen
                    .get(&(line.policy.clone(), line.target.clone()));
                PolicyLine {
                    state: state_of(&line).to_string(),
                    dry_run: line.dry_run,
                    attempts: line.attempts,
                    max_attempts: line.max_attempts,
                    in_flight: line.in_flight,
                    circuit_open_until: line.circuit_open_until.map(wall),
                    next_attempt_at: line.next_attempt_at.map(wall),
                    paused_until: line.paused_until.map(wall),
                    last_decision: seen.map(|s| s.decision.clone()).filter(|d| !d.is_empty()),
                    last_decision_at: seen.and_then(|s| s.decided_at).map(rfc3339),
                    last_outcome: seen.and_then(|s| s.outcome.clone()),
                    policy: line.policy,
                    target: line.target,
                }
            })
            .collect();
        let pauses = self
            .engine
            .pauses(now)
            .into_iter()
            .map(|(scope, until)| {
                let note = self.pause_notes.get(&scope.to_string());
                PauseLine {
                    scope: scope.to_string(),
                    until: wall(until),
                    reason: note.and_then(|(reason, _)| reason.clone()),
                    by: note.map(|(_, by)| by.clone()),
                }
            })
            .collect();
        StatusReport { policies, pauses }
    }
}

/// One word for a line's state, the most pressing first.
fn state_of(line: &PolicyStatus) -> &'static str {
    if line.selector {
        "selector"
    } else if line.in_flight.is_some() {
        "acting"
    } else if line.paused_until.is_some() {
        "paused"
    } else if line.circuit_open_until.is_some() {
        "circuit open"
    } else if line.triggered {
        "triggered"
    } else if line.next_attempt_at.is_some() {
        "cooldown"
    } else {
        "ok"
    }
}
