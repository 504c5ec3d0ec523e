use super::*;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(address: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: salve\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// A listener on a free loopback port, and a stand-in for the loop that answers
/// every ask with `status` (or never, when `answer` is false).
async fn serve(_answer: bool) -> (Listening, Arc<Metrics>, SocketAddr) {
    let metrics = Arc::new(Metrics::new());
    let config = WebConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
    };
    let listening = listen(&config, Arc::clone(&metrics))
        .await
        .unwrap()
        .unwrap();
    let address = listening.address;
    (listening, metrics, address)
}

fn answer_loop(mut listening: Listening) -> tokio::task::JoinHandle<Listening> {
    tokio::spawn(async move {
        while let Some(ask) = listening.asks.recv().await {
            match ask {
                Ask::Status(reply) => {
                    let _ = reply.send((Vec::new(), crate::engine::Timestamp::default()));
                }
            }
        }
        listening
    })
}

#[tokio::test]
async fn metrics_health_and_readiness_are_served_while_the_loop_answers() {
    let (listening, metrics, address) = serve(true).await;
    let _loop = answer_loop(listening);
    metrics.skipped("fpm-down", crate::engine::SkipReason::Cooldown);
    let (status, head, body) = get(address, "GET", "/metrics").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(
        body.contains(r#"salve_skips_total{policy="fpm-down",reason="cooldown"} 1"#),
        "{body}"
    );
    assert_eq!(get(address, "GET", "/healthz").await.0, 200);
    assert_eq!(get(address, "GET", "/readyz").await.2, "ready\n");
    metrics.journal_written(std::time::Duration::ZERO, false);
    let (status, _, body) = get(address, "GET", "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("journal write failed"), "{body}");
    assert_eq!(
        get(address, "GET", "/healthz").await.0,
        200,
        "alive all the same"
    );
}

#[tokio::test]
async fn only_reading_is_allowed_and_unknown_paths_are_not_found() {
    let (listening, _metrics, address) = serve(true).await;
    let _loop = answer_loop(listening);
    let (status, head, _) = get(address, "POST", "/metrics").await;
    assert_eq!(status, 405);
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
    let (status, _, body) = get(address, "GET", "/../etc/passwd").await;
    assert_eq!(status, 404);
    assert!(body.contains("/metrics, /healthz, /readyz"), "{body}");
    assert_eq!(get(address, "HEAD", "/healthz").await.0, 200);
}

#[tokio::test]
async fn a_loop_that_does_not_answer_is_unhealthy() {
    // The loop's end is held but never read: every ask waits out LOOP_TIMEOUT.
    let (_listening, _metrics, address) = serve(false).await;
    let started = std::time::Instant::now();
    let (status, _, body) = get(address, "GET", "/healthz").await;
    assert_eq!(status, 503);
    assert!(body.contains("has not answered in 2s"), "{body}");
    assert!(started.elapsed() >= LOOP_TIMEOUT);
    assert_eq!(get(address, "GET", "/metrics").await.0, 503);
}

#[tokio::test]
async fn a_listener_switched_off_binds_nothing() {
    let config = WebConfig { listen: None };
    assert!(listen(&config, Arc::new(Metrics::new()))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_port_taken_is_an_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = WebConfig {
        listen: Some(taken.local_addr().unwrap()),
    };
    let err = listen(&config, Arc::new(Metrics::new()))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains(&taken.local_addr().unwrap().to_string()),
        "{err}"
    );
}
