//! One function per known cause; each adds the findings it can prove.

use super::gateway::{self, GatewayErrors};
use super::{Finding, Input, UnitFacts};
use crate::webconf::fastcgi::{pass_reaches, pool_listen};
use crate::webconf::fpm::Pool;
use crate::webconf::nginx::Located;

fn at(kind: &'static str, file: &std::path::Path, line: u32, message: String) -> Finding {
    Finding {
        kind,
        message,
        file: Some(file.display().to_string()),
        line: Some(line),
        policy: None,
        evidence: Vec::new(),
    }
}

/// Every `fastcgi_pass` of a walk of the config.
fn fastcgi_passes<'w, 'a>(walk: &'w [Located<'a>]) -> impl Iterator<Item = &'w Located<'a>> {
    walk.iter().filter(|l| l.directive.name == "fastcgi_pass")
}

/// The addresses a `fastcgi_pass` leads to: itself, or the servers of the upstream it names.
fn addresses(walk: &[Located<'_>], target: &str) -> Vec<String> {
    let is_address = target.starts_with("unix:") || target.contains(':');
    if is_address {
        return vec![target.to_string()];
    }
    let Some(upstream) = walk.iter().find(|l| {
        l.directive.name == "upstream"
            && l.directive.args.first().map(String::as_str) == Some(target)
    }) else {
        return vec![target.to_string()];
    };
    upstream
        .directive
        .block
        .iter()
        .flat_map(|b| b.children.iter())
        .filter(|d| d.name == "server")
        .filter_map(|d| d.args.first().cloned())
        .collect()
}

/// Reports every `fastcgi_pass` that reaches no pool; returns the socket paths they
/// name, whose "No such file" errors in the log that explains.
pub fn fastcgi_pass(input: &Input<'_>, findings: &mut Vec<Finding>) -> Vec<String> {
    let mut mismatched = Vec::new();
    let pools: Vec<(String, String)> = input
        .fpm
        .pools()
        .iter()
        .filter_map(|p| {
            p.get("listen")
                .map(|e| (p.name.clone(), pool_listen(&p.name, &e.value)))
        })
        .collect();
    if pools.is_empty() {
        return mismatched;
    }
    let listens: Vec<String> = pools.iter().map(|(_, l)| l.clone()).collect();
    let walk = input.nginx.walk();
    for pass in fastcgi_passes(&walk) {
        let Some(target) = pass.directive.args.first() else {
            continue;
        };
        // An upstream's servers decide for it; anything the configs cannot settle
        // (a variable, another host) is not reported.
        let leads_to = addresses(&walk, target);
        let verdicts: Vec<Option<bool>> =
            leads_to.iter().map(|a| pass_reaches(a, &listens)).collect();
        let mismatch = !verdicts.is_empty() && verdicts.iter().all(|v| *v == Some(false));
        if !mismatch {
            continue;
        }
        let pools: Vec<String> = pools.iter().map(|(p, l)| format!("[{p}] on {l}")).collect();
        mismatched.extend(
            leads_to
                .iter()
                .filter_map(|a| a.strip_prefix("unix:").map(String::from)),
        );
        let via_upstream = leads_to.first().map(String::as_str) != Some(target.as_str());
        let mut f = at(
            "fastcgi_pass_mismatch",
            &pass.file.path,
            pass.directive.line,
            format!(
                "fastcgi_pass {target}{} reaches no PHP-FPM pool; the pools listen as {}{}",
                if via_upstream {
                    format!(" (upstream servers {})", leads_to.join(", "))
                } else {
                    String::new()
                },
                pools.join(", "),
                if via_upstream {
                    "; alignFastcgiPass does not rewrite upstream servers: fix them by hand"
                } else {
                    ""
                }
            ),
        );
        f.policy = (!via_upstream).then_some("nginx-fastcgi-pass-mismatch");
        findings.push(f);
    }
    mismatched
}

/// nginx's worker user and group: `user USER [GROUP];` (the group defaults to the one
/// named like the user), or nginx's compiled-in `nobody nogroup`.
fn nginx_user(input: &Input<'_>) -> (String, String) {
    let args = input
        .nginx
        .walk()
        .into_iter()
        .find(|l| l.contexts.is_empty() && l.directive.name == "user")
        .map(|l| l.directive.args.clone())
        .unwrap_or_default();
    match args.as_slice() {
        [user, group, ..] => (user.clone(), group.clone()),
        [user] => (user.clone(), user.clone()),
        [] => ("nobody".to_string(), "nogroup".to_string()),
    }
}

pub fn socket_permissions(
    input: &Input<'_>,
    findings: &mut Vec<Finding>,
    skipped: &mut Vec<String>,
) {
    let (user, user_group) = nginx_user(input);
    if !input.accounts.knows_user(&user) {
        skipped.push(format!(
            "socket permissions: nginx's user {user} is not in /etc/passwd"
        ));
        return;
    }
    let walk = input.nginx.walk();
    let passes: Vec<String> = fastcgi_passes(&walk)
        .filter_map(|l| l.directive.args.first())
        .flat_map(|t| addresses(&walk, t))
        .collect();
    for pool in input.fpm.pools() {
        let Some((file, listen)) = pool.locate("listen") else {
            continue;
        };
        let socket = pool_listen(&pool.name, &listen.value);
        // Only a socket nginx connects to matters; a pool for another client may be
        // private on purpose.
        let reached = passes
            .iter()
            .any(|p| pass_reaches(p, std::slice::from_ref(&socket)) == Some(true));
        if !socket.starts_with('/') || !reached {
            continue;
        }
        if pool.get("listen.acl_users").is_some() || pool.get("listen.acl_groups").is_some() {
            skipped.push(format!(
                "socket permissions of [{}]: set by ACLs (listen.acl_*), not checked",
                pool.name
            ));
            continue;
        }
        // php-fpm's defaults: the socket belongs to the user the master runs as (root
        // under systemd), mode 0660.
        let value = |key: &str, default: &str| {
            pool.get(key)
                .map_or(default.to_string(), |e| e.value.clone())
        };
        let owner = value("listen.owner", "root");
        let group = value(
            "listen.group",
            input.accounts.primary_group(&owner).unwrap_or("root"),
        );
        let mode_text = value("listen.mode", "0660");
        let Ok(mode) = u32::from_str_radix(mode_text.trim(), 8) else {
            skipped.push(format!(
                "socket permissions of [{}]: listen.mode {mode_text} is not octal",
                pool.name
            ));
            continue;
        };
        if input
            .accounts
            .may_connect(&user, &user_group, &owner, &group, mode)
        {
            continue;
        }
        let (file, line) = blame(&pool, &["listen.mode", "listen.owner", "listen.group"])
            .unwrap_or((&file.path, listen.line));
        let mut f = at(
            "socket_permissions",
            file,
            line,
            format!(
                "nginx runs as {user}, but pool [{}]'s socket {} is {owner}:{group} mode {mode_text}: nginx gets \"13: Permission denied\"",
                pool.name, listen.value
            ),
        );
        f.policy = Some("php-fpm-socket-permissions");
        findings.push(f);
    }
}

fn blame<'a>(pool: &Pool<'a>, keys: &[&str]) -> Option<(&'a std::path::Path, u32)> {
    keys.iter()
        .find_map(|k| pool.locate(k))
        .map(|(file, entry)| (file.path.as_path(), entry.line))
}

/// UnitFileState values that mean the unit comes up at boot (or is pulled in by one).
const STARTS_AT_BOOT: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "static",
    "alias",
    "indirect",
    "generated",
];

pub fn enabled_at_boot(input: &Input<'_>, findings: &mut Vec<Finding>, skipped: &mut Vec<String>) {
    match &input.unit {
        None => {}
        Some(Err(why)) => skipped.push(format!(
            "whether {} is enabled at boot: {why}",
            input.fpm_unit
        )),
        Some(Ok(UnitFacts {
            unit_file_state: state,
            ..
        })) if !STARTS_AT_BOOT.contains(&state.as_str()) => {
            findings.push(Finding {
                kind: "php_fpm_not_enabled",
                message: format!(
                    "{} is {state} at boot: after a reboot nginx comes up alone and answers 502",
                    input.fpm_unit
                ),
                file: None,
                line: None,
                policy: Some("php-fpm-not-enabled"),
                evidence: Vec::new(),
            });
        }
        Some(Ok(_)) => {}
    }
}

pub fn header_buffers(input: &Input<'_>, errors: &GatewayErrors, findings: &mut Vec<Finding>) {
    let seen = errors.count(gateway::TOO_BIG_HEADER);
    if seen == 0 {
        return;
    }
    let walk = input.nginx.walk();
    let place = walk
        .iter()
        .find(|l| l.directive.name == "fastcgi_buffer_size")
        .map(|l| {
            (
                l,
                format!("fastcgi_buffer_size {}", l.directive.args.join(" ")),
            )
        })
        .or_else(|| {
            walk.iter()
                .find(|l| l.directive.name == "fastcgi_pass")
                .map(|l| (l, "nginx's default fastcgi_buffer_size 4k".to_string()))
        });
    let message = |what: &str| {
        format!("{seen} responses had headers larger than {what}: nginx answered 502 (\"upstream sent too big header\")")
    };
    let mut f = match place {
        Some((l, what)) => at(
            "headers_too_big",
            &l.file.path,
            l.directive.line,
            message(&what),
        ),
        None => Finding {
            kind: "headers_too_big",
            message: message("the fastcgi buffers"),
            file: None,
            line: None,
            policy: None,
            evidence: Vec::new(),
        },
    };
    f.policy = Some("nginx-header-buffers");
    f.evidence = errors
        .examples
        .get(gateway::TOO_BIG_HEADER)
        .cloned()
        .unwrap_or_default();
    findings.push(f);
}

const MIB: u64 = 1024 * 1024;

pub fn max_children(input: &Input<'_>, findings: &mut Vec<Finding>, skipped: &mut Vec<String>) {
    for pool in input.fpm.pools() {
        let Some((file, entry)) = pool.locate("pm.max_children") else {
            continue;
        };
        let Ok(max) = entry.value.trim().parse::<u64>() else {
            continue;
        };
        // `pm = dynamic` logs "reached pm.max_children setting", `ondemand` "reached
        // max_children setting".
        let marker = format!("[pool {}] server reached ", pool.name);
        let reached: Vec<String> = input
            .fpm_log
            .iter()
            .filter(|l| l.contains(&marker) && l.contains("max_children setting ("))
            .cloned()
            .collect();
        let room = input.memory.as_ref().and_then(|m| {
            let own: Vec<u64> = m
                .workers
                .iter()
                .filter(|(p, _)| *p == pool.name)
                .map(|(_, r)| *r)
                .collect();
            let sample = if own.is_empty() {
                m.workers.iter().map(|(_, r)| *r).collect()
            } else {
                own.clone()
            };
            let average = sample
                .iter()
                .sum::<u64>()
                .checked_div(sample.len() as u64)?
                .max(1);
            let budget = m.available_bytes + own.iter().sum::<u64>();
            Some((budget / average, average, budget))
        });
        let memory_note = match room {
            Some((fits, average, budget)) => format!(
                "memory fits about {fits} workers ({} MiB available to the pool, {} MiB per worker on average)",
                budget / MIB,
                average / MIB
            ),
            None => {
                skipped.push(format!("memory sizing of [{}]: no running PHP-FPM workers to measure", pool.name));
                "worker memory not measured".to_string()
            }
        };
        if !reached.is_empty() {
            let mut f = at(
                "max_children_reached",
                &file.path,
                entry.line,
                format!(
                    "pool [{}] reached pm.max_children = {max} {} times: requests queue, then 504/502; {memory_note}",
                    pool.name,
                    reached.len()
                ),
            );
            f.policy = Some("php-fpm-max-children");
            f.evidence = reached.into_iter().rev().take(3).collect();
            findings.push(f);
        } else if let Some((fits, _, _)) = room.filter(|(fits, _, _)| max > *fits) {
            findings.push(at(
                "max_children_over_memory",
                &file.path,
                entry.line,
                format!(
                    "pool [{}] may start pm.max_children = {max} workers but memory fits about {fits}: under load the host swaps or the OOM killer ends workers (502); {memory_note}",
                    pool.name
                ),
            ));
        }
    }
}

/// Gateway errors in the log whose cause no config check explained.
pub fn log_causes(
    input: &Input<'_>,
    errors: &GatewayErrors,
    mismatched: &[String],
    findings: &mut Vec<Finding>,
) {
    // The log is history: say so when the unit is fine now.
    let now = match &input.unit {
        Some(Ok(facts)) if facts.active_state == "active" => format!(
            " ({} is active now: these are from before it recovered)",
            input.fpm_unit
        ),
        Some(Ok(facts)) => format!(" ({} is {} now)", input.fpm_unit, facts.active_state),
        _ => String::new(),
    };
    let found: Vec<&'static str> = findings.iter().map(|f| f.kind).collect();
    let explained = |kind: &str| found.contains(&kind);
    let add = |kind: &'static str,
               cause: &str,
               message: String,
               policy: Option<&'static str>,
               findings: &mut Vec<Finding>| {
        findings.push(Finding {
            kind,
            message,
            file: None,
            line: None,
            policy,
            evidence: errors.examples.get(cause).cloned().unwrap_or_default(),
        });
    };
    // A missing socket is what a wrong fastcgi_pass looks like too, for the sockets it
    // names; a refused one is not.
    let missing: usize = errors
        .missing_sockets
        .iter()
        .filter(|(socket, _)| !mismatched.contains(socket))
        .map(|(_, n)| n)
        .sum();
    let down = missing + errors.count(gateway::REFUSED);
    if down > 0 {
        let cause = if errors.count(gateway::REFUSED) > 0 {
            gateway::REFUSED
        } else {
            gateway::SOCKET_MISSING
        };
        add("php_fpm_down", cause, format!("{down} connections to PHP-FPM failed (socket missing or refused): the pool was stopped or crashed (502){now}"), Some("php-fpm-down"), findings);
    }
    let denied = errors.count(gateway::PERMISSION_DENIED);
    if denied > 0 && !explained("socket_permissions") {
        add(
            "socket_permissions",
            gateway::PERMISSION_DENIED,
            format!(
                "{denied} connections to PHP-FPM were refused with 13: Permission denied (502)"
            ),
            Some("php-fpm-socket-permissions"),
            findings,
        );
    }
    let backlog = errors.count(gateway::BACKLOG_FULL);
    if backlog > 0 && !explained("max_children_reached") {
        add("backlog_full", gateway::BACKLOG_FULL, format!("{backlog} connections found PHP-FPM's listen backlog full (11): every worker busy (502)"), Some("php-fpm-max-children"), findings);
    }
    let closed = errors.count(gateway::UPSTREAM_CLOSED);
    if closed > 0 {
        add("upstream_closed", gateway::UPSTREAM_CLOSED, format!("{closed} times PHP-FPM closed the connection mid-response (a worker crashed or was killed; see PHP-FPM's log) (502)"), None, findings);
    }
    let garbled = errors.count(gateway::GARBLED);
    if garbled > 0 {
        add("upstream_garbled", gateway::GARBLED, format!("{garbled} responses from the upstream were not valid FastCGI (a fastcgi_pass pointing at an HTTP server or another protocol?) (502)"), None, findings);
    }
    if errors.gateway_timeout > 0 {
        add("upstream_timeouts", gateway::TIMED_OUT, format!("{} requests timed out waiting for PHP-FPM: 504, not 502 (slow pages or every worker busy)", errors.gateway_timeout), Some("nginx-upstream-timeout"), findings);
    }
}

/// Every `fastcgi_pass` of the config leads to one pool: a crash of it is a 502 for
/// every request until it is back, where an upstream with a backup pool would have
/// made each of them a retry.
pub fn single_pool(input: &Input<'_>, suggestions: &mut Vec<Finding>) {
    let walk = input.nginx.walk();
    let passes: Vec<&Located<'_>> = fastcgi_passes(&walk).collect();
    let Some(first) = passes.first() else {
        return;
    };
    let one_each = passes.iter().all(|l| {
        l.directive
            .args
            .first()
            .is_some_and(|target| addresses(&walk, target).len() == 1)
    });
    if !one_each {
        return;
    }
    let targets: std::collections::BTreeSet<&str> = passes
        .iter()
        .filter_map(|l| l.directive.args.first().map(String::as_str))
        .collect();
    let targets: Vec<&str> = targets.into_iter().collect();
    let mut suggestion = at(
        "single_pool",
        &first.file.path,
        first.directive.line,
        format!(
            "nginx passes PHP to one pool ({}): its crash is a 502 for every request until it is restarted (about 28 for a hammering client at systemd's restart floor); an upstream of it and a backup pool of its own unit, with `fastcgi_next_upstream error timeout`, makes each of them a retry",
            targets.join(", ")
        ),
    );
    suggestion.policy = Some("php-fpm-backup-pool");
    suggestions.push(suggestion);
}

pub fn edge(input: &Input<'_>, findings: &mut Vec<Finding>) {
    let Some(probe) = &input.edge else { return };
    let failing = |r: &Result<u16, String>| !matches!(r, Ok(s) if *s < 500);
    let describe = |r: &Result<u16, String>| match r {
        Ok(s) => format!("HTTP {s}"),
        Err(e) => format!("no answer ({e})"),
    };
    if failing(&probe.public) && !failing(&probe.origin) {
        findings.push(Finding {
            kind: "edge",
            message: format!(
                "{} answers {} while the origin {} answers {}: the CDN or proxy in front is failing; do not restart the origin",
                probe.public_url,
                describe(&probe.public),
                probe.origin_url,
                describe(&probe.origin)
            ),
            file: None,
            line: None,
            policy: Some("edge-502"),
            evidence: Vec::new(),
        });
    } else if failing(&probe.origin) {
        findings.push(Finding {
            kind: "origin_failing",
            message: format!(
                "the origin {} answers {}: the cause is on this host",
                probe.origin_url,
                describe(&probe.origin)
            ),
            file: None,
            line: None,
            policy: None,
            evidence: Vec::new(),
        });
    }
}
