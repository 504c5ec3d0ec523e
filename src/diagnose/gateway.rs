//! Classifying nginx's error lines: which are 502s and why, which are 504s.

use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayErrors {
    /// 502 causes, named for people ("socket missing (2)"), with counts.
    pub bad_gateway: BTreeMap<&'static str, usize>,
    /// 504s: the upstream accepted but did not answer in time.
    pub gateway_timeout: usize,
    /// A few lines per cause, for evidence.
    #[serde(skip)]
    pub examples: BTreeMap<&'static str, Vec<String>>,
    /// "No such file" errors by the socket path nginx tried (`-` when not named).
    #[serde(skip)]
    pub missing_sockets: BTreeMap<String, usize>,
}

impl GatewayErrors {
    pub fn total_502(&self) -> usize {
        self.bad_gateway.values().sum()
    }

    pub fn count(&self, cause: &str) -> usize {
        self.bad_gateway.get(cause).copied().unwrap_or(0)
    }
}

pub const SOCKET_MISSING: &str = "socket missing (2)";
pub const REFUSED: &str = "connection refused (111)";
pub const BACKLOG_FULL: &str = "listen backlog full (11)";
pub const PERMISSION_DENIED: &str = "permission denied (13)";
pub const TOO_BIG_HEADER: &str = "headers too big for the buffers";
pub const UPSTREAM_CLOSED: &str = "upstream closed the connection";
pub const GARBLED: &str = "upstream sent an invalid response";
pub const TIMED_OUT: &str = "upstream timed out";

/// How a line is recognised: by one of the built-in log patterns a policy can `match`
/// (nginx's message texts are written once, in `policy::log_patterns`), or by a pattern
/// of diagnose's own for the causes no policy acts on.
enum Recognise {
    /// `nginx.upstream_connect_failed`: the cause is in its errno.
    ConnectFailed(Regex),
    Builtin(&'static str, Regex),
    Own(&'static str, Regex),
}

fn builtin(name: &str) -> Option<Regex> {
    crate::policy::log_patterns::builtin(name).and_then(|p| Regex::new(p.regex).ok())
}

/// The messages nginx 1.22 writes, matched on the message text (never the level).
fn patterns() -> &'static [Recognise] {
    static PATTERNS: OnceLock<Vec<Recognise>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let own = |cause, re: &str| Regex::new(re).ok().map(|r| Recognise::Own(cause, r));
        // A test compiles every built-in pattern and each of these; one that did not
        // compile would be dropped rather than take the whole diagnosis down.
        [
            builtin("nginx.upstream_connect_failed").map(Recognise::ConnectFailed),
            builtin("nginx.upstream_permission_denied")
                .map(|r| Recognise::Builtin(PERMISSION_DENIED, r)),
            builtin("nginx.too_big_header").map(|r| Recognise::Builtin(TOO_BIG_HEADER, r)),
            own(
                UPSTREAM_CLOSED,
                r"upstream prematurely closed|recv\(\) failed \(104: Connection reset by peer\) while reading response header from upstream",
            ),
            own(
                GARBLED,
                r"upstream sent (?:invalid|unsupported|unexpected)[a-zA-Z ]*(?:header|version|type|record|status)",
            ),
            builtin("nginx.upstream_timed_out").map(|r| Recognise::Builtin(TIMED_OUT, r)),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
}

/// The cause a line shows, and the socket nginx named if it did.
fn recognise(line: &str) -> Option<(&'static str, Option<&str>)> {
    patterns().iter().find_map(|p| match p {
        Recognise::ConnectFailed(re) => {
            let caps = re.captures(line)?;
            let cause = match caps.name("errno").map(|m| m.as_str()) {
                Some("2") => SOCKET_MISSING,
                Some("11") => BACKLOG_FULL,
                _ => REFUSED,
            };
            Some((cause, caps.name("socket").map(|m| m.as_str())))
        }
        Recognise::Builtin(cause, re) | Recognise::Own(cause, re) => {
            re.is_match(line).then_some((*cause, None))
        }
    })
}

pub fn classify_lines(lines: &[String]) -> GatewayErrors {
    let mut out = GatewayErrors::default();
    for line in lines {
        let Some((cause, socket)) = recognise(line) else {
            continue;
        };
        if cause == SOCKET_MISSING {
            let socket = socket
                .map(|s| s.strip_prefix("unix:").unwrap_or(s))
                .unwrap_or("-");
            *out.missing_sockets.entry(socket.to_string()).or_default() += 1;
        }
        if cause == TIMED_OUT {
            out.gateway_timeout += 1;
        } else {
            *out.bad_gateway.entry(cause).or_default() += 1;
        }
        let examples = out.examples.entry(cause).or_default();
        if examples.len() < 3 {
            examples.push(line.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_lines_are_sorted_into_502_causes_and_504s() {
        let lines: Vec<String> = [
            r#"2026/11/25 01:00:00 [crit] 7#7: *1 connect() to unix:/run/php/php-fpm.sock failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1"#,
            r#"2026/11/25 01:00:01 [error] 7#7: *2 connect() to unix:/run/php/php8.2-fpm.sock failed (111: Connection refused) while connecting to upstream"#,
            r#"2026/11/25 01:00:02 [crit] 7#7: *3 connect() to unix:/run/php/php8.2-fpm.sock failed (13: Permission denied) while connecting to upstream"#,
            r#"2026/11/25 01:00:03 [error] 7#7: *4 upstream sent too big header while reading response header from upstream"#,
            r#"2026/11/25 01:00:04 [error] 7#7: *5 upstream timed out (110: Connection timed out) while reading response header from upstream"#,
                        r#"2026/11/25 01:00:05 [error] 7#7: *6 open() "/srv/www/favicon.ico" failed (2: No such file or directory)"#,
            r#"2026/11/25 01:00:06 [error] 7#7: *7 upstream sent unsupported FastCGI protocol version: 72 while reading response header from upstream"#,
        ]
        .map(String::from)
        .to_vec();
        let g = classify_lines(&lines);
        assert_eq!(g.count(SOCKET_MISSING), 1);
        assert_eq!(g.count(REFUSED), 1);
        assert_eq!(g.count(PERMISSION_DENIED), 1);
        assert_eq!(g.count(TOO_BIG_HEADER), 1);
        assert_eq!(g.count(GARBLED), 1);
        assert_eq!(g.total_502(), 5, "the favicon line is noise");
        assert_eq!(g.gateway_timeout, 1);
        assert_eq!(
            g.missing_sockets.keys().collect::<Vec<_>>(),
            ["/run/php/php-fpm.sock"]
        );
        // Every way of recognising a line is there: none was dropped for not compiling.
        assert_eq!(patterns().len(), 6);
    }
}
