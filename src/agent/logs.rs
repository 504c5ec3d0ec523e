//! The log followers the loaded policies need, one per distinct file.

use crate::engine::Event;
use crate::policy::{Condition, Policy};
use std::collections::BTreeSet;
use std::path::PathBuf;
use tokio::sync::{mpsc, watch};

pub struct Logs {
    stop: watch::Sender<bool>,
}

impl Logs {
    /// Follows every file a log trigger names. Lines go to the engine, which matches them
    /// against the triggers' patterns.
    pub fn start(policies: &[Policy], events: &mpsc::Sender<Event>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let paths: BTreeSet<PathBuf> = policies
            .iter()
            .flat_map(|p| &p.spec.trigger)
            .filter_map(|t| match &t.condition {
                Condition::Log(c) => Some(c.path.clone()),
                _ => None,
            })
            .collect();
        for path in paths {
            tracing::info!(path = %path.display(), "following log");
            tokio::spawn(crate::signal::log::follow(
                path,
                events.clone(),
                stopped.clone(),
            ));
        }
        Logs { stop }
    }

    /// Stops the current followers and starts those `policies` need. A follower starts
    /// at the end of its file: lines written while none ran are not replayed.
    pub fn restart(&mut self, policies: &[Policy], events: &mpsc::Sender<Event>) {
        self.stop();
        *self = Logs::start(policies, events);
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}
