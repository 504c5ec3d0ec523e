//! `salve operator`: heals pods, workloads and nodes with the same engine, executor and
//! journal as the host agent, on the loop every runtime shares (`crate::controller`).
//!
//! It watches `RemediationPolicy` resources (keeping each one's last good version),
//! watches only the objects those policies name or select, and acts through the API
//! server (`action::kubernetes`). The journal goes to stdout as JSON Lines, and to a
//! file as well when one is given (a mounted volume).
//!
//! Each policy's `Ready` condition says whether it runs (`status.rs`).
//!
//! Not yet here: leader election, guard state kept where a new leader reads it, the
//! last attempt and the circuit in the status, `maxUnhealthy`; until then run one
//! replica.

mod policies;
mod status;
mod watches;

pub use watches::{plan, ObjectKind, WatchSpec};

use crate::action::kubernetes::{KubernetesObjects, Retry};
use crate::action::Executor;
use crate::audit::{AuditError, Journal, JournalWriter, Record, Rotation, Sink};
use crate::controller::{clock::Clock, sleep_until_opt, Controller};
use crate::engine::{Engine, Event, Limits};
use crate::kubernetes::RemediationPolicy;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

pub struct OperatorOptions {
    pub client: Client,
    /// The namespace whose policies run; `None`: every namespace.
    pub namespace: Option<String>,
    pub limits: Limits,
    /// A journal file beside stdout.
    pub journal_path: Option<PathBuf>,
    pub rotation: Rotation,
    /// Where the journal goes instead of stdout (tests read it back).
    pub journal_sink: Option<Box<dyn Sink>>,
    /// This replica's name, in the Events it records (the pod's name).
    pub instance: Option<String>,
    pub retry: Retry,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Journal(#[from] AuditError),
}

/// How long a stop waits for attempts in flight to finish and be journalled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The journal as JSON Lines on stdout, where `kubectl logs` finds it, and in a file
/// when one is mounted.
struct StdoutJournal {
    file: Option<Journal>,
}

impl Sink for StdoutJournal {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        if let Some(file) = &mut self.file {
            file.append(record)?;
        }
        let line = serde_json::to_string(record).map_err(|cause| AuditError::Encode {
            path: PathBuf::from("stdout"),
            kind: "record",
            cause,
        })?;
        let mut out = std::io::stdout().lock();
        // stdout is a pipe to the container runtime: a failure there has nowhere to be
        // told but the log itself, and the file (when there is one) has the record.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        Ok(())
    }
}

/// Runs until `stop` turns true.
pub async fn run(
    options: OperatorOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    let label = options
        .journal_path
        .clone()
        .unwrap_or_else(|| PathBuf::from("stdout"));
    let journal = match options.journal_sink {
        Some(sink) => JournalWriter::start(sink, label)?,
        None => {
            let file = match &options.journal_path {
                Some(path) => Some(Journal::open(path, options.rotation)?),
                None => None,
            };
            JournalWriter::start(StdoutJournal { file }, label)?
        }
    };
    let (events_tx, mut events_rx) = mpsc::channel::<Event>(1024);
    let (seen_tx, mut seen_rx) = mpsc::channel::<watches::Seen>(1024);
    let family = KubernetesObjects::new(options.client.clone(), options.instance.clone())
        .with_retry(options.retry);
    let mut controller = Controller::new(
        Engine::new(Vec::new(), options.limits),
        journal,
        Clock::start(),
        Executor::new(family),
        events_tx.clone(),
    );
    let resources: Api<RemediationPolicy> = match &options.namespace {
        Some(ns) => Api::namespaced(options.client.clone(), ns),
        None => Api::all(options.client.clone()),
    };
    let policy_watch = watcher(resources, watcher::Config::default()).default_backoff();
    futures_util::pin_mut!(policy_watch);
    let mut set = policies::PolicySet::default();
    let (status_tx, status_task) = status::writer(options.client.clone());
    let mut watching = watches::Watches::default();
    tracing::info!(namespace = ?options.namespace, "salve operator started");
    loop {
        let deadline = controller.deadline();
        tokio::select! {
            item = futures_util::StreamExt::next(&mut policy_watch) => match item {
                Some(Ok(event)) => {
                    let changed = set.apply(event);
                    for update in set.take_status() {
                        let _ = status_tx.send(update);
                    }
                    if changed {
                        let policies = set.policies();
                        // Watches first: what they see queues behind the new policies.
                        watching.follow(&options.client, plan(&policies), &seen_tx);
                        tracing::info!(policies = policies.len(), "policies loaded");
                        controller.replace_policies(policies);
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "watching RemediationPolicies failed; retrying"),
                None => break,
            },
            Some(event) = events_rx.recv() => controller.handle(event),
            Some(seen) = seen_rx.recv() => {
                if let Some(event) = watching.merge(seen) {
                    controller.handle(event);
                }
            }
            _ = sleep_until_opt(deadline) => controller.handle(Event::Tick {}),
            lost = controller.attempts.next_lost() => controller.handle(Event::Outcome(lost)),
            _ = stop.changed() => break,
        }
    }
    tracing::info!(
        in_flight = controller.running.len(),
        "stopping: finishing attempts in flight"
    );
    watching.stop();
    // Conditions already decided are written before the operator goes.
    drop(status_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), status_task).await;
    controller.finish(&mut events_rx, SHUTDOWN_GRACE).await;
    controller.close();
    tracing::info!("salve operator stopped");
    Ok(())
}

#[cfg(test)]
mod tests;
