//! Operator benchmark: `salve operator` whole, over an API server that answers at the
//! HTTP request level in this process (no API server can run here), on the runtime
//! `salve operator` runs on (two workers).
//!
//! 1,000 policies, each selecting its own ten pods (`app=svc-NNNN`), which salve
//! watches as sixteen set-based selectors (`app in (…)`, some sixty values each), and
//! 10,000 pods, each a realistic Pod of 6.5 KB of JSON (two containers, probes,
//! volumes, `managedFields` of three managers, a full status), listed, then watched.
//! Figures, each beside its target:
//! - throughput: 100,000 watch events (running pods whose status changes, the kind a
//!   cluster sends all day) through kube's watcher, salve's decoding and the engine,
//!   ended by one crash-looping pod per policy, whose deletions mark the end;
//! - latency: a pod turning to CrashLoopBackOff in its watch → the DELETE request
//!   that restarts it, one at a time, 2,000 times;
//! - memory: the process's RSS with every pod known, after the load.
//!
//! The reference, measured in the same run: decoding the same events and nothing
//! else, on one thread, into `k8s_openapi` Pods and into salve's slim ones
//! (`kubernetes::watched`).
//!
//! Run with `make bench`.

use http::{Request, Response};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Bytes;
use hyper::body::Frame;
use salve::action::kubernetes::Retry;
use salve::audit::{AuditError, Record, Rotation, Sink};
use salve::engine::Limits;
use salve::operator::{run, OperatorOptions};
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Counts the bytes allocated and not yet freed, to print beside RSS: the part of the
/// RSS that is live data, apart from the binary's pages, the stacks, and what the
/// allocator keeps of memory freed.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only a counter is kept beside.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_mib() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed) / (1024 * 1024)
}

/// The sizes of one run.
#[derive(Clone, Copy)]
struct Size {
    policies: usize,
    pods_per_policy: usize,
    /// Watch events in the throughput run.
    events: usize,
    latency_samples: usize,
}

const FULL: Size = Size {
    policies: 1_000,
    pods_per_policy: 10,
    events: 100_000,
    latency_samples: 2_000,
};

const SMOKE: Size = Size {
    policies: 20,
    pods_per_policy: 10,
    events: 2_000,
    latency_samples: 20,
};

/// Events waiting in one watch's stream: the driver is held back when the operator
/// falls behind, as a slow reader holds back the API server.
const WATCH_BUFFER: usize = 16;

/// A Pod as a cluster sends it: about 5 KB of JSON. `state` is the main container's.
fn pod(policy: usize, index: usize, version: u64, crashing: bool) -> Value {
    let name = format!("svc-{policy:04}-{index:02}");
    let app = format!("svc-{policy:04}");
    let state = if crashing {
        json!({ "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=php pod=svc" } })
    } else {
        json!({ "running": { "startedAt": "2026-12-01T04:00:00Z" } })
    };
    let managed = |manager: &str, operation: &str, sub: Option<&str>, fields: Value| {
        let mut entry = json!({ "manager": manager, "operation": operation, "apiVersion": "v1",
            "time": "2026-12-01T04:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields });
        if let Some(sub) = sub {
            entry["subresource"] = json!(sub);
        }
        entry
    };
    let container = |name: &str, image: &str, port: u16| {
        json!({
            "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
            "ports": [{ "name": "http", "containerPort": port, "protocol": "TCP" }],
            "env": [
                { "name": "APP_ENV", "value": "production" },
                { "name": "POD_NAME", "valueFrom": { "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.name" } } },
                { "name": "DB_PASSWORD", "valueFrom": { "secretKeyRef": { "name": "db", "key": "password" } } }
            ],
            "resources": { "limits": { "cpu": "500m", "memory": "256Mi" }, "requests": { "cpu": "100m", "memory": "128Mi" } },
            "volumeMounts": [
                { "name": "config", "mountPath": "/etc/app", "readOnly": true },
                { "name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true }
            ],
            "livenessProbe": { "httpGet": { "path": "/healthz", "port": port, "scheme": "HTTP" }, "initialDelaySeconds": 10, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3 },
            "readinessProbe": { "httpGet": { "path": "/ready", "port": port, "scheme": "HTTP" }, "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3 },
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
        })
    };
    let status = |name: &str, image: &str, state: Value, restarts: u32| {
        json!({
            "name": name, "state": state, "ready": true, "restartCount": restarts, "started": true,
            "image": image, "imageID": format!("docker.io/library/{image}@sha256:4f5d1e2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100"),
            "containerID": "containerd://8d2f0c1b9e7a6d5c4b3a29181716151413121110f0e0d0c0b0a090807060504",
            "lastState": { "terminated": { "exitCode": 255, "reason": "Error", "startedAt": "2026-12-01T03:00:00Z", "finishedAt": "2026-12-01T03:59:59Z" } }
        })
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "generateName": format!("{app}-7d9c5b6f48-"), "namespace": "web",
            "uid": format!("6f1c2d3e-4b5a-4c6d-8e7f-{policy:06}{index:06}"),
            "resourceVersion": format!("{version:012}"), "creationTimestamp": "2026-12-01T03:00:00Z",
            "labels": { "app": app, "pod-template-hash": "7d9c5b6f48", "tier": "web", "app.kubernetes.io/part-of": "shop" },
            "annotations": { "kubectl.kubernetes.io/restartedAt": "2026-11-30T12:00:00Z", "prometheus.io/scrape": "true", "prometheus.io/port": "9100" },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d9c5b6f48"), "uid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "controller": true, "blockOwnerDeletion": true }],
            "managedFields": [
                managed("kube-controller-manager", "Update", None, json!({ "f:metadata": { "f:generateName": {}, "f:labels": { ".": {}, "f:app": {}, "f:pod-template-hash": {}, "f:tier": {} }, "f:ownerReferences": { ".": {}, "k:{\"uid\":\"0a1b2c3d\"}": {} } }, "f:spec": { "f:containers": { "k:{\"name\":\"php\"}": { ".": {}, "f:env": {}, "f:image": {}, "f:livenessProbe": {}, "f:ports": {}, "f:readinessProbe": {}, "f:resources": {} }, "k:{\"name\":\"nginx\"}": { ".": {}, "f:image": {}, "f:ports": {} } }, "f:volumes": {} } })),
                managed("kubelet", "Update", Some("status"), json!({ "f:status": { "f:conditions": { "k:{\"type\":\"ContainersReady\"}": { ".": {}, "f:status": {} }, "k:{\"type\":\"Ready\"}": { ".": {}, "f:status": {} } }, "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {}, "f:podIPs": {}, "f:startTime": {} } })),
                managed("kubectl-client-side-apply", "Update", None, json!({ "f:metadata": { "f:annotations": { ".": {}, "f:kubectl.kubernetes.io/restartedAt": {} } } }))
            ]
        },
        "spec": {
            "containers": [container("php", "php:8.2-fpm", 9000), container("nginx", "nginx:1.27", 8080)],
            "volumes": [
                { "name": "config", "configMap": { "name": "app-config", "defaultMode": 420 } },
                { "name": "kube-api-access-x7k2p", "projected": { "defaultMode": 420, "sources": [{ "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } }, { "configMap": { "name": "kube-root-ca.crt", "items": [{ "key": "ca.crt", "path": "ca.crt" }] } }] } }
            ],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "nodeName": format!("worker-{}", policy % 50),
            "securityContext": {}, "schedulerName": "default-scheduler", "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
                { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }
            ]
        },
        "status": {
            "phase": "Running",
            "conditions": [
                { "type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-12-01T03:00:05Z" },
                { "type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-12-01T03:00:01Z" },
                { "type": "Ready", "status": if crashing { "False" } else { "True" }, "lastProbeTime": null, "lastTransitionTime": "2026-12-01T03:00:20Z" },
                { "type": "ContainersReady", "status": if crashing { "False" } else { "True" }, "lastProbeTime": null, "lastTransitionTime": "2026-12-01T03:00:20Z" },
                { "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-12-01T03:00:00Z" }
            ],
            "hostIP": "10.0.3.17", "hostIPs": [{ "ip": "10.0.3.17" }], "podIP": "10.244.3.41", "podIPs": [{ "ip": "10.244.3.41" }],
            "startTime": "2026-12-01T03:00:00Z", "qosClass": "Burstable",
            "containerStatuses": [
                status("php", "php:8.2-fpm", state, (version % 7) as u32),
                status("nginx", "nginx:1.27", json!({ "running": { "startedAt": "2026-12-01T03:00:10Z" } }), 0)
            ]
        }
    })
}

fn policy(i: usize) -> Value {
    json!({
        "apiVersion": "salve.dev/v1alpha1", "kind": "RemediationPolicy",
        "metadata": { "namespace": "web", "name": format!("svc-{i:04}"), "resourceVersion": "1", "generation": 1, "uid": format!("p-{i}") },
        "spec": {
            "target": { "pods": { "selector": { "app": format!("svc-{i:04}") } } },
            "trigger": [{ "pod": { "reason": ["CrashLoopBackOff"] } }],
            "actions": [{ "deletePod": {} }],
            "guard": { "cooldown": "1h", "maxAttempts": 1, "window": "1h" }
        }
    })
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: u16, value: &Value) -> Response<Body> {
    bytes(
        status,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

fn bytes(status: u16, bytes: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(bytes).boxed_unsync())
        .expect("a response")
}

/// The API server: policies and pods listed, pods watched through channels the driver
/// writes to, deletions reported with the moment they arrived.
struct Cluster {
    size: Size,
    /// The RemediationPolicyList, encoded once.
    policies: Bytes,
    /// One policy, the answer to a status write.
    one_policy: Bytes,
    /// The pods as listed.
    running: Template,
    /// The watch each policy's pods are in, once the operator has opened it.
    watches: Mutex<HashMap<usize, mpsc::Sender<Bytes>>>,
    opened: mpsc::UnboundedSender<usize>,
    deleted: mpsc::UnboundedSender<(String, Instant)>,
    /// Watches that stay open and silent (the policies').
    silent: Mutex<Vec<mpsc::Sender<Bytes>>>,
}

impl Cluster {
    fn answer(&self, request: &Request<kube::client::Body>) -> Response<Body> {
        let path = request.uri().path();
        let query = request.uri().query().unwrap_or_default();
        let watching = query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1");
        let method = request.method().as_str();
        match method {
            "GET" if path.ends_with("/remediationpolicies") => {
                if watching {
                    let (tx, rx) = mpsc::channel(1);
                    self.silent.lock().expect("lock").push(tx);
                    stream(rx)
                } else {
                    bytes(200, self.policies.clone())
                }
            }
            "GET" if path == "/api/v1/namespaces/web/pods" => {
                let policies = selected(query);
                if policies.is_empty() {
                    return full(400, &json!({ "kind": "Status", "code": 400 }));
                }
                if watching {
                    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
                    let mut watches = self.watches.lock().expect("lock");
                    for &policy in &policies {
                        watches.insert(policy, tx.clone());
                    }
                    let _ = self.opened.send(policies.len());
                    stream(rx)
                } else {
                    // Pages as the API server cuts them: `limit` items, then a
                    // `continue` token (here, the offset of the next page).
                    let param = |name: &str| {
                        query
                            .split('&')
                            .find_map(|p| p.strip_prefix(name))
                            .and_then(|v| v.parse::<usize>().ok())
                    };
                    let total = policies.len() * self.size.pods_per_policy;
                    let from = param("continue=").unwrap_or(0);
                    let to = (from + param("limit=").unwrap_or(total)).min(total);
                    // Made from the running template's bytes, as the driver's events
                    // are: building Values here would cost this process more memory
                    // than the operator it measures.
                    let mut body =
                        br#"{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"1""#
                            .to_vec();
                    if to < total {
                        body.extend(format!(r#","continue":"{to}""#).into_bytes());
                    }
                    body.extend(br#"},"items":["#);
                    for i in from..to {
                        let (p, index) =
                            (i / self.size.pods_per_policy, i % self.size.pods_per_policy);
                        if i > from {
                            body.push(b',');
                        }
                        body.extend(self.running.object(policies[p], index, 1));
                    }
                    body.extend(b"]}");
                    bytes(200, Bytes::from(body))
                }
            }
            "DELETE" => {
                let _ = self.deleted.send((
                    path.rsplit('/').next().unwrap_or_default().to_string(),
                    Instant::now(),
                ));
                full(
                    200,
                    &json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "namespace": "web", "name": "x" } }),
                )
            }
            "POST" => full(201, &json!({ "metadata": { "name": "e" } })),
            "PATCH" => bytes(200, self.one_policy.clone()),
            _ => full(
                404,
                &json!({ "kind": "Status", "code": 404, "reason": "NotFound" }),
            ),
        }
    }
}

/// The policies a pod watch's label selector names: `app=svc-NNNN`, or (as salve asks
/// for many at once) `app in (svc-NNNN,…)`.
fn selected(query: &str) -> Vec<usize> {
    let Some(selector) = query
        .split('&')
        .find_map(|p| p.strip_prefix("labelSelector="))
    else {
        return Vec::new();
    };
    let decoded = selector
        .replace('+', " ")
        .replace("%3D", "=")
        .replace("%28", "(")
        .replace("%29", ")")
        .replace("%2C", ",")
        .replace("%20", " ");
    let values = match decoded.strip_prefix("app in (") {
        Some(set) => set.trim_end_matches(')').to_string(),
        None => decoded.strip_prefix("app=").unwrap_or_default().to_string(),
    };
    values
        .split(',')
        .filter_map(|v| v.strip_prefix("svc-")?.parse().ok())
        .collect()
}

fn stream(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(StreamBody::new(frames).boxed_unsync())
        .expect("a response")
}

/// One line of a watch stream, `type` first as the API server writes it (a decoder
/// reading `object` first would have to buffer it until it knows the type).
fn modified(pod: &Value) -> Bytes {
    let mut line = br#"{"type":"MODIFIED","object":"#.to_vec();
    line.extend(serde_json::to_vec(pod).unwrap_or_default());
    line.extend(b"}\n");
    Bytes::from(line)
}

/// A watch event's bytes with the pod's name, labels, uid and resourceVersion left
/// open: the driver fills them in place, so making an event costs a copy, not the
/// encoding of a Pod (the operator's time is what is measured).
struct Template {
    bytes: Vec<u8>,
    policy_at: Vec<usize>,
    index_at: Vec<usize>,
    version_at: Vec<usize>,
    uid_at: Vec<usize>,
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    (0..=haystack.len().saturating_sub(needle.len()))
        .filter(|&i| haystack[i..].starts_with(needle))
        .collect()
}

fn put(buf: &mut [u8], at: usize, value: u64, width: usize) {
    let mut value = value;
    for i in (0..width).rev() {
        buf[at + i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl Template {
    fn new(crashing: bool) -> Template {
        let bytes = modified(&pod(9999, 99, 999_999_999_999, crashing)).to_vec();
        let at = |needle: &str, skip: usize| -> Vec<usize> {
            find_all(&bytes, needle.as_bytes())
                .into_iter()
                .map(|i| i + skip)
                .collect()
        };
        Template {
            policy_at: at("svc-9999", 4),
            index_at: at("svc-9999-99", 9),
            version_at: at("999999999999", 0),
            uid_at: at("009999000099", 0),
            bytes: bytes.clone(),
        }
    }

    /// The pod alone, as a list's item.
    fn object(&self, policy: usize, index: usize, version: u64) -> Vec<u8> {
        let line = self.render(policy, index, version);
        let prefix = br#"{"type":"MODIFIED","object":"#.len();
        line[prefix..line.len() - 2].to_vec()
    }

    fn render(&self, policy: usize, index: usize, version: u64) -> Bytes {
        let mut b = self.bytes.clone();
        for &at in &self.policy_at {
            put(&mut b, at, policy as u64, 4);
        }
        for &at in &self.index_at {
            put(&mut b, at, index as u64, 2);
        }
        for &at in &self.version_at {
            put(&mut b, at, version, 12);
        }
        for &at in &self.uid_at {
            put(&mut b, at, policy as u64, 6);
            put(&mut b, at + 6, index as u64, 6);
        }
        Bytes::from(b)
    }
}

struct Nowhere;

impl Sink for Nowhere {
    fn append(&mut self, _: &Record) -> Result<(), AuditError> {
        Ok(())
    }
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted[idx.min(sorted.len() - 1)]
}

struct Figures {
    /// The process before the operator starts: the runtime, this driver, the binary.
    rss_before_kib: u64,
    throughput: f64,
    latencies: Vec<Duration>,
    rss_loaded_kib: u64,
    rss_after_kib: u64,
    peak_kib: u64,
    live_before_mib: usize,
    live_loaded_mib: usize,
    live_after_mib: usize,
    event_bytes: usize,
}

async fn measure(size: Size) -> Figures {
    let rss_before_kib = rss_kib("VmRSS:");
    let live_before_mib = live_mib();
    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    let (deleted_tx, mut deleted) = mpsc::unbounded_channel();
    let items: Vec<Value> = (0..size.policies).map(policy).collect();
    let cluster = Arc::new(Cluster {
        size,
        running: Template::new(false),
        one_policy: Bytes::from(serde_json::to_vec(&items[0]).unwrap_or_default()),
        policies: Bytes::from(
            serde_json::to_vec(&json!({ "apiVersion": "salve.dev/v1alpha1", "kind": "RemediationPolicyList", "metadata": { "resourceVersion": "1" }, "items": items }))
                .unwrap_or_default(),
        ),
        watches: Mutex::new(HashMap::new()),
        opened: opened_tx,
        deleted: deleted_tx,
        silent: Mutex::new(Vec::new()),
    });
    // The policies as JSON values are this driver's, not the operator's: the RSS
    // measured is the operator's.
    drop(items);
    let serving = cluster.clone();
    let service = tower::service_fn(move |request: Request<kube::client::Body>| {
        let response = serving.answer(&request);
        async move { Ok::<_, Infallible>(response) }
    });
    let client = kube::Client::new(service, "web");
    let (stop_tx, stop_rx) = watch::channel(false);
    let options = OperatorOptions {
        client,
        namespace: Some("web".into()),
        limits: Limits {
            max_actions_per_minute: 1_000_000,
            max_concurrent: 1_000_000,
            dry_run: false,
        },
        journal_path: None,
        rotation: Rotation::default(),
        journal_sink: Some(Box::new(Nowhere)),
        instance: Some("bench".into()),
        retry: Retry::default(),
        cluster: None,
        web: salve::web::WebConfig {
            listen: None,
            status_page: false,
        },
    };
    let operator = tokio::spawn(run(options, stop_rx));

    // Every watch open: every pod listed and handed on.
    let mut covered = 0;
    while covered < size.policies {
        covered += opened.recv().await.expect("a watch opens");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_loaded_kib = rss_kib("VmRSS:");
    let live_loaded_mib = live_mib();
    let senders: Vec<mpsc::Sender<Bytes>> = {
        let watches = cluster.watches.lock().expect("lock");
        (0..size.policies).map(|p| watches[&p].clone()).collect()
    };

    // Throughput: running pods changing, round robin over the watches; then one crash
    // per watch, whose deletion is the last thing the load makes happen.
    let rounds = size.events / size.policies;
    let (running, crashing) = (Template::new(false), Template::new(true));
    let event_bytes = running.bytes.len();
    let started = Instant::now();
    let mut version = 2u64;
    for round in 0..rounds {
        for (p, sender) in senders.iter().enumerate() {
            version += 1;
            let line = running.render(p, round % size.pods_per_policy, version);
            sender.send(line).await.expect("the watch is open");
        }
    }
    for (p, sender) in senders.iter().enumerate() {
        version += 1;
        sender
            .send(crashing.render(p, 0, version))
            .await
            .expect("the watch is open");
    }
    for _ in 0..size.policies {
        deleted.recv().await.expect("a deletion");
    }
    let elapsed = started.elapsed();
    let throughput = (rounds * size.policies + size.policies) as f64 / elapsed.as_secs_f64();

    // Latency: one crash at a time, a pod not yet restarted, until its DELETE arrives.
    let mut latencies = Vec::with_capacity(size.latency_samples);
    for sample in 0..size.latency_samples {
        let p = sample % size.policies;
        let index = 1 + sample / size.policies;
        version += 1;
        let line = crashing.render(p, index, version);
        let name = format!("svc-{p:04}-{index:02}");
        let sent = Instant::now();
        senders[p].send(line).await.expect("the watch is open");
        loop {
            let (deleted_name, at) = deleted.recv().await.expect("a deletion");
            if deleted_name == name {
                latencies.push(at.duration_since(sent));
                break;
            }
        }
    }
    latencies.sort_unstable();
    let rss_after_kib = rss_kib("VmRSS:");
    let live_after_mib = live_mib();
    let peak_kib = rss_kib("VmHWM:");
    let _ = stop_tx.send(true);
    drop(senders);
    let _ = tokio::time::timeout(Duration::from_secs(10), operator).await;
    Figures {
        rss_before_kib,
        throughput,
        latencies,
        rss_loaded_kib,
        rss_after_kib,
        peak_kib,
        live_before_mib,
        live_loaded_mib,
        live_after_mib,
        event_bytes,
    }
}

/// The reference: the same events decoded and nothing else, on one thread, into `K`
/// (`k8s_openapi`'s whole Pod, or the operator's slim one).
fn decode_only<K>(events: usize) -> f64
where
    K: serde::de::DeserializeOwned + Clone + kube::Resource,
{
    let running = Template::new(false);
    let lines: Vec<Bytes> = (0..100)
        .map(|i| running.render(i, 0, 2 + i as u64))
        .collect();
    let started = Instant::now();
    let mut kept = 0usize;
    for i in 0..events {
        let text = std::str::from_utf8(&lines[i % lines.len()]).expect("UTF-8");
        let event: kube::api::WatchEvent<K> = serde_json::from_str(text).expect("a watch event");
        if let kube::api::WatchEvent::Modified(pod) = event {
            kept += pod.meta().name.as_ref().map_or(0, |n| n.len());
        }
    }
    std::hint::black_box(kept);
    events as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let size = if bench { FULL } else { SMOKE };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let figures = runtime.block_on(measure(size));
    // `cargo test --all-targets` runs this binary without `--bench` in a debug build:
    // then only check that a short run works, and print no figures that mean nothing.
    if !bench {
        assert_eq!(figures.latencies.len(), size.latency_samples);
        assert!(figures.throughput > 0.0);
        println!("operator benchmark: smoke run ok (use `make bench` for figures)");
        return;
    }
    let whole = decode_only::<k8s_openapi::api::core::v1::Pod>(size.events);
    let slim = decode_only::<salve::kubernetes::watched::Pod>(size.events);
    let verdict = |ok: bool| if ok { "PASS" } else { "MISSED" };
    let l = &figures.latencies;
    let (p50, p99, max) = (percentile(l, 0.50), percentile(l, 0.99), l[l.len() - 1]);
    println!("salve operator benchmark, two workers, the API server answering in-process");
    println!(
        "{} policies, {} pods ({} bytes of JSON per watch event), {} watch events, {} latency samples",
        size.policies,
        size.policies * size.pods_per_policy,
        figures.event_bytes,
        size.events,
        l.len()
    );
    println!(
        "  {:<26} {:>14}   {:<16} verdict",
        "figure", "measured", "target"
    );
    println!(
        "  {:<26} {:>9.0} ev/s   {:<16} {}   (reference: decoding alone, one thread: {:.0} ev/s into k8s_openapi Pods, {:.0} ev/s into salve's)",
        "throughput",
        figures.throughput,
        ">= 50000 ev/s",
        verdict(figures.throughput >= 50_000.0),
        whole,
        slim
    );
    println!("  {:<26} {:>11} µs", "event -> DELETE p50", p50.as_micros());
    println!(
        "  {:<26} {:>11} µs   {:<16} {}",
        "event -> DELETE p99",
        p99.as_micros(),
        "<= 1000 µs",
        verdict(p99 <= Duration::from_millis(1))
    );
    println!("  {:<26} {:>11} µs", "event -> DELETE max", max.as_micros());
    println!(
        "  {:<26} {:>11} MB   {:<16} {}   (live heap {} MB)",
        "RSS, every pod known",
        figures.rss_after_kib / 1024,
        "<= 64 MB",
        verdict(figures.rss_after_kib <= 64 * 1024),
        figures.live_after_mib
    );
    println!(
        "  {:<26} {:>11} MB                           (live heap {} MB)",
        "RSS after the listing",
        figures.rss_loaded_kib / 1024,
        figures.live_loaded_mib
    );
    println!("  {:<26} {:>11} MB", "RSS peak", figures.peak_kib / 1024);
    println!(
        "  {:<26} {:>11} MB                           (live heap {} MB)",
        "RSS before the operator",
        figures.rss_before_kib / 1024,
        figures.live_before_mib
    );
}
