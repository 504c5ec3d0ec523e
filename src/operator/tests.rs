//! The operator end to end over the API-server stand-in: a RemediationPolicy is
//! listed, its pods are watched by label, a crash-looping one is deleted once, with an
//! Event, and the journal says so; a watch that ends with 410 Gone is relisted.

use super::*;
use crate::audit::{Entry, OutcomeResult};
use crate::kubernetes::api_server::{route, Reply, Seen};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Record>>>);

impl Sink for Captured {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        self.0.lock().unwrap().push(record.clone());
        Ok(())
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
    let options = OperatorOptions {
        client,
        namespace: Some("web".into()),
        limits: Limits::default(),
        journal_path: None,
        rotation: Rotation::default(),
        journal_sink: Some(Box::new(journal.clone())),
        instance: Some("salve-0".into()),
        retry: Retry::default(),
        cluster: None,
    };
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

/// The API server two replicas share in the failover test: a Lease with server-side
/// apply's conflict on `holderIdentity`, the guard-state ConfigMap, and one pod that
/// crash-loops whatever is done to it. Deletions are logged with the lease's holder
/// at the time.
#[derive(Default)]
struct Cluster {
    lease: Option<Value>,
    /// The field manager owning `spec.holderIdentity`, as server-side apply tracks it.
    holder_manager: Option<String>,
    configmap: Option<Value>,
    deleted_by: Vec<String>,
}

fn status(code: u16, reason: &str) -> Reply {
    Reply::Json(
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": reason, "reason": reason, "code": code }),
    )
}

fn manager_of(seen: &Seen) -> String {
    seen.query
        .split('&')
        .find_map(|p| p.strip_prefix("fieldManager="))
        .unwrap_or_default()
        .to_string()
}

/// Merges `patch` into `into`, a JSON merge patch's way: null removes.
fn merge(into: &mut Value, patch: &Value) {
    match (into.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge(target.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *into = patch.clone(),
    }
}

fn failover_policy_list() -> Value {
    let mut list = policy_list();
    list["items"][0]["spec"]["guard"] =
        json!({ "cooldown": "1s", "maxAttempts": 3, "window": "1h", "backoff": 1.0 });
    list
}

impl Cluster {
    fn answer(&mut self, seen: &Seen) -> Reply {
        const LEASE: &str =
            "/apis/coordination.k8s.io/v1/namespaces/salve-system/leases/salve-operator";
        const CONFIGMAP: &str = "/api/v1/namespaces/salve-system/configmaps/salve-guard-state";
        let body = seen.body.clone().unwrap_or_default();
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", LEASE) => match &self.lease {
                Some(lease) => Reply::Json(200, lease.clone()),
                None => status(404, "NotFound"),
            },
            ("POST", "/apis/coordination.k8s.io/v1/namespaces/salve-system/leases") => {
                if self.lease.is_some() {
                    return status(409, "AlreadyExists");
                }
                let mut lease = body;
                lease["metadata"]["namespace"] = json!("salve-system");
                lease["metadata"]["resourceVersion"] = json!("1");
                self.lease = Some(lease.clone());
                Reply::Json(201, lease)
            }
            ("PATCH", LEASE) => {
                let Some(lease) = self.lease.as_mut() else {
                    return status(404, "NotFound");
                };
                let manager = manager_of(seen);
                let wanted = &body["spec"]["holderIdentity"];
                let held = &lease["spec"]["holderIdentity"];
                let apply = seen.content_type.as_deref() == Some("application/apply-patch+yaml");
                if apply
                    && !wanted.is_null()
                    && !held.is_null()
                    && held != wanted
                    && self.holder_manager.as_deref() != Some(manager.as_str())
                {
                    return status(409, "Conflict");
                }
                if wanted.is_null() && body["spec"].get("holderIdentity").is_some() {
                    self.holder_manager = None;
                } else if !wanted.is_null() {
                    self.holder_manager = Some(manager);
                }
                let spec = body["spec"].clone();
                merge(&mut lease["spec"], &spec);
                Reply::Json(200, lease.clone())
            }
            ("GET", CONFIGMAP) => match &self.configmap {
                Some(cm) => Reply::Json(200, cm.clone()),
                None => status(404, "NotFound"),
            },
            ("POST", "/api/v1/namespaces/salve-system/configmaps") => {
                let mut cm = body;
                cm["metadata"]["namespace"] = json!("salve-system");
                self.configmap = Some(cm.clone());
                Reply::Json(201, cm)
            }
            ("PATCH", CONFIGMAP) => match self.configmap.as_mut() {
                Some(cm) => {
                    merge(cm, &body);
                    Reply::Json(200, cm.clone())
                }
                None => status(404, "NotFound"),
            },
            ("GET", "/apis/salve.dev/v1alpha1/namespaces/web/remediationpolicies") => {
                if seen.is_watch() {
                    Reply::Hold
                } else {
                    Reply::Json(200, failover_policy_list())
                }
            }
            ("GET", "/api/v1/namespaces/web/pods") if seen.is_watch() => Reply::Hold,
            ("GET", "/api/v1/namespaces/web/pods") => {
                Reply::Json(200, pod_list(vec![pod("php-0", true)]))
            }
            ("DELETE", "/api/v1/namespaces/web/pods/php-0") => {
                let holder = self
                    .lease
                    .as_ref()
                    .and_then(|l| l["spec"]["holderIdentity"].as_str())
                    .unwrap_or("nobody")
                    .to_string();
                self.deleted_by.push(holder);
                Reply::Json(200, pod("php-0", true))
            }
            ("PATCH", path) if path.ends_with("/status") => {
                Reply::Json(200, failover_policy_list()["items"][0].clone())
            }
            ("POST", "/apis/events.k8s.io/v1/namespaces/web/events") => {
                Reply::Json(201, json!({ "metadata": { "name": "e" } }))
            }
            _ => status(404, "NotFound"),
        }
    }

    /// The outcome lines replica `identity` left in the ConfigMap.
    fn outcomes_of(&self, identity: &str) -> usize {
        self.configmap
            .as_ref()
            .and_then(|cm| {
                cm["data"][format!("{identity}.jsonl")]
                    .as_str()
                    .map(String::from)
            })
            .map(|text| text.lines().filter(|l| l.contains("\"outcome\"")).count())
            .unwrap_or(0)
    }
}

fn replica(client: Client, identity: &str, journal: &Captured) -> OperatorOptions {
    OperatorOptions {
        client,
        namespace: Some("web".into()),
        limits: Limits::default(),
        journal_path: None,
        rotation: Rotation::default(),
        journal_sink: Some(Box::new(journal.clone())),
        instance: Some(identity.into()),
        retry: Retry::default(),
        cluster: Some(ClusterState {
            namespace: "salve-system".into(),
            identity: identity.into(),
            lease: Some(LeaseSettings {
                name: "salve-operator".into(),
                duration: Duration::from_secs(2),
                grace: Duration::from_secs(1),
            }),
        }),
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_mid_crash_loop_keeps_counting_attempts_and_only_the_leader_acts() {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let shared = Arc::clone(&cluster);
    let (client, _requests) = route(move |seen: &Seen| shared.lock().unwrap().answer(seen));
    let holder = || {
        cluster
            .lock()
            .unwrap()
            .lease
            .as_ref()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    };

    // salve-a starts first and leads; salve-b waits as a standby with warm watches.
    let journal_a = Captured::default();
    let (_stop_a, stop_rx) = watch::channel(false);
    let a = tokio::spawn(run(replica(client.clone(), "salve-a", &journal_a), stop_rx));
    until("salve-a to lead", || holder().as_deref() == Some("salve-a")).await;
    let journal_b = Captured::default();
    let (stop_b, stop_rx) = watch::channel(false);
    let b = tokio::spawn(run(replica(client.clone(), "salve-b", &journal_b), stop_rx));

    // Two attempts by salve-a, their outcomes in the cluster; then it is gone.
    until("two attempts by salve-a", || {
        cluster.lock().unwrap().outcomes_of("salve-a") >= 2
    })
    .await;
    a.abort();
    let _ = a.await;
    assert_eq!(cluster.lock().unwrap().deleted_by, ["salve-a", "salve-a"]);

    // salve-b takes over within the lease's duration, makes the third and last
    // attempt, and opens the circuit: maxAttempts held across the failover.
    until("salve-b to escalate", || {
        journal_b
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r.entry, Entry::Escalate { .. }))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop_b.send(true);
    let _ = b.await;

    let deleted_by = cluster.lock().unwrap().deleted_by.clone();
    assert_eq!(deleted_by, ["salve-a", "salve-a", "salve-b"]);
    let records = journal_b.0.lock().unwrap().clone();
    let intents: Vec<(u64, u32)> = records
        .iter()
        .filter_map(|r| match r.entry {
            Entry::Intent { id, attempt, .. } => Some((id, attempt)),
            _ => None,
        })
        .collect();
    // The new leader numbered after the old one and counted its attempts.
    assert_eq!(intents, [(3, 3)], "{records:#?}");
    match records
        .iter()
        .find(|r| matches!(r.entry, Entry::Escalate { .. }))
        .map(|r| &r.entry)
    {
        Some(Entry::Escalate { attempts, .. }) => assert_eq!(*attempts, 3),
        other => panic!("{other:?}"),
    }
    // salve-a acted only while it held the lease; salve-b never before.
    let a_records = journal_a.0.lock().unwrap().clone();
    assert_eq!(
        a_records
            .iter()
            .filter(|r| matches!(r.entry, Entry::Intent { .. }))
            .count(),
        2
    );
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
    let options = OperatorOptions {
        client,
        namespace: Some("web".into()),
        limits: Limits::default(),
        journal_path: None,
        rotation: Rotation::default(),
        journal_sink: Some(Box::new(journal.clone())),
        instance: Some("salve-0".into()),
        retry: Retry::default(),
        cluster: None,
    };
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
