//! What the engine hears: observations from signal sources, outcomes from executors,
//! and people. `salve simulate` reads exactly these as JSON Lines.

use crate::policy::{ActiveState, ConditionValue, TargetKey, UnitFileState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Event {
    /// A unit's properties changed. Absent fields are unchanged (D-Bus `PropertiesChanged`
    /// carries only what changed).
    Unit(UnitObservation),
    /// One HTTP probe result.
    Http(HttpObservation),
    /// A pod's container states, whole (a Kubernetes watch sends whole objects).
    Pod(PodObservation),
    /// A deployment's or statefulset's replica counts.
    Workload(WorkloadObservation),
    /// A node's conditions, whole.
    Node(NodeObservation),
    /// One line appended to a watched log file.
    Log(LogLine),
    /// One alert of an Alertmanager notification, firing or resolved.
    Alert(AlertObservation),
    /// One reading of a PHP-FPM pool's status page, or why there was none.
    PhpFpm(PhpFpmObservation),
    /// An attempt the engine asked for has finished.
    Outcome(Outcome),
    /// A person closed a policy's circuit (`salve reset`).
    Reset(Reset),
    /// Nothing happened, but time passed: lets `for`, cooldowns and windows expire.
    /// Written `{"tick": {}}`.
    Tick {},
}

/// One alert as Alertmanager's webhook delivers it: the notification's group, the
/// alert's fingerprint and start (which together say which alert, and which time it
/// fired), whether it fires or has resolved, and its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertObservation {
    pub group_key: String,
    pub fingerprint: String,
    pub status: AlertStatus,
    /// `startsAt`, as Alertmanager wrote it.
    #[serde(default)]
    pub starts_at: String,
    /// `alertname` among them.
    pub labels: BTreeMap<String, String>,
}

/// A status page read (`pm.status_path?json`), or not: `source` is the condition's
/// `status` and `path` together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhpFpmObservation {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PhpFpmStatus>,
    /// Why nothing was read: "timed out after 1s", "connection refused", ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What salve reads of a pool's status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhpFpmStatus {
    pub pool: String,
    pub listen_queue: u32,
    pub idle: u32,
    pub active: u32,
    pub total: u32,
    /// How often the pool hit `pm.max_children` since it started.
    pub max_children_reached: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitObservation {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_state: Option<ActiveState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_file_state: Option<UnitFileState>,
    /// The service's `Result` (e.g. `signal`, `exit-code`): why it last stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The service's `NRestarts`: how often systemd itself restarted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_restarts: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodObservation {
    pub namespace: String,
    pub name: String,
    /// The object's labels, which a policy's `selector` is matched against.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub containers: Vec<ContainerObservation>,
    /// The pod's condition types with their statuses: `{"Ready": "False"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, ConditionValue>,
    /// The pod was deleted: its state no longer holds anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerObservation {
    pub name: String,
    /// `state.waiting.reason`: `CrashLoopBackOff`, `ImagePullBackOff`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// `lastState.terminated.reason`: `OOMKilled`, `Error`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_terminated: Option<String>,
    /// `restartCount`.
    #[serde(default)]
    pub restarts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Deployment,
    Statefulset,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadObservation {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// The object's labels, which a policy's `selector` is matched against.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `spec.replicas`: how many there should be.
    pub replicas: u32,
    /// `status.availableReplicas`.
    pub available: u32,
    /// The workload's condition types with their statuses: `{"Progressing": "False"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, ConditionValue>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeObservation {
    pub name: String,
    /// The object's labels, which a policy's `selector` is matched against.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Each condition type with its status: `{"Ready": "False"}`.
    #[serde(default)]
    pub conditions: BTreeMap<String, ConditionValue>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl PodObservation {
    pub fn key(&self) -> TargetKey {
        TargetKey::Pod {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

impl WorkloadObservation {
    pub fn key(&self) -> TargetKey {
        let (namespace, name) = (self.namespace.clone(), self.name.clone());
        match self.kind {
            WorkloadKind::Deployment => TargetKey::Deployment { namespace, name },
            WorkloadKind::Statefulset => TargetKey::StatefulSet { namespace, name },
        }
    }
}

impl NodeObservation {
    pub fn key(&self) -> TargetKey {
        TargetKey::Node {
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpObservation {
    pub url: String,
    /// The status received; absent when no response came (refused, timed out, reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogLine {
    pub path: PathBuf,
    pub line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    Ok,
    Failed,
    TimedOut,
    /// The action found nothing it could change (the values a config edit sets were
    /// already in place): this was not the trouble it cures. The attempt does not count
    /// toward `maxAttempts`, so a policy that fires on a shared symptom cannot open its
    /// circuit (and page someone) for a cause that is not its own.
    NotApplicable,
    /// The agent stopped (killed, crashed, out of memory) before the attempt reported
    /// back: what it did is not known, so it counts as failed.
    Unknown,
}

impl OutcomeResult {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeResult::Ok => "ok",
            OutcomeResult::Failed => "failed",
            OutcomeResult::TimedOut => "timed_out",
            OutcomeResult::NotApplicable => "not_applicable",
            OutcomeResult::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for OutcomeResult {
    type Err = String;
    /// `ok`, `failed`, `timed_out` (or `timed-out`), `not_applicable`, `unknown`, as in
    /// the journal.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().replace('-', "_").as_str() {
            "ok" => Ok(OutcomeResult::Ok),
            "failed" => Ok(OutcomeResult::Failed),
            "timed_out" => Ok(OutcomeResult::TimedOut),
            "not_applicable" => Ok(OutcomeResult::NotApplicable),
            "unknown" => Ok(OutcomeResult::Unknown),
            _ => Err(format!(
                "unknown outcome \"{text}\" (expected ok, failed, timed_out, not_applicable or unknown)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outcome {
    pub policy: String,
    /// The attempt this reports on; when absent, the policy's attempt in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_id: Option<u64>,
    pub result: OutcomeResult,
    /// `false` when the actions ran but `verify` did not pass: a failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// What the executor saw, for the journal; the engine decides on `result` and
    /// `verified` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<AttemptDetail>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttemptDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Each action's own result, in order (e.g. "restart: job done").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// What verification saw, e.g. "HTTP 200 after 120ms".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    /// Unified diffs of the config files the attempt changed (or tried to, and rolled back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<String>,
    /// Why the attempt asks for the policy's escalation outside its guard: a drain it
    /// could not make (etcd out of reach, the load balancer refusing), said once until
    /// a drain succeeds again. The heal itself went on; a person should know the
    /// node took traffic while it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.result == OutcomeResult::Ok && self.verified != Some(false)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reset {
    pub policy: String,
    /// One of a selector policy's targets (`pod/web/php-0`); when absent, every target
    /// of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_result_reads_back_from_its_journal_name() {
        let all = [
            (OutcomeResult::Ok, "ok"),
            (OutcomeResult::Failed, "failed"),
            (OutcomeResult::TimedOut, "timed_out"),
            (OutcomeResult::NotApplicable, "not_applicable"),
            (OutcomeResult::Unknown, "unknown"),
        ];
        for (result, name) in all {
            assert_eq!(result.as_str(), name);
            assert_eq!(name.parse::<OutcomeResult>(), Ok(result));
            // As serde writes it too, so the journal and `simulate` agree.
            assert_eq!(serde_json::to_value(result).unwrap(), name);
        }
        assert_eq!(
            "Timed-Out".parse::<OutcomeResult>(),
            Ok(OutcomeResult::TimedOut)
        );
        let err = "fine".parse::<OutcomeResult>().unwrap_err();
        assert!(err.contains("unknown outcome \"fine\""), "{err}");
    }
}
