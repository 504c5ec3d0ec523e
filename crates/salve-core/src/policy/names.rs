//! Validated names: parsed once at load time so the engine never re-checks a string.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;
use std::fmt;

/// A policy name: a Kubernetes object name (RFC 1123 subdomain), so the same policy can
/// be a custom resource unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyName(String);

impl PolicyName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        let edge_ok =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if text.is_empty() || text.len() > 253 {
            return Err(format!(
                "invalid policy name \"{text}\": must be 1 to 253 characters"
            ));
        }
        if !text.chars().all(valid_char)
            || !edge_ok(text.chars().next())
            || !edge_ok(text.chars().last())
        {
            return Err(format!(
                "invalid policy name \"{text}\": use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            ));
        }
        Ok(PolicyName(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for PolicyName {
    fn schema_name() -> Cow<'static, str> {
        "PolicyName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 253,
            "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
        })
    }
}

/// Unit types systemd knows; a unit name must end in one of them.
const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// A systemd unit name such as `php8.2-fpm.service`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitName(String);

impl UnitName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
        if text.is_empty() || text.len() > 255 || !text.chars().all(valid_char) {
            return Err(format!(
                "invalid unit name \"{text}\": use letters, digits and :-_.\\@ only"
            ));
        }
        match text.rsplit_once('.') {
            Some((stem, suffix)) if !stem.is_empty() && UNIT_SUFFIXES.contains(&suffix) => {
                Ok(UnitName(text.to_string()))
            }
            _ => Err(format!(
                "invalid unit name \"{text}\": a unit name ends in its type, e.g. \"{text}.service\""
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for UnitName {
    fn schema_name() -> Cow<'static, str> {
        "UnitName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z0-9:_.\\\\@-]+\\.(service|socket|target|device|mount|automount|swap|timer|path|slice|scope)$"
        })
    }
}

/// An `http://` URL, split into the parts a probe needs.
///
/// Only plain HTTP: probes and webhooks target local or in-cluster endpoints, and
/// accepting `https://` without a TLS client would fail at 3 a.m. instead of at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    raw: String,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("http://") else {
            return Err(if text.starts_with("https://") {
                format!("unsupported URL \"{text}\": https is not supported yet, use http://")
            } else {
                format!("invalid URL \"{text}\": expected http://HOST[:PORT]/PATH")
            });
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            // An IPv6 literal ends with ']' and may contain ':' itself.
            Some((h, p)) if !p.contains(']') => match p.parse::<u16>() {
                Ok(port) if port > 0 => (h, port),
                _ => return Err(format!("invalid URL \"{text}\": bad port \"{p}\"")),
            },
            _ => (authority, 80),
        };
        let bracketed = host.starts_with('[');
        if host.is_empty()
            || host.contains(['@', ' ', '#', '?'])
            || bracketed != host.ends_with(']')
            || (!bracketed && host.contains(['[', ']']))
        {
            return Err(format!("invalid URL \"{text}\": missing or invalid host"));
        }
        Ok(HttpUrl {
            raw: text.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl JsonSchema for HttpUrl {
    fn schema_name() -> Cow<'static, str> {
        "HttpUrl".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "uri", "pattern": "^http://" })
    }
}

/// Signals a `kill` action may send, with their Linux numbers.
const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGUSR2", 12),
    ("SIGTERM", 15),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalName {
    name: &'static str,
    number: i32,
}

impl SignalName {
    /// Accepts `SIGKILL`, `KILL` or `kill`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let upper = text.to_ascii_uppercase();
        let wanted = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        SIGNALS
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|&(name, number)| SignalName { name, number })
            .ok_or_else(|| {
                let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
                let hint = crate::policy::suggest(&wanted, &names)
                    .map(|s| format!(", did you mean {s}?"))
                    .unwrap_or_default();
                format!(
                    "unknown signal \"{text}\"{hint} (expected one of: {})",
                    names.join(", ")
                )
            })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn number(&self) -> i32 {
        self.number
    }
}

impl Default for SignalName {
    fn default() -> Self {
        SignalName {
            name: "SIGTERM",
            number: 15,
        }
    }
}

impl JsonSchema for SignalName {
    fn schema_name() -> Cow<'static, str> {
        "SignalName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
        json_schema!({ "type": "string", "enum": names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_follow_kubernetes_object_naming() {
        assert!(PolicyName::parse("php-fpm-down").is_ok());
        assert!(PolicyName::parse("PHP").is_err());
        assert!(PolicyName::parse("-x").is_err());
        assert!(PolicyName::parse("").is_err());
    }

    #[test]
    fn unit_names_need_a_type_suffix_and_the_error_suggests_one() {
        assert!(UnitName::parse("php8.2-fpm.service").is_ok());
        assert!(UnitName::parse("getty@tty1.service").is_ok());
        let err = UnitName::parse("php8.2-fpm").unwrap_err();
        assert!(err.contains("php8.2-fpm.service"), "{err}");
    }

    #[test]
    fn http_urls_split_into_host_port_and_path() {
        let url = HttpUrl::parse("http://127.0.0.1:8080/ping.php?x=1").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("127.0.0.1", 8080, "/ping.php?x=1")
        );
        let url = HttpUrl::parse("http://localhost").unwrap();
        assert_eq!((url.port, url.path.as_str()), (80, "/"));
        assert!(HttpUrl::parse("https://x/").unwrap_err().contains("https"));
        assert!(HttpUrl::parse("http://x:0/").is_err());
        assert!(HttpUrl::parse("ftp://x/").is_err());
        assert!(HttpUrl::parse("http://[::1").is_err());
        assert_eq!(HttpUrl::parse("http://[::1]:8080/").unwrap().host, "[::1]");
    }

    #[test]
    fn signals_parse_with_or_without_prefix() {
        assert_eq!(SignalName::parse("kill").unwrap().number(), 9);
        assert_eq!(SignalName::parse("SIGHUP").unwrap().name(), "SIGHUP");
        assert!(SignalName::parse("SIGFOO").is_err());
    }
}
