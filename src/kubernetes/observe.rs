//! Kubernetes objects as the engine hears them: a watch event on a Pod, a Deployment,
//! a StatefulSet or a Node becomes one observation, carrying only what conditions
//! read. Pure: the watchers feed these, the recorded-stream tests replay them. The
//! objects are `watched`'s, decoded with only the fields read here.

use super::watched::{
    Condition, ContainerStatus, Deployment, Node, Pod, StatefulSet, WorkloadSpec, WorkloadStatus,
};
use crate::engine::{
    Conditions, ContainerObservation, Event, NodeObservation, PodObservation, WorkloadKind,
    WorkloadObservation,
};
use crate::policy::ConditionValue;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// A pod, whole; `deleted` when the watch said it went.
pub fn pod(pod: &Pod, deleted: bool) -> Event {
    let (namespace, name, labels) = identity(&pod.metadata);
    let status = pod.status.as_ref();
    // Init containers crash-loop too (a migration that cannot reach its database).
    let containers = status
        .into_iter()
        .flat_map(|s| {
            let init = s.init_container_statuses.iter().flatten();
            init.chain(s.container_statuses.iter().flatten())
        })
        .map(container)
        .collect();
    let conditions = conditions(status.and_then(|s| s.conditions.as_ref()));
    Event::Pod(PodObservation {
        namespace,
        name,
        labels,
        containers,
        conditions,
        deleted,
    })
}

fn container(status: &ContainerStatus) -> ContainerObservation {
    ContainerObservation {
        name: status.name.clone(),
        waiting: status
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone()),
        last_terminated: status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.clone()),
        // The API server never sends a negative count; a hostile one gets 0.
        restarts: u32::try_from(status.restart_count).unwrap_or(0),
    }
}

/// A Deployment's replica counts: wanted (`spec.replicas`, 1 when unset, as the API
/// server defaults it) and available, and its conditions.
pub fn deployment(deployment: &Deployment, deleted: bool) -> Event {
    let (spec, status) = (deployment.spec.as_ref(), deployment.status.as_ref());
    workload(
        WorkloadKind::Deployment,
        &deployment.metadata,
        spec,
        status,
        deleted,
    )
}

pub fn statefulset(set: &StatefulSet, deleted: bool) -> Event {
    let (spec, status) = (set.spec.as_ref(), set.status.as_ref());
    workload(
        WorkloadKind::Statefulset,
        &set.metadata,
        spec,
        status,
        deleted,
    )
}

fn workload(
    kind: WorkloadKind,
    meta: &ObjectMeta,
    spec: Option<&WorkloadSpec>,
    status: Option<&WorkloadStatus>,
    deleted: bool,
) -> Event {
    let (namespace, name, labels) = identity(meta);
    let count = |n: Option<i32>, unset: u32| n.map_or(unset, |n| u32::try_from(n).unwrap_or(0));
    let conditions = conditions(status.and_then(|s| s.conditions.as_ref()));
    Event::Workload(WorkloadObservation {
        kind,
        namespace,
        name,
        labels,
        replicas: count(spec.and_then(|s| s.replicas), 1),
        available: count(status.and_then(|s| s.available_replicas), 0),
        conditions,
        deleted,
    })
}

/// A node's conditions, each type with its status.
pub fn node(node: &Node, deleted: bool) -> Event {
    let (_, name, labels) = identity(&node.metadata);
    let conditions = conditions(node.status.as_ref().and_then(|s| s.conditions.as_ref()));
    Event::Node(NodeObservation {
        name,
        labels,
        conditions,
        deleted,
    })
}

/// Each condition type with its status; a status the API does not define counts as
/// `Unknown`, as Kubernetes itself reads it.
fn conditions(listed: Option<&Vec<Condition>>) -> Conditions {
    listed
        .into_iter()
        .flatten()
        .map(|c| {
            let value = match c.status.as_str() {
                "True" => ConditionValue::True,
                "False" => ConditionValue::False,
                _ => ConditionValue::Unknown,
            };
            (c.type_.clone(), value)
        })
        .collect()
}

fn identity(meta: &ObjectMeta) -> (String, String, BTreeMap<String, String>) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
        meta.labels.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_pod_reads_as_its_containers_states_init_containers_first_and_its_conditions() {
        let p: Pod = from_json(json!({
            "metadata": { "namespace": "web", "name": "php-0", "labels": { "app": "php" } },
            "status": {
                "initContainerStatuses": [{
                    "name": "migrate", "image": "m", "imageID": "", "ready": false,
                    "restartCount": 2,
                    "state": { "waiting": { "reason": "CrashLoopBackOff" } }
                }],
                "containerStatuses": [{
                    "name": "php", "image": "p", "imageID": "", "ready": false,
                    "restartCount": 5,
                    "state": { "running": { "startedAt": "2026-12-02T04:00:00Z" } },
                    "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } }
                }],
                "conditions": [
                    { "type": "Ready", "status": "False", "reason": "ContainersNotReady" },
                    { "type": "PodScheduled", "status": "True" }
                ]
            }
        }));
        let Event::Pod(seen) = pod(&p, false) else {
            panic!("not a pod event")
        };
        assert_eq!(
            (seen.namespace.as_str(), seen.name.as_str()),
            ("web", "php-0")
        );
        assert_eq!(seen.labels.get("app").map(String::as_str), Some("php"));
        assert_eq!(
            seen.containers,
            [
                ContainerObservation {
                    name: "migrate".into(),
                    waiting: Some("CrashLoopBackOff".into()),
                    last_terminated: None,
                    restarts: 2,
                },
                ContainerObservation {
                    name: "php".into(),
                    waiting: None,
                    last_terminated: Some("OOMKilled".into()),
                    restarts: 5,
                },
            ]
        );
        assert_eq!(
            seen.conditions,
            BTreeMap::from([
                ("PodScheduled".to_string(), ConditionValue::True),
                ("Ready".to_string(), ConditionValue::False),
            ])
        );
        // A pod just created has no status yet; a hostile count reads as none.
        let bare: Pod = from_json(json!({ "metadata": { "namespace": "web", "name": "x" } }));
        let Event::Pod(seen) = pod(&bare, true) else {
            panic!("not a pod event")
        };
        assert!(seen.containers.is_empty() && seen.deleted);
    }

    #[test]
    fn workloads_read_as_wanted_and_available_replicas_and_their_conditions() {
        let d: Deployment = from_json(json!({
            "metadata": { "namespace": "web", "name": "php" },
            "spec": { "replicas": 3, "selector": {}, "template": {} },
            "status": { "availableReplicas": 1, "conditions": [
                { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" },
                { "type": "Available", "status": "False" }
            ] }
        }));
        let Event::Workload(seen) = deployment(&d, false) else {
            panic!("not a workload event")
        };
        assert_eq!(
            (seen.kind, seen.replicas, seen.available),
            (WorkloadKind::Deployment, 3, 1)
        );
        assert_eq!(
            seen.conditions,
            BTreeMap::from([
                ("Available".to_string(), ConditionValue::False),
                ("Progressing".to_string(), ConditionValue::False),
            ])
        );
        // Unset replicas mean one (the API server's default); no status means none
        // available yet.
        let s: StatefulSet = from_json(json!({
            "metadata": { "namespace": "db", "name": "mariadb" },
            "spec": { "selector": {}, "template": {}, "serviceName": "db" }
        }));
        let Event::Workload(seen) = statefulset(&s, false) else {
            panic!("not a workload event")
        };
        assert_eq!(
            (seen.kind, seen.replicas, seen.available),
            (WorkloadKind::Statefulset, 1, 0)
        );
    }

    #[test]
    fn a_node_reads_as_its_conditions() {
        let n: Node = from_json(json!({
            "metadata": { "name": "worker-1", "labels": { "pool": "web" } },
            "status": { "conditions": [
                { "type": "Ready", "status": "False" },
                { "type": "MemoryPressure", "status": "True" },
                { "type": "DiskPressure", "status": "Maybe" }
            ] }
        }));
        let Event::Node(seen) = node(&n, false) else {
            panic!("not a node event")
        };
        assert_eq!(seen.name, "worker-1");
        assert_eq!(
            seen.conditions,
            BTreeMap::from([
                ("DiskPressure".to_string(), ConditionValue::Unknown),
                ("MemoryPressure".to_string(), ConditionValue::True),
                ("Ready".to_string(), ConditionValue::False),
            ])
        );
    }
}
