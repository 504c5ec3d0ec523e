//! The policies the operator runs: every `RemediationPolicy` it watches, each in its
//! last good version. A resource edited into something invalid keeps running as it
//! was, with every error logged; a deleted one stops.

use crate::kubernetes::RemediationPolicy;
use crate::policy::{Policy, Target, DEFAULT_NAMESPACE};
use kube::runtime::watcher;
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};

/// A resource's place: namespace and name.
type ResourceKey = (String, String);

#[derive(Default)]
pub struct PolicySet {
    good: BTreeMap<ResourceKey, Policy>,
    /// While the watch (re)lists: what the listing has shown so far.
    listing: Option<BTreeMap<ResourceKey, Policy>>,
}

impl PolicySet {
    /// Takes one watch event; true when the policies to run changed.
    pub fn apply(&mut self, event: watcher::Event<RemediationPolicy>) -> bool {
        match event {
            watcher::Event::Apply(resource) => {
                let key = key_of(&resource);
                match read(&resource) {
                    Some(policy) => {
                        self.good.insert(key, policy);
                        true
                    }
                    None => false,
                }
            }
            watcher::Event::Delete(resource) => self.good.remove(&key_of(&resource)).is_some(),
            watcher::Event::Init => {
                self.listing = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(resource) => {
                let key = key_of(&resource);
                // An invalid resource keeps the last good version it had.
                let policy = read(&resource).or_else(|| self.good.get(&key).cloned());
                if let (Some(listing), Some(policy)) = (self.listing.as_mut(), policy) {
                    listing.insert(key, policy);
                }
                false
            }
            watcher::Event::InitDone => match self.listing.take() {
                Some(listed) => {
                    self.good = listed;
                    true
                }
                None => false,
            },
        }
    }

    /// The policies to run, by namespace and name. The engine knows a policy by its
    /// name, which the journal carries: of two resources with one name in different
    /// namespaces the first runs, and the other is refused with an error until it is
    /// renamed.
    pub fn policies(&self) -> Vec<Policy> {
        let mut names = BTreeSet::new();
        let mut policies = Vec::with_capacity(self.good.len());
        for ((namespace, name), policy) in &self.good {
            if names.insert(policy.name().to_string()) {
                policies.push(policy.clone());
            } else {
                tracing::error!(namespace = %namespace, name = %name, "a RemediationPolicy of this name runs in another namespace: this one is not run; give it a name of its own");
            }
        }
        policies
    }
}

fn key_of(resource: &RemediationPolicy) -> ResourceKey {
    (
        resource.namespace().unwrap_or_default(),
        resource.name_any(),
    )
}

/// The resource as a policy, or `None` with every error logged.
fn read(resource: &RemediationPolicy) -> Option<Policy> {
    match resource.to_policy() {
        Ok(policy) => match refusal(&policy) {
            None => Some(policy),
            Some(why) => {
                tracing::error!(namespace = ?resource.namespace(), name = %resource.name_any(), "RemediationPolicy rejected: {why}");
                None
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
            None
        }
    }
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

    fn attempts(set: &PolicySet) -> Vec<(String, u32)> {
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
        assert_eq!(attempts(&set), [("php".to_string(), 3)]);
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
            attempts(&set),
            [("other".to_string(), 2), ("php".to_string(), 3)]
        );
        assert!(set.apply(watcher::Event::Delete(resource("web", "php", json!(3)))));
        assert_eq!(attempts(&set), [("other".to_string(), 2)]);
    }

    #[test]
    fn a_relist_forgets_what_it_no_longer_shows() {
        let mut set = PolicySet::default();
        set.apply(watcher::Event::Apply(resource("web", "a", json!(3))));
        set.apply(watcher::Event::Apply(resource("web", "b", json!(3))));
        set.apply(watcher::Event::Init);
        set.apply(watcher::Event::InitApply(resource("web", "b", json!(4))));
        assert_eq!(
            attempts(&set).len(),
            2,
            "nothing changes before the list ends"
        );
        assert!(set.apply(watcher::Event::InitDone));
        assert_eq!(attempts(&set), [("b".to_string(), 4)]);
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
        assert_eq!(attempts(&set), [("same".to_string(), 3)]);
    }

    #[test]
    fn one_name_in_two_namespaces_runs_once() {
        let mut set = PolicySet::default();
        set.apply(watcher::Event::Apply(resource("web", "php", json!(3))));
        set.apply(watcher::Event::Apply(resource("shop", "php", json!(2))));
        assert_eq!(attempts(&set), [("php".to_string(), 2)], "shop sorts first");
    }
}
