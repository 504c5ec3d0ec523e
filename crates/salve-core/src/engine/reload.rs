//! Swapping in a new policy set without forgetting what the old one learnt.

use super::{Decision, Engine, PolicyId, PolicyState, Role, Timestamp};
use crate::policy::Policy;
use std::collections::HashMap;
use std::sync::Arc;

impl Engine {
    /// Installs `policies` (a reload). Guard state lives with the target unit, not the
    /// policy, so attempts, backoff, an open circuit and an attempt in flight survive any
    /// edit, rename or removal: editing a file is never a way around a guardrail. A
    /// policy whose name survives also keeps its trigger progress (debounce, failure
    /// counts, log hits) for triggers that did not change. Every policy is then
    /// re-decided at `now`, which may produce decisions.
    pub fn replace_policies(
        &mut self,
        now: Timestamp,
        policies: Vec<Policy>,
        out: &mut Vec<Decision>,
    ) {
        // Each policy and each instance of a selector is known by its name and its
        // target's, so an instance keeps its progress for the object it acts on.
        let key = |engine: &Engine, i: usize| {
            (
                engine.policies[i].name().to_string(),
                engine.target_names[i].clone(),
            )
        };
        let old_waiting: Vec<(String, String)> = self
            .waiting_for_slot
            .iter()
            .map(|id| key(self, id.index()))
            .collect();
        let old_keys: Vec<(String, String)> =
            (0..self.policies.len()).map(|i| key(self, i)).collect();
        // A fleet group's storm belongs to the group, whichever policy counts it: a
        // reload that renames, removes or reorders its first policy must not end it.
        let group_storms: HashMap<String, super::fleet::Storm> = (0..self.states.len())
            .filter(|&i| self.states[i].in_group_of == Some(PolicyId(i as u32)))
            .filter_map(|i| {
                let storm = self.states[i].fleet.storm?;
                Some((self.policies[i].spec.fleet.as_ref()?.group.clone(), storm))
            })
            .collect();
        let old_policies = std::mem::take(&mut self.policies);
        let old_states = std::mem::take(&mut self.states);
        let mut carried: HashMap<(String, String), (Arc<Policy>, PolicyState)> = old_keys
            .into_iter()
            .zip(old_policies.into_iter().zip(old_states))
            .filter(|(_, (_, state))| state.role != Role::Free)
            .collect();
        self.install(policies, now);
        for i in 0..self.policies.len() {
            let Some((old_policy, old_state)) = carried.remove(&key(self, i)) else {
                continue;
            };
            let state = &mut self.states[i];
            if state.role == Role::Free {
                continue;
            }
            state.last_skip = old_state.last_skip;
            // A storm outlives a reload: editing the policy is no way around it. The
            // count is rebuilt below from the instances' (members') own flags.
            state.fleet.storm = old_state.fleet.storm;
            state.unhealthy = old_state.unhealthy;
            for (t, (new_trigger, track)) in self.policies[i]
                .spec
                .trigger
                .iter()
                .zip(old_state.triggers)
                .enumerate()
            {
                // Regexes have no equality; their Debug form is the pattern, which is
                // what matters here.
                let same = old_policy
                    .spec
                    .trigger
                    .get(t)
                    .is_some_and(|old| format!("{old:?}") == format!("{new_trigger:?}"));
                if same {
                    state.triggers[t] = track;
                }
            }
        }
        let mut leaders = Vec::new();
        for i in 0..self.policies.len() {
            let Some(of) = self.states[i].in_group_of else {
                continue;
            };
            // A policy counted now (a group formed or grown by this reload) is counted
            // from what it knows, not from whether it was counted before: with every
            // server failing, none is acted on before the count is whole.
            let state = &self.states[i];
            self.states[i].unhealthy = state.triggers.iter().any(|t| t.holds_since.is_some())
                || self.targets[state.target.0 as usize]
                    .guard
                    .in_flight
                    .is_some();
            if of.index() == i {
                leaders.push(of);
                if self.states[i].fleet.storm.is_none() {
                    let group = self.policies[i]
                        .spec
                        .fleet
                        .as_ref()
                        .map(|f| f.group.as_str());
                    self.states[i].fleet.storm = group.and_then(|g| group_storms.get(g).copied());
                }
            }
        }
        for i in 0..self.policies.len() {
            if let (Some(of), true) = (self.counted_by(i), self.states[i].unhealthy) {
                self.states[of.index()].fleet.unhealthy += 1;
            }
        }
        for leader in leaders {
            self.update_storm(now, leader, out);
        }
        // Those held back by `max_concurrent` keep their place in the queue.
        let now_keys: HashMap<(String, String), PolicyId> = (0..self.policies.len())
            .filter(|&i| self.states[i].role != Role::Free)
            .map(|i| (key(self, i), PolicyId(i as u32)))
            .collect();
        for old in old_waiting {
            if let Some(&id) = now_keys.get(&old) {
                if !self.states[id.index()].waiting_for_slot {
                    self.states[id.index()].waiting_for_slot = true;
                    self.waiting_for_slot.push(id);
                }
            }
        }
        for i in 0..self.policies.len() {
            self.evaluate(now, PolicyId(i as u32), out);
        }
        self.drop_stale_timers();
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{engine_from, policy_yaml};
    use super::super::*;
    use crate::policy::parse_file;
    use std::path::Path;

    const DOWN: &str = "    - unit: { activeState: [failed] }";
    const GUARD: &str = "{ cooldown: 1s, maxAttempts: 1, window: 1h, backoff: 1.0 }";

    fn failed(unit: &str) -> Event {
        Event::Unit(UnitObservation {
            name: unit.into(),
            active_state: Some(crate::policy::ActiveState::Failed),
            sub_state: None,
            unit_file_state: None,
            result: None,
            n_restarts: None,
        })
    }

    fn policies(yaml: &str) -> Vec<Policy> {
        let (found, errors) = parse_file(Path::new("r.yaml"), yaml);
        assert!(errors.is_empty(), "{errors:?}");
        found
    }

    /// One policy `p` on php.service whose single allowed attempt failed: circuit open.
    fn engine_with_open_circuit(yaml: &str) -> Engine {
        let mut e = engine_from(&[yaml.to_string()], Limits::default());
        let mut out = Vec::new();
        e.handle(Timestamp::ZERO, &failed("php.service"), &mut out);
        let done = Event::Outcome(Outcome {
            policy: "p".into(),
            attempt_id: None,
            result: OutcomeResult::Failed,
            verified: None,
            detail: None,
        });
        e.handle(Timestamp::from_millis(500), &done, &mut out);
        e
    }

    /// Reloads `edit(yaml)` into an engine whose circuit is open, and checks that the
    /// reload neither acts nor closes the circuit.
    fn assert_reload_keeps_circuit_open(edit: impl Fn(&str) -> String) {
        let yaml = policy_yaml("p", "php.service", DOWN, GUARD, "");
        let mut e = engine_with_open_circuit(&yaml);
        assert!(e.circuit_open(PolicyId(0), Timestamp::from_millis(600)));
        let mut out = Vec::new();
        let edited = edit(&yaml);
        assert_ne!(edited, yaml, "the edit must change the policy");
        e.replace_policies(Timestamp::from_millis(1_000), policies(&edited), &mut out);
        assert!(
            out.iter()
                .all(|d| !matches!(d.verdict, Verdict::Act { .. })),
            "{out:?}"
        );
        assert!(e.circuit_open(PolicyId(0), Timestamp::from_millis(2_000)));
    }

    #[test]
    fn a_reload_keeps_an_open_circuit_closed_to_new_attempts() {
        assert_reload_keeps_circuit_open(|y| y.replace("cooldown: 1s", "cooldown: 2s"));
    }

    #[test]
    fn renaming_a_policy_does_not_reset_its_targets_circuit() {
        assert_reload_keeps_circuit_open(|y| y.replace("name: p ", "name: q "));
    }

    #[test]
    fn a_removed_policy_keeps_its_slot_until_its_attempt_reports() {
        let a = policy_yaml("a", "a.service", DOWN, GUARD, "");
        let b = policy_yaml("b", "b.service", DOWN, GUARD, "");
        let limits = Limits {
            max_concurrent: 1,
            ..Limits::default()
        };
        let mut e = engine_from(&[a, b.clone()], limits);
        let mut out = Vec::new();
        e.handle(Timestamp::ZERO, &failed("a.service"), &mut out);
        assert!(matches!(out[0].verdict, Verdict::Act { attempt_id: 1, .. }));
        out.clear();
        e.replace_policies(Timestamp::from_millis(10), policies(&b), &mut out);
        e.handle(Timestamp::from_millis(20), &failed("b.service"), &mut out);
        assert!(
            out.iter()
                .all(|d| !matches!(d.verdict, Verdict::Act { .. })),
            "a's restart is still running: {out:?}"
        );
        out.clear();
        let done = Event::Outcome(Outcome {
            policy: "a".into(),
            attempt_id: Some(1),
            result: OutcomeResult::Ok,
            verified: None,
            detail: None,
        });
        e.handle(Timestamp::from_millis(30), &done, &mut out);
        assert!(
            out.iter().any(|d| matches!(d.verdict, Verdict::Act { .. })),
            "{out:?}"
        );
    }

    #[test]
    fn a_new_policy_is_decided_at_once_from_known_unit_state() {
        let a = policy_yaml(
            "a",
            "a.service",
            "    - unit: { activeState: [active] }",
            GUARD,
            "",
        );
        let mut e = engine_from(&[], Limits::default());
        let mut out = Vec::new();
        let active = Event::Unit(UnitObservation {
            name: "a.service".into(),
            active_state: Some(crate::policy::ActiveState::Active),
            sub_state: None,
            unit_file_state: None,
            result: None,
            n_restarts: None,
        });
        e.handle(Timestamp::ZERO, &active, &mut out);
        e.replace_policies(Timestamp::from_millis(5), policies(&a), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let names: Vec<&str> = e.policies().map(|p| p.name()).collect();
        assert_eq!(names, ["a"]);
    }
}
