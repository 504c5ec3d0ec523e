//! The policies the operator runs: every `RemediationPolicy` it watches, each in its
//! last good version. A resource edited into something invalid keeps running as it
//! was, with every error logged; a deleted one stops.

use crate::kubernetes::{ConditionStatus, RemediationPolicy};
use crate::policy::{Policy, Target, DEFAULT_NAMESPACE};
use kube::runtime::watcher;
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};

/// A resource's place: namespace and name.
type ResourceKey = (String, String);

/// The `Ready` condition a resource should show: whether it runs, and why not.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub ready: bool,
    /// `Loaded`, `Invalid` or `Refused`.
    pub reason: &'static str,
    pub message: String,
}

/// A condition's message is for people: long lists of errors are cut here.
const MAX_MESSAGE: usize = 1024;

#[derive(Default)]
pub struct PolicySet {
    good: BTreeMap<ResourceKey, Policy>,
    /// The `metadata.generation` each good policy was read at: an event with the same
    /// generation changed only the status (salve's own writes among them).
    generations: BTreeMap<ResourceKey, i64>,
    /// While the watch (re)lists: what the listing has shown so far.
    listing: Option<BTreeMap<ResourceKey, Policy>>,
    /// Conditions to write, in the order they were decided.
    status: Vec<StatusUpdate>,
    /// Whether a first listing has completed: until then the set is not all there is.
    listed: bool,
    /// Resources not run because another of their name runs, as last told.
    shadowed: BTreeSet<ResourceKey>,
}

impl PolicySet {
    /// The resource (namespace, name) running the policy named `name`: the first by
    /// namespace, as `policies` chooses.
    pub fn resource_of(&self, name: &str) -> Option<(String, String)> {
        self.good
            .iter()
            .find(|(_, policy)| policy.name() == name)
            .map(|(key, _)| key.clone())
    }

    /// Whether the policies have been listed once: a new leader rebuilds its guards
    /// only against the whole set.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// Takes one watch event; true when the policies to run changed.
    pub fn apply(&mut self, event: watcher::Event<RemediationPolicy>) -> bool {
        match event {
            watcher::Event::Apply(resource) => {
                let key = key_of(&resource);
                if resource.metadata.generation.is_some()
                    && self.generations.get(&key) == resource.metadata.generation.as_ref()
                    && self.good.contains_key(&key)
                {
                    return false;
                }
                match self.read(&resource) {
                    Some(policy) => {
                        self.remember(&resource, key, policy);
                        true
                    }
                    None => false,
                }
            }
            watcher::Event::Delete(resource) => {
                let key = key_of(&resource);
                self.generations.remove(&key);
                self.good.remove(&key).is_some()
            }
            watcher::Event::Init => {
                self.listing = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(resource) => {
                let key = key_of(&resource);
                // An invalid resource keeps the last good version it had.
                let policy = match self.read(&resource) {
                    Some(policy) => {
                        if let Some(generation) = resource.metadata.generation {
                            self.generations.insert(key.clone(), generation);
                        }
                        Some(policy)
                    }
                    None => self.good.get(&key).cloned(),
                };
                if let (Some(listing), Some(policy)) = (self.listing.as_mut(), policy) {
                    listing.insert(key, policy);
                }
                false
            }
            watcher::Event::InitDone => match self.listing.take() {
                Some(listed) => {
                    self.listed = true;
                    self.good = listed;
                    let good = &self.good;
                    self.generations.retain(|key, _| good.contains_key(key));
                    true
                }
                None => false,
            },
        }
    }

    fn remember(&mut self, resource: &RemediationPolicy, key: ResourceKey, policy: Policy) {
        match resource.metadata.generation {
            Some(generation) => self.generations.insert(key.clone(), generation),
            None => self.generations.remove(&key),
        };
        self.good.insert(key, policy);
    }

    /// The `Ready` conditions decided since the last call.
    pub fn take_status(&mut self) -> Vec<StatusUpdate> {
        std::mem::take(&mut self.status)
    }

    /// The resource as a policy, or `None` with every error logged; either way the
    /// `Ready` condition it should show is queued, unless it shows it already.
    fn read(&mut self, resource: &RemediationPolicy) -> Option<Policy> {
        let (policy, ready, reason, message) = match resource.to_policy() {
            Ok(policy) => match refusal(&policy) {
                None => {
                    let message =
                        format!("running; target {}", crate::engine::target_name(&policy));
                    (Some(policy), true, "Loaded", message)
                }
                Some(why) => {
                    tracing::error!(namespace = ?resource.namespace(), name = %resource.name_any(), "RemediationPolicy rejected: {why}");
                    (None, false, "Refused", why)
                }
            },
            Err(diagnostics) => {
                for d in &diagnostics.0 {
                    tracing::error!(location = %d, "invalid RemediationPolicy");
                }
                tracing::error!(
                    namespace = ?resource.namespace(),
                    name = %resource.name_any(),
                    errors = diagnostics.0.len(),
                    "RemediationPolicy rejected: keeping its last good version, if it had one"
                );
                let errors: Vec<String> = diagnostics.0.iter().map(|d| d.to_string()).collect();
                (None, false, "Invalid", errors.join("; "))
            }
        };
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        // Said after the cut, so a long list of errors never hides it.
        if !ready && self.good.contains_key(&key_of(resource)) {
            message.push_str("; its last good version runs");
        }
        let update = StatusUpdate {
            namespace: resource.namespace().unwrap_or_default(),
            name: resource.name_any(),
            generation: resource.metadata.generation,
            ready,
            reason,
            message,
        };
        if !shows(resource, &update) {
            self.status.push(update);
        }
        policy
    }

    /// The policies to run, by namespace and name. The engine knows a policy by its
    /// name, which the journal carries: of two resources with one name in different
    /// namespaces the first runs, and the other is refused with an error until it is
    /// renamed.
    pub fn policies(&mut self) -> Vec<Policy> {
        let mut running: BTreeMap<String, &ResourceKey> = BTreeMap::new();
        let mut policies = Vec::with_capacity(self.good.len());
        let mut shadowed = BTreeSet::new();
        let mut updates = Vec::new();
        for (key, policy) in &self.good {
            match running.get(policy.name()) {
                None => {
                    running.insert(policy.name().to_string(), key);
                    policies.push(policy.clone());
                    if self.shadowed.contains(key) {
                        // The other is gone: this one runs now.
                        updates.push(self.update(
                            key,
                            true,
                            "Loaded",
                            format!("running; target {}", crate::engine::target_name(policy)),
                        ));
                    }
                }
                Some(runs) => {
                    let message = format!("a RemediationPolicy of this name runs in namespace {}: this one is not run; give it a name of its own", runs.0);
                    if !self.shadowed.contains(key) {
                        tracing::error!(namespace = %key.0, name = %key.1, "{message}");
                        updates.push(self.update(key, false, "Refused", message));
                    }
                    shadowed.insert(key.clone());
                }
            }
        }
        // What the resource just read would have shown gives way to the refusal.
        for update in &updates {
            self.status
                .retain(|u| (&u.namespace, &u.name) != (&update.namespace, &update.name));
        }
        self.status.extend(updates);
        self.shadowed = shadowed;
        policies
    }

    fn update(
        &self,
        key: &ResourceKey,
        ready: bool,
        reason: &'static str,
        message: String,
    ) -> StatusUpdate {
        StatusUpdate {
            namespace: key.0.clone(),
            name: key.1.clone(),
            generation: self.generations.get(key).copied(),
            ready,
            reason,
            message,
        }
    }
}

fn key_of(resource: &RemediationPolicy) -> ResourceKey {
    (
        resource.namespace().unwrap_or_default(),
        resource.name_any(),
    )
}

/// Whether the resource's status already says what `update` would.
fn shows(resource: &RemediationPolicy, update: &StatusUpdate) -> bool {
    let Some(status) = &resource.status else {
        return false;
    };
    let wanted = if update.ready {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    status.observed_generation == update.generation
        && status.conditions.iter().any(|c| {
            c.type_ == "Ready"
                && c.status == wanted
                && c.reason == update.reason
                && c.message == update.message
        })
}

/// Why the operator does not run a valid policy: a systemd unit is the host agent's,
/// and a policy acts in its own namespace only, so whoever may write policies in one
/// namespace cannot have salve delete pods in another.
fn refusal(policy: &Policy) -> Option<String> {
    let own = policy
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    match &policy.spec.target {
        Target::Unit(unit) => Some(format!(
            "its target is the systemd unit {unit}, which `salve agent` on that host acts on"
        )),
        Target::Pods(s) | Target::Deployment(s) | Target::StatefulSet(s) => s
            .namespace
            .as_deref()
            .filter(|ns| *ns != own)
            .map(|ns| {
                format!("it is in namespace {own} and targets namespace {ns}: a policy acts in its own namespace only")
            }),
        Target::Node(_) => None,
        Target::Haproxy(_) => Some(
            "its target is a HAProxy server, which `salve agent` next to that HAProxy acts on"
                .to_string(),
        ),
        Target::Nginx(_) => Some(
            "its target is an nginx upstream server, which `salve agent` next to that nginx acts on"
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(namespace: &str, name: &str, max_attempts: serde_json::Value) -> RemediationPolicy {
        serde_json::from_value(json!({
            "apiVersion": "salve.dev/v1alpha1",
            "kind": "RemediationPolicy",
            "metadata": { "namespace": namespace, "name": name },
            "spec": {
                "target": { "pods": { "selector": { "app": "php" } } },
                "trigger": [{ "pod": { "reason": ["CrashLoopBackOff"] } }],
                "actions": [{ "restart": {} }],
                "guard": { "maxAttempts": max_attempts }
            }
        }))
        .unwrap()
    }

    fn attempts(set: &mut PolicySet) -> Vec<(String, u32)> {
        set.policies()
            .iter()
            .map(|p| (p.name().to_string(), p.spec.guard.max_attempts))
            .collect()
    }

    #[test]
    fn an_invalid_edit_keeps_the_last_good_version() {
        let mut set = PolicySet::default();
        assert!(set.apply(watcher::Event::Apply(resource("web", "php", json!(3)))));
        assert!(!set.apply(watcher::Event::Apply(resource("web", "php", json!(0)))));
        assert_eq!(attempts(&mut set), [("php".to_string(), 3)]);
        // A relist shows the invalid version: the good one still runs.
        set.apply(watcher::Event::Init);
        set.apply(watcher::Event::InitApply(resource("web", "php", json!(0))));
        set.apply(watcher::Event::InitApply(resource(
            "web",
            "other",
            json!(2),
        )));
        assert!(set.apply(watcher::Event::InitDone));
        assert_eq!(
            attempts(&mut set),
            [("other".to_string(), 2), ("php".to_string(), 3)]
        );
        assert!(set.apply(watcher::Event::Delete(resource("web", "php", json!(3)))));
        assert_eq!(attempts(&mut set), [("other".to_string(), 2)]);
    }

    #[test]
    fn a_relist_forgets_what_it_no_longer_shows() {
        let mut set = PolicySet::default();
        set.apply(watcher::Event::Apply(resource("web", "a", json!(3))));
        set.apply(watcher::Event::Apply(resource("web", "b", json!(3))));
        set.apply(watcher::Event::Init);
        set.apply(watcher::Event::InitApply(resource("web", "b", json!(4))));
        assert_eq!(
            attempts(&mut set).len(),
            2,
            "nothing changes before the list ends"
        );
        assert!(set.apply(watcher::Event::InitDone));
        assert_eq!(attempts(&mut set), [("b".to_string(), 4)]);
    }

    #[test]
    fn a_policy_on_a_unit_or_another_namespace_is_refused() {
        let mut set = PolicySet::default();
        let mut elsewhere = resource("web", "db", json!(3));
        let mut unit = resource("web", "unit", json!(3));
        let mut value = serde_json::to_value(&elsewhere).unwrap();
        value["spec"]["target"] =
            json!({ "pods": { "namespace": "db", "selector": { "app": "db" } } });
        elsewhere = serde_json::from_value(value).unwrap();
        let mut value = serde_json::to_value(&unit).unwrap();
        value["spec"]["target"] = json!({ "unit": "php8.2-fpm.service" });
        value["spec"]["trigger"] = json!([{ "unit": { "activeState": ["failed"] } }]);
        unit = serde_json::from_value(value).unwrap();
        assert!(unit.to_policy().is_ok() && elsewhere.to_policy().is_ok());
        assert!(!set.apply(watcher::Event::Apply(elsewhere)));
        assert!(!set.apply(watcher::Event::Apply(unit)));
        let mut value = serde_json::to_value(resource("web", "same", json!(3))).unwrap();
        value["spec"]["target"] = json!({ "pods": { "namespace": "web", "name": "php-0" } });
        assert!(set.apply(watcher::Event::Apply(
            serde_json::from_value(value).unwrap()
        )));
        assert_eq!(attempts(&mut set), [("same".to_string(), 3)]);
    }

    #[test]
    fn each_resource_gets_the_ready_condition_it_should_show_once() {
        let mut set = PolicySet::default();
        let mut good = resource("web", "php", json!(3));
        good.metadata.generation = Some(1);
        assert!(set.apply(watcher::Event::Apply(good.clone())));
        let updates = set.take_status();
        assert_eq!(
            updates,
            [StatusUpdate {
                namespace: "web".into(),
                name: "php".into(),
                generation: Some(1),
                ready: true,
                reason: "Loaded",
                message: "running; target pods web/app=php".into(),
            }]
        );
        // salve's own status write comes back as an event of the same generation:
        // nothing to reload, nothing to write.
        let mut written = good.clone();
        written.status = Some(
            serde_json::from_value(
                super::super::status::patch_body(&updates[0], "2026-12-02T06:00:00Z")["status"]
                    .clone(),
            )
            .unwrap(),
        );
        assert!(!set.apply(watcher::Event::Apply(written.clone())));
        assert!(set.take_status().is_empty());
        // A relist of it as it is: still nothing to write.
        set.apply(watcher::Event::Init);
        set.apply(watcher::Event::InitApply(written));
        set.apply(watcher::Event::InitDone);
        assert!(set.take_status().is_empty());
        // An edit that breaks it: Ready False, with the error at its path, and the
        // last good version running.
        let mut broken = resource("web", "php", json!(0));
        broken.metadata.generation = Some(2);
        assert!(!set.apply(watcher::Event::Apply(broken)));
        let updates = set.take_status();
        assert_eq!(updates.len(), 1);
        assert_eq!((updates[0].ready, updates[0].reason), (false, "Invalid"));
        assert!(
            updates[0].message.contains("spec.guard.maxAttempts")
                && updates[0].message.ends_with("; its last good version runs"),
            "{}",
            updates[0].message
        );
        assert_eq!(attempts(&mut set), [("php".to_string(), 3)]);
    }

    #[test]
    fn one_name_in_two_namespaces_runs_once() {
        let mut set = PolicySet::default();
        set.apply(watcher::Event::Apply(resource("web", "php", json!(3))));
        set.apply(watcher::Event::Apply(resource("shop", "php", json!(2))));
        set.take_status();
        assert_eq!(
            attempts(&mut set),
            [("php".to_string(), 2)],
            "shop sorts first"
        );
        // The one not run says so in its status, once.
        let updates = set.take_status();
        assert_eq!(updates.len(), 1, "{updates:?}");
        assert_eq!(
            (
                updates[0].namespace.as_str(),
                updates[0].ready,
                updates[0].reason
            ),
            ("web", false, "Refused")
        );
        assert!(
            updates[0].message.contains("runs in namespace shop"),
            "{}",
            updates[0].message
        );
        attempts(&mut set);
        assert!(set.take_status().is_empty());
        // The other gone, it runs, and says so.
        set.apply(watcher::Event::Delete(resource("shop", "php", json!(2))));
        assert_eq!(attempts(&mut set), [("php".to_string(), 3)]);
        let updates = set.take_status();
        assert_eq!(
            (updates[0].namespace.as_str(), updates[0].reason),
            ("web", "Loaded")
        );
    }
}
