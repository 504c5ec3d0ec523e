//! A second family runs through the same attempt as systemd's: a scripted one that
//! answers each of its actions from a list and records what it was asked. What the
//! attempt does around it (order, stopping at the first failure, not applicable,
//! the shared `exec`, verification, the outcome) is the executor's, for every family.

use super::*;
use crate::policy::Policy;
use std::collections::VecDeque;
use std::sync::Mutex;

struct Scripted {
    answers: Mutex<VecDeque<Acted>>,
    asked: Mutex<Vec<&'static str>>,
    verdict: (bool, String),
    verifications: Mutex<u32>,
    /// The units reloaded, and whether a reload fails.
    reloads: Mutex<Vec<String>>,
    reload_fails: std::sync::atomic::AtomicBool,
}

impl Scripted {
    fn new(answers: Vec<Result<String, Failure>>, verdict: bool) -> Executor<Scripted> {
        Self::acting(answers.into_iter().map(Acted::done).collect(), verdict)
    }

    fn acting(answers: Vec<Acted>, verdict: bool) -> Executor<Scripted> {
        Executor::new(Scripted {
            answers: Mutex::new(answers.into()),
            asked: Mutex::new(Vec::new()),
            verdict: (verdict, format!("scripted check {verdict}")),
            verifications: Mutex::new(0),
            reloads: Mutex::new(Vec::new()),
            reload_fails: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn asked(&self) -> Vec<&'static str> {
        self.asked.lock().expect("not poisoned").clone()
    }
}

impl Family for Scripted {
    async fn act<'a>(
        &'a self,
        _executor: &'a Executor<Self>,
        _policy: &'a Policy,
        action: &'a Action,
    ) -> Option<Acted> {
        // `exec` and `notify` are not this family's: the executor runs them.
        if matches!(
            action,
            Action::Exec(_)
                | Action::Notify(_)
                | Action::Drain(_)
                | Action::Ready(_)
                | Action::SetWeight(_)
        ) {
            return None;
        }
        self.asked.lock().expect("not poisoned").push(action.name());
        let answer = self.answers.lock().expect("not poisoned").pop_front();
        Some(answer.unwrap_or(Acted::done(Ok("done".into()))))
    }

    async fn reload_unit<'a>(&'a self, unit: &'a crate::policy::UnitName) -> Result<(), String> {
        self.reloads
            .lock()
            .expect("not poisoned")
            .push(unit.to_string());
        if self.reload_fails.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(format!("reload of {unit}: scripted failure"));
        }
        Ok(())
    }

    async fn verify_target<'a>(
        &'a self,
        _policy: &'a Policy,
        verify: &'a Verify,
    ) -> Option<(bool, String)> {
        *self.verifications.lock().expect("not poisoned") += 1;
        verify.unit.as_ref().map(|_| self.verdict.clone())
    }
}

fn policy() -> Policy {
    let doc = serde_json::json!({
        "apiVersion": "salve.dev/v1alpha1",
        "kind": "RemediationPolicy",
        "metadata": { "name": "scripted" },
        "spec": {
            "target": { "unit": "app.service" },
            "trigger": [{ "unit": { "activeState": ["failed"] } }],
            "actions": [{ "restart": {} }, { "exec": { "command": ["/bin/true"] } }, { "start": {} }],
            "verify": { "unit": {} }
        }
    });
    crate::policy::decode_resource(&doc, "test").expect("the test policy is valid")
}

fn failure(timed_out: bool, not_applicable: bool) -> Failure {
    Failure {
        timed_out,
        not_applicable,
        message: "scripted failure".into(),
    }
}

#[tokio::test]
async fn every_action_runs_in_order_and_the_familys_verification_decides() {
    let executor = Scripted::new(vec![Ok("restarted".into()), Ok("started".into())], true);
    let outcome = executor.run_attempt(&policy(), 7).await;
    assert_eq!(outcome.attempt_id, Some(7));
    assert_eq!(outcome.policy, "scripted");
    assert_eq!(outcome.result, OutcomeResult::Ok);
    assert_eq!(outcome.verified, Some(true));
    let detail = outcome.detail.expect("an attempt has detail");
    assert_eq!(
        detail.steps,
        ["restart: restarted", "exec: exited 0", "start: started"]
    );
    assert_eq!(detail.verification.as_deref(), Some("scripted check true"));
    assert_eq!(executor.family().asked(), ["restart", "start"]);

    let executor = Scripted::new(vec![], false);
    let outcome = executor.run_attempt(&policy(), 8).await;
    assert_eq!(outcome.result, OutcomeResult::Ok);
    assert_eq!(outcome.verified, Some(false));
}

#[tokio::test]
async fn the_first_failure_ends_the_attempt_unverified() {
    let executor = Scripted::new(vec![Err(failure(true, false))], true);
    let outcome = executor.run_attempt(&policy(), 1).await;
    assert_eq!(outcome.result, OutcomeResult::TimedOut);
    assert_eq!(outcome.verified, None);
    let detail = outcome.detail.expect("an attempt has detail");
    assert_eq!(detail.steps, ["restart: scripted failure"]);
    assert_eq!(detail.error.as_deref(), Some("restart: scripted failure"));
    assert_eq!(
        executor.family().asked(),
        ["restart"],
        "nothing ran after the failure"
    );

    let executor = Scripted::new(
        vec![Ok("restarted".into()), Err(failure(false, false))],
        true,
    );
    let outcome = executor.run_attempt(&policy(), 2).await;
    assert_eq!(outcome.result, OutcomeResult::Failed);
    assert_eq!(executor.family().asked(), ["restart", "start"]);
}

#[tokio::test]
async fn nothing_to_do_is_not_applicable_only_before_anything_changed() {
    let executor = Scripted::new(vec![Err(failure(false, true))], true);
    let outcome = executor.run_attempt(&policy(), 1).await;
    assert_eq!(outcome.result, OutcomeResult::NotApplicable);

    // The restart changed something; a later "nothing to do" is a failure then.
    let executor = Scripted::new(
        vec![Ok("restarted".into()), Err(failure(false, true))],
        true,
    );
    let outcome = executor.run_attempt(&policy(), 2).await;
    assert_eq!(outcome.result, OutcomeResult::Failed);
}

#[tokio::test]
async fn escalation_runs_every_action_and_reports_each_failure() {
    let mut p = policy();
    p.spec.escalate = p.spec.actions.clone();
    let executor = Scripted::new(vec![Err(failure(false, false)), Ok("started".into())], true);
    let failures = executor.run_escalation(&p, 3).await;
    assert_eq!(failures, ["restart: scripted failure"]);
    assert_eq!(executor.family().asked(), ["restart", "start"]);
}

fn policy_with_actions(actions: serde_json::Value) -> Policy {
    #[derive(serde::Deserialize)]
    struct Actions {
        actions: Vec<Action>,
    }
    let mut p = policy();
    p.spec.actions = serde_json::from_value::<Actions>(serde_json::json!({ "actions": actions }))
        .expect("test actions read")
        .actions;
    p
}

#[tokio::test]
async fn a_change_verified_in_place_is_not_verified_again_unless_something_changed_after() {
    let edited = || Acted {
        result: Ok("raised".into()),
        diff: Some("-a\n+b".into()),
        verified: Some("scripted check true".into()),
    };
    // Verified with its change in place: the attempt's verification is that one.
    let executor = Scripted::acting(vec![edited()], false);
    let only_restart = policy_with_actions(serde_json::json!([{ "restart": {} }]));
    let outcome = executor.run_attempt(&only_restart, 1).await;
    assert_eq!(outcome.verified, Some(true));
    let detail = outcome.detail.expect("an attempt has detail");
    assert_eq!(detail.diffs, ["-a\n+b"]);
    assert_eq!(
        detail.verification.as_deref(),
        Some("scripted check true (with the config edit in place)")
    );
    assert_eq!(*executor.family().verifications.lock().unwrap(), 0);

    // Another action after it changed the world again: verified anew (and here fails).
    let executor = Scripted::acting(vec![edited(), Acted::done(Ok("started".into()))], false);
    let two = policy_with_actions(serde_json::json!([{ "restart": {} }, { "start": {} }]));
    let outcome = executor.run_attempt(&two, 2).await;
    assert_eq!(outcome.verified, Some(false));
    assert_eq!(*executor.family().verifications.lock().unwrap(), 1);

    // A failed change still leaves its diff for the journal.
    let executor = Scripted::acting(
        vec![Acted {
            result: Err(failure(false, false)),
            diff: Some("-a\n+c".into()),
            verified: None,
        }],
        true,
    );
    let outcome = executor.run_attempt(&only_restart, 3).await;
    assert_eq!(outcome.result, OutcomeResult::Failed);
    assert_eq!(outcome.detail.expect("detail").diffs, ["-a\n+c"]);
}

mod load_balancer;
