//! Alertmanager's webhook as a signal: `POST /alertmanager` with the team's bearer
//! token, one engine event per alert of the notification. The policies' `alert`
//! conditions decide what an alert means; this end only checks who is speaking and
//! that the body is a notification, and answers only once every alert is queued, so
//! Alertmanager retries (on a 5xx) what the loop has not taken.

use crate::engine::{AlertObservation, AlertStatus, Event};
use crate::signal::EventSender;
use crate::web::{text, Answer};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where Alertmanager's `webhook_configs` point: `http://HOST:PORT/alertmanager`.
pub const PATH: &str = "/alertmanager";
/// A notification larger than this is refused (413): a thousand alerts with their
/// labels and annotations fit many times over.
pub const BODY_MAX: usize = 1 << 20;
/// How many alerts of one notification are taken; Alertmanager's `max_alerts` can
/// keep a group under it.
pub const ALERTS_MAX: usize = 1000;
/// A group key or fingerprint longer than this is no Alertmanager's.
const KEY_MAX: usize = 4096;
/// How long a notification waits for room in the loop's queue before Alertmanager is
/// told to retry (503).
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long an authorized request has to send its body.
const BODY_WAIT: Duration = Duration::from_secs(10);
/// The shortest token taken: anything shorter is guessable.
pub const TOKEN_MIN: usize = 16;

/// `alerts:` in the agent's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    pub listen: SocketAddr,
    /// A file holding the bearer token Alertmanager sends (`credentials_file` in its
    /// `http_config.authorization`), readable by the agent alone.
    pub token_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("cannot read the alert receiver's token from {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the alert receiver's token in {path} is {len} characters; at least 16 are needed (`openssl rand -hex 32` makes one)")]
    ShortToken { path: PathBuf, len: usize },
    #[error("the alert receiver's token in {path} has spaces or several lines: a bearer token is one word")]
    TokenLines { path: PathBuf },
    #[error("the alert receiver's token file {path} is readable by others (mode {mode:o}): chmod 600 it")]
    OpenToken { path: PathBuf, mode: u32 },
    #[error("cannot listen on {address} for Alertmanager: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The bearer token, compared in constant time.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// Reads the token file: its one line, trimmed. Refused when short, or when the
    /// file is open to the group or others (the token is what guards the restarts).
    pub fn read(path: &Path) -> Result<Token, ReceiverError> {
        use std::os::unix::fs::PermissionsExt;
        let failed = |source| ReceiverError::Token {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(failed)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(ReceiverError::OpenToken {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(failed)?;
        let token = text.trim();
        if token.chars().any(char::is_whitespace) {
            return Err(ReceiverError::TokenLines {
                path: path.to_path_buf(),
            });
        }
        if token.chars().count() < TOKEN_MIN {
            return Err(ReceiverError::ShortToken {
                path: path.to_path_buf(),
                len: token.chars().count(),
            });
        }
        Ok(Token(token.into()))
    }

    #[cfg(test)]
    pub fn new(token: &str) -> Token {
        Token(token.into())
    }

    /// Whether an `Authorization` header carries this token. Every byte is compared
    /// whatever the first difference, so timing does not tell how much was right.
    fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let want = self.0.as_bytes();
        given.len() == want.len()
            && given
                .iter()
                .zip(want)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

/// The receiver's task; dropping it stops the listener.
pub struct Receiving {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The receiver a runtime starts: `config`'s, if any, told apart from the policies'
/// needs. A receiver that cannot start (its token unreadable, its port taken) is
/// warned about and the runtime heals without it; so is an `alert` trigger with no
/// receiver to hear it.
pub async fn start(
    config: Option<&ReceiverConfig>,
    policies: &[crate::policy::Policy],
    events: &EventSender,
) -> Option<Receiving> {
    let Some(config) = config else {
        for policy in waiting_for_alerts(policies) {
            tracing::warn!(policy = policy.name(), "an alert trigger, and no `alerts:` receiver in the config: Alertmanager cannot reach this agent, so the trigger never fires");
        }
        return None;
    };
    let started = match Token::read(&config.token_file) {
        Ok(token) => listen(config, token, events.clone()).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(receiving) => Some(receiving),
        Err(e) => {
            tracing::warn!(error = %e, "no alert receiver: Alertmanager's alerts cannot reach this agent");
            None
        }
    }
}

/// The policies with an `alert` trigger.
pub fn waiting_for_alerts(
    policies: &[crate::policy::Policy],
) -> impl Iterator<Item = &crate::policy::Policy> {
    policies.iter().filter(|p| {
        p.spec
            .trigger
            .iter()
            .any(|t| matches!(t.condition, crate::policy::Condition::Alert(_)))
    })
}

/// Binds `config.listen` and serves Alertmanager's webhook until the result is dropped.
pub async fn listen(
    config: &ReceiverConfig,
    token: Token,
    events: EventSender,
) -> Result<Receiving, ReceiverError> {
    let address = config.listen;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ReceiverError::Bind { address, source })?;
    let address = listener.local_addr().unwrap_or(address);
    let receiver = Arc::new(Receiver {
        token,
        events,
        refusals: AtomicU64::new(0),
        said_at: std::sync::Mutex::new(None),
    });
    let task = tokio::spawn(crate::web::serve(
        listener,
        "alert receiver",
        move |request| {
            let receiver = Arc::clone(&receiver);
            async move { receiver.receive(request).await }
        },
    ));
    tracing::info!(%address, path = PATH, "receiving Alertmanager's webhook");
    Ok(Receiving { address, task })
}

struct Receiver {
    token: Token,
    events: EventSender,
    /// Requests refused since the last warning about them, and when that was.
    refusals: AtomicU64,
    said_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Receiver {
    /// Warns of the refusals counted, once a minute at most.
    fn say_refusals(&self) {
        let mut said_at = self.said_at.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match *said_at {
            Some(at) if now.duration_since(at) < Duration::from_secs(60) => {}
            Some(_) => {
                let refused = self.refusals.swap(0, Ordering::Relaxed);
                tracing::warn!(refused, "alert receiver: requests without the right bearer token refused in the last minute or more");
                *said_at = Some(now);
            }
            None => *said_at = Some(now),
        }
    }

    async fn receive(&self, request: Request<Incoming>) -> Answer {
        if request.uri().path() != PATH {
            return text(
                StatusCode::NOT_FOUND,
                format!("not found: Alertmanager's webhook is POST {PATH}\n"),
            );
        }
        if request.method() != Method::POST {
            let mut refused = text(StatusCode::METHOD_NOT_ALLOWED, "only POST\n");
            refused.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("POST"),
            );
            return refused;
        }
        let authorization = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !self.token.admits(authorization) {
            // Once a minute at most: a client hammering the port must not fill the log.
            if self.refusals.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!("alert receiver: a request without the right bearer token was refused (further refusals are counted, and said once a minute)");
            }
            self.say_refusals();
            let mut refused = text(
                StatusCode::UNAUTHORIZED,
                "a bearer token is needed: Alertmanager's http_config.authorization.credentials_file\n",
            );
            let headers = refused.headers_mut();
            headers.insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            // Its connection slot back at once.
            headers.insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            return refused;
        }
        let reading = http_body_util::Limited::new(request.into_body(), BODY_MAX).collect();
        let body = match tokio::time::timeout(BODY_WAIT, reading).await {
            Err(_) => {
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body did not arrive within {}s\n", BODY_WAIT.as_secs()),
                )
            }
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a notification is at most {BODY_MAX} bytes: set max_alerts in Alertmanager's webhook_config\n"),
                )
            }
            Ok(Err(e)) => {
                return text(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}\n"))
            }
        };
        let (alerts, skipped) = match decode(&body) {
            Ok(decoded) => decoded,
            Err(why) => {
                tracing::warn!(error = %why, "alert receiver: not an Alertmanager notification");
                return text(StatusCode::BAD_REQUEST, format!("{why}\n"));
            }
        };
        let count = alerts.len();
        let group = alerts
            .first()
            .map(|a| a.group_key.clone())
            .unwrap_or_default();
        for why in &skipped {
            tracing::warn!(group_key = %group, error = %why, "alert receiver: an alert of the notification was skipped");
        }
        // One deadline for the whole notification, however many alerts it holds.
        let queueing = async {
            for alert in alerts {
                self.events.send(Event::Alert(alert)).await?;
            }
            Ok::<(), crate::signal::LoopGone>(())
        };
        match tokio::time::timeout(QUEUE_WAIT, queueing).await {
            Ok(Ok(())) => {}
            // Alertmanager retries a 5xx; an alert queued twice is remembered once.
            Ok(Err(_)) => return text(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping\n"),
            Err(_) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the decision loop is behind: retry\n",
                )
            }
        }
        tracing::info!(group_key = %group, alerts = count, skipped = skipped.len(), "alert notification received");
        text(
            StatusCode::OK,
            format!("{count} alert(s) received, {} skipped\n", skipped.len()),
        )
    }
}

/// A webhook notification (Alertmanager's `version: "4"`), the fields salve reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    #[serde(default)]
    version: Option<String>,
    group_key: String,
    alerts: Vec<NotifiedAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifiedAlert {
    status: AlertStatus,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: String,
    /// Alertmanager has sent it since 0.19; a sender without it is told apart by labels.
    #[serde(default)]
    fingerprint: Option<String>,
}

/// A notification's alerts as engine events, and why any were skipped (an alert
/// without a name, say: refusing the whole notification would lose its other alerts,
/// since Alertmanager does not retry a 4xx); an error says what is wrong with the
/// notification itself.
pub fn decode(body: &[u8]) -> Result<(Vec<AlertObservation>, Vec<String>), String> {
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|e| format!("not an Alertmanager webhook notification: {e}"))?;
    if let Some(version) = notification.version.as_deref() {
        if version != "4" {
            return Err(format!(
                "webhook version {version:?}: salve reads Alertmanager's version \"4\""
            ));
        }
    }
    if notification.group_key.len() > KEY_MAX {
        return Err(format!("the groupKey is longer than {KEY_MAX} bytes"));
    }
    if notification.alerts.len() > ALERTS_MAX {
        return Err(format!(
            "{} alerts in one notification; at most {ALERTS_MAX} (set max_alerts in Alertmanager's webhook_config)",
            notification.alerts.len()
        ));
    }
    let mut skipped = Vec::new();
    let alerts = notification
        .alerts
        .into_iter()
        .filter_map(|alert| {
            let decoded = one_alert(&notification.group_key, alert);
            decoded.map_err(|why| skipped.push(why)).ok()
        })
        .collect();
    Ok((alerts, skipped))
}

fn one_alert(group_key: &str, alert: NotifiedAlert) -> Result<AlertObservation, String> {
    if !alert.labels.contains_key("alertname") {
        return Err("an alert without an alertname label".to_string());
    }
    let fingerprint = alert
        .fingerprint
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| format!("{:?}", alert.labels));
    if fingerprint.len() > KEY_MAX || alert.starts_at.len() > 64 {
        return Err("an alert's fingerprint or startsAt is too long".to_string());
    }
    Ok(AlertObservation {
        group_key: group_key.to_string(),
        fingerprint,
        status: alert.status,
        starts_at: alert.starts_at,
        labels: alert.labels,
    })
}

#[cfg(test)]
mod tests;
