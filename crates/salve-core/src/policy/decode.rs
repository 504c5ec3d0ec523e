//! Hand-written decoding of the positioned YAML tree into typed values.
//!
//! Written by hand because serde stops at the first error: an operator fixing a policy
//! at 3 a.m. wants every mistake of the file at once, each with its line and column and,
//! for a misspelt field, the name that was probably meant.

use super::yaml::{Node, Pos, Value};
use regex::Regex;
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

/// The longest duration any field accepts. Every duration ends up added to a clock
/// reading (a timeout's deadline, a cooldown's retry time, a window's end); bounding it
/// here keeps those sums far from overflow, and no guard, probe or timeout has a use
/// for more than a year.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

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

    /// Reads a mapping whose keys must be among `known`; every unknown or duplicate key is
    /// reported, and the known ones are still decoded so later errors are found too.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &'static str,
        known: &[&str],
    ) -> Option<Fields<'n>> {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            // `restart:` with nothing after it means "no options", like `restart: {}`.
            Value::Null => {
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

    pub fn string(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.expected(node, "a string");
                None
            }
        }
    }

    pub fn non_empty_string(&mut self, node: &Node, what: &str) -> Option<String> {
        let text = self.string(node)?;
        if text.trim().is_empty() {
            self.error(node.pos, format!("{what} must not be empty"));
            return None;
        }
        Some(text)
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

    /// An integer in `min..=max`.
    pub fn integer(&mut self, node: &Node, min: u64, max: u64) -> Option<u64> {
        let text = self.number_text(node, "a whole number")?;
        match text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.error(
                    node.pos,
                    format!("{n} is out of range: expected {min} to {max}"),
                );
                None
            }
            // A negative or huge whole number is a range problem, not a type problem.
            Err(_) if text.parse::<i128>().is_ok() || is_integer_text(text) => {
                self.error(
                    node.pos,
                    format!("{text} is out of range: expected {min} to {max}"),
                );
                None
            }
            Err(_) => {
                self.expected(node, "a whole number");
                None
            }
        }
    }

    /// A finite number in `min..=max`.
    pub fn float(&mut self, node: &Node, min: f64, max: f64) -> Option<f64> {
        let text = self.number_text(node, "a number")?;
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= min && n <= max => Some(n),
            Ok(n) if !n.is_nan() => {
                self.error(
                    node.pos,
                    format!("{text} is out of range: expected {min} to {max}"),
                );
                None
            }
            _ => {
                self.expected(node, "a number");
                None
            }
        }
    }

    /// A humantime duration such as `250ms`, `10s` or `1h 30m`.
    pub fn duration(&mut self, node: &Node) -> Option<Duration> {
        let Value::Scalar { text, .. } = &node.value else {
            self.expected(node, "a duration such as 10s or 5m");
            return None;
        };
        if text == "0" {
            return Some(Duration::ZERO);
        }
        match humantime::parse_duration(text) {
            Ok(d) if d > MAX_DURATION => {
                self.error(
                    node.pos,
                    format!(
                        "duration \"{text}\" is too long: at most {} (366d)",
                        humantime::format_duration(MAX_DURATION)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    node.pos,
                    format!("invalid duration \"{text}\": {e} (write e.g. 250ms, 10s, 5m, 1h)"),
                );
                None
            }
        }
    }

    pub fn regex(&mut self, node: &Node) -> Option<Regex> {
        let text = self.string(node)?;
        match Regex::new(&text) {
            Ok(re) => Some(re),
            Err(e) => {
                // The regex crate's message spans several lines with a caret diagram;
                // keep it, indented, after the position.
                let detail = e.to_string().replace('\n', "\n    ");
                self.error(node.pos, format!("invalid regex: {detail}"));
                None
            }
        }
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
            self.error(
                node.pos,
                format!("empty list: at least one {} is required", what.one),
            );
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
