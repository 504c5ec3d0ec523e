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
    let (tx, mut rx) = crate::signal::event_queue(8);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_probe_loop(
        url.clone(),
        Duration::from_millis(20),
        Duration::from_secs(1),
        tx,
        shutdown,
    ));
    for _ in 0..2 {
        let event = rx.recv().await.unwrap().event;
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
    let (tx, rx) = crate::signal::event_queue(1);
    drop(rx);
    let (_stop, shutdown) = watch::channel(false);
    let looped = run_probe_loop(url, Duration::from_millis(10), SHORT, tx, shutdown);
    tokio::time::timeout(Duration::from_secs(1), looped)
        .await
        .expect("loop returns once nobody listens");
}
