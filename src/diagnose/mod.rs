//! `salve diagnose`: reads nginx's and PHP-FPM's configs, their recent logs and a few
//! host facts, and says which known cause of a 502/504 applies, where (file:line), and
//! which shipped policy heals it.
//!
//! [`diagnose`] is pure: every fact arrives in [`Input`], gathered by `gather.rs`.

mod accounts;
mod checks;
mod gateway;
pub mod gather;

pub use accounts::Accounts;
pub use gateway::{classify_lines, GatewayErrors};

use crate::webconf::fpm::FpmConfig;
use crate::webconf::nginx::NginxConfig;
use serde::Serialize;

/// Everything a diagnosis looks at.
pub struct Input<'a> {
    pub nginx: &'a NginxConfig,
    pub fpm: &'a FpmConfig,
    /// Recent lines of nginx's error log, oldest first.
    pub nginx_log: &'a [String],
    /// Recent lines of PHP-FPM's log, oldest first.
    pub fpm_log: &'a [String],
    pub accounts: &'a Accounts,
    pub fpm_unit: &'a str,
    /// The unit's state, or why it could not be read; `None` when not asked.
    pub unit: Option<Result<UnitFacts, String>>,
    pub memory: Option<Memory>,
    pub edge: Option<EdgeProbe>,
}

/// What systemd says of the PHP-FPM unit now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFacts {
    pub unit_file_state: String,
    pub active_state: String,
}

/// Memory facts for sizing `pm.max_children`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub available_bytes: u64,
    /// Resident size of each running worker, by pool name.
    pub workers: Vec<(String, u64)>,
}

/// The public URL and the origin, probed at the same moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeProbe {
    pub public_url: String,
    pub public: Result<u16, String>,
    pub origin_url: String,
    pub origin: Result<u16, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Machine-readable: `fastcgi_pass_mismatch`, `socket_permissions`, ...
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The shipped policy (policies/NAME.yaml) that heals it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub healthy: bool,
    pub findings: Vec<Finding>,
    pub gateway_errors: GatewayErrors,
    /// Checks that could not run, and why: a diagnosis never hides what it did not see.
    pub skipped: Vec<String>,
    /// Not causes of a 502 now, but what would make the next one smaller: a host
    /// whose PHP goes to a single pool, say. They leave the host `healthy`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Finding>,
}

pub fn diagnose(input: &Input<'_>) -> Report {
    let mut findings = Vec::new();
    let mut skipped = Vec::new();
    let gateway_errors = classify_lines(input.nginx_log);
    let mismatched = checks::fastcgi_pass(input, &mut findings);
    checks::socket_permissions(input, &mut findings, &mut skipped);
    checks::enabled_at_boot(input, &mut findings, &mut skipped);
    checks::header_buffers(input, &gateway_errors, &mut findings);
    checks::max_children(input, &mut findings, &mut skipped);
    checks::log_causes(input, &gateway_errors, &mismatched, &mut findings);
    checks::edge(input, &mut findings);
    let mut suggestions = Vec::new();
    checks::single_pool(input, &mut suggestions);
    Report {
        healthy: findings.is_empty(),
        findings,
        gateway_errors,
        skipped,
        suggestions,
    }
}

impl Report {
    /// The human form: one block per finding, then the error counts and what was skipped.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match (self.healthy, self.skipped.is_empty()) {
            (true, true) => out.push_str("healthy: no known cause of a 502/504 found\n"),
            (true, false) => out.push_str(
                "healthy as far as checked: no known cause found, but some checks could not run (below)\n",
            ),
            _ => {}
        }
        for f in &self.findings {
            let place = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!("{file}:{line}: "),
                (Some(file), None) => format!("{file}: "),
                _ => String::new(),
            };
            out.push_str(&format!("{place}{}: {}\n", f.kind, f.message));
            if let Some(policy) = f.policy {
                out.push_str(&format!("    fix: policies/{policy}.yaml\n"));
            }
            for e in f.evidence.iter().take(3) {
                out.push_str(&format!("    seen: {e}\n"));
            }
        }
        let g = &self.gateway_errors;
        if g.total_502() + g.gateway_timeout > 0 {
            out.push_str(&format!(
                "recent gateway errors in the log: {} x 502, {} x 504\n",
                g.total_502(),
                g.gateway_timeout
            ));
            for (cause, n) in &g.bad_gateway {
                out.push_str(&format!("    502 {cause}: {n}\n"));
            }
        }
        for s in &self.skipped {
            out.push_str(&format!("not checked: {s}\n"));
        }
        for s in &self.suggestions {
            out.push_str(&format!("suggestion: {}: {}\n", s.kind, s.message));
            if let Some(policy) = s.policy {
                out.push_str(&format!("    see: policies/{policy}.yaml\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
