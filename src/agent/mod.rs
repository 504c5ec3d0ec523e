//! The host agent: wires signals → engine → actions → journal on a systemd host, on
//! the loop every runtime shares (`crate::controller`). At start the guard state is
//! rebuilt from the journal.

mod control;
mod logs;
mod service;
mod watch_files;

use crate::action::{Executor, SystemdUnits, DEFAULT_JOB_TIMEOUT};
use crate::audit::{AuditError, Journal, JournalWriter, Sink};
use crate::config::Config;
use crate::controller::{clock::Clock, sleep_until_opt, Controller};
use crate::engine::{Engine, Event};
use crate::policy::{self, Diagnostics, Policy};
use crate::signal::http::Probes;
use crate::systemd::{self, Bus, SystemdHandle};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

pub struct AgentOptions {
    pub policy_paths: Vec<PathBuf>,
    pub config: Config,
    pub bus: Bus,
    /// Wraps the opened journal before its writer thread takes it: `None` writes the
    /// journal itself. Fault injection (a disk that stalls) goes here.
    pub journal_sink: Option<WrapSink>,
    /// Stands in for the D-Bus link to systemd: `None` connects to `bus`. The agent's
    /// own tests put a scripted systemd here, so its loop runs without root or a bus.
    pub systemd_link: Option<LinkFactory>,
}

/// See [`AgentOptions::journal_sink`].
pub type WrapSink = Box<dyn FnOnce(Journal) -> Box<dyn Sink> + Send>;

/// See [`AgentOptions::systemd_link`]: given the units to watch, where unit events go
/// and the shutdown signal, starts a link and returns the handle actions use.
pub type LinkFactory = Box<
    dyn FnOnce(Vec<String>, crate::signal::EventSender, watch::Receiver<bool>) -> SystemdHandle
        + Send,
>;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the policies are invalid; the agent did not start:\n{0}")]
    Policies(Diagnostics),
    #[error(transparent)]
    Journal(#[from] AuditError),
    #[error("cannot install the {0} handler: {1}")]
    Signal(&'static str, std::io::Error),
}

/// How long SIGTERM waits for attempts in flight to finish and be journalled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The agent: the shared loop, over systemd units.
struct Agent(Controller<SystemdUnits>);

pub async fn run(options: AgentOptions) -> Result<(), AgentError> {
    let policies = load_host_policies(&options.policy_paths).map_err(AgentError::Policies)?;
    let journal_path = options.config.journal_path.clone();
    let journal = Journal::open(&journal_path, options.config.rotation)?;
    let clock = Clock::start();
    let recovered = crate::controller::recovery::recover(&journal_path, &policies, &clock)?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let observe = {
        let metrics = Arc::clone(&metrics);
        move |took, ok| metrics.journal_written(took, ok)
    };
    let journal = match options.journal_sink {
        Some(wrap) => JournalWriter::start_observed(wrap(journal), journal_path.clone(), observe)?,
        None => JournalWriter::start_observed(journal, journal_path.clone(), observe)?,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (events_tx, mut events_rx) = crate::signal::event_queue(1024);

    let units = units_of(&policies);
    let (handle, link_task) = match options.systemd_link {
        Some(start) => (start(units, events_tx.clone(), stop_rx.clone()), None),
        None => {
            let (link, handle) = systemd::link(
                options.bus.clone(),
                units,
                events_tx.clone(),
                stop_rx.clone(),
            );
            (handle, Some(tokio::spawn(link.run())))
        }
    };
    let mut probes = Probes::start(&policies, &events_tx);
    let mut logs = logs::Logs::start(&policies, &events_tx);

    let alerts =
        crate::signal::alertmanager::start(options.config.alerts.as_ref(), &policies, &events_tx)
            .await;
    let engine = Engine::new(policies, options.config.limits.clone());
    let mut agent = Agent(
        Controller::new(
            engine,
            journal,
            clock,
            Executor::new(
                SystemdUnits::new(handle, DEFAULT_JOB_TIMEOUT)
                    .with_keep_backups(options.config.config_backups),
            )
            .with_fleet(options.config.fleet.as_ref()),
            events_tx,
        )
        .with_metrics(Arc::clone(&metrics)),
    );
    agent.0.rebuild_guards(recovered, "the journal");
    // No socket (its directory missing outside the unit's RuntimeDirectory, say) is
    // no reason not to heal: the agent runs on, and says so.
    let mut control = match crate::control::server::listen(&options.config.control) {
        Ok(listening) => Some(listening),
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: `salve status`, `pause` and `reset` cannot reach this agent");
            None
        }
    };
    // Nor is a metrics port another program holds: the agent heals without it.
    let mut web = match crate::web::listen(
        &options.config.web,
        Arc::clone(&metrics),
        Some(&journal_path),
    )
    .await
    {
        Ok(listening) => listening,
        Err(e) => {
            tracing::warn!(error = %e, "no metrics listener: /metrics, /healthz and /readyz cannot be read");
            None
        }
    };
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| AgentError::Signal("SIGHUP", e))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| AgentError::Signal("SIGTERM", e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| AgentError::Signal("SIGINT", e))?;
    let mut file_changes = watch_files::watch(&options.policy_paths);
    let mut watchdog = service::watchdog();
    tracing::info!(
        policies = agent.0.engine.policies().len(),
        journal = %options.config.journal_path.display(),
        bus = %options.bus,
        "salve agent started"
    );
    service::ready();

    loop {
        let deadline = agent.0.deadline();
        tokio::select! {
            Some(observed) = events_rx.recv() => agent.0.observe(observed),
            _ = sleep_until_opt(deadline) => agent.0.handle(Event::Tick {}),
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading policies");
                let _ = agent.reload(&options.policy_paths, &mut probes, &mut logs);
            }
            Some(()) = file_changes.recv() => {
                tracing::info!("policy files changed: reloading");
                let _ = agent.reload(&options.policy_paths, &mut probes, &mut logs);
            }
            Some(command) = next_command(&mut control) => {
                agent.control(command, |agent| agent.reload(&options.policy_paths, &mut probes, &mut logs));
            }
            Some(ask) = crate::web::next_ask(&mut web) => agent.0.answer(ask),
            _ = service::tick(&mut watchdog) => service::watchdog_ping(),
            lost = agent.0.attempts.next_lost() => agent.0.handle(Event::Outcome(lost)),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    // The socket goes first: a person asking now hears the agent is gone.
    drop(control);
    drop(web);
    drop(alerts);
    service::stopping();
    tracing::info!(
        in_flight = agent.0.running.len(),
        "stopping: finishing attempts in flight"
    );
    // No new decisions from here: only outcomes of attempts already running are taken,
    // journalled, and shown to the engine.
    agent.0.finish(&mut events_rx, SHUTDOWN_GRACE).await;
    probes.stop();
    logs.stop();
    let _ = stop_tx.send(true);
    if let Some(link_task) = link_task {
        let _ = link_task.await;
    }
    // Nothing else needs the runtime now: what is queued goes to disk.
    agent.0.close();
    tracing::info!("salve agent stopped");
    Ok(())
}

/// The agent acts on systemd units and HAProxy servers (next to the HAProxy whose
/// admin socket it reaches); a policy on anything else is refused at load.
fn load_host_policies(paths: &[PathBuf]) -> Result<Vec<Policy>, crate::policy::Diagnostics> {
    let policies = policy::load(paths)?;
    policy::only_targets(
        &policies,
        |t| t.unit().is_some() || t.is_load_balancer(),
        "the host agent acts on systemd units and load balancers' servers (HAProxy, nginx); Kubernetes targets are the operator's",
    )?;
    Ok(policies)
}

async fn next_command(
    control: &mut Option<crate::control::server::Listening>,
) -> Option<crate::control::server::Command> {
    match control {
        Some(listening) => listening.commands.recv().await,
        None => std::future::pending().await,
    }
}

fn units_of<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Vec<String> {
    let set: BTreeSet<String> = policies
        .into_iter()
        .filter_map(|p| p.spec.target.unit().map(|u| u.to_string()))
        .collect();
    set.into_iter().collect()
}

impl Agent {
    /// Loads the policies again; an invalid set is rejected with every error logged,
    /// and the agent keeps running the last good set. The policies now running, or
    /// the number of errors.
    fn reload(
        &mut self,
        paths: &[PathBuf],
        probes: &mut Probes,
        logs: &mut logs::Logs,
    ) -> Result<usize, usize> {
        match load_host_policies(paths) {
            Ok(policies) => {
                let new_units: BTreeSet<String> = units_of(&policies).into_iter().collect();
                let old_units: BTreeSet<String> =
                    units_of(self.0.engine.policies()).into_iter().collect();
                for unit in new_units.difference(&old_units) {
                    let executor = Arc::clone(&self.0.executor);
                    let unit = unit.clone();
                    tokio::spawn(async move {
                        if let Err(e) = executor.family().watch_unit(&unit).await {
                            tracing::warn!(unit = %unit, error = %e, "watching the unit a reloaded policy names did not complete");
                        }
                    });
                }
                probes.restart(&policies, &self.0.events);
                logs.restart(&policies, &self.0.events);
                let count = policies.len();
                self.0.replace_policies(policies);
                self.0.metrics.reloaded(true);
                tracing::info!(policies = count, "policies reloaded");
                Ok(count)
            }
            Err(diagnostics) => {
                for d in &diagnostics.0 {
                    tracing::error!(location = %d, "invalid policy");
                }
                tracing::error!(
                    errors = diagnostics.0.len(),
                    "reload rejected: keeping the last good policy set"
                );
                self.0.metrics.reloaded(false);
                Err(diagnostics.0.len())
            }
        }
    }
}
