//! Signal sources: each turns one part of the outside world into engine `Event`s,
//! sent to the agent over a channel. The agent stamps them with its clock. systemd's
//! unit states come from the D-Bus link in `crate::systemd`, which also runs the unit
//! operations, on one connection (see there why). Alertmanager's alerts arrive over
//! its webhook (`alertmanager`); PHP-FPM's status page is read over FastCGI (`php_fpm`).

pub mod alertmanager;
pub mod http;
pub mod log;
pub mod php_fpm;

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

/// Runs `read` every `interval` (at least [`MIN_POLL_INTERVAL`]; the first at once)
/// and sends each event it makes, until `shutdown` flips to true, its sender is gone
/// (nobody is left to stop the loop or to read what it sends), or the loop's queue is.
/// The whole step (wait, read, send) is raced against shutdown, so neither a hanging
/// read nor a full queue delays stopping.
pub async fn poll_every<F, R>(
    interval: std::time::Duration,
    tx: EventSender,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut read: F,
) where
    F: FnMut() -> R,
    R: std::future::Future<Output = Event>,
{
    let mut ticker = tokio::time::interval(interval.max(MIN_POLL_INTERVAL));
    // After a slow read, wait a full interval rather than a burst to catch up: a
    // struggling service gets no extra load from its own health check.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let step = async {
            ticker.tick().await;
            let event = read().await;
            tx.send(event).await.is_ok()
        };
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|&stop| stop) => return,
            sent = step => if !sent { return },
        }
    }
}

/// A zero interval would spin: the floor of any poll (tests probe every few ms).
pub const MIN_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);
