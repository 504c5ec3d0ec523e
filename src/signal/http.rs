//! HTTP probes: the `http` signal (a GET every interval, reported as `Event::Http`) and
//! the `verify` step (probe until the service answers an expected status or time runs out).
//!
//! Every request opens its own TCP connection and asks the server to close it. A backend
//! that just crashed can leave a pooled connection half-open, and a probe that reuses it
//! would report the old socket's fate instead of the new process's health.

use crate::engine::{Event, HttpObservation};
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
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout_at, Instant, MissedTickBehavior};

/// How much of a response body is read before the rest is dropped with the connection.
/// Reading a little lets a well-behaved server finish its write; reading all of it would
/// let a misbehaving health page (a 1 GB dump, an endless stream) hold the probe hostage.
const BODY_CAP: usize = 64 * 1024;

/// A `verify` probe gets at least this long to answer even when probing more often:
/// a service that was just restarted is often slow on its first requests (cold caches),
/// and that slowness is not the failure `verify` is looking for.
const VERIFY_PROBE_TIMEOUT_FLOOR: Duration = Duration::from_secs(2);

/// `tokio::time::interval` panics on a zero period; configuration should never produce
/// one, but a probe loop must not be the thing that takes the agent down.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Sent so server logs show who is knocking.
const USER_AGENT_VALUE: &str = concat!("salve/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The status received; `None` when no response head arrived.
    pub status: Option<u16>,
    /// Why no status arrived, in words an operator understands.
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl ProbeResult {
    /// One phrase for messages: "status 502" or "connection refused".
    pub fn describe(&self) -> String {
        match (self.status, &self.error) {
            (Some(status), _) => format!("status {status}"),
            (None, Some(error)) => error.clone(),
            (None, None) => "no response".to_string(),
        }
    }
}

/// One GET with an overall timeout (connect + response head). Reads at most 64 KiB of
/// body and drops the rest. Never panics; every failure is an `error` string a person
/// understands ("connection refused", "timed out after 2s", "connection reset").
pub async fn probe(url: &HttpUrl, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let outcome = request(Method::GET, url, None, timeout).await;
    let elapsed = started.elapsed();
    tracing::debug!(url = %url, ?outcome, elapsed_ms = elapsed.as_millis() as u64, "http probe");
    match outcome {
        Ok(status) => ProbeResult {
            status: Some(status),
            error: None,
            elapsed,
        },
        Err(error) => ProbeResult {
            status: None,
            error: Some(error.to_string()),
            elapsed,
        },
    }
}

/// Probes every `interval` until `shutdown` flips to true, sending
/// `Event::Http(HttpObservation { url, status, error })` for each result. The first probe
/// runs at once. If the channel is closed, return.
///
/// A dropped shutdown sender also ends the loop: the agent that owns it is gone, so
/// nobody is left to stop this task or read what it sends.
pub async fn run_probe_loop(
    url: HttpUrl,
    interval: Duration,
    timeout: Duration,
    tx: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval.max(MIN_INTERVAL));
    // After a slow probe, wait a full interval rather than firing a burst to catch up:
    // a struggling backend should not get extra load from its own health check.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // The whole step (wait, probe, send) is raced against shutdown so that neither a
        // hanging probe nor a full channel can delay stopping.
        let step = async {
            ticker.tick().await;
            let result = probe(&url, timeout).await;
            let event = Event::Http(HttpObservation {
                url: url.as_str().into(),
                status: result.status,
                error: result.error,
            });
            tx.send(event).await.is_ok()
        };
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|&stop| stop) => return,
            sent = step => {
                if !sent {
                    tracing::debug!(url = %url, "event channel closed; probe loop stops");
                    return;
                }
            }
        }
    }
}

/// For `verify`: probes every `every` until a status in `expected` is seen (`Ok(status)`)
/// or `within` has passed (`Err` describing the last result, e.g. "last: status 502" or
/// "last: connection refused"). The first probe runs at once; the deadline is honoured
/// even if a probe hangs, because each probe's own timeout ends at the deadline.
///
/// Gives up as soon as the next probe would start at or after the deadline: it could not
/// finish in time, so waiting for it only delays the verdict.
pub async fn wait_for_status(
    url: &HttpUrl,
    expected: &[u16],
    within: Duration,
    every: Duration,
) -> Result<u16, String> {
    let every = every.max(MIN_INTERVAL);
    let start = Instant::now();
    let deadline = start + within;
    let mut next = start;
    loop {
        sleep_until(next).await;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let result = probe(url, every.max(VERIFY_PROBE_TIMEOUT_FLOOR).min(remaining)).await;
        if let Some(status) = result.status.filter(|s| expected.contains(s)) {
            return Ok(status);
        }
        // A probe slower than `every` is followed at once, not after another full wait.
        next = (next + every).max(Instant::now());
        if next >= deadline {
            return Err(format!("last: {}", result.describe()));
        }
    }
}

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
    if timeout_at(deadline, read_capped(response.into_body()))
        .await
        .is_err()
    {
        tracing::debug!(url = %url, status, "response body not finished before the deadline");
    }
    Ok(status)
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
async fn read_capped(mut body: Incoming) {
    let mut read = 0;
    while read < BODY_CAP {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len()),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body ended with an error");
                return;
            }
            None => return,
        }
    }
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

/// A tiny HTTP/1 server for tests here and in `action::notify`: answers canned responses
/// and reports each request it received, so tests assert on what actually went over the
/// wire. Only ever listens on 127.0.0.1.
#[cfg(test)]
pub(crate) mod test_server {
    use crate::policy::HttpUrl;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpSocket, TcpStream};
    use tokio::sync::mpsc;

    pub(crate) fn response(status: u16, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Serves `responses` in order, one per connection, repeating the last one forever.
    /// Yields each request received (head and body) as text.
    pub(crate) async fn serve(
        responses: Vec<Vec<u8>>,
    ) -> (HttpUrl, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url_for(&listener, "/health");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for i in 0.. {
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = read_request(&mut stream).await;
                let _ = tx.send(request);
                let reply = &responses[i.min(responses.len() - 1)];
                let _ = stream.write_all(reply).await;
                let _ = stream.shutdown().await;
            }
        });
        (url, rx)
    }

    /// A URL whose port refuses connections. The socket is bound but not listening, and
    /// stays bound while the guard lives: a port that was merely freed could be handed
    /// to a listener in a test running in parallel.
    pub(crate) fn refused_url() -> (HttpUrl, TcpSocket) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        (url, socket)
    }

    pub(crate) fn url_for(listener: &TcpListener, path: &str) -> HttpUrl {
        let port = listener.local_addr().unwrap().port();
        HttpUrl::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap()
    }

    /// Reads the head and, when there is a Content-Length, the body.
    pub(crate) async fn read_request(stream: &mut TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&data).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    return text;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&data).to_string(),
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{read_request, refused_url, response, serve, url_for};
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const SHORT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn probe_reports_status_and_sends_host_and_connection_close() {
        let (url, mut requests) = serve(vec![response(503, "down")]).await;
        let result = probe(&url, Duration::from_secs(1)).await;
        assert_eq!((result.status, result.error), (Some(503), None));
        let request = requests.recv().await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /health http/1.1\r\n"), "{request}");
        assert!(
            request.contains(&format!("host: 127.0.0.1:{}\r\n", url.port)),
            "{request}"
        );
        assert!(request.contains("connection: close\r\n"), "{request}");
    }

    #[tokio::test]
    async fn refused_connection_is_an_error_not_a_panic() {
        let (url, _bound) = refused_url();
        let result = probe(&url, Duration::from_secs(1)).await;
        assert_eq!(result.status, None);
        assert_eq!(result.error.as_deref(), Some("connection refused"));
    }

    #[tokio::test]
    async fn server_that_accepts_but_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url_for(&listener, "/");
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap());
            }
        });
        let result = probe(&url, SHORT).await;
        assert_eq!(result.error.as_deref(), Some("timed out after 300ms"));
        assert!(result.elapsed >= SHORT, "{:?}", result.elapsed);
        assert!(
            result.elapsed < SHORT + Duration::from_millis(500),
            "{:?}",
            result.elapsed
        );
    }

    #[tokio::test]
    async fn server_that_resets_the_connection_is_reported_as_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url_for(&listener, "/");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_request(&mut stream).await;
            // SO_LINGER 0 makes close send RST, as a crashing backend's kernel does.
            stream.set_zero_linger().unwrap();
        });
        let result = probe(&url, Duration::from_secs(1)).await;
        assert_eq!(result.error.as_deref(), Some("connection reset"));
    }

    #[tokio::test]
    async fn body_larger_than_the_cap_does_not_hang() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url_for(&listener, "/");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_request(&mut stream).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b'x'; 64 * 1024];
            // Ends when the client hangs up.
            while stream.write_all(&chunk).await.is_ok() {}
        });
        let timeout = Duration::from_secs(1);
        let result = probe(&url, timeout).await;
        assert_eq!(result.status, Some(200));
        assert!(result.elapsed < timeout / 2, "{:?}", result.elapsed);
    }

    #[tokio::test]
    async fn wait_for_status_succeeds_when_the_server_turns_healthy() {
        let (url, mut requests) = serve(vec![
            response(502, ""),
            response(502, ""),
            response(200, "ok"),
        ])
        .await;
        let every = Duration::from_millis(50);
        let started = Instant::now();
        let status = wait_for_status(&url, &[200, 204], Duration::from_secs(1), every).await;
        assert_eq!(status, Ok(200));
        assert!(started.elapsed() >= every * 2, "{:?}", started.elapsed());
        for _ in 0..3 {
            requests.recv().await.unwrap();
        }
    }

    #[tokio::test]
    async fn wait_for_status_gives_up_at_the_deadline_with_the_last_result() {
        let (url, _requests) = serve(vec![response(502, "")]).await;
        let started = Instant::now();
        let within = Duration::from_millis(300);
        let err = wait_for_status(&url, &[200], within, Duration::from_millis(50)).await;
        assert_eq!(err, Err("last: status 502".to_string()));
        assert!(started.elapsed() < within + Duration::from_millis(300));

        let (url, _bound) = refused_url();
        let err = wait_for_status(&url, &[200], within, Duration::from_millis(50)).await;
        assert_eq!(err, Err("last: connection refused".to_string()));
    }

    #[tokio::test]
    async fn wait_for_status_honours_the_deadline_when_a_probe_hangs() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url_for(&listener, "/");
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap());
            }
        });
        let started = Instant::now();
        let err = wait_for_status(&url, &[200], SHORT, Duration::from_secs(1)).await;
        // The probe's timeout ends at the deadline, a few microseconds less than 300ms.
        let err = err.unwrap_err();
        assert!(
            err.starts_with("last: timed out after 29") || err == "last: timed out after 300ms",
            "{err}"
        );
        assert!(started.elapsed() < SHORT + Duration::from_millis(300));
    }

    #[tokio::test]
    async fn probe_loop_sends_each_result_and_stops_on_shutdown() {
        let (url, _requests) = serve(vec![response(200, "ok")]).await;
        let (tx, mut rx) = mpsc::channel(8);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(run_probe_loop(
            url.clone(),
            Duration::from_millis(20),
            Duration::from_secs(1),
            tx,
            shutdown,
        ));
        for _ in 0..2 {
            let event = rx.recv().await.unwrap();
            let expected = Event::Http(HttpObservation {
                url: url.as_str().into(),
                status: Some(200),
                error: None,
            });
            assert_eq!(event, expected);
        }
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("loop stops on shutdown")
            .unwrap();
    }

    #[tokio::test]
    async fn probe_loop_returns_when_the_channel_closes() {
        let (url, _bound) = refused_url();
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let (_stop, shutdown) = watch::channel(false);
        let looped = run_probe_loop(url, Duration::from_millis(10), SHORT, tx, shutdown);
        tokio::time::timeout(Duration::from_secs(1), looped)
            .await
            .expect("loop returns once nobody listens");
    }
}
