//! The `Ready` condition on each RemediationPolicy: `True` (`Loaded`) while it runs,
//! `False` with the errors (`Invalid`) or the reason it is not run (`Refused`), so
//! `kubectl get rp` shows what `salve check` would have said.

use super::policies::StatusUpdate;
use crate::action::kubernetes::FIELD_MANAGER;
use crate::kubernetes::RemediationPolicy;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::time::Duration;
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

/// Writes `update`, again after a pause while the API server says "not now" (429,
/// 5xx); a status it refuses is logged and costs nothing else.
async fn write(client: Client, update: StatusUpdate) {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let api: Api<RemediationPolicy> = Api::namespaced(client, &update.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let body = patch_body(&update, &now);
    let patch = Patch::Merge(&body);
    let mut pause = Duration::from_millis(250);
    for tries in 1.. {
        match api.patch_status(&update.name, &params, &patch).await {
            Ok(_) => return,
            Err(kube::Error::Api(status))
                if tries < 4 && (status.code == 429 || status.code >= 500) =>
            {
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
            }
            Err(e) => {
                tracing::warn!(namespace = %update.namespace, name = %update.name, error = %e, "could not write the policy's status");
                return;
            }
        }
    }
}
