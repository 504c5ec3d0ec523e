//! Policies: the YAML contract, its validation with `file:line:col` errors, and its
//! JSON Schema.

mod config_edit;
mod decode;
pub mod defaults;
mod diagnostic;
pub mod load_balancer;
pub mod log_patterns;
mod model;
mod names;
mod parse;
mod quantity;
mod resource;
pub mod rules;
mod schema;
mod schema_types;
mod serde_text;
mod target;
mod validate;
mod yaml;

pub use decode::{suggest, unknown_event_kind, Decoder, Fields};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use load_balancer::{
    DrainArgs, FleetGuard, FleetLockKind, FleetSlots, GatewayBackend, HaproxyServer, LbServer,
    LbServerArgs, LbWeight, NginxUpstreamServer, Ramp, SetWeightArgs,
};
pub use model::*;
pub use names::{HttpUrl, PolicyName, SignalName, UnitName};
pub use quantity::MemoryQuantity;
pub use resource::decode_resource;
pub use schema::policy_schema;
pub use schema_types::NoArgs;
pub use serde_text::{parse_duration, MAX_DURATION};
pub use validate::{validate, FieldPath, Step, Violation};
pub use yaml::{parse_documents, Node, Pos, Value};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Parses every policy document in `source`, reporting all problems found.
pub fn parse_file(file: &Path, source: &str) -> (Vec<Policy>, Vec<Diagnostic>) {
    let diag = |pos: Pos, message: String| Diagnostic {
        file: file.to_path_buf(),
        pos,
        path: None,
        message,
    };
    let documents = match parse_documents(source) {
        Ok(docs) => docs,
        Err(e) => {
            return (
                Vec::new(),
                vec![diag(e.pos, format!("YAML syntax error: {}", e.message))],
            )
        }
    };
    if documents.is_empty() {
        return (
            Vec::new(),
            vec![diag(
                Pos { line: 1, col: 1 },
                "no policy documents in this file".into(),
            )],
        );
    }
    let mut dec = Decoder::default();
    let mut policies = Vec::new();
    for doc in &documents {
        if let Some(policy) = decode_document(&mut dec, doc, file) {
            policies.push(policy);
        }
    }
    let mut errors: Vec<Diagnostic> = dec.errors.into_iter().map(|(p, m)| diag(p, m)).collect();
    errors.sort_by_key(|d| d.pos);
    (policies, errors)
}

/// Decodes one document and runs the validation pass over it; every problem goes to
/// `dec`, each rule broken placed at the value it is about.
fn decode_document(dec: &mut Decoder, doc: &Node, file: &Path) -> Option<Policy> {
    let draft = parse::policy(dec, doc)?;
    let policy = Policy {
        api_version: ApiVersion::V1Alpha1,
        kind: Kind::RemediationPolicy,
        metadata: draft.metadata,
        spec: draft.spec,
        exported_status: serde::de::IgnoredAny,
        source: Source {
            file: file.to_path_buf(),
            line: draft.name_pos.line,
            col: draft.name_pos.col,
        },
    };
    let violations = validate(&policy);
    if violations.is_empty() {
        return Some(policy);
    }
    for v in violations {
        dec.error(parse::position_of(doc, &v), v.message);
    }
    None
}

/// Keeps `load`'s promise for a runtime that acts on some target kinds only: every
/// policy whose target `acts_on` refuses is an error at its name, saying `why`.
pub fn only_targets(
    policies: &[Policy],
    acts_on: impl Fn(&Target) -> bool,
    why: &str,
) -> Result<(), Diagnostics> {
    let errors: Vec<Diagnostic> = policies
        .iter()
        .filter(|p| !acts_on(&p.spec.target))
        .map(|p| Diagnostic {
            file: p.source.file.clone(),
            pos: Pos {
                line: p.source.line,
                col: p.source.col,
            },
            path: None,
            message: format!(
                "policy \"{}\" targets {}: {why}",
                p.name(),
                crate::engine::target_name(p)
            ),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(errors))
    }
}

/// Expands directories to the `.yaml`/`.yml` files directly inside them, sorted, so a
/// load is deterministic. Files named explicitly are taken whatever their extension.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostics> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let io_error = |path: &Path, e: std::io::Error| Diagnostic {
        file: path.to_path_buf(),
        pos: Pos { line: 0, col: 0 },
        path: None,
        message: format!("cannot read: {e}"),
    };
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.is_file()
                                && matches!(
                                    p.extension().and_then(|x| x.to_str()),
                                    Some("yaml" | "yml")
                                )
                        })
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(io_error(path, e)),
            }
        } else {
            files.push(path.clone());
        }
    }
    // The same file named twice (or also found in a named directory) is loaded once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(Diagnostics(errors))
    }
}

/// A problem with a policy as a whole, at its name.
fn at_policy(policy: &Policy, message: String) -> Diagnostic {
    Diagnostic {
        file: policy.source.file.clone(),
        pos: Pos {
            line: policy.source.line,
            col: policy.source.col,
        },
        path: None,
        message,
    }
}

/// The policies of one fleet group are one fleet: they take the same slots and are
/// counted together, so they must say the same of it. A policy that differs from the
/// group's first is refused (rather than the first silently winning).
fn fleet_groups_disagree(policies: &[Policy]) -> Vec<Diagnostic> {
    let terms = |p: &Policy| {
        p.spec.fleet.as_ref().map(|f| {
            let max_unhealthy = p.spec.guard.max_unhealthy;
            let settle = max_unhealthy.map(|_| p.spec.guard.settle);
            (
                f.max_concurrent,
                f.lock,
                max_unhealthy,
                settle,
                p.spec.dry_run,
            )
        })
    };
    let mut first: HashMap<&str, &Policy> = HashMap::new();
    let mut errors = Vec::new();
    for policy in policies {
        let (Some(fleet), Some(mine)) = (&policy.spec.fleet, terms(policy)) else {
            continue;
        };
        let leader = *first.entry(fleet.group.as_str()).or_insert(policy);
        let Some(theirs) = terms(leader) else {
            continue;
        };
        if mine == theirs {
            continue;
        }
        let say = |(slots, lock, max, settle, dry_run): (
            FleetSlots,
            FleetLockKind,
            Option<_>,
            Option<std::time::Duration>,
            bool,
        )| {
            let mut text = format!("maxConcurrent {slots}, lock {}", lock.as_str());
            if dry_run {
                text.push_str(", dryRun");
            }
            match (max, settle) {
                (Some(max), Some(settle)) => text.push_str(&format!(
                    ", maxUnhealthy {max}, settle {}",
                    humantime::format_duration(settle)
                )),
                _ => text.push_str(", no maxUnhealthy"),
            }
            text
        };
        errors.push(at_policy(
            policy,
            format!(
                "policy \"{}\" is in fleet group {} with {}, and the group's first policy \"{}\" ({}:{}) says {}: the policies of a group share its slots and its count, so they must agree",
                policy.name(),
                fleet.group,
                say(mine),
                leader.name(),
                leader.source.file.display(),
                leader.source.line,
                say(theirs)
            ),
        ));
    }
    errors
}

/// Loads policies from files and directories. Either every policy is valid and names are
/// unique across all files, or every problem found is returned.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Policy>, Diagnostics> {
    let files = expand_paths(paths)?;
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(source) => {
                let (found, problems) = parse_file(file, &source);
                policies.extend(found);
                errors.extend(problems);
            }
            Err(e) => errors.push(Diagnostic {
                file: file.clone(),
                pos: Pos { line: 0, col: 0 },
                path: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    let mut seen: HashMap<&str, &Source> = HashMap::new();
    for policy in &policies {
        let first = *seen.entry(policy.name()).or_insert(&policy.source);
        if !std::ptr::eq(first, &policy.source) {
            errors.push(at_policy(
                policy,
                format!(
                    "duplicate policy name \"{}\" (first defined at {}:{})",
                    policy.name(),
                    first.file.display(),
                    first.line
                ),
            ));
        }
    }
    errors.extend(fleet_groups_disagree(&policies));
    if files.is_empty() && errors.is_empty() {
        errors.push(Diagnostic {
            file: paths.first().cloned().unwrap_or_default(),
            pos: Pos { line: 0, col: 0 },
            path: None,
            message: "no policy files found (expected *.yaml or *.yml)".into(),
        });
    }
    if errors.is_empty() {
        Ok(policies)
    } else {
        Err(Diagnostics(errors))
    }
}

#[cfg(test)]
mod fleet_group_tests {
    use super::*;

    fn server(name: &str, fleet: &str, guard: &str) -> String {
        format!(
            "---\napiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ haproxy: {{ socket: /run/haproxy/admin.sock, backend: web, server: {name} }} }}\n  trigger:\n    - http: {{ url: \"http://127.0.0.1/{name}\", failures: 2, interval: 1s, timeout: 500ms }}\n  actions:\n    - drain: {{}}\n  fleet: {fleet}\n  guard: {guard}\n"
        )
    }

    fn disagreements(yaml: &str) -> Vec<String> {
        let (policies, errors) = parse_file(Path::new("lb.yaml"), yaml);
        assert!(errors.is_empty(), "{errors:?}");
        fleet_groups_disagree(&policies)
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn the_policies_of_a_fleet_group_must_agree_on_it() {
        let local = "{ group: web, lock: local }";
        let guard = "{ maxUnhealthy: 1 }";
        let agreeing = server("a", local, guard) + &server("b", local, guard);
        assert_eq!(disagreements(&agreeing), Vec::<String>::new());
        // Other groups are other fleets.
        let apart = server("a", local, guard) + &server("b", "{ group: api, lock: etcd }", "{}");
        assert_eq!(disagreements(&apart), Vec::<String>::new());
        let torn = server("a", local, guard)
            + &server("b", "{ group: web, lock: etcd }", guard)
            + &server("c", local, "{ maxUnhealthy: 2 }");
        let found = disagreements(&torn);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("policy \"b\" is in fleet group web with maxConcurrent 1, lock etcd, maxUnhealthy 1, settle 5m, and the group's first policy \"a\" (lb.yaml:4) says maxConcurrent 1, lock local, maxUnhealthy 1, settle 5m"),
            "{found:?}"
        );
        assert!(found[1].contains("maxUnhealthy 2"), "{found:?}");
    }
}
