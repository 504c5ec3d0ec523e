//! The operator end to end over the API-server stand-in: a RemediationPolicy is
//! listed, its pods are watched by label, a crash-looping one is deleted once, with an
//! Event, and the journal says so; a watch that ends with 410 Gone is relisted.

use super::*;
use crate::audit::{Entry, OutcomeResult};
use crate::kubernetes::api_server::{route, Reply, Seen};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

mod failover;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Record>>>);

impl Sink for Captured {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        self.0.lock().unwrap().push(record.clone());
        Ok(())
    }
}

/// One replica in `web`, without an election, journalling into `journal`.
fn alone(client: Client, journal: &Captured) -> OperatorOptions {
    OperatorOptions {
        client,
        namespace: Some("web".into()),
        limits: Limits::default(),
        journal_path: None,
        rotation: Rotation::default(),
        journal_sink: Some(Box::new(journal.clone())),
        instance: Some("salve-0".into()),
        retry: Retry::default(),
        cluster: None,
        web: crate::web::WebConfig {
            listen: None,
            status_page: false,
        },
    }
}

fn policy_list() -> Value {
    json!({
        "apiVersion": "salve.dev/v1alpha1", "kind": "RemediationPolicyList",
        "metadata": { "resourceVersion": "100" },
        "items": [{
            "apiVersion": "salve.dev/v1alpha1", "kind": "RemediationPolicy",
            "metadata": { "namespace": "web", "name": "php-pods", "resourceVersion": "99", "uid": "u-1" },
            "spec": {
                "target": { "pods": { "selector": { "app": "php" } } },
                "trigger": [{ "pod": { "reason": ["CrashLoopBackOff"] } }],
                "actions": [{ "restart": {} }],
                "guard": { "cooldown": "1m", "maxAttempts": 2, "window": "1h" }
            }
        }]
    })
}

fn pod(name: &str, crashing: bool) -> Value {
    let state = if crashing {
        json!({ "waiting": { "reason": "CrashLoopBackOff" } })
    } else {
        json!({ "running": {} })
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "namespace": "web", "name": name, "labels": { "app": "php" }, "resourceVersion": "7" },
        "status": { "containerStatuses": [{
            "name": "php", "image": "php", "imageID": "", "ready": !crashing,
            "restartCount": 4, "state": state
        }] }
    })
}

fn pod_list(items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "200" }, "items": items })
}

/// The API server of the scenario: php-0 crash-loops, php-1 is fine; the first pod
/// watch ends with 410 Gone, and the relist finds php-1 gone.
pub(super) fn api_server() -> impl FnMut(&Seen) -> Reply + Send + 'static {
    let mut pod_lists = 0;
    let mut pod_watches = 0;
    move |seen: &Seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/apis/salve.dev/v1alpha1/namespaces/web/remediationpolicies") => {
            if seen.is_watch() {
                Reply::Hold
            } else {
                Reply::Json(200, policy_list())
            }
        }
        ("GET", "/api/v1/namespaces/web/pods") if seen.is_watch() => {
            pod_watches += 1;
            if pod_watches == 1 {
                Reply::Events(vec![json!({ "type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "too old resource version: 200 (300)", "reason": "Expired", "code": 410
                } })])
            } else {
                Reply::Hold
            }
        }
        ("GET", "/api/v1/namespaces/web/pods") => {
            pod_lists += 1;
            if pod_lists == 1 {
                Reply::Json(200, pod_list(vec![pod("php-0", true), pod("php-1", false)]))
            } else {
                Reply::Json(200, pod_list(vec![pod("php-0", true)]))
            }
        }
        ("DELETE", "/api/v1/namespaces/web/pods/php-0") => Reply::Json(200, pod("php-0", true)),
        (
            "PATCH",
            "/apis/salve.dev/v1alpha1/namespaces/web/remediationpolicies/php-pods/status",
        ) => Reply::Json(200, policy_list()["items"][0].clone()),
        ("POST", "/apis/events.k8s.io/v1/namespaces/web/events") => {
            Reply::Json(201, json!({ "metadata": { "name": "e" } }))
        }
        _ => Reply::Json(
            404,
            json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "not found", "reason": "NotFound", "code": 404 }),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_pod_a_policy_selects_is_deleted_once_and_journalled() {
    let (client, mut requests) = route(api_server());
    let journal = Captured::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let options = alone(client, &journal);
    let operator = tokio::spawn(run(options, stop_rx));

    // Until the restart's Event and the relisted pods have both been seen.
    let mut seen: Vec<Seen> = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(request) = requests.recv().await {
            seen.push(request);
            // The status shows the attempt's outcome once it is in.
            let event = seen.iter().any(|s| s.method == "POST")
                && seen.iter().any(|s| {
                    s.path.ends_with("/status")
                        && s.body
                            .as_ref()
                            .is_some_and(|b| b["status"]["lastAttempt"]["outcome"] == "ok")
                });
            let relisted = seen
                .iter()
                .filter(|s| s.path == "/api/v1/namespaces/web/pods" && !s.is_watch())
                .count()
                >= 2;
            if event && relisted {
                break;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out; requests: {seen:#?}");
    // The outcome reaches the journal right after the Event.
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let records = journal.0.lock().unwrap().clone();
            if let Some(found) = records
                .iter()
                .find(|r| matches!(r.entry, Entry::Outcome { .. }))
            {
                return found.clone();
            }
            drop(records);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("an outcome in the journal");
    let _ = stop_tx.send(true);
    operator.await.unwrap().unwrap();

    // The pods were watched by the policy's selector only.
    let lists: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path == "/api/v1/namespaces/web/pods")
        .collect();
    assert!(
        lists
            .iter()
            .all(|s| s.query.contains("labelSelector=app%3Dphp")),
        "{lists:#?}"
    );
    // php-0 was deleted once; php-1, which was fine, never.
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert_eq!(deletes[0].path, "/api/v1/namespaces/web/pods/php-0");
    let events: Vec<&Seen> = seen.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(events[0].content_type.as_deref(), Some("application/json"));
    let event = events[0].body.clone().unwrap_or_default();
    assert_eq!(event["reason"], "SalveRemediation", "{event}");
    assert_eq!(event["regarding"]["name"], "php-0", "{event}");

    // The policy says it runs.
    let status: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.ends_with("/status"))
        .collect();
    // Ready, then the attempt, then its outcome: each write shows all of it.
    assert_eq!(status.len(), 3, "{status:#?}");
    assert_eq!(status[0].method, "PATCH");
    let last = status[2].body.clone().unwrap_or_default()["status"].clone();
    assert_eq!(last["attempts"], 1, "{last}");
    assert_eq!(last["lastAttempt"]["attemptId"], 1, "{last}");
    assert_eq!(last["lastAttempt"]["target"], "pod/web/php-0", "{last}");
    assert_eq!(last["conditions"][0]["type"], "Ready", "{last}");
    assert_eq!(
        (
            &last["conditions"][1]["type"],
            &last["conditions"][1]["status"]
        ),
        (&json!("CircuitOpen"), &json!("False")),
        "{last}"
    );
    assert!(
        status[0].query.contains("fieldManager=salve"),
        "{:?}",
        status[0].query
    );
    assert_eq!(
        status[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let ready = status[0].body.clone().unwrap_or_default()["status"]["conditions"][0].clone();
    assert_eq!(
        (&ready["type"], &ready["status"], &ready["reason"]),
        (&json!("Ready"), &json!("True"), &json!("Loaded")),
        "{ready}"
    );
    assert_eq!(ready["message"], "running; target pods web/app=php");

    let records = journal.0.lock().unwrap().clone();
    let intent = records
        .iter()
        .find(|r| matches!(r.entry, Entry::Intent { .. }))
        .expect("the intent is journalled");
    assert_eq!(
        (intent.policy.as_str(), intent.target.as_str()),
        ("php-pods", "pod/web/php-0")
    );
    assert_eq!(outcome.target, "pod/web/php-0");
    match &outcome.entry {
        Entry::Outcome { result, steps, .. } => {
            assert_eq!(*result, OutcomeResult::Ok);
            assert_eq!(steps, &["restart: deleted pod/web/php-0"]);
        }
        other => panic!("{other:?}"),
    }
    // Nothing was ever decided about php-1.
    assert!(
        records.iter().all(|r| r.target != "pod/web/php-1"),
        "{records:#?}"
    );
}

/// `salve operator --dry-run`: the crash-looping pod is deleted in the API server's
/// dry run only, nothing is recorded as an Event, and the journal shows the would-be
/// attempt and the API server's answer to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_asks_the_api_server_for_its_dry_run_and_journals_the_answer() {
    let (client, mut requests) = route(api_server());
    let journal = Captured::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut options = alone(client, &journal);
    options.limits.dry_run = true;
    let operator = tokio::spawn(run(options, stop_rx));
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let collect = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                seen.lock().unwrap().push(request);
            }
        })
    };
    let rehearsal = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let records = journal.0.lock().unwrap().clone();
            if let Some(found) = records
                .iter()
                .find(|r| matches!(r.entry, Entry::Rehearsal { .. }))
            {
                return (records.clone(), found.clone());
            }
            drop(records);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _ = stop_tx.send(true);
    operator.await.unwrap().unwrap();
    collect.abort();
    let (records, rehearsal) = rehearsal.expect("a rehearsal in the journal");
    assert_eq!(rehearsal.target, "pod/web/php-0");
    assert_eq!(
        rehearsal.entry,
        Entry::Rehearsal {
            accepted: true,
            steps: vec!["restart: would delete pod/web/php-0".into()],
        }
    );
    // It follows the decision it rehearses; nothing ran for real.
    let kinds: Vec<&str> = records
        .iter()
        .filter(|r| r.target == "pod/web/php-0")
        .map(|r| r.entry.kind())
        .collect();
    assert_eq!(kinds, ["skip", "rehearsal"], "{records:#?}");
    assert!(
        matches!(&records[0].entry, Entry::Skip { reason, dry_run: true, .. } if reason == "dry_run")
    );
    let seen = seen.lock().unwrap().clone();
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert_eq!(
        deletes[0].body.as_ref().map(|b| &b["dryRun"]),
        Some(&json!(["All"])),
        "{deletes:#?}"
    );
    assert!(
        seen.iter()
            .all(|s| !s.path.starts_with("/apis/events.k8s.io")),
        "no Event for a change that was not made: {seen:#?}"
    );
}

fn status(code: u16, reason: &str) -> Reply {
    Reply::Json(
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": reason, "reason": reason, "code": code }),
    )
}

/// An `http` trigger on one pod: the leader probes the URL and acts on its failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_http_probe_deletes_the_pod_it_names() {
    use crate::signal::http::test_server;
    let (url, mut probed) = test_server::serve(vec![test_server::response(503, "down")]).await;
    let policy = json!({
        "apiVersion": "salve.dev/v1alpha1", "kind": "RemediationPolicyList",
        "metadata": { "resourceVersion": "100" },
        "items": [{
            "apiVersion": "salve.dev/v1alpha1", "kind": "RemediationPolicy",
            "metadata": { "namespace": "web", "name": "php-http", "resourceVersion": "99", "uid": "u-2" },
            "spec": {
                "target": { "pods": { "name": "php-0" } },
                "trigger": [{ "http": { "url": url.as_str(), "failures": 2, "interval": "100ms", "timeout": "50ms" } }],
                "actions": [{ "restart": {} }],
                "guard": { "cooldown": "1h", "maxAttempts": 1, "window": "1h" }
            }
        }]
    });
    let (client, mut requests) =
        route(
            move |seen: &Seen| match (seen.method.as_str(), seen.path.as_str()) {
                ("GET", "/apis/salve.dev/v1alpha1/namespaces/web/remediationpolicies")
                    if seen.is_watch() =>
                {
                    Reply::Hold
                }
                ("GET", "/apis/salve.dev/v1alpha1/namespaces/web/remediationpolicies") => {
                    Reply::Json(200, policy.clone())
                }
                ("GET", "/api/v1/namespaces/web/pods") if seen.is_watch() => Reply::Hold,
                ("GET", "/api/v1/namespaces/web/pods") => {
                    Reply::Json(200, pod_list(vec![pod("php-0", false)]))
                }
                ("DELETE", "/api/v1/namespaces/web/pods/php-0") => {
                    Reply::Json(200, pod("php-0", false))
                }
                ("PATCH", path) if path.ends_with("/status") => {
                    Reply::Json(200, policy["items"][0].clone())
                }
                ("POST", "/apis/events.k8s.io/v1/namespaces/web/events") => {
                    Reply::Json(201, json!({ "metadata": { "name": "e" } }))
                }
                _ => status(404, "NotFound"),
            },
        );
    let journal = Captured::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let options = alone(client, &journal);
    let operator = tokio::spawn(run(options, stop_rx));
    let mut seen: Vec<Seen> = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(request) = requests.recv().await {
            let event = request.method == "POST";
            seen.push(request);
            if event {
                break;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out; requests: {seen:#?}");
    // Two more probe periods: no second attempt (maxAttempts 1).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop_tx.send(true);
    operator.await.unwrap().unwrap();
    while let Ok(request) = requests.try_recv() {
        seen.push(request);
    }

    let mut probes = 0;
    while let Ok(request) = probed.try_recv() {
        assert!(request.starts_with("GET /health "), "{request}");
        probes += 1;
    }
    assert!(probes >= 2, "the URL was probed {probes} times");
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    let records = journal.0.lock().unwrap().clone();
    let intent = records
        .iter()
        .find_map(|r| match &r.entry {
            Entry::Intent { evidence, .. } => Some((r.target.clone(), evidence.clone())),
            _ => None,
        })
        .expect("an intent");
    assert_eq!(intent.0, "pod/web/php-0");
    assert!(
        intent.1.iter().any(|e| e.contains("503")),
        "the evidence names the probe's answer: {:?}",
        intent.1
    );
}

/// One GET to the operator's listener: the status and the body.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    Some((
        head.split_whitespace().nth(1)?.parse().ok()?,
        body.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_serves_its_metrics_health_and_status_page_as_the_agent_does() {
    // This test's own port.
    const PORT: u16 = 18949;
    let (client, _requests) = route(api_server());
    let journal = Captured::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut options = alone(client, &journal);
    options.web = crate::web::WebConfig {
        listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], PORT))),
        status_page: true,
    };
    let operator = tokio::spawn(run(options, stop_rx));
    let mut last = String::new();
    let counted = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some((200, text)) = get(PORT, "/metrics").await {
                if text.contains("salve_attempts_total{") && text.contains("result=\"ok\"") {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let text = counted.unwrap_or_else(|_| panic!("the deletion is counted; last scrape:\n{last}"));
    assert!(text.contains("action=\"restart\""), "{text}");
    assert!(text.contains("salve_policies 1"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("salve_circuit_open{") && l.contains("php-0")),
        "the selected pod has its gauge: {text}"
    );
    assert_eq!(get(PORT, "/healthz").await, Some((200, "ok\n".into())));
    assert_eq!(get(PORT, "/readyz").await, Some((200, "ready\n".into())));
    let (status, page) = get(PORT, "/").await.expect("the status page");
    assert_eq!(status, 200);
    assert!(page.contains("php-0"), "{page}");
    let _ = stop_tx.send(true);
    operator.await.unwrap().unwrap();
    assert!(
        get(PORT, "/healthz").await.is_none(),
        "the listener goes with the operator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_in_the_resources_spec_holds_it_back_and_shows_in_its_status() {
    let until =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(1800))
            .to_string();
    let mut inner = api_server();
    let paused = move |seen: &Seen| {
        if seen.method == "GET"
            && seen.path == "/apis/salve.dev/v1alpha1/namespaces/web/remediationpolicies"
            && !seen.is_watch()
        {
            let mut list = policy_list();
            list["items"][0]["spec"]["pause"] = json!({ "until": until, "reason": "deploy 42" });
            return Reply::Json(200, list);
        }
        inner(seen)
    };
    let (client, mut requests) = route(paused);
    let journal = Captured::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let operator = tokio::spawn(run(alone(client, &journal), stop_rx));
    let mut seen: Vec<Seen> = Vec::new();
    let shown = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(request) = requests.recv().await {
            let paused_shown = request.path.ends_with("/status")
                && request.body.as_ref().is_some_and(|b| {
                    b["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Paused" && c["status"] == "True")
                    })
                });
            seen.push(request);
            if paused_shown {
                break;
            }
        }
        // The skip is journalled whether or not another request follows it.
        while !journal
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|r| matches!(&r.entry, Entry::Skip { reason, .. } if reason == "paused"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        shown.is_ok(),
        "timed out; requests: {seen:#?}\njournal: {:#?}",
        journal.0.lock().unwrap()
    );
    let _ = stop_tx.send(true);
    operator.await.unwrap().unwrap();
    assert!(
        seen.iter().all(|s| s.method != "DELETE"),
        "nothing is deleted while paused: {seen:#?}"
    );
    let status = seen
        .iter()
        .rev()
        .find(|s| s.path.ends_with("/status"))
        .and_then(|s| s.body.clone())
        .expect("a status");
    let paused = status["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Paused"))
        .cloned()
        .expect("the Paused condition");
    assert_eq!(paused["reason"], "SpecPause", "{paused}");
    let message = paused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("deploy 42") && message.contains("spec.pause until"),
        "{paused}"
    );
    let records = journal.0.lock().unwrap().clone();
    assert!(
        records.iter().any(|r| matches!(&r.entry, Entry::Control { command, by, .. } if command == "pause" && by == "spec.pause")),
        "{records:#?}"
    );
}
