//! The `Ready` condition on each RemediationPolicy: `True` (`Loaded`) while it runs,
//! `False` with the errors (`Invalid`) or the reason it is not run (`Refused`), so
//! `kubectl get rp` shows what `salve check` would have said.

use super::policies::StatusUpdate;
use crate::action::kubernetes::FIELD_MANAGER;
use crate::kubernetes::RemediationPolicy;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// The patch of the status subresource that shows `update`, stamped `now` (RFC 3339).
pub fn patch_body(update: &StatusUpdate, now: &str) -> serde_json::Value {
    serde_json::json!({
        "status": {
            "observedGeneration": update.generation,
            "conditions": [{
                "type": "Ready",
                "status": if update.ready { "True" } else { "False" },
                "reason": update.reason,
                "message": update.message,
                "lastTransitionTime": now,
                "observedGeneration": update.generation,
            }]
        }
    })
}

/// Writes `update`; a status the API server refuses is logged and costs nothing else.
pub async fn write(client: Client, update: StatusUpdate) {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let api: Api<RemediationPolicy> = Api::namespaced(client, &update.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let body = patch_body(&update, &now);
    if let Err(e) = api
        .patch_status(&update.name, &params, &Patch::Merge(&body))
        .await
    {
        tracing::warn!(namespace = %update.namespace, name = %update.name, error = %e, "could not write the policy's status");
    }
}
