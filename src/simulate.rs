//! `salve simulate`: replays recorded or hand-written events through the engine on a
//! virtual clock. Same engine as the agent; only the clock and the executors differ.

use crate::engine::{
    Decision, DecisionRecord, Engine, Event, Outcome, OutcomeResult, Timestamp, Verdict,
};
use serde::Deserialize;
use std::collections::VecDeque;
use std::time::Duration;

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
        let event: TimedEvent = serde_json::from_str(line).map_err(|e| {
            err(format!(
                "{e} (expected {{\"at\": TIME, KIND: {{...}}}} with KIND one of unit, http, log, outcome, reset, tick)"
            ))
        })?;
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

/// Replays `events`, then lets timers run until `until` (default: the last event's time).
pub fn run(
    engine: &mut Engine,
    events: &[TimedEvent],
    assume: Option<AssumeOutcome>,
    until: Option<Timestamp>,
) -> Vec<DecisionRecord> {
    let end = until
        .or(events.last().map(|e| e.at))
        .unwrap_or(Timestamp::ZERO);
    let mut script: VecDeque<TimedEvent> = events.iter().cloned().collect();
    let mut assumed: VecDeque<TimedEvent> = VecDeque::new();
    let mut records = Vec::new();
    let mut out: Vec<Decision> = Vec::new();
    loop {
        // The next thing to happen: a scripted event, an assumed outcome or a timer.
        // On equal times, scripted events go first, then outcomes, then timers.
        let scripted = script.front().map(|e| e.at);
        let outcome = assumed.front().map(|e| e.at).filter(|&t| t <= end);
        let timer = engine.next_deadline().filter(|&t| t <= end);
        let next = [scripted, outcome, timer].into_iter().flatten().min();
        let Some(at) = next else { break };
        let event = if scripted == Some(at) {
            script.pop_front().map(|e| e.event)
        } else if outcome == Some(at) {
            assumed.pop_front().map(|e| e.event)
        } else {
            None
        }
        .unwrap_or(Event::Tick {});
        out.clear();
        engine.handle(at, &event, &mut out);
        for decision in &out {
            let policy = engine.policy(decision.policy);
            if let (Some(a), Verdict::Act { attempt_id, .. }) = (assume, &decision.verdict) {
                let done = TimedEvent {
                    at: at + a.after,
                    event: Event::Outcome(Outcome {
                        policy: policy.name().to_string(),
                        attempt_id: Some(*attempt_id),
                        result: a.result,
                        verified: None,
                    }),
                };
                let pos = assumed.partition_point(|e| e.at <= done.at);
                assumed.insert(pos, done);
            }
            records.push(DecisionRecord::new(decision, policy));
        }
    }
    records
}
