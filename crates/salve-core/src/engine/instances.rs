//! A selector's objects: each pod, workload or node a selector policy selects gets an
//! instance of the policy naming it, with triggers and a guard of its own, so one pod
//! in a crash loop never uses up the attempts of its healthy siblings.
//!
//! Instances come and go with the objects (seen, deleted, relabelled); their guards
//! stay for as long as what they remember can still count, so a pod that is deleted and
//! comes back under the same name (a StatefulSet's) meets its own history again.

use super::condition::{ObjectState, TriggerState};
use super::event::Reset;
use super::guard::GuardState;
use super::time::Timestamp;
use super::{Decision, Engine, PolicyId, PolicyState, Role, TargetId};
use crate::policy::{TargetKey, DEFAULT_NAMESPACE};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the engine keeps of a Kubernetes object it has seen: its state, and the
/// labels a selector reads, to match it against the selectors again when the
/// policies change.
#[derive(Debug, Clone)]
pub(super) struct KnownObject {
    pub key: TargetKey,
    pub labels: super::vec_map::VecMap<String>,
    pub state: ObjectState,
}

/// Targets are looked over for forgettable ones only when their number has doubled
/// since the last look, and never below this: the cost stays constant per target made.
pub(super) const RECLAIM_FLOOR: usize = 64;

impl Engine {
    /// The namespace a selector policy's target means when it names none.
    fn namespace_of(&self, id: PolicyId) -> &str {
        self.policies[id.index()]
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    /// Gives object `key` an instance of each selector policy that selects it now, and
    /// retires the instances of those that no longer do (or of every one, when the
    /// object is gone).
    pub(super) fn match_selectors(
        &mut self,
        now: Timestamp,
        key: &TargetKey,
        name: &str,
        labels: &BTreeMap<String, String>,
        exists: bool,
        mut out: Option<&mut Vec<Decision>>,
    ) {
        // The selectors that may select the object (one of their labels is its own),
        // and those with an instance on it already (which may no longer select it),
        // in the policies' order.
        let mut candidates: Vec<(PolicyId, Option<PolicyId>)> = Vec::new();
        for id in self.targets_watching(name) {
            if let Role::Instance { of } = self.states[id.index()].role {
                candidates.push((of, Some(id)));
            }
        }
        if exists {
            for (k, v) in labels {
                let found = self
                    .selectors_by_label
                    .get(k.as_str())
                    .and_then(|values| values.get(v.as_str()));
                for &selector in found.into_iter().flatten() {
                    if !candidates.iter().any(|&(s, _)| s == selector) {
                        candidates.push((selector, None));
                    }
                }
            }
        }
        candidates.sort_unstable_by_key(|&(s, _)| s);
        for (selector, instance) in candidates {
            let selected = exists
                && self.policies[selector.index()].spec.target.selects(
                    key,
                    labels,
                    self.namespace_of(selector),
                );
            match (instance, selected) {
                (None, true) => {
                    self.instantiate(selector, key, now);
                }
                (Some(instance), false) => {
                    self.retire(instance);
                    // One unhealthy object fewer may end a storm (after a reload, the
                    // re-decision of every policy does this).
                    if let Some(out) = out.as_deref_mut() {
                        self.update_storm(now, selector, out);
                    }
                }
                _ => {}
            }
        }
    }

    fn targets_watching<'a>(&'a self, name: &str) -> impl Iterator<Item = PolicyId> + 'a {
        self.by_unit.get(name).into_iter().flatten().copied()
    }

    /// Every known object's instances, after a reload, in the objects' order by name
    /// so the same history always numbers them alike.
    pub(super) fn instantiate_known_objects(&mut self, now: Timestamp) {
        if self.selectors.is_empty() {
            return;
        }
        let mut known: Vec<(String, TargetKey, BTreeMap<String, String>)> = self
            .objects
            .iter()
            .map(|(name, o)| (name.clone(), o.key.clone(), o.labels.to_btree()))
            .collect();
        known.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, key, labels) in known {
            self.match_selectors(now, &key, &name, &labels, true, None);
        }
    }

    /// Makes the instance of `selector` acting on object `key`: the policy as written
    /// (shared), joined to that one object's target, in a free slot if there is one.
    fn instantiate(&mut self, selector: PolicyId, key: &TargetKey, now: Timestamp) -> PolicyId {
        let policy = Arc::clone(&self.policies[selector.index()]);
        let triggers = policy
            .spec
            .trigger
            .iter()
            .map(|_| TriggerState::default())
            .collect();
        let name = key.to_string();
        let id = match self.free_slots.pop() {
            Some(id) => {
                self.policies[id.index()] = policy;
                self.target_names[id.index()] = name;
                id
            }
            None => {
                self.policies.push(policy);
                self.target_names.push(name);
                self.states.push(PolicyState::default());
                PolicyId(self.policies.len() as u32 - 1)
            }
        };
        let target = self.attach(id, key, true, now);
        self.states[id.index()] = PolicyState {
            triggers,
            target,
            role: Role::Instance { of: selector },
            ..PolicyState::default()
        };
        self.fleet_membership(id, selector, true);
        id
    }

    /// Takes instance `id` out of every index and frees its slot. Its target keeps its
    /// guard until `reclaim_targets` finds nothing in it can count any more.
    fn retire(&mut self, id: PolicyId) {
        let name = &self.target_names[id.index()];
        if let Some(watchers) = self.by_unit.get_mut(name) {
            watchers.retain(|&w| w != id);
            if watchers.is_empty() {
                self.by_unit.remove(name);
            }
        }
        // Only `by_unit` holds an instance: its triggers are its object's conditions
        // (validation refuses probes and logs on a selector's objects).
        if let Role::Instance { of } = self.states[id.index()].role {
            self.fleet_membership(id, of, false);
        }
        let target = self.states[id.index()].target;
        self.targets[target.0 as usize]
            .policies
            .retain(|&p| p != id);
        self.waiting_for_slot.retain(|&w| w != id);
        self.states[id.index()] = PolicyState {
            role: Role::Free,
            ..PolicyState::default()
        };
        self.free_slots.push(id);
    }

    /// Frees the targets made for a selector's objects that no policy acts on and whose
    /// guard can hold nothing back any more: no attempt in flight, no open circuit, and
    /// the last attempt older than the longest window that ever counted it. Run when
    /// a new target is about to be made, once the count has doubled since the last run,
    /// so the work per target made stays constant.
    pub(super) fn reclaim_targets(&mut self, now: Timestamp) {
        if self.targets.len() < self.reclaim_at || !self.free_targets.is_empty() {
            return;
        }
        for i in 0..self.targets.len() {
            let target = &self.targets[i];
            // Each index is looked at once, and none is free yet (see above).
            if target.from_selector
                && target.policies.is_empty()
                && target.guard.forgettable(now, target.window)
            {
                self.target_index
                    .remove(&(target.key.clone(), target.shadow));
                self.targets[i].guard = GuardState::default();
                self.free_targets.push(TargetId(i as u32));
            }
        }
        let live = self.targets.len() - self.free_targets.len();
        self.reclaim_at = (2 * live).max(super::instances::RECLAIM_FLOOR);
    }

    /// The policies a reset closes the circuit of: the one named, or each instance of
    /// a selector policy (only the one on `reset.target` when it names one).
    pub(super) fn reset_scope(&self, reset: &Reset) -> Vec<PolicyId> {
        let Some(id) = self.policy_id(&reset.policy) else {
            return Vec::new();
        };
        let on_target = |id: &PolicyId| {
            reset
                .target
                .as_deref()
                .is_none_or(|t| self.target_names[id.index()] == t)
        };
        match self.states[id.index()].role {
            Role::Selector => (0..self.states.len())
                .map(|i| PolicyId(i as u32))
                .filter(|i| self.states[i.index()].role == Role::Instance { of: id })
                .filter(on_target)
                .collect(),
            _ => [id].into_iter().filter(on_target).collect(),
        }
    }
}
