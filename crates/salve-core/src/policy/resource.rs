//! A policy as the Kubernetes API serves it: a `RemediationPolicy` custom resource in
//! JSON. It goes through the same positioned decoder and validation pass as a file, so
//! it gets the same messages, all at once, each placed by its JSON path
//! (`spec.guard.cooldown`) since JSON from the API server has no lines.

use super::decode::Decoder;
use super::diagnostic::{Diagnostic, Diagnostics};
use super::model::Policy;
use super::yaml::{Node, Pos, Value};
use std::path::PathBuf;

/// Decodes and validates a custom resource; `origin` (its `namespace/name`) names it in
/// every message.
pub fn decode_resource(object: &serde_json::Value, origin: &str) -> Result<Policy, Diagnostics> {
    let mut paths = Vec::new();
    let doc = to_node(object, String::new(), &mut paths);
    let mut dec = Decoder::default();
    let file = PathBuf::from(origin);
    let decoded = super::decode_document(&mut dec, &doc, &file);
    if dec.errors.is_empty() {
        if let Some(mut policy) = decoded {
            policy.source.line = 0;
            policy.source.col = 0;
            return Ok(policy);
        }
    }
    let mut errors: Vec<(Pos, String)> = dec.errors;
    errors.sort_by_key(|(pos, _)| *pos);
    Err(Diagnostics(
        errors
            .into_iter()
            .map(|(pos, message)| Diagnostic {
                file: file.clone(),
                pos: Pos::default(),
                path: Some(path_label(&paths, pos)),
                message,
            })
            .collect(),
    ))
}

/// The JSON path of the node numbered `pos.line`; the document itself is `(root)`.
fn path_label(paths: &[String], pos: Pos) -> String {
    match paths.get(pos.line.wrapping_sub(1)) {
        Some(p) if !p.is_empty() => p.clone(),
        _ => "(root)".to_string(),
    }
}

/// The positioned tree of a JSON value. Positions number the nodes (line = index into
/// `paths` + 1), so an error found at a node maps back to its path. Strings become
/// quoted scalars and numbers and booleans plain ones, which is how the decoder tells
/// `"3"` from `3` in YAML too.
fn to_node(value: &serde_json::Value, path: String, paths: &mut Vec<String>) -> Node {
    use serde_json::Value as J;
    paths.push(path.clone());
    let pos = Pos {
        line: paths.len(),
        col: 1,
    };
    let value = match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Scalar {
            text: b.to_string(),
            quoted: false,
        },
        J::Number(n) => Value::Scalar {
            text: n.to_string(),
            quoted: false,
        },
        J::String(s) => Value::Scalar {
            text: s.clone(),
            quoted: true,
        },
        J::Array(items) => Value::Seq(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_node(item, format!("{path}[{i}]"), paths))
                .collect(),
        ),
        J::Object(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    let at = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let key = to_node(&J::String(k.clone()), at.clone(), paths);
                    (key, to_node(v, at, paths))
                })
                .collect(),
        ),
    };
    Node { value, pos }
}
