use super::*;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(address: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    get_naming(address, &address.to_string(), method, path).await
}

async fn get_naming(
    address: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// A listener on a free loopback port, its status page on or off, reading `journal`.
async fn serve_page(
    status_page: bool,
    journal: &std::path::Path,
) -> (Listening, Arc<Metrics>, SocketAddr) {
    let metrics = Arc::new(Metrics::new());
    let config = WebConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        status_page,
    };
    let listening = listen(&config, Arc::clone(&metrics), Some(journal))
        .await
        .unwrap()
        .unwrap();
    let address = listening.address;
    (listening, metrics, address)
}

/// A listener without the status page; asks go unanswered until `answer_loop`.
async fn serve(_answer: bool) -> (Listening, Arc<Metrics>, SocketAddr) {
    serve_page(false, std::path::Path::new("/nonexistent/journal.jsonl")).await
}

fn answer_loop(mut listening: Listening) -> tokio::task::JoinHandle<Listening> {
    tokio::spawn(async move {
        while let Some(ask) = listening.asks.recv().await {
            match ask {
                Ask::Status(reply) => {
                    let _ = reply.send((Vec::new(), crate::engine::Timestamp::default()));
                }
                Ask::Report(reply) => {
                    let report = StatusReport {
                        policies: vec![crate::control::PolicyLine {
                            policy: "fpm-down".into(),
                            target: "php8.2-fpm.service".into(),
                            state: "circuit open".into(),
                            ..Default::default()
                        }],
                        pauses: Vec::new(),
                    };
                    let _ = reply.send(report);
                }
                Ask::Ping(reply) => {
                    let _ = reply.send(());
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
    let (status, _, body) = get(address, "GET", "/").await;
    assert_eq!(status, 404, "the status page is off by default");
    assert!(body.contains("statusPage: true"), "{body}");
    assert_eq!(get(address, "HEAD", "/healthz").await.0, 200);
}

#[tokio::test]
async fn on_loopback_only_requests_naming_it_by_address_or_localhost_are_served() {
    let (listening, _metrics, address) = serve(true).await;
    let _loop = answer_loop(listening);
    let port = address.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            get_naming(address, &host, "GET", "/healthz").await.0,
            200,
            "{host}"
        );
    }
    // A page on a name rebound to 127.0.0.1 sends its own name.
    for host in [
        format!("evil.example:{port}"),
        "localhost.evil.example".to_string(),
    ] {
        let (status, _, body) = get_naming(address, &host, "GET", "/metrics").await;
        assert_eq!(status, 421, "{host}");
        assert!(body.contains("name it as 127.0.0.1"), "{body}");
    }
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
    let config = WebConfig {
        listen: None,
        status_page: true,
    };
    assert!(listen(&config, Arc::new(Metrics::new()), None)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_port_taken_is_an_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = WebConfig {
        listen: Some(taken.local_addr().unwrap()),
        status_page: false,
    };
    let err = listen(&config, Arc::new(Metrics::new()), None)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains(&taken.local_addr().unwrap().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn the_status_page_shows_the_loops_report_and_the_journals_last_records() {
    let dir = std::env::temp_dir().join(format!("salve-web-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("journal.jsonl");
    let record = crate::audit::Record {
        ts: std::time::SystemTime::now(),
        policy: "fpm-down".into(),
        target: "php8.2-fpm.service".into(),
        entry: crate::audit::Entry::EscalationSent {
            failures: vec!["webhook refused".into()],
        },
    };
    std::fs::write(&journal, serde_json::to_string(&record).unwrap() + "\n").unwrap();
    let (listening, _metrics, address) = serve_page(true, &journal).await;
    let _loop = answer_loop(listening);
    let (status, head, body) = get(address, "GET", "/").await;
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(body.contains("data-state=\"circuit open\""), "{body}");
    assert!(
        body.contains("webhook refused"),
        "the journal's record: {body}"
    );
    assert_eq!(get(address, "GET", "/status").await.0, 200);
    let _ = std::fs::remove_dir_all(&dir);
}
