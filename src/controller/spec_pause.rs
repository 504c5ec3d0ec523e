//! `spec.pause`: a deploy window declared with the policy itself, for where no control
//! socket reaches (a custom resource in a cluster; a policy file too). The controller
//! turns the field into the engine's pause of the policy, lifts it when the field goes
//! or changes, and journals both, so the operator's status (`Paused`) follows the
//! journal as it does for circuits.
//!
//! Such a pause is the policy's own: it is not rebuilt from the journal at a start (the
//! field says it again, or no longer), and a person's `salve resume` lifts it until
//! the field changes.

use super::Controller;
use crate::action::Family;
use crate::audit::{Entry, Record};
use crate::engine::PauseScope;
use std::time::SystemTime;

/// The `by` of a spec pause's journal records.
pub const SPEC_PAUSE_BY: &str = "spec.pause";

/// A spec pause in force: until when (wall clock), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub until: SystemTime,
    pub reason: String,
}

impl<F: Family> Controller<F> {
    /// Makes the engine's pauses match the policies' `spec.pause` now: new or changed
    /// ones declared, gone or expired ones lifted, each journalled.
    pub fn apply_spec_pauses(&mut self) {
        let wall = SystemTime::now();
        let wanted: Vec<(String, String, Declared)> = self
            .engine
            .policies()
            .filter_map(|policy| {
                let pause = policy.spec.pause.as_ref()?;
                let until = humantime::parse_rfc3339(&pause.until).ok()?;
                (until > wall).then(|| {
                    (
                        policy.name().to_string(),
                        crate::engine::target_name(policy),
                        Declared {
                            until,
                            reason: pause.reason.clone(),
                        },
                    )
                })
            })
            .collect();
        // Only a pause whose field went is lifted: a changed one is replaced in place
        // below, never lifted in between (a lift re-decides, and could act).
        let gone: Vec<String> = self
            .spec_pauses
            .keys()
            .filter(|name| !wanted.iter().any(|(n, _, _)| n == *name))
            .cloned()
            .collect();
        for name in gone {
            self.lift_spec_pause(&name, "lifted: the policy's spec.pause went");
        }
        for (name, target, declared) in wanted {
            if self.spec_pauses.get(&name) == Some(&declared) {
                continue;
            }
            let scope = PauseScope::Policy(name.clone());
            // Compared as written (above), capped here: at most 7 days from now.
            let capped = declared.until.min(wall + crate::control::MAX_PAUSE);
            let until = self.clock.ahead(capped);
            let paused =
                self.with_engine(|engine, now, out| engine.pause(now, scope.clone(), until, out));
            if let Err(e) = paused {
                tracing::warn!(policy = %name, error = %e, "spec.pause not in force");
                continue;
            }
            let until_text = super::report::rfc3339(capped);
            tracing::info!(policy = %name, until = %until_text, reason = %declared.reason, "paused by its spec");
            self.pause_notes.insert(
                scope.to_string(),
                (Some(declared.reason.clone()), SPEC_PAUSE_BY.to_string()),
            );
            self.journal.record(Record {
                ts: SystemTime::now(),
                policy: name.clone(),
                target,
                entry: Entry::Control {
                    command: "pause".to_string(),
                    by: SPEC_PAUSE_BY.to_string(),
                    until: Some(until_text),
                    reason: Some(declared.reason.clone()),
                    refused: None,
                },
            });
            self.spec_pauses.insert(name, declared);
        }
    }

    /// Spec pauses whose time has come are lifted and journalled (the engine has
    /// stopped holding them back already).
    pub(super) fn expire_spec_pauses(&mut self) {
        if self.spec_pauses.is_empty() {
            return;
        }
        let wall = SystemTime::now();
        let ended: Vec<String> = self
            .spec_pauses
            .iter()
            .filter(|(_, declared)| declared.until <= wall)
            .map(|(name, _)| name.clone())
            .collect();
        for name in ended {
            self.lift_spec_pause(&name, "ended: its time came");
        }
    }

    fn lift_spec_pause(&mut self, name: &str, why: &str) {
        self.spec_pauses.remove(name);
        let scope = PauseScope::Policy(name.to_string());
        self.with_engine(|engine, now, out| engine.resume(now, &scope, out));
        self.pause_notes.remove(&scope.to_string());
        let target = self
            .engine
            .policy_id(name)
            .map(|id| crate::engine::target_name(&self.engine.policy(id)))
            .unwrap_or_default();
        tracing::info!(policy = %name, why, "spec pause over");
        self.journal.record(Record {
            ts: SystemTime::now(),
            policy: name.to_string(),
            target,
            entry: Entry::Control {
                command: "resume".to_string(),
                by: SPEC_PAUSE_BY.to_string(),
                until: None,
                reason: Some(why.to_string()),
                refused: None,
            },
        });
    }
}
