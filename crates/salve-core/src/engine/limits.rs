//! Guardrails that span all policies: a storm cap and a concurrency cap.

use super::time::Timestamp;
use std::collections::VecDeque;
use std::time::Duration;

/// Fleet-wide limits, from the agent config.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// At most this many actions start in any 60 s, across all policies.
    pub max_actions_per_minute: u32,
    /// At most this many attempts run at once.
    pub max_concurrent: u32,
    /// Every policy runs as if it said `dryRun: true`.
    pub dry_run: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_actions_per_minute: 30,
            max_concurrent: 4,
            dry_run: false,
        }
    }
}

pub const STORM_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct GlobalState {
    /// Start times of real attempts in the last `STORM_WINDOW`.
    recent_starts: VecDeque<Timestamp>,
    pub in_flight: u32,
}

pub enum GlobalVerdict {
    Go,
    StormCap { retry_at: Timestamp },
    MaxConcurrent,
}

impl GlobalState {
    pub fn check(&mut self, limits: &Limits, now: Timestamp) -> GlobalVerdict {
        while self
            .recent_starts
            .front()
            .is_some_and(|&t| t + STORM_WINDOW <= now)
        {
            self.recent_starts.pop_front();
        }
        if self.recent_starts.len() >= limits.max_actions_per_minute as usize {
            let oldest = self.recent_starts.front().copied().unwrap_or(now);
            return GlobalVerdict::StormCap {
                retry_at: oldest + STORM_WINDOW,
            };
        }
        if self.in_flight >= limits.max_concurrent {
            return GlobalVerdict::MaxConcurrent;
        }
        GlobalVerdict::Go
    }

    pub fn started(&mut self, now: Timestamp) {
        self.recent_starts.push_back(now);
        self.in_flight += 1;
    }

    /// An attempt started before this agent did: it counts toward the storm cap, but
    /// it is not running any more.
    pub fn started_before(&mut self, at: Timestamp) {
        self.recent_starts.push_back(at);
    }

    pub fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}
