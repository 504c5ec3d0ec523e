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
//! Replicas elect one leader with a Lease; only it acts. Standbys keep the policies
//! loaded and their watches open, holding the newest state of each object, and take
//! over within the lease's duration. The guard records (attempts, outcomes,
//! escalations) go to a ConfigMap before anything runs (`journal_tail.rs`); a new
//! leader rebuilds every guard from them, so a failover never resets `maxAttempts`.
//! A leader that loses its lease stops at once (its process exits, and comes back as a
//! standby): two replicas never act together.

pub mod journal_tail;
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
use crate::signal::http::Probes;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
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
    /// Where guard state is kept for the next leader, and the election; `None` runs
    /// alone and remembers nothing across restarts (tests, `--no-leader-election`).
    pub cluster: Option<ClusterState>,
    /// `/metrics`, `/healthz`, `/readyz` and the status page, as the agent serves them
    /// (the config's `metrics:`); every replica serves its own.
    pub web: crate::web::WebConfig,
}

/// The operator's own namespace, its name among the replicas, and its lease.
#[derive(Debug, Clone)]
pub struct ClusterState {
    pub namespace: String,
    pub identity: String,
    /// `None`: this replica acts without an election (one replica only).
    pub lease: Option<LeaseSettings>,
}

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    /// How long a leader's hold lasts unrenewed: the longest a failover takes.
    pub duration: Duration,
    /// How long before the end the leader renews.
    pub grace: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            name: "salve-operator".to_string(),
            duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Journal(#[from] AuditError),
    #[error("cannot take part in the leader election (Lease {lease}): {cause}")]
    Lease {
        lease: String,
        cause: kube_lease_manager::LeaseManagerError,
    },
    #[error("lost the leader's lease to another replica: stopping, so that only one acts")]
    LostLeadership,
}

/// How long a stop waits for attempts in flight to finish and be journalled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The journal as JSON Lines on stdout, where `kubectl logs` finds it, and in a file
/// when one is mounted.
struct StdoutJournal {
    file: Option<Journal>,
}

/// A journal whose guard records are also shown in their policy's status.
struct Tapped {
    inner: Box<dyn Sink>,
    records: mpsc::Sender<Record>,
}

impl Sink for Tapped {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        self.inner.append(record)?;
        if journal_tail::kept(&record.entry) || status::shows(&record.entry) {
            let _ = self.records.try_send(record.clone());
        }
        Ok(())
    }
}

/// A journal whose guard records also go to the cluster, for the next leader.
struct Tailed {
    inner: Box<dyn Sink>,
    tail: journal_tail::ClusterTail,
}

impl Sink for Tailed {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        self.inner.append(record)?;
        self.tail.append(record)
    }
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
    let sink: Box<dyn Sink> = match options.journal_sink {
        Some(sink) => sink,
        None => {
            let file = match &options.journal_path {
                Some(path) => Some(Journal::open(path, options.rotation)?),
                None => None,
            };
            Box::new(StdoutJournal { file })
        }
    };
    // The status is best effort: when the loop falls behind, a record is not shown
    // rather than queued without bound (the journal has it).
    let (records_tx, mut records_rx) = mpsc::channel::<Record>(1024);
    let sink: Box<dyn Sink> = Box::new(Tapped {
        inner: sink,
        records: records_tx,
    });
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let observe = {
        let metrics = Arc::clone(&metrics);
        move |took, ok| metrics.journal_written(took, ok)
    };
    let journal = match &options.cluster {
        Some(cluster) => {
            let tail = journal_tail::ClusterTail::open(
                options.client.clone(),
                &cluster.namespace,
                &cluster.identity,
            )
            .await?;
            JournalWriter::start_observed(Tailed { inner: sink, tail }, label, observe)?
        }
        None => JournalWriter::start_observed(sink, label, observe)?,
    };
    let mut leadership = match options
        .cluster
        .as_ref()
        .and_then(|c| Some((c, c.lease.as_ref()?)))
    {
        Some((cluster, lease)) => Some(elect(&options.client, cluster, lease).await?),
        None => None,
    };
    // Alone, this replica leads from the start; elected, once the lease says so.
    let mut leading = leadership.is_none();
    let mut restored = options.cluster.is_none();
    let mut policies_loaded = false;
    // A standby's newest state of each object, by key, fed to the engine on takeover.
    let mut standby_cache: std::collections::HashMap<String, Event> =
        std::collections::HashMap::new();
    let (events_tx, mut events_rx) = crate::signal::event_queue(1024);
    let (seen_tx, mut seen_rx) = mpsc::channel::<watches::Seen>(1024);
    let family = KubernetesObjects::new(options.client.clone(), options.instance.clone())
        .with_retry(options.retry);
    let mut controller = Controller::new(
        Engine::new(Vec::new(), options.limits),
        journal,
        Clock::start(),
        Executor::new(family),
        events_tx.clone(),
    )
    .with_metrics(Arc::clone(&metrics));
    // A port another program holds is no reason not to heal: warned, and run on.
    let mut web = match crate::web::listen(&options.web, metrics, options.journal_path.as_deref())
        .await
    {
        Ok(listening) => listening,
        Err(e) => {
            tracing::warn!(error = %e, "no metrics listener: /metrics, /healthz and /readyz cannot be read");
            None
        }
    };
    let resources: Api<RemediationPolicy> = match &options.namespace {
        Some(ns) => Api::namespaced(options.client.clone(), ns),
        None => Api::all(options.client.clone()),
    };
    let policy_watch = watcher(resources, watcher::Config::default()).default_backoff();
    futures_util::pin_mut!(policy_watch);
    let mut set = policies::PolicySet::default();
    let (status_tx, status_task) = status::writer(options.client.clone(), status::REWRITE_AFTER);
    let mut watching = watches::Watches::default();
    // The policies' HTTP probes run on the leader only: a standby must not act on what
    // they report, and needs no history of them (the first probe goes out at once).
    let mut probes: Option<Probes> = None;
    let mut lost = false;
    let mut seen_since_trim = 0usize;
    tracing::info!(namespace = ?options.namespace, "salve operator started");
    loop {
        let deadline = controller.deadline();
        tokio::select! {
            item = futures_util::StreamExt::next(&mut policy_watch) => match item {
                Some(Ok(event)) => {
                    let changed = set.apply(event);
                    // Read before the status is taken: a policy another of its name
                    // shadows is refused there.
                    let policies = changed.then(|| set.policies());
                    for update in set.take_status() {
                        let _ = status_tx.send(status::StatusChange::Ready(update));
                    }
                    if let Some(policies) = policies {
                        // Watches first: what they see queues behind the new policies.
                        watching.follow(&options.client, plan(&policies), &seen_tx);
                        tracing::info!(policies = policies.len(), "policies loaded");
                        if leading && restored {
                            probe(&mut probes, &policies, &events_tx);
                        }
                        controller.replace_policies(policies);
                    }
                    if set.listed() && !policies_loaded {
                        policies_loaded = true;
                    }
                    if leading && policies_loaded && !restored {
                        restored = true;
                        take_over(&mut controller, &options.client, options.cluster.as_ref(), &mut standby_cache).await?;
                        probe(&mut probes, controller.engine.policies(), &events_tx);
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "watching RemediationPolicies failed; retrying"),
                None => break,
            },
            Some(observed) = events_rx.recv() => controller.observe(observed),
            Some(record) = records_rx.recv() => {
                if let Some((namespace, name)) = set.resource_of(&record.policy) {
                    let _ = status_tx.send(status::StatusChange::Journalled {
                        namespace,
                        name,
                        record: Box::new(record),
                    });
                }
            }
            Some(seen) = seen_rx.recv() => {
                if let Some(event) = watching.merge(seen) {
                    if leading && restored {
                        controller.handle(event);
                    } else {
                        keep_newest(&mut standby_cache, event);
                    }
                }
                seen_since_trim += 1;
                if seen_since_trim >= TRIM_AFTER && seen_rx.is_empty() {
                    seen_since_trim = 0;
                    give_back_freed_memory();
                }
            }
            now_leading = leadership_changed(&mut leadership) => match now_leading {
                Some(true) if !leading => {
                    tracing::info!("this replica is the leader now");
                    leading = true;
                    if policies_loaded && !restored {
                        restored = true;
                        take_over(&mut controller, &options.client, options.cluster.as_ref(), &mut standby_cache).await?;
                        probe(&mut probes, controller.engine.policies(), &events_tx);
                    }
                }
                Some(false) if leading => {
                    tracing::error!("lost the leader's lease: stopping");
                    lost = true;
                    break;
                }
                Some(_) => {}
                // The election task ended: nothing renews the lease any more.
                None => {
                    tracing::error!("the leader election stopped: stopping");
                    lost = leading;
                    break;
                }
            },
            _ = sleep_until_opt(deadline) => controller.handle(Event::Tick {}),
            lost = controller.attempts.next_lost() => controller.handle(Event::Outcome(lost)),
            Some(ask) = crate::web::next_ask(&mut web) => controller.answer(ask),
            _ = stop.changed() => break,
        }
    }
    tracing::info!(
        in_flight = controller.running.len(),
        "stopping: finishing attempts in flight"
    );
    drop(web);
    watching.stop();
    if let Some(probes) = &probes {
        probes.stop();
    }
    // Conditions already decided are written before the operator goes.
    drop(status_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), status_task).await;
    controller.finish(&mut events_rx, SHUTDOWN_GRACE).await;
    controller.close();
    if let Some((receiver, election)) = leadership {
        // Without a receiver the election task gives the lease up, so a standby takes
        // over at once rather than after the lease's duration.
        drop(receiver);
        let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
    }
    tracing::info!("salve operator stopped");
    if lost {
        return Err(OperatorError::LostLeadership);
    }
    Ok(())
}

/// Observations after which, once the queue is empty, freed memory is given back.
const TRIM_AFTER: usize = 10_000;

/// Gives the pages freed since the last time back to the kernel. glibc's allocator
/// keeps what a listing or a burst of watch events freed, spread over each thread's
/// arena, and returns little of it by itself: an operator that once listed ten
/// thousand pods would hold that peak for good. A few milliseconds, after a burst.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it walks the allocator's own free
    // lists under the allocator's locks. 0 keeps no padding at the top of the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

type Election = (
    watch::Receiver<bool>,
    tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
);

async fn elect(
    client: &Client,
    cluster: &ClusterState,
    lease: &LeaseSettings,
) -> Result<Election, OperatorError> {
    let failed = |cause| OperatorError::Lease {
        lease: format!("{}/{}", cluster.namespace, lease.name),
        cause,
    };
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &lease.name)
        .with_namespace(&cluster.namespace)
        .with_identity(&cluster.identity)
        .with_duration(lease.duration.as_secs().max(1))
        .with_grace(lease.grace.as_secs().max(1))
        .build()
        .await
        .map_err(failed)?;
    Ok(manager.watch().await)
}

/// The election's next word: whether this replica leads; `None` once it has ended.
/// Never ready without an election.
async fn leadership_changed(election: &mut Option<Election>) -> Option<bool> {
    let Some((leading, _)) = election.as_mut() else {
        return std::future::pending().await;
    };
    match leading.changed().await {
        Ok(()) => Some(*leading.borrow_and_update()),
        Err(_) => {
            *election = None;
            None
        }
    }
}

/// (Re)starts the probes `policies` need.
fn probe<'a>(
    probes: &mut Option<Probes>,
    policies: impl IntoIterator<Item = &'a crate::policy::Policy>,
    events: &crate::signal::EventSender,
) {
    if let Some(old) = probes.take() {
        old.stop();
    }
    *probes = Some(Probes::start(policies, events));
}

/// A standby keeps the newest observation of each object, and forgets a deleted one.
fn keep_newest(cache: &mut std::collections::HashMap<String, Event>, event: Event) {
    let (key, deleted) = match &event {
        Event::Pod(o) => (o.key().to_string(), o.deleted),
        Event::Workload(o) => (o.key().to_string(), o.deleted),
        Event::Node(o) => (o.key().to_string(), o.deleted),
        _ => return,
    };
    if deleted {
        cache.remove(&key);
    } else {
        cache.insert(key, event);
    }
}

/// Becoming the leader: every guard rebuilt from the records every replica left in
/// the cluster, attempts the last leader never finished closed as unknown (they count
/// as failed), escalations it never sent sent, then the objects as last seen.
async fn take_over(
    controller: &mut Controller<KubernetesObjects>,
    client: &Client,
    cluster: Option<&ClusterState>,
    cache: &mut std::collections::HashMap<String, Event>,
) -> Result<(), OperatorError> {
    if let Some(cluster) = cluster {
        let recovered = journal_tail::recover(
            client.clone(),
            &cluster.namespace,
            &format!("{}.jsonl", cluster.identity),
            &controller.clock,
        )
        .await?;
        controller.rebuild_guards(recovered, "the cluster");
    }
    let mut cached: Vec<(String, Event)> = cache.drain().collect();
    cached.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, event) in cached {
        controller.handle(event);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
