//! The log followers the loaded policies need, one per distinct file.

use crate::policy::{Condition, Policy};
use crate::signal::log::{follow, follow_filtered, LineScanner};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

pub struct Logs {
    stop: watch::Sender<bool>,
}

impl Logs {
    /// Follows every file a log trigger names. Lines go to the engine, which matches them
    /// against the triggers' patterns.
    pub fn start(policies: &[Policy], events: &crate::signal::EventSender) -> Self {
        let (stop, stopped) = watch::channel(false);
        // Each file's followers send only the lines one of its triggers may match.
        let mut patterns: BTreeMap<PathBuf, Vec<&str>> = BTreeMap::new();
        for trigger in policies.iter().flat_map(|p| &p.spec.trigger) {
            if let Condition::Log(c) = &trigger.condition {
                patterns
                    .entry(c.path.clone())
                    .or_default()
                    .push(c.pattern.regex.as_str());
            }
        }
        for (path, regexes) in patterns {
            tracing::info!(path = %path.display(), "following log");
            match LineScanner::new(&regexes) {
                Some(scanner) => {
                    tokio::spawn(follow_filtered(
                        path,
                        Arc::new(scanner),
                        events.clone(),
                        stopped.clone(),
                    ));
                }
                // A pattern that may start with anything leaves nothing to search
                // for: the engine gets every line and matches it itself.
                None => {
                    tracing::debug!(path = %path.display(), "a pattern has no prefix literal; sending every line");
                    tokio::spawn(follow(path, events.clone(), stopped.clone()));
                }
            }
        }
        Logs { stop }
    }

    /// Stops the current followers and starts those `policies` need. A follower starts
    /// at the end of its file: lines written while none ran are not replayed.
    pub fn restart(&mut self, policies: &[Policy], events: &crate::signal::EventSender) {
        self.stop();
        *self = Logs::start(policies, events);
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}
