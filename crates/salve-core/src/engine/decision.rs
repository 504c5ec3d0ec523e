//! What the engine says: act, escalate, or skip with a machine-readable reason.

use super::time::Timestamp;
use serde::Serialize;

/// Index of a policy in the engine's policy list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub u32);

impl PolicyId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub at: Timestamp,
    pub policy: PolicyId,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Run the policy's actions, then its verification; report back with an `Outcome`.
    Act {
        attempt_id: u64,
        /// 1-based count of attempts within the guard window, this one included.
        attempt: u32,
        evidence: Vec<String>,
    },
    /// The circuit opened, or too many of a selector's objects are unhealthy at once
    /// (`attempts` is then 0): run the policy's `escalate` actions, once per opening or
    /// storm.
    Escalate {
        attempts: u32,
        dry_run: bool,
        evidence: Vec<String>,
    },
    /// Did nothing, and why.
    Skip {
        reason: SkipReason,
        /// When acting may be possible again, if the engine knows.
        retry_at: Option<Timestamp>,
        /// For a dry run: the attempt number that would have run.
        attempt: Option<u32>,
        evidence: Vec<String>,
    },
}

impl Verdict {
    pub fn is_executable(&self) -> bool {
        matches!(
            self,
            Verdict::Act { .. } | Verdict::Escalate { dry_run: false, .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Too soon after the previous attempt (cooldown, grown by backoff).
    Cooldown,
    /// `maxAttempts` reached within `window`; waiting for the window or a reset.
    CircuitOpen,
    /// The policy or the agent is in dry-run mode.
    DryRun,
    /// The global cap on actions per minute is reached.
    StormCap,
    /// The global cap on actions running at once is reached.
    MaxConcurrent,
    /// An attempt on this target is still running; its own transitions are ignored.
    InFlight,
    /// More of the selector's objects are unhealthy than `maxUnhealthy` allows, or
    /// were until less than `settle` ago.
    MaxUnhealthy,
    /// A person paused the target or the policy (`salve pause`).
    Paused,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Cooldown => "cooldown",
            SkipReason::CircuitOpen => "circuit_open",
            SkipReason::DryRun => "dry_run",
            SkipReason::StormCap => "storm_cap",
            SkipReason::MaxConcurrent => "max_concurrent",
            SkipReason::InFlight => "in_flight",
            SkipReason::MaxUnhealthy => "max_unhealthy",
            SkipReason::Paused => "paused",
        }
    }
}

/// A decision spelled out for people and files: names instead of indexes.
/// `salve simulate` prints these; the agent journals the same facts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    pub at: Timestamp,
    pub policy: String,
    pub target: String,
    /// `act`, `escalate` or `skip`.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_id: Option<u64>,
    /// What runs (act, escalate) or would have run (dry run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl DecisionRecord {
    pub fn new(decision: &Decision, policy: &crate::policy::Policy) -> Self {
        let names = |actions: &[crate::policy::Action]| actions.iter().map(|a| a.name()).collect();
        let mut record = DecisionRecord {
            at: decision.at,
            policy: policy.name().to_string(),
            target: super::target_name(policy),
            decision: "skip",
            reason: None,
            attempt: None,
            attempt_id: None,
            actions: Vec::new(),
            retry_at: None,
            dry_run: false,
            evidence: Vec::new(),
        };
        match &decision.verdict {
            Verdict::Act {
                attempt_id,
                attempt,
                evidence,
            } => {
                record.decision = "act";
                record.attempt = Some(*attempt);
                record.attempt_id = Some(*attempt_id);
                record.actions = names(&policy.spec.actions);
                record.evidence = evidence.clone();
            }
            Verdict::Escalate {
                attempts,
                dry_run,
                evidence,
            } => {
                record.decision = "escalate";
                record.attempt = Some(*attempts);
                record.actions = names(&policy.spec.escalate);
                record.dry_run = *dry_run;
                record.evidence = evidence.clone();
            }
            Verdict::Skip {
                reason,
                retry_at,
                attempt,
                evidence,
            } => {
                record.reason = Some(*reason);
                record.retry_at = *retry_at;
                record.attempt = *attempt;
                record.evidence = evidence.clone();
                if *reason == SkipReason::DryRun {
                    record.dry_run = true;
                    record.actions = names(&policy.spec.actions);
                }
            }
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_attempts_and_live_escalations_are_executable() {
        let act = Verdict::Act {
            attempt_id: 1,
            attempt: 1,
            evidence: Vec::new(),
        };
        let escalate = |dry_run| Verdict::Escalate {
            attempts: 3,
            dry_run,
            evidence: Vec::new(),
        };
        let skip = Verdict::Skip {
            reason: SkipReason::DryRun,
            retry_at: None,
            attempt: Some(1),
            evidence: Vec::new(),
        };
        assert!(act.is_executable());
        assert!(escalate(false).is_executable());
        assert!(!escalate(true).is_executable());
        assert!(!skip.is_executable());
    }
}
