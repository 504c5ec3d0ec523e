//! The systemd link: one task that owns the D-Bus connection, turns unit property
//! changes into engine events, and runs the unit operations actions ask for.
//!
//! Watching and acting share one connection and one task on purpose. A restart passes
//! through deactivating → inactive → activating → active, and systemd emits those
//! `PropertiesChanged` signals before the job's `JobRemoved`. Because one connection
//! delivers them in emission order and this task drains property changes before job
//! completions, every transition caused by an action reaches the engine *before* that
//! action's outcome: the engine never mistakes a restart's own `inactive` for a crash.

mod op;
mod state;

pub use op::{Completion, JobResult, UnitOpError};

use crate::engine::{Event, UnitObservation};
use futures_util::stream::{SelectAll, StreamExt};
use state::{observation_from_signal, read_state_timed, unit_properties, unknown_state};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use zbus::fdo::PropertiesProxy;
use zbus::Connection;
use zbus_systemd::systemd1::ManagerProxy;

/// Which bus to talk to: the machine's system bus or an explicit address (the lab's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    System,
    Address(String),
}

impl FromStr for Bus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "system" => Ok(Bus::System),
            t if t.starts_with("unix:") => Ok(Bus::Address(t.to_string())),
            _ => Err(format!(
                "unknown bus \"{text}\": expected `system` or a D-Bus address such as unix:path=/run/dbus/system_bus_socket"
            )),
        }
    }
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bus::System => f.write_str("system"),
            Bus::Address(a) => f.write_str(a),
        }
    }
}

/// An operation on a unit, as the actions name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitOp {
    Start,
    Stop,
    Restart,
    TryRestart,
    Reload,
    ResetFailed,
    Kill {
        whom: String,
        signal: i32,
    },
    Enable,
    Disable,
    /// Read the unit's state now (for `verify`).
    Query,
    /// Watch one more unit from now on (a reload brought a policy on it): its state is
    /// read at once and its changes become events, across reconnects too.
    Watch,
}

impl UnitOp {
    /// The operation as a policy's action names it, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            UnitOp::Start => "start",
            UnitOp::Stop => "stop",
            UnitOp::Restart => "restart",
            UnitOp::TryRestart => "tryRestart",
            UnitOp::Reload => "reload",
            UnitOp::ResetFailed => "resetFailed",
            UnitOp::Kill { .. } => "kill",
            UnitOp::Enable => "enable",
            UnitOp::Disable => "disable",
            UnitOp::Query => "query",
            UnitOp::Watch => "watch",
        }
    }

    fn job_method(&self) -> Option<&'static str> {
        match self {
            UnitOp::Start => Some("start"),
            UnitOp::Stop => Some("stop"),
            UnitOp::Restart => Some("restart"),
            UnitOp::TryRestart => Some("try-restart"),
            UnitOp::Reload => Some("reload"),
            _ => None,
        }
    }
}

/// The helper unit that enables or disables `unit` at boot for salve:
/// `salve-enable@php8.2-fpm.service.service`.
pub fn helper_unit(op: &UnitOp, unit: &str) -> String {
    let verb = if *op == UnitOp::Disable {
        "disable"
    } else {
        "enable"
    };
    format!("salve-{verb}@{unit}.service")
}

/// What an operation ended with: its job's result, or at once for operations without a
/// job, and the unit's state afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct OpResult {
    pub completion: Completion,
    pub state: UnitObservation,
}

impl OpResult {
    pub fn succeeded(&self) -> bool {
        self.completion.succeeded()
    }
}

type Reply = oneshot::Sender<Result<OpResult, UnitOpError>>;
/// Operations waiting for their job's `JobRemoved`, by job object path: (unit, reply).
type PendingJobs = HashMap<String, (String, Reply)>;

pub struct OpRequest {
    pub unit: String,
    pub op: UnitOp,
    pub reply: Reply,
}

/// Handle for actions: sends operations to the link task.
#[derive(Clone)]
pub struct SystemdHandle {
    requests: mpsc::Sender<OpRequest>,
}

impl SystemdHandle {
    /// A handle whose operations go to whoever holds `requests`' receiver: the link
    /// task, or a stand-in for it in tests.
    pub fn new(requests: mpsc::Sender<OpRequest>) -> Self {
        SystemdHandle { requests }
    }

    /// Runs `op` on `unit`, waiting at most `timeout` (for the job to finish too).
    pub async fn run(
        &self,
        unit: &str,
        op: UnitOp,
        timeout: Duration,
    ) -> Result<OpResult, UnitOpError> {
        let (reply, answer) = oneshot::channel();
        let request = OpRequest {
            unit: unit.to_string(),
            op,
            reply,
        };
        let work = async {
            self.requests
                .send(request)
                .await
                .map_err(|_| UnitOpError::LinkStopped)?;
            answer.await.map_err(|_| UnitOpError::Dropped)?
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(UnitOpError::TimedOut { after: timeout }),
        }
    }
}

pub struct SystemdLink {
    bus: Bus,
    units: Vec<String>,
    events: crate::signal::EventSender,
    requests: mpsc::Receiver<OpRequest>,
    shutdown: watch::Receiver<bool>,
}

enum SessionEnd {
    Shutdown,
    Disconnected(String),
}

/// Creates the link and the handle actions use to reach it.
pub fn link(
    bus: Bus,
    units: Vec<String>,
    events: crate::signal::EventSender,
    shutdown: watch::Receiver<bool>,
) -> (SystemdLink, SystemdHandle) {
    let (tx, rx) = mpsc::channel(64);
    let link = SystemdLink {
        bus,
        units,
        events,
        requests: rx,
        shutdown,
    };
    (link, SystemdHandle::new(tx))
}

pub async fn connect(bus: &Bus) -> zbus::Result<Connection> {
    match bus {
        Bus::System => Connection::system().await,
        Bus::Address(address) => {
            zbus::connection::Builder::address(address.as_str())
                .build()
                .await
        }
    }
}

impl SystemdLink {
    /// Runs until shutdown, reconnecting with backoff whenever the bus goes away. Each
    /// new session re-reads every unit, so a failure during the outage is still seen.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = tokio::time::Instant::now();
            match self.session().await {
                Ok(SessionEnd::Shutdown) => return,
                Ok(SessionEnd::Disconnected(why)) => {
                    tracing::warn!(bus = %self.bus, reason = %why, "D-Bus connection lost; reconnecting")
                }
                Err(e) => {
                    tracing::warn!(bus = %self.bus, error = %e, retry_in = ?backoff, "cannot talk to systemd over D-Bus")
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            }
            // Requests that arrive while the bus is away fail at once rather than hang
            // until their own timeout: the attempt is journalled as failed, and retried
            // by the engine under its guardrails.
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = self.shutdown.changed() => return,
                    Some(req) = self.requests.recv() => {
                        if req.op == UnitOp::Watch {
                            // Remembered: the next session watches it.
                            if !self.units.contains(&req.unit) {
                                self.units.push(req.unit.clone());
                            }
                            let state = unknown_state(&req.unit);
                            let _ = req.reply.send(Ok(OpResult { completion: Completion::Immediate, state }));
                            continue;
                        }
                        let _ = req.reply.send(Err(UnitOpError::BusDown));
                    }
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn session(&mut self) -> zbus::Result<SessionEnd> {
        let conn = connect(&self.bus).await?;
        let manager = ManagerProxy::new(&conn).await?;
        // systemd emits unit PropertiesChanged and JobRemoved only while some client is
        // subscribed; this connection stays subscribed for the session's lifetime.
        manager.subscribe().await?;
        let mut job_removed = manager.receive_job_removed().await?;
        let mut files_changed = manager.receive_unit_files_changed().await?;
        let mut properties: SelectAll<UnitChanges> = SelectAll::new();
        let mut proxies: HashMap<String, PropertiesProxy<'static>> = HashMap::new();
        let mut refused = Vec::new();
        for unit in &self.units {
            match watch_unit(&conn, &manager, unit).await {
                Ok((proxy, changes)) => {
                    properties.push(changes);
                    proxies.insert(unit.clone(), proxy);
                }
                // One name systemd refuses must not keep every other unit unwatched.
                Err(zbus::Error::MethodError(name, detail, _)) => {
                    tracing::warn!(unit = %unit, error = %name, detail = ?detail, "systemd refused to watch this unit; skipping it");
                    refused.push(unit.clone());
                }
                Err(e) => return Err(e),
            }
        }
        self.units.retain(|u| !refused.contains(u));
        let mut reloading = manager.receive_reloading().await?;
        tracing::info!(bus = %self.bus, units = self.units.len(), "watching systemd units");
        // Unit states are read when the session starts and again whenever systemd says
        // unit files changed or a daemon-reload finished. The read is deferred a little
        // and never blocks this loop for long: systemd can drop method calls that arrive
        // during a daemon-reload, and a read that times out is simply tried again.
        let mut reread_at = Some(tokio::time::Instant::now());
        let mut pending = PendingJobs::new();
        loop {
            tokio::select! {
                // Order matters (see the module comment): property changes first, then
                // job completions, then new work.
                biased;
                _ = self.shutdown.changed() => return Ok(SessionEnd::Shutdown),
                changed = properties.next(), if !properties.is_empty() => {
                    let Some((unit, signal)) = changed else {
                        return Ok(SessionEnd::Disconnected("property stream ended".into()));
                    };
                    if let Some(obs) = observation_from_signal(&unit, &signal) {
                        tracing::debug!(?obs, "unit changed");
                        if self.events.send(Event::Unit(obs)).await.is_err() {
                            return Ok(SessionEnd::Shutdown);
                        }
                    }
                }
                removed = job_removed.next() => {
                    let Some(signal) = removed else {
                        return Ok(SessionEnd::Disconnected("job stream ended".into()));
                    };
                    let args = signal.args()?;
                    let job = args.job().to_string();
                    if let Some((unit, reply)) = pending.remove(&job) {
                        let state = match read_state_timed(&proxies[&unit], &unit).await? {
                            Some(state) => {
                                let _ = self.events.send(Event::Unit(state.clone())).await;
                                state
                            }
                            None => {
                                reread_at = Some(soon(REREAD_RETRY));
                                unknown_state(&unit)
                            }
                        };
                        let _ = reply.send(Ok(OpResult { completion: Completion::Job(JobResult::parse(args.result())), state }));
                    }
                }
                changed = files_changed.next() => {
                    if changed.is_none() {
                        return Ok(SessionEnd::Disconnected("unit files stream ended".into()));
                    }
                    // UnitFileState is not announced by PropertiesChanged; systemd says
                    // only that some unit file changed, so re-read all watched units.
                    tracing::debug!("unit files changed");
                    reread_at = Some(earliest(reread_at, soon(REREAD_DELAY)));
                }
                reload = reloading.next() => {
                    let Some(signal) = reload else {
                        return Ok(SessionEnd::Disconnected("reload stream ended".into()));
                    };
                    if signal.args().is_ok_and(|a| !*a.active()) {
                        tracing::debug!("daemon-reload finished");
                        reread_at = Some(earliest(reread_at, soon(REREAD_DELAY)));
                    }
                }
                _ = sleep_until_opt(reread_at) => {
                    reread_at = None;
                    for unit in &self.units {
                        match read_state_timed(&proxies[unit], unit).await? {
                            Some(state) => {
                                if self.events.send(Event::Unit(state)).await.is_err() {
                                    return Ok(SessionEnd::Shutdown);
                                }
                            }
                            None => {
                                tracing::debug!(unit = %unit, "unit state read timed out; trying again");
                                reread_at = Some(soon(REREAD_RETRY));
                                break;
                            }
                        }
                    }
                }
                request = self.requests.recv() => {
                    let Some(request) = request else { return Ok(SessionEnd::Shutdown) };
                    if request.op == UnitOp::Watch && !self.units.contains(&request.unit) {
                        // Wanted from now on, in this session and every later one.
                        self.units.push(request.unit.clone());
                        match watch_unit(&conn, &manager, &request.unit).await {
                            Ok((proxy, changes)) => {
                                properties.push(changes);
                                proxies.insert(request.unit.clone(), proxy);
                                tracing::info!(unit = %request.unit, "watching one more unit");
                            }
                            // systemd refused the name: the bus is fine, the unit is not.
                            Err(zbus::Error::MethodError(name, detail, _)) => {
                                self.units.retain(|u| *u != request.unit);
                                let _ = request.reply.send(Err(UnitOpError::Refused {
                                    op: "watch",
                                    unit: request.unit.clone(),
                                    name: name.to_string(),
                                    detail: detail.unwrap_or_default(),
                                }));
                                continue;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    if let Some(retry) = self.perform(&conn, &manager, &mut proxies, &mut pending, request).await? {
                        reread_at = Some(earliest(reread_at, retry));
                    }
                }
            }
            pending.retain(|_, (_, reply)| !reply.is_closed());
        }
    }

    async fn perform(
        &mut self,
        conn: &Connection,
        manager: &ManagerProxy<'static>,
        proxies: &mut HashMap<String, PropertiesProxy<'static>>,
        pending: &mut PendingJobs,
        request: OpRequest,
    ) -> zbus::Result<Option<tokio::time::Instant>> {
        let OpRequest { unit, op, reply } = request;
        if !proxies.contains_key(&unit) {
            let proxy = unit_properties(conn, manager, &unit).await?;
            proxies.insert(unit.clone(), proxy);
        }
        let name = unit.clone();
        let outcome: Result<Option<String>, zbus::Error> = match &op {
            job_op if job_op.job_method().is_some() => {
                let mode = "replace".to_string();
                let job = match job_op {
                    UnitOp::Start => manager.start_unit(name, mode).await,
                    UnitOp::Stop => manager.stop_unit(name, mode).await,
                    UnitOp::Restart => manager.restart_unit(name, mode).await,
                    UnitOp::TryRestart => manager.try_restart_unit(name, mode).await,
                    _ => manager.reload_unit(name, mode).await,
                };
                job.map(|path| Some(path.to_string()))
            }
            UnitOp::ResetFailed => manager.reset_failed_unit(name).await.map(|_| None),
            UnitOp::Kill { whom, signal } => manager
                .kill_unit(name, whom.clone(), *signal)
                .await
                .map(|_| None),
            // Through the root-owned helper units (see deploy/systemd/salve-enable@.service):
            // a start that polkit checks against the unit's name, where EnableUnitFiles
            // would need rights polkit cannot limit to one unit.
            UnitOp::Enable | UnitOp::Disable => manager
                .start_unit(helper_unit(&op, &name), "replace".to_string())
                .await
                .map(|path| Some(path.to_string())),
            _ => Ok(None),
        };
        match outcome {
            // The reply waits for JobRemoved, which this task will see after every
            // property change the job caused.
            Ok(Some(job)) => {
                pending.insert(job, (unit, reply));
            }
            Ok(None) => match read_state_timed(&proxies[&unit], &unit).await? {
                Some(state) => {
                    if op != UnitOp::Query {
                        let _ = self.events.send(Event::Unit(state.clone())).await;
                    }
                    let _ = reply.send(Ok(OpResult {
                        completion: Completion::Immediate,
                        state,
                    }));
                }
                None => {
                    let state = unknown_state(&unit);
                    let _ = reply.send(Ok(OpResult {
                        completion: Completion::Immediate,
                        state,
                    }));
                    return Ok(Some(soon(REREAD_RETRY)));
                }
            },
            Err(zbus::Error::MethodError(name, detail, _)) => {
                // systemd refused (no such unit, access denied, …): the bus is fine.
                let _ = reply.send(Err(UnitOpError::Refused {
                    op: op.name(),
                    unit,
                    name: name.to_string(),
                    detail: detail.unwrap_or_default(),
                }));
            }
            Err(e) => {
                let _ = reply.send(Err(UnitOpError::Call(e.to_string())));
                return Err(e);
            }
        }
        Ok(None)
    }
}

/// One unit's property changes, tagged with its name.
type UnitChanges = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = (String, zbus::fdo::PropertiesChanged)> + Send>,
>;

/// A unit's properties proxy and its stream of changes.
async fn watch_unit(
    conn: &Connection,
    manager: &ManagerProxy<'static>,
    unit: &str,
) -> zbus::Result<(PropertiesProxy<'static>, UnitChanges)> {
    let proxy = unit_properties(conn, manager, unit).await?;
    let name = unit.to_string();
    let changes = proxy
        .receive_properties_changed()
        .await?
        .map(move |signal| (name.clone(), signal));
    Ok((proxy, Box::pin(changes)))
}

/// Let a burst of unit-file changes and the reload after them settle before reading.
const REREAD_DELAY: Duration = Duration::from_millis(50);
const REREAD_RETRY: Duration = Duration::from_millis(250);

fn soon(after: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + after
}

fn earliest(
    current: Option<tokio::time::Instant>,
    new: tokio::time::Instant,
) -> tokio::time::Instant {
    current.map_or(new, |t| t.min(new))
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::state::{parse_active, parse_file_state};
    use super::*;
    use crate::policy::{ActiveState, UnitFileState};

    #[test]
    fn bus_parses_system_or_an_address() {
        assert_eq!("system".parse::<Bus>(), Ok(Bus::System));
        assert_eq!(
            "unix:path=/proc/1/root/run/dbus/system_bus_socket".parse::<Bus>(),
            Ok(Bus::Address(
                "unix:path=/proc/1/root/run/dbus/system_bus_socket".into()
            ))
        );
        assert!("session"
            .parse::<Bus>()
            .unwrap_err()
            .contains("expected `system`"));
    }

    #[test]
    fn systemd_state_names_parse_into_engine_states() {
        assert_eq!(
            parse_active("deactivating"),
            Some(ActiveState::Deactivating)
        );
        assert_eq!(
            parse_file_state("enabled-runtime"),
            Some(UnitFileState::EnabledRuntime)
        );
        assert_eq!(parse_active("bogus"), None);
    }
}
