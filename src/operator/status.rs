//! The `Ready` condition on each RemediationPolicy: `True` (`Loaded`) while it runs,
//! `False` with the errors (`Invalid`) or the reason it is not run (`Refused`), so
//! `kubectl get rp` shows what `salve check` would have said.

use super::policies::StatusUpdate;
use crate::action::kubernetes::{api_time, Retry, FIELD_MANAGER};
use crate::kubernetes::RemediationPolicy;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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

/// The one task that writes conditions, in the order they were decided, so an older
/// one never lands after a newer one.
pub fn writer(client: Client) -> (mpsc::UnboundedSender<StatusUpdate>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<StatusUpdate>();
    let task = tokio::spawn(async move {
        while let Some(update) = rx.recv().await {
            write(client.clone(), update).await;
        }
    });
    (tx, task)
}

/// Writes `update`, again after a pause while the API server says "not now" (as the
/// family's requests are); a status it refuses is logged and costs nothing else.
async fn write(client: Client, update: StatusUpdate) {
    let now = api_time(std::time::SystemTime::now());
    let api: Api<RemediationPolicy> = Api::namespaced(client, &update.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let body = patch_body(&update, &now);
    let patch = Patch::Merge(&body);
    let written = Retry::default()
        .run(|| api.patch_status(&update.name, &params, &patch))
        .await;
    if let Err(e) = written {
        tracing::warn!(namespace = %update.namespace, name = %update.name, error = %e, "could not write the policy's status");
    }
}
