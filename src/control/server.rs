//! The agent's end of the control socket: accepts connections, reads one request from
//! each, and hands it with its sender's credentials to the agent's loop, which owns
//! the engine and the journal and answers.

use super::peer::Peer;
use super::{ControlConfig, Request, Response, MAX_REQUEST};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// A request for the agent's loop: what was asked (or why it could not be read), by
/// whom, whether they may, and where the answer goes.
pub struct Command {
    pub request: Result<Request, String>,
    pub peer: Peer,
    pub allowed: bool,
    pub reply: oneshot::Sender<Response>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} exists and is not a socket: salve will not remove it")]
    NotASocket(PathBuf),
    #[error("another agent answers on {0}")]
    InUse(PathBuf),
}

/// How long a peer has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the loop has to answer (a reload of many policies, say).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait to be accepted.
const AT_ONCE: usize = 16;
/// A peer refused is journalled once per this long: someone (something) knocking
/// without end must not fill the journal.
const REFUSALS_JOURNALLED_EVERY: Duration = Duration::from_secs(60);
/// Users whose refusals are remembered; beyond, the oldest are forgotten.
const REFUSALS_REMEMBERED: usize = 1024;

/// When each user's last refusal was journalled.
type Refusals = Arc<std::sync::Mutex<std::collections::HashMap<u32, tokio::time::Instant>>>;

/// Where commands arrive, and the socket file to remove when the agent stops (none
/// for a socket systemd made).
pub struct Listening {
    pub commands: mpsc::Receiver<Command>,
    pub path: Option<PathBuf>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Listens on the socket systemd passed (a `.socket` unit) or else on the config's
/// path, open to its owner and the admin group only.
pub fn listen(config: &ControlConfig) -> Result<Listening, ControlError> {
    let admin_gid = super::peer::group_id(&config.admin_group);
    if admin_gid.is_some_and(super::peer::in_group) {
        tracing::warn!(group = %config.admin_group, "the agent is itself in the control socket's admin group, and so are the programs its exec actions run: take it out (it needs no membership; salve.socket owns the socket)");
    }
    let (listener, path) = match from_systemd() {
        Some(listener) => (listener, None),
        None => (
            bind(&config.socket, admin_gid)?,
            Some(config.socket.clone()),
        ),
    };
    if admin_gid.is_none() {
        tracing::warn!(group = %config.admin_group, "the control socket's admin group does not exist: only root may use it");
    }
    let (tx, commands) = mpsc::channel(AT_ONCE);
    let task = tokio::spawn(serve(listener, admin_gid, tx));
    Ok(Listening {
        commands,
        path,
        task,
    })
}

fn from_systemd() -> Option<UnixListener> {
    use std::os::fd::FromRawFd;
    let fd = sd_notify::listen_fds().ok()?.next()?;
    // SAFETY: systemd passed this descriptor to this process (LISTEN_PID is ours, as
    // listen_fds checked) and nothing else owns it.
    let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    std_listener.set_nonblocking(true).ok()?;
    UnixListener::from_std(std_listener).ok()
}

fn bind(path: &Path, admin_gid: Option<u32>) -> Result<UnixListener, ControlError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let bind_error = |source| ControlError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ControlError::NotASocket(path.to_path_buf()));
        }
        // A socket nobody answers on is a dead agent's: it goes.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(bind_error)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_error)?;
    if let Some(gid) = admin_gid {
        // Only root (or a member of the group) may hand the socket to it; without it
        // the socket stays the owner's, and only root gets past the credentials check.
        if let Err(e) = std::os::unix::fs::chown(path, None, Some(gid)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot give the control socket to its admin group");
        }
    }
    Ok(listener)
}

async fn serve(listener: UnixListener, admin_gid: Option<u32>, tx: mpsc::Sender<Command>) {
    let at_once = Arc::new(Semaphore::new(AT_ONCE));
    let refusals: Refusals = Default::default();
    loop {
        let Ok(permit) = Arc::clone(&at_once).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let tx = tx.clone();
        let refusals = Arc::clone(&refusals);
        tokio::spawn(async move {
            if let Err(e) = answer(stream, admin_gid, &tx, &refusals).await {
                tracing::debug!(error = %e, "control connection ended early");
            }
            drop(permit);
        });
    }
}

/// Hands the command to the agent's loop and waits for its answer.
async fn forward(
    tx: &mpsc::Sender<Command>,
    command: Command,
    answered: oneshot::Receiver<Response>,
) -> Response {
    match tx.send(command).await {
        Err(_) => Response::refused("the agent is stopping"),
        Ok(()) => match tokio::time::timeout(ANSWER_TIMEOUT, answered).await {
            Ok(Ok(response)) => response,
            _ => Response::refused("the agent did not answer"),
        },
    }
}

/// Whether a refusal of `uid` is journalled now (at most once a minute per user).
fn journal_refusal(refusals: &Refusals, uid: u32) -> bool {
    let now = tokio::time::Instant::now();
    let mut seen = refusals.lock().unwrap_or_else(|e| e.into_inner());
    if seen
        .get(&uid)
        .is_some_and(|&last| now.duration_since(last) < REFUSALS_JOURNALLED_EVERY)
    {
        return false;
    }
    if seen.len() >= REFUSALS_REMEMBERED {
        seen.retain(|_, last| now.duration_since(*last) < REFUSALS_JOURNALLED_EVERY);
    }
    if seen.len() < REFUSALS_REMEMBERED {
        seen.insert(uid, now);
    }
    true
}

async fn answer(
    stream: UnixStream,
    admin_gid: Option<u32>,
    tx: &mpsc::Sender<Command>,
    refusals: &Refusals,
) -> std::io::Result<()> {
    let peer = Peer::of(&stream)?.named().await;
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64 + 1);
    let read = tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let request = match read {
        Err(_) => Err("no request within 5s".to_string()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if line.len() > MAX_REQUEST => {
            Err(format!("a request is at most {MAX_REQUEST} bytes"))
        }
        Ok(Ok(_)) => serde_json::from_slice::<Request>(&line)
            .map_err(|e| format!("not a request salve knows: {e}")),
    };
    let (reply, answered) = oneshot::channel();
    let allowed = peer.allowed(admin_gid, super::peer::own_uid());
    let command = Command {
        request,
        allowed,
        peer,
        reply,
    };
    let response = if !allowed && !journal_refusal(refusals, command.peer.uid) {
        Response::refused(format!(
            "{} (refused again within a minute: not journalled again)",
            super::PERMISSION_DENIED
        ))
    } else {
        forward(tx, command, answered).await
    };
    let mut text = serde_json::to_vec(&response).unwrap_or_default();
    text.push(b'\n');
    // A peer that never reads its answer does not keep its connection for ever.
    let sent = async {
        write.write_all(&text).await?;
        write.shutdown().await
    };
    match tokio::time::timeout(READ_TIMEOUT, sent).await {
        Ok(sent) => sent,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the peer did not read its answer",
        )),
    }
}
