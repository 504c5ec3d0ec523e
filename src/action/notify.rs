//! The `notify` action: POST a JSON message to a webhook (a chat relay, an alert router).

use crate::policy::HttpUrl;
use crate::signal::http::{request, Payload, RequestError};
use hyper::Method;
use std::time::Duration;

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
