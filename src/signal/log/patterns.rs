//! The built-in, named patterns for nginx and PHP-FPM error lines, and `PatternSet`, which
//! matches many patterns against a line and extracts their named captures.
//!
//! Every pattern matches the message, never the level: the same failure is logged as
//! `[crit]` or `[error]` depending on the errno (see the causes table in DESIGN.md), and a
//! distribution may change the level without changing what happened.

use regex::{Regex, RegexSet};

/// A pattern shipped with salve, referred to by name in policies.
#[derive(Debug)]
pub struct BuiltinPattern {
    pub name: &'static str,
    pub regex: &'static str,
    pub description: &'static str,
    /// Whether the fields nginx appends after the message (`client`, `server`,
    /// `request`, `upstream`, `host`) are extracted too; see `nginx_context`.
    pub nginx_context: bool,
}

/// nginx names the peer only for Unix sockets (`connect() to unix:/run/php/x.sock failed`);
/// for TCP it writes `connect() failed` and the address appears in `upstream: "…"`.
static BUILTIN: [BuiltinPattern; 5] = [
    BuiltinPattern {
        name: "nginx.upstream_connect_failed",
        regex: r"connect\(\) (?:to (?P<socket>\S+) )?failed \((?P<errno>2|11|111): (?P<reason>[^)]*)\) while connecting to upstream",
        description: "nginx could not reach PHP-FPM: socket gone (2, clean stop), \
                      listen backlog full (11, all workers busy) or refused (111, crash)",
        nginx_context: true,
    },
    BuiltinPattern {
        name: "nginx.upstream_permission_denied",
        regex: r"connect\(\) (?:to (?P<socket>\S+) )?failed \((?P<errno>13): Permission denied\) while connecting to upstream",
        description: "nginx may not open the PHP-FPM socket: fix the pool's \
                      listen.owner/listen.group/listen.mode",
        nginx_context: true,
    },
    BuiltinPattern {
        name: "nginx.too_big_header",
        regex: r"upstream sent too big header while reading response header from upstream",
        description: "the response headers do not fit fastcgi_buffer_size/fastcgi_buffers",
        nginx_context: true,
    },
    BuiltinPattern {
        name: "nginx.upstream_timed_out",
        regex: r"upstream timed out \((?P<errno>\d+): (?P<reason>[^)]*)\) while (?P<phase>[a-z ]+ upstream)",
        description: "PHP-FPM accepted the request but did not answer in time (504)",
        nginx_context: true,
    },
    BuiltinPattern {
        name: "phpfpm.max_children_reached",
        regex: r"\[pool (?P<pool>[^\]]+)\] server reached pm\.max_children setting \((?P<max_children>\d+)\)",
        description: "every PHP-FPM worker of the pool is busy; requests queue",
        nginx_context: false,
    },
];

/// The built-in pattern called `name`, e.g. `nginx.upstream_connect_failed`.
pub fn builtin(name: &str) -> Option<&'static BuiltinPattern> {
    BUILTIN.iter().find(|p| p.name == name)
}

/// The names of all built-in patterns, in a stable order.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|p| p.name)
}

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
    /// (group index, group name) of every named group, computed once so a match does not
    /// walk the regex's group list again.
    groups: Vec<(usize, String)>,
    nginx_context: bool,
}

/// Several named patterns matched together. A `RegexSet` over all of them runs first:
/// one pass tells which patterns match, so a line that matches nothing (most lines of
/// a log) costs one scan, and only the patterns that matched run again for captures.
pub struct PatternSet {
    set: RegexSet,
    patterns: Vec<Compiled>,
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

        let patterns = patterns
            .into_iter()
            .map(|(name, regex, nginx_context)| {
                let groups = regex
                    .capture_names()
                    .enumerate()
                    .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
                    .collect();
                Compiled {
                    name,
                    regex,
                    groups,
                    nginx_context,
                }
            })
            .collect();
        Ok(PatternSet { set, patterns })
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
                let mut fields: Vec<(&'s str, &'a str)> = pattern
                    .groups
                    .iter()
                    .filter_map(|(g, n)| caps.get(*g).map(|m| (n.as_str(), m.as_str())))
                    .collect();
                if pattern.nginx_context {
                    let end = caps.get(0).map_or(line.len(), |m| m.end());
                    nginx_context(&line[end..], &mut fields);
                }
                Some(Match {
                    name: &pattern.name,
                    fields,
                })
            })
            .collect()
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
