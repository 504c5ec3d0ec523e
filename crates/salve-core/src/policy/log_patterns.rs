//! The built-in, named patterns for nginx and PHP-FPM error lines that a policy names
//! with `match:`. The policy format owns the names and texts, so `salve check` knows them
//! without the log follower; `signal::log` compiles and runs them.
//!
//! Every pattern matches the message, never the level: the same failure is logged as
//! `[crit]` or `[error]` depending on the errno (nginx 1.22 logs ENOENT and EACCES as
//! `[crit]`, ECONNREFUSED and EAGAIN as `[error]`), and a
//! distribution may change the level without changing what happened.

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
        // `pm = dynamic` writes "pm.max_children", `pm = ondemand` "max_children".
        regex: r"\[pool (?P<pool>[^\]]+)\] server reached (?:pm\.)?max_children setting \((?P<max_children>\d+)\)",
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
