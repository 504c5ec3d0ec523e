//! `verify.ready`: the target is serving again. A pod is Ready (a deleted one, its
//! replacement: the same name back under a new uid for a StatefulSet, or every pod of
//! its ReplicaSet or DaemonSet ready); a workload's rollout is complete with every
//! replica available; a node is Ready. Polled until `within` passes.

use super::KubernetesObjects;
use crate::policy::{Policy, TargetKey};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use std::time::Duration;

/// What salve deleted of a pod: to tell its replacement from it, and to find who
/// replaces it when its name does not come back.
#[derive(Debug, Clone)]
pub(super) struct Deleted {
    pub uid: Option<String>,
    pub owner: Option<OwnerReference>,
}

/// How many deleted pods are remembered for their verification; a policy without one
/// leaves its entry, and the oldest go first.
pub(super) const REMEMBERED_DELETIONS: usize = 256;

/// One look at the target: ready, or why not yet.
type Look = Result<String, String>;

impl KubernetesObjects {
    pub(super) async fn wait_ready(&self, policy: &Policy, within: Duration) -> (bool, String) {
        let Some(key) = policy.target_key() else {
            return (
                false,
                "a selector has no one object to wait for".to_string(),
            );
        };
        let deleted = self.take_deleted(&key);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let seen = self.look(&key, deleted.as_ref()).await;
            match seen {
                Ok(ready) => return (true, ready),
                Err(not_yet) if tokio::time::Instant::now() + self.poll >= deadline => {
                    return (
                        false,
                        format!(
                            "not ready within {}: {not_yet}",
                            humantime::format_duration(within)
                        ),
                    )
                }
                Err(_) => tokio::time::sleep(self.poll).await,
            }
        }
    }

    fn take_deleted(&self, key: &TargetKey) -> Option<Deleted> {
        let mut deleted = self.deleted.lock().ok()?;
        let at = deleted.iter().position(|(k, _)| k == key)?;
        deleted.remove(at).map(|(_, d)| d)
    }

    pub(super) fn remember_deleted(&self, key: &TargetKey, pod: Deleted) {
        if let Ok(mut deleted) = self.deleted.lock() {
            deleted.retain(|(k, _)| k != key);
            if deleted.len() >= REMEMBERED_DELETIONS {
                deleted.pop_front();
            }
            deleted.push_back((key.clone(), pod));
        }
    }

    async fn look(&self, key: &TargetKey, deleted: Option<&Deleted>) -> Look {
        let client = self.client.clone();
        let unreachable = |e: kube::Error| format!("could not read {key}: {e}");
        match key {
            TargetKey::Pod { namespace, name } => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
                let pod = pods.get_opt(name).await.map_err(unreachable)?;
                match (pod, deleted) {
                    (Some(pod), Some(gone))
                        if gone.uid.is_some() && pod.metadata.uid == gone.uid =>
                    {
                        Err(format!("{key} is still the pod salve deleted"))
                    }
                    (Some(pod), _) => pod_ready(&pod)
                        .map(|()| format!("{key} is Ready"))
                        .map_err(|why| format!("{key} {why}")),
                    (
                        None,
                        Some(Deleted {
                            owner: Some(owner), ..
                        }),
                    ) => self.owner_ready(namespace, owner).await,
                    (None, _) => Err(format!(
                        "{key} is gone and nothing salve can see replaces it"
                    )),
                }
            }
            TargetKey::Deployment { namespace, name } => {
                let api: Api<Deployment> = Api::namespaced(client, namespace);
                let d = api.get(name).await.map_err(unreachable)?;
                let (spec, status) = (d.spec.unwrap_or_default(), d.status.unwrap_or_default());
                rollout_done(
                    key,
                    d.metadata.generation,
                    status.observed_generation,
                    spec.replicas.unwrap_or(1),
                    status.updated_replicas.unwrap_or(0),
                    status.available_replicas.unwrap_or(0),
                )
            }
            TargetKey::StatefulSet { namespace, name } => {
                let api: Api<StatefulSet> = Api::namespaced(client, namespace);
                let s = api.get(name).await.map_err(unreachable)?;
                let (spec, status) = (s.spec.unwrap_or_default(), s.status.unwrap_or_default());
                rollout_done(
                    key,
                    s.metadata.generation,
                    status.observed_generation,
                    spec.replicas.unwrap_or(1),
                    status.updated_replicas.unwrap_or(0),
                    status.available_replicas.unwrap_or(0),
                )
            }
            TargetKey::Node { name } => {
                let nodes: Api<Node> = Api::all(client);
                let node = nodes.get(name).await.map_err(unreachable)?;
                let ready = node
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status);
                match ready.as_deref() {
                    Some("True") => Ok(format!("{key} is Ready")),
                    other => Err(format!("{key} Ready={}", other.unwrap_or("unknown"))),
                }
            }
            TargetKey::Unit(_) | TargetKey::Haproxy(_) | TargetKey::Nginx { .. } => {
                Err(format!("{key} is not a Kubernetes object"))
            }
        }
    }

    /// A deleted pod's controller has all its pods ready again.
    async fn owner_ready(&self, namespace: &str, owner: &OwnerReference) -> Look {
        let client = self.client.clone();
        let what = format!("{} {namespace}/{}", owner.kind, owner.name);
        let unreachable = |e: kube::Error| format!("could not read {what}: {e}");
        let (wanted, ready) = match owner.kind.as_str() {
            "ReplicaSet" => {
                let api: Api<ReplicaSet> = Api::namespaced(client, namespace);
                let rs = api.get(&owner.name).await.map_err(unreachable)?;
                let status = rs.status.unwrap_or_default();
                (
                    rs.spec.and_then(|s| s.replicas).unwrap_or(1),
                    status.ready_replicas.unwrap_or(0),
                )
            }
            "DaemonSet" => {
                let api: Api<DaemonSet> = Api::namespaced(client, namespace);
                let status = api
                    .get(&owner.name)
                    .await
                    .map_err(unreachable)?
                    .status
                    .unwrap_or_default();
                (status.desired_number_scheduled, status.number_ready)
            }
            // A StatefulSet's pod comes back under its name; a Job's is not served.
            other => {
                return Err(format!(
                    "the deleted pod's {other} has no replacement salve can check"
                ))
            }
        };
        if ready >= wanted {
            Ok(format!(
                "the deleted pod is replaced: {what} has {ready} of {wanted} pods ready"
            ))
        } else {
            Err(format!("{what} has {ready} of {wanted} pods ready"))
        }
    }
}

fn pod_ready(pod: &Pod) -> Result<(), String> {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    match ready {
        Some("True") => Ok(()),
        other => Err(format!(
            "is {} (Ready={})",
            status.and_then(|s| s.phase.as_deref()).unwrap_or("unknown"),
            other.unwrap_or("unknown")
        )),
    }
}

/// A rollout is done when the controller has seen the latest spec and every replica is
/// updated and available, as `kubectl rollout status` waits for.
fn rollout_done(
    key: &TargetKey,
    generation: Option<i64>,
    observed: Option<i64>,
    replicas: i32,
    updated: i32,
    available: i32,
) -> Look {
    if observed < generation {
        return Err(format!("{key}: the controller has not seen the change yet"));
    }
    if updated < replicas {
        return Err(format!("{key}: {updated} of {replicas} replicas updated"));
    }
    if available < replicas {
        return Err(format!(
            "{key}: {available} of {replicas} replicas available"
        ));
    }
    Ok(format!(
        "{key}: rollout complete, {available} of {replicas} replicas available"
    ))
}
