//! The positioned decoder (files, and custom resources through `decode_resource`) and
//! serde (`Policy: Deserialize`, then `validate`) must accept and reject the same
//! documents, and read an accepted one into the same policy. serde stops at the first
//! error, the decoder reports them all; what they agree on is the verdict and the
//! meaning.
//!
//! Checked on every policy file in the repository, and on generated documents, each a
//! valid policy put through up to three mutations (a key removed, renamed, added; a
//! value replaced by another type, a bound, an empty list, `null`).

use proptest::prelude::*;
use salve_core::policy::{self, Policy};
use serde_json::{json, Value as J};
use std::path::{Path, PathBuf};

/// What a reader made of a document: the policy's meaning, or its messages.
#[derive(Debug, PartialEq)]
enum Verdict {
    Accepted(String),
    Rejected(Vec<String>),
}

impl Verdict {
    fn accepted(&self) -> bool {
        matches!(self, Verdict::Accepted(_))
    }
}

/// The meaning of a policy: everything but where it was read from.
fn meaning(p: &Policy) -> String {
    format!(
        "{:?} {:?} {:?} {:?}",
        p.api_version, p.kind, p.metadata, p.spec
    )
}

fn by_serde(doc: &J) -> Verdict {
    match serde_json::from_value::<Policy>(doc.clone()) {
        Ok(p) => {
            let violations = policy::validate(&p);
            if violations.is_empty() {
                Verdict::Accepted(meaning(&p))
            } else {
                Verdict::Rejected(violations.into_iter().map(|v| v.message).collect())
            }
        }
        Err(e) => Verdict::Rejected(vec![e.to_string()]),
    }
}

fn by_resource_decoder(doc: &J) -> Verdict {
    match policy::decode_resource(doc, "default/test") {
        Ok(p) => Verdict::Accepted(meaning(&p)),
        Err(d) => {
            let mut messages: Vec<String> = d.0.into_iter().map(|d| d.message).collect();
            messages.sort();
            Verdict::Rejected(messages)
        }
    }
}

/// The file decoder, on the document written out as text (JSON is YAML).
fn by_file_decoder(doc: &J) -> Verdict {
    let text = serde_json::to_string_pretty(doc).expect("a JSON value prints");
    match policy::parse_file(Path::new("doc.yaml"), &text) {
        (policies, errors) if errors.is_empty() && policies.len() == 1 => {
            Verdict::Accepted(meaning(&policies[0]))
        }
        (_, errors) => {
            let mut messages: Vec<String> = errors.into_iter().map(|d| d.message).collect();
            messages.sort();
            Verdict::Rejected(messages)
        }
    }
}

fn assert_agree(doc: &J) {
    let serde = by_serde(doc);
    let resource = by_resource_decoder(doc);
    let file = by_file_decoder(doc);
    let show = serde_json::to_string_pretty(doc).unwrap_or_default();
    assert_eq!(
        serde.accepted(),
        resource.accepted(),
        "serde and the decoder disagree on\n{show}\nserde: {serde:?}\ndecoder: {resource:?}"
    );
    if let (Verdict::Accepted(a), Verdict::Accepted(b)) = (&serde, &resource) {
        assert_eq!(a, b, "both accept but read different policies from\n{show}");
    }
    // The same decoder on the same document: the same messages, whether it came as a
    // file or from the API server.
    assert_eq!(
        file, resource,
        "file and resource readings differ on\n{show}"
    );
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn policy_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a fixture directory reads") {
        let path = entry.expect("a directory entry reads").path();
        if path.is_dir() {
            policy_files(&path, found);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push(path);
        }
    }
}

#[test]
fn every_policy_file_in_the_repository_reads_the_same_both_ways() {
    let mut files = Vec::new();
    policy_files(&repository().join("policies"), &mut files);
    policy_files(&repository().join("tests/fixtures/policies"), &mut files);
    policy_files(&repository().join("tests/fixtures/simulate"), &mut files);
    assert!(files.len() > 20, "found only {files:?}");
    let (mut accepted, mut rejected) = (0, 0);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a fixture reads");
        let Ok(docs) = policy::parse_documents(&text) else {
            continue; // YAML syntax errors never reach either reader
        };
        let (from_file, _) = policy::parse_file(&file, &text);
        let mut by_serde_in_order = Vec::new();
        for doc in &docs {
            // A key written twice has no JSON form; the decoder rejects it itself.
            let Some(json) = doc.to_json() else { continue };
            assert_agree(&json);
            match by_serde(&json) {
                Verdict::Accepted(m) => {
                    accepted += 1;
                    by_serde_in_order.push(m);
                }
                Verdict::Rejected(_) => rejected += 1,
            }
        }
        // The file as written (YAML, with its own scalars and comments) means the same
        // policies, in the same order; a document with no JSON form (a key written
        // twice) is one the file decoder refuses too.
        let from_file: Vec<String> = from_file.iter().map(meaning).collect();
        assert_eq!(from_file, by_serde_in_order, "{}", file.display());
    }
    assert!(
        accepted >= 15 && rejected >= 15,
        "accepted {accepted}, rejected {rejected}"
    );
}

#[test]
fn a_custom_resource_gets_the_files_messages_at_json_paths() {
    let doc = json!({
        "apiVersion": "salve.dev/v1alpha1",
        "kind": "RemediationPolicy",
        "metadata": { "name": "php" },
        "spec": {
            "target": { "unit": "php8.2-fpm.service" },
            "trigger": [{ "http": { "url": "http://127.0.0.1/", "timeout": "9s" } }],
            "actions": [{ "restrat": {} }],
            "guard": { "cooldown": "2h", "window": "1h", "maxAttempts": 0 }
        }
    });
    let errors = policy::decode_resource(&doc, "web/php").unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(|d| d.to_string()).collect();
    assert!(
        lines.contains(&"web/php: spec.actions[0].restrat: unknown action `restrat`, did you mean `restart`? (expected one of: start, stop, restart, tryRestart, reload, resetFailed, kill, enable, disable, notify, exec, nginxEdit, phpFpmEdit, alignFastcgiPass, deletePod, rolloutRestart, scale, raiseMemoryLimit, cordon, configMapEdit, drain, ready, setWeight)".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(
            &"web/php: spec.guard.maxAttempts: 0 is out of range: expected 1 to 1000".to_string()
        ),
        "{lines:#?}"
    );
    // A policy with a structural error is not validated further; fix it and the
    // cross-field rules speak, at their paths.
    let mut fixed = doc.clone();
    fixed["spec"]["actions"] = json!([{ "restart": {} }]);
    fixed["spec"]["guard"]["maxAttempts"] = json!(3);
    let errors = policy::decode_resource(&fixed, "web/php").unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        [
            "web/php: spec.guard.cooldown: guard: cooldown (2h) must not exceed window (1h)",
            "web/php: spec.trigger[0].http.timeout: timeout: timeout (9s) must not exceed interval (5s), or probes would overlap",
        ]
    );
}

// --- generated documents ---------------------------------------------------------

fn duration() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(json!("250ms")),
        Just(json!("2s")),
        Just(json!("10s")),
        Just(json!("5m")),
        Just(json!("1h")),
    ]
}

fn condition() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(json!({ "unit": { "activeState": ["failed"] } })),
        Just(json!({ "unit": { "subState": ["dead"], "unitFileState": ["disabled"] } })),
        (1u32..5).prop_map(|failures| json!({ "http": {
            "url": "http://127.0.0.1:8080/ping.php", "failures": failures,
            "interval": "5s", "timeout": "2s", "status": [502, 503]
        }})),
        Just(
            json!({ "log": { "path": "/var/log/nginx/error.log", "match": "nginx.too_big_header" } })
        ),
        Just(
            json!({ "log": { "path": "/var/log/x.log", "pattern": "upstream .* failed", "count": 2, "within": "1m" } })
        ),
    ]
}

fn trigger() -> impl Strategy<Value = J> {
    (condition(), proptest::option::of(duration())).prop_map(|(mut c, hold)| {
        if let Some(h) = hold {
            c["for"] = h;
        }
        c
    })
}

fn action() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(json!({ "restart": {} })),
        Just(json!({ "restart": null })),
        Just(json!({ "start": {} })),
        Just(json!({ "resetFailed": {} })),
        Just(json!({ "kill": { "signal": "KILL", "whom": "main" } })),
        Just(json!({ "kill": null })),
        Just(json!({ "notify": { "webhook": "http://127.0.0.1:9093/hook", "timeout": "3s" } })),
        Just(json!({ "exec": { "command": ["/bin/true", "x"], "env": ["A=b"], "timeout": "5s" } })),
        Just(
            json!({ "drain": { "haproxy": { "socket": "/run/haproxy/admin.sock", "backend": "web", "server": "node-a" },
            "ramp": { "steps": 3, "interval": "1s" } } })
        ),
        Just(
            json!({ "drain": { "nginx": { "file": "/etc/nginx/conf.d/lb.conf", "upstream": "web", "server": "10.0.0.2:80" } } })
        ),
        Just(
            json!({ "setWeight": { "haproxy": { "socket": "/run/haproxy/admin.sock", "backend": "web", "server": "node-a" }, "weight": "50%" } })
        ),
        Just(
            json!({ "setWeight": { "nginx": { "file": "/etc/nginx/conf.d/lb.conf", "upstream": "web", "server": "10.0.0.2:80", "unit": "nginx.service" }, "weight": 5 } })
        ),
        Just(
            json!({ "ready": { "haproxy": { "socket": "/run/haproxy/admin.sock", "backend": "web", "server": "node-a" } } })
        ),
    ]
}

fn config_edit() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(
            json!({ "nginxEdit": { "file": "/etc/nginx/nginx.conf", "context": "http",
            "raise": [{ "directive": "fastcgi_buffer_size", "factor": 2, "max": "64k" }] } })
        ),
        Just(
            json!({ "nginxEdit": { "file": "/etc/nginx/sites-enabled/default", "context": "server",
            "set": [{ "directive": "fastcgi_read_timeout", "value": "120s" }], "apply": "restart" } })
        ),
        Just(
            json!({ "phpFpmEdit": { "file": "/etc/php/8.2/fpm/pool.d/www.conf", "pool": "www",
            "raise": [{ "key": "pm.max_children", "factor": 1.5, "max": 50 }],
            "set": [{ "key": "listen.mode", "value": "0660" }] } })
        ),
        Just(
            json!({ "alignFastcgiPass": { "file": "/etc/nginx/sites-enabled/default", "pool": "www",
            "unit": "nginx.service" } })
        ),
    ]
}

fn verify() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(json!({ "http": { "url": "http://127.0.0.1/", "status": [200], "within": "10s" } })),
        Just(json!({ "unit": { "activeState": ["active"], "within": "5s" } })),
        Just(json!({ "http": { "url": "http://127.0.0.1/" }, "unit": {} })),
    ]
}

fn guard() -> impl Strategy<Value = J> {
    (1u32..10, 1.0f64..4.0).prop_map(|(attempts, backoff)| {
        json!({ "cooldown": "10s", "maxAttempts": attempts, "window": "10m", "backoff": backoff })
    })
}

/// A valid policy: the starting point the mutations break.
fn policy_doc() -> impl Strategy<Value = J> {
    (
        proptest::collection::vec(trigger(), 1..3),
        proptest::collection::vec(action(), 1..3),
        proptest::option::of(config_edit()),
        proptest::option::of(verify()),
        proptest::option::of(guard()),
        proptest::option::of(proptest::collection::vec(action(), 0..2)),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(trigger, mut actions, edit, verify, guard, escalate, dry)| {
                let mut spec =
                    json!({ "target": { "unit": "php8.2-fpm.service" }, "trigger": trigger });
                if let Some(edit) = edit {
                    actions.push(edit);
                    spec["verify"] = json!({ "unit": {} });
                }
                spec["actions"] = J::Array(actions);
                if let Some(v) = verify {
                    spec["verify"] = v;
                }
                if let Some(g) = guard {
                    spec["guard"] = g;
                }
                if let Some(e) = escalate {
                    spec["escalate"] = J::Array(e);
                }
                if let Some(d) = dry {
                    spec["dryRun"] = J::Bool(d);
                }
                json!({
                    "apiVersion": "salve.dev/v1alpha1",
                    "kind": "RemediationPolicy",
                    "metadata": { "name": "generated", "labels": { "tier": "web" } },
                    "spec": spec
                })
            },
        )
}

/// A Kubernetes policy: its own targets, an HTTP trigger, the actions it may take.
fn kubernetes_doc() -> impl Strategy<Value = J> {
    let target = prop_oneof![
        Just(json!({ "pods": { "namespace": "web", "selector": { "app": "php" } } })),
        Just(json!({ "pods": { "name": "php-0" } })),
        Just(json!({ "deployment": { "namespace": "web", "name": "php" } })),
        Just(json!({ "statefulset": { "selector": { "app.kubernetes.io/name": "mariadb" } } })),
        Just(json!({ "node": { "name": "worker-1" } })),
        Just(json!({ "node": { "selector": { "pool": "web" } } })),
    ];
    let action = prop_oneof![
        Just(json!({ "restart": {} })),
        Just(json!({ "notify": { "webhook": "http://127.0.0.1:9093/hook" } })),
        Just(json!({ "drain": { "gateway": { "route": "shop", "service": "php", "port": 80 } } })),
        Just(
            json!({ "setWeight": { "gateway": { "namespace": "web", "route": "shop", "service": "php" }, "weight": 0 } })
        ),
    ];
    let trigger = prop_oneof![
        Just(json!({ "http": { "url": "http://php.web.svc/ping" } })),
        Just(json!({ "pod": { "reason": ["CrashLoopBackOff", "OOMKilled"], "restarts": 3 } })),
        Just(json!({ "pod": { "restarts": 5 }, "for": "1m" })),
        Just(json!({ "workload": { "unavailable": 2 } })),
        Just(json!({ "workload": {} })),
        Just(json!({ "node": { "condition": "MemoryPressure", "status": ["True"] } })),
        Just(json!({ "node": {} })),
    ];
    (
        target,
        proptest::collection::vec(action, 1..3),
        any::<bool>(),
        trigger,
    )
        .prop_map(|(target, actions, namespaced, trigger)| {
            let mut metadata = json!({ "name": "in-cluster" });
            if namespaced {
                metadata["namespace"] = json!("web");
            }
            json!({
                "apiVersion": "salve.dev/v1alpha1",
                "kind": "RemediationPolicy",
                "metadata": metadata,
                "spec": {
                    "target": target,
                    "trigger": [trigger],
                    "actions": actions,
                    "verify": { "http": { "url": "http://php.web.svc/ping" } }
                }
            })
        })
}

/// Values a mutation writes: other types, the edges of every bound, empty things.
fn replacement() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(json!(null)),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-1)),
        Just(json!(99)),
        Just(json!(100)),
        Just(json!(599)),
        Just(json!(600)),
        Just(json!(1000)),
        Just(json!(1001)),
        Just(json!(100000)),
        Just(json!(100001)),
        Just(json!(5_000_000_000u64)),
        Just(json!(0.0)),
        Just(json!(0.5)),
        Just(json!(1.1)),
        Just(json!(10.5)),
        Just(json!(16.0)),
        Just(json!(17)),
        Just(json!(true)),
        Just(json!("")),
        Just(json!(" ")),
        Just(json!("0")),
        Just(json!("0s")),
        Just(json!("10")),
        Just(json!("3")),
        Just(json!("10s")),
        Just(json!("1h")),
        Just(json!("366d")),
        Just(json!("367d")),
        Just(json!("relative/path")),
        Just(json!("/abs/path")),
        Just(json!("http://127.0.0.1/")),
        Just(json!("https://x/")),
        Just(json!("failed")),
        Just(json!("www")),
        Just(json!("[www]")),
        Just(json!("a;b")),
        Just(json!("include")),
        Just(json!("(unclosed")),
        Just(json!("nginx.service")),
        Just(json!("NAME=value")),
        Just(json!([])),
        Just(json!(["x"])),
        Just(json!([200])),
        Just(json!({})),
        Just(json!({ "restart": {} })),
        Just(json!({ "nginxEdit": { "file": "/x", "context": "http" } })),
        Just(json!({ "a": "b" })),
        Just(json!({ "a": 1 })),
        Just(json!({ "app": "-x" })),
        Just(json!("Php-0")),
        Just(json!("web.x")),
        Just(json!({ "pods": { "name": "p" } })),
        Just(json!({ "unit": "nginx.service" })),
        Just(json!("OOMKilled")),
        Just(json!(["True", "Unknown"])),
        Just(json!("Maybe")),
        Just(json!({ "pod": { "restarts": 1 } })),
    ]
}

fn new_key() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("cooldwn"),
        Just("extra"),
        Just("unit"),
        Just("http"),
        Just("log"),
        Just("for"),
        Just("status"),
        Just("pattern"),
        Just("match"),
        Just("verify"),
        Just("within"),
        Just("raise"),
        Just("set"),
        Just("status"),
        Just("uid"),
        Just("namespace"),
        Just("annotations"),
        Just("managedFields"),
        Just("labels"),
        Just("name"),
        Just("selector"),
        Just("pods"),
        Just("node"),
        Just("pod"),
        Just("workload"),
        Just("reason"),
        Just("restarts"),
        Just("unavailable"),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove(usize),
    Replace(usize, J),
    AddKey(usize, &'static str, J),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), replacement()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        (any::<usize>(), new_key(), replacement())
            .prop_map(|(at, k, v)| Mutation::AddKey(at, k, v)),
    ]
}

/// JSON pointers of every value below the root.
fn pointers(value: &J, at: String, out: &mut Vec<String>) {
    match value {
        J::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        J::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

fn apply(doc: &mut J, m: &Mutation) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let pick = |i: usize| all[i % all.len()].clone();
    match m {
        Mutation::Remove(i) => {
            let p = pick(*i);
            let (parent, last) = p.rsplit_once('/').expect("a pointer has a slash");
            match doc.pointer_mut(parent) {
                Some(J::Object(map)) => {
                    map.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(J::Array(items)) => {
                    if let Ok(n) = last.parse::<usize>() {
                        items.remove(n);
                    }
                }
                _ => {}
            }
        }
        Mutation::Replace(i, v) => {
            if let Some(slot) = doc.pointer_mut(&pick(*i)) {
                *slot = v.clone();
            }
        }
        Mutation::AddKey(i, k, v) => {
            // Into the object at the pointer, or the one holding it.
            let p = pick(*i);
            let target = match doc.pointer(&p) {
                Some(J::Object(_)) => p,
                _ => p
                    .rsplit_once('/')
                    .map(|(parent, _)| parent.to_string())
                    .unwrap_or_default(),
            };
            if let Some(J::Object(map)) = doc.pointer_mut(&target) {
                map.insert(k.to_string(), v.clone());
            }
        }
    }
}

#[test]
fn generated_and_mutated_documents_read_the_same_both_ways() {
    use proptest::test_runner::{Config, TestRunner};
    let strategy = (
        prop_oneof![3 => policy_doc(), 1 => kubernetes_doc()],
        proptest::collection::vec(mutation(), 0..4),
    );
    let mut runner = TestRunner::new(Config {
        cases: 1500,
        // Shrunk failures print in full; there is no source file to persist them beside.
        failure_persistence: None,
        ..Config::default()
    });
    let accepted = std::cell::Cell::new(0u32);
    let rejected = std::cell::Cell::new(0u32);
    let result = runner.run(&strategy, |(mut doc, mutations)| {
        for m in &mutations {
            apply(&mut doc, m);
        }
        assert_agree(&doc);
        let cell = if by_serde(&doc).accepted() {
            &accepted
        } else {
            &rejected
        };
        cell.set(cell.get() + 1);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Both verdicts are common, so agreement on each means something.
    let (a, r) = (accepted.get(), rejected.get());
    eprintln!("generated documents: {a} accepted, {r} rejected");
    assert!(a >= 300 && r >= 300, "accepted {a}, rejected {r}");
}
