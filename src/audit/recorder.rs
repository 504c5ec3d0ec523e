//! Turns engine decisions into journal records: the one place that decides what an
//! act, a skip or an escalation looks like in the journal.

use super::record::{Entry, Record, Verification};
use crate::engine::{Decision, Outcome, SkipReason, Verdict};
use crate::policy::Policy;
use std::time::{Duration, SystemTime};

fn action_names(actions: &[crate::policy::Action]) -> Vec<String> {
    actions.iter().map(|a| a.name().to_string()).collect()
}

/// The record for a decision. For `Act` this is the intent, which must be durable
/// before the first action runs.
pub fn decision_record(decision: &Decision, policy: &Policy, ts: SystemTime) -> Record {
    let entry = match &decision.verdict {
        Verdict::Act {
            attempt_id,
            attempt,
            evidence,
        } => Entry::Intent {
            id: *attempt_id,
            attempt: *attempt,
            actions: action_names(&policy.spec.actions),
            dry_run: false,
            evidence: evidence.clone(),
        },
        Verdict::Escalate {
            attempts,
            dry_run,
            evidence,
        } => Entry::Escalate {
            actions: action_names(&policy.spec.escalate),
            attempts: *attempts,
            dry_run: *dry_run,
            evidence: evidence.clone(),
        },
        Verdict::Skip {
            reason,
            retry_at,
            attempt,
            evidence,
        } => {
            let mut detail = match (reason, attempt) {
                (SkipReason::DryRun, Some(n)) => {
                    format!(
                        "would run attempt {n}: {}",
                        action_names(&policy.spec.actions).join(", ")
                    )
                }
                _ => String::new(),
            };
            if let Some(retry) = retry_at {
                let wait = retry.saturating_since(decision.at);
                detail = format!(
                    "retry in {}",
                    humantime::format_duration(round_to_millis(wait))
                );
            }
            if let Some(first) = evidence.first() {
                if !detail.is_empty() {
                    detail.push_str("; ");
                }
                detail.push_str(first);
            }
            Entry::Skip {
                reason: reason.as_str().to_string(),
                detail: (!detail.is_empty()).then_some(detail),
                dry_run: *reason == SkipReason::DryRun,
            }
        }
    };
    Record {
        ts,
        policy: policy.name().to_string(),
        target: crate::engine::target_name(policy),
        entry,
    }
}

/// The record closing an attempt. `elapsed` stands in when the outcome does not say
/// how long the attempt took.
/// The escalation of a drain an attempt could not make: `attempts: 0`, as a storm's,
/// since no circuit opened.
pub fn drain_escalation(policy: &Policy, why: &str, ts: SystemTime) -> Record {
    Record {
        ts,
        policy: policy.name().to_string(),
        target: crate::engine::target_name(policy),
        entry: Entry::Escalate {
            actions: action_names(&policy.spec.escalate),
            attempts: 0,
            dry_run: false,
            evidence: vec![format!("not drained: {why}")],
        },
    }
}

pub fn outcome_record(
    policy: &Policy,
    attempt_id: u64,
    outcome: &Outcome,
    elapsed: Duration,
    ts: SystemTime,
) -> Record {
    let detail = outcome.detail.clone().unwrap_or_default();
    let verification = outcome.verified.map(|passed| Verification {
        passed,
        detail: detail
            .verification
            .clone()
            .unwrap_or_else(|| "no detail reported".to_string()),
    });
    Record {
        ts,
        policy: policy.name().to_string(),
        target: crate::engine::target_name(policy),
        entry: Entry::Outcome {
            id: attempt_id,
            result: outcome.result,
            error: detail.error,
            duration_ms: detail
                .duration_ms
                .unwrap_or_else(|| elapsed.as_millis().min(u64::MAX as u128) as u64),
            steps: detail.steps,
            verification,
            diffs: detail.diffs,
        },
    }
}

fn round_to_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, Event, Limits, Timestamp, UnitObservation};
    use crate::policy::{parse_file, ActiveState};
    use std::path::Path;

    fn engine() -> Engine {
        let yaml = "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: { name: p }\nspec:\n  target: { unit: php.service }\n  trigger:\n    - unit: { activeState: [failed] }\n  actions: [{ resetFailed: {} }, { restart: {} }]\n";
        let (policies, errors) = parse_file(Path::new("p.yaml"), yaml);
        assert!(errors.is_empty(), "{errors:?}");
        Engine::new(policies, Limits::default())
    }

    fn failed() -> Event {
        Event::Unit(UnitObservation {
            name: "php.service".into(),
            active_state: Some(ActiveState::Failed),
            sub_state: None,
            unit_file_state: None,
            result: None,
            n_restarts: None,
        })
    }

    #[test]
    fn an_act_becomes_an_intent_naming_the_actions_and_evidence() {
        let mut e = engine();
        let mut out = Vec::new();
        e.handle(Timestamp::ZERO, &failed(), &mut out);
        let record = decision_record(&out[0], &e.policy(out[0].policy), SystemTime::UNIX_EPOCH);
        assert_eq!(record.target, "php.service");
        match record.entry {
            Entry::Intent {
                id: 1,
                attempt: 1,
                actions,
                dry_run: false,
                evidence,
            } => {
                assert_eq!(actions, ["resetFailed", "restart"]);
                assert!(evidence[0].contains("activeState=failed"), "{evidence:?}");
            }
            other => panic!("expected an intent, got {other:?}"),
        }
    }

    #[test]
    fn a_cooldown_skip_says_when_it_may_retry() {
        let mut e = engine();
        let mut out = Vec::new();
        e.handle(Timestamp::ZERO, &failed(), &mut out);
        let done = Event::Outcome(Outcome {
            policy: "p".into(),
            attempt_id: None,
            result: crate::engine::OutcomeResult::Ok,
            verified: None,
            detail: None,
        });
        out.clear();
        e.handle(Timestamp::from_millis(2_500), &done, &mut out);
        let record = decision_record(&out[0], &e.policy(out[0].policy), SystemTime::UNIX_EPOCH);
        match record.entry {
            Entry::Skip {
                reason,
                detail: Some(detail),
                dry_run: false,
            } => {
                assert_eq!(reason, "cooldown");
                assert!(
                    detail.starts_with("retry in 7s 500ms; unit php.service"),
                    "{detail}"
                );
            }
            other => panic!("expected a skip, got {other:?}"),
        }
    }
}
