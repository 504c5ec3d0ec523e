//! The operator's manifests (deploy/kubernetes/operator.yaml): they pass
//! `kubernetes-validate --strict` for Kubernetes 1.35, and the RBAC grants exactly the
//! verbs the operator uses, never a wildcard.

use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFESTS: &str = "deploy/kubernetes/operator.yaml";

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `kubernetes-validate` from PyPI, which scripts/setup-test.sh installs into a venv
/// under target/; under CI its absence is a failure, never a skip.
fn kubernetes_validate() -> Option<PathBuf> {
    let path = repository().join("target/pytools/bin/kubernetes-validate");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "kubernetes-validate is missing under CI: scripts/setup-test.sh installs it"
    );
    eprintln!("SKIPPED: kubernetes-validate not installed (run scripts/setup-test.sh)");
    None
}

#[test]
fn the_manifests_pass_kubernetes_validate_strict_for_1_35() {
    let Some(tool) = kubernetes_validate() else {
        return;
    };
    let out = Command::new(&tool)
        .args(["--strict", "-k", "1.35.0"])
        .arg(repository().join(MANIFESTS))
        .output()
        .expect("kubernetes-validate runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{stdout}\n{stderr}"
    );
    for resource in [
        "namespace/salve-system",
        "serviceaccount/salve-operator",
        "clusterrole/salve-operator",
        "clusterrolebinding/salve-operator",
        "deployment/salve-operator",
    ] {
        assert!(
            stdout.contains(&format!("passed for resource {resource} ")),
            "{resource} not validated:\n{stdout}\n{stderr}"
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
        // `restart` on a pod deletes it.
        (r#"[""]"#, r#"["pods"]"#, r#"["list", "watch", "delete"]"#),
        // `restart` on a workload patches its pod template.
        (
            r#"["apps"]"#,
            r#"["deployments", "statefulsets"]"#,
            r#"["list", "watch", "patch"]"#,
        ),
        // Node conditions are watched; nothing is done to a node yet.
        (r#"[""]"#, r#"["nodes"]"#, r#"["list", "watch"]"#),
        // Events are created, and patched when one repeats (kube's recorder).
        (
            r#"["events.k8s.io"]"#,
            r#"["events"]"#,
            r#"["create", "patch"]"#,
        ),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    assert_eq!(rules(&text), expected);
}
