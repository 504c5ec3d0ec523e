//! A YAML document tree that remembers where every node came from.
//!
//! serde-based YAML crates stop at the first error and lose positions once a value is
//! deserialized; `salve check` must report *every* problem of a file as `file:line:col`,
//! so policies are read into this small positioned tree and decoded by hand (see
//! `decode.rs`).

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

/// 1-based line and column, as editors count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        // saphyr counts lines from 1 and columns from 0.
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// `quoted` scalars are always strings; plain ones may be numbers or booleans.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    /// The JSON value the node stands for (plain scalars read by [`plain_scalar`]), as
    /// kubectl would send it to the API server; `None` when JSON cannot hold it: a
    /// mapping key that is not a string, or a key written twice.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match &self.value {
            Value::Null => J::Null,
            Value::Scalar { text, quoted: true } => J::String(text.clone()),
            Value::Scalar { text, .. } => plain_scalar(text),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect::<Option<_>>()?),
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let Value::Scalar { text, .. } = &k.value else {
                        return None;
                    };
                    if map.insert(text.clone(), v.to_json()?).is_some() {
                        return None;
                    }
                }
                J::Object(map)
            }
        })
    }

    /// What the node is, in the words an error message uses ("a mapping", "the number 3").
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing (null)".to_string(),
            Value::Scalar { text, quoted: true } => format!("the string \"{text}\""),
            Value::Scalar { text, .. } => match plain_kind(text) {
                PlainKind::Bool => format!("the boolean {text}"),
                PlainKind::Number => format!("the number {text}"),
                PlainKind::Text => format!("the string \"{text}\""),
            },
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

enum PlainKind {
    Bool,
    Number,
    Text,
}

fn plain_kind(text: &str) -> PlainKind {
    match plain_scalar(text) {
        serde_json::Value::Bool(_) => PlainKind::Bool,
        serde_json::Value::Number(_) => PlainKind::Number,
        _ => PlainKind::Text,
    }
}

/// The JSON value an unquoted scalar stands for: a boolean, a number written the way
/// JSON writes numbers (finite), or else the text itself. The decoder and the YAML to
/// JSON conversion both use it, so a document means the same to both readers.
pub fn plain_scalar(text: &str) -> serde_json::Value {
    use serde_json::Value as J;
    match text {
        "true" | "True" | "TRUE" => return J::Bool(true),
        "false" | "False" | "FALSE" => return J::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let numeric = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'));
    if numeric {
        if let Ok(n) = text.parse::<i64>() {
            return J::from(n);
        }
        if let Ok(n) = text.parse::<u64>() {
            return J::from(n);
        }
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return J::Number(n);
        }
    }
    J::String(text.to_string())
}

/// A YAML syntax error; the whole file is unusable past it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses every document of a (possibly multi-document) YAML stream.
/// Empty documents (a trailing `---`) are dropped.
pub fn parse_documents(source: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder::default();
    for item in Parser::new_from_str(source) {
        let (event, span) = item.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info().to_string(),
        })?;
        builder.push(event, &span)?;
    }
    Ok(builder.documents)
}

enum Open {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

#[derive(Default)]
struct Builder {
    documents: Vec<Node>,
    stack: Vec<Open>,
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes copied in by aliases so far.
    expanded: usize,
}

/// How many nodes aliases may copy into one file in total.
const MAX_ALIAS_EXPANSION: usize = 10_000;

fn node_count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(node_count).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| node_count(k) + node_count(v))
            .sum(),
        Value::Null | Value::Scalar { .. } => 0,
    }
}

impl Builder {
    fn push(&mut self, event: Event<'_>, span: &Span) -> Result<(), SyntaxError> {
        let pos = Pos::from_span(span);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let value = if !quoted && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        quoted,
                    }
                };
                self.complete(Node { value, pos }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Open::Seq(
                    Node {
                        value: Value::Seq(Vec::new()),
                        pos,
                    },
                    anchor,
                ));
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map(
                    Node {
                        value: Value::Map(Vec::new()),
                        pos,
                    },
                    anchor,
                    None,
                ));
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Seq(node, anchor)) | Some(Open::Map(node, anchor, None)) => {
                    self.complete(node, anchor)
                }
                Some(Open::Map(_, _, Some(key))) => Err(SyntaxError {
                    pos: key.pos,
                    message: "mapping key without a value".to_string(),
                }),
                None => Err(SyntaxError {
                    pos,
                    message: "unbalanced end of collection".to_string(),
                }),
            },
            Event::Alias(anchor) => match self.anchors.get(&anchor) {
                // An alias stands for a copy of the anchored node; the copy keeps the
                // anchor's position, which is where the content really is.
                Some((node, size)) => {
                    // Nested aliases grow exponentially ("billion laughs"): a 1 KB file
                    // can expand to gigabytes. No policy needs more than a few copies.
                    self.expanded += size;
                    if self.expanded > MAX_ALIAS_EXPANSION {
                        return Err(SyntaxError {
                            pos,
                            message: format!(
                                "aliases expand to more than {MAX_ALIAS_EXPANSION} nodes; refusing to load"
                            ),
                        });
                    }
                    let node = node.clone();
                    self.complete(node, 0)
                }
                None => Err(SyntaxError {
                    pos,
                    message: "alias to an unknown anchor".to_string(),
                }),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
        }
    }

    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        // saphyr numbers anchors from 1; 0 means "no anchor".
        if anchor != 0 {
            self.anchors
                .insert(anchor, (node.clone(), node_count(&node)));
        }
        match self.stack.last_mut() {
            None => {
                if node.value != Value::Null {
                    self.documents.push(node);
                }
            }
            Some(Open::Seq(parent, _)) => {
                if let Value::Seq(items) = &mut parent.value {
                    items.push(node);
                }
            }
            Some(Open::Map(parent, _, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Value::Map(entries) = &mut parent.value {
                        entries.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let docs = parse_documents("a: 1\nb:\n  c: x\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("expected a map")
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        let Value::Map(inner) = &entries[1].1.value else {
            panic!("expected a map")
        };
        assert_eq!(inner[0].1.pos, Pos { line: 3, col: 6 });
    }

    #[test]
    fn multi_document_streams_yield_each_document_and_drop_empty_ones() {
        let docs = parse_documents("a: 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].pos.line, 3);
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn quoted_scalars_stay_strings_and_plain_null_is_null() {
        let docs = parse_documents("a: \"3\"\nb: ~\nc:\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("expected a map")
        };
        assert_eq!(entries[0].1.describe(), "the string \"3\"");
        assert_eq!(entries[1].1.value, Value::Null);
        assert_eq!(entries[2].1.value, Value::Null);
    }

    #[test]
    fn alias_bombs_are_refused_instead_of_exhausting_memory() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let refs = vec![format!("*a{}", level - 1); 10].join(", ");
            doc.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let err = parse_documents(&doc).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err:?}");
    }

    #[test]
    fn aliases_resolve_to_the_anchored_node() {
        let docs = parse_documents("a: &x {k: v}\nb: *x\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("expected a map")
        };
        assert_eq!(entries[0].1, entries[1].1);
    }
}
