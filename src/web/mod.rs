//! The agent's HTTP listener, on 127.0.0.1 unless configured otherwise: `/metrics`
//! (Prometheus text format), `/healthz` (the decision loop answers) and `/readyz`
//! (and the journal takes records), and when switched on the status page at `/`.
//! Read-only: nothing here changes the agent; a person changes it through the control
//! socket, whose peers the kernel names.
//!
//! Every answer that needs the engine is asked of the loop, which owns it, and waited
//! for at most [`LOOP_TIMEOUT`]: a loop that does not answer is what `/healthz` exists
//! to report.

pub mod status_page;

use crate::control::StatusReport;
use crate::engine::{PolicyStatus, Timestamp};
use crate::metrics::Metrics;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// salve's default metrics port (beside the Prometheus exporters' 9100–9999).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9847";

/// How long a request waits for the loop's answer.
pub const LOOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed as soon as accepted.
const AT_ONCE: usize = 32;
/// A client has this long to send a request's headers (an idle keep-alive included).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Asks of the loop queued at most; more are answered 503 at once.
const ASKS_QUEUED: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// `None`: no listener at all (`metrics: { enabled: false }`).
    pub listen: Option<SocketAddr>,
    /// The HTML status page at `/` (`metrics: { statusPage: true }`); off by default.
    pub status_page: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            // The constant is a valid address; `parse` cannot fail on it.
            listen: DEFAULT_LISTEN.parse().ok(),
            status_page: false,
        }
    }
}

/// What the listener asks of the loop.
pub enum Ask {
    /// Every policy's state at the loop's now, for the gauges.
    Status(oneshot::Sender<(Vec<PolicyStatus>, Timestamp)>),
    /// What `salve status` says, for the status page.
    Report(oneshot::Sender<StatusReport>),
    /// Only that the loop answers: `/healthz` and `/readyz`, which a kubelet asks
    /// every few seconds, cost it nothing else.
    Ping(oneshot::Sender<()>),
}

/// The listener's end: where it asks the loop, and the loop's end of that queue.
pub struct Listening {
    pub asks: mpsc::Receiver<Ask>,
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source}")]
pub struct WebError {
    address: SocketAddr,
    source: std::io::Error,
}

struct Shared {
    metrics: Arc<Metrics>,
    asks: mpsc::Sender<Ask>,
    status_page: bool,
    /// The journal file whose last records the status page shows (none: the operator
    /// journalling to stdout only).
    journal: Option<std::path::PathBuf>,
    /// On loopback: requests must name the host by address or as `localhost`, so a
    /// web page whose name was rebound to 127.0.0.1 cannot read the agent.
    loopback: bool,
}

/// Binds the configured address (`Ok(None)` when the listener is off) and serves it
/// on the current runtime until the returned [`Listening`] is dropped. The status page
/// reads the last records of `journal`.
pub async fn listen(
    config: &WebConfig,
    metrics: Arc<Metrics>,
    journal: Option<&std::path::Path>,
) -> Result<Option<Listening>, WebError> {
    let Some(address) = config.listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| WebError { address, source })?;
    let address = listener.local_addr().unwrap_or(address);
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "the metrics listener is not on loopback: anyone who can reach it reads the agent's policies, targets and metrics");
    }
    let (tx, asks) = mpsc::channel(ASKS_QUEUED);
    let shared = Arc::new(Shared {
        metrics,
        asks: tx,
        status_page: config.status_page,
        journal: journal.map(std::path::Path::to_path_buf),
        loopback: address.ip().is_loopback(),
    });
    let task = tokio::spawn(accept(listener, shared));
    tracing::info!(%address, status_page = config.status_page, "serving /metrics, /healthz and /readyz");
    Ok(Some(Listening {
        asks,
        address,
        task,
    }))
}

/// The next ask of the listener, for a loop's `select!`; never, without a listener.
pub async fn next_ask(web: &mut Option<Listening>) -> Option<Ask> {
    match web {
        Some(listening) => listening.asks.recv().await,
        None => std::future::pending().await,
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    serve(listener, "metrics listener", move |request| {
        let shared = Arc::clone(&shared);
        async move { route(&shared, request).await }
    })
    .await
}

/// Serves HTTP/1.1 on `listener` until the task is dropped: at most [`AT_ONCE`]
/// connections (more are closed as soon as accepted), each with [`HEADER_TIMEOUT`] to
/// send a request's headers. `name` is the listener's in the logs.
pub(crate) async fn serve<R, F>(listener: TcpListener, name: &'static str, route: R)
where
    R: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Answer> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, listener = name, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, listener = name, "too many connections, closing one");
            continue;
        };
        let route = route.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answering = route(request);
                async move { Ok::<_, std::convert::Infallible>(answering.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, listener = name, error = %e, "connection ended");
            }
            drop(slot);
        });
    }
}

pub(crate) type Answer = Response<Full<Bytes>>;

pub(crate) fn answer(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    answer(status, "text/plain; charset=utf-8", body.into())
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Answer {
    if shared.loopback && !names_this_host(&request) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "this listener is on loopback: name it as 127.0.0.1, [::1] or localhost\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut refused = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        refused.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return refused;
    }
    match request.uri().path() {
        "/metrics" => match status_of_loop(shared).await {
            Ok((status, now)) => answer(
                StatusCode::OK,
                crate::metrics::CONTENT_TYPE,
                shared.metrics.encode(&status, now),
            ),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        "/healthz" => match ping_loop(shared).await {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        "/readyz" => match ping_loop(shared).await {
            Ok(_) if shared.metrics.journal_failing() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the last journal write failed, so no action can run\n",
            ),
            Ok(_) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        "/" | "/status" => match shared.status_page {
            true => status_page(shared).await,
            false => text(
                StatusCode::NOT_FOUND,
                "the status page is off: metrics: { statusPage: true } in the agent's config\n",
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz, / (the status page)\n",
        ),
    }
}

/// Whether the request's `Host` is an address or `localhost` (with any port): what a
/// local client sends, and what no rebound DNS name is.
fn names_this_host(request: &Request<Incoming>) -> bool {
    let Some(host) = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        // HTTP/1.0 without a Host: no browser sends that.
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

async fn status_page(shared: &Shared) -> Answer {
    let (tx, rx) = oneshot::channel();
    if shared.asks.try_send(Ask::Report(tx)).is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the decision loop is busy or stopping: too many requests waiting\n",
        );
    }
    let report = match tokio::time::timeout(LOOP_TIMEOUT, rx).await {
        Ok(Ok(report)) => report,
        _ => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the decision loop has not answered in {}s\n",
                    LOOP_TIMEOUT.as_secs()
                ),
            )
        }
    };
    let path = shared.journal.clone();
    let records = tokio::task::spawn_blocking(move || match path {
        Some(path) => crate::audit::read_last(&path, status_page::RECORDS_SHOWN),
        None => Ok(Vec::new()),
    })
    .await;
    let records = match records {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "status page: the journal's last records cannot be read");
            Vec::new()
        }
        Err(_) => Vec::new(),
    };
    let generated =
        crate::audit::format_ts(std::time::SystemTime::now(), false).unwrap_or_default();
    let mut page = answer(
        StatusCode::OK,
        "text/html; charset=utf-8",
        status_page::render(&report, &records, &generated),
    );
    let headers = page.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            status_page::CONTENT_SECURITY_POLICY,
        ),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, hyper::header::HeaderValue::from_static(value));
    }
    page
}

async fn status_of_loop(shared: &Shared) -> Result<(Vec<PolicyStatus>, Timestamp), String> {
    ask_loop(shared, Ask::Status).await
}

async fn ping_loop(shared: &Shared) -> Result<(), String> {
    ask_loop(shared, Ask::Ping).await
}

/// Asks the loop, waiting at most [`LOOP_TIMEOUT`]; the error is the answer's body.
async fn ask_loop<T>(
    shared: &Shared,
    ask: impl FnOnce(oneshot::Sender<T>) -> Ask,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    if shared.asks.try_send(ask(tx)).is_err() {
        return Err("the decision loop is busy or stopping: too many requests waiting\n".into());
    }
    match tokio::time::timeout(LOOP_TIMEOUT, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err("the decision loop is stopping\n".into()),
        Err(_) => Err(format!(
            "the decision loop has not answered in {}s\n",
            LOOP_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests;
