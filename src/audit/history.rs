//! The query and rendering behind `salve history`. Pure functions: records
//! and the time window come in, text goes out.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use super::record::{format_ts, Entry, OutcomeResult, Record, Verification};
use super::AuditError;

/// Which records to show. `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub policy: Option<String>,
    pub target: Option<String>,
    /// Inclusive lower bound on `ts`.
    pub since: Option<SystemTime>,
    pub outcome: Option<OutcomeFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeFilter {
    Ok,
    Failed,
    TimedOut,
    NotApplicable,
    Unknown,
    Skipped,
    DryRun,
}

impl FromStr for OutcomeFilter {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(result) = s.trim().parse::<OutcomeResult>() {
            return Ok(match result {
                OutcomeResult::Ok => OutcomeFilter::Ok,
                OutcomeResult::Failed => OutcomeFilter::Failed,
                OutcomeResult::TimedOut => OutcomeFilter::TimedOut,
                OutcomeResult::NotApplicable => OutcomeFilter::NotApplicable,
                OutcomeResult::Unknown => OutcomeFilter::Unknown,
            });
        }
        match s.trim().to_ascii_lowercase().as_str() {
            "skipped" => Ok(OutcomeFilter::Skipped),
            "dry_run" | "dry-run" => Ok(OutcomeFilter::DryRun),
            _ => Err(AuditError::UnknownOutcomeFilter {
                given: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for OutcomeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutcomeFilter::Ok => "ok",
            OutcomeFilter::Failed => "failed",
            OutcomeFilter::TimedOut => "timed_out",
            OutcomeFilter::NotApplicable => "not_applicable",
            OutcomeFilter::Unknown => "unknown",
            OutcomeFilter::Skipped => "skipped",
            OutcomeFilter::DryRun => "dry_run",
        })
    }
}

/// Selects records in journal order. A result filter (ok, failed,
/// timed_out, not_applicable) also keeps the intents of the matching outcomes, so a failure
/// is shown next to what was attempted.
pub fn filter<'a>(records: &'a [Record], f: &HistoryFilter) -> Vec<&'a Record> {
    let in_scope = records.iter().filter(|r| {
        f.policy.as_ref().is_none_or(|p| *p == r.policy)
            && f.target.as_ref().is_none_or(|t| *t == r.target)
            && f.since.is_none_or(|since| r.ts >= since)
    });
    let wanted = match f.outcome {
        None => return in_scope.collect(),
        Some(OutcomeFilter::Skipped) => {
            return in_scope
                .filter(|r| matches!(r.entry, Entry::Skip { .. }))
                .collect()
        }
        Some(OutcomeFilter::DryRun) => return in_scope.filter(|r| r.entry.dry_run()).collect(),
        Some(OutcomeFilter::Ok) => OutcomeResult::Ok,
        Some(OutcomeFilter::Failed) => OutcomeResult::Failed,
        Some(OutcomeFilter::TimedOut) => OutcomeResult::TimedOut,
        Some(OutcomeFilter::NotApplicable) => OutcomeResult::NotApplicable,
        Some(OutcomeFilter::Unknown) => OutcomeResult::Unknown,
    };
    let in_scope: Vec<&Record> = in_scope.collect();
    // Keyed by policy and target too, in case ids are only unique per policy
    // or restart from zero; it costs nothing when they are global.
    let attempts: HashSet<(&str, &str, u64)> = in_scope
        .iter()
        .filter_map(|r| match r.entry {
            Entry::Outcome { id, result, .. } if result == wanted => {
                Some((r.policy.as_str(), r.target.as_str(), id))
            }
            _ => None,
        })
        .collect();
    in_scope
        .into_iter()
        .filter(|r| match r.entry {
            Entry::Outcome { result, .. } => result == wanted,
            Entry::Intent { id, .. } => {
                attempts.contains(&(r.policy.as_str(), r.target.as_str(), id))
            }
            Entry::Skip { .. }
            | Entry::Escalate { .. }
            | Entry::EscalationSent { .. }
            | Entry::Rehearsal { .. }
            | Entry::Control { .. } => false,
        })
        .collect()
}

/// An aligned, human-readable table, one line per record.
pub fn render_table(records: &[&Record]) -> String {
    if records.is_empty() {
        return "no journal records match\n".to_string();
    }
    let header = ["TIME", "POLICY", "TARGET", "KIND", "DETAIL"].map(String::from);
    let rows: Vec<[String; 5]> = std::iter::once(header)
        .chain(records.iter().map(|r| {
            [
                format_ts(r.ts, false).unwrap_or_else(|| "(time out of range)".to_string()),
                one_line(&r.policy),
                one_line(&r.target),
                r.entry.kind().to_string(),
                one_line(&detail(&r.entry)),
            ]
        }))
        .collect();
    // DETAIL is last and unpadded, so long messages do not widen every row.
    let mut widths = [0usize; 4];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (width, cell) in widths.iter().zip(row) {
            out.push_str(cell);
            let pad = width - cell.chars().count() + 2;
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(&row[4]);
        out.push('\n');
    }
    out
}

/// JSON Lines in the journal's own format, for piping into other tools.
pub fn render_json(records: &[&Record]) -> String {
    let mut out = String::new();
    for record in records {
        match serde_json::to_string(record) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
            }
            // Only a timestamp outside 1970..9999 fails, and records read
            // from a journal were parsed from such a timestamp, so this is
            // reachable only with hand-built records.
            Err(e) => {
                tracing::warn!(policy = %record.policy, error = %e, "record left out of JSON output")
            }
        }
    }
    out
}

pub(crate) fn detail(entry: &Entry) -> String {
    let mut text = match entry {
        Entry::Intent {
            attempt, actions, ..
        } => format!("attempt {attempt}: {}", list(actions)),
        Entry::Outcome {
            result,
            error,
            duration_ms,
            verification,
            ..
        } => {
            let mut text = match result {
                OutcomeResult::Ok => "ok",
                OutcomeResult::Failed => "failed",
                OutcomeResult::TimedOut => "timed out",
                OutcomeResult::NotApplicable => "not applicable",
                OutcomeResult::Unknown => "unknown (agent restarted)",
            }
            .to_string();
            text.push_str(&format!(" after {duration_ms}ms"));
            if let Some(error) = error {
                text.push_str(&format!(": {error}"));
            }
            if let Some(Verification { passed, detail }) = verification {
                text.push_str(if *passed {
                    "; verified"
                } else {
                    "; verify failed"
                });
                if !detail.is_empty() {
                    text.push_str(&format!(": {detail}"));
                }
            }
            text
        }
        Entry::Skip { reason, detail, .. } => match detail {
            Some(detail) => format!("{reason}: {detail}"),
            None => reason.clone(),
        },
        Entry::Escalate {
            actions, attempts, ..
        } => {
            let plural = if *attempts == 1 { "" } else { "s" };
            format!(
                "circuit open after {attempts} attempt{plural}: {}",
                list(actions)
            )
        }
        Entry::EscalationSent { failures } if failures.is_empty() => "escalation sent".to_string(),
        Entry::EscalationSent { failures } => {
            format!("escalation sent, with failures: {}", failures.join("; "))
        }
        Entry::Rehearsal { accepted, steps } => {
            let answer = if *accepted { "accepted" } else { "REFUSED" };
            format!("server-side dry run {answer}: {}", steps.join("; "))
        }
        Entry::Control {
            command,
            by,
            until,
            reason,
            refused,
        } => {
            let mut text = format!("{command} by {by}");
            if let Some(until) = until {
                text.push_str(&format!(" until {until}"));
            }
            if let Some(reason) = reason {
                text.push_str(&format!(": {reason}"));
            }
            if let Some(refused) = refused {
                text.push_str(&format!(" REFUSED: {refused}"));
            }
            text
        }
    };
    if entry.dry_run() && !matches!(entry, Entry::Rehearsal { .. }) {
        text.push_str(" (dry run)");
    }
    text
}

fn list(actions: &[String]) -> String {
    if actions.is_empty() {
        "no actions".to_string()
    } else {
        actions.join(", ")
    }
}

/// Error messages and names can hold newlines or tabs that would break the
/// table's rows; escape them instead of dropping them.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
