//! HAProxy's runtime API on its admin socket (`stats socket PATH level admin`): every
//! HAProxy command salve sends is here, and nowhere else.
//!
//! One connection per command, as HAProxy's non-interactive mode wants it: the command
//! line, then HAProxy's whole answer until it closes. A command that changes something
//! answers nothing when it worked, and a sentence when it did not; that sentence is
//! returned as HAProxy wrote it, for the journal.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The most salve reads of one answer: `show servers state` of a large backend is a
/// few hundred bytes a server; a socket that keeps talking is not HAProxy.
const MAX_ANSWER: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error("cannot reach HAProxy's admin socket {socket}: {source}")]
    Unreachable {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("HAProxy's admin socket {socket} did not answer within {timeout:?}")]
    TimedOut { socket: PathBuf, timeout: Duration },
    /// HAProxy's own words, verbatim.
    #[error("HAProxy refused `{command}`: {answer}")]
    Refused { command: String, answer: String },
    #[error("HAProxy's answer to `{command}` is not what salve reads: {why}")]
    Unreadable { command: String, why: String },
    #[error("HAProxy has no server {backend}/{server}")]
    NoSuchServer { backend: String, server: String },
    #[error("HAProxy's socket {socket} is at level {level}; changing a server needs level admin (`stats socket {socket} level admin`)")]
    NotAdmin { socket: PathBuf, level: String },
    #[error("`{0}` is not a HAProxy name (letters, digits, `-`, `_`, `.`, `:`)")]
    BadName(String),
}

/// A server's administrative state, as `set server BACKEND/SERVER state` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Takes traffic.
    Ready,
    /// Takes no new traffic; what it serves finishes, health checks go on.
    Drain,
    /// Out of the backend altogether.
    Maint,
}

impl AdminState {
    fn word(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// A weight as `set weight` takes it: absolute, or a percentage of the weight the
/// configuration gave the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    Absolute(u32),
    Percent(u32),
}

impl std::fmt::Display for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weight::Absolute(w) => write!(f, "{w}"),
            Weight::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// One server's line of `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub backend: String,
    pub server: String,
    pub address: String,
    /// `srv_op_state`: 0 stopped, 1 starting, 2 running, 3 stopping.
    pub operational: u32,
    /// `srv_admin_state`, HAProxy's flags: maintenance (0x01 forced, 0x02 inherited,
    /// 0x04 from the config, 0x20 resolution, 0x40 from a health check's address),
    /// drain (0x08 forced, 0x10 inherited).
    pub admin: u32,
    /// `srv_uweight`: the weight now.
    pub weight: u32,
    /// `srv_iweight`: the weight the configuration gave it.
    pub initial_weight: u32,
}

const MAINT_FLAGS: u32 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const DRAIN_FLAGS: u32 = 0x08 | 0x10;

impl ServerState {
    /// How a person reads the state: `ready`, `drain`, `maint`, and `down` when its
    /// health checks say so.
    pub fn describe(&self) -> String {
        let admin = if self.admin & MAINT_FLAGS != 0 {
            "maint"
        } else if self.admin & DRAIN_FLAGS != 0 {
            "drain"
        } else {
            "ready"
        };
        let health = match self.operational {
            0 => ", down",
            1 => ", starting",
            3 => ", stopping",
            _ => "",
        };
        format!("{admin}{health}, weight {}", self.weight)
    }

    /// Whether it takes new traffic: running, ready, with a weight.
    pub fn serving(&self) -> bool {
        self.operational == 2 && self.admin & (MAINT_FLAGS | DRAIN_FLAGS) == 0 && self.weight > 0
    }
}

/// Checks that `name` can go into a command line as it is (the policy's own rule):
/// a name with a space, a `;` or a newline would be a second command.
pub fn check_name(name: &str) -> Result<(), HaproxyError> {
    crate::policy::load_balancer::haproxy_name(name, "")
        .map_err(|_| HaproxyError::BadName(name.to_string()))
}

#[derive(Debug, Clone)]
pub struct RuntimeApi {
    socket: PathBuf,
    timeout: Duration,
}

impl RuntimeApi {
    pub fn new(socket: &Path, timeout: Duration) -> Self {
        RuntimeApi {
            socket: socket.to_path_buf(),
            timeout,
        }
    }

    /// Sends one command line and returns HAProxy's whole answer.
    async fn command(&self, line: &str) -> Result<String, HaproxyError> {
        let exchange = async {
            let mut stream = UnixStream::connect(&self.socket).await.map_err(|source| {
                HaproxyError::Unreachable {
                    socket: self.socket.clone(),
                    source,
                }
            })?;
            let io = |source| HaproxyError::Unreachable {
                socket: self.socket.clone(),
                source,
            };
            stream
                .write_all(format!("{line}\n").as_bytes())
                .await
                .map_err(io)?;
            let mut answer = Vec::new();
            (&mut stream)
                .take(MAX_ANSWER)
                .read_to_end(&mut answer)
                .await
                .map_err(io)?;
            Ok(String::from_utf8_lossy(&answer).into_owned())
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(HaproxyError::TimedOut {
                socket: self.socket.clone(),
                timeout: self.timeout,
            }),
        }
    }

    /// A command that answers nothing when it worked.
    async fn change(&self, line: String) -> Result<(), HaproxyError> {
        let answer = self.command(&line).await?;
        let answer = answer.trim();
        if answer.is_empty() {
            Ok(())
        } else {
            Err(HaproxyError::Refused {
                command: line,
                answer: answer.to_string(),
            })
        }
    }

    /// The socket's level: `admin`, `operator` or `user`.
    pub async fn level(&self) -> Result<String, HaproxyError> {
        Ok(self.command("show cli level").await?.trim().to_string())
    }

    /// Fails unless the socket may change servers.
    pub async fn require_admin(&self) -> Result<(), HaproxyError> {
        let level = self.level().await?;
        if level == "admin" {
            Ok(())
        } else {
            Err(HaproxyError::NotAdmin {
                socket: self.socket.clone(),
                level,
            })
        }
    }

    /// `show servers state BACKEND`, every server of it.
    pub async fn servers(&self, backend: &str) -> Result<Vec<ServerState>, HaproxyError> {
        check_name(backend)?;
        let command = format!("show servers state {backend}");
        let answer = self.command(&command).await?;
        parse_servers_state(&answer).map_err(|why| {
            // HAProxy answers an unknown backend with a sentence, not a table.
            if answer.lines().next().is_some_and(|l| l.trim() != "1") {
                HaproxyError::Refused {
                    command: command.clone(),
                    answer: answer.trim().to_string(),
                }
            } else {
                HaproxyError::Unreadable {
                    command: command.clone(),
                    why,
                }
            }
        })
    }

    pub async fn server(&self, backend: &str, server: &str) -> Result<ServerState, HaproxyError> {
        check_name(server)?;
        self.servers(backend)
            .await?
            .into_iter()
            .find(|s| s.server == server)
            .ok_or_else(|| HaproxyError::NoSuchServer {
                backend: backend.to_string(),
                server: server.to_string(),
            })
    }

    pub async fn set_state(
        &self,
        backend: &str,
        server: &str,
        state: AdminState,
    ) -> Result<(), HaproxyError> {
        check_name(backend)?;
        check_name(server)?;
        self.change(format!(
            "set server {backend}/{server} state {}",
            state.word()
        ))
        .await
    }

    pub async fn set_weight(
        &self,
        backend: &str,
        server: &str,
        weight: Weight,
    ) -> Result<(), HaproxyError> {
        check_name(backend)?;
        check_name(server)?;
        self.change(format!("set weight {backend}/{server} {weight}"))
            .await
    }
}

/// `show servers state`: a version line (`1`), a `#` line naming the columns, then a
/// line per server. Columns are found by name, so columns a later HAProxy adds are
/// read past.
pub fn parse_servers_state(answer: &str) -> Result<Vec<ServerState>, String> {
    let mut lines = answer.lines().filter(|l| !l.trim().is_empty());
    match lines.next().map(str::trim) {
        Some("1") => {}
        Some(other) => return Err(format!("format version `{other}`, salve reads version 1")),
        None => return Err("an empty answer".to_string()),
    }
    let header: Vec<&str> = lines
        .next()
        .and_then(|l| l.strip_prefix('#'))
        .ok_or("no column names")?
        .split_whitespace()
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|c| *c == name)
            .ok_or(format!("no column {name}"))
    };
    let (be, srv, addr) = (column("be_name")?, column("srv_name")?, column("srv_addr")?);
    let (op, admin) = (column("srv_op_state")?, column("srv_admin_state")?);
    let (uweight, iweight) = (column("srv_uweight")?, column("srv_iweight")?);
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let text = |i: usize| {
                fields
                    .get(i)
                    .map(|f| f.to_string())
                    .ok_or(format!("a short line: {line}"))
            };
            let number = |i: usize| -> Result<u32, String> {
                text(i)?
                    .parse()
                    .map_err(|_| format!("not a number in column {}: {line}", header[i]))
            };
            Ok(ServerState {
                backend: text(be)?,
                server: text(srv)?,
                address: text(addr)?,
                operational: number(op)?,
                admin: number(admin)?,
                weight: number(uweight)?,
                initial_weight: number(iweight)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_would_be_a_second_command_is_refused() {
        for bad in ["", "web b", "web;shutdown", "web\nshow", "w/b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["web", "node-b", "be_1.x:80"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_table_with_columns_salve_does_not_know_is_read_by_name() {
        let answer = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight extra\n3 web 1 a 10.0.0.1 2 0 10 10 x\n3 web 2 b 10.0.0.2 0 8 0 10 y\n";
        let servers = parse_servers_state(answer).unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].server, "b");
        assert_eq!(servers[1].describe(), "drain, down, weight 0");
        assert!(servers[0].serving() && !servers[1].serving());
        assert!(parse_servers_state("2\n# x\n").is_err());
        assert!(parse_servers_state("1\n# be_name srv_name\n").is_err());
    }
}
