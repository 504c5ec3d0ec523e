//! The `notify` action: POST a message to a webhook, in the shape its receiver reads:
//! salve's own JSON, Slack's `{"text"}`, or an alert for Alertmanager's API, so an
//! escalation lands where the team already looks.

use crate::policy::{HttpUrl, NotifyFormat};
use crate::signal::http::{request, Payload, RequestError};
use hyper::Method;
use serde_json::json;
use std::time::{Duration, SystemTime};

/// What a notification is about.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    /// The attempt that sends it; 0 for an escalation.
    pub attempt_id: u64,
    /// An escalation: after how many attempts the circuit opened (0: no circuit, a
    /// storm of a selector's objects or a drain that could not be made).
    pub escalation: Option<u32>,
    /// The policy's guard window: how long an opened circuit stays open.
    pub window: Duration,
    pub at: SystemTime,
}

impl Notice<'_> {
    /// One line a person reads on a phone.
    pub fn message(&self) -> String {
        let (policy, target) = (self.policy, self.target);
        match self.escalation {
            Some(0) => format!(
                "salve: policy {policy} on {target} needs a person: it escalated without opening a circuit (see the journal)"
            ),
            Some(n) => format!(
                "salve: {target} is still failing after {n} attempt(s) of policy {policy}; its circuit is open for {} and salve stops trying: a person is needed",
                humantime::format_duration(self.window)
            ),
            None => format!(
                "salve: policy {policy} is healing {target} (attempt {})",
                self.attempt_id
            ),
        }
    }
}

/// The body `format` posts for `notice`.
pub fn body(format: NotifyFormat, notice: &Notice<'_>) -> serde_json::Value {
    let at = crate::audit::format_ts(notice.at, true).unwrap_or_default();
    let message = notice.message();
    match format {
        NotifyFormat::Json => {
            let mut body = json!({
                "policy": notice.policy,
                "target": notice.target,
                "event": if notice.escalation.is_some() { "escalation" } else { "attempt" },
                "attemptId": notice.attempt_id,
                "message": message,
                "at": at,
            });
            if let (Some(attempts), Some(fields)) = (notice.escalation, body.as_object_mut()) {
                fields.insert("attempts".into(), attempts.into());
            }
            body
        }
        NotifyFormat::Slack => json!({ "text": message }),
        NotifyFormat::Alertmanager => {
            let (name, severity) = match notice.escalation {
                Some(_) => ("SalveEscalation", "critical"),
                None => ("SalveAttempt", "info"),
            };
            let mut alert = json!({
                "labels": {
                    "alertname": name,
                    "severity": severity,
                    "policy": notice.policy,
                    "target": notice.target,
                    "job": "salve",
                },
                "annotations": { "summary": message },
                "startsAt": at,
            });
            // An escalation lasts while the circuit is open; an attempt's notice is
            // resolved by Alertmanager's own resolve_timeout.
            if notice.escalation.is_some() {
                let ends = crate::audit::format_ts(notice.at + notice.window, true);
                if let (Some(ends), Some(fields)) = (ends, alert.as_object_mut()) {
                    fields.insert("endsAt".into(), ends.into());
                }
            }
            json!([alert])
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot encode webhook body: {0}")]
    Encode(serde_json::Error),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("webhook answered {0}")]
    Status(u16),
}

impl NotifyError {
    pub fn timed_out(&self) -> bool {
        matches!(self, NotifyError::Request(RequestError::TimedOut { .. }))
    }
}

/// POSTs `body` as JSON (`Content-Type: application/json`) to the webhook, with a timeout.
/// `Ok(status)` for any 2xx; otherwise "webhook answered 500", or the transport error
/// ("connection refused", "timed out after 5s").
///
/// Uses the same one-shot request as the HTTP probe: a webhook is called rarely, so a
/// fresh connection costs nothing and cannot be a stale one.
pub async fn post_webhook(
    url: &HttpUrl,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<u16, NotifyError> {
    let bytes = serde_json::to_vec(body).map_err(NotifyError::Encode)?;
    let payload = Payload {
        content_type: "application/json",
        bytes,
    };
    let status = request(Method::POST, url, Some(payload), timeout).await?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(NotifyError::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::http::test_server::{refused_url, response, serve};
    use serde_json::json;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn webhook_posts_json_with_the_right_content_type_and_body() {
        let (url, mut requests) = serve(vec![response(204, "")]).await;
        let body = json!({ "policy": "php-fpm-down", "text": "restarted php8.2-fpm.service" });
        assert_eq!(post_webhook(&url, &body, TIMEOUT).await.unwrap(), 204);

        let received = requests.recv().await.unwrap();
        let (head, sent_body) = received.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /health http/1.1\r\n"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", sent_body.len())),
            "{head}"
        );
        let sent: serde_json::Value = serde_json::from_str(sent_body).unwrap();
        assert_eq!(sent, body);
    }

    fn notice(escalation: Option<u32>) -> Notice<'static> {
        Notice {
            policy: "php-fpm-down",
            target: "php8.2-fpm.service",
            attempt_id: if escalation.is_some() { 0 } else { 7 },
            escalation,
            window: Duration::from_secs(3600),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_300_000),
        }
    }

    #[test]
    fn each_format_says_what_happened_in_its_receivers_shape() {
        let attempt = body(NotifyFormat::Json, &notice(None));
        assert_eq!(
            attempt,
            json!({
                "policy": "php-fpm-down",
                "target": "php8.2-fpm.service",
                "event": "attempt",
                "attemptId": 7,
                "message": "salve: policy php-fpm-down is healing php8.2-fpm.service (attempt 7)",
                "at": "2026-12-03T12:13:20.000Z",
            })
        );
        let escalation = body(NotifyFormat::Json, &notice(Some(3)));
        assert_eq!(escalation["event"], "escalation");
        assert_eq!(escalation["attempts"], 3);
        assert_eq!(
            escalation["message"],
            "salve: php8.2-fpm.service is still failing after 3 attempt(s) of policy php-fpm-down; its circuit is open for 1h and salve stops trying: a person is needed"
        );
        let slack = body(NotifyFormat::Slack, &notice(Some(3)));
        assert_eq!(slack, json!({ "text": escalation["message"] }));
        let alerts = body(NotifyFormat::Alertmanager, &notice(Some(3)));
        assert_eq!(
            alerts,
            json!([{
                "labels": {
                    "alertname": "SalveEscalation",
                    "severity": "critical",
                    "policy": "php-fpm-down",
                    "target": "php8.2-fpm.service",
                    "job": "salve",
                },
                "annotations": { "summary": escalation["message"] },
                "startsAt": "2026-12-03T12:13:20.000Z",
                "endsAt": "2026-12-03T13:13:20.000Z",
            }])
        );
        let info = body(NotifyFormat::Alertmanager, &notice(None));
        assert_eq!(info[0]["labels"]["alertname"], "SalveAttempt");
        assert!(info[0].get("endsAt").is_none(), "{info}");
        let storm = notice(Some(0)).message();
        assert!(storm.contains("without opening a circuit"), "{storm}");
    }

    #[tokio::test]
    async fn webhook_answering_500_is_an_error() {
        let (url, _requests) = serve(vec![response(500, "oops")]).await;
        let result = post_webhook(&url, &json!({}), TIMEOUT).await;
        assert!(
            matches!(result, Err(NotifyError::Status(500))),
            "{result:?}"
        );
        assert_eq!(result.unwrap_err().to_string(), "webhook answered 500");
    }

    #[tokio::test]
    async fn unreachable_webhook_reports_the_transport_error() {
        let (url, _bound) = refused_url();
        let err = post_webhook(&url, &json!({}), TIMEOUT).await.unwrap_err();
        assert!(!err.timed_out());
        assert_eq!(err.to_string(), "connection refused");
    }
}
