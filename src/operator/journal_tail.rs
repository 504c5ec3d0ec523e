//! The journal's guard records kept in the cluster, where the next leader reads them:
//! a ConfigMap with one key per replica (`<identity>.jsonl`), each the newest attempts,
//! outcomes and escalations that replica journalled, as JSON Lines. Each replica writes
//! only its own key, so a deposed leader finishing an attempt never overwrites the new
//! one's; the new leader reads them all. An intent is in the ConfigMap before its
//! action runs (the journal's write waits for it), so a failover never forgets an
//! attempt, and `maxAttempts` holds across leaders.

use crate::audit::{AuditError, Entry, Record};
use crate::controller::{clock::Clock, recovery};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The ConfigMap holding every replica's guard records.
pub const CONFIGMAP: &str = "salve-guard-state";

/// Records kept per replica: the newest, so the ConfigMap stays far under its 1 MiB.
pub const KEPT: usize = 1000;

/// A replica's key whose newest record is older than this is dropped by the next
/// leader: no guard window is that long in practice, and dead pods' names pile up.
const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The records a new leader rebuilds guards from.
pub fn kept(entry: &Entry) -> bool {
    matches!(
        entry,
        Entry::Intent { dry_run: false, .. }
            | Entry::Outcome { .. }
            | Entry::Escalate { dry_run: false, .. }
            | Entry::EscalationSent { .. }
    )
}

pub struct ClusterTail {
    api: Api<ConfigMap>,
    key: String,
    lines: VecDeque<String>,
    /// The operator's runtime: the journal's thread writes through it and waits.
    runtime: tokio::runtime::Handle,
}

fn cluster_error(doing: &'static str, e: kube::Error) -> AuditError {
    AuditError::Write {
        path: PathBuf::from(format!("configmap/{CONFIGMAP}")),
        doing,
        cause: std::io::Error::other(e.to_string()),
    }
}

impl ClusterTail {
    /// The tail of replica `identity`, in namespace `namespace`; it starts from what
    /// the ConfigMap already holds under its key (a restarted pod keeps its name in a
    /// StatefulSet, and its history with it).
    pub async fn open(
        client: kube::Client,
        namespace: &str,
        identity: &str,
    ) -> Result<Self, AuditError> {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let key = format!("{identity}.jsonl");
        let existing = ensure(&api).await?;
        let lines = existing
            .data
            .and_then(|mut d| d.remove(&key))
            .map(|text| text.lines().map(String::from).collect())
            .unwrap_or_default();
        Ok(ClusterTail {
            api,
            key,
            lines,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Adds `record` to this replica's key and waits until the API server has it.
    /// Called on the journal's thread, never on the runtime's.
    pub fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        if !kept(&record.entry) {
            return Ok(());
        }
        let line = serde_json::to_string(record).map_err(|cause| AuditError::Encode {
            path: PathBuf::from(format!("configmap/{CONFIGMAP}")),
            kind: "record",
            cause,
        })?;
        if self.lines.len() >= KEPT {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        let patch = serde_json::json!({ "data": { self.key.clone(): text } });
        let params = PatchParams {
            field_manager: Some(crate::action::kubernetes::FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let api = self.api.clone();
        self.runtime
            .block_on(async move {
                let patch = Patch::Merge(&patch);
                crate::action::kubernetes::Retry::default()
                    .run(|| api.patch(CONFIGMAP, &params, &patch))
                    .await
            })
            .map(|_| ())
            .map_err(|e| cluster_error("write", e))
    }
}

/// The ConfigMap, made empty when it does not exist yet.
async fn ensure(api: &Api<ConfigMap>) -> Result<ConfigMap, AuditError> {
    if let Some(found) = api
        .get_opt(CONFIGMAP)
        .await
        .map_err(|e| cluster_error("read", e))?
    {
        return Ok(found);
    }
    let empty = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(CONFIGMAP.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &empty).await {
        Ok(made) => Ok(made),
        // Another replica made it first.
        Err(kube::Error::Api(status)) if status.code == 409 => api
            .get(CONFIGMAP)
            .await
            .map_err(|e| cluster_error("read", e)),
        Err(e) => Err(cluster_error("create", e)),
    }
}

/// What every replica's key says happened, oldest first, as the engine's past; keys
/// left by replicas long gone are removed. Lines that do not read are counted.
pub async fn recover(
    client: kube::Client,
    namespace: &str,
    own_key: &str,
    clock: &Clock,
) -> Result<recovery::Recovered, AuditError> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let found = ensure(&api).await?;
    let mut records: Vec<Record> = Vec::new();
    let mut unreadable = 0;
    let mut stale: Vec<String> = Vec::new();
    let now = SystemTime::now();
    for (key, text) in found.data.unwrap_or_default() {
        let mut newest = SystemTime::UNIX_EPOCH;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Record>(line) {
                Ok(record) => {
                    newest = newest.max(record.ts);
                    records.push(record);
                }
                Err(_) => unreadable += 1,
            }
        }
        if key != own_key
            && now
                .duration_since(newest)
                .is_ok_and(|age| age > FORGET_AFTER)
        {
            stale.push(key);
        }
    }
    if !stale.is_empty() {
        let removed: serde_json::Map<String, serde_json::Value> = stale
            .iter()
            .map(|k| (k.clone(), serde_json::Value::Null))
            .collect();
        let patch = serde_json::json!({ "data": removed });
        let params = PatchParams {
            field_manager: Some(crate::action::kubernetes::FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        if let Err(e) = api.patch(CONFIGMAP, &params, &Patch::Merge(&patch)).await {
            tracing::warn!(error = %e, keys = ?stale, "could not remove the guard records of replicas long gone");
        }
    }
    records.sort_by_key(|r| r.ts);
    let last_attempt_id = records
        .iter()
        .filter_map(|r| r.entry.id())
        .max()
        .unwrap_or(0);
    let mut recovered = recovery::from_records(&records, clock, now);
    recovered.last_attempt_id = last_attempt_id;
    recovered.unreadable = unreadable;
    Ok(recovered)
}
