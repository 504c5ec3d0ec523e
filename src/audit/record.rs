//! The journal's record type: one JSON object per line, camelCase fields.
//!
//! The wire format is the contract with operators' tooling (`jq`, log
//! shippers), so field names are pinned by tests rather than left to follow
//! Rust identifiers.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One decision the controller made, as written to the audit journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Serialized with millisecond precision, so a round trip truncates
    /// anything finer.
    #[serde(with = "rfc3339")]
    pub ts: SystemTime,
    pub policy: String,
    pub target: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// What was decided. `kind` is the JSON discriminator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Entry {
    /// Written, and made durable, before an action runs, so a crash mid-action
    /// still leaves evidence of what was attempted.
    Intent {
        id: u64,
        attempt: u32,
        actions: Vec<String>,
        dry_run: bool,
        evidence: Vec<String>,
    },
    Outcome {
        id: u64,
        result: OutcomeResult,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        duration_ms: u64,
        /// Each action's own result, in order (e.g. "restart: job done").
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        steps: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verification: Option<Verification>,
        /// Unified diff of each config file the attempt edited, whether it was kept or
        /// rolled back (the steps say which).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        diffs: Vec<String>,
    },
    /// `reason` is machine-readable ("cooldown", "circuit_open", "dry_run",
    /// "storm_cap", "max_concurrent", "in_flight", ...); `detail` is for humans.
    Skip {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        dry_run: bool,
    },
    /// `attempts` is 0 for a selector whose objects were too many unhealthy at once;
    /// `evidence` then says how many, and which.
    Escalate {
        actions: Vec<String>,
        attempts: u32,
        dry_run: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        evidence: Vec<String>,
    },
    /// A dry run's changes as the target system's own dry run answered them (the API
    /// server's `dryRun=All`: admission, validation and RBAC ran, nothing was
    /// stored), written after the `skip` with reason `dry_run` it follows. `accepted`
    /// is false when a change was refused; its step says why.
    Rehearsal { accepted: bool, steps: Vec<String> },
    /// The escalation's actions ran (written after them): an `escalate` without one was
    /// cut off, and is sent again when the agent starts while its circuit is open.
    EscalationSent {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failures: Vec<String>,
    },
    /// A command a person sent the agent's control socket (`pause`, `resume`, `reset`,
    /// `reload`), accepted or `refused`, with who sent it: the peer's credentials as
    /// the kernel gave them. A pause names what it pauses in the record's `policy` or
    /// `target`, and `until` when it expires.
    Control {
        command: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<String>,
    },
}

/// The engine's own outcome type: the journal records exactly what the engine was told.
pub use crate::engine::OutcomeResult;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub passed: bool,
    pub detail: String,
}

impl Entry {
    /// The JSON `kind` value, for display and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Intent { .. } => "intent",
            Entry::Outcome { .. } => "outcome",
            Entry::Skip { .. } => "skip",
            Entry::Escalate { .. } => "escalate",
            Entry::EscalationSent { .. } => "escalationSent",
            Entry::Rehearsal { .. } => "rehearsal",
            Entry::Control { .. } => "control",
        }
    }

    /// Outcomes carry no flag of their own: a dry run never executes, so it
    /// never produces an outcome.
    pub fn dry_run(&self) -> bool {
        match self {
            Entry::Intent { dry_run, .. }
            | Entry::Skip { dry_run, .. }
            | Entry::Escalate { dry_run, .. } => *dry_run,
            Entry::Rehearsal { .. } => true,
            Entry::Outcome { .. } | Entry::EscalationSent { .. } | Entry::Control { .. } => false,
        }
    }

    /// The attempt id that ties an intent to its outcome.
    pub fn id(&self) -> Option<u64> {
        match self {
            Entry::Intent { id, .. } | Entry::Outcome { id, .. } => Some(*id),
            Entry::Skip { .. }
            | Entry::Escalate { .. }
            | Entry::EscalationSent { .. }
            | Entry::Rehearsal { .. }
            | Entry::Control { .. } => None,
        }
    }
}

/// Formats `ts` as RFC 3339 UTC, or `None` when humantime cannot represent it
/// (before 1970 or after 9999): its formatter panics or errors there, and a
/// skewed clock must not crash the controller.
pub(crate) fn format_ts(ts: SystemTime, millis: bool) -> Option<String> {
    let since_epoch = ts.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    // 10000-01-01T00:00:00Z, the first instant humantime refuses.
    if since_epoch.as_secs() >= 253_402_300_800 {
        return None;
    }
    Some(if millis {
        humantime::format_rfc3339_millis(ts).to_string()
    } else {
        humantime::format_rfc3339_seconds(ts).to_string()
    })
}

/// serde adapter: `SystemTime` <-> RFC 3339 string.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{de, ser, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        match super::format_ts(*ts, true) {
            Some(text) => s.serialize_str(&text),
            None => Err(ser::Error::custom(
                "timestamp is outside 1970..9999; check the system clock",
            )),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text)
            .map_err(|e| de::Error::custom(format!("bad timestamp {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ts() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    }

    fn rec(entry: Entry) -> Record {
        Record {
            ts: ts(),
            policy: "web".into(),
            target: "nginx".into(),
            entry,
        }
    }

    fn assert_round_trip(r: &Record, expected: &str) {
        let json = serde_json::to_string(r).unwrap();
        assert_eq!(json, expected);
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, r);
    }

    #[test]
    fn intent_wire_format() {
        let r = rec(Entry::Intent {
            id: 7,
            attempt: 2,
            actions: vec!["restart".into()],
            dry_run: true,
            evidence: vec!["probe failed".into()],
        });
        assert_round_trip(
            &r,
            r#"{"ts":"2023-11-14T22:13:20.123Z","policy":"web","target":"nginx","kind":"intent","id":7,"attempt":2,"actions":["restart"],"dryRun":true,"evidence":["probe failed"]}"#,
        );
    }

    #[test]
    fn outcome_wire_format_with_and_without_options() {
        let full = rec(Entry::Outcome {
            id: 7,
            result: OutcomeResult::TimedOut,
            error: Some("no exit after 30s".into()),
            duration_ms: 30_000,
            steps: Vec::new(),
            verification: Some(Verification {
                passed: false,
                detail: "503".into(),
            }),
            diffs: Vec::new(),
        });
        assert_round_trip(
            &full,
            r#"{"ts":"2023-11-14T22:13:20.123Z","policy":"web","target":"nginx","kind":"outcome","id":7,"result":"timed_out","error":"no exit after 30s","durationMs":30000,"verification":{"passed":false,"detail":"503"}}"#,
        );
        let bare = rec(Entry::Outcome {
            id: 8,
            result: OutcomeResult::Ok,
            error: None,
            duration_ms: 5,
            steps: Vec::new(),
            verification: None,
            diffs: Vec::new(),
        });
        assert_round_trip(
            &bare,
            r#"{"ts":"2023-11-14T22:13:20.123Z","policy":"web","target":"nginx","kind":"outcome","id":8,"result":"ok","durationMs":5}"#,
        );
    }

    #[test]
    fn skip_and_escalate_wire_format() {
        let skip = rec(Entry::Skip {
            reason: "cooldown".into(),
            detail: Some("12s left".into()),
            dry_run: false,
        });
        assert_round_trip(
            &skip,
            r#"{"ts":"2023-11-14T22:13:20.123Z","policy":"web","target":"nginx","kind":"skip","reason":"cooldown","detail":"12s left","dryRun":false}"#,
        );
        let esc = rec(Entry::Escalate {
            actions: vec!["notify".into()],
            attempts: 3,
            dry_run: false,
            evidence: Vec::new(),
        });
        assert_round_trip(
            &esc,
            r#"{"ts":"2023-11-14T22:13:20.123Z","policy":"web","target":"nginx","kind":"escalate","actions":["notify"],"attempts":3,"dryRun":false}"#,
        );
    }

    #[test]
    fn escalation_sent_wire_format() {
        assert_round_trip(
            &rec(Entry::EscalationSent { failures: vec![] }),
            r#"{"ts":"2023-11-14T22:13:20.123Z","policy":"web","target":"nginx","kind":"escalationSent"}"#,
        );
        assert_round_trip(
            &rec(Entry::EscalationSent {
                failures: vec!["notify: webhook answered 500".into()],
            }),
            r#"{"ts":"2023-11-14T22:13:20.123Z","policy":"web","target":"nginx","kind":"escalationSent","failures":["notify: webhook answered 500"]}"#,
        );
    }

    #[test]
    fn result_names() {
        let names: Vec<String> = [
            OutcomeResult::Ok,
            OutcomeResult::Failed,
            OutcomeResult::TimedOut,
        ]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
        assert_eq!(names, [r#""ok""#, r#""failed""#, r#""timed_out""#]);
    }

    #[test]
    fn weak_timestamps_are_accepted() {
        let line = r#"{"ts":"2023-11-14 22:13:20.123","policy":"p","target":"t","kind":"skip","reason":"in_flight","dryRun":false}"#;
        let r: Record = serde_json::from_str(line).unwrap();
        assert_eq!(r.ts, ts());
        assert_eq!(
            r.entry,
            Entry::Skip {
                reason: "in_flight".into(),
                detail: None,
                dry_run: false
            }
        );
    }

    #[test]
    fn unrepresentable_time_is_an_error_not_a_panic() {
        let mut r = rec(Entry::Escalate {
            actions: vec![],
            attempts: 1,
            dry_run: false,
            evidence: Vec::new(),
        });
        r.ts = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        let err = serde_json::to_string(&r).unwrap_err().to_string();
        assert!(err.contains("system clock"), "{err}");
        r.ts = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(serde_json::to_string(&r).is_err());
    }

    #[test]
    fn bad_timestamp_is_a_parse_error() {
        let line = r#"{"ts":"yesterday","policy":"p","target":"t","kind":"escalate","actions":[],"attempts":1,"dryRun":false}"#;
        let err = serde_json::from_str::<Record>(line)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad timestamp"), "{err}");
    }
}
