use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "0123456789abcdef0123";

/// A notification as Alertmanager 0.25 sends it (its fields, in its order).
fn notification(status: &str, alerts: &[(&str, &str, &str)]) -> String {
    let alerts: Vec<serde_json::Value> = alerts
        .iter()
        .map(|(status, instance, fingerprint)| {
            serde_json::json!({
                "status": status,
                "labels": { "alertname": "PhpFpmDown", "instance": instance },
                "annotations": { "summary": "php-fpm down" },
                "startsAt": "2026-12-03T17:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": fingerprint,
            })
        })
        .collect();
    serde_json::json!({
        "receiver": "salve",
        "status": status,
        "alerts": alerts,
        "groupLabels": { "alertname": "PhpFpmDown" },
        "commonLabels": { "alertname": "PhpFpmDown" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{alertname=\"PhpFpmDown\"}",
        "truncatedAlerts": 0
    })
    .to_string()
}

#[test]
fn a_notification_is_one_event_per_alert() {
    let body = notification(
        "firing",
        &[("firing", "web-1", "a1"), ("resolved", "web-2", "b2")],
    );
    let (alerts, skipped) = decode(body.as_bytes()).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].group_key, "{}:{alertname=\"PhpFpmDown\"}");
    assert_eq!(alerts[0].fingerprint, "a1");
    assert_eq!(alerts[0].status, AlertStatus::Firing);
    assert_eq!(alerts[0].starts_at, "2026-12-03T17:00:00.000Z");
    assert_eq!(alerts[0].labels["instance"], "web-1");
    assert_eq!(alerts[1].status, AlertStatus::Resolved);
}

#[test]
fn what_is_not_a_notification_is_refused_with_why() {
    let refused = |body: &str| decode(body.as_bytes()).unwrap_err();
    assert!(refused("{").starts_with("not an Alertmanager webhook notification"));
    assert!(refused(r#"{"groupKey": "g"}"#).contains("missing field `alerts`"));
    let v3 = notification("firing", &[]).replace("\"4\"", "\"3\"");
    assert!(refused(&v3).contains("version \"3\""), "{}", refused(&v3));
    // An alert without a name is skipped; the rest of its notification is taken.
    let unnamed = r#"{"groupKey":"g","alerts":[{"status":"firing","labels":{"a":"b"}},{"status":"firing","labels":{"alertname":"x"}}]}"#;
    let (alerts, skipped) = decode(unnamed.as_bytes()).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(skipped, ["an alert without an alertname label"]);
    let odd = r#"{"groupKey":"g","alerts":[{"status":"pending","labels":{"alertname":"x"}}]}"#;
    assert!(
        refused(odd).contains("unknown variant `pending`"),
        "{}",
        refused(odd)
    );
    let many: Vec<(&str, &str, &str)> = (0..=ALERTS_MAX).map(|_| ("firing", "w", "f")).collect();
    assert!(refused(&notification("firing", &many)).contains("at most 1000"));
}

#[test]
fn an_alert_without_a_fingerprint_is_told_apart_by_its_labels() {
    let one =
        r#"{"groupKey":"g","alerts":[{"status":"firing","labels":{"alertname":"x","i":"1"}}]}"#;
    let two = one.replace("\"1\"", "\"2\"");
    let first = |body: &str| decode(body.as_bytes()).unwrap().0.remove(0);
    let (a, b) = (first(one), first(&two));
    assert!(!a.fingerprint.is_empty());
    assert_ne!(a.fingerprint, b.fingerprint);
    assert_eq!(a.fingerprint, first(one).fingerprint);
}

#[test]
fn the_token_is_compared_whole() {
    let token = Token::new(TOKEN);
    assert!(token.admits(Some(format!("Bearer {TOKEN}").as_bytes())));
    assert!(!token.admits(None));
    assert!(!token.admits(Some(TOKEN.as_bytes())), "no scheme");
    assert!(!token.admits(Some(format!("Basic {TOKEN}").as_bytes())));
    assert!(!token.admits(Some(format!("Bearer {TOKEN}x").as_bytes())));
    assert!(!token.admits(Some(format!("Bearer {}", &TOKEN[1..]).as_bytes())));
    assert!(!token.admits(Some(b"Bearer 1123456789abcdef0123")));
}

#[test]
fn a_token_file_must_be_private_and_long_enough() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::audit::TestDir::new("alert-token");
    let path = dir.0.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Token::read(&path).unwrap_err().to_string();
    assert!(
        err.contains("readable by others (mode 644): chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Token::read(&path)
        .unwrap()
        .admits(Some(format!("Bearer {TOKEN}").as_bytes())));
    std::fs::write(&path, "short\n").unwrap();
    let err = Token::read(&path).unwrap_err().to_string();
    assert!(err.contains("is 5 characters; at least 16"), "{err}");
    std::fs::write(&path, format!("{TOKEN}\n{TOKEN}\n")).unwrap();
    let err = Token::read(&path).unwrap_err().to_string();
    assert!(err.contains("has spaces or several lines"), "{err}");
    let err = Token::read(&dir.0.join("none")).unwrap_err().to_string();
    assert!(
        err.starts_with("cannot read the alert receiver's token from"),
        "{err}"
    );
}

/// One request over a fresh connection: the status and the body.
async fn exchange(address: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{head}\r\nHost: salve\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The server may answer (413) before the whole body is sent.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

#[tokio::test]
async fn the_receiver_queues_the_alerts_of_an_authorized_notification_only() {
    let (events, mut queue) = crate::signal::event_queue(8);
    let config = ReceiverConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_file: PathBuf::new(),
    };
    let receiving = listen(&config, Token::new(TOKEN), events).await.unwrap();
    let at = receiving.address;
    let auth = format!("Authorization: Bearer {TOKEN}");
    let body = notification("firing", &[("firing", "web-1", "a1")]);
    let post = |extra: &str| format!("POST {PATH} HTTP/1.1\r\n{extra}");

    let (status, said) = exchange(at, &post("X-No: token"), body.as_bytes()).await;
    assert_eq!(
        (status, said.as_str()),
        (
            401,
            "a bearer token is needed: Alertmanager's http_config.authorization.credentials_file\n"
        )
    );
    let wrong = "Authorization: Bearer 0123456789abcdef0124";
    assert_eq!(exchange(at, &post(wrong), body.as_bytes()).await.0, 401);
    assert!(queue.try_recv().is_err(), "nothing queued unauthorized");

    let (status, _) = exchange(at, &format!("GET {PATH} HTTP/1.1\r\n{auth}"), b"").await;
    assert_eq!(status, 405);
    let (status, _) = exchange(at, &format!("POST /metrics HTTP/1.1\r\n{auth}"), b"{}").await;
    assert_eq!(status, 404);
    let (status, said) = exchange(at, &post(&auth), b"{\"alerts\": 1}").await;
    assert_eq!(status, 400);
    assert!(
        said.starts_with("not an Alertmanager webhook notification"),
        "{said}"
    );
    let huge = vec![b' '; BODY_MAX + 1];
    assert_eq!(exchange(at, &post(&auth), &huge).await.0, 413);
    assert!(queue.try_recv().is_err());

    let (status, said) = exchange(at, &post(&auth), body.as_bytes()).await;
    assert_eq!(
        (status, said.as_str()),
        (200, "1 alert(s) received, 0 skipped\n")
    );
    let Event::Alert(alert) = queue.try_recv().unwrap().event else {
        panic!("an alert event");
    };
    assert_eq!(
        (alert.fingerprint.as_str(), alert.status),
        ("a1", AlertStatus::Firing)
    );
    assert_eq!(alert.labels["instance"], "web-1");
}
