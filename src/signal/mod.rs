//! Signal sources: each turns one part of the outside world into engine `Event`s,
//! sent to the agent over a channel. The agent stamps them with its clock. systemd's
//! unit states come from the D-Bus link in `crate::systemd`, which also runs the unit
//! operations, on one connection (see there why). Alertmanager's alerts arrive over
//! its webhook (`alertmanager`).

pub mod alertmanager;
pub mod http;
pub mod log;

use crate::engine::Event;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// An event as the loop takes it from its queue: with the moment it was queued, so
/// the loop can tell how long a signal waited before the engine decided on it
/// (`salve_signal_to_decision_seconds`), queueing included.
#[derive(Debug)]
pub struct Observed {
    pub event: Event,
    pub queued: Instant,
}

/// The sending side of the loop's event queue: every signal source and every attempt
/// sends through one of these.
#[derive(Debug, Clone)]
pub struct EventSender(mpsc::Sender<Observed>);

/// The loop has stopped: nobody takes events any more.
#[derive(Debug, thiserror::Error)]
#[error("the controller's loop has stopped")]
pub struct LoopGone;

impl EventSender {
    /// Waits for room in the queue: a source is slowed down, never dropped.
    pub async fn send(&self, event: Event) -> Result<(), LoopGone> {
        let observed = Observed {
            event,
            queued: Instant::now(),
        };
        self.0.send(observed).await.map_err(|_| LoopGone)
    }
}

/// The loop's event queue, holding at most `capacity` events.
pub fn event_queue(capacity: usize) -> (EventSender, mpsc::Receiver<Observed>) {
    let (tx, rx) = mpsc::channel(capacity);
    (EventSender(tx), rx)
}
