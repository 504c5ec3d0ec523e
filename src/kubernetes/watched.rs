//! The objects the operator watches, as it decodes them: only what `observe` reads and
//! what kube's watcher needs to resume (name, namespace, labels, `resourceVersion`).
//!
//! A Pod as the API server sends it is mostly what salve never reads: its spec, its
//! `managedFields`, image IDs, probe settings, volume sources. Decoding all of that
//! into `k8s_openapi::api::core::v1::Pod` for every watch event costs most of the time
//! and, while objects wait in kube's buffers, most of the memory. These types name only
//! the fields salve reads; the rest is skipped by the JSON parser without being built.
//! They are the same API resources (kind, group, version, path) to the client.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// The part of `metadata` salve keeps.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    resource_version: Option<String>,
    uid: Option<String>,
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        labels: m.labels,
        resource_version: m.resource_version,
        uid: m.uid,
        ..ObjectMeta::default()
    })
}

/// `type` and `status` of one of an object's conditions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reason {
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContainerState {
    pub waiting: Option<Reason>,
    pub terminated: Option<Reason>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    #[serde(default)]
    pub restart_count: i32,
    pub state: Option<ContainerState>,
    pub last_state: Option<ContainerState>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
    pub container_statuses: Option<Vec<ContainerStatus>>,
    pub conditions: Option<Vec<Condition>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pod {
    #[serde(deserialize_with = "slim_meta", default)]
    pub metadata: ObjectMeta,
    pub status: Option<PodStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorkloadSpec {
    pub replicas: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    pub available_replicas: Option<i32>,
    pub conditions: Option<Vec<Condition>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Deployment {
    #[serde(deserialize_with = "slim_meta", default)]
    pub metadata: ObjectMeta,
    pub spec: Option<WorkloadSpec>,
    pub status: Option<WorkloadStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatefulSet {
    #[serde(deserialize_with = "slim_meta", default)]
    pub metadata: ObjectMeta,
    pub spec: Option<WorkloadSpec>,
    pub status: Option<WorkloadStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeStatus {
    pub conditions: Option<Vec<Condition>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Node {
    #[serde(deserialize_with = "slim_meta", default)]
    pub metadata: ObjectMeta,
    pub status: Option<NodeStatus>,
}

/// The API resource each type is, as `k8s_openapi` declares it for the full type.
macro_rules! resource {
    ($slim:ident, $full:ty) => {
        impl k8s_openapi::Resource for $slim {
            const API_VERSION: &'static str = <$full as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$full as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$full as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$full as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$full as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::Metadata for $slim {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource!(Pod, k8s_openapi::api::core::v1::Pod);
resource!(Deployment, k8s_openapi::api::apps::v1::Deployment);
resource!(StatefulSet, k8s_openapi::api::apps::v1::StatefulSet);
resource!(Node, k8s_openapi::api::core::v1::Node);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn a_slim_pod_is_the_same_resource_and_keeps_what_the_watcher_resumes_from() {
        assert_eq!(
            Pod::url_path(&(), Some("web")),
            "/api/v1/namespaces/web/pods"
        );
        assert_eq!(
            Deployment::url_path(&(), Some("web")),
            "/apis/apps/v1/namespaces/web/deployments"
        );
        assert_eq!(
            StatefulSet::url_path(&(), Some("db")),
            "/apis/apps/v1/namespaces/db/statefulsets"
        );
        assert_eq!(Node::url_path(&(), None), "/api/v1/nodes");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "php-0", "namespace": "web", "resourceVersion": "42",
                "labels": { "app": "php" }, "uid": "u-1",
                "managedFields": [{ "manager": "kubelet", "fieldsV1": { "f:status": {} } }],
                "annotations": { "a": "b" } },
            "spec": { "containers": [{ "name": "php", "image": "php" }] },
            "status": { "phase": "Running", "containerStatuses": [{ "name": "php", "restartCount": 3,
                "image": "php", "imageID": "x", "ready": true,
                "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off" } } }] }
        }))
        .expect("a pod");
        assert_eq!(pod.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(pod.metadata.uid.as_deref(), Some("u-1"));
        // What salve never reads is not kept.
        assert!(pod.metadata.managed_fields.is_none() && pod.metadata.annotations.is_none());
        let statuses = pod
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default();
        assert_eq!(statuses[0].restart_count, 3);
    }
}
