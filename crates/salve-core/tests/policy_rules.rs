//! Every rule of the validation pass, broken one at a time: the exact message at the
//! exact path, from `validate` on a policy serde read (nothing else checks there) and
//! from the decoder a custom resource goes through. Each bound is also tried at its
//! edges, which must pass.

use salve_core::policy::{self, Policy};
use serde_json::{json, Value as J};

/// A valid policy using every kind of trigger and action the rules look into.
fn base() -> J {
    json!({
        "apiVersion": "salve.dev/v1alpha1",
        "kind": "RemediationPolicy",
        "metadata": { "name": "all-rules" },
        "spec": {
            "target": { "unit": "php8.2-fpm.service" },
            "trigger": [
                { "unit": { "activeState": ["failed"], "subState": ["dead"] } },
                { "http": { "url": "http://127.0.0.1/", "status": [502], "failures": 3,
                            "interval": "5s", "timeout": "2s" } },
                { "log": { "path": "/var/log/nginx/error.log", "pattern": "x", "count": 1,
                           "within": "1m" } }
            ],
            "actions": [
                { "notify": { "webhook": "http://127.0.0.1:9/", "timeout": "1s" } },
                { "exec": { "command": ["/bin/true"], "timeout": "1s" } },
                { "nginxEdit": { "file": "/etc/nginx/nginx.conf", "context": "http",
                    "raise": [{ "directive": "fastcgi_buffer_size", "factor": 2, "max": "64k" }],
                    "set": [{ "directive": "fastcgi_read_timeout", "value": "60s" }],
                    "config": "/etc/nginx/nginx.conf" } },
                { "phpFpmEdit": { "file": "/etc/php/8.2/fpm/pool.d/www.conf", "pool": "www",
                    "raise": [{ "key": "pm.max_children", "factor": 2, "max": 50 }],
                    "set": [{ "key": "pm", "value": "static" }],
                    "config": "/etc/php/8.2/fpm/php-fpm.conf" } },
                { "alignFastcgiPass": { "file": "/etc/nginx/sites-enabled/default", "pool": "www",
                    "fpmConfig": "/etc/php/8.2/fpm/php-fpm.conf", "config": "/etc/nginx/nginx.conf" } }
            ],
            "verify": {
                "http": { "url": "http://127.0.0.1/", "status": [200], "within": "10s" },
                "unit": { "activeState": ["active"], "within": "10s" }
            },
            "guard": { "cooldown": "10s", "maxAttempts": 3, "window": "10m", "backoff": 2 },
            "escalate": [{ "notify": { "webhook": "http://127.0.0.1:9/", "timeout": "1s" } }]
        }
    })
}

fn with(patches: &[(&str, J)]) -> J {
    let mut doc = base();
    for (pointer, value) in patches {
        match pointer.strip_suffix("/-") {
            Some(list) => doc
                .pointer_mut(list)
                .and_then(J::as_array_mut)
                .unwrap_or_else(|| panic!("no list at {list}"))
                .push(value.clone()),
            None => {
                *doc.pointer_mut(pointer)
                    .unwrap_or_else(|| panic!("no value at {pointer}")) = value.clone()
            }
        }
    }
    doc
}

/// (path, message) of every violation `validate` finds in the policy serde reads.
fn by_validate(doc: &J) -> Vec<(String, String)> {
    let policy: Policy = serde_json::from_value(doc.clone()).expect("serde reads the document");
    policy::validate(&policy)
        .into_iter()
        .map(|v| (v.at.to_string(), v.message))
        .collect()
}

/// (path, message) of every error the resource decoder reports.
fn by_decoder(doc: &J) -> Vec<(String, String)> {
    match policy::decode_resource(doc, "ns/all-rules") {
        Ok(_) => Vec::new(),
        Err(d) => {
            d.0.into_iter()
                .map(|d| (d.path.unwrap_or_default(), d.message))
                .collect()
        }
    }
}

#[track_caller]
fn breaks(patches: &[(&str, J)], path: &str, message: &str) {
    let doc = with(patches);
    let expected = vec![(path.to_string(), message.to_string())];
    assert_eq!(by_validate(&doc), expected, "validate, after {patches:?}");
    assert_eq!(by_decoder(&doc), expected, "decoder, after {patches:?}");
}

#[track_caller]
fn keeps(patches: &[(&str, J)]) {
    let doc = with(patches);
    assert_eq!(by_validate(&doc), [], "validate, after {patches:?}");
    assert_eq!(by_decoder(&doc), [], "decoder, after {patches:?}");
}

const T: &str = "/spec/trigger";
const A: &str = "/spec/actions";

#[test]
fn the_base_policy_keeps_every_rule() {
    keeps(&[]);
}

#[test]
fn lists_that_say_something_may_not_be_empty() {
    breaks(
        &[("/spec/trigger", json!([]))],
        "spec.trigger",
        "empty list: at least one trigger condition is required",
    );
    breaks(
        &[("/spec/actions", json!([]))],
        "spec.actions",
        "empty list: at least one action is required",
    );
    breaks(
        &[(&format!("{A}/1/exec/command"), json!([]))],
        "spec.actions[1].exec.command",
        "empty list: at least one command argument is required",
    );
    keeps(&[("/spec/escalate", json!([]))]);
}

#[test]
fn config_edits_need_verify_and_stay_out_of_escalate() {
    let mut doc = base();
    doc["spec"]
        .as_object_mut()
        .expect("spec is a mapping")
        .remove("verify");
    let expected = vec![(
        "spec.actions".to_string(),
        "a config edit needs `verify`: without it an edit that breaks the site would be kept"
            .to_string(),
    )];
    assert_eq!(by_validate(&doc), expected);
    assert_eq!(by_decoder(&doc), expected);
    // Without the edits, no verify is needed.
    doc["spec"]["actions"] = json!([{ "restart": {} }]);
    assert_eq!(by_validate(&doc), []);
    assert_eq!(by_decoder(&doc), []);

    let align = base()["spec"]["actions"][4].clone();
    breaks(
        &[("/spec/escalate/-", align)],
        "spec.escalate",
        "escalate may not edit configs: escalation runs once, unverified and without an outcome record; put the edit in actions",
    );
    breaks(
        &[("/spec/verify", json!({}))],
        "spec.verify",
        "verify needs at least one of: http, unit, ready",
    );
    keeps(&[("/spec/verify", json!({ "unit": {} }))]);
    keeps(&[("/spec/verify", json!({ "http": { "url": "http://x/" } }))]);
}

#[test]
fn unit_conditions() {
    breaks(
        &[(&format!("{T}/0/unit"), json!({}))],
        "spec.trigger[0].unit",
        "a unit condition needs at least one of: activeState, subState, unitFileState",
    );
    keeps(&[(&format!("{T}/0/unit"), json!({ "subState": ["dead"] }))]);
    keeps(&[(
        &format!("{T}/0/unit"),
        json!({ "unitFileState": ["disabled"] }),
    )]);
    keeps(&[(&format!("{T}/0/unit"), json!({ "activeState": ["failed"] }))]);
    breaks(
        &[(&format!("{T}/0/unit/subState"), json!(["dead", " "]))],
        "spec.trigger[0].unit.subState[1]",
        "a sub state must not be empty",
    );
}

#[test]
fn http_conditions() {
    let http = format!("{T}/1/http");
    breaks(
        &[(&format!("{http}/status"), json!([502, 99]))],
        "spec.trigger[1].http.status[1]",
        "99 is out of range: expected 100 to 599",
    );
    breaks(
        &[(&format!("{http}/status"), json!([600]))],
        "spec.trigger[1].http.status[0]",
        "600 is out of range: expected 100 to 599",
    );
    keeps(&[(&format!("{http}/status"), json!([100, 599]))]);
    breaks(
        &[(&format!("{http}/failures"), json!(0))],
        "spec.trigger[1].http.failures",
        "0 is out of range: expected 1 to 1000",
    );
    breaks(
        &[(&format!("{http}/failures"), json!(1001))],
        "spec.trigger[1].http.failures",
        "1001 is out of range: expected 1 to 1000",
    );
    keeps(&[(&format!("{http}/failures"), json!(1))]);
    keeps(&[(&format!("{http}/failures"), json!(1000))]);
    breaks(
        &[(&format!("{http}/timeout"), json!("0s"))],
        "spec.trigger[1].http.timeout",
        "must be longer than 0s",
    );
    // A zero interval is also shorter than the timeout; both are said.
    let doc = with(&[(&format!("{http}/interval"), json!("0s"))]);
    let expected = vec![
        (
            "spec.trigger[1].http.interval".to_string(),
            "must be longer than 0s".to_string(),
        ),
        (
            "spec.trigger[1].http.timeout".to_string(),
            "timeout: timeout (2s) must not exceed interval (0s), or probes would overlap"
                .to_string(),
        ),
    ];
    assert_eq!(by_validate(&doc), expected);
    breaks(
        &[(&format!("{http}/timeout"), json!("6s"))],
        "spec.trigger[1].http.timeout",
        "timeout: timeout (6s) must not exceed interval (5s), or probes would overlap",
    );
    keeps(&[(&format!("{http}/timeout"), json!("5s"))]);
}

#[test]
fn a_rule_broken_by_a_default_points_at_the_value_written() {
    // Only the interval is written; the default timeout (2s) exceeds it.
    let mut doc = base();
    doc["spec"]["trigger"][1]["http"] = json!({ "url": "http://x/", "interval": "1s" });
    let message = "timeout: timeout (2s) must not exceed interval (1s), or probes would overlap";
    assert_eq!(
        by_validate(&doc),
        [(
            "spec.trigger[1].http.timeout".to_string(),
            message.to_string()
        )]
    );
    assert_eq!(
        by_decoder(&doc),
        [(
            "spec.trigger[1].http.interval".to_string(),
            message.to_string()
        )]
    );
    // Nothing written: the rule points at the mapping it is about.
    let mut doc = base();
    doc["spec"]["guard"] = json!({ "window": "5s" });
    let message = "guard: cooldown (10s) must not exceed window (5s)";
    assert_eq!(
        by_decoder(&doc),
        [("spec.guard.window".to_string(), message.to_string())]
    );
}

#[test]
fn log_conditions() {
    let log = format!("{T}/2/log");
    breaks(
        &[(&format!("{log}/path"), json!("var/log/x"))],
        "spec.trigger[2].log.path",
        "log path \"var/log/x\" must be absolute",
    );
    breaks(
        &[(&format!("{log}/path"), json!(" "))],
        "spec.trigger[2].log.path",
        "a log path must not be empty",
    );
    breaks(
        &[(&format!("{log}/count"), json!(0))],
        "spec.trigger[2].log.count",
        "0 is out of range: expected 1 to 100000",
    );
    breaks(
        &[(&format!("{log}/count"), json!(100_001))],
        "spec.trigger[2].log.count",
        "100001 is out of range: expected 1 to 100000",
    );
    keeps(&[(&format!("{log}/count"), json!(100_000))]);
    breaks(
        &[(&format!("{log}/within"), json!("0s"))],
        "spec.trigger[2].log.within",
        "must be longer than 0s",
    );
}

#[test]
fn notify_and_exec() {
    breaks(
        &[(&format!("{A}/0/notify/timeout"), json!("0s"))],
        "spec.actions[0].notify.timeout",
        "must be longer than 0s",
    );
    breaks(
        &[(&format!("{A}/1/exec/command"), json!(["true"]))],
        "spec.actions[1].exec.command",
        "exec command \"true\" must be an absolute path",
    );
    breaks(
        &[(&format!("{A}/1/exec/timeout"), json!("0s"))],
        "spec.actions[1].exec.timeout",
        "must be longer than 0s",
    );
    // The same rules hold in escalate.
    breaks(
        &[("/spec/escalate/0/notify/timeout", json!("0s"))],
        "spec.escalate[0].notify.timeout",
        "must be longer than 0s",
    );
}

#[test]
fn nginx_edits() {
    let edit = format!("{A}/2/nginxEdit");
    let at = |field: &str| format!("spec.actions[2].nginxEdit.{field}");
    breaks(
        &[(&format!("{edit}/file"), json!("nginx.conf"))],
        &at("file"),
        "\"nginx.conf\" must be an absolute path",
    );
    breaks(
        &[(&format!("{edit}/config"), json!(""))],
        &at("config"),
        "a path must not be empty",
    );
    breaks(
        &[(&format!("{edit}/context"), json!(" "))],
        &at("context"),
        "context must not be empty",
    );
    breaks(
        &[(&format!("{edit}/raise/0/factor"), json!(1.0))],
        &at("raise[0].factor"),
        "1 is out of range: expected 1.1 to 16",
    );
    breaks(
        &[(&format!("{edit}/raise/0/factor"), json!(16.5))],
        &at("raise[0].factor"),
        "16.5 is out of range: expected 1.1 to 16",
    );
    keeps(&[(&format!("{edit}/raise/0/factor"), json!(1.1))]);
    keeps(&[(&format!("{edit}/raise/0/factor"), json!(16))]);
    breaks(
        &[(&format!("{edit}/set/0/directive"), json!("include"))],
        &at("set[0].directive"),
        "salve does not set `include`: it changes what nginx runs, not how it heals (alignFastcgiPass fixes fastcgi_pass)",
    );
    breaks(
        &[(&format!("{edit}/set/0/value"), json!("1; include x"))],
        &at("set[0].value"),
        "value must not contain ';'",
    );
    breaks(
        &[
            (&format!("{edit}/raise"), json!([])),
            (&format!("{edit}/set"), json!([])),
        ],
        "spec.actions[2].nginxEdit",
        "a config edit needs at least one entry in raise or set",
    );
    keeps(&[(&format!("{edit}/raise"), json!([]))]);
    keeps(&[(&format!("{edit}/set"), json!([]))]);
}

#[test]
fn php_fpm_edits() {
    let edit = format!("{A}/3/phpFpmEdit");
    let at = |field: &str| format!("spec.actions[3].phpFpmEdit.{field}");
    breaks(
        &[(&format!("{edit}/file"), json!("www.conf"))],
        &at("file"),
        "\"www.conf\" must be an absolute path",
    );
    breaks(
        &[(&format!("{edit}/config"), json!("php-fpm.conf"))],
        &at("config"),
        "\"php-fpm.conf\" must be an absolute path",
    );
    breaks(
        &[(&format!("{edit}/pool"), json!("[www]"))],
        &at("pool"),
        "a pool name is the text between [ and ], without them",
    );
    breaks(
        &[(&format!("{edit}/raise/0/key"), json!("pm.max_childs"))],
        &at("raise[0].key"),
        "unknown raisable pool key `pm.max_childs`, did you mean `pm.max_children`? (expected one of: pm.max_children, pm.start_servers, pm.max_spare_servers, pm.max_requests, listen.backlog)",
    );
    breaks(
        &[(&format!("{edit}/raise/0/factor"), json!(20))],
        &at("raise[0].factor"),
        "20 is out of range: expected 1.1 to 16",
    );
    breaks(
        &[(&format!("{edit}/raise/0/max"), json!(0))],
        &at("raise[0].max"),
        "0 is out of range: expected 1 to 100000",
    );
    breaks(
        &[(&format!("{edit}/raise/0/max"), json!(100_001))],
        &at("raise[0].max"),
        "100001 is out of range: expected 1 to 100000",
    );
    keeps(&[(&format!("{edit}/raise/0/max"), json!(100_000))]);
    keeps(&[(&format!("{edit}/raise/0/max"), json!(1))]);
    breaks(
        &[(&format!("{edit}/set/0/key"), json!("user"))],
        &at("set[0].key"),
        "salve does not set `user`: only listen, listen.*, pm, pm.*, request_terminate_timeout and request_slowlog_timeout",
    );
    breaks(
        &[(&format!("{edit}/set/0/value"), json!("a\"b"))],
        &at("set[0].value"),
        "value must not contain '\"'",
    );
    breaks(
        &[
            (&format!("{edit}/raise"), json!([])),
            (&format!("{edit}/set"), json!([])),
        ],
        "spec.actions[3].phpFpmEdit",
        "a config edit needs at least one entry in raise or set",
    );
    keeps(&[(&format!("{edit}/raise"), json!([]))]);
    keeps(&[(&format!("{edit}/set"), json!([]))]);
}

#[test]
fn align_fastcgi_pass() {
    let align = format!("{A}/4/alignFastcgiPass");
    let at = |field: &str| format!("spec.actions[4].alignFastcgiPass.{field}");
    for field in ["file", "fpmConfig", "config"] {
        breaks(
            &[(&format!("{align}/{field}"), json!("relative"))],
            &at(field),
            "\"relative\" must be an absolute path",
        );
    }
    breaks(
        &[(&format!("{align}/pool"), json!(""))],
        &at("pool"),
        "pool must not be empty",
    );
}

#[test]
fn verifications() {
    breaks(
        &[("/spec/verify/http/status", json!([600]))],
        "spec.verify.http.status[0]",
        "600 is out of range: expected 100 to 599",
    );
    breaks(
        &[("/spec/verify/http/within", json!("0s"))],
        "spec.verify.http.within",
        "must be longer than 0s",
    );
    breaks(
        &[("/spec/verify/unit/within", json!("0s"))],
        "spec.verify.unit.within",
        "must be longer than 0s",
    );
}

#[test]
fn guards() {
    breaks(
        &[("/spec/guard/maxAttempts", json!(0))],
        "spec.guard.maxAttempts",
        "0 is out of range: expected 1 to 1000",
    );
    breaks(
        &[("/spec/guard/maxAttempts", json!(1001))],
        "spec.guard.maxAttempts",
        "1001 is out of range: expected 1 to 1000",
    );
    keeps(&[("/spec/guard/maxAttempts", json!(1))]);
    keeps(&[("/spec/guard/maxAttempts", json!(1000))]);
    breaks(
        &[("/spec/guard/backoff", json!(0.5))],
        "spec.guard.backoff",
        "0.5 is out of range: expected 1 to 10",
    );
    breaks(
        &[("/spec/guard/backoff", json!(10.5))],
        "spec.guard.backoff",
        "10.5 is out of range: expected 1 to 10",
    );
    keeps(&[("/spec/guard/backoff", json!(1))]);
    keeps(&[("/spec/guard/backoff", json!(10))]);
    breaks(
        &[
            ("/spec/guard/cooldown", json!("0s")),
            ("/spec/guard/window", json!("0s")),
        ],
        "spec.guard.window",
        "must be longer than 0s",
    );
    breaks(
        &[("/spec/guard/cooldown", json!("11m"))],
        "spec.guard.cooldown",
        "guard: cooldown (11m) must not exceed window (10m)",
    );
    keeps(&[("/spec/guard/cooldown", json!("10m"))]);
    keeps(&[("/spec/guard/cooldown", json!("0s"))]);
}

fn cluster(target: J, actions: J) -> J {
    json!({
        "apiVersion": "salve.dev/v1alpha1",
        "kind": "RemediationPolicy",
        "metadata": { "name": "in-cluster", "namespace": "web" },
        "spec": {
            "target": target,
            "trigger": [{ "http": { "url": "http://php.web.svc/" } }],
            "actions": actions
        }
    })
}

/// What a target may take: a restart, or for a node (which salve never reboots) a
/// notification.
fn fitting_actions(target: &J) -> J {
    if target.get("node").is_some() {
        json!([{ "notify": { "webhook": "http://alertmanager.monitoring.svc:9093/" } }])
    } else {
        json!([{ "restart": {} }])
    }
}

#[track_caller]
fn cluster_breaks(doc: J, expected: &[(&str, &str)]) {
    // Each reader keeps its own order (the model's, the document's); the set is the same.
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    let expected = sorted(
        expected
            .iter()
            .map(|(p, m)| (p.to_string(), m.to_string()))
            .collect(),
    );
    assert_eq!(sorted(by_validate(&doc)), expected, "validate");
    assert_eq!(sorted(by_decoder(&doc)), expected, "decoder");
}

#[test]
fn kubernetes_targets() {
    let restart = json!([{ "restart": {} }]);
    for target in [
        json!({ "pods": { "namespace": "web", "name": "php-0" } }),
        json!({ "deployment": { "name": "php" } }),
        json!({ "node": { "name": "worker-1.example.com" } }),
    ] {
        let actions = fitting_actions(&target);
        cluster_breaks(cluster(target, actions), &[]);
    }
    // A selector's objects are watched each by its own state, never by one shared probe.
    let own_state = |target: J, trigger: J| {
        let actions = fitting_actions(&target);
        let mut doc = cluster(target, actions);
        doc["spec"]["trigger"] = json!([trigger]);
        doc
    };
    cluster_breaks(
        own_state(
            json!({ "pods": { "selector": { "app": "php" } } }),
            json!({ "pod": { "reason": ["CrashLoopBackOff"] } }),
        ),
        &[],
    );
    cluster_breaks(
        own_state(
            json!({ "statefulset": { "selector": { "app.kubernetes.io/name": "mariadb", "tier": "" } } }),
            json!({ "workload": {} }),
        ),
        &[],
    );
    for (target, many, own) in [
        (
            json!({ "pods": { "selector": { "app": "php" } } }),
            "pods",
            "pod",
        ),
        (
            json!({ "deployment": { "selector": { "app": "php" } } }),
            "deployments",
            "workload",
        ),
        (
            json!({ "statefulset": { "selector": { "app": "db" } } }),
            "statefulsets",
            "workload",
        ),
        (
            json!({ "node": { "selector": { "pool": "web" } } }),
            "nodes",
            "node",
        ),
    ] {
        let actions = fitting_actions(&target);
        cluster_breaks(
            cluster(target, actions),
            &[(
                "spec.trigger[0].http",
                &format!("an http condition probes one URL, and this policy's target selects {many} by label: a failing probe would act on each of them; name one object, or watch each with a `{own}` condition"),
            )],
        );
    }
    let mut bad_ns = cluster(json!({ "pods": { "name": "php-0" } }), restart.clone());
    bad_ns["metadata"]["namespace"] = json!("Web");
    cluster_breaks(
        bad_ns,
        &[("metadata.namespace", "invalid namespace \"Web\": use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit")],
    );
    cluster_breaks(
        cluster(
            json!({ "pods": { "name": "php-0", "selector": { "app": "php" } } }),
            restart.clone(),
        ),
        &[(
            "spec.target.pods",
            "give either `name` or `selector`, not both",
        )],
    );
    cluster_breaks(
        cluster(json!({ "deployment": {} }), restart.clone()),
        &[(
            "spec.target.deployment",
            "a deployment target needs `name` (one object) or `selector` (labels)",
        )],
    );
    cluster_breaks(
        cluster(json!({ "pods": { "name": "Php_0" } }), restart.clone()),
        &[("spec.target.pods.name", "invalid pod name \"Php_0\": use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit")],
    );
    cluster_breaks(
        cluster(json!({ "statefulset": { "namespace": "a.b", "name": "db" } }), restart.clone()),
        &[("spec.target.statefulset.namespace", "invalid namespace \"a.b\": use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit")],
    );
    cluster_breaks(
        own_state(
            json!({ "node": { "selector": { "pool": "-web" } } }),
            json!({ "node": {} }),
        ),
        &[("spec.target.node.selector", "invalid label value \"-web\" for pool: up to 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit")],
    );
    let mut node_restart = cluster(json!({ "node": { "name": "worker-1" } }), restart.clone());
    node_restart["spec"]["trigger"] = json!([{ "node": {} }]);
    cluster_breaks(
        node_restart,
        &[(
            "spec.actions[0].restart",
            "`restart` restarts a unit, a pod or a workload's rollout, and salve never reboots a node; a node target takes: cordon, notify, exec",
        )],
    );
    // Host things are out of a cluster policy's reach.
    let mut doc = cluster(
        json!({ "pods": { "name": "php-0" } }),
        json!([{ "restart": {} }, { "resetFailed": {} }]),
    );
    doc["spec"]["trigger"] = json!([
        { "unit": { "activeState": ["failed"] } },
        { "log": { "path": "/var/log/x", "pattern": "x" } }
    ]);
    doc["spec"]["verify"] = json!({ "unit": {} });
    doc["spec"]["escalate"] = json!([{ "enable": {} }]);
    cluster_breaks(
        doc,
        &[
            ("spec.trigger[0].unit", "a unit condition watches a systemd unit, and this policy's target is pods"),
            ("spec.trigger[1].log", "a log condition reads a file on the host, and this policy's target is pods"),
            ("spec.actions[1].resetFailed", "`resetFailed` acts on a systemd unit or its host; a pods target takes: restart, deletePod, drain, ready, setWeight, notify, exec"),
            ("spec.escalate[0].enable", "`enable` acts on a systemd unit or its host; a pods target takes: restart, deletePod, drain, ready, setWeight, notify, exec"),
            ("spec.verify.unit", "`verify.unit` checks a systemd unit, and this policy's target is pods"),
        ],
    );
}

#[test]
fn kubernetes_conditions() {
    let with_trigger = |target: J, trigger: J| {
        let actions = fitting_actions(&target);
        let mut doc = cluster(target, actions);
        doc["spec"]["trigger"] = json!([trigger]);
        doc
    };
    let pod = json!({ "pods": { "name": "php-0" } });
    cluster_breaks(
        with_trigger(pod.clone(), json!({ "pod": { "reason": ["OOMKilled"] } })),
        &[],
    );
    cluster_breaks(
        with_trigger(pod.clone(), json!({ "pod": { "restarts": 1 } })),
        &[],
    );
    cluster_breaks(
        with_trigger(pod.clone(), json!({ "pod": {} })),
        &[(
            "spec.trigger[0].pod",
            "a pod condition needs at least one of: reason, restarts, condition",
        )],
    );
    cluster_breaks(
        with_trigger(pod.clone(), json!({ "pod": { "condition": "Ready" } })),
        &[],
    );
    cluster_breaks(
        with_trigger(
            pod.clone(),
            json!({ "pod": { "condition": "Ready", "status": ["False", "Unknown"], "reason": ["Error"] } }),
        ),
        &[],
    );
    cluster_breaks(
        with_trigger(
            pod.clone(),
            json!({ "pod": { "reason": ["Error"], "status": ["False"] } }),
        ),
        &[(
            "spec.trigger[0].pod.status",
            "`status` lists the values of `condition` that count: name the condition too",
        )],
    );
    cluster_breaks(
        with_trigger(pod.clone(), json!({ "pod": { "condition": "Not Ready" } })),
        &[("spec.trigger[0].pod.condition", "invalid condition type \"Not Ready\": one word of letters and digits, e.g. Ready or MemoryPressure")],
    );
    cluster_breaks(
        with_trigger(pod.clone(), json!({ "pod": { "restarts": 0 } })),
        &[(
            "spec.trigger[0].pod.restarts",
            "0 is out of range: expected 1 to 1000000",
        )],
    );
    cluster_breaks(
        with_trigger(pod.clone(), json!({ "pod": { "reason": [" "] } })),
        &[(
            "spec.trigger[0].pod.reason[0]",
            "a reason must not be empty",
        )],
    );
    let deployment = json!({ "deployment": { "name": "php" } });
    cluster_breaks(
        with_trigger(deployment.clone(), json!({ "workload": {} })),
        &[],
    );
    cluster_breaks(
        with_trigger(
            deployment.clone(),
            json!({ "workload": { "unavailable": 0 } }),
        ),
        &[(
            "spec.trigger[0].workload.unavailable",
            "0 is out of range: expected 1 to 100000",
        )],
    );
    cluster_breaks(
        with_trigger(
            deployment.clone(),
            json!({ "workload": { "condition": "Progressing" } }),
        ),
        &[],
    );
    cluster_breaks(
        with_trigger(
            deployment.clone(),
            json!({ "workload": { "status": ["False"] } }),
        ),
        &[(
            "spec.trigger[0].workload.status",
            "`status` lists the values of `condition` that count: name the condition too",
        )],
    );
    let node = json!({ "node": { "name": "worker-1" } });
    cluster_breaks(with_trigger(node.clone(), json!({ "node": {} })), &[]);
    cluster_breaks(
        with_trigger(node.clone(), json!({ "node": { "condition": "Memory Pressure" } })),
        &[("spec.trigger[0].node.condition", "invalid condition type \"Memory Pressure\": one word of letters and digits, e.g. Ready or MemoryPressure")],
    );
    // Each condition watches its own kind of object.
    cluster_breaks(
        with_trigger(deployment.clone(), json!({ "pod": { "restarts": 1 } })),
        &[(
            "spec.trigger[0].pod",
            "a pod condition watches pods, and this policy's target is deployment",
        )],
    );
    cluster_breaks(
        with_trigger(pod, json!({ "node": {} })),
        &[(
            "spec.trigger[0].node",
            "a node condition watches nodes, and this policy's target is pods",
        )],
    );
    cluster_breaks(
        with_trigger(node, json!({ "workload": {} })),
        &[("spec.trigger[0].workload", "a workload condition watches a deployment or statefulset, and this policy's target is node")],
    );
    // And a host policy has none of them.
    breaks(
        &[("/spec/trigger/0", json!({ "pod": { "restarts": 1 } }))],
        "spec.trigger[0].pod",
        "a pod condition watches pods, and this policy's target is unit",
    );
}

#[test]
fn max_unhealthy_counts_a_selectors_objects() {
    let selected = |max: J| {
        let mut doc = cluster(
            json!({ "pods": { "selector": { "app": "php" } } }),
            json!([{ "restart": {} }]),
        );
        doc["spec"]["trigger"] = json!([{ "pod": { "reason": ["CrashLoopBackOff"] } }]);
        doc["spec"]["guard"] = json!({ "maxUnhealthy": max, "settle": "2m" });
        doc
    };
    cluster_breaks(selected(json!(3)), &[]);
    cluster_breaks(selected(json!("30%")), &[]);
    cluster_breaks(selected(json!("100%")), &[]);
    // One named object has nothing to count.
    breaks(
        &[("/spec/guard", json!({ "maxUnhealthy": 2 }))],
        "spec.guard.maxUnhealthy",
        "`maxUnhealthy` counts the objects a selector selects, or the policies of one `fleet` group, and this policy's target names one object and it has no `fleet`",
    );
    // ...but the policies of one fleet group count together.
    let mut grouped = with(&[("/spec/guard", json!({ "maxUnhealthy": 1 }))]);
    grouped["spec"]["fleet"] = json!({ "group": "web", "lock": "local" });
    assert_eq!(by_validate(&grouped), [], "validate");
    assert_eq!(by_decoder(&grouped), [], "decoder");
    // Out of range or misspelt: both readers refuse it with the same words.
    for (value, message) in [
        (
            json!(0),
            "maxUnhealthy 0 is out of range: expected 1 to 1000000",
        ),
        (
            json!("0%"),
            "maxUnhealthy 0% is out of range: expected 1% to 100%",
        ),
        (
            json!("101%"),
            "maxUnhealthy 101% is out of range: expected 1% to 100%",
        ),
        (
            json!("half"),
            "invalid maxUnhealthy \"half\": write a count such as 3 or a percentage such as 30%",
        ),
    ] {
        let doc = selected(value.clone());
        let serde = serde_json::from_value::<Policy>(doc.clone())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(serde.contains(message), "serde, {value}: {serde}");
        let decoded = by_decoder(&doc);
        assert_eq!(decoded.len(), 1, "{value}: {decoded:?}");
        assert_eq!(decoded[0].0, "spec.guard.maxUnhealthy");
        assert!(
            decoded[0].1.contains(message),
            "decoder, {value}: {decoded:?}"
        );
    }
}

#[test]
fn kubernetes_actions_fit_their_kind_of_object() {
    let scale = json!({ "scale": { "by": 2, "min": 2, "max": 10 } });
    let memory = json!({ "raiseMemoryLimit": { "container": "php", "factor": 1.5, "max": "2Gi" } });
    let workload = json!({ "deployment": { "name": "php" } });
    let on = |target: &J, trigger: J, actions: J| {
        let mut doc = cluster(target.clone(), actions);
        doc["spec"]["trigger"] = json!([trigger]);
        doc["spec"]["verify"] = json!({ "ready": { "within": "3m" } });
        doc
    };
    let pod_down = json!({ "pod": { "reason": ["CrashLoopBackOff"] } });
    cluster_breaks(
        on(
            &workload,
            json!({ "workload": {} }),
            json!([{ "rolloutRestart": {} }, scale.clone(), memory.clone(), { "exec": { "command": ["/bin/true"] } }]),
        ),
        &[],
    );
    cluster_breaks(
        on(
            &json!({ "pods": { "name": "php-0" } }),
            pod_down.clone(),
            json!([{ "deletePod": {} }]),
        ),
        &[],
    );
    cluster_breaks(
        on(
            &json!({ "node": { "name": "worker-1" } }),
            json!({ "node": {} }),
            json!([{ "cordon": {} }]),
        ),
        &[],
    );
    // Each to its own kind.
    cluster_breaks(
        on(&json!({ "pods": { "name": "php-0" } }), pod_down, json!([{ "cordon": {} }, scale.clone()])),
        &[
            ("spec.actions[0].cordon", "`cordon` cordons a node; a pods target takes: restart, deletePod, drain, ready, setWeight, notify, exec"),
            ("spec.actions[1].scale", "`scale` changes a deployment or statefulset; a pods target takes: restart, deletePod, drain, ready, setWeight, notify, exec"),
        ],
    );
    cluster_breaks(
        on(&workload, json!({ "workload": {} }), json!([{ "deletePod": {} }])),
        &[(
            "spec.actions[0].deletePod",
            "`deletePod` deletes a pod; a deployment target takes: restart, rolloutRestart, scale, raiseMemoryLimit, configMapEdit, drain, ready, setWeight, notify, exec",
        )],
    );
    // Bounds that cannot hold, and a container name that cannot be one.
    cluster_breaks(
        on(
            &workload,
            json!({ "workload": {} }),
            json!([{ "scale": { "min": 5, "max": 3 } }]),
        ),
        &[("spec.actions[0].scale.max", "max 3 is below min 5")],
    );
    cluster_breaks(
        on(
            &workload,
            json!({ "workload": {} }),
            json!([
                { "rolloutRestart": {} },
                { "raiseMemoryLimit": { "container": "PHP_FPM", "factor": 1.0, "max": "1Gi" } }
            ]),
        ),
        &[
            ("spec.actions[1].raiseMemoryLimit.container", "invalid container name \"PHP_FPM\": use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
            ("spec.actions[1].raiseMemoryLimit.factor", "1 is out of range: expected 1.1 to 16"),
        ],
    );
    // An nginx config in a ConfigMap: named as Kubernetes names them, and verified.
    let edit = |config_map: &str, key: &str| {
        json!([{ "configMapEdit": { "configMap": config_map, "key": key, "context": "http",
            "raise": [{ "directive": "fastcgi_buffer_size", "factor": 2, "max": "64k" }] } }])
    };
    cluster_breaks(
        on(
            &workload,
            json!({ "workload": {} }),
            edit("nginx", "default.conf"),
        ),
        &[],
    );
    cluster_breaks(
        on(&workload, json!({ "workload": {} }), edit("Nginx", "../x")),
        &[
            ("spec.actions[0].configMapEdit.configMap", "invalid ConfigMap name \"Nginx\": use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
            ("spec.actions[0].configMapEdit.key", "invalid ConfigMap key \"../x\": use at most 253 letters, digits, '-', '_' and '.'"),
        ],
    );
    let mut unverified = on(
        &workload,
        json!({ "workload": {} }),
        edit("nginx", "default.conf"),
    );
    unverified["spec"].as_object_mut().unwrap().remove("verify");
    cluster_breaks(
        unverified,
        &[(
            "spec.actions",
            "a config edit needs `verify`: without it an edit that breaks the site would be kept",
        )],
    );
    cluster_breaks(
        on(&json!({ "pods": { "name": "php-0" } }), json!({ "pod": { "reason": ["Error"] } }), edit("nginx", "default.conf")),
        &[("spec.actions[0].configMapEdit", "`configMapEdit` edits a ConfigMap a deployment or statefulset reads, and restarts its rollout; a pods target takes: restart, deletePod, drain, ready, setWeight, notify, exec")],
    );
    // A host policy has no Kubernetes object to act on or wait for.
    breaks(
        &[("/spec/actions", json!([{ "rolloutRestart": {} }]))],
        "spec.actions[0].rolloutRestart",
        "`rolloutRestart` changes a deployment or statefulset, and this policy's target is a systemd unit",
    );
    breaks(
        &[("/spec/verify", json!({ "ready": {} }))],
        "spec.verify.ready",
        "`verify.ready` checks a Kubernetes object, and this policy's target is a systemd unit; use `verify.unit`",
    );
}

/// The load-balancer actions: a host policy drains, weighs and readies a HAProxy server
/// named by its admin socket, backend and server; names that would be a second command
/// on the socket and weights HAProxy does not take are refused by both readers.
#[test]
fn load_balancer_actions() {
    let server =
        json!({ "socket": "/run/haproxy/admin.sock", "backend": "web", "server": "node-b" });
    keeps(&[(
        A,
        json!([
            { "drain": { "haproxy": server } },
            { "restart": {} },
            { "setWeight": { "haproxy": server, "weight": "50%" } },
            { "setWeight": { "haproxy": server, "weight": 10 } },
            { "ready": { "haproxy": server } }
        ]),
    )]);
    breaks(
        &[(A, json!([{ "drain": { "haproxy": { "socket": "/run/haproxy/admin.sock", "backend": "web;shutdown", "server": "b" } } }]))],
        "spec.actions[0].drain.haproxy.backend",
        "invalid HAProxy backend name \"web;shutdown\": letters, digits, `-`, `_`, `.` and `:` only",
    );
    breaks(
        &[(
            A,
            json!([{ "ready": { "haproxy": { "socket": "admin.sock", "backend": "web", "server": "b" } } }]),
        )],
        "spec.actions[0].ready.haproxy.socket",
        "\"admin.sock\" must be an absolute path",
    );
    // Weight goes back only to a server that verified: a ramp needs `verify`, and
    // never runs from `escalate`.
    let ramping = json!([{ "drain": { "haproxy": server, "ramp": { "steps": 4, "interval": "1s" } } }, { "restart": {} }]);
    keeps(&[(A, ramping.clone())]);
    let mut unverified = with(&[(A, ramping.clone())]);
    unverified["spec"].as_object_mut().unwrap().remove("verify");
    let expected = vec![(
        "spec.actions".to_string(),
        "a drain that ramps back needs `verify`: weight returns only to a server that verified healthy".to_string(),
    )];
    assert_eq!(by_validate(&unverified), expected);
    assert_eq!(by_decoder(&unverified), expected);
    breaks(
        &[("/spec/escalate", ramping)],
        "spec.escalate",
        "escalate may not ramp a drained server back: escalation is never verified",
    );
    breaks(
        &[(
            A,
            json!([{ "drain": { "haproxy": server, "ramp": { "steps": 0 } } }]),
        )],
        "spec.actions[0].drain.ramp.steps",
        "0 is out of range: expected 1 to 20",
    );
    cluster_breaks(
        cluster(
            json!({ "pods": { "name": "php-0" } }),
            json!([{ "drain": { "haproxy": server } }]),
        ),
        &[("spec.actions[0].drain", "`drain` on a pods target needs `gateway` (route, service): the operator weighs an HTTPRoute's backends through the API server")],
    );
}

/// The load balancer's own policy: a HAProxy server as the target, probed over HTTP,
/// drained and readied through its socket; nothing of a unit or a cluster fits it, and
/// an LB action elsewhere must name its server.
#[test]
fn haproxy_targets() {
    let lb = |trigger: J, actions: J, verify: J| {
        json!({
            "apiVersion": "salve.dev/v1alpha1",
            "kind": "RemediationPolicy",
            "metadata": { "name": "lb-b" },
            "spec": {
                "target": { "haproxy": { "socket": "/run/haproxy/admin.sock", "backend": "web", "server": "node-b" } },
                "trigger": [trigger],
                "actions": actions,
                "verify": verify
            }
        })
    };
    let probe = json!({ "http": { "url": "http://10.0.0.2/ping.php" } });
    let answers = json!({ "http": { "url": "http://10.0.0.2/ping.php", "within": "5m" } });
    cluster_breaks(
        lb(
            probe.clone(),
            json!([{ "drain": { "ramp": { "steps": 4 } } }, { "notify": { "webhook": "http://127.0.0.1:9093/" } }]),
            answers.clone(),
        ),
        &[],
    );
    cluster_breaks(
        lb(
            json!({ "unit": { "activeState": ["failed"] } }),
            json!([{ "restart": {} }]),
            json!({ "unit": {} }),
        ),
        &[
            ("spec.trigger[0].unit", "a unit condition watches a systemd unit, and this policy's target is a HAProxy server: probe the server with an `http` condition"),
            ("spec.actions[0].restart", "`restart` restarts a unit, a pod or a workload's rollout, and salve never reboots a node; a haproxy target takes: drain, ready, setWeight, notify, exec"),
            ("spec.verify.unit", "`verify.unit` checks what a HAProxy server is not; use `verify.http`"),
        ],
    );
    // The socket's level is the policy's to say, and only admin changes a server.
    let mut admin = lb(probe, json!([{ "drain": {} }]), answers);
    admin["spec"]["target"]["haproxy"]["level"] = json!("admin");
    cluster_breaks(admin.clone(), &[]);
    admin["spec"]["target"]["haproxy"]["level"] = json!("operator");
    cluster_breaks(
        admin,
        &[("spec.target.haproxy.level", "level operator cannot change a server: HAProxy sets a server's state and weight only at level admin (`stats socket PATH level admin`)")],
    );
    // On a unit's policy, a drain must say which server.
    let mut unit = lb(
        json!({ "unit": { "activeState": ["failed"] } }),
        json!([{ "drain": {} }]),
        json!({ "unit": {} }),
    );
    unit["spec"]["target"] = json!({ "unit": "php8.2-fpm.service" });
    cluster_breaks(
        unit,
        &[("spec.actions[0].drain", "`drain` needs `haproxy` (socket, backend, server) or `nginx` (file, upstream, server), as this policy's target is not a load balancer's server")],
    );
}

/// The nginx load balancer's own agent: a policy whose target is an upstream's server
/// line, probed over HTTP and drained by editing it.
#[test]
fn nginx_upstream_targets() {
    let lb = |trigger: J, actions: J| {
        json!({
            "apiVersion": "salve.dev/v1alpha1",
            "kind": "RemediationPolicy",
            "metadata": { "name": "lb-b" },
            "spec": {
                "target": { "nginx": { "file": "/etc/nginx/conf.d/lb.conf", "upstream": "web", "server": "10.0.0.2:80" } },
                "trigger": [trigger],
                "actions": actions,
                "verify": { "http": { "url": "http://10.0.0.2/ping.php" } }
            }
        })
    };
    let probe = json!({ "http": { "url": "http://10.0.0.2/ping.php" } });
    cluster_breaks(
        lb(
            probe.clone(),
            json!([{ "drain": { "ramp": { "steps": 2 } } }, { "setWeight": { "weight": 3 } }]),
        ),
        &[],
    );
    cluster_breaks(
        lb(
            json!({ "unit": { "activeState": ["failed"] } }),
            json!([{ "setWeight": { "weight": "50%" } }, { "restart": {} }]),
        ),
        &[
            ("spec.trigger[0].unit", "a unit condition watches a systemd unit, and this policy's target is an nginx upstream server: probe the server with an `http` condition"),
            ("spec.actions[0].setWeight.weight", "an nginx upstream server's weight is a whole number: nginx keeps no configured weight to take a percentage of"),
            ("spec.actions[1].restart", "`restart` restarts a unit, a pod or a workload's rollout, and salve never reboots a node; a nginx target takes: drain, ready, setWeight, notify, exec"),
        ],
    );
    let mut odd = lb(probe.clone(), json!([{ "drain": {} }]));
    odd["spec"]["target"]["nginx"]["file"] = json!("/etc/nginx/sites@/lb.conf");
    cluster_breaks(
        odd,
        &[("spec.target.nginx.file", "an nginx target's file may not have `@/` in its path (the journal's name for the target ends the server there)")],
    );
    let mut bad = lb(probe, json!([{ "drain": {} }]));
    bad["spec"]["target"]["nginx"]["file"] = json!("lb.conf");
    let found = by_decoder(&bad);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "spec.target.nginx.file");
}

#[test]
fn nginx_upstream_servers() {
    let nginx = json!({ "file": "/etc/nginx/conf.d/lb.conf", "upstream": "nodes", "server": "10.0.0.2:80" });
    keeps(&[(
        A,
        json!([
            { "drain": { "nginx": nginx.clone(), "ramp": { "steps": 2 } } },
            { "restart": {} },
            { "setWeight": { "nginx": nginx.clone(), "weight": 5 } },
            { "ready": { "nginx": nginx.clone() } }
        ]),
    )]);
    cluster_breaks(
        with(&[(A, json!([
            { "drain": { "nginx": nginx.clone(), "haproxy": { "socket": "/run/haproxy/admin.sock", "backend": "web", "server": "b" } } },
            { "setWeight": { "nginx": nginx.clone(), "weight": "50%" } },
            { "setWeight": { "nginx": nginx.clone(), "weight": 0 } }
        ]))]),
        &[
            ("spec.actions[0].drain", "name one server: `haproxy`, `nginx` or `gateway`, not two"),
            ("spec.actions[1].setWeight.weight", "an nginx upstream server's weight is a whole number: nginx keeps no configured weight to take a percentage of"),
            ("spec.actions[2].setWeight.weight", "an nginx upstream server's weight is 1 or more; `drain` takes it out (`down`)"),
        ],
    );
    // Names that would end the line or the key are refused by both readers.
    cluster_breaks(
        with(&[(A, json!([
            { "ready": { "nginx": { "file": "lb.conf", "upstream": "no des", "server": "a;b" } } }
        ]))]),
        &[
            ("spec.actions[0].ready.nginx.file", "\"lb.conf\" must be an absolute path"),
            ("spec.actions[0].ready.nginx.upstream", "invalid nginx upstream name \"no des\": letters, digits, `-`, `_`, `.` and `:` only"),
            ("spec.actions[0].ready.nginx.server", "invalid nginx upstream server \"a;b\": one address as the `server` line writes it (`10.0.0.2:9000`, `unix:/run/php/a.sock`)"),
        ],
    );
}

#[test]
fn gateway_backends_are_the_operators() {
    let gateway = json!({ "route": "shop", "service": "php-b", "port": 80 });
    let mut doc = cluster(
        json!({ "deployment": { "name": "php-b" } }),
        json!([
            { "drain": { "gateway": gateway.clone(), "ramp": { "steps": 2 } } },
            { "rolloutRestart": {} },
            { "setWeight": { "gateway": gateway.clone(), "weight": 0 } },
            { "ready": { "gateway": gateway.clone() } }
        ]),
    );
    doc["spec"]["verify"] = json!({ "ready": { "within": "1m" } });
    assert_eq!(by_validate(&doc), [], "validate");
    assert_eq!(by_decoder(&doc), [], "decoder");
    cluster_breaks(
        cluster(
            json!({ "deployment": { "name": "php-b" } }),
            json!([
                { "drain": { "haproxy": { "socket": "/run/haproxy/admin.sock", "backend": "web", "server": "b" } } },
                { "setWeight": { "gateway": gateway.clone(), "weight": "50%" } }
            ]),
        ),
        &[
            ("spec.actions[0].drain", "`drain` on a deployment target needs `gateway` (route, service): the operator weighs an HTTPRoute's backends through the API server"),
            ("spec.actions[1].setWeight.weight", "an HTTPRoute backend's weight is a whole number: the route keeps no configured weight to take a percentage of"),
        ],
    );
    let bad_name = cluster(
        json!({ "deployment": { "name": "php-b" } }),
        json!([{ "ready": { "gateway": { "route": "Shop!", "service": "php-b" } } }]),
    );
    let found = by_decoder(&bad_name);
    assert_eq!(found, by_validate(&bad_name));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "spec.actions[0].ready.gateway.route");
    // The operator has no fleet lock.
    let mut fleet = cluster(
        json!({ "deployment": { "name": "php-b" } }),
        json!([{ "drain": { "gateway": gateway.clone() } }]),
    );
    fleet["spec"]["fleet"] = json!({ "group": "web", "lock": "etcd" });
    cluster_breaks(
        fleet,
        &[("spec.fleet", "a fleet guard takes its slots in the etcd a host agent's config names, and this policy's target is deployment: the operator has no fleet lock (it alone acts for the cluster)")],
    );
    // `gateway: null` is no "absent" for either reader.
    let null = cluster(
        json!({ "deployment": { "name": "php-b" } }),
        json!([{ "drain": { "gateway": null } }]),
    );
    assert!(!by_decoder(&null).is_empty());
    assert!(
        serde_json::from_value::<Policy>(null.clone()).is_err(),
        "serde too"
    );
    // A host's policy has no API server to reach.
    cluster_breaks(
        with(&[(A, json!([{ "drain": { "gateway": gateway.clone() } }, { "restart": {} }]))]),
        &[
            ("spec.actions[0].drain", "`drain` needs `haproxy` (socket, backend, server) or `nginx` (file, upstream, server), as this policy's target is not a load balancer's server"),
            ("spec.actions[0].drain.gateway", "`gateway` weighs an HTTPRoute through the API server: only the operator's policies (a pods, deployment or statefulset target) do"),
        ],
    );
}

/// A fleet guard names its group (a name that is safe in an etcd key) and how many of
/// it may be drained at once.
#[test]
fn fleet_guards() {
    let guarded = |fleet: J| {
        let mut doc = base();
        doc["spec"]["fleet"] = fleet;
        doc
    };
    for fleet in [
        json!({ "group": "web", "maxConcurrent": 2, "lock": "etcd" }),
        json!({ "group": "web", "maxConcurrent": "25%", "lock": "etcd" }),
        json!({ "group": "web", "lock": "etcd" }),
        json!({ "group": "web", "maxConcurrent": 1, "lock": "local" }),
    ] {
        let doc = guarded(fleet);
        assert_eq!(by_validate(&doc), [], "validate");
        assert_eq!(by_decoder(&doc), [], "decoder");
    }
    let doc = guarded(json!({ "group": "web/../x", "lock": "etcd" }));
    let expected = vec![(
        "spec.fleet.group".to_string(),
        "invalid fleet group name \"web/../x\": letters, digits, `-`, `_`, `.` and `:` only"
            .to_string(),
    )];
    assert_eq!(by_validate(&doc), expected);
    assert_eq!(by_decoder(&doc), expected);
    let misspelt = by_decoder(&guarded(json!({ "group": "web", "lock": "locale" })));
    assert_eq!(
        misspelt,
        [(
            "spec.fleet.lock".to_string(),
            "unknown fleet lock `locale`, did you mean `local`? (expected one of: etcd, local)"
                .to_string()
        )]
    );
    // Out of range either way: the positioned decoder says where (serde refuses the
    // document outright, as for a bad weight).
    for bad in [json!(0), json!("0%"), json!("150%"), json!(1001)] {
        let doc = guarded(json!({ "group": "web", "maxConcurrent": bad, "lock": "etcd" }));
        let found = by_decoder(&doc);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "spec.fleet.maxConcurrent");
        assert!(found[0].1.starts_with("invalid maxConcurrent"), "{found:?}");
    }
}

#[test]
fn a_pause_in_the_spec_names_a_utc_time_and_one_line_of_why() {
    let paused = |pause: J| {
        let mut doc = base();
        doc["spec"]["pause"] = pause;
        doc
    };
    let fine = paused(json!({ "until": "2026-12-03T16:00:00Z", "reason": "deploy" }));
    assert_eq!(by_validate(&fine), [], "validate");
    assert_eq!(by_decoder(&fine), [], "decoder");
    let longest = "r".repeat(500);
    let edge = paused(json!({ "until": "2026-12-03T16:00:00.5Z", "reason": longest }));
    assert_eq!(by_validate(&edge), [], "validate");
    assert_eq!(by_decoder(&edge), [], "decoder");
    for (pause, path, message) in [
        (
            json!({ "until": "tomorrow", "reason": "deploy" }),
            "spec.pause.until",
            "\"tomorrow\" is not a time in RFC 3339 UTC, as 2026-12-03T16:00:00Z",
        ),
        (
            json!({ "until": "2026-12-03T16:00:00+01:00", "reason": "deploy" }),
            "spec.pause.until",
            "\"2026-12-03T16:00:00+01:00\" is not a time in RFC 3339 UTC, as 2026-12-03T16:00:00Z",
        ),
        (
            json!({ "until": "2026-12-03T16:00:00Z", "reason": " " }),
            "spec.pause.reason",
            "a pause's reason must not be empty",
        ),
        (
            json!({ "until": "2026-12-03T16:00:00Z", "reason": "deploy\nrm -rf" }),
            "spec.pause.reason",
            "a pause's reason is one line of printable text",
        ),
        (
            json!({ "until": "2026-12-03T16:00:00Z", "reason": "r".repeat(501) }),
            "spec.pause.reason",
            "a pause's reason is at most 500 characters",
        ),
    ] {
        let doc = paused(pause);
        let expected = vec![(path.to_string(), message.to_string())];
        assert_eq!(by_validate(&doc), expected, "validate");
        assert_eq!(by_decoder(&doc), expected, "decoder");
    }
    let missing = by_decoder(&paused(json!({ "until": "2026-12-03T16:00:00Z" })));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].0, "spec.pause");
    assert!(missing[0].1.contains("reason"), "{missing:?}");
}

#[test]
fn alert_conditions_name_an_alert_and_prometheus_labels() {
    let added = |condition: J| {
        [(
            format!("{T}/-"),
            json!({ "alert": condition, "for": "30s" }),
        )]
    };
    let keep =
        added(json!({ "name": "PhpFpmSlow", "labels": { "instance": "web-1:9253", "_x": "é" } }));
    keeps(&[(keep[0].0.as_str(), keep[0].1.clone())]);
    let longest = "v".repeat(1024);
    let keep = added(json!({ "name": "n", "labels": { "a": longest } }));
    keeps(&[(keep[0].0.as_str(), keep[0].1.clone())]);
    let many: serde_json::Map<String, J> = (0..33).map(|i| (format!("l{i}"), json!("v"))).collect();
    for (condition, path, message) in [
        (
            json!({ "name": " " }),
            "spec.trigger[3].alert.name",
            "an alert's name must not be empty".to_string(),
        ),
        (
            json!({ "name": "a\tb" }),
            "spec.trigger[3].alert.name",
            "an alert's name is one line of printable text".to_string(),
        ),
        (
            json!({ "name": "x", "labels": { "1st": "v" } }),
            "spec.trigger[3].alert.labels",
            "\"1st\" is not a Prometheus label name: a letter or `_`, then letters, digits and `_`".to_string(),
        ),
        (
            json!({ "name": "x", "labels": { "__name__": "v" } }),
            "spec.trigger[3].alert.labels",
            "\"__name__\": labels starting with `__` are Prometheus's own and never reach Alertmanager".to_string(),
        ),
        (
            json!({ "name": "x", "labels": { "alertname": "y" } }),
            "spec.trigger[3].alert.labels",
            "the alert's name is the condition's `name`, not one of its labels".to_string(),
        ),
        (
            json!({ "name": "x", "labels": { "a": "v".repeat(1025) } }),
            "spec.trigger[3].alert.labels",
            "the value of label a is at most 1024 characters".to_string(),
        ),
        (
            json!({ "name": "x", "labels": many }),
            "spec.trigger[3].alert.labels",
            "an alert condition names at most 32 labels".to_string(),
        ),
    ] {
        let patch = added(condition);
        breaks(&[(patch[0].0.as_str(), patch[0].1.clone())], path, &message);
    }
}

#[test]
fn an_alertmanager_notification_posts_to_the_alerts_api() {
    let notify = |webhook: &str, format: &str| {
        (
            format!("{A}/0/notify"),
            json!({ "webhook": webhook, "format": format, "timeout": "1s" }),
        )
    };
    for (webhook, format) in [
        ("http://127.0.0.1:9093/api/v2/alerts", "alertmanager"),
        (
            "http://am.example:9093/prefix/api/v2/alerts/",
            "alertmanager",
        ),
        ("http://127.0.0.1:9/", "slack"),
        ("http://127.0.0.1:9/", "json"),
    ] {
        let (at, value) = notify(webhook, format);
        keeps(&[(at.as_str(), value)]);
    }
    let (at, value) = notify("http://127.0.0.1:9093/", "alertmanager");
    breaks(
        &[(at.as_str(), value)],
        "spec.actions[0].notify.webhook",
        "the alertmanager format posts to Alertmanager's alerts API: the webhook is http://ALERTMANAGER:9093/api/v2/alerts, not http://127.0.0.1:9093/",
    );
}

#[test]
fn an_alert_condition_is_the_host_agents_alone() {
    let mut doc = cluster(
        json!({ "pods": { "name": "php-0" } }),
        json!([{ "restart": {} }]),
    );
    doc["spec"]["trigger"] = json!([{ "alert": { "name": "PhpFpmSlow" } }]);
    cluster_breaks(
        doc,
        &[(
            "spec.trigger[0].alert",
            "an alert condition is heard by the host agent's Alertmanager receiver, and this policy's target is pods: the operator has no receiver yet; watch pods with a `pod` condition",
        )],
    );
}

#[test]
fn php_fpm_conditions_name_a_status_listener_and_bounds() {
    let added = |condition: J| (format!("{T}/-"), json!({ "phpFpm": condition }));
    for keep in [
        json!({ "status": "unix:/run/php/php8.2-fpm-status.sock" }),
        json!({ "status": "/run/php/status.sock", "path": "/fpm-status", "idleAtMost": 0 }),
        json!({ "status": "127.0.0.1:9001", "listenQueue": 1000000, "maxChildrenReached": true }),
        json!({ "status": "[::1]:9001", "interval": "1s", "timeout": "1s" }),
        json!({ "status": "9001", "idleAtMost": 100000 }),
    ] {
        let (at, value) = added(keep);
        keeps(&[(at.as_str(), value)]);
    }
    let how = "write unix:/run/php/php8.2-fpm-status.sock or 127.0.0.1:9001";
    for (condition, path, message) in [
        (
            json!({ "status": "unix:run/status.sock" }),
            "spec.trigger[3].phpFpm.status",
            format!("invalid status address \"unix:run/status.sock\": a socket's path is absolute; {how}"),
        ),
        (
            json!({ "status": "localhost" }),
            "spec.trigger[3].phpFpm.status",
            format!("invalid status address \"localhost\": no port; {how}"),
        ),
        (
            json!({ "status": "127.0.0.1:0" }),
            "spec.trigger[3].phpFpm.status",
            format!("invalid status address \"127.0.0.1:0\": no port; {how}"),
        ),
        (
            json!({ "status": "9001", "path": "status" }),
            "spec.trigger[3].phpFpm.path",
            "\"status\" is not a status path: PHP-FPM's pm.status_path starts with / (as /status)".to_string(),
        ),
        (
            json!({ "status": "9001", "path": "/status?full" }),
            "spec.trigger[3].phpFpm.path",
            "\"/status?full\" is not a status path: PHP-FPM's pm.status_path starts with / (as /status)".to_string(),
        ),
        (
            json!({ "status": "9001", "failures": 0 }),
            "spec.trigger[3].phpFpm.failures",
            "0 is out of range: expected 1 to 1000".to_string(),
        ),
        (
            json!({ "status": "9001", "listenQueue": 0 }),
            "spec.trigger[3].phpFpm.listenQueue",
            "0 is out of range: expected 1 to 1000000".to_string(),
        ),
        (
            json!({ "status": "9001", "idleAtMost": 100001 }),
            "spec.trigger[3].phpFpm.idleAtMost",
            "100001 is out of range: expected 0 to 100000".to_string(),
        ),
        (
            json!({ "status": "9001", "interval": "1s", "timeout": "2s" }),
            "spec.trigger[3].phpFpm.timeout",
            "timeout: timeout (2s) must not exceed interval (1s), or probes would overlap".to_string(),
        ),
    ] {
        let (at, value) = added(condition);
        breaks(&[(at.as_str(), value)], path, &message);
    }
}
