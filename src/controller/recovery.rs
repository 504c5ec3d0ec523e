//! At start, what the journal says happened inside the policies' windows, as the
//! engine's past: attempts with their results, circuits that opened. An intent with no
//! outcome means the agent died mid-attempt (SIGKILL, OOM, a panic, the watchdog); it is
//! closed now with outcome `unknown`, which counts as failed.

use crate::audit::{read_recent, AuditError, Entry, OutcomeResult, Record};
use crate::controller::clock::Clock;
use crate::engine::{PastEvent, PastKind};
use crate::policy::Policy;
use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// What the agent needs from its journal before it decides anything.
#[derive(Debug, Default)]
pub struct Recovered {
    pub past: Vec<PastEvent>,
    /// The highest attempt id ever journalled, so new ids never repeat one.
    pub last_attempt_id: u64,
    /// `unknown` outcome records closing the intents that never got one.
    pub unfinished: Vec<Record>,
    /// Lines of the journal that could not be read.
    pub unreadable: usize,
    /// Escalations decided but never reported sent (the agent died while notifying):
    /// (policy, target, attempts), to send again while their circuit is open.
    pub unsent_escalations: Vec<(String, String, u32)>,
    /// Pauses a person declared that had not expired or been lifted at this start.
    pub pauses: Vec<Paused>,
}

/// A pause the journal shows in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Paused {
    pub scope: crate::engine::PauseScope,
    pub until: SystemTime,
    pub reason: Option<String>,
    pub by: String,
}

/// The pauses in force at `now` after the control records `records` (oldest first):
/// each pause replaces an earlier one of its scope, a resume lifts it.
pub fn pauses_from(records: &[Record], now: SystemTime) -> Vec<Paused> {
    use crate::engine::PauseScope;
    let mut pauses: Vec<Paused> = Vec::new();
    for record in records {
        let Entry::Control {
            command,
            by,
            until,
            reason,
            refused: None,
        } = &record.entry
        else {
            continue;
        };
        // A policy's spec says its own pause again at every start, or no longer.
        if by == super::spec_pause::SPEC_PAUSE_BY {
            continue;
        }
        let scope = match (record.target.is_empty(), record.policy.is_empty()) {
            (false, true) => PauseScope::Target(record.target.clone()),
            (true, false) => PauseScope::Policy(record.policy.clone()),
            _ => continue,
        };
        match command.as_str() {
            "pause" => {
                let Some(until) = until
                    .as_deref()
                    .and_then(|u| humantime::parse_rfc3339(u).ok())
                else {
                    continue;
                };
                pauses.retain(|p| p.scope != scope);
                pauses.push(Paused {
                    scope,
                    until,
                    reason: reason.clone(),
                    by: by.clone(),
                });
            }
            "resume" => pauses.retain(|p| p.scope != scope),
            _ => {}
        }
    }
    pauses.retain(|p| p.until > now);
    // A clock that was ahead when the pause was declared must not stretch it past
    // the longest pause from now.
    let longest = now + crate::control::MAX_PAUSE;
    for pause in &mut pauses {
        pause.until = pause.until.min(longest);
    }
    pauses
}

pub const UNKNOWN_OUTCOME: &str = "the agent stopped before the attempt reported back (killed, crashed or out of memory); what it did is not known, so it counts as failed";

pub fn recover(
    journal: &Path,
    policies: &[Policy],
    clock: &Clock,
) -> Result<Recovered, AuditError> {
    let horizon = policies
        .iter()
        .map(|p| p.spec.guard.window)
        .max()
        .unwrap_or(Duration::ZERO);
    let since = clock
        .wall_origin()
        .checked_sub(horizon)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // A pause may outlast every window: control records have their own horizon,
    // read in the same pass over the journal.
    let paused_since = clock
        .wall_origin()
        .checked_sub(crate::control::MAX_PAUSE)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let last_id = Cell::new(0u64);
    let read = read_recent(journal, since.min(paused_since), |record| {
        if let Some(id) = record.entry.id() {
            last_id.set(last_id.get().max(id));
        }
        match record.entry {
            Entry::Control { .. } => true,
            Entry::Intent { dry_run: false, .. }
            | Entry::Outcome { .. }
            | Entry::Escalate { dry_run: false, .. }
            | Entry::EscalationSent { .. } => record.ts >= since,
            _ => false,
        }
    })?;
    let (control, guarded): (Vec<Record>, Vec<Record>) = read
        .records
        .into_iter()
        .partition(|r| matches!(r.entry, Entry::Control { .. }));
    let mut recovered = from_records(&guarded, clock, SystemTime::now());
    recovered.last_attempt_id = last_id.get();
    recovered.unreadable = read.problems.len();
    recovered.pauses = pauses_from(&control, SystemTime::now());
    Ok(recovered)
}

/// The pairing of intents with outcomes, pure: records oldest first.
pub fn from_records(records: &[Record], clock: &Clock, now: SystemTime) -> Recovered {
    let mut past: Vec<PastEvent> = Vec::new();
    let mut unsent: Vec<(String, String, u32)> = Vec::new();
    // Intent id -> its index in `past`, while no outcome has been seen.
    let mut open: HashMap<u64, usize> = HashMap::new();
    for record in records {
        let at = clock.on_engine_clock(record.ts);
        match &record.entry {
            Entry::Intent { id, .. } => {
                let index = past.len();
                past.push(PastEvent {
                    at,
                    policy: record.policy.clone(),
                    target: record.target.clone(),
                    kind: PastKind::Attempt {
                        result: None,
                        succeeded: false,
                    },
                });
                // An id seen again (journals from before ids ran on across restarts)
                // leaves the earlier intent without an outcome: unknown.
                open.insert(*id, index);
            }
            Entry::Outcome {
                id,
                result,
                verification,
                ..
            } => {
                if let Some(index) = open.remove(id) {
                    let verified = verification.as_ref().is_none_or(|v| v.passed);
                    past[index].kind = PastKind::Attempt {
                        result: Some(*result),
                        succeeded: *result == OutcomeResult::Ok && verified,
                    };
                }
            }
            Entry::Escalate { attempts, .. } => {
                // Only a guard's escalation opened a circuit; a storm's or an undrained
                // node's (`attempts: 0`) did not, and must not open one on replay.
                if *attempts > 0 {
                    past.push(PastEvent {
                        at,
                        policy: record.policy.clone(),
                        target: record.target.clone(),
                        kind: PastKind::Escalated,
                    });
                }
                unsent.push((record.policy.clone(), record.target.clone(), *attempts));
            }
            Entry::EscalationSent { .. } => {
                unsent.retain(|(p, t, _)| !(*p == record.policy && *t == record.target));
            }
            Entry::Skip { .. } | Entry::Rehearsal { .. } | Entry::Control { .. } => {}
        }
    }
    let mut unfinished: Vec<(u64, usize)> = open.into_iter().collect();
    unfinished.sort_by_key(|&(_, index)| index);
    let unfinished = unfinished
        .into_iter()
        .map(|(id, index)| {
            let event = &past[index];
            Record {
                ts: now,
                policy: event.policy.clone(),
                target: event.target.clone(),
                entry: Entry::Outcome {
                    id,
                    result: OutcomeResult::Unknown,
                    error: Some(UNKNOWN_OUTCOME.to_string()),
                    duration_ms: 0,
                    steps: Vec::new(),
                    verification: None,
                    diffs: Vec::new(),
                },
            }
        })
        .collect();
    Recovered {
        past,
        last_attempt_id: 0,
        unfinished,
        unreadable: 0,
        unsent_escalations: unsent,
        pauses: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
