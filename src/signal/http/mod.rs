//! HTTP probes: the `http` signal (a GET every interval, reported as `Event::Http`) and
//! the `verify` step (probe until the service answers an expected status or time runs out).
//!
//! Every request opens its own TCP connection and asks the server to close it. A backend
//! that just crashed can leave a pooled connection half-open, and a probe that reuses it
//! would report the old socket's fate instead of the new process's health.

mod client;
mod probes;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

pub use client::RequestError;
pub(crate) use client::{human_duration, io_message, request, request_body, Payload};
pub use probes::Probes;

use crate::engine::{Event, HttpObservation};
use crate::policy::HttpUrl;
use hyper::Method;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// A `verify` probe gets at least this long to answer even when probing more often:
/// a service that was just restarted is often slow on its first requests (cold caches),
/// and that slowness is not the failure `verify` is looking for.
const VERIFY_PROBE_TIMEOUT_FLOOR: Duration = Duration::from_secs(2);

/// `tokio::time::interval` panics on a zero period; configuration should never produce
/// one, but a probe loop must not be the thing that takes the agent down.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

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
    tx: crate::signal::EventSender,
    shutdown: watch::Receiver<bool>,
) {
    crate::signal::poll_every(interval, tx, shutdown, || async {
        let result = probe(&url, timeout).await;
        Event::Http(HttpObservation {
            url: url.as_str().into(),
            status: result.status,
            error: result.error,
        })
    })
    .await;
    tracing::debug!(url = %url, "probe loop stopped");
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
