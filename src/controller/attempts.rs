//! The tasks that run attempts and escalations, supervised: an attempt whose task
//! panicked or was cancelled never reported back, so it is turned into a failed outcome
//! here. Without that its target would stay "in flight" for ever and salve would never
//! act on it again.

use crate::engine::{AttemptDetail, Outcome, OutcomeResult};
use crate::policy::Policy;
use std::collections::HashMap;
use std::future::Future;
use tokio::task::{Id, JoinError, JoinSet};

#[derive(Default)]
pub struct Attempts {
    tasks: JoinSet<()>,
    /// Attempt tasks still running: which attempt (and policy) each one is.
    attempts: HashMap<Id, (u64, String)>,
}

/// How a task ended.
pub enum Ended {
    /// It reported for itself (an attempt sends its outcome as an event).
    Finished,
    /// An attempt ended without an outcome: this failed one stands in for it.
    Lost(Outcome),
}

impl Attempts {
    /// Runs an attempt's task, which reports its own outcome as an event.
    pub fn spawn_attempt(
        &mut self,
        attempt_id: u64,
        policy: String,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(task);
        self.attempts.insert(handle.id(), (attempt_id, policy));
    }

    /// Runs a task that reports nothing back to the engine (an escalation, a
    /// rehearsal).
    pub fn spawn_escalation(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Tasks (attempts and escalations) still running.
    pub fn running(&self) -> usize {
        self.tasks.len()
    }

    /// Waits for the next task to end. An attempt whose task ended without reporting
    /// (a panic) is `Lost`, with a failed outcome for it. Pending while no task runs.
    pub async fn next(&mut self) -> Ended {
        let Some(ended) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        match ended {
            Ok((id, ())) => {
                self.attempts.remove(&id);
                Ended::Finished
            }
            Err(e) => {
                let lost = self.attempts.remove(&e.id());
                let why = describe(&e);
                match lost {
                    Some((attempt_id, policy)) => {
                        tracing::error!(policy = %policy, attempt_id, error = %why, "an attempt ended without an outcome");
                        Ended::Lost(lost_outcome(policy, attempt_id, why))
                    }
                    None => {
                        tracing::error!(error = %why, "an escalation ended abnormally");
                        Ended::Finished
                    }
                }
            }
        }
    }

    /// `next`, skipping tasks that finished normally: only a lost attempt's outcome.
    pub async fn next_lost(&mut self) -> Outcome {
        loop {
            if let Ended::Lost(outcome) = self.next().await {
                return outcome;
            }
        }
    }
}

fn describe(e: &JoinError) -> String {
    if e.is_cancelled() {
        return "the attempt was cancelled".to_string();
    }
    // `JoinError` keeps the panic payload; its Display says "task N panicked with
    // message ...", which is what a person needs, without consuming the error.
    format!("the attempt panicked: {e}")
}

fn lost_outcome(policy: String, attempt_id: u64, why: String) -> Outcome {
    Outcome {
        policy,
        attempt_id: Some(attempt_id),
        result: OutcomeResult::Failed,
        verified: None,
        detail: Some(AttemptDetail {
            error: Some(why),
            ..AttemptDetail::default()
        }),
    }
}

/// A failed outcome for an attempt that could not run at all.
pub fn failed(policy: &Policy, attempt_id: u64, error: String) -> Outcome {
    lost_outcome(policy.name().to_string(), attempt_id, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_panicking_attempt_becomes_a_failed_outcome() {
        let mut attempts = Attempts::default();
        attempts.spawn_attempt(7, "php-fpm-down".into(), async {
            // An injected fault: what an overflow or an index out of range would do.
            panic!("injected fault");
        });
        attempts.spawn_attempt(8, "other".into(), async {});
        attempts.spawn_escalation(async { panic!("escalation fault") });
        let lost = tokio::time::timeout(Duration::from_secs(2), attempts.next_lost())
            .await
            .unwrap();
        assert_eq!(lost.attempt_id, Some(7));
        assert_eq!(lost.policy, "php-fpm-down");
        assert_eq!(lost.result, OutcomeResult::Failed);
        let error = lost.detail.unwrap().error.unwrap();
        assert!(
            error.contains("panicked") && error.contains("injected fault"),
            "{error}"
        );
        // Nothing else is lost: the other attempt reported normally, the escalation has
        // no outcome to give, so the supervisor then waits.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), attempts.next_lost())
                .await
                .is_err()
        );
        assert!(attempts.attempts.is_empty());
    }
}
