//! The pure decision core: `(state, event, now) -> decisions`.
//!
//! No I/O, no async, no clock reads: time comes in with each event, actions go out as
//! values, and their outcomes come back as events. `salve simulate`, the property tests
//! and the agent all drive this same code.

mod condition;
mod control;
mod decision;
mod event;
mod fleet;
mod guard;
mod instances;
mod limits;
mod reload;
mod restore;
mod time;
mod vec_map;

#[cfg(test)]
mod properties;
#[cfg(test)]
pub(crate) mod tests;

pub use condition::{Conditions, ObjectState, UnitSnapshot};
pub use control::{PauseError, PauseScope, PolicyStatus, MAX_PAUSES};
pub use decision::{Decision, DecisionRecord, PolicyId, SkipReason, Verdict};
pub use event::{
    AlertObservation, AlertStatus, AttemptDetail, ContainerObservation, Event, HttpObservation,
    LogLine, NodeObservation, Outcome, OutcomeResult, PhpFpmObservation, PhpFpmStatus,
    PodObservation, Reset, UnitObservation, WorkloadKind, WorkloadObservation,
};
pub use guard::current_cooldown;
pub use limits::{Limits, STORM_WINDOW};
pub use restore::{PastEvent, PastKind};
pub use time::{parse_offset, Timestamp};

use crate::policy::{Condition, Policy, TargetKey};
use condition::{Observed, TriggerState};
use guard::{GuardState, GuardVerdict};
use instances::KnownObject;
use limits::{GlobalState, GlobalVerdict};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Default)]
struct PolicyState {
    triggers: Vec<TriggerState>,
    target: TargetId,
    /// The instant this policy is next decided with no new event; a heap entry for
    /// any other instant is stale.
    scheduled: Option<Timestamp>,
    waiting_for_slot: bool,
    /// The last skip reported, so a condition that keeps holding is journalled once per
    /// reason rather than on every event.
    last_skip: Option<SkipReason>,
    role: Role,
    /// An instance, or a member of a counted fleet group: whether its target counts as
    /// unhealthy for `maxUnhealthy`.
    unhealthy: bool,
    /// A written policy in a fleet group with `maxUnhealthy`: the group's first such
    /// policy, which keeps the count (see `fleet`).
    in_group_of: Option<PolicyId>,
    /// A selector with `maxUnhealthy`, or a fleet group's first policy: its objects
    /// (the group's policies) counted together.
    fleet: fleet::Fleet,
}

/// What an entry of the engine's policy list is. The policies as written come first;
/// each object a selector selects then gets an instance of its own, so that every pod,
/// workload or node has its own triggers and its own guard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A policy as written, naming its one target.
    #[default]
    Named,
    /// A policy as written whose target is a selector: it is never decided itself, only
    /// its instances are.
    Selector,
    /// The selector policy `of` acting on one object it selects.
    Instance { of: PolicyId },
    /// A slot whose instance went (its object was deleted or lost the labels), free
    /// for the next instance.
    Free,
}

/// Index of a target (a unit) in the engine's target list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TargetId(u32);

/// One thing a guard protects, known by its typed key; the engine never looks inside.
struct TargetState {
    key: TargetKey,
    /// Created for an object a selector selected: forgotten once no policy acts on it
    /// and nothing it remembers can count any more (see `instances::reclaim_targets`),
    /// so the pods a cluster churns through take no memory for ever.
    from_selector: bool,
    /// The longest guard window of the policies that acted on this target.
    window: std::time::Duration,
    /// The guard dry-run policies on this target keep between themselves: their
    /// previews walk the guardrails as a real run would, but a preview never changes
    /// what a live policy on the same target may do (its "attempts" changed nothing).
    shadow: bool,
    guard: GuardState,
    /// The policies acting on this target.
    policies: Vec<PolicyId>,
}

/// The text a policy's target goes by in the engine and the journal: the key of the one
/// object it names (a unit's name, as it always was), or the target as written.
pub fn target_name(policy: &Policy) -> String {
    let namespace = policy.metadata.namespace.as_deref();
    policy
        .spec
        .target
        .describe(namespace.unwrap_or(crate::policy::DEFAULT_NAMESPACE))
}

pub struct Engine {
    /// The policies as written, then the instances of selector policies. An instance
    /// shares its selector's policy (it differs only in its target, which is its
    /// object's): ten thousand pods cost ten thousand pointers, not policies.
    policies: Vec<Arc<Policy>>,
    /// How many of `policies` are as written.
    written: usize,
    limits: Limits,
    states: Vec<PolicyState>,
    by_name: HashMap<String, PolicyId>,
    /// Each policy's `target_name`, computed once.
    target_names: Vec<String>,
    /// Policies whose triggers read their target's state (a unit's or a Kubernetes
    /// object's), by target name.
    by_unit: HashMap<String, Vec<PolicyId>>,
    by_url: HashMap<String, Vec<(PolicyId, usize)>>,
    by_log: HashMap<PathBuf, Vec<(PolicyId, usize)>>,
    /// Alert triggers by the `alertname` they wait for.
    by_alert: HashMap<String, Vec<(PolicyId, usize)>>,
    /// Status-page triggers by the page they read (`PhpFpmCondition::source`).
    by_fpm: HashMap<String, Vec<(PolicyId, usize)>>,
    units: HashMap<String, UnitSnapshot>,
    /// The last state seen of each Kubernetes object a policy names or selects, by
    /// target name.
    objects: HashMap<String, KnownObject>,
    /// The written policies whose target is a selector.
    selectors: Vec<PolicyId>,
    /// Each selector under one label it requires (its first), label key then value:
    /// an object's own labels find the selectors that may select it, so an event
    /// costs a lookup per label of the object rather than a test per selector.
    selectors_by_label: HashMap<String, HashMap<String, Vec<PolicyId>>>,
    /// Every label key a selector reads: a known object keeps only those labels (a
    /// pod's `pod-template-hash` and the like are read by nobody). A reload that
    /// brings a key no selector read before matches known objects on it as their
    /// next observations arrive; the operator's new watch for it lists them at once.
    selector_keys: HashSet<String>,
    /// Instance slots free for reuse.
    free_slots: Vec<PolicyId>,
    targets: Vec<TargetState>,
    /// Each target by key and shadow flag.
    target_index: HashMap<(TargetKey, bool), TargetId>,
    /// Target slots free for reuse.
    free_targets: Vec<TargetId>,
    /// The target count at which forgettable targets are next looked for.
    reclaim_at: usize,
    /// Which target each attempt in flight acts on, so its outcome finds it even after
    /// a reload removed the policy that started it.
    attempt_targets: HashMap<u64, TargetId>,
    global: GlobalState,
    timers: BinaryHeap<Reverse<(Timestamp, PolicyId)>>,
    /// Policies held back by `max_concurrent`, first come first served.
    waiting_for_slot: Vec<PolicyId>,
    next_attempt_id: u64,
    /// Pauses a person declared; they outlive reloads (see `control`).
    pauses: Vec<control::Pause>,
}

impl Engine {
    /// Builds the engine and its indexes. Policy names must be unique (as `policy::load`
    /// guarantees); a later duplicate is unreachable by name.
    pub fn new(policies: Vec<Policy>, limits: Limits) -> Self {
        let mut engine = Engine {
            states: Vec::new(),
            policies: Vec::new(),
            written: 0,
            limits,
            by_name: HashMap::new(),
            target_names: Vec::new(),
            by_unit: HashMap::new(),
            by_url: HashMap::new(),
            by_log: HashMap::new(),
            by_alert: HashMap::new(),
            by_fpm: HashMap::new(),
            units: HashMap::new(),
            objects: HashMap::new(),
            selectors: Vec::new(),
            selectors_by_label: HashMap::new(),
            selector_keys: HashSet::new(),
            free_slots: Vec::new(),
            targets: Vec::new(),
            target_index: HashMap::new(),
            free_targets: Vec::new(),
            reclaim_at: instances::RECLAIM_FLOOR,
            attempt_targets: HashMap::new(),
            global: GlobalState::default(),
            timers: BinaryHeap::new(),
            waiting_for_slot: Vec::new(),
            next_attempt_id: 1,
            pauses: Vec::new(),
        };
        engine.install(policies, Timestamp::ZERO);
        engine
    }

    /// The target `key` (its shadow for dry-run policies), created on first
    /// use. A target outlives its policies: an attempt in flight on a target whose
    /// policies were removed still reports back, and a policy that comes back finds
    /// the attempts it made.
    fn target_for(
        &mut self,
        key: &TargetKey,
        shadow: bool,
        from_selector: bool,
        now: Timestamp,
    ) -> TargetId {
        if let Some(&id) = self.target_index.get(&(key.clone(), shadow)) {
            return id;
        }
        if from_selector {
            self.reclaim_targets(now);
        }
        let state = TargetState {
            key: key.clone(),
            from_selector,
            window: std::time::Duration::ZERO,
            shadow,
            guard: GuardState::default(),
            policies: Vec::new(),
        };
        let id = match self.free_targets.pop() {
            Some(id) => {
                self.targets[id.0 as usize] = state;
                id
            }
            None => {
                self.targets.push(state);
                TargetId(self.targets.len() as u32 - 1)
            }
        };
        self.target_index.insert((key.clone(), shadow), id);
        id
    }

    /// Replaces the policy list and rebuilds every index, with fresh per-policy state,
    /// then gives each known object a selector selects its instance. Target state
    /// (attempts, backoff, circuit, attempt in flight) is kept by target name.
    fn install(&mut self, policies: Vec<Policy>, now: Timestamp) {
        for target in &mut self.targets {
            target.policies.clear();
        }
        self.by_name.clear();
        self.by_unit.clear();
        self.by_url.clear();
        self.by_log.clear();
        self.by_alert.clear();
        self.by_fpm.clear();
        self.timers.clear();
        self.waiting_for_slot.clear();
        self.selectors.clear();
        self.selectors_by_label.clear();
        self.selector_keys.clear();
        self.free_slots.clear();
        self.written = policies.len();
        self.states = Vec::with_capacity(policies.len());
        self.target_names = policies.iter().map(target_name).collect();
        self.policies = policies.into_iter().map(Arc::new).collect();
        for i in 0..self.written {
            let id = PolicyId(i as u32);
            let policy = &self.policies[i];
            self.by_name.entry(policy.name().to_string()).or_insert(id);
            let Some(key) = policy.target_key() else {
                // A selector: its instances watch and act; it holds nothing itself.
                self.selectors.push(id);
                if let Some(labels) = policy.spec.target.selector_labels() {
                    self.selector_keys.extend(labels.keys().cloned());
                }
                if let Some((k, v)) = policy
                    .spec
                    .target
                    .selector_labels()
                    .and_then(|l| l.iter().next())
                {
                    self.selectors_by_label
                        .entry(k.clone())
                        .or_default()
                        .entry(v.clone())
                        .or_default()
                        .push(id);
                }
                self.states.push(PolicyState {
                    role: Role::Selector,
                    ..PolicyState::default()
                });
                continue;
            };
            let target = self.attach(id, &key, false, now);
            self.states.push(PolicyState {
                target,
                triggers: self.policies[i]
                    .spec
                    .trigger
                    .iter()
                    .map(|_| TriggerState::default())
                    .collect(),
                ..PolicyState::default()
            });
        }
        self.count_fleet_groups();
        // No target is forgotten while instances are joining theirs again: until then
        // a target looks unused, and its window may be about to grow.
        let reclaim_at = std::mem::replace(&mut self.reclaim_at, usize::MAX);
        self.instantiate_known_objects(now);
        self.reclaim_at = reclaim_at;
        // An object no policy names or selects any more is forgotten.
        let by_unit = &self.by_unit;
        self.objects.retain(|name, _| by_unit.contains_key(name));
    }

    /// Indexes policy `id`'s triggers and joins it to its target `key`, which it
    /// returns.
    fn attach(
        &mut self,
        id: PolicyId,
        key: &TargetKey,
        from_selector: bool,
        now: Timestamp,
    ) -> TargetId {
        let policy = &self.policies[id.index()];
        let mut watches_target = false;
        for (t, trigger) in policy.spec.trigger.iter().enumerate() {
            match &trigger.condition {
                Condition::Unit(_)
                | Condition::Pod(_)
                | Condition::Workload(_)
                | Condition::Node(_) => watches_target = true,
                Condition::Http(c) => self
                    .by_url
                    .entry(c.url.as_str().to_string())
                    .or_default()
                    .push((id, t)),
                Condition::Log(c) => self.by_log.entry(c.path.clone()).or_default().push((id, t)),
                Condition::Alert(c) => self
                    .by_alert
                    .entry(c.name.clone())
                    .or_default()
                    .push((id, t)),
                Condition::PhpFpm(c) => self.by_fpm.entry(c.source()).or_default().push((id, t)),
            }
        }
        let name = self.target_names[id.index()].clone();
        if watches_target {
            self.by_unit.entry(name.clone()).or_default().push(id);
        }
        let dry_run = policy.spec.dry_run || self.limits.dry_run;
        let window = policy.spec.guard.window;
        let target = self.target_for(key, dry_run, from_selector, now);
        let target_state = &mut self.targets[target.0 as usize];
        target_state.policies.push(id);
        target_state.window = target_state.window.max(window);
        target
    }

    /// The policies as written (not the instances a selector has).
    pub fn policies(&self) -> impl ExactSizeIterator<Item = &Policy> + Clone + '_ {
        self.policies[..self.written].iter().map(|p| &**p)
    }

    /// The policy a decision is of: as written, or, for an object a selector selects,
    /// the instance naming that object (made here: instances share their selector's).
    pub fn policy(&self, id: PolicyId) -> Cow<'_, Policy> {
        let policy = &self.policies[id.index()];
        match self.states[id.index()].role {
            Role::Instance { .. } => {
                let key = &self.targets[self.states[id.index()].target.0 as usize].key;
                let mut instance = Policy::clone(policy);
                instance.spec.target = crate::policy::Target::named(key);
                Cow::Owned(instance)
            }
            _ => Cow::Borrowed(&**policy),
        }
    }

    pub fn policy_id(&self, name: &str) -> Option<PolicyId> {
        self.by_name.get(name).copied()
    }

    /// When the engine next needs a `Tick` if no other event comes.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Whether the circuit of a policy's target is open at `now`.
    /// A selector's objects each have a circuit of their own; the selector has none.
    pub fn circuit_open(&self, id: PolicyId, now: Timestamp) -> bool {
        if matches!(self.states[id.index()].role, Role::Selector | Role::Free) {
            return false;
        }
        self.target_of(id)
            .guard
            .circuit_closes_at
            .is_some_and(|t| now < t)
    }

    fn target_of(&self, id: PolicyId) -> &TargetState {
        &self.targets[self.states[id.index()].target.0 as usize]
    }

    /// Feeds one event at `now`, appending any decisions to `out`. Timers already due are
    /// handled first, so a late event never jumps ahead of an expired cooldown.
    pub fn handle(&mut self, now: Timestamp, event: &Event, out: &mut Vec<Decision>) {
        self.run_due_timers(now, out);
        // Also here: the arms below return early for an event no policy watches.
        self.drop_stale_timers();
        match event {
            Event::Unit(obs) => self.on_unit(now, obs, out),
            Event::Pod(obs) => {
                let state = (!obs.deleted).then(|| ObjectState::Pod {
                    containers: obs.containers.clone(),
                    conditions: (&obs.conditions).into(),
                });
                self.on_object(now, obs.key(), &obs.labels, state, out);
            }
            Event::Workload(obs) => {
                let state = (!obs.deleted).then(|| ObjectState::Workload {
                    replicas: obs.replicas,
                    available: obs.available,
                    conditions: (&obs.conditions).into(),
                });
                self.on_object(now, obs.key(), &obs.labels, state, out);
            }
            Event::Node(obs) => {
                let state = (!obs.deleted).then(|| ObjectState::Node((&obs.conditions).into()));
                self.on_object(now, obs.key(), &obs.labels, state, out);
            }
            Event::Http(obs) => {
                // Taken out and put back so evaluation can borrow the engine mutably
                // without copying the list on every event.
                let Some(watchers) = self.by_url.get_mut(&obs.url).map(std::mem::take) else {
                    return;
                };
                // Every watcher records the probe before any is decided: a decision may
                // decide others on its target, which must see it too.
                for &(id, t) in &watchers {
                    if let Condition::Http(cond) =
                        &self.policies[id.index()].spec.trigger[t].condition
                    {
                        self.states[id.index()].triggers[t].observe_http(cond, obs);
                    }
                }
                for (i, &(id, _)) in watchers.iter().enumerate() {
                    if i == 0 || watchers[i - 1].0 != id {
                        self.evaluate(now, id, out);
                    }
                }
                if let Some(slot) = self.by_url.get_mut(&obs.url) {
                    *slot = watchers;
                }
            }
            Event::Log(line) => {
                let Some(watchers) = self.by_log.get_mut(&line.path).map(std::mem::take) else {
                    return;
                };
                // As for probes: every match is recorded before any policy is decided.
                let mut matched: Vec<PolicyId> = Vec::new();
                for &(id, t) in &watchers {
                    if let Condition::Log(cond) =
                        &self.policies[id.index()].spec.trigger[t].condition
                    {
                        if cond.pattern.regex.is_match(&line.line) {
                            self.states[id.index()].triggers[t]
                                .observe_log_match(cond, now, &line.line);
                            if matched.last() != Some(&id) {
                                matched.push(id);
                            }
                        }
                    }
                }
                for id in matched {
                    self.evaluate(now, id, out);
                }
                if let Some(slot) = self.by_log.get_mut(&line.path) {
                    *slot = watchers;
                }
            }
            Event::PhpFpm(obs) => {
                let Some(watchers) = self.by_fpm.get_mut(&obs.source).map(std::mem::take) else {
                    return;
                };
                // As for probes: every watcher records the reading before any is decided.
                for &(id, t) in &watchers {
                    self.states[id.index()].triggers[t].observe_fpm(obs);
                }
                for (i, &(id, _)) in watchers.iter().enumerate() {
                    if i == 0 || watchers[i - 1].0 != id {
                        self.evaluate(now, id, out);
                    }
                }
                if let Some(slot) = self.by_fpm.get_mut(&obs.source) {
                    *slot = watchers;
                }
            }
            Event::Alert(alert) => {
                let Some(watchers) = alert
                    .labels
                    .get("alertname")
                    .and_then(|name| self.by_alert.get_mut(name))
                    .map(std::mem::take)
                else {
                    return;
                };
                let mut heard: Vec<PolicyId> = Vec::new();
                for &(id, t) in &watchers {
                    if let Condition::Alert(cond) =
                        &self.policies[id.index()].spec.trigger[t].condition
                    {
                        if condition::alert_matches(cond, alert) {
                            self.states[id.index()].triggers[t].observe_alert(alert);
                            if heard.last() != Some(&id) {
                                heard.push(id);
                            }
                        }
                    }
                }
                for id in heard {
                    self.evaluate(now, id, out);
                }
                if let Some(name) = alert.labels.get("alertname") {
                    if let Some(slot) = self.by_alert.get_mut(name) {
                        *slot = watchers;
                    }
                }
            }
            Event::Outcome(outcome) => self.on_outcome(now, outcome, out),
            Event::Reset(reset) => {
                for id in self.reset_scope(reset) {
                    let target = self.states[id.index()].target.0 as usize;
                    self.targets[target].guard.close_circuit();
                    // All skips are forgotten before any is decided: deciding one may
                    // decide the others (its attempt changes their guard).
                    let policies = self.targets[target].policies.clone();
                    for &id in &policies {
                        self.states[id.index()].last_skip = None;
                    }
                    for id in policies {
                        self.evaluate(now, id, out);
                    }
                }
            }
            Event::Tick {} => {}
        }
        self.drop_stale_timers();
    }

    /// Pops heap entries for instants no policy waits for any more, so `next_deadline`
    /// names a live one and nobody is woken for nothing.
    fn drop_stale_timers(&mut self) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self.states[id.index()].scheduled == Some(at) {
                break;
            }
            self.timers.pop();
        }
    }

    fn on_unit(&mut self, now: Timestamp, obs: &UnitObservation, out: &mut Vec<Decision>) {
        if !self.units.contains_key(&obs.name) {
            self.units.insert(obs.name.clone(), UnitSnapshot::default());
        }
        let Some(snapshot) = self.units.get_mut(&obs.name) else {
            return;
        };
        if let Some(s) = obs.active_state {
            snapshot.active_state = Some(s);
        }
        // D-Bus repeats unchanged properties: no allocation for those.
        if let Some(s) = &obs.sub_state {
            if snapshot.sub_state.as_deref() != Some(s) {
                snapshot.sub_state = Some(s.clone());
            }
        }
        if let Some(s) = obs.unit_file_state {
            snapshot.unit_file_state = Some(s);
        }
        if let Some(r) = &obs.result {
            if snapshot.result.as_deref() != Some(r) {
                snapshot.result = Some(r.clone());
            }
        }
        if let Some(n) = obs.n_restarts {
            snapshot.n_restarts = Some(n);
        }
        let Some(watchers) = self.by_unit.get_mut(&obs.name).map(std::mem::take) else {
            return;
        };
        self.decide_watchers(now, &obs.name, watchers, out);
    }

    /// Decides the policies that read target `name`'s state, then puts their list back
    /// in `by_unit`, from which the caller took it so deciding could borrow the engine.
    fn decide_watchers(
        &mut self,
        now: Timestamp,
        name: &str,
        watchers: Vec<PolicyId>,
        out: &mut Vec<Decision>,
    ) {
        for &id in &watchers {
            self.evaluate(now, id, out);
        }
        if let Some(slot) = self.by_unit.get_mut(name) {
            *slot = watchers;
        }
    }

    /// A Kubernetes object's new state (`None`: it was deleted). The selectors are
    /// matched first, so an object that came or went for one has its instance before
    /// its state is read; the state is kept only for objects a policy names or selects,
    /// so a cluster's other pods take no memory.
    fn on_object(
        &mut self,
        now: Timestamp,
        key: TargetKey,
        labels: &BTreeMap<String, String>,
        state: Option<ObjectState>,
        out: &mut Vec<Decision>,
    ) {
        let name = key.to_string();
        if !self.selectors.is_empty() {
            self.match_selectors(now, &key, &name, labels, state.is_some(), Some(&mut *out));
        }
        let Some(watchers) = self.by_unit.get_mut(&name).map(std::mem::take) else {
            self.objects.remove(&name);
            return;
        };
        let ended = match (self.objects.get(&name).map(|o| &o.state), &state) {
            (
                Some(ObjectState::Pod {
                    containers: before, ..
                }),
                Some(ObjectState::Pod {
                    containers: after, ..
                }),
            ) => condition::ended_since(before, after),
            _ => Vec::new(),
        };
        for &id in &watchers {
            for (t, trigger) in self.policies[id.index()].spec.trigger.iter().enumerate() {
                if matches!(trigger.condition, Condition::Pod(_)) {
                    let track = &mut self.states[id.index()].triggers[t];
                    match state {
                        Some(_) => track.observe_terminations(&ended),
                        None => track.forget_object(),
                    }
                }
            }
        }
        match state {
            Some(state) => {
                let known = KnownObject {
                    key,
                    labels: labels
                        .iter()
                        .filter(|(k, _)| self.selector_keys.contains(*k))
                        .collect(),
                    state,
                };
                self.objects.insert(name.clone(), known)
            }
            None => self.objects.remove(&name),
        };
        self.decide_watchers(now, &name, watchers, out);
    }

    fn on_outcome(&mut self, now: Timestamp, outcome: &Outcome, out: &mut Vec<Decision>) {
        let target = match outcome.attempt_id {
            Some(attempt) => self.attempt_targets.get(&attempt).copied(),
            // A selector has one attempt in flight per object: its outcomes name theirs.
            None => self
                .policy_id(&outcome.policy)
                .filter(|id| self.states[id.index()].role == Role::Named)
                .map(|id| self.states[id.index()].target),
        };
        let Some(target) = target else { return };
        let state = &mut self.targets[target.0 as usize];
        let Some(running) = state.guard.in_flight else {
            return;
        };
        if outcome.attempt_id.is_some_and(|a| a != running) {
            return;
        }
        self.attempt_targets.remove(&running);
        if outcome.result == OutcomeResult::NotApplicable {
            state.guard.withdraw();
        } else {
            state.guard.finish(outcome.succeeded());
        }
        self.global.finished();
        // What the target's triggers saw while the attempt ran describes the trouble it
        // was fixing, not a new one: the next attempt needs fresh evidence.
        let fixed = outcome.succeeded();
        for &id in &state.policies {
            let triggers = &mut self.states[id.index()].triggers;
            triggers.iter_mut().for_each(TriggerState::consume_evidence);
            if !fixed {
                triggers.iter_mut().for_each(TriggerState::rearm_alerts);
            }
        }
        // The freed slot goes to whoever waited for one first, then the target is
        // re-decided.
        for id in std::mem::take(&mut self.waiting_for_slot) {
            self.states[id.index()].waiting_for_slot = false;
            self.evaluate(now, id, out);
        }
        for id in self.targets[target.0 as usize].policies.clone() {
            self.evaluate(now, id, out);
        }
    }

    fn run_due_timers(&mut self, now: Timestamp, out: &mut Vec<Decision>) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let state = &mut self.states[id.index()];
            // Only the earliest pending timer of a policy is live; evaluation reschedules.
            if state.scheduled == Some(at) {
                state.scheduled = None;
                self.evaluate(now, id, out);
            }
        }
    }

    /// Sets the one instant at which a policy is next decided with no new event. Each
    /// decision replaces it, so a timer set for a reason that has gone (a log hit an
    /// attempt used up, a cooldown a reset cancelled) never wakes the policy; entries
    /// left in the heap for an old instant are skipped when they come due.
    fn schedule(&mut self, id: PolicyId, at: Option<Timestamp>) {
        let state = &mut self.states[id.index()];
        if state.scheduled != at {
            state.scheduled = at;
            if let Some(at) = at {
                self.timers.push(Reverse((at, id)));
            }
        }
        // Stale entries wait in the heap until they come due; a flood of log lines that
        // moves a deadline on every line must not grow it without bound, so it is
        // rebuilt from the live instants when they are far outnumbered.
        if self.timers.len() > 4 * self.states.len() + 1024 {
            self.timers = self
                .states
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.scheduled.map(|at| Reverse((at, PolicyId(i as u32)))))
                .collect();
        }
    }

    /// Re-decides one policy at `now`, and then, whenever that changed its target's guard
    /// (an attempt started, the circuit opened), the target's other policies: their
    /// verdict changed with it, and the journal says so at once rather than at their
    /// next signal.
    fn evaluate(&mut self, now: Timestamp, id: PolicyId, out: &mut Vec<Decision>) {
        // Most decisions change no guard: the queue is built only when one does.
        let Some(target) = self.decide(now, id, out) else {
            return;
        };
        let mut pending: std::collections::VecDeque<(PolicyId, PolicyId)> = self.targets
            [target.0 as usize]
            .policies
            .iter()
            .map(|&other| (other, id))
            .collect();
        while let Some((next, changed_by)) = pending.pop_front() {
            if next == changed_by {
                continue;
            }
            if let Some(target) = self.decide(now, next, out) {
                let others = &self.targets[target.0 as usize].policies;
                pending.extend(others.iter().map(|&other| (other, next)));
            }
        }
    }

    /// Decides one policy at `now`: the heart of the guardrail semantics. Returns the
    /// target when its guard changed.
    fn decide(
        &mut self,
        now: Timestamp,
        id: PolicyId,
        out: &mut Vec<Decision>,
    ) -> Option<TargetId> {
        if matches!(self.states[id.index()].role, Role::Selector | Role::Free) {
            return None;
        }
        let mut fired = Vec::new();
        let unhealthy = {
            let policy = &self.policies[id.index()];
            let name = &self.target_names[id.index()];
            let unit = Observed {
                unit: self.units.get(name),
                object: self.objects.get(name).map(|o| &o.state),
            };
            let state = &mut self.states[id.index()];
            for (t, trigger) in policy.spec.trigger.iter().enumerate() {
                let track = &mut state.triggers[t];
                track.refresh(trigger, unit, now);
                if track.satisfied(trigger, now) {
                    fired.push(t);
                }
            }
            state.triggers.iter().any(|t| t.holds_since.is_some())
                || self.targets[state.target.0 as usize]
                    .guard
                    .in_flight
                    .is_some()
        };
        let fleet_hold = self
            .counted_by(id.index())
            .and_then(|of| self.fleet_check(now, id, of, unhealthy, out));
        let paused = self.paused_until(id, now);
        let policy = &self.policies[id.index()];
        let name = &self.target_names[id.index()];
        let unit = Observed {
            unit: self.units.get(name),
            object: self.objects.get(name).map(|o| &o.state),
        };
        let state = &mut self.states[id.index()];
        let target = &mut self.targets[state.target.0 as usize];
        let dry_run = policy.spec.dry_run || self.limits.dry_run;
        let evidence = |state: &PolicyState| -> Vec<String> {
            fired
                .iter()
                .map(|&t| state.triggers[t].evidence(&policy.spec.trigger[t], name, unit))
                .collect()
        };
        let skip = |state: &mut PolicyState,
                    reason: SkipReason,
                    retry_at: Option<Timestamp>,
                    attempt: Option<u32>,
                    out: &mut Vec<Decision>| {
            if state.last_skip != Some(reason) || reason == SkipReason::DryRun {
                state.last_skip = Some(reason);
                out.push(Decision {
                    at: now,
                    policy: id,
                    verdict: Verdict::Skip {
                        reason,
                        retry_at,
                        attempt,
                        evidence: evidence(state),
                    },
                });
            }
        };

        let mut retry: Option<Timestamp> = None;
        let mut guard_changed = false;
        if fired.is_empty() {
            // The episode is over: the next one gets its skips journalled afresh.
            state.last_skip = None;
        } else if target.guard.in_flight.is_some() {
            skip(state, SkipReason::InFlight, None, None, out);
        } else if let Some(until) = paused {
            skip(state, SkipReason::Paused, Some(until), None, out);
            retry = Some(until);
        } else if let Some(settled_at) = fleet_hold {
            skip(state, SkipReason::MaxUnhealthy, settled_at, None, out);
            retry = settled_at;
        } else {
            match target.guard.check(&policy.spec.guard, now) {
                GuardVerdict::CircuitOpen { closes_at } => {
                    skip(state, SkipReason::CircuitOpen, Some(closes_at), None, out);
                    retry = Some(closes_at);
                }
                GuardVerdict::OpenCircuit { attempts } => {
                    guard_changed = true;
                    state.last_skip = Some(SkipReason::CircuitOpen);
                    out.push(Decision {
                        at: now,
                        policy: id,
                        verdict: Verdict::Escalate {
                            attempts,
                            dry_run,
                            evidence: Vec::new(),
                        },
                    });
                    retry = target.guard.circuit_closes_at;
                }
                GuardVerdict::Cooldown { retry_at } => {
                    skip(state, SkipReason::Cooldown, Some(retry_at), None, out);
                    retry = Some(retry_at);
                }
                GuardVerdict::Go if dry_run => {
                    // A dry run walks the guardrails as a real run would, so it shows
                    // the cooldowns, the backoff and the circuit the policy would meet.
                    // Nothing was changed, so nothing was fixed: the attempt counts as
                    // failed.
                    guard_changed = true;
                    let attempt = target.guard.start(&policy.spec.guard, now);
                    skip(state, SkipReason::DryRun, None, Some(attempt), out);
                    target.guard.finish(false);
                    state.last_skip = None;
                    state.triggers.iter_mut().for_each(|t| {
                        t.consume_evidence();
                        t.rearm_alerts();
                    });
                    let gap = target.guard.cooldown(&policy.spec.guard);
                    retry = Some(now + gap.max(std::time::Duration::from_nanos(1)));
                }
                GuardVerdict::Go => match self.global.check(&self.limits, now) {
                    GlobalVerdict::StormCap { retry_at } => {
                        skip(state, SkipReason::StormCap, Some(retry_at), None, out);
                        retry = Some(retry_at);
                    }
                    GlobalVerdict::MaxConcurrent => {
                        skip(state, SkipReason::MaxConcurrent, None, None, out);
                        if !state.waiting_for_slot {
                            state.waiting_for_slot = true;
                            self.waiting_for_slot.push(id);
                        }
                    }
                    GlobalVerdict::Go => {
                        guard_changed = true;
                        let evidence = evidence(state);
                        let attempt = target.guard.start(&policy.spec.guard, now);
                        let attempt_id = self.next_attempt_id;
                        self.next_attempt_id += 1;
                        target.guard.in_flight = Some(attempt_id);
                        self.attempt_targets.insert(attempt_id, state.target);
                        self.global.started(now);
                        state.last_skip = None;
                        state
                            .triggers
                            .iter_mut()
                            .for_each(TriggerState::consume_evidence);
                        out.push(Decision {
                            at: now,
                            policy: id,
                            verdict: Verdict::Act {
                                attempt_id,
                                attempt,
                                evidence,
                            },
                        });
                    }
                },
            }
        }
        // The next instant this policy is decided with no new event: what held it back
        // passes, or a trigger changes on its own (a `for` ends, a log hit leaves its
        // window), counted after the attempt used up its evidence. Each is after `now`:
        // a trigger's deadline by its definition, a retry because two attempts on a
        // target are never at the same instant.
        let wake = policy
            .spec
            .trigger
            .iter()
            .zip(&state.triggers)
            .filter_map(|(trigger, track)| track.deadline(trigger, now))
            .chain(retry)
            .min();
        let target = state.target;
        self.schedule(id, wake);
        guard_changed.then_some(target)
    }
}
