//! Plans `alignFastcgiPass`: points nginx's `fastcgi_pass` at the address a PHP-FPM
//! pool really listens on, when it points at an address no pool listens on.

use super::{Planned, Planner};
use crate::policy::AlignFastcgiPassArgs;
use crate::webconf::fpm::FpmConfig;
use crate::webconf::nginx::{self, Directive};
use crate::webconf::{apply_edits, Edit};

pub use crate::webconf::fastcgi::{
    fastcgi_address, pass_reaches, pool_listen, pool_listens, reaches,
};

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
