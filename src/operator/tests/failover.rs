//! Two replicas over one stand-in cluster: leader election with a Lease and the
//! guard records a new leader rebuilds from.

use super::*;

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
        web: crate::web::WebConfig {
            listen: None,
            status_page: false,
        },
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
