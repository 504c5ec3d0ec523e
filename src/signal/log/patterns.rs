//! `PatternSet`, which matches many patterns (the built-in ones of
//! `salve_core::policy::log_patterns`, and a policy's own) against a line and extracts
//! their named captures.

use super::scan::LineScanner;
use regex::{Regex, RegexSet};
use regex_automata::meta::{self, Regex as MetaRegex};
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

pub use salve_core::policy::log_patterns::{builtin, builtin_names, BuiltinPattern};

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("unknown built-in log pattern \"{0}\"; known patterns: {known}", known = builtin_names().collect::<Vec<_>>().join(", "))]
    UnknownBuiltin(String),
    #[error("invalid log pattern \"{name}\": {source}")]
    Invalid { name: String, source: regex::Error },
}

/// One pattern that matched a line, with the text of each named capture that took part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match<'s, 'a> {
    pub name: &'s str,
    pub fields: Vec<(&'s str, &'a str)>,
}

impl<'s, 'a> Match<'s, 'a> {
    /// The text captured by the group called `field`, if it took part in the match.
    pub fn field(&self, field: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == field)
            .map(|(_, v)| *v)
    }
}

struct Compiled {
    name: String,
    regex: Regex,
    /// The same pattern as a regex-automata regex: it can search *anchored* at the
    /// spot the scanner found, where a one-pass DFA can fill the groups without the
    /// slower engines an unanchored capture search needs.
    anchored: MetaRegex,
    /// (group index, group name) of every named group, computed once so a match does not
    /// walk the regex's group list again.
    groups: Vec<(usize, String)>,
    nginx_context: bool,
}

impl Compiled {
    /// The match's fields, from `span(group)`: the byte range each group matched.
    fn fields<'s, 'a>(
        &'s self,
        line: &'a str,
        span: impl Fn(usize) -> Option<(usize, usize)>,
    ) -> Match<'s, 'a> {
        let mut fields: Vec<(&'s str, &'a str)> = self
            .groups
            .iter()
            .filter_map(|(g, n)| span(*g).and_then(|(s, e)| Some((n.as_str(), line.get(s..e)?))))
            .collect();
        if self.nginx_context {
            let end = span(0).map_or(line.len(), |(_, e)| e);
            nginx_context(line.get(end..).unwrap_or(""), &mut fields);
        }
        Match {
            name: &self.name,
            fields,
        }
    }
}

/// Several named patterns matched together. A `RegexSet` over all of them runs first:
/// one pass tells which patterns match, so a line that matches nothing (most lines of
/// a log) costs one scan, and only the patterns that matched run again for captures.
pub struct PatternSet {
    set: RegexSet,
    patterns: Vec<Compiled>,
    /// `None` when some pattern has no prefix literal to search for.
    scanner: Option<LineScanner>,
}

impl PatternSet {
    /// Builds a set from named, already validated regexes.
    pub fn new(patterns: Vec<(String, Regex)>) -> Result<Self, PatternError> {
        Self::build(patterns.into_iter().map(|(n, r)| (n, r, false)).collect())
    }

    fn build(patterns: Vec<(String, Regex, bool)>) -> Result<Self, PatternError> {
        let set = RegexSet::new(patterns.iter().map(|(_, r, _)| r.as_str())).map_err(|source| {
            PatternError::Invalid {
                name: "(the combined set)".to_string(),
                source,
            }
        })?;
        let texts: Vec<&str> = patterns.iter().map(|(_, r, _)| r.as_str()).collect();
        let scanner = LineScanner::new(&texts);

        let patterns = patterns
            .into_iter()
            .map(|(name, regex, nginx_context)| {
                let groups = regex
                    .capture_names()
                    .enumerate()
                    .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
                    .collect();
                let anchored =
                    MetaRegex::new(regex.as_str()).map_err(|e| PatternError::Invalid {
                        name: name.clone(),
                        source: regex::Error::Syntax(e.to_string()),
                    })?;
                Ok(Compiled {
                    name,
                    regex,
                    anchored,
                    groups,
                    nginx_context,
                })
            })
            .collect::<Result<_, PatternError>>()?;
        Ok(PatternSet {
            set,
            patterns,
            scanner,
        })
    }

    /// A set of the named built-in patterns.
    pub fn from_builtins<'n>(
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<Self, PatternError> {
        let mut patterns = Vec::new();
        for name in names {
            let pattern =
                builtin(name).ok_or_else(|| PatternError::UnknownBuiltin(name.to_string()))?;
            let regex = Regex::new(pattern.regex).map_err(|source| PatternError::Invalid {
                name: name.to_string(),
                source,
            })?;
            patterns.push((pattern.name.to_string(), regex, pattern.nginx_context));
        }
        Self::build(patterns)
    }

    /// Every built-in pattern.
    pub fn all_builtins() -> Result<Self, PatternError> {
        Self::from_builtins(builtin_names())
    }

    /// The patterns that match `line`, in the order they were given, with their fields.
    pub fn matches<'s, 'a>(&'s self, line: &'a str) -> Vec<Match<'s, 'a>> {
        // `is_match` stops at the first hit and uses the patterns' literal prefixes to
        // skip ahead; `matches` must run every pattern to the end. Most lines match
        // nothing, so asking the cheap question first halves the cost of a log.
        if !self.set.is_match(line) {
            return Vec::new();
        }
        self.set
            .matches(line)
            .iter()
            .filter_map(|i| {
                let pattern = self.patterns.get(i)?;
                // The set said this regex matches; `captures` agrees because both were
                // built from the same pattern text.
                let caps = pattern.regex.captures(line)?;
                Some(pattern.fields(line, |g| caps.get(g).map(|m| (m.start(), m.end()))))
            })
            .collect()
    }

    /// Every line of `text` that some pattern matches, with its matches, in order: the
    /// same answer as `matches` on each line, found without visiting the lines that
    /// cannot match (see `scan.rs`).
    pub fn scan<'s, 'a>(&'s self, text: &'a str, mut f: impl FnMut(&'a str, Vec<Match<'s, 'a>>)) {
        let Some(scanner) = &self.scanner else {
            for line in text.lines() {
                let found = self.matches(line);
                if !found.is_empty() {
                    f(line, found);
                }
            }
            return;
        };
        // Reused across lines: a cache and captures per match would allocate on every hit.
        let mut scratch: Vec<(meta::Cache, Captures)> = self
            .patterns
            .iter()
            .map(|p| (p.anchored.create_cache(), p.anchored.create_captures()))
            .collect();
        scanner.candidates(text, |candidate| {
            let line = candidate.line;
            let found: Vec<Match<'s, 'a>> = candidate
                .starts
                .iter()
                .filter_map(|&(index, from)| {
                    let pattern = self.patterns.get(index)?;
                    let (cache, caps) = scratch.get_mut(index)?;
                    // No match can start before the pattern's first prefix literal, and
                    // usually one starts right there: try that spot anchored first, then
                    // the rest of the line. Either way it is the leftmost match, the one
                    // `matches` reports.
                    let at = Input::new(line).range(from..).anchored(Anchored::Yes);
                    pattern.anchored.search_captures_with(cache, &at, caps);
                    if !caps.is_match() {
                        let rest = Input::new(line).range(from..);
                        pattern.anchored.search_captures_with(cache, &rest, caps);
                    }
                    caps.is_match().then(|| {
                        pattern.fields(line, |g| caps.get_group(g).map(|s| (s.start, s.end)))
                    })
                })
                .collect();
            if !found.is_empty() {
                f(line, found);
            }
        });
    }

    /// True when any pattern matches, without extracting fields.
    pub fn is_match(&self, line: &str) -> bool {
        self.set.is_match(line)
    }
}

/// Reads the context nginx appends to an error about a request, right after the
/// message, in the fixed order `ngx_http_log_error` writes it: `, client: 127.0.0.1,
/// server: _, request: "GET / HTTP/1.1", upstream: "fastcgi://unix:/run/php/x.sock:",
/// host: "127.0.0.1:8480"`. Each part is optional (no server before the virtual host is
/// chosen, no upstream before one is picked). nginx escapes `"` in quoted values as
/// `\x22`, so a value ends at the next quote. Parsed by hand rather than with five
/// optional regex groups: that regex made capturing four times slower than the match.
fn nginx_context<'a>(mut rest: &'a str, fields: &mut Vec<(&str, &'a str)>) {
    const KEYS: [(&str, bool); 5] = [
        ("client", false),
        ("server", false),
        ("request", true),
        ("upstream", true),
        ("host", true),
    ];
    for (key, quoted) in KEYS {
        let Some(after) = rest
            .strip_prefix(", ")
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix(": "))
        else {
            continue;
        };
        let (value, next) = if quoted {
            let Some((value, next)) = after.strip_prefix('"').and_then(|v| v.split_once('"'))
            else {
                continue;
            };
            (value, next)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        fields.push((key, value));
        rest = next;
    }
}

#[cfg(test)]
#[path = "patterns_tests.rs"]
mod tests;
