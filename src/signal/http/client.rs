//! One HTTP request on a fresh connection, with a deadline over all of it, and the
//! words for what went wrong: the client under the probes, `verify` and `notify`.

use crate::policy::HttpUrl;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::error::Error as _;
use std::io;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

/// How much of a response body is read before the rest is dropped with the connection.
/// Reading a little lets a well-behaved server finish its write; reading all of it would
/// let a misbehaving health page (a 1 GB dump, an endless stream) hold the probe hostage.
const BODY_CAP: usize = 64 * 1024;

/// Sent so server logs show who is knocking.
const USER_AGENT_VALUE: &str = concat!("salve/", env!("CARGO_PKG_VERSION"));

/// Why a request got no response status. A timeout is its own variant: a webhook that
/// timed out makes the attempt `timed_out`, any other failure `failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("timed out after {}", human_duration(*after))]
    TimedOut { after: Duration },
    /// Resolving, connecting or the exchange failed, in words a person understands
    /// ("connection refused", "connection reset").
    #[error("{0}")]
    Failed(String),
}

/// A request body with its media type.
pub(crate) struct Payload {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Sends one request on a fresh connection and returns the response status.
///
/// `timeout` covers resolving, connecting and receiving the response head. Up to
/// `BODY_CAP` bytes of body are then read within whatever time is left; a body that is
/// slow, truncated or too large does not change the result, since the status already
/// answered the question.
pub(crate) async fn request(
    method: Method,
    url: &HttpUrl,
    payload: Option<Payload>,
    timeout: Duration,
) -> Result<u16, RequestError> {
    exchange(method, url, payload, timeout, false)
        .await
        .map(|(status, _)| status)
}

/// As `request`, and the response body too (at most `BODY_CAP` bytes), which must
/// arrive whole within the deadline: for a JSON API, whose answer is the body.
pub(crate) async fn request_body(
    method: Method,
    url: &HttpUrl,
    payload: Option<Payload>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), RequestError> {
    exchange(method, url, payload, timeout, true).await
}

async fn exchange(
    method: Method,
    url: &HttpUrl,
    payload: Option<Payload>,
    timeout: Duration,
    whole_body: bool,
) -> Result<(u16, Vec<u8>), RequestError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || RequestError::TimedOut { after: timeout };
    let request = build_request(method, url, payload).map_err(RequestError::Failed)?;

    let stream = timeout_at(deadline, connect(url))
        .await
        .map_err(|_| timed_out())?
        .map_err(RequestError::Failed)?;
    let (mut sender, connection) = timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|e| RequestError::Failed(describe_hyper_error(&e)))?;
    // The connection future does the actual socket I/O and must be polled while we wait
    // for the response. Aborting it when this function returns closes the socket even if
    // the server never finishes, so no task or descriptor outlives the request.
    let _connection = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::trace!(error = %e, "http connection ended with an error");
        }
    }));

    let response = timeout_at(deadline, sender.send_request(request))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| RequestError::Failed(describe_hyper_error(&e)))?;
    let status = response.status().as_u16();
    match timeout_at(deadline, read_capped(response.into_body(), whole_body)).await {
        Ok(Ok(body)) => Ok((status, body)),
        Ok(Err(e)) if whole_body => Err(RequestError::Failed(e)),
        Err(_) if whole_body => Err(timed_out()),
        Ok(Err(_)) => Ok((status, Vec::new())),
        Err(_) => {
            tracing::debug!(url = %url, status, "response body not finished before the deadline");
            Ok((status, Vec::new()))
        }
    }
}

fn build_request(
    method: Method,
    url: &HttpUrl,
    payload: Option<Payload>,
) -> Result<Request<Full<Bytes>>, String> {
    // HTTP/1.1 requires Host (RFC 9112 §3.2); the port is omitted only when it is the
    // default, as browsers do, because some virtual-host setups match on the exact value.
    let host = if url.port == 80 {
        url.host.clone()
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let builder = Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header(HOST, host)
        .header(CONNECTION, "close")
        .header(USER_AGENT, USER_AGENT_VALUE);
    let (builder, body) = match payload {
        Some(payload) => (
            builder.header(CONTENT_TYPE, payload.content_type),
            Full::new(Bytes::from(payload.bytes)),
        ),
        None => (builder, Full::new(Bytes::new())),
    };
    builder
        .body(body)
        .map_err(|e| format!("cannot build a request for {url}: {e}"))
}

/// Resolves the host and connects to its addresses in turn, so that "localhost" works
/// whether the service listens on 127.0.0.1 or ::1.
async fn connect(url: &HttpUrl) -> Result<TcpStream, String> {
    // `HttpUrl` keeps IPv6 literals bracketed, as written in the URL; the resolver
    // wants the bare address.
    let host = url.host.trim_start_matches('[').trim_end_matches(']');
    let addrs = tokio::net::lookup_host((host, url.port))
        .await
        .map_err(|e| format!("cannot resolve host \"{host}\": {}", io_message(&e)))?;
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Requests are tiny and sent in one go; don't let Nagle hold them back.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => describe_io_error(&e),
        None => format!("cannot resolve host \"{host}\": no addresses"),
    })
}

/// Reads at most `BODY_CAP` bytes of body; the rest is discarded with the connection.
/// Reads up to `BODY_CAP` bytes of the body (what is past it is dropped with the
/// connection), and keeps them when asked; or says why it broke off.
async fn read_capped(mut body: Incoming, keep: bool) -> Result<Vec<u8>, String> {
    let mut kept = Vec::new();
    let mut read = 0;
    while read < BODY_CAP {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let take = data.len().min(BODY_CAP - read);
                    if keep {
                        kept.extend_from_slice(&data[..take]);
                    }
                    read += take;
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body ended with an error");
                return Err(format!("the response body broke off: {e}"));
            }
            None => break,
        }
    }
    Ok(kept)
}

fn describe_io_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "connection reset".to_string(),
        io::ErrorKind::TimedOut => "connection timed out".to_string(),
        _ => io_message(e),
    }
}

/// hyper wraps socket failures; the underlying `io::Error` says more than hyper's own
/// text ("connection error"), so look for it first.
fn describe_hyper_error(e: &hyper::Error) -> String {
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return describe_io_error(io_error);
        }
        source = cause.source();
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        "connection closed before a response".to_string()
    } else if e.is_parse() {
        format!("invalid HTTP response: {e}")
    } else {
        e.to_string()
    }
}

/// A duration for messages, to the millisecond: a timeout cut short by a deadline would
/// otherwise read "298ms 865us 459ns".
pub(crate) fn human_duration(d: Duration) -> String {
    let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}

/// `io::Error`'s text without the " (os error N)" suffix, which means nothing to an
/// operator reading the journal.
pub(crate) fn io_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
