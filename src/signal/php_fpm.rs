//! PHP-FPM's status page as a signal: `pm.status_path?json`, asked over FastCGI at the
//! pool's `pm.status_listen` (a listener of its own, served while every worker of the
//! pool is busy, which is exactly when the page matters). One loop per page, like the
//! HTTP probes; each answer, or the lack of one, is an `Event::PhpFpm`.

use crate::engine::{Event, PhpFpmObservation, PhpFpmStatus};
use crate::policy::FpmStatusAddress;
use fastcgi_client::conn::ShortConn;
use fastcgi_client::{response::Content, Client, Params, Request, StreamExt};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::watch;

/// A status page is a few hundred bytes; more than this is not one.
const ANSWER_MAX: usize = 64 * 1024;

/// One reading of a status page: what it says, or why nothing was read.
pub async fn read_status(
    address: &FpmStatusAddress,
    path: &str,
    timeout: Duration,
) -> Result<PhpFpmStatus, String> {
    match tokio::time::timeout(timeout, ask(address, path)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "timed out after {}",
            humantime::format_duration(timeout)
        )),
    }
}

async fn ask(address: &FpmStatusAddress, path: &str) -> Result<PhpFpmStatus, String> {
    let answer = match address {
        FpmStatusAddress::Unix(socket) => {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| connect_error(&e))?;
            request(Client::new_tokio(stream), path).await?
        }
        FpmStatusAddress::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| connect_error(&e))?;
            request(Client::new_tokio(stream), path).await?
        }
    };
    parse_answer(&answer)
}

fn connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::NotFound => "no such socket".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// The page's whole answer (FastCGI's stdout: headers, a blank line, the JSON), at
/// most [`ANSWER_MAX`] bytes.
async fn request<S>(client: Client<S, ShortConn>, path: &str) -> Result<Vec<u8>, String>
where
    S: fastcgi_client::io::AsyncRead + fastcgi_client::io::AsyncWrite + Unpin,
{
    // What PHP-FPM's status page reads of a request: its script name and query.
    let params = Params::default()
        .request_method("GET")
        .script_name(path)
        .script_filename(path)
        .request_uri(format!("{path}?json"))
        .query_string("json")
        .server_protocol("HTTP/1.1")
        .remote_addr("127.0.0.1")
        .content_length(0);
    let mut stream = client
        .execute_once_stream(Request::new(params, fastcgi_client::io::empty()))
        .await
        .map_err(|e| format!("FastCGI request failed: {e}"))?;
    let mut stdout = Vec::new();
    while let Some(content) = stream.next().await {
        match content.map_err(|e| format!("FastCGI answer broken: {e}"))? {
            Content::Stdout(out) => {
                if stdout.len() + out.len() > ANSWER_MAX {
                    return Err(format!("the answer is larger than {ANSWER_MAX} bytes"));
                }
                stdout.extend_from_slice(&out);
            }
            Content::Stderr(_) => {}
        }
    }
    Ok(stdout)
}

/// The status page's JSON, the fields salve reads (PHP names them with spaces).
#[derive(Deserialize)]
struct StatusPage {
    pool: String,
    #[serde(rename = "listen queue")]
    listen_queue: u32,
    #[serde(rename = "idle processes")]
    idle: u32,
    #[serde(rename = "active processes")]
    active: u32,
    #[serde(rename = "total processes")]
    total: u32,
    #[serde(rename = "max children reached")]
    max_children_reached: u64,
}

/// Headers, a blank line, then the JSON; a `Status:` header other than 200 is the
/// page refusing (a path that is not `pm.status_path` answers 404).
pub fn parse_answer(answer: &[u8]) -> Result<PhpFpmStatus, String> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or(("", &text));
    if let Some(status) = head
        .lines()
        .find_map(|l| l.strip_prefix("Status:").map(str::trim))
    {
        if !status.starts_with("200") {
            return Err(format!(
                "the status page answered {status}: is the path pm.status_path?"
            ));
        }
    }
    let page: StatusPage = serde_json::from_str(body.trim())
        .map_err(|e| format!("not PHP-FPM's JSON status ({e}): is the path pm.status_path?"))?;
    Ok(PhpFpmStatus {
        pool: page.pool,
        listen_queue: page.listen_queue,
        idle: page.idle,
        active: page.active,
        total: page.total,
        max_children_reached: page.max_children_reached,
    })
}

/// Reads the page every `interval` until `shutdown` flips (or its sender is gone),
/// sending each reading as an event named `source`. The first read is at once.
pub async fn run_status_loop(
    source: String,
    address: FpmStatusAddress,
    path: String,
    interval: Duration,
    timeout: Duration,
    tx: crate::signal::EventSender,
    shutdown: watch::Receiver<bool>,
) {
    crate::signal::poll_every(interval, tx, shutdown, || async {
        let (status, error) = match read_status(&address, &path, timeout).await {
            Ok(status) => (Some(status), None),
            Err(why) => (None, Some(why)),
        };
        Event::PhpFpm(PhpFpmObservation {
            source: source.clone(),
            status,
            error,
        })
    })
    .await;
}

#[cfg(test)]
mod tests;
