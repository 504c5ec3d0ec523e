//! A server of an nginx `upstream` block as a load-balancer server. nginx open source
//! has no runtime API: draining writes `down` on the server's line, a weight writes
//! `weight=N`, every other byte left as it was, and each change goes through the
//! config-edit pipeline (`nginx -t` on the candidate before it replaces the file, a
//! backup, an atomic swap, a reload, and the original bytes back if the reload fails).
//! A reload lets requests already in flight finish on the old workers, so `down` is a
//! drain, not a cut.

use crate::action::config_edit::validate::Checker;
use crate::action::config_edit::{
    file_lock, load_nginx, run_edit, EditHost, Planned, Planner, DEFAULT_KEEP_BACKUPS,
};
use crate::action::{Failure, Family};
use crate::policy::NginxUpstreamServer;
use crate::webconf::nginx;
use crate::webconf::nginx::upstream::{self, ServerChange, ServerLine};
use std::path::Path;

/// An edit of the upstream needs no verification of its own beyond `nginx -t` and the
/// reload: the policy's verification is about the node, which is still being healed
/// while it is drained.
struct UpstreamHost<'a, F: Family> {
    family: &'a F,
    checker: Checker,
    server: &'a NginxUpstreamServer,
}

impl<F: Family> EditHost for UpstreamHost<'_, F> {
    async fn validate(&self, file: &Path, candidate: &[u8]) -> Result<(), String> {
        self.checker.check(file, candidate).await
    }

    async fn apply(&self) -> Result<(), String> {
        self.family.reload_unit(&self.server.unit).await
    }

    async fn verify(&self) -> Option<(bool, String)> {
        None
    }
}

/// One change of the server's line; refuses a `down` that would leave the upstream
/// nobody to send requests to.
struct UpstreamPlanner<'a> {
    server: &'a NginxUpstreamServer,
    change: ServerChange,
    /// The line before and after, once planned.
    planned: Option<(ServerLine, ServerLine)>,
}

impl Planner for UpstreamPlanner<'_> {
    fn next(&mut self, current: &str) -> Result<Option<Planned>, String> {
        let s = self.server;
        let file = nginx::parse(&s.file, current).map_err(|e| e.to_string())?;
        if self.change == ServerChange::Down {
            keep_one_serving(&file, s)?;
        }
        let (text, before, after) =
            upstream::change_server(&file, &s.upstream, &s.server, self.change)?;
        self.planned = Some((before, after));
        Ok(Some(Planned {
            text,
            summary: format!("{}: {before} -> {after}", describe(s)),
        }))
    }
}

fn describe(s: &NginxUpstreamServer) -> String {
    format!(
        "upstream {} server {} in {}",
        s.upstream,
        s.server,
        s.file.display()
    )
}

fn keep_one_serving(file: &nginx::NginxFile, s: &NginxUpstreamServer) -> Result<(), String> {
    let servers = upstream::upstream_servers(file, &s.upstream)?;
    if servers
        .iter()
        .any(|(address, line)| address != &s.server && !line.down)
    {
        return Ok(());
    }
    let states: Vec<String> = servers
        .iter()
        .map(|(address, line)| format!("{address}: {line}"))
        .collect();
    Err(format!(
        "refused to drain {}: it is the last server taking requests in its upstream ({})",
        describe(s),
        states.join("; ")
    ))
}

/// What one edit of the server's line did: its journal line and the line's state
/// before.
pub struct Changed {
    pub line: String,
    pub before: Option<ServerLine>,
}

/// Reads the server's line now (the file must be part of nginx's config, or
/// `nginx -t` would pass whatever the edit wrote).
fn read(s: &NginxUpstreamServer) -> Result<ServerLine, Failure> {
    load_nginx(&s.file, &s.config).map_err(Failure::failed)?;
    let text = std::fs::read_to_string(&s.file)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", s.file.display())))?;
    let file = nginx::parse(&s.file, &text).map_err(|e| Failure::failed(e.to_string()))?;
    upstream::read_server(&file, &s.upstream, &s.server).map_err(Failure::failed)
}

/// Whether the server's line takes requests (not `down`).
pub fn serving(s: &NginxUpstreamServer) -> Result<bool, Failure> {
    read(s).map(|line| !line.down)
}

/// How many servers the upstream lists.
pub fn servers_in_upstream(s: &NginxUpstreamServer) -> Result<usize, Failure> {
    let text = std::fs::read_to_string(&s.file)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", s.file.display())))?;
    let file = nginx::parse(&s.file, &text).map_err(|e| Failure::failed(e.to_string()))?;
    upstream::upstream_servers(&file, &s.upstream)
        .map(|servers| servers.len())
        .map_err(Failure::failed)
}

/// Changes the server's line through the edit pipeline, one edit of the file at a
/// time across every policy.
async fn change<F: Family>(
    family: &F,
    s: &NginxUpstreamServer,
    verb: &str,
    change: ServerChange,
    diffs: &mut Vec<String>,
) -> Result<Changed, Failure> {
    let canonical = std::fs::canonicalize(&s.file).unwrap_or_else(|_| s.file.clone());
    let lock = file_lock(&canonical);
    let _editing = lock.lock().await;
    let now = read(s)?;
    let wanted = match change {
        ServerChange::Down => now.down,
        ServerChange::Weight(w) => !now.down && now.weight == w,
    };
    if wanted {
        return Ok(Changed {
            line: format!("{verb} {}: already {now}; nothing to change", describe(s)),
            before: Some(now),
        });
    }
    let host = UpstreamHost {
        family,
        checker: Checker::nginx(&s.config),
        server: s,
    };
    let mut planner = UpstreamPlanner {
        server: s,
        change,
        planned: None,
    };
    // The diff is journalled whether the change stayed or not.
    match run_edit(&s.file, &mut planner, &host, DEFAULT_KEEP_BACKUPS).await {
        Ok(report) => {
            diffs.extend(report.diff);
            Ok(Changed {
                line: format!("{verb} {}", report.summary),
                before: planner.planned.map(|(before, _)| before),
            })
        }
        Err(failure) => {
            diffs.extend(failure.diff);
            Err(Failure::failed(failure.why))
        }
    }
}

/// Takes the server out (`down`); the weight it had, for a ramp back.
pub async fn drain<F: Family>(
    family: &F,
    s: &NginxUpstreamServer,
    diffs: &mut Vec<String>,
) -> Result<(String, u32), Failure> {
    let changed = change(family, s, "drained", ServerChange::Down, diffs).await?;
    Ok((changed.line, changed.before.map_or(1, |b| b.weight)))
}

/// Puts the server back at `weight` (or the weight its line has, when `None`).
pub async fn weigh<F: Family>(
    family: &F,
    s: &NginxUpstreamServer,
    weight: Option<u32>,
    diffs: &mut Vec<String>,
) -> Result<String, Failure> {
    let weight = match weight {
        Some(w) => w,
        None => read(s)?.weight,
    };
    let verb = "set the weight of";
    let changed = change(family, s, verb, ServerChange::Weight(weight.max(1)), diffs).await?;
    Ok(changed.line)
}

/// One step of a drained server's ramp back (step `i` of `n`, weight `w`): the first
/// lifts `down`. A step that fails is rolled back by the edit (the file keeps the last
/// weight that held).
pub async fn ramp_step<F: Family>(
    family: &F,
    s: &NginxUpstreamServer,
    i: usize,
    n: usize,
    w: u32,
    diffs: &mut Vec<String>,
) -> Result<String, Failure> {
    let step = format!("step {} of {n}:", i + 1);
    let changed = change(family, s, &step, ServerChange::Weight(w), diffs).await?;
    Ok(changed.line)
}
