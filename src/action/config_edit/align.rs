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
    if pass == wanted {
        return true;
    }
    // A pool on all addresses (a bare port, 0.0.0.0 or [::]) is reached through any
    // local address on that port.
    let all_addresses = {
        let l = listen.trim();
        l.chars().all(|c| c.is_ascii_digit()) || l.starts_with("0.0.0.0:") || l.starts_with("[::]:")
    };
    let port_of = |s: &str| s.rsplit_once(':').map(|(_, p)| p.to_string());
    all_addresses
        && !pass.starts_with("unix:")
        && port_of(pass).is_some()
        && port_of(pass) == port_of(&wanted)
        && ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|h| pass.starts_with(&format!("{h}:")))
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
        let listens: Vec<String> = pools
            .iter()
            .filter_map(|p| p.get("listen").map(|e| e.value.clone()))
            .collect();
        let wanted = fastcgi_address(&listen.value);
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
            if listens.iter().any(|l| reaches(target, l)) {
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
                "every fastcgi_pass already reaches a pool".to_string()
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
