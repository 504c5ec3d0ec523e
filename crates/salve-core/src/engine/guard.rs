//! Per-target guardrails: cooldown with backoff, attempts per window, the circuit.
//! (Dry-run policies keep theirs in a shadow target of their own; see `TargetState`.)
//!
//! Kept per target, not per policy: two policies that both restart php8.2-fpm share one
//! history, one attempt in flight and one circuit, so together they can never do more
//! to a unit than either may alone. Each policy's own limits are checked against that
//! shared history.

use super::event::OutcomeResult;
use super::time::Timestamp;
use crate::policy::Guard;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct GuardState {
    /// Start times of the newest attempts.
    attempts: VecDeque<Timestamp>,
    last_start: Option<Timestamp>,
    /// Failed attempts since the last success; drives the backoff.
    consecutive_failures: u32,
    /// Set while the circuit is open.
    pub circuit_closes_at: Option<Timestamp>,
    /// The attempt running now, if any.
    pub in_flight: Option<u64>,
}

/// How many attempt start times a target remembers, newest first. At least the largest
/// `maxAttempts` a policy may hold (1000), so no policy's count within its window is
/// cut short; a count (not an age) bounds the memory, so what is remembered never
/// depends on when a policy with a longer window was loaded.
const REMEMBERED_ATTEMPTS: usize = 1024;

/// See [`GuardState::summary`].
pub struct GuardSummary {
    pub attempts: u32,
    pub circuit_open_until: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
}

pub enum GuardVerdict {
    Go,
    OpenCircuit { attempts: u32 },
    CircuitOpen { closes_at: Timestamp },
    Cooldown { retry_at: Timestamp },
}

/// The gap required before the next attempt: `cooldown * backoff^failures`, capped at
/// `window` so a long crash loop still gets one try per window.
pub fn current_cooldown(guard: &Guard, consecutive_failures: u32) -> Duration {
    let factor = guard.backoff.powi(consecutive_failures.min(1024) as i32);
    let secs = guard.cooldown.as_secs_f64() * factor;
    if !secs.is_finite() || secs >= guard.window.as_secs_f64() {
        guard.window
    } else {
        Duration::from_secs_f64(secs)
    }
}

impl GuardState {
    pub fn check(&mut self, guard: &Guard, now: Timestamp) -> GuardVerdict {
        if let Some(closes_at) = self.circuit_closes_at {
            if now < closes_at {
                return GuardVerdict::CircuitOpen { closes_at };
            }
            // The window has passed: the attempts that opened the circuit are now outside
            // the opening policy's window by construction. They are kept, because another
            // policy on this target with a longer window still counts them.
            self.circuit_closes_at = None;
            self.consecutive_failures = 0;
        }
        let recent = self.attempts_within(guard, now);
        if recent >= guard.max_attempts {
            self.circuit_closes_at = Some(now + guard.window);
            return GuardVerdict::OpenCircuit { attempts: recent };
        }
        if let Some(last) = self.last_start {
            // Two attempts on one target never start at the same instant, even with a
            // zero cooldown: a dry run, which ends as it starts, would otherwise walk
            // to the circuit within one event, or not, depending on how many policies
            // share the target.
            let retry_at = last + self.cooldown(guard).max(Duration::from_nanos(1));
            if now < retry_at {
                return GuardVerdict::Cooldown { retry_at };
            }
        }
        GuardVerdict::Go
    }

    fn attempts_within(&self, guard: &Guard, now: Timestamp) -> u32 {
        self.attempts
            .iter()
            .filter(|&&t| t + guard.window > now)
            .count() as u32
    }

    /// What `salve status` shows of this guard for a policy with `guard`, at `now`.
    pub fn summary(&self, guard: &Guard, now: Timestamp) -> GuardSummary {
        let circuit_open_until = self.circuit_closes_at.filter(|&closes| closes > now);
        let cooled = self.last_start.map(|last| last + self.cooldown(guard));
        let next_attempt_at = circuit_open_until
            .into_iter()
            .chain(cooled)
            .max()
            .filter(|&at| at > now);
        GuardSummary {
            attempts: self.attempts_within(guard, now),
            circuit_open_until,
            next_attempt_at,
        }
    }

    pub fn cooldown(&self, guard: &Guard) -> Duration {
        current_cooldown(guard, self.consecutive_failures)
    }

    /// Records an attempt starting now; returns its number within `guard`'s window.
    pub fn start(&mut self, guard: &Guard, now: Timestamp) -> u32 {
        self.remember(now);
        self.last_start = Some(now);
        self.attempts_within(guard, now)
    }

    fn remember(&mut self, start: Timestamp) {
        if self.attempts.len() >= REMEMBERED_ATTEMPTS {
            self.attempts.pop_front();
        }
        self.attempts.push_back(start);
    }

    pub fn finish(&mut self, succeeded: bool) {
        self.in_flight = None;
        if succeeded {
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
    }

    /// The attempt in flight turned out not to apply: it leaves the window's count (the
    /// circuit is for cures that fail), while the cooldown from its start holds and the
    /// backoff grows as after a failure, so a symptom that keeps coming back is looked
    /// at less and less often rather than in a tight loop.
    pub fn withdraw(&mut self) {
        self.in_flight = None;
        // The newest start is this attempt's: no other starts on a target while one is
        // in flight, and a replayed one is withdrawn right after it is remembered.
        self.attempts.pop_back();
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
    }

    /// An attempt the journal recorded before this start. Only finished attempts are
    /// replayed: the agent that ran them is gone, so none is in flight.
    pub fn replay_attempt(
        &mut self,
        at: Timestamp,
        result: Option<OutcomeResult>,
        succeeded: bool,
    ) {
        // A circuit that had closed by then was passed, as `check` would have seen.
        if self.circuit_closes_at.is_some_and(|closes| closes <= at) {
            self.circuit_closes_at = None;
            self.consecutive_failures = 0;
        }
        self.remember(at);
        self.last_start = Some(at);
        match result {
            Some(OutcomeResult::NotApplicable) => self.withdraw(),
            _ => self.finish(succeeded),
        }
    }

    /// A circuit the journal recorded opening at `at`: open until `at + window`.
    pub fn replay_escalation(&mut self, at: Timestamp, window: Duration) {
        self.circuit_closes_at = Some(at + window);
    }

    /// Whether this guard can hold nothing back at `now` for any policy whose window is
    /// at most `window`: no attempt in flight, no open circuit, no attempt left in the
    /// window (and so no cooldown either, which the window caps). Forgotten, it starts
    /// afresh, backoff and all, as when a circuit closes.
    pub fn forgettable(&self, now: Timestamp, window: Duration) -> bool {
        self.in_flight.is_none()
            && self.circuit_closes_at.is_none_or(|closes| closes <= now)
            && self.last_start.is_none_or(|last| last + window <= now)
    }

    /// A person's reset: start afresh, history and all.
    pub fn close_circuit(&mut self) {
        self.circuit_closes_at = None;
        self.attempts.clear();
        self.consecutive_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_grows_by_backoff_and_stops_at_the_window() {
        let guard = Guard {
            cooldown: Duration::from_secs(10),
            max_attempts: 3,
            window: Duration::from_secs(60),
            backoff: 2.0,
            ..Guard::default()
        };
        assert_eq!(current_cooldown(&guard, 0), Duration::from_secs(10));
        assert_eq!(current_cooldown(&guard, 2), Duration::from_secs(40));
        assert_eq!(current_cooldown(&guard, 3), Duration::from_secs(60));
        assert_eq!(current_cooldown(&guard, u32::MAX), Duration::from_secs(60));
    }
}
