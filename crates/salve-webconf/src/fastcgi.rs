//! Where nginx's `fastcgi_pass` and PHP-FPM's `listen` meet: whether one reaches the
//! other. `alignFastcgiPass` rewrites by it and `salve diagnose` reports by it.

use crate::fpm::FpmConfig;

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
