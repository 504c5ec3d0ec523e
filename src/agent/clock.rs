//! The agent's engine clock: monotonic time since the agent started.

use crate::engine::Timestamp;
use tokio::time::Instant;

pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.origin.elapsed())
    }

    pub fn instant_of(&self, t: Timestamp) -> Instant {
        self.origin + t.since_origin()
    }
}
