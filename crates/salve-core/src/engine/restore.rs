//! Guard state rebuilt from what happened before this start, so that a watchdog kill,
//! an OOM or a crash of the agent never wipes attempts, backoff or an open circuit:
//! `maxAttempts` holds over time, not per process.
//!
//! The caller reads the journal and maps its wall-clock times onto the engine's clock;
//! here is only the replay, in the order things happened.

use super::event::OutcomeResult;
use super::time::Timestamp;
use super::{Engine, PolicyId, Role};
use crate::policy::TargetKey;

/// One thing the journal says happened to a target.
#[derive(Debug, Clone, PartialEq)]
pub struct PastEvent {
    pub at: Timestamp,
    pub policy: String,
    /// The target's key as the journal wrote it.
    pub target: String,
    pub kind: PastKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PastKind {
    /// An attempt started at `at` and ended as `result`: `None` when it never reported
    /// back (the agent died mid-attempt), which counts as failed. `succeeded` is false
    /// for an `ok` whose verification failed.
    Attempt {
        result: Option<OutcomeResult>,
        succeeded: bool,
    },
    /// The circuit opened at `at`.
    Escalated,
}

impl Engine {
    /// Replays `past` (oldest first) into the targets' guards, and numbers new attempts
    /// after `last_attempt_id` so journal ids stay unique across restarts. Events on a
    /// target no policy names are skipped: no policy could be held back by them.
    pub fn restore(&mut self, past: &[PastEvent], last_attempt_id: u64) {
        self.next_attempt_id = self.next_attempt_id.max(last_attempt_id.saturating_add(1));
        for event in past {
            // Only live attempts are journalled as intents: they restore the live guard.
            let Some(key) = TargetKey::parse(&event.target) else {
                continue;
            };
            let index = match self.target_index.get(&(key.clone(), false)) {
                Some(id) => id.0 as usize,
                // A selector policy's object not seen since this start: its guard is
                // made now, for its instance to find when the object is seen.
                None => match self.policy_id(&event.policy) {
                    Some(id) if self.states[id.index()].role == Role::Selector => {
                        let window = self.policies[id.index()].spec.guard.window;
                        let target = self.target_for(&key, false, true, event.at);
                        let state = &mut self.targets[target.0 as usize];
                        state.window = state.window.max(window);
                        target.0 as usize
                    }
                    _ => continue,
                },
            };
            // The window of the policy that opened the circuit, or, when it is gone,
            // the longest of those acting on the target now.
            let window_of = |id: PolicyId| self.policies[id.index()].spec.guard.window;
            let on_target = &self.targets[index].policies;
            // A selector's own window is its objects' (none may be seen yet).
            let window = self
                .policy_id(&event.policy)
                .filter(|id| {
                    on_target.contains(id) || self.states[id.index()].role == Role::Selector
                })
                .map(window_of)
                .or_else(|| on_target.iter().copied().map(window_of).max())
                .unwrap_or_default();
            let guard = &mut self.targets[index].guard;
            match event.kind {
                PastKind::Attempt { result, succeeded } => {
                    guard.replay_attempt(event.at, result, succeeded);
                    self.global.started_before(event.at);
                }
                PastKind::Escalated => guard.replay_escalation(event.at, window),
            }
        }
    }
}
