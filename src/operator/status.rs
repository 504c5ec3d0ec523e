//! Each RemediationPolicy's status: the `Ready` condition (`True`/`Loaded` while it
//! runs, `False` with the errors, `Invalid`, or the reason it is not run, `Refused`),
//! the `CircuitOpen` condition, the `Paused` condition (`spec.pause`: until when and
//! why), the attempts within the window and the last attempt with its outcome, so `kubectl get rp` shows what `salve check` and `salve history`
//! would say.
//!
//! One task writes them, in the order they were decided. A merge patch replaces a list
//! whole, so it keeps what each policy shows and always writes all of it.

use super::policies::StatusUpdate;
use crate::action::kubernetes::{api_time, Retry, FIELD_MANAGER};
use crate::audit::{Entry, Record};
use crate::kubernetes::RemediationPolicy;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A change to what one policy's status shows.
#[derive(Debug, Clone)]
pub enum StatusChange {
    Ready(StatusUpdate),
    /// A journal record of the policy's resource (`namespace`, `name`).
    Journalled {
        namespace: String,
        name: String,
        record: Box<Record>,
    },
}

/// Records the status shows besides the guard records: a spec pause and its end.
pub fn shows(entry: &Entry) -> bool {
    matches!(entry, Entry::Control { by, .. } if by == crate::controller::spec_pause::SPEC_PAUSE_BY)
}

/// What one policy's status shows, kept whole for the next write.
#[derive(Debug, Clone, Default)]
struct Shown {
    generation: Option<i64>,
    ready: Option<serde_json::Value>,
    circuit: Option<serde_json::Value>,
    paused: Option<serde_json::Value>,
    attempts: u32,
    last_attempt: Option<serde_json::Value>,
}

fn condition(
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    now: &str,
    generation: Option<i64>,
) -> serde_json::Value {
    serde_json::json!({
        "type": type_,
        "status": if on { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "observedGeneration": generation,
    })
}

impl Shown {
    /// Takes `change` in; false when it changes nothing shown.
    fn take(&mut self, change: &StatusChange, now: &str) -> bool {
        match change {
            StatusChange::Ready(update) => {
                self.generation = update.generation;
                self.ready = Some(condition(
                    "Ready",
                    update.ready,
                    update.reason,
                    &update.message,
                    now,
                    update.generation,
                ));
                if self.circuit.is_none() {
                    self.circuit = Some(condition(
                        "CircuitOpen",
                        false,
                        "Closed",
                        "no circuit is open",
                        now,
                        update.generation,
                    ));
                }
                if self.paused.is_none() {
                    self.paused = Some(condition(
                        "Paused",
                        false,
                        "NotPaused",
                        "no pause in force",
                        now,
                        update.generation,
                    ));
                }
                true
            }
            StatusChange::Journalled { record, .. } => match &record.entry {
                Entry::Intent {
                    id,
                    attempt,
                    dry_run: false,
                    ..
                } => {
                    self.attempts = *attempt;
                    self.last_attempt = Some(serde_json::json!({
                        "attemptId": id,
                        "target": record.target,
                        "started": api_time(record.ts),
                    }));
                    // Acting again: whatever circuit was open has closed.
                    if self.circuit_open() {
                        self.circuit = Some(condition(
                            "CircuitOpen",
                            false,
                            "Closed",
                            &format!("acting again on {}", record.target),
                            now,
                            self.generation,
                        ));
                    }
                    true
                }
                Entry::Outcome { id, result, .. } => match &mut self.last_attempt {
                    Some(last) if last["attemptId"] == serde_json::json!(id) => {
                        last["outcome"] = serde_json::json!(result.as_str());
                        true
                    }
                    _ => false,
                },
                Entry::Escalate {
                    attempts,
                    dry_run: false,
                    evidence,
                    ..
                } => {
                    let (reason, message) = if *attempts == 0 {
                        (
                            "MaxUnhealthy",
                            evidence.first().cloned().unwrap_or_default(),
                        )
                    } else {
                        (
                            "MaxAttempts",
                            format!(
                                "{attempts} attempts on {} within the window; not acting until it has passed or a reset",
                                record.target
                            ),
                        )
                    };
                    self.circuit = Some(condition(
                        "CircuitOpen",
                        true,
                        reason,
                        &message,
                        now,
                        self.generation,
                    ));
                    true
                }
                Entry::Control {
                    command,
                    by,
                    until,
                    reason,
                    refused: None,
                } if by == crate::controller::spec_pause::SPEC_PAUSE_BY => {
                    let reason = reason.as_deref().unwrap_or_default();
                    self.paused = Some(match (command.as_str(), until) {
                        ("pause", Some(until)) => condition(
                            "Paused",
                            true,
                            "SpecPause",
                            &format!("spec.pause until {until}: {reason}"),
                            now,
                            self.generation,
                        ),
                        _ => condition(
                            "Paused",
                            false,
                            "NotPaused",
                            &format!("the pause {reason}"),
                            now,
                            self.generation,
                        ),
                    });
                    true
                }
                _ => false,
            },
        }
    }

    fn circuit_open(&self) -> bool {
        self.circuit.as_ref().is_some_and(|c| c["status"] == "True")
    }

    /// The status subresource's patch: everything shown, the conditions whole.
    fn body(&self) -> serde_json::Value {
        let conditions: Vec<&serde_json::Value> = self
            .ready
            .iter()
            .chain(self.circuit.iter())
            .chain(self.paused.iter())
            .collect();
        let mut status = serde_json::json!({
            "observedGeneration": self.generation,
            "conditions": conditions,
            "attempts": self.attempts,
        });
        if let Some(last) = &self.last_attempt {
            status["lastAttempt"] = last.clone();
        }
        serde_json::json!({ "status": status })
    }
}

/// The patch that shows `update` on a policy with nothing else shown yet.
#[cfg(test)]
pub fn patch_body(update: &StatusUpdate, now: &str) -> serde_json::Value {
    let mut shown = Shown::default();
    shown.take(&StatusChange::Ready(update.clone()), now);
    shown.body()
}

/// How long a status the API server refused waits before it is written again.
pub const REWRITE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// The one task that writes statuses, in the order they were decided, so an older
/// one never lands after a newer one. A write the API server refused (after the
/// retries every request gets) is written again, whole and as it is then, every
/// `rewrite_after` until it lands, the resource is gone (404), or the operator stops.
pub fn writer(
    client: Client,
    rewrite_after: std::time::Duration,
) -> (mpsc::UnboundedSender<StatusChange>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<StatusChange>();
    let task = tokio::spawn(async move {
        // One entry per policy resource the operator has shown a status for.
        let mut shown: HashMap<(String, String), Shown> = HashMap::new();
        let mut unwritten: std::collections::BTreeSet<(String, String)> = Default::default();
        let mut rewrite_at = tokio::time::Instant::now() + rewrite_after;
        loop {
            // Waiting on the clock only while something waits to be written again.
            let change = if unwritten.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout_at(rewrite_at, rx.recv()).await {
                    Ok(change) => change,
                    Err(_) => {
                        for key in std::mem::take(&mut unwritten) {
                            let Some(entry) = shown.get(&key) else {
                                continue;
                            };
                            if let Written::No =
                                write(client.clone(), &key.0, &key.1, entry.body()).await
                            {
                                unwritten.insert(key);
                            }
                        }
                        rewrite_at = tokio::time::Instant::now() + rewrite_after;
                        continue;
                    }
                }
            };
            let Some(change) = change else { break };
            let key = match &change {
                StatusChange::Ready(u) => (u.namespace.clone(), u.name.clone()),
                StatusChange::Journalled {
                    namespace, name, ..
                } => (namespace.clone(), name.clone()),
            };
            let now = api_time(std::time::SystemTime::now());
            let entry = shown.entry(key.clone()).or_default();
            if entry.take(&change, &now) {
                match write(client.clone(), &key.0, &key.1, entry.body()).await {
                    Written::Yes | Written::Gone => {
                        unwritten.remove(&key);
                    }
                    Written::No => {
                        if unwritten.is_empty() {
                            rewrite_at = tokio::time::Instant::now() + rewrite_after;
                        }
                        unwritten.insert(key);
                    }
                }
            }
        }
    });
    (tx, task)
}

enum Written {
    Yes,
    No,
    /// The resource is gone: nothing to show the status on.
    Gone,
}

/// Writes `body`, again after a pause while the API server says "not now" (as the
/// family's requests are); a status it refuses is logged, and written again later.
async fn write(client: Client, namespace: &str, name: &str, body: serde_json::Value) -> Written {
    let api: Api<RemediationPolicy> = Api::namespaced(client, namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patch = Patch::Merge(&body);
    let written = Retry::default()
        .run(|| api.patch_status(name, &params, &patch))
        .await;
    match written {
        Ok(_) => Written::Yes,
        // The API server took it; only its answer did not read as a policy.
        Err(kube::Error::SerdeError(e)) => {
            tracing::debug!(namespace = %namespace, name = %name, error = %e, "the status was written; its answer did not decode");
            Written::Yes
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Written::Gone,
        Err(e) => {
            tracing::warn!(namespace = %namespace, name = %name, error = %e, "could not write the policy's status; writing it again later");
            Written::No
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::OutcomeResult;
    use std::time::{Duration, UNIX_EPOCH};

    fn journalled(entry: Entry) -> StatusChange {
        StatusChange::Journalled {
            namespace: "web".into(),
            name: "php".into(),
            record: Box::new(Record {
                ts: UNIX_EPOCH + Duration::from_secs(1_796_187_600),
                policy: "php".into(),
                target: "pod/web/php-0".into(),
                entry,
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_status_the_api_server_refused_is_written_again_later() {
        use crate::kubernetes::api_server::{route, Reply};
        let mut refusals = 0;
        let (client, mut seen) = route(move |_| {
            // Four tries of the first write, four of the first rewrite: refused.
            refusals += 1;
            if refusals <= 8 {
                Reply::Json(
                    500,
                    serde_json::json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "etcd is down", "reason": "InternalError", "code": 500 }),
                )
            } else {
                Reply::Json(
                    200,
                    serde_json::json!({ "apiVersion": "salve.dev/v1alpha1", "kind": "RemediationPolicy", "metadata": { "name": "php", "namespace": "web" } }),
                )
            }
        });
        let (tx, task) = writer(client, Duration::from_secs(30));
        tx.send(StatusChange::Ready(StatusUpdate {
            namespace: "web".into(),
            name: "php".into(),
            generation: Some(1),
            ready: true,
            reason: "Loaded",
            message: "running".into(),
        }))
        .unwrap();
        let mut bodies = Vec::new();
        while bodies.len() < 9 {
            let request = tokio::time::timeout(Duration::from_secs(120), seen.recv())
                .await
                .expect("the status is written again")
                .expect("a request");
            assert_eq!(
                request.path,
                "/apis/salve.dev/v1alpha1/namespaces/web/remediationpolicies/php/status"
            );
            bodies.push(request.body.unwrap_or_default());
        }
        // The ninth, after two rounds refused, lands: the same whole status.
        assert_eq!(bodies[8]["status"]["conditions"][0]["reason"], "Loaded");
        assert_eq!(bodies[8], bodies[0]);
        // Nothing more once it is written.
        let after = tokio::time::timeout(Duration::from_secs(90), seen.recv()).await;
        assert!(after.is_err(), "{after:?}");
        drop(tx);
        task.await.unwrap();
    }

    #[test]
    fn the_status_shows_the_last_attempt_its_outcome_and_the_circuit() {
        let mut shown = Shown::default();
        let now = "2026-12-02T05:00:00Z";
        shown.take(
            &StatusChange::Ready(StatusUpdate {
                namespace: "web".into(),
                name: "php".into(),
                generation: Some(2),
                ready: true,
                reason: "Loaded",
                message: "running".into(),
            }),
            now,
        );
        let intent = Entry::Intent {
            id: 7,
            attempt: 3,
            actions: vec!["restart".into()],
            dry_run: false,
            evidence: Vec::new(),
        };
        assert!(shown.take(&journalled(intent), now));
        let outcome: Entry = serde_json::from_value(serde_json::json!({
            "kind": "outcome", "id": 7, "result": "failed", "durationMs": 12
        }))
        .unwrap();
        assert!(matches!(
            &outcome,
            Entry::Outcome {
                result: OutcomeResult::Failed,
                ..
            }
        ));
        assert!(shown.take(&journalled(outcome), now));
        let escalate = Entry::Escalate {
            actions: vec!["notify".into()],
            attempts: 3,
            dry_run: false,
            evidence: Vec::new(),
        };
        assert!(shown.take(&journalled(escalate), now));
        let status = shown.body()["status"].clone();
        assert_eq!(status["attempts"], 3);
        assert_eq!(
            status["lastAttempt"],
            serde_json::json!({ "attemptId": 7, "target": "pod/web/php-0", "started": "2026-12-02T05:00:00Z", "outcome": "failed" })
        );
        let conditions = status["conditions"].as_array().unwrap();
        assert_eq!(conditions[0]["type"], "Ready");
        assert_eq!(conditions[1]["type"], "CircuitOpen");
        assert_eq!(conditions[1]["status"], "True");
        assert_eq!(conditions[1]["reason"], "MaxAttempts");
        // It reads back as the CRD's own status type.
        let typed: crate::kubernetes::RemediationPolicyStatus =
            serde_json::from_value(status).unwrap();
        assert_eq!(typed.last_attempt.map(|l| l.attempt_id), Some(7));
    }
}
