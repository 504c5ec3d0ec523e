//! Per-policy guardrails: cooldown with backoff, attempts per window, the circuit.

use super::decision::SkipReason;
use super::time::Timestamp;
use crate::policy::Guard;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct GuardState {
    /// Start times of attempts inside the guard window.
    attempts: VecDeque<Timestamp>,
    last_start: Option<Timestamp>,
    /// Failed attempts since the last success; drives the backoff.
    consecutive_failures: u32,
    /// Set while the circuit is open.
    pub circuit_closes_at: Option<Timestamp>,
    /// The attempt running now, if any.
    pub in_flight: Option<u64>,
    /// The last skip reported, so a condition that keeps holding is journalled once per
    /// reason rather than on every event.
    pub last_skip: Option<SkipReason>,
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
            self.close_circuit();
        }
        while self
            .attempts
            .front()
            .is_some_and(|&t| t + guard.window <= now)
        {
            self.attempts.pop_front();
        }
        if self.attempts.len() >= guard.max_attempts as usize {
            self.circuit_closes_at = Some(now + guard.window);
            return GuardVerdict::OpenCircuit {
                attempts: self.attempts.len() as u32,
            };
        }
        if let Some(last) = self.last_start {
            let retry_at = last + self.cooldown(guard);
            if now < retry_at {
                return GuardVerdict::Cooldown { retry_at };
            }
        }
        GuardVerdict::Go
    }

    pub fn cooldown(&self, guard: &Guard) -> Duration {
        current_cooldown(guard, self.consecutive_failures)
    }

    /// Records an attempt starting now; returns its number within the window.
    pub fn start(&mut self, now: Timestamp) -> u32 {
        self.attempts.push_back(now);
        self.last_start = Some(now);
        self.last_skip = None;
        self.attempts.len() as u32
    }

    pub fn finish(&mut self, succeeded: bool) {
        self.in_flight = None;
        if succeeded {
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
    }

    /// A person's reset, or the window passing: start afresh.
    pub fn close_circuit(&mut self) {
        self.circuit_closes_at = None;
        self.attempts.clear();
        self.consecutive_failures = 0;
        self.last_skip = None;
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
        };
        assert_eq!(current_cooldown(&guard, 0), Duration::from_secs(10));
        assert_eq!(current_cooldown(&guard, 2), Duration::from_secs(40));
        assert_eq!(current_cooldown(&guard, 3), Duration::from_secs(60));
        assert_eq!(current_cooldown(&guard, u32::MAX), Duration::from_secs(60));
    }
}
