//! The changes beyond a restart: replicas within bounds, a container's memory limit
//! within a cap, a node cordoned. Each reads the object, then writes the change with the
//! `resourceVersion` it read, so a change made meanwhile by someone else (an autoscaler,
//! a deploy) is read again rather than overwritten; the read and the write are retried
//! together.

use super::{api_failure, KubernetesObjects, Mode};
use crate::action::Failure;
use crate::policy::{MemoryQuantity, RaiseMemoryLimitArgs, ScaleArgs, TargetKey};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PodTemplateSpec};
use kube::api::{Api, Patch};
use serde_json::json;

/// Why a change could not be made, beside the API server's own refusals.
enum Refused {
    Api(kube::Error),
    /// The object is as far as the policy lets salve take it.
    AtBound(String),
}

impl super::Transient for Refused {
    fn transient(&self) -> Option<u16> {
        match self {
            Refused::Api(e) => e.transient(),
            Refused::AtBound(_) => None,
        }
    }
}

impl From<kube::Error> for Refused {
    fn from(e: kube::Error) -> Self {
        Refused::Api(e)
    }
}

fn failure(key: &TargetKey, refused: Refused) -> Failure {
    match refused {
        Refused::Api(e) => api_failure(key, e),
        Refused::AtBound(message) => Failure::failed(message),
    }
}

/// A workload: the one Api both kinds are reached through.
enum Workload {
    Deployment(Api<Deployment>),
    StatefulSet(Api<StatefulSet>),
}

impl KubernetesObjects {
    fn workload(&self, key: &TargetKey) -> Option<(Workload, String)> {
        match key {
            TargetKey::Deployment { namespace, name } => Some((
                Workload::Deployment(Api::namespaced(self.client.clone(), namespace)),
                name.clone(),
            )),
            TargetKey::StatefulSet { namespace, name } => Some((
                Workload::StatefulSet(Api::namespaced(self.client.clone(), namespace)),
                name.clone(),
            )),
            _ => None,
        }
    }

    pub(super) async fn scale(
        &self,
        key: &TargetKey,
        args: &ScaleArgs,
        mode: Mode,
    ) -> Result<String, Failure> {
        let Some((workload, name)) = self.workload(key) else {
            return Err(Failure::failed(format!("`scale` cannot act on {key}")));
        };
        let scaled = self
            .retry
            .run(|| async {
                let scale = match &workload {
                    Workload::Deployment(api) => api.get_scale(&name).await?,
                    Workload::StatefulSet(api) => api.get_scale(&name).await?,
                };
                let now = scale.spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u32;
                let wanted = now.saturating_add(args.by).clamp(args.min, args.max);
                if wanted <= now {
                    return Err(Refused::AtBound(format!(
                        "{key} has {now} replicas, and the policy allows at most {}",
                        args.max
                    )));
                }
                let patch = json!({
                    "metadata": { "resourceVersion": scale.metadata.resource_version },
                    "spec": { "replicas": wanted }
                });
                let patch = Patch::Merge(&patch);
                let params = mode.patch_params();
                match &workload {
                    Workload::Deployment(api) => api.patch_scale(&name, &params, &patch).await?,
                    Workload::StatefulSet(api) => api.patch_scale(&name, &params, &patch).await?,
                };
                Ok((now, wanted))
            })
            .await
            .map_err(|refused| failure(key, refused))?;
        let (from, to) = scaled;
        Ok(mode.says(
            format!("scaled {key} from {from} to {to} replicas"),
            format!("would scale {key} from {from} to {to} replicas"),
        ))
    }

    pub(super) async fn raise_memory_limit(
        &self,
        key: &TargetKey,
        args: &RaiseMemoryLimitArgs,
        mode: Mode,
    ) -> Result<String, Failure> {
        let Some((workload, name)) = self.workload(key) else {
            return Err(Failure::failed(format!(
                "`raiseMemoryLimit` cannot act on {key}"
            )));
        };
        let raised = self
            .retry
            .run(|| async {
                let (template, version) = match &workload {
                    Workload::Deployment(api) => {
                        let d = api.get(&name).await?;
                        (d.spec.map(|s| s.template), d.metadata.resource_version)
                    }
                    Workload::StatefulSet(api) => {
                        let s = api.get(&name).await?;
                        (s.spec.map(|s| s.template), s.metadata.resource_version)
                    }
                };
                let now = memory_limit(template.as_ref(), &args.container)
                    .map_err(|message| Refused::AtBound(format!("{key}: {message}")))?;
                let Some(next) = now.raised(args.factor, &args.max) else {
                    return Err(Refused::AtBound(format!(
                        "{key}: container {} has a memory limit of {now}, at the policy's cap of {}",
                        args.container, args.max
                    )));
                };
                // A strategic merge patch finds the container by name and changes only
                // its memory limit; the resourceVersion makes it fail on a stale read.
                let patch = json!({
                    "metadata": { "resourceVersion": version },
                    "spec": { "template": { "spec": { "containers": [{
                        "name": args.container,
                        "resources": { "limits": { "memory": next.text } }
                    }] } } }
                });
                let patch = Patch::Strategic(&patch);
                let params = mode.patch_params();
                match &workload {
                    Workload::Deployment(api) => {
                        api.patch(&name, &params, &patch).await?;
                    }
                    Workload::StatefulSet(api) => {
                        api.patch(&name, &params, &patch).await?;
                    }
                }
                Ok((now, next))
            })
            .await
            .map_err(|refused| failure(key, refused))?;
        let ((from, to), container) = (raised, &args.container);
        Ok(mode.says(
            format!("raised the memory limit of container {container} in {key} from {from} to {to}"),
            format!("would raise the memory limit of container {container} in {key} from {from} to {to}"),
        ))
    }

    pub(super) async fn cordon(&self, key: &TargetKey, mode: Mode) -> Result<String, Failure> {
        let TargetKey::Node { name } = key else {
            return Err(Failure::failed(format!("`cordon` cannot act on {key}")));
        };
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = json!({ "spec": { "unschedulable": true } });
        let patch = Patch::Merge(&patch);
        let params = mode.patch_params();
        self.retry
            .run(|| nodes.patch(name, &params, &patch))
            .await
            .map_err(|e| api_failure(key, e))?;
        Ok(mode.says(
            format!("cordoned {key}: no new pods are scheduled there"),
            format!("would cordon {key}"),
        ))
    }
}

/// The memory limit of `container` in a pod template.
fn memory_limit(
    template: Option<&PodTemplateSpec>,
    container: &str,
) -> Result<MemoryQuantity, String> {
    let found = template
        .and_then(|t| t.spec.as_ref())
        .and_then(|spec| spec.containers.iter().find(|c| c.name == container))
        .ok_or_else(|| format!("no container {container} in the pod template"))?;
    let limit = found
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .ok_or_else(|| {
            format!(
                "container {container} has no memory limit to raise (it may use all the node has)"
            )
        })?;
    MemoryQuantity::parse(&limit.0)
        .map_err(|e| format!("container {container}'s memory limit: {e}"))
}
