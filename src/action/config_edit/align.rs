//! Plans `alignFastcgiPass`: points nginx's `fastcgi_pass` at the address a PHP-FPM
//! pool really listens on, when it points at an address no pool listens on.

use super::{Planned, Planner};
use crate::policy::AlignFastcgiPassArgs;
use crate::webconf::fpm::FpmConfig;
use crate::webconf::nginx::{self, Directive};
use crate::webconf::{apply_edits, Edit};

/// A pool's `listen` as nginx's `fastcgi_pass` spells it: a socket path becomes
/// `unix:PATH`, a bare port is on 127.0.0.1 (php-fpm listens on all addresses then,
/// and nginx must name one).
pub fn fastcgi_address(listen: &str) -> String {
    let listen = listen.trim();
    if listen.starts_with('/') {
        format!("unix:{listen}")
    } else if listen.chars().all(|c| c.is_ascii_digit()) {
        format!("127.0.0.1:{listen}")
    } else if let Some(port) = listen
        .strip_prefix("0.0.0.0:")
        .or(listen.strip_prefix("[::]:"))
    {
        format!("127.0.0.1:{port}")
    } else {
        listen.to_string()
    }
}

/// Whether `fastcgi_pass` reaches a pool listening on `listen`.
pub fn reaches(fastcgi_pass: &str, listen: &str) -> bool {
    let pass = fastcgi_pass.trim();
    let wanted = fastcgi_address(listen);
    if let (Some(a), Some(b)) = (pass.strip_prefix("unix:"), wanted.strip_prefix("unix:")) {
        return same_socket(a, b);
    }
    if pass == wanted {
        return true;
    }
    // Loopback names are interchangeable: localhost:9000 reaches 127.0.0.1:9000.
    let port_of = |s: &str| s.rsplit_once(':').map(|(_, p)| p.to_string());
    if is_local(pass) && is_local(&wanted) && port_of(pass) == port_of(&wanted) {
        return true;
    }
    // A pool on all addresses (a bare port, 0.0.0.0 or [::]) is reached through any
    // local address on that port.
    let all_addresses = {
        let l = listen.trim();
        l.chars().all(|c| c.is_ascii_digit()) || l.starts_with("0.0.0.0:") || l.starts_with("[::]:")
    };
    all_addresses && is_local(pass) && port_of(pass).is_some() && port_of(pass) == port_of(&wanted)
}

/// Whether two socket paths name one socket. Where both exist on this host they are
/// compared where they lead: Debian's /run/php/php-fpm.sock is an alternatives symlink
/// to the versioned socket while PHP-FPM runs, and /var/run is a symlink to /run.
fn same_socket(a: &str, b: &str) -> bool {
    if let (Ok(x), Ok(y)) = (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        return x == y;
    }
    let canonical = |p: &str| match p.strip_prefix("/var/run/") {
        Some(rest) => format!("/run/{rest}"),
        None => p.to_string(),
    };
    canonical(a) == canonical(b)
}

const LOOPBACK: [&str; 3] = ["127.0.0.1:", "localhost:", "[::1]:"];

fn is_local(address: &str) -> bool {
    LOOPBACK.iter().any(|h| address.starts_with(h))
}

/// Debian's version-less alias, present only while a PHP-FPM runs (the unit's
/// php-fpm-socket-helper creates and removes it).
const DEBIAN_ALIAS: [&str; 2] = ["/run/php/php-fpm.sock", "/var/run/php/php-fpm.sock"];

/// A pool's `listen` as php-fpm reads it: `$pool` stands for the pool's name.
pub fn pool_listen(pool: &str, listen: &str) -> String {
    listen.trim().replace("$pool", pool)
}

/// Every pool's listen address, `$pool` expanded.
pub fn pool_listens(fpm: &FpmConfig) -> Vec<String> {
    fpm.pools()
        .iter()
        .filter_map(|p| p.get("listen").map(|e| pool_listen(&p.name, &e.value)))
        .collect()
}

/// Whether a `fastcgi_pass` target reaches one of the pools (`listens` as `pool_listen`
/// gives them). `None` when the configs cannot tell: a variable (resolved per request),
/// an upstream name (its servers decide: ask for each), or another host (its pools are
/// not in this config). Nothing that answers `None` is ever reported or rewritten.
pub fn pass_reaches(target: &str, listens: &[String]) -> Option<bool> {
    let target = target.trim();
    if target.contains('$') {
        return None;
    }
    if !target.starts_with("unix:") && !is_local(target) {
        return None;
    }
    let reached = listens.iter().any(|l| reaches(target, l));
    let alias = target
        .strip_prefix("unix:")
        .is_some_and(|p| DEBIAN_ALIAS.contains(&p) && std::fs::metadata(p).is_err());
    if !reached && alias {
        // Absent now, it may still lead to a pool whenever PHP-FPM runs.
        return None;
    }
    Some(reached)
}

pub struct AlignPlanner<'a> {
    pub args: &'a AlignFastcgiPassArgs,
    pub fpm: &'a FpmConfig,
    done: bool,
}

impl<'a> AlignPlanner<'a> {
    pub fn new(args: &'a AlignFastcgiPassArgs, fpm: &'a FpmConfig) -> Self {
        AlignPlanner {
            args,
            fpm,
            done: false,
        }
    }
}

impl Planner for AlignPlanner<'_> {
    fn next(&mut self, current: &str) -> Result<Option<Planned>, String> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        let pools = self.fpm.pools();
        let Some(pool) = pools.iter().find(|p| p.name == self.args.pool) else {
            return Err(format!(
                "no pool [{}] in the PHP-FPM config {}",
                self.args.pool,
                self.args.fpm_config.display()
            ));
        };
        let Some(listen) = pool.get("listen") else {
            return Err(format!("pool [{}] has no listen", pool.name));
        };
        let listens = pool_listens(self.fpm);
        let wanted = fastcgi_address(&pool_listen(&pool.name, &listen.value));
        let file = nginx::parse(&self.args.file, current).map_err(|e| e.to_string())?;
        let mut edits: Vec<Edit> = Vec::new();
        let mut summary = Vec::new();
        let mut passes = Vec::new();
        collect(&file.directives, &mut passes);
        if passes.is_empty() {
            return Err(format!("no fastcgi_pass in {}", self.args.file.display()));
        }
        for pass in passes {
            let Some(target) = pass.args.first() else {
                continue;
            };
            // Only a pass known to reach nothing is rewritten: an upstream name, a
            // variable or another host may be right, and is left alone.
            if pass_reaches(target, &listens) != Some(false) {
                continue;
            }
            summary.push(format!(
                "fastcgi_pass {target} -> {wanted} (line {})",
                pass.line
            ));
            edits.push(nginx::replace_args(pass, std::slice::from_ref(&wanted)));
        }
        let text = apply_edits(current, &edits).map_err(|e| e.to_string())?;
        Ok(Some(Planned {
            text,
            summary: if summary.is_empty() {
                "no fastcgi_pass points at an address no pool listens on (if nginx cannot connect, PHP-FPM itself is probably down)".to_string()
            } else {
                summary.join(", ")
            },
        }))
    }
}

fn collect<'a>(directives: &'a [Directive], into: &mut Vec<&'a Directive>) {
    for d in directives {
        if d.name == "fastcgi_pass" {
            into.push(d);
        }
        if let Some(block) = &d.block {
            collect(&block.children, into);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_listen_becomes_the_address_nginx_names() {
        assert_eq!(
            fastcgi_address("/run/php/php8.2-fpm.sock"),
            "unix:/run/php/php8.2-fpm.sock"
        );
        assert_eq!(fastcgi_address("9000"), "127.0.0.1:9000");
        assert_eq!(fastcgi_address("127.0.0.1:9001"), "127.0.0.1:9001");
        assert_eq!(fastcgi_address("[::]:9002"), "127.0.0.1:9002");
    }

    #[test]
    fn only_a_pass_known_to_reach_nothing_counts_as_a_mismatch() {
        let listens = vec![
            pool_listen("www", "/run/php/php8.2-fpm-$pool.sock"),
            "9000".to_string(),
        ];
        assert_eq!(
            pass_reaches("unix:/var/run/php/php8.2-fpm-www.sock", &listens),
            Some(true)
        );
        assert_eq!(
            pass_reaches("unix:/run/php/php7.4-fpm.sock", &listens),
            Some(false)
        );
        assert_eq!(
            pass_reaches("unix:/run/php/php-fpm.sock", &listens),
            None,
            "Debian's alias, absent while PHP-FPM is down"
        );
        assert_eq!(
            pass_reaches("localhost:9000", &["127.0.0.1:9000".to_string()]),
            Some(true)
        );
        assert_eq!(pass_reaches("127.0.0.1:9000", &listens), Some(true));
        assert_eq!(pass_reaches("127.0.0.1:9001", &listens), Some(false));
        assert_eq!(
            pass_reaches("php_backend", &listens),
            None,
            "an upstream name"
        );
        assert_eq!(pass_reaches("$backend", &listens), None);
        assert_eq!(
            pass_reaches("10.0.0.5:9000", &listens),
            None,
            "another host's pool"
        );
    }

    #[test]
    fn a_pass_reaches_a_pool_on_its_socket_or_its_local_port() {
        assert!(reaches(
            "unix:/run/php/php8.2-fpm.sock",
            "/run/php/php8.2-fpm.sock"
        ));
        assert!(!reaches(
            "unix:/run/php/php-fpm.sock",
            "/run/php/php8.2-fpm.sock"
        ));
        assert!(reaches("127.0.0.1:9000", "9000"));
        assert!(reaches("localhost:9000", "0.0.0.0:9000"));
        assert!(!reaches("127.0.0.1:9001", "9000"));
        assert!(!reaches("10.0.0.5:9000", "127.0.0.1:9000"));
    }
}
