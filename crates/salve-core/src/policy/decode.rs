//! Hand-written decoding of the positioned YAML tree into typed values.
//!
//! Written by hand because serde stops at the first error: an operator fixing a policy
//! at 3 a.m. wants every mistake of the file at once, each with its line and column and,
//! for a misspelt field, the name that was probably meant.

use super::rules;
use super::yaml::{plain_scalar, Node, Pos, Value};
use std::collections::HashMap;
use std::time::Duration;

/// A noun in its two forms, so messages read "a list of actions" and "one action".
#[derive(Debug, Clone, Copy)]
pub struct Noun {
    pub one: &'static str,
    pub many: &'static str,
}

impl Noun {
    pub const fn new(one: &'static str, many: &'static str) -> Self {
        Noun { one, many }
    }
}

/// "a" or "an", by the sound of the first letter (close enough for field names).
pub fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | 'A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

#[derive(Default)]
pub struct Decoder {
    pub errors: Vec<(Pos, String)>,
}

/// The entries of a mapping whose keys were all checked against the known field names.
pub struct Fields<'n> {
    pub pos: Pos,
    what: &'static str,
    entries: HashMap<&'n str, &'n Node>,
    /// Set when a key was reported as unknown, so follow-on "missing" errors can be
    /// left out: the misspelling is the one thing to fix.
    pub had_unknown: bool,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.get(key).copied()
    }

    pub fn required(&self, dec: &mut Decoder, key: &str) -> Option<&'n Node> {
        let node = self.get(key);
        if node.is_none() && !self.had_unknown {
            dec.error(
                self.pos,
                format!("missing required field `{key}` in {}", self.what),
            );
        }
        node
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The closest known name to a misspelt one, if any is close enough to be a likely typo.
pub fn suggest<'a>(given: &str, known: &[&'a str]) -> Option<&'a str> {
    let normalize = |s: &str| s.replace(['_', '-'], "").to_lowercase();
    let given_norm = normalize(given);
    if let Some(exact) = known.iter().find(|k| normalize(k) == given_norm) {
        return Some(exact);
    }
    let limit = (given.len() / 3).max(1);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(given, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The message for an unknown event kind in an events file.
pub fn unknown_event_kind(given: &str, known: &[&str]) -> String {
    unknown_name("event kind", given, known)
}

/// "unknown X `y`, did you mean `z`? (expected one of: a, b, c)"
pub fn unknown_name(what: &str, given: &str, known: &[&str]) -> String {
    let hint = suggest(given, known)
        .map(|s| format!(", did you mean `{s}`?"))
        .unwrap_or_default();
    if known.is_empty() {
        return format!("unknown {what} `{given}`: none are accepted here");
    }
    format!(
        "unknown {what} `{given}`{hint} (expected one of: {})",
        known.join(", ")
    )
}

impl Decoder {
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push((pos, message.into()));
    }

    fn expected(&mut self, node: &Node, what: &str) {
        self.error(
            node.pos,
            format!("expected {what}, found {}", node.describe()),
        );
    }

    /// An action's options: like [`Decoder::fields`], but `restart:` with nothing after
    /// it means "no options", like `restart: {}`.
    pub fn options<'n>(
        &mut self,
        node: &'n Node,
        what: &'static str,
        known: &[&str],
    ) -> Option<Fields<'n>> {
        self.mapping(node, what, known, true)
    }

    /// Reads a mapping whose keys must be among `known`; every unknown or duplicate key is
    /// reported, and the known ones are still decoded so later errors are found too.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &'static str,
        known: &[&str],
    ) -> Option<Fields<'n>> {
        self.mapping(node, what, known, false)
    }

    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        what: &'static str,
        known: &[&str],
        null_is_empty: bool,
    ) -> Option<Fields<'n>> {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            Value::Null if null_is_empty => {
                return Some(Fields {
                    pos: node.pos,
                    what,
                    entries: HashMap::new(),
                    had_unknown: false,
                })
            }
            _ => {
                self.expected(node, &format!("a mapping for {what}"));
                return None;
            }
        };
        let mut fields = Fields {
            pos: node.pos,
            what,
            entries: HashMap::new(),
            had_unknown: false,
        };
        for (key, value) in entries {
            let Value::Scalar { text, .. } = &key.value else {
                self.expected(key, "a field name");
                continue;
            };
            if !known.contains(&text.as_str()) {
                fields.had_unknown = true;
                self.error(
                    key.pos,
                    unknown_name(&format!("field in {what}:"), text, known),
                );
            } else if fields.entries.insert(text.as_str(), value).is_some() {
                self.error(key.pos, format!("duplicate field `{text}` in {what}"));
            }
        }
        Some(fields)
    }

    /// A mapping with exactly one key naming a variant (`restart: {}`, `http: {...}`).
    pub fn variant<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        known: &[&str],
    ) -> Option<(&'n str, &'n Node)> {
        match &node.value {
            Value::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                let Value::Scalar { text, .. } = &key.value else {
                    self.expected(key, &format!("the name of {} {what}", article(what)));
                    return None;
                };
                if known.contains(&text.as_str()) {
                    Some((text.as_str(), value))
                } else {
                    self.error(key.pos, unknown_name(what, text, known));
                    None
                }
            }
            Value::Map(entries) if entries.is_empty() => {
                self.error(
                    node.pos,
                    format!("empty {what}: expected one of: {}", known.join(", ")),
                );
                None
            }
            Value::Map(entries) => {
                let names: Vec<String> = entries
                    .iter()
                    .map(|(k, _)| match &k.value {
                        Value::Scalar { text, .. } => format!("`{text}`"),
                        _ => "?".to_string(),
                    })
                    .collect();
                self.error(
                    node.pos,
                    format!(
                        "{} {what} names exactly one kind, found {}: write each as its own list item",
                        article(what),
                        names.join(", ")
                    ),
                );
                None
            }
            Value::Scalar { text, .. } if known.contains(&text.as_str()) => {
                self.error(
                    node.pos,
                    format!(
                        "write `{text}: {{}}` ({} {what} is a mapping)",
                        article(what)
                    ),
                );
                None
            }
            Value::Scalar { text, .. } => {
                self.error(node.pos, unknown_name(what, text, known));
                None
            }
            _ => {
                self.expected(
                    node,
                    &format!("{} {what} (one of: {})", article(what), known.join(", ")),
                );
                None
            }
        }
    }

    /// A string. A plain scalar that reads as a number or a boolean is not one: YAML
    /// and JSON (and so the Kubernetes API) read `value: 10` as a number, and a policy
    /// must mean the same whichever way it arrives.
    pub fn string(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Scalar { text, quoted } if !quoted && !plain_scalar(text).is_string() => {
                self.error(
                    node.pos,
                    format!(
                        "expected a string, found {} (quote it to mean the text: \"{text}\")",
                        node.describe()
                    ),
                );
                None
            }
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.expected(node, "a string");
                None
            }
        }
    }

    /// A quantity such as `64k` or `300`: a string, or a whole number standing for its
    /// digits (serde reads it the same way, see `serde_text::text_or_integer`).
    pub fn text_or_integer(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => match plain_scalar(text) {
                serde_json::Value::String(_) => Some(text.clone()),
                serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
                _ => {
                    self.expected(node, "a size or time such as 64k or 300s");
                    None
                }
            },
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.expected(node, "a size or time such as 64k or 300s");
                None
            }
        }
    }

    /// A string that keeps `rule`.
    pub fn checked_string(
        &mut self,
        node: &Node,
        rule: impl FnOnce(&str) -> Result<(), String>,
    ) -> Option<String> {
        let text = self.string(node)?;
        match rule(&text) {
            Ok(()) => Some(text),
            Err(e) => {
                self.error(node.pos, e);
                None
            }
        }
    }

    pub fn bool(&mut self, node: &Node) -> Option<bool> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => {
                    self.expected(node, "true or false");
                    None
                }
            },
            _ => {
                self.expected(node, "true or false");
                None
            }
        }
    }

    fn number_text<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => Some(text),
            _ => {
                self.expected(node, what);
                None
            }
        }
    }

    /// A whole number in `range`.
    pub fn integer(&mut self, node: &Node, range: rules::Whole) -> Option<u64> {
        let text = self.number_text(node, "a whole number")?;
        match text.parse::<u64>() {
            Ok(n) => rules::whole(n, range)
                .map_err(|e| self.error(node.pos, e))
                .ok()
                .map(|()| n),
            // A negative or huge whole number is a range problem, not a type problem.
            Err(_) if is_integer_text(text) => {
                self.error(node.pos, rules::out_of_range(text, range.min, range.max));
                None
            }
            Err(_) => {
                self.expected(node, "a whole number");
                None
            }
        }
    }

    /// A finite number in `range`.
    pub fn float(&mut self, node: &Node, range: rules::Real) -> Option<f64> {
        let text = self.number_text(node, "a number")?;
        match text.parse::<f64>() {
            Ok(n) if !n.is_nan() => match rules::real(n, range) {
                Ok(()) => Some(n),
                Err(e) => {
                    self.error(node.pos, e);
                    None
                }
            },
            _ => {
                self.expected(node, "a number");
                None
            }
        }
    }

    /// A humantime duration such as `250ms`, `10s` or `1h 30m`.
    pub fn duration(&mut self, node: &Node) -> Option<Duration> {
        let Value::Scalar { text, quoted } = &node.value else {
            self.expected(node, "a duration such as 10s or 5m");
            return None;
        };
        // `for: 0` is the number zero in YAML and JSON; serde reads it the same way.
        if !quoted && plain_scalar(text).as_f64() == Some(0.0) {
            return Some(Duration::ZERO);
        }
        super::serde_text::parse_duration(text)
            .map_err(|e| self.error(node.pos, e))
            .ok()
    }

    /// A list of items decoded by `item`; returns what decoded, having reported the rest.
    /// A list whose items are decoded by `item`. Every bad item is reported; the list
    /// is `None` if any was bad, so no caller ever sees a silently shortened list.
    pub fn list<T>(
        &mut self,
        node: &Node,
        what: Noun,
        mut item: impl FnMut(&mut Self, &Node) -> Option<T>,
    ) -> Option<Vec<T>> {
        match &node.value {
            Value::Seq(items) => {
                let decoded: Vec<Option<T>> = items.iter().map(|n| item(self, n)).collect();
                decoded.into_iter().collect()
            }
            _ => {
                self.expected(node, &format!("a list of {}", what.many));
                None
            }
        }
    }

    /// Like `list`, but an empty list is an error: the field exists to say something.
    pub fn non_empty_list<T>(
        &mut self,
        node: &Node,
        what: Noun,
        item: impl FnMut(&mut Self, &Node) -> Option<T>,
    ) -> Option<Vec<T>> {
        if matches!(&node.value, Value::Seq(items) if items.is_empty()) {
            self.error(node.pos, super::model::non_empty_message(what.one));
            return None;
        }
        self.list(node, what, item)
    }
}

fn is_integer_text(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_and_case_or_separator_variants() {
        let known = ["cooldown", "maxAttempts", "window", "backoff"];
        assert_eq!(suggest("cooldwn", &known), Some("cooldown"));
        assert_eq!(suggest("max_attempts", &known), Some("maxAttempts"));
        assert_eq!(suggest("zzz", &known), None);
    }
}
