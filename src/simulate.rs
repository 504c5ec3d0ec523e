//! `salve simulate`: replays recorded or hand-written events through the engine on a
//! virtual clock. Same engine as the agent; only the clock and the executors differ.

use crate::audit::{decision_record, outcome_record, Record};
use crate::engine::{
    Decision, DecisionRecord, Engine, Event, Outcome, OutcomeResult, Timestamp, Verdict,
};
use crate::policy::Policy;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

/// One line of an events file: `{"at": "1.5s", "unit": {...}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TimedEvent {
    pub at: Timestamp,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct EventsError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

const EVENT_KINDS: &[&str] = &[
    "unit", "http", "log", "pod", "workload", "node", "alert", "phpFpm", "outcome", "reset", "tick",
];
const EXPECTED: &str =
    "(expected {\"at\": TIME, KIND: {...}} with KIND one of unit, http, log, pod, workload, node, alert, phpFpm, outcome, reset, tick)";

/// The longest virtual time a replay may cover; far beyond any realistic incident, and
/// small enough that wall-clock stamps for `--journal` cannot overflow.
pub const MAX_SPAN: Duration = Duration::from_secs(366 * 24 * 3600);

/// A replay stops after this many decisions, so a runaway scenario (say a crash loop
/// replayed over a year) ends with a clear message instead of running for hours.
pub const MAX_DECISIONS: usize = 1_000_000;

/// Parses JSON Lines events; blank lines and lines starting with `#` are skipped.
/// Times must not go backwards: a replay is a history.
pub fn parse_events(file: &str, text: &str) -> Result<Vec<TimedEvent>, EventsError> {
    let mut events: Vec<TimedEvent> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| EventsError {
            file: file.to_string(),
            line: i + 1,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
        // `flatten` would silently drop a second kind or a misspelt key: check the shape
        // first, so every line means exactly what it says.
        let Some(object) = value.as_object() else {
            return Err(err(format!("expected an object {EXPECTED}")));
        };
        let kinds: Vec<&str> = object
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "at")
            .collect();
        if !object.contains_key("at") {
            return Err(err(format!("missing \"at\" {EXPECTED}")));
        }
        match kinds.as_slice() {
            [kind] if EVENT_KINDS.contains(kind) => {}
            [kind] => {
                return Err(err(crate::policy::unknown_event_kind(kind, EVENT_KINDS)));
            }
            [] => return Err(err(format!("no event kind {EXPECTED}"))),
            more => {
                return Err(err(format!(
                    "one event per line, found {} {EXPECTED}",
                    more.join(" and ")
                )))
            }
        }
        let event: TimedEvent =
            serde_json::from_value(value).map_err(|e| err(format!("{e} {EXPECTED}")))?;
        if event.at.since_origin() > MAX_SPAN {
            return Err(err(format!(
                "\"at\" is {}: a replay spans at most {}",
                event.at,
                humantime::format_duration(MAX_SPAN)
            )));
        }
        if let Some(prev) = events.last() {
            if event.at < prev.at {
                return Err(err(format!(
                    "time goes backwards: {} after {}",
                    event.at, prev.at
                )));
            }
        }
        events.push(event);
    }
    Ok(events)
}

/// How `simulate` completes attempts the events file does not report on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssumeOutcome {
    pub result: OutcomeResult,
    /// How long each simulated attempt takes.
    pub after: Duration,
}

/// What a replay produced: the decisions, and the journal the agent would have written.
#[derive(Debug, Default)]
pub struct Replay {
    pub decisions: Vec<DecisionRecord>,
    /// Set when the replay stopped at `MAX_DECISIONS`.
    pub truncated: bool,
    /// Filled only when a journal start time was given.
    pub journal: Vec<Record>,
}

/// Replays `events`, then lets timers run until `until` (default: the last event's time).
/// With `journal_start`, also builds the journal records, stamped `journal_start + at`.
pub fn run(
    engine: &mut Engine,
    events: &[TimedEvent],
    assume: Option<AssumeOutcome>,
    until: Option<Timestamp>,
    journal_start: Option<SystemTime>,
) -> Replay {
    let end = until
        .or(events.last().map(|e| e.at))
        .unwrap_or(Timestamp::ZERO);
    let mut script: VecDeque<TimedEvent> = events.iter().cloned().collect();
    let mut assumed: VecDeque<TimedEvent> = VecDeque::new();
    let mut replay = Replay::default();
    // Each attempt in flight, with the policy it was of: a selector's instance may be
    // gone (its pod deleted, by the attempt itself) when the attempt reports back.
    let mut running: HashMap<u64, (Policy, Timestamp)> = HashMap::new();
    let mut out: Vec<Decision> = Vec::new();
    loop {
        // The next thing to happen: a scripted event, an assumed outcome or a timer.
        // On equal times, scripted events go first, then outcomes, then timers.
        let scripted = script.front().map(|e| e.at);
        let outcome = assumed.front().map(|e| e.at).filter(|&t| t <= end);
        let timer = engine.next_deadline().filter(|&t| t <= end);
        let next = [scripted, outcome, timer].into_iter().flatten().min();
        let Some(at) = next else { break };
        if replay.decisions.len() >= MAX_DECISIONS {
            replay.truncated = true;
            break;
        }
        let event = if scripted == Some(at) {
            script.pop_front().map(|e| e.event)
        } else if outcome == Some(at) {
            assumed.pop_front().map(|e| e.event)
        } else {
            None
        }
        .unwrap_or(Event::Tick {});
        if let Event::Outcome(o) = &event {
            // Journal the outcome only if the engine will take it: it closes the
            // attempt in flight, and a stray report is ignored by both.
            // As the engine: an outcome naming no attempt is a named policy's; a
            // selector's objects each have their own, and it must name one.
            let named = engine
                .policy_id(&o.policy)
                .is_some_and(|id| !engine.policy(id).spec.target.is_selector());
            let attempt = o.attempt_id.or_else(|| {
                named.then_some(())?;
                running
                    .iter()
                    .filter(|(_, (policy, _))| policy.name() == o.policy)
                    .map(|(&id, _)| id)
                    .min()
            });
            let finished = attempt
                .filter(|id| running.get(id).is_some_and(|(p, _)| p.name() == o.policy))
                .and_then(|id| running.remove(&id).map(|r| (id, r)));
            if let (Some(start), Some((attempt_id, (policy, started)))) = (journal_start, finished)
            {
                let elapsed = at.saturating_since(started);
                let ts = start + at.since_origin();
                replay
                    .journal
                    .push(outcome_record(&policy, attempt_id, o, elapsed, ts));
            }
        }
        out.clear();
        engine.handle(at, &event, &mut out);
        for decision in &out {
            let policy = engine.policy(decision.policy);
            if let Verdict::Act { attempt_id, .. } = &decision.verdict {
                running.insert(*attempt_id, (policy.clone().into_owned(), at));
                if let Some(a) = assume {
                    let done = TimedEvent {
                        at: at + a.after,
                        event: Event::Outcome(Outcome {
                            policy: policy.name().to_string(),
                            attempt_id: Some(*attempt_id),
                            result: a.result,
                            verified: None,
                            detail: None,
                        }),
                    };
                    let pos = assumed.partition_point(|e| e.at <= done.at);
                    assumed.insert(pos, done);
                }
            }
            if let Some(start) = journal_start {
                let ts = start + at.since_origin();
                replay.journal.push(decision_record(decision, &policy, ts));
            }
            replay
                .decisions
                .push(DecisionRecord::new(decision, &policy));
        }
    }
    replay
}
