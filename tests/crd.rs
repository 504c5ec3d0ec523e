//! What salve gives a cluster. The RemediationPolicy CustomResourceDefinition: the
//! committed copy is the generated one, its schema is structural (the API server
//! refuses anything else), and the definition passes `kubernetes-validate --strict` for
//! Kubernetes 1.35. The operator's manifests (deploy/kubernetes/operator.yaml) and the
//! node agent's DaemonSet (node-agent.yaml) pass it too; the RBAC grants exactly the
//! verbs the operator uses, never a wildcard, and the node agent runs unprivileged.

use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::Command;

const COMMITTED: &str = "deploy/kubernetes/remediationpolicy.crd.json";

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn generated() -> J {
    serde_json::from_str(&salve::kubernetes::crd_json()).expect("the CRD is JSON")
}

fn schema_of(crd: &J) -> &J {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

#[test]
fn committed_crd_matches_the_generated_one() {
    let committed = std::fs::read_to_string(repository().join(COMMITTED))
        .expect("deploy/kubernetes/remediationpolicy.crd.json is committed");
    assert!(
        committed == salve::kubernetes::crd_json(),
        "{COMMITTED} is stale: run `make crd`"
    );
    let in_chart = std::fs::read_to_string(
        repository()
            .join(CHART)
            .join("crds/remediationpolicy.crd.json"),
    )
    .expect("the chart carries the CRD");
    assert!(
        in_chart == committed,
        "the chart's CRD is stale: run `make crd`"
    );
}

#[test]
fn crd_names_scope_subresources_and_columns() {
    let crd = generated();
    assert_eq!(crd["metadata"]["name"], "remediationpolicies.salve.dev");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "salve.dev");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "RemediationPolicy");
    assert_eq!(spec["names"]["plural"], "remediationpolicies");
    assert_eq!(spec["names"]["shortNames"], serde_json::json!(["rp"]));
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| c["name"].as_str().expect("a column has a name"))
        .collect();
    assert_eq!(columns, ["Target", "Ready", "Attempts", "Circuit", "Age"]);
    let status = &schema_of(&crd)["properties"]["status"]["properties"];
    for field in [
        "observedGeneration",
        "conditions",
        "attempts",
        "lastAttempt",
    ] {
        assert!(status.get(field).is_some(), "status has {field}: {status}");
    }
    let condition = &status["conditions"]["items"]["properties"];
    for field in ["type", "status", "reason", "message", "lastTransitionTime"] {
        assert!(condition.get(field).is_some(), "a condition has {field}");
    }
}

/// Every rule of a structural schema (Kubernetes' "Specifying a structural schema"),
/// as a list of what breaks them, by path.
fn structural_problems(node: &J, at: &str, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{at}: not a schema object"));
        return;
    };
    let open = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&J::Bool(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&J::Bool(true));
    match obj.get("type") {
        Some(J::String(t)) if !t.is_empty() => {}
        None if open => {}
        other => problems.push(format!(
            "{at}: type must be one non-empty string, is {other:?}"
        )),
    }
    for banned in [
        "$ref",
        "$schema",
        "$defs",
        "definitions",
        "const",
        "unevaluatedProperties",
    ] {
        if obj.contains_key(banned) {
            problems.push(format!("{at}: {banned} is not allowed in a CRD schema"));
        }
    }
    if obj.get("uniqueItems") == Some(&J::Bool(true)) {
        problems.push(format!("{at}: uniqueItems: true is forbidden"));
    }
    if let Some(format) = obj.get("format").and_then(J::as_str) {
        if !salve::kubernetes::KUBERNETES_FORMATS.contains(&format) {
            problems.push(format!(
                "{at}: format `{format}` is unknown to the API server"
            ));
        }
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problems.push(format!(
            "{at}: properties and additionalProperties together"
        ));
    }
    if let Some(J::Object(props)) = obj.get("properties") {
        for (name, sub) in props {
            structural_problems(sub, &format!("{at}.{name}"), problems);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_problems(items, &format!("{at}[]"), problems);
    }
    if let Some(extra @ J::Object(_)) = obj.get("additionalProperties") {
        structural_problems(extra, &format!("{at}{{}}"), problems);
    }
    for junctor in ["allOf", "anyOf", "oneOf", "not"] {
        let Some(branches) = obj.get(junctor) else {
            continue;
        };
        let branches: Vec<&J> = match branches {
            J::Array(list) => list.iter().collect(),
            single => vec![single],
        };
        for (i, branch) in branches.iter().enumerate() {
            junctor_problems(branch, Some(obj), &format!("{at}.{junctor}[{i}]"), problems);
        }
    }
}

/// Inside allOf/anyOf/oneOf/not: only value validations, and only of fields the schema
/// outside the junctor also declares, at every depth.
fn junctor_problems(
    branch: &J,
    outside: Option<&serde_json::Map<String, J>>,
    at: &str,
    problems: &mut Vec<String>,
) {
    let Some(obj) = branch.as_object() else {
        problems.push(format!("{at}: not a schema object"));
        return;
    };
    for banned in [
        "type",
        "description",
        "default",
        "additionalProperties",
        "nullable",
        "$ref",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
    ] {
        if obj.contains_key(banned) {
            problems.push(format!("{at}: {banned} inside a junctor"));
        }
    }
    let declared = |name: &str| {
        outside
            .and_then(|o| o.get("properties"))
            .and_then(|p| p.get(name))
            .and_then(J::as_object)
    };
    if let Some(J::Array(names)) = obj.get("required") {
        for name in names.iter().filter_map(J::as_str) {
            if declared(name).is_none() {
                problems.push(format!(
                    "{at}: requires `{name}`, which the schema does not declare"
                ));
            }
        }
    }
    if let Some(J::Object(props)) = obj.get("properties") {
        for (name, sub) in props {
            match declared(name) {
                None => problems.push(format!("{at}: property `{name}` only inside a junctor")),
                Some(outer) => {
                    junctor_problems(sub, Some(outer), &format!("{at}.{name}"), problems)
                }
            }
        }
    }
    if let Some(items) = obj.get("items") {
        let outer = outside.and_then(|o| o.get("items")).and_then(J::as_object);
        if outer.is_none() {
            problems.push(format!("{at}: items only inside a junctor"));
        }
        junctor_problems(items, outer, &format!("{at}[]"), problems);
    }
    for junctor in ["allOf", "anyOf", "oneOf", "not"] {
        let branches: Vec<&J> = match obj.get(junctor) {
            Some(J::Array(list)) => list.iter().collect(),
            Some(single) => vec![single],
            None => continue,
        };
        for (i, nested) in branches.iter().enumerate() {
            junctor_problems(nested, outside, &format!("{at}.{junctor}[{i}]"), problems);
        }
    }
}

#[test]
fn the_schema_is_structural() {
    let crd = generated();
    let schema = schema_of(&crd);
    let mut problems = Vec::new();
    structural_problems(schema, "openAPIV3Schema", &mut problems);
    assert!(
        problems.is_empty(),
        "not structural:\n{}",
        problems.join("\n")
    );
    // Nothing is left open to unknown fields: the spec is the policy format, exactly.
    let text = schema.to_string();
    assert!(
        !text.contains("x-kubernetes-preserve-unknown-fields"),
        "an open object in the schema"
    );
    assert_eq!(schema["type"], "object", "the root is an object");
}

#[test]
fn the_structural_checker_finds_each_rule_broken() {
    let broken = [
        (
            "a node without a type",
            serde_json::json!({ "type": "object", "properties": { "a": {} } }),
        ),
        (
            "a $ref",
            serde_json::json!({ "type": "object", "properties": { "a": { "$ref": "#/x" } } }),
        ),
        (
            "properties and additionalProperties",
            serde_json::json!({ "type": "object", "properties": { "a": { "type": "string" } }, "additionalProperties": false }),
        ),
        (
            "uniqueItems",
            serde_json::json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true }),
        ),
        (
            "an unknown format",
            serde_json::json!({ "type": "integer", "format": "uint32" }),
        ),
        (
            "a type inside a junctor",
            serde_json::json!({ "type": "object", "properties": { "a": { "type": "string" } }, "oneOf": [{ "type": "object" }] }),
        ),
        (
            "a junctor requiring what is not declared",
            serde_json::json!({ "type": "object", "properties": { "a": { "type": "string" } }, "oneOf": [{ "required": ["b"] }] }),
        ),
        (
            "a property only inside a junctor",
            serde_json::json!({ "type": "object", "properties": { "a": { "type": "string" } }, "anyOf": [{ "properties": { "b": {} } }] }),
        ),
        (
            "a description deep inside a junctor",
            serde_json::json!({ "type": "object", "properties": { "a": { "type": "object", "properties": { "b": { "type": "string" } } } }, "allOf": [{ "properties": { "a": { "properties": { "b": { "description": "x" } } } } }] }),
        ),
        (
            "a list type array",
            serde_json::json!({ "type": ["object", "null"] }),
        ),
    ];
    for (what, schema) in broken {
        let mut found = Vec::new();
        structural_problems(&schema, "x", &mut found);
        assert!(!found.is_empty(), "the checker missed {what}");
    }
    let fine = serde_json::json!({ "type": "object", "properties": { "a": { "type": "string" } }, "oneOf": [{ "required": ["a"] }] });
    let mut found = Vec::new();
    structural_problems(&fine, "x", &mut found);
    assert!(found.is_empty(), "{found:?}");
}

/// A tool `make test-setup` installs under target/pytools/bin: kubernetes-validate
/// (PyPI), helm (from a PyPI package, see scripts/setup-test.sh). Under CI a missing
/// one fails the test; elsewhere the test says it skipped.
fn installed(name: &str) -> Option<PathBuf> {
    let path = repository().join("target/pytools/bin").join(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing under CI: scripts/setup-test.sh installs it"
    );
    eprintln!("SKIPPED: {name} not installed (run scripts/setup-test.sh)");
    None
}

fn kubernetes_validate() -> Option<PathBuf> {
    installed("kubernetes-validate")
}

/// `kubernetes-validate --strict -k 1.35.0` over `files`, which must pass; its report.
fn validated_for_1_35(tool: &Path, files: &[PathBuf]) -> String {
    let out = Command::new(tool)
        .args(["--strict", "-k", "1.35.0"])
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubernetes-validate failed for {files:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_crd_passes_kubernetes_validate_strict_for_1_35() {
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let stdout = validated_for_1_35(&tool, &[repository().join(COMMITTED)]);
    assert!(
        stdout.contains("INFO") && stdout.contains("passed"),
        "{stdout}"
    );

    // And it would say so: a definition with a misspelt field fails.
    let mut broken = generated();
    broken["spec"]["scopee"] = J::String("Namespaced".into());
    let file = std::env::temp_dir().join(format!("salve-crd-{}.json", std::process::id()));
    std::fs::write(&file, broken.to_string()).expect("a temp file writes");
    let out = Command::new(&tool)
        .args(["--strict", "-k", "1.35.0"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        !out.status.success(),
        "a misspelt field passed kubernetes-validate"
    );
}

#[test]
fn an_exported_resource_reads_the_same_through_kube_types_and_the_decoder() {
    let text = std::fs::read_to_string(
        repository().join("tests/fixtures/policies/kubernetes/exported-from-cluster.yaml"),
    )
    .expect("the fixture reads");
    let docs = salve::policy::parse_documents(&text).expect("the fixture is YAML");
    let json = docs[0].to_json().expect("the fixture has a JSON form");
    let resource: salve::kubernetes::RemediationPolicy =
        serde_json::from_value(json.clone()).expect("kube's type reads an exported resource");
    let decoded = resource
        .to_policy()
        .expect("the resource is a valid policy");
    assert_eq!(
        format!("{:?}", resource.spec.policy),
        format!("{:?}", decoded.spec)
    );
    assert_eq!(decoded.metadata.namespace.as_deref(), Some("web"));
    let status = resource.status.clone().expect("the status reads");
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.conditions[0].type_, "Ready");
    assert_eq!(
        status.last_attempt.and_then(|a| a.outcome).as_deref(),
        Some("ok")
    );

    // Types alone are not validity: a cooldown past its window reads, and to_policy says no.
    let mut long = resource.clone();
    long.spec.policy.guard.cooldown = std::time::Duration::from_secs(7200);
    let errors = long
        .to_policy()
        .expect_err("the cooldown exceeds the window");
    assert_eq!(
        errors.to_string(),
        "web/php-fpm-down: spec.guard.cooldown: guard: cooldown (2h) must not exceed window (10m)"
    );

    // The transparent spec still refuses a field the policy format does not have.
    let mut bad = json;
    bad["spec"]["cooldown"] = J::String("5s".into());
    assert!(serde_json::from_value::<salve::kubernetes::RemediationPolicy>(bad.clone()).is_err());
    assert!(salve::policy::decode_resource(&bad, "web/x").is_err());
}

/// The venv's Python, with `jsonschema` (kubernetes-validate brings it).
fn pytools_python() -> Option<PathBuf> {
    kubernetes_validate()?;
    Some(repository().join("target/pytools/bin/python"))
}

/// Validates `doc` against the CRD's own openAPIV3Schema with Python's jsonschema
/// (Draft 4, the dialect OpenAPI 3.0 schemas build on); the errors, if any.
fn schema_errors(python: &Path, schema: &J, doc: &J, tag: &str) -> Vec<String> {
    let dir = std::env::temp_dir();
    let schema_file = dir.join(format!(
        "salve-crd-schema-{}-{tag}.json",
        std::process::id()
    ));
    let doc_file = dir.join(format!("salve-crd-doc-{}-{tag}.json", std::process::id()));
    std::fs::write(&schema_file, schema.to_string()).expect("a temp file writes");
    std::fs::write(&doc_file, doc.to_string()).expect("a temp file writes");
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1])); doc = json.load(open(sys.argv[2]))\n\
        for e in jsonschema.Draft4Validator(schema).iter_errors(doc):\n    print('/'.join(map(str, e.absolute_path)) + ': ' + e.message)\n";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&schema_file)
        .arg(&doc_file)
        .output()
        .expect("python runs");
    let _ = std::fs::remove_file(&schema_file);
    let _ = std::fs::remove_file(&doc_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn every_kubernetes_example_policy_validates_against_the_crd_schema() {
    let Some(python) = pytools_python() else {
        return;
    };
    let crd = generated();
    let schema = schema_of(&crd);
    let dir = repository().join("policies/kubernetes");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("policies/kubernetes exists") {
        let path = entry.expect("a directory entry reads").path();
        let text = std::fs::read_to_string(&path).expect("an example reads");
        for (i, doc) in salve::policy::parse_documents(&text)
            .expect("an example is YAML")
            .iter()
            .enumerate()
        {
            let json = doc.to_json().expect("an example has a JSON form");
            let tag = format!("{checked}-{i}");
            let errors = schema_errors(&python, schema, &json, &tag);
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} examples");

    // And the check can fail: a wrong type and a value out of bounds are caught.
    let text = std::fs::read_to_string(dir.join("php-deployment-unhealthy.yaml"))
        .expect("the example reads");
    let mut bad = salve::policy::parse_documents(&text).expect("YAML")[0]
        .to_json()
        .expect("JSON");
    bad["spec"]["guard"]["maxAttempts"] = J::from(0);
    bad["spec"]["target"]["deployment"]["name"] = J::from(3);
    let errors = schema_errors(&python, schema, &bad, "bad");
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

const MANIFESTS: &str = "deploy/kubernetes/operator.yaml";
const NODE_AGENT: &str = "deploy/kubernetes/node-agent.yaml";
const CHART: &str = "charts/salve";

fn helm() -> Option<PathBuf> {
    installed("helm")
}

/// `helm template` of the chart with `set` values: its output, or its error.
fn render(helm: &Path, set: &[&str]) -> Result<String, String> {
    let mut command = Command::new(helm);
    command
        .args(["template", "salve"])
        .arg(repository().join(CHART))
        .args(["--namespace", "salve-system", "--include-crds"]);
    for value in set {
        command.args(["--set", value]);
    }
    let out = command.output().expect("helm runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_chart_lints_strictly_and_renders_what_kubernetes_accepts() {
    let Some(helm) = helm() else { return };
    let lint = Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(repository().join(CHART))
        .output()
        .expect("helm lint runs");
    assert!(
        lint.status.success(),
        "helm lint --strict failed:\n{}\n{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    for (set, expected) in [
        (
            &[][..],
            &[
                "customresourcedefinition/remediationpolicies.salve.dev",
                "deployment/salve-operator",
                "clusterrole/salve-operator",
                "role/salve-operator",
            ][..],
        ),
        (
            &["nodeAgent.enabled=true", "operator.replicas=1"][..],
            &[
                "daemonset/salve-node-agent",
                "serviceaccount/salve-node-agent",
            ][..],
        ),
    ] {
        let rendered = render(&helm, set).unwrap_or_else(|e| panic!("helm template {set:?}: {e}"));
        // Under target/, the build's own directory: nothing outside the repository.
        let file = repository().join(format!(
            "target/helm-rendered-{}-{}.yaml",
            std::process::id(),
            set.len()
        ));
        std::fs::write(&file, &rendered).expect("rendered manifests written");
        let stdout = validated_for_1_35(&tool, std::slice::from_ref(&file));
        let _ = std::fs::remove_file(&file);
        for resource in expected {
            assert!(
                stdout.contains(&format!("passed for resource {resource} ")),
                "{resource} not rendered for {set:?}:\n{stdout}"
            );
        }
        // One replica runs alone; two elect a leader.
        let alone = rendered.contains("--no-leader-election");
        assert_eq!(alone, set.contains(&"operator.replicas=1"), "{set:?}");
    }
    // The chart's RBAC is the manifests' own, rule for rule.
    let rendered = render(&helm, &[]).expect("helm template");
    let manifests = std::fs::read_to_string(repository().join(MANIFESTS)).expect("manifests read");
    assert_eq!(rules(&rendered), rules(&manifests));
}

#[test]
fn the_charts_values_schema_refuses_what_would_not_work() {
    let Some(helm) = helm() else { return };
    for (bad, why) in [
        ("operator.replicas=0", "replicas"),
        ("nodeAgent.runAsUser=0", "runAsUser"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("operator.leaseDuration=soon", "leaseDuration"),
        ("operator.watchNamespace=Not_A_Namespace", "watchNamespace"),
        ("unknownValue=1", "unknownValue"),
    ] {
        let error = render(&helm, &[bad]).expect_err(bad);
        assert!(error.contains(why), "{bad}: {error}");
    }
}

#[test]
fn the_node_agent_runs_as_the_hosts_salve_user_never_privileged() {
    let text = std::fs::read_to_string(repository().join(NODE_AGENT)).expect("manifest read");
    for needed in [
        "runAsNonRoot: true",
        "runAsUser: 990",
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        r#"drop: ["ALL"]"#,
        "automountServiceAccountToken: false",
        "path: /run/dbus/system_bus_socket, type: Socket",
        "salve.dev/agent: \"true\"",
    ] {
        assert!(text.contains(needed), "{NODE_AGENT} lacks `{needed}`");
    }
    for refused in ["privileged:", "hostPID", "hostIPC", "add:", "runAsUser: 0"] {
        assert!(!text.contains(refused), "{NODE_AGENT} has `{refused}`");
    }
    // Policies and logs are read, never written.
    assert!(text.contains("mountPath: /etc/salve/policies, readOnly: true"));
    assert!(text.contains("mountPath: /var/log, readOnly: true"));
}

#[test]
fn the_manifests_pass_kubernetes_validate_strict_for_1_35() {
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let stdout = validated_for_1_35(
        &tool,
        &[repository().join(MANIFESTS), repository().join(NODE_AGENT)],
    );
    for resource in [
        "namespace/salve-system",
        "serviceaccount/salve-operator",
        "clusterrole/salve-operator",
        "clusterrolebinding/salve-operator",
        "role/salve-operator",
        "rolebinding/salve-operator",
        "deployment/salve-operator",
        "serviceaccount/salve-node-agent",
        "daemonset/salve-node-agent",
    ] {
        assert!(
            stdout.contains(&format!("passed for resource {resource} ")),
            "{resource} not validated:\n{stdout}"
        );
    }
}

/// Each rule's (apiGroups, resources, verbs), as the manifest writes them in flow
/// lists, one per line.
fn rules(text: &str) -> Vec<(String, String, String)> {
    let list = |line: &str, key: &str| {
        line.trim()
            .trim_start_matches("- ")
            .strip_prefix(key)
            .map(|rest| rest.trim().to_string())
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(groups) = list(line, "apiGroups:") {
            let resources = lines.get(i + 1).and_then(|l| list(l, "resources:"));
            let verbs = lines.get(i + 2).and_then(|l| list(l, "verbs:"));
            let (Some(resources), Some(verbs)) = (resources, verbs) else {
                panic!("rule at line {} is not apiGroups, resources, verbs", i + 1);
            };
            found.push((groups, resources, verbs));
        }
    }
    found
}

#[test]
fn the_rbac_grants_only_the_verbs_the_operator_uses() {
    let text = std::fs::read_to_string(repository().join(MANIFESTS)).expect("manifests read");
    assert!(
        !text.contains("\"*\"") && !text.contains("'*'"),
        "a wildcard in the RBAC"
    );
    let expected = [
        // Policies are read and watched, and their `Ready` condition written.
        (
            r#"["salve.dev"]"#,
            r#"["remediationpolicies"]"#,
            r#"["list", "watch"]"#,
        ),
        (
            r#"["salve.dev"]"#,
            r#"["remediationpolicies/status"]"#,
            r#"["patch"]"#,
        ),
        // `restart`/`deletePod` deletes a pod; `verify.ready` reads it back.
        (
            r#"[""]"#,
            r#"["pods"]"#,
            r#"["get", "list", "watch", "delete"]"#,
        ),
        // `rolloutRestart` and `raiseMemoryLimit` patch a workload's pod template
        // (the latter reads it first); `verify.ready` reads its rollout.
        (
            r#"["apps"]"#,
            r#"["deployments", "statefulsets"]"#,
            r#"["get", "list", "watch", "patch"]"#,
        ),
        // `scale` reads and writes the scale subresource.
        (
            r#"["apps"]"#,
            r#"["deployments/scale", "statefulsets/scale"]"#,
            r#"["get", "patch"]"#,
        ),
        // `verify.ready` of a deleted pod reads the controller replacing it.
        (
            r#"["apps"]"#,
            r#"["replicasets", "daemonsets"]"#,
            r#"["get"]"#,
        ),
        // Node conditions are watched; `cordon` patches a node.
        (
            r#"[""]"#,
            r#"["nodes"]"#,
            r#"["get", "list", "watch", "patch"]"#,
        ),
        // `configMapEdit` reads a ConfigMap and patches its key.
        (r#"[""]"#, r#"["configmaps"]"#, r#"["get", "patch"]"#),
        // A Gateway API backend's weight: the HTTPRoute read, its rules patched.
        (
            r#"["gateway.networking.k8s.io"]"#,
            r#"["httproutes"]"#,
            r#"["get", "patch"]"#,
        ),
        // Events are created, and patched when one repeats (kube's recorder).
        (
            r#"["events.k8s.io"]"#,
            r#"["events"]"#,
            r#"["create", "patch"]"#,
        ),
        // In salve-system only (a Role): the leader's Lease, and the guard records'
        // ConfigMap, each made when missing and patched.
        (
            r#"["coordination.k8s.io"]"#,
            r#"["leases"]"#,
            r#"["get", "create", "patch"]"#,
        ),
        (
            r#"[""]"#,
            r#"["configmaps"]"#,
            r#"["get", "create", "patch"]"#,
        ),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    assert_eq!(rules(&text), expected);
}
