//! The agent's engine clock: monotonic time since the agent started, plus a fixed
//! offset, so the journal's records from before this start (within the longest window a
//! policy may have) land on the same clock at non-negative times.

use crate::engine::Timestamp;
use crate::policy::MAX_DURATION;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Engine time at the agent's start: room for one longest window of history before it.
const START: Duration = MAX_DURATION.saturating_add(Duration::from_secs(24 * 3600));

pub struct Clock {
    origin: Instant,
    wall_origin: SystemTime,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            origin: Instant::now(),
            wall_origin: SystemTime::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_duration(START + self.origin.elapsed())
    }

    pub fn instant_of(&self, t: Timestamp) -> Instant {
        self.origin + t.since_origin().saturating_sub(START)
    }

    /// Where a wall-clock time from before the start (a journal record) falls on the
    /// engine's clock. A time after the start (a clock stepped back since) is the start.
    pub fn on_engine_clock(&self, ts: SystemTime) -> Timestamp {
        let before = self
            .wall_origin
            .duration_since(ts)
            .unwrap_or(Duration::ZERO);
        Timestamp::from_duration(START.saturating_sub(before))
    }

    /// The wall-clock time of engine time `t` (a pause's expiry, shown to a person).
    pub fn wall_of(&self, t: Timestamp) -> SystemTime {
        let since = t.since_origin();
        if since >= START {
            self.wall_origin + (since - START)
        } else {
            self.wall_origin - (START - since)
        }
    }

    /// Engine time for a wall-clock time after now (a pause's expiry): now plus the
    /// wait, so a clock stepped meanwhile moves nothing.
    pub fn ahead(&self, wall: SystemTime) -> Timestamp {
        let wait = wall
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        self.now() + wait
    }

    pub fn wall_origin(&self) -> SystemTime {
        self.wall_origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_times_map_before_the_start_and_never_below_zero() {
        let clock = Clock::start();
        let hour_ago = clock.wall_origin() - Duration::from_secs(3600);
        assert_eq!(
            clock.on_engine_clock(hour_ago),
            Timestamp::from_duration(START - Duration::from_secs(3600))
        );
        let ancient = SystemTime::UNIX_EPOCH;
        assert_eq!(clock.on_engine_clock(ancient), Timestamp::ZERO);
        let future = clock.wall_origin() + Duration::from_secs(60);
        assert_eq!(
            clock.on_engine_clock(future),
            Timestamp::from_duration(START)
        );
        assert!(clock.now() >= Timestamp::from_duration(START));
    }
}
