//! The policy model: what a `RemediationPolicy` document means once it has been
//! validated. serde reads these types (a custom resource arrives as JSON), the JSON
//! Schema (`salve schema`) is derived from them, and `parse/` decodes YAML into them
//! with positions; `tests/decoders_agree.rs` shows the two readers accept the same
//! documents. Semantic rules (ranges, cross-field limits) are `validate.rs`'s.

pub use super::config_edit::*;
use super::defaults;
use super::names::{HttpUrl, PolicyName, SignalName};
pub use super::quantity::MemoryQuantity;
use super::schema_types::{DurationSchema, MaxUnhealthySchema, NoArgs, RegexSchema};
use super::serde_text::{duration_text, mapping, mapping_list, present, present_mapping};
pub use super::target::*;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub const API_VERSION: &str = "salve.dev/v1alpha1";
pub const KIND: &str = "RemediationPolicy";

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
pub enum ApiVersion {
    #[serde(rename = "salve.dev/v1alpha1")]
    V1Alpha1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
pub enum Kind {
    RemediationPolicy,
}

/// Where a policy was defined, for messages and `salve check` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    pub file: PathBuf,
    /// Position of the policy's `metadata.name` value.
    pub line: usize,
    pub col: usize,
}

/// A salve remediation policy: when the trigger fires on the target, run the actions,
/// verify they worked, within the guard's limits.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "RemediationPolicy")]
pub struct Policy {
    pub api_version: ApiVersion,
    pub kind: Kind,
    #[serde(deserialize_with = "mapping")]
    pub metadata: Metadata,
    #[serde(deserialize_with = "mapping")]
    pub spec: PolicySpec,
    /// A custom resource's status, as exported from a cluster: what the operator wrote,
    /// accepted so the resource reads as it is, and never read.
    #[serde(rename = "status", default, skip_serializing)]
    #[schemars(skip)]
    pub exported_status: serde::de::IgnoredAny,
    #[serde(skip)]
    pub source: Source,
}

impl Policy {
    pub fn name(&self) -> &str {
        self.metadata.name.as_str()
    }

    /// The one object the policy's target names (in the policy's namespace, for a
    /// custom resource), or `None` for a selector.
    pub fn target_key(&self) -> Option<TargetKey> {
        let namespace = self.metadata.namespace.as_deref();
        self.spec
            .target
            .key(namespace.unwrap_or(super::target::DEFAULT_NAMESPACE))
    }
}

// Read through `MetadataDoc`, which also takes what the API server sets.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(try_from = "MetadataDoc", rename_all = "camelCase")]
pub struct Metadata {
    pub name: PolicyName,
    /// The namespace of a custom resource; a host file needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Fields of Kubernetes' ObjectMeta that the API server (or a client) sets: a resource
/// exported from a cluster carries them; salve accepts them and keeps none.
pub const SERVER_SET_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "finalizers",
    "ownerReferences",
    "generateName",
    "selfLink",
];

/// The policy's name, and for a custom resource its namespace, labels and annotations; the fields the API server sets (uid, resourceVersion, managedFields, …) are accepted and ignored.
#[derive(Debug, Clone, JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "Metadata")]
pub struct MetadataDoc {
    pub name: PolicyName,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "String")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub rest: BTreeMap<String, serde::de::IgnoredAny>,
}

impl TryFrom<MetadataDoc> for Metadata {
    type Error = String;
    fn try_from(doc: MetadataDoc) -> Result<Self, String> {
        if let Some(unknown) = doc
            .rest
            .keys()
            .find(|k| !SERVER_SET_METADATA.contains(&k.as_str()))
        {
            let known: Vec<&str> = ["name", "namespace", "labels", "annotations"]
                .into_iter()
                .chain(SERVER_SET_METADATA.iter().copied())
                .collect();
            return Err(super::decode::unknown_name(
                "field in metadata:",
                unknown,
                &known,
            ));
        }
        Ok(Metadata {
            name: doc.name,
            namespace: doc.namespace,
            labels: doc.labels,
            annotations: doc.annotations,
        })
    }
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    pub target: Target,
    /// Any one of these conditions fires the policy.
    #[serde(deserialize_with = "mapping_list")]
    #[schemars(length(min = 1))]
    pub trigger: Vec<Trigger>,
    /// Run in order; the attempt stops at the first failure.
    #[schemars(length(min = 1))]
    pub actions: Vec<Action>,
    /// The attempt counts as a success only if this holds in time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "Verify")]
    pub verify: Option<Verify>,
    #[serde(default = "defaults::guard", deserialize_with = "mapping")]
    pub guard: Guard,
    /// Run once when the circuit opens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalate: Vec<Action>,
    /// Decide and journal, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Drains across every agent of a group share `maxConcurrent` slots, held in etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<super::FleetGuard>,
    /// Hold the policy back until a time: a deploy window declared with the policy
    /// itself (on the custom resource, where no control socket reaches). Decisions are
    /// journalled as `paused` skips; the pause ends by itself, or when the field goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<SpecPause>,
}

/// `spec.pause`: until when, and why.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpecPause {
    /// When the pause ends: RFC 3339 in UTC, `2026-12-03T16:00:00Z`. At most 7 days
    /// ahead are honoured; a time past means no pause.
    pub until: String,
    /// Why, for the journal and the status: one line.
    pub reason: String,
}

// Read through `TriggerDoc`: serde cannot flatten an enum into a struct that denies
// unknown fields, and the schema of three optional keys is the structural one a CRD needs.
/// One trigger condition and how long it must hold.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(try_from = "TriggerDoc", into = "TriggerDoc")]
pub struct Trigger {
    pub condition: Condition,
    /// The condition must hold continuously this long; a flap resets it.
    pub hold: Duration,
}

#[derive(Debug, Clone)]
pub enum Condition {
    Unit(UnitCondition),
    Http(HttpCondition),
    Log(LogCondition),
    Pod(PodCondition),
    Workload(WorkloadCondition),
    Node(NodeCondition),
    Alert(AlertCondition),
    PhpFpm(PhpFpmCondition),
}

/// The condition kinds as a trigger spells them.
pub const CONDITION_KINDS: &[&str] = &[
    "unit", "http", "log", "pod", "workload", "node", "alert", "phpFpm",
];

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Unit(_) => "unit",
            Condition::Http(_) => "http",
            Condition::Log(_) => "log",
            Condition::Pod(_) => "pod",
            Condition::Workload(_) => "workload",
            Condition::Node(_) => "node",
            Condition::Alert(_) => "alert",
            Condition::PhpFpm(_) => "phpFpm",
        }
    }
}

/// A trigger as written: exactly one condition kind (`unit`, `http`, `log`, `pod`,
/// `workload`, `node`, `alert`, `phpFpm`), and `for`.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "Trigger",
    extend("oneOf" = [
        { "required": ["unit"] }, { "required": ["http"] }, { "required": ["log"] },
        { "required": ["pod"] }, { "required": ["workload"] }, { "required": ["node"] },
        { "required": ["alert"] }, { "required": ["phpFpm"] }
    ])
)]
pub struct TriggerDoc {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "UnitCondition")]
    pub unit: Option<UnitCondition>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "HttpCondition")]
    pub http: Option<HttpCondition>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "LogCondition")]
    pub log: Option<LogCondition>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "PodCondition")]
    pub pod: Option<PodCondition>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "WorkloadCondition")]
    pub workload: Option<WorkloadCondition>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "NodeCondition")]
    pub node: Option<NodeCondition>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "AlertCondition")]
    pub alert: Option<AlertCondition>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "PhpFpmCondition")]
    pub php_fpm: Option<PhpFpmCondition>,
    /// The condition must hold continuously this long; a flap resets it.
    #[serde(rename = "for", default = "defaults::hold", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub hold: Duration,
}

/// "a trigger condition needs one of …" or "… names exactly one kind …", for the kinds
/// a trigger named.
pub fn trigger_kinds_error(kinds: &[&str]) -> Option<String> {
    match kinds.len() {
        1 => None,
        0 => Some(format!(
            "a trigger condition needs one of: {}",
            CONDITION_KINDS.join(", ")
        )),
        _ => Some(format!(
            "a trigger condition names exactly one kind, found {}: write each as its own list item",
            kinds.join(" and ")
        )),
    }
}

impl TryFrom<TriggerDoc> for Trigger {
    type Error = String;
    fn try_from(doc: TriggerDoc) -> Result<Self, String> {
        let conditions: Vec<Condition> = [
            doc.unit.map(Condition::Unit),
            doc.http.map(Condition::Http),
            doc.log.map(Condition::Log),
            doc.pod.map(Condition::Pod),
            doc.workload.map(Condition::Workload),
            doc.node.map(Condition::Node),
            doc.alert.map(Condition::Alert),
            doc.php_fpm.map(Condition::PhpFpm),
        ]
        .into_iter()
        .flatten()
        .collect();
        let named: Vec<&str> = conditions.iter().map(Condition::kind).collect();
        if let Some(error) = trigger_kinds_error(&named) {
            return Err(error);
        }
        match conditions.into_iter().next() {
            Some(condition) => Ok(Trigger {
                condition,
                hold: doc.hold,
            }),
            // trigger_kinds_error let exactly one kind through.
            None => Err(trigger_kinds_error(&[]).unwrap_or_default()),
        }
    }
}

impl From<Trigger> for TriggerDoc {
    fn from(t: Trigger) -> Self {
        let mut doc = TriggerDoc {
            unit: None,
            http: None,
            log: None,
            pod: None,
            workload: None,
            node: None,
            alert: None,
            php_fpm: None,
            hold: t.hold,
        };
        match t.condition {
            Condition::Unit(c) => doc.unit = Some(c),
            Condition::Http(c) => doc.http = Some(c),
            Condition::Log(c) => doc.log = Some(c),
            Condition::Pod(c) => doc.pod = Some(c),
            Condition::Workload(c) => doc.workload = Some(c),
            Condition::Node(c) => doc.node = Some(c),
            Condition::Alert(c) => doc.alert = Some(c),
            Condition::PhpFpm(c) => doc.php_fpm = Some(c),
        }
        doc
    }
}

/// Holds while Alertmanager has delivered a firing alert named `name` whose labels
/// include every one of `labels` (each with exactly that value), and no attempt has
/// acted on it yet: an alert is evidence an attempt uses up, so Alertmanager repeating
/// its notification (the same group and fingerprint) fires nothing more, and only a
/// new alert, or the same one firing again after it resolved, does. A `resolved`
/// notification ends it, a trigger still in its `for` included.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertCondition {
    /// The alert's `alertname` label.
    pub name: String,
    /// Labels the alert must carry, each with exactly this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Holds while a container of the target pod is waiting, or last ended, for one of
/// `reason` (`CrashLoopBackOff`, `OOMKilled`, `ImagePullBackOff`, …), and has restarted
/// at least `restarts` times, and the pod's `condition` (`Ready`, `ContainersReady`,
/// `PodScheduled`) has one of `status`; give at least one of reason, restarts and
/// condition, and all that are given must hold. With `for`, "Ready=False held for 2m".
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodCondition {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "non_empty::reasons")]
    #[schemars(length(min = 1))]
    pub reason: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "u32", range(min = 1, max = 1000000))]
    pub restarts: Option<u32>,
    /// A pod condition type; a condition the pod does not report is `Unknown`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String")]
    pub condition: Option<String>,
    /// The values of `condition` that count; `[False]` when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "non_empty::condition_statuses")]
    #[schemars(length(min = 1))]
    pub status: Vec<ConditionValue>,
}

/// Holds while at least `unavailable` of the target workload's replicas are not
/// available, and its `condition` (`Progressing`, `Available`, `ReplicaFailure`) has
/// one of `status`; with neither given, while one replica is unavailable. A
/// Deployment past its `progressDeadlineSeconds` reports `Progressing=False`.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadCondition {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "u32", range(min = 1, max = 100000))]
    pub unavailable: Option<u32>,
    /// A workload condition type; a condition the workload does not report is
    /// `Unknown`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String")]
    pub condition: Option<String>,
    /// The values of `condition` that count; `[False]` when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "non_empty::condition_statuses")]
    #[schemars(length(min = 1))]
    pub status: Vec<ConditionValue>,
}

impl PodCondition {
    /// The values of `condition` that count.
    pub fn statuses(&self) -> &[ConditionValue] {
        condition_statuses(&self.status)
    }
}

impl WorkloadCondition {
    /// The replicas that must be unavailable, if that is part of the condition.
    pub fn unavailable_at_least(&self) -> Option<u32> {
        match (self.unavailable, &self.condition) {
            (Some(n), _) => Some(n),
            (None, None) => Some(defaults::unavailable()),
            (None, Some(_)) => None,
        }
    }

    /// The values of `condition` that count.
    pub fn statuses(&self) -> &[ConditionValue] {
        condition_statuses(&self.status)
    }
}

/// A pod's or workload's condition counts when it is `False` unless told otherwise:
/// `Ready=False`, `Progressing=False`.
fn condition_statuses(written: &[ConditionValue]) -> &[ConditionValue] {
    if written.is_empty() {
        &[ConditionValue::False]
    } else {
        written
    }
}

/// Holds while the target node's condition `condition` has one of `status`.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCondition {
    /// A node condition type: `Ready`, `MemoryPressure`, `DiskPressure`, …
    #[serde(default = "defaults::node_condition")]
    pub condition: String,
    #[serde(
        default = "defaults::node_status",
        deserialize_with = "non_empty::condition_statuses"
    )]
    #[schemars(length(min = 1))]
    pub status: Vec<ConditionValue>,
}

/// A Kubernetes condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema, Serialize, Deserialize)]
pub enum ConditionValue {
    True,
    False,
    Unknown,
}

impl ConditionValue {
    pub const ALL: [ConditionValue; 3] = [
        ConditionValue::True,
        ConditionValue::False,
        ConditionValue::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionValue::True => "True",
            ConditionValue::False => "False",
            ConditionValue::Unknown => "Unknown",
        }
    }
}

/// Holds while every listed property of the target unit has one of the listed values.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitCondition {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "non_empty::active_states")]
    #[schemars(length(min = 1))]
    pub active_state: Vec<ActiveState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "non_empty::sub_states")]
    #[schemars(length(min = 1))]
    pub sub_state: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "non_empty::unit_file_states")]
    #[schemars(length(min = 1))]
    pub unit_file_state: Vec<UnitFileState>,
}

/// "empty list: at least one X is required"
pub(crate) fn non_empty_message(one: &str) -> String {
    format!("empty list: at least one {one} is required")
}

/// Lists whose absence means "no constraint" (or a default), so an empty one written
/// out is a mistake the model could not tell from absence: serde rejects it on reading,
/// with the decoder's words.
pub(crate) mod non_empty {
    use super::*;
    use serde::de::{Deserializer, Error};

    fn read<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
        one: &str,
    ) -> Result<Vec<T>, D::Error> {
        let items = Vec::<T>::deserialize(d)?;
        if items.is_empty() {
            return Err(D::Error::custom(super::non_empty_message(one)));
        }
        Ok(items)
    }

    pub fn active_states<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ActiveState>, D::Error> {
        read(d, "active state")
    }
    pub fn sub_states<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        read(d, "sub state")
    }
    pub fn unit_file_states<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<UnitFileState>, D::Error> {
        read(d, "unit file state")
    }
    pub fn statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        read(d, "HTTP status code")
    }
    pub fn reasons<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        read(d, "reason")
    }
    pub fn condition_statuses<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<ConditionValue>, D::Error> {
        read(d, "condition status")
    }
}

/// systemd's `ActiveState` values (org.freedesktop.systemd1.Unit).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Maintenance,
    Refreshing,
}

impl ActiveState {
    pub const ALL: [ActiveState; 8] = [
        ActiveState::Active,
        ActiveState::Reloading,
        ActiveState::Inactive,
        ActiveState::Failed,
        ActiveState::Activating,
        ActiveState::Deactivating,
        ActiveState::Maintenance,
        ActiveState::Refreshing,
    ];

    /// From systemd's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// systemd's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Maintenance => "maintenance",
            ActiveState::Refreshing => "refreshing",
        }
    }
}

/// systemd's `UnitFileState` values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum UnitFileState {
    Enabled,
    EnabledRuntime,
    Linked,
    LinkedRuntime,
    Alias,
    Masked,
    MaskedRuntime,
    Static,
    Disabled,
    Invalid,
    Indirect,
    Generated,
    Transient,
    Bad,
}

impl UnitFileState {
    pub const ALL: [UnitFileState; 14] = [
        UnitFileState::Enabled,
        UnitFileState::EnabledRuntime,
        UnitFileState::Linked,
        UnitFileState::LinkedRuntime,
        UnitFileState::Alias,
        UnitFileState::Masked,
        UnitFileState::MaskedRuntime,
        UnitFileState::Static,
        UnitFileState::Disabled,
        UnitFileState::Invalid,
        UnitFileState::Indirect,
        UnitFileState::Generated,
        UnitFileState::Transient,
        UnitFileState::Bad,
    ];

    /// From systemd's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// systemd's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitFileState::Enabled => "enabled",
            UnitFileState::EnabledRuntime => "enabled-runtime",
            UnitFileState::Linked => "linked",
            UnitFileState::LinkedRuntime => "linked-runtime",
            UnitFileState::Alias => "alias",
            UnitFileState::Masked => "masked",
            UnitFileState::MaskedRuntime => "masked-runtime",
            UnitFileState::Static => "static",
            UnitFileState::Disabled => "disabled",
            UnitFileState::Invalid => "invalid",
            UnitFileState::Indirect => "indirect",
            UnitFileState::Generated => "generated",
            UnitFileState::Transient => "transient",
            UnitFileState::Bad => "bad",
        }
    }
}

/// Reads PHP-FPM's status page (`pm.status_path`, asked over FastCGI at its own
/// `pm.status_listen`, which answers while every worker of the pool is busy) every
/// `interval`, and holds on the last answer: while the listen queue is at least
/// `listenQueue`, the idle processes are at most `idleAtMost`, and (with
/// `maxChildrenReached`) the pool hit `pm.max_children` since an attempt last used a
/// reading; every one given must hold, and with none given `listenQueue: 1`.
/// `failures` reads in a row without an answer within `timeout` (or none at all) hold
/// too: a pool whose status cannot be read is in trouble. Each reading is evidence an
/// attempt uses up.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhpFpmCondition {
    /// `pm.status_listen`: `unix:/run/php/php8.2-fpm-status.sock` or `127.0.0.1:9001`.
    pub status: String,
    /// `pm.status_path`.
    #[serde(default = "defaults::fpm_status_path")]
    pub path: String,
    /// PHP reports the listen queue of a TCP listener only (on Linux a unix socket's
    /// reads 0): for a pool on a socket, use `idleAtMost`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "u32", range(min = 1, max = 1000000))]
    pub listen_queue: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "u32", range(max = 100000))]
    pub idle_at_most: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub max_children_reached: bool,
    /// Reads in a row without an answer that hold the condition.
    #[serde(default = "defaults::probe_failures")]
    #[schemars(range(min = 1, max = 1000))]
    pub failures: u32,
    #[serde(default = "defaults::fpm_status_interval", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub interval: Duration,
    #[serde(default = "defaults::fpm_status_timeout", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
}

/// Where a status page listens, as PHP-FPM's `pm.status_listen` or nginx's
/// `fastcgi_pass` writes it: `unix:/path` or `/path`, `HOST:PORT`, or a bare port
/// (asked on 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FpmStatusAddress {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl FpmStatusAddress {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid status address \"{text}\": {why}; write unix:/run/php/php8.2-fpm-status.sock or 127.0.0.1:9001")
        };
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if path.starts_with('/') {
            if path.contains('\0') || path.len() > 107 {
                return Err(bad("not a socket path"));
            }
            return Ok(FpmStatusAddress::Unix(PathBuf::from(path)));
        }
        if text.starts_with("unix:") {
            return Err(bad("a socket's path is absolute"));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => ("127.0.0.1", text),
        };
        let port = match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(bad("no port")),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(['/', ' ', '[', ']', '@']) {
            return Err(bad("no host"));
        }
        Ok(FpmStatusAddress::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

impl PhpFpmCondition {
    /// The listen queue that counts: as written, or 1 when nothing else is asked.
    pub fn listen_queue_at_least(&self) -> Option<u32> {
        match (
            self.listen_queue,
            self.idle_at_most,
            self.max_children_reached,
        ) {
            (Some(n), _, _) => Some(n),
            (None, None, false) => Some(1),
            _ => None,
        }
    }

    /// What the signal's events name this status page by: the address and the path,
    /// a space apart (a path has none), so two pages never share a name.
    pub fn source(&self) -> String {
        format!("{} {}", self.status, self.path)
    }
}

/// Holds after `failures` consecutive failed probes: no response, or a status in `status`.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCondition {
    pub url: HttpUrl,
    /// Statuses that count as a failure.
    #[serde(
        default = "defaults::probe_status",
        deserialize_with = "non_empty::statuses"
    )]
    #[schemars(length(min = 1), inner(range(min = 100, max = 599)))]
    pub status: Vec<u16>,
    /// Consecutive failures needed.
    #[serde(default = "defaults::probe_failures")]
    #[schemars(range(min = 1, max = 1000))]
    pub failures: u32,
    #[serde(default = "defaults::probe_interval", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub interval: Duration,
    #[serde(default = "defaults::probe_timeout", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
}

/// Holds when `pattern` (or the built-in pattern named by `match`) matched at least `count` lines of `path` within `within`.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(try_from = "LogConditionDoc", into = "LogConditionDoc")]
pub struct LogCondition {
    pub path: PathBuf,
    pub pattern: LogPattern,
    pub count: u32,
    pub within: Duration,
}

/// What a log condition looks for: the policy's own regex, or a built-in one by name.
#[derive(Debug, Clone)]
pub struct LogPattern {
    pub regex: Regex,
    /// The built-in pattern's name (`nginx.too_big_header`), if the policy used `match`.
    pub builtin: Option<&'static str>,
}

// `pattern` and `match` are alternatives, exactly one of them given.
/// Holds when `pattern` (or the built-in pattern named by `match`) matched at least `count` lines of `path` within `within`.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "LogCondition",
    extend("oneOf" = [{ "required": ["pattern"] }, { "required": ["match"] }])
)]
pub struct LogConditionDoc {
    /// Absolute path of the log file; followed across rotation and truncation.
    #[schemars(with = "String")]
    pub path: PathBuf,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "RegexSchema")]
    pub pattern: Option<String>,
    /// A built-in pattern, instead of `pattern`.
    #[serde(
        rename = "match",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "BuiltinPatternSchema")]
    pub builtin: Option<String>,
    #[serde(default = "defaults::log_count")]
    #[schemars(range(min = 1, max = 100000))]
    pub count: u32,
    #[serde(default = "defaults::log_within", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub within: Duration,
}

/// The names of the built-in log patterns.
struct BuiltinPatternSchema;

impl JsonSchema for BuiltinPatternSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BuiltinPattern".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let builtins: Vec<&str> = crate::policy::log_patterns::builtin_names().collect();
        schemars::json_schema!({ "type": "string", "enum": builtins })
    }
}

impl LogPattern {
    /// The policy's own regex.
    pub fn own(text: &str) -> Result<LogPattern, String> {
        match Regex::new(text) {
            Ok(regex) => Ok(LogPattern {
                regex,
                builtin: None,
            }),
            // The regex crate's message spans several lines with a caret diagram; keep
            // it, indented, after the position.
            Err(e) => Err(format!(
                "invalid regex: {}",
                e.to_string().replace('\n', "\n    ")
            )),
        }
    }

    /// A built-in pattern by name.
    pub fn builtin(name: &str) -> Result<LogPattern, String> {
        let Some(builtin) = crate::policy::log_patterns::builtin(name) else {
            let names: Vec<&str> = crate::policy::log_patterns::builtin_names().collect();
            return Err(super::decode::unknown_name(
                "built-in pattern",
                name,
                &names,
            ));
        };
        match Regex::new(builtin.regex) {
            Ok(regex) => Ok(LogPattern {
                regex,
                builtin: Some(builtin.name),
            }),
            // A test compiles every built-in pattern; this cannot happen in a release.
            Err(e) => Err(format!("built-in pattern {name} does not compile: {e}")),
        }
    }
}

pub const PATTERN_OR_MATCH: &str = "give either `pattern` or `match`, not both";
pub const PATTERN_NEEDED: &str =
    "a log condition needs `pattern` (a regex) or `match` (a built-in pattern)";

impl TryFrom<LogConditionDoc> for LogCondition {
    type Error = String;
    fn try_from(doc: LogConditionDoc) -> Result<Self, String> {
        let pattern = match (&doc.pattern, &doc.builtin) {
            (Some(text), None) => LogPattern::own(text)?,
            (None, Some(name)) => LogPattern::builtin(name)?,
            (Some(_), Some(_)) => return Err(PATTERN_OR_MATCH.into()),
            (None, None) => return Err(PATTERN_NEEDED.into()),
        };
        Ok(LogCondition {
            path: doc.path,
            pattern,
            count: doc.count,
            within: doc.within,
        })
    }
}

impl From<LogCondition> for LogConditionDoc {
    fn from(c: LogCondition) -> Self {
        let (pattern, builtin) = match c.pattern.builtin {
            Some(name) => (None, Some(name.to_string())),
            None => (Some(c.pattern.regex.as_str().to_string()), None),
        };
        LogConditionDoc {
            path: c.path,
            pattern,
            builtin,
            count: c.count,
            within: c.within,
        }
    }
}

/// A remediation step. systemd actions apply to the target unit.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Start(NoArgs),
    Stop(NoArgs),
    Restart(NoArgs),
    TryRestart(NoArgs),
    Reload(NoArgs),
    ResetFailed(NoArgs),
    // `kill:` with nothing after it sends the defaults, as `restart:` restarts.
    #[serde(deserialize_with = "kill_options")]
    Kill(KillArgs),
    Enable(NoArgs),
    Disable(NoArgs),
    #[serde(deserialize_with = "mapping")]
    Notify(NotifyArgs),
    #[serde(deserialize_with = "mapping")]
    Exec(ExecArgs),
    #[serde(deserialize_with = "mapping")]
    NginxEdit(NginxEditArgs),
    #[serde(deserialize_with = "mapping")]
    PhpFpmEdit(PhpFpmEditArgs),
    #[serde(deserialize_with = "mapping")]
    AlignFastcgiPass(AlignFastcgiPassArgs),
    /// A pod: delete it, for its controller to replace.
    DeletePod(NoArgs),
    /// A deployment or statefulset: replace its pods at the pace its strategy allows,
    /// as `kubectl rollout restart` does.
    RolloutRestart(NoArgs),
    #[serde(deserialize_with = "mapping")]
    Scale(ScaleArgs),
    #[serde(deserialize_with = "mapping")]
    RaiseMemoryLimit(RaiseMemoryLimitArgs),
    /// A node: mark it unschedulable; what runs there stays.
    Cordon(NoArgs),
    #[serde(deserialize_with = "mapping")]
    ConfigMapEdit(ConfigMapEditArgs),
    /// A load balancer's server: no new traffic; what it serves finishes.
    #[serde(deserialize_with = "mapping")]
    Drain(super::DrainArgs),
    /// A load balancer's server: traffic again.
    #[serde(deserialize_with = "mapping")]
    Ready(super::LbServerArgs),
    #[serde(deserialize_with = "mapping")]
    SetWeight(super::SetWeightArgs),
}

impl Action {
    /// Whether the action rewrites a config file (and so must be verified, and may not
    /// escalate).
    pub fn is_config_edit(&self) -> bool {
        matches!(
            self,
            Action::NginxEdit(_)
                | Action::PhpFpmEdit(_)
                | Action::AlignFastcgiPass(_)
                | Action::ConfigMapEdit(_)
        )
    }

    /// The action's name as written in a policy.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Start(_) => "start",
            Action::Stop(_) => "stop",
            Action::Restart(_) => "restart",
            Action::TryRestart(_) => "tryRestart",
            Action::Reload(_) => "reload",
            Action::ResetFailed(_) => "resetFailed",
            Action::Kill(_) => "kill",
            Action::Enable(_) => "enable",
            Action::Disable(_) => "disable",
            Action::Notify(_) => "notify",
            Action::Exec(_) => "exec",
            Action::NginxEdit(_) => "nginxEdit",
            Action::PhpFpmEdit(_) => "phpFpmEdit",
            Action::AlignFastcgiPass(_) => "alignFastcgiPass",
            Action::DeletePod(_) => "deletePod",
            Action::RolloutRestart(_) => "rolloutRestart",
            Action::Scale(_) => "scale",
            Action::RaiseMemoryLimit(_) => "raiseMemoryLimit",
            Action::ConfigMapEdit(_) => "configMapEdit",
            Action::Cordon(_) => "cordon",
            Action::Drain(_) => "drain",
            Action::Ready(_) => "ready",
            Action::SetWeight(_) => "setWeight",
        }
    }
}

fn kill_options<'de, D: serde::Deserializer<'de>>(d: D) -> Result<KillArgs, D::Error> {
    let options = Option::<super::serde_text::Mapping<KillArgs>>::deserialize(d)?;
    Ok(options.map(|m| m.0).unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Default, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KillArgs {
    #[serde(default)]
    pub signal: SignalName,
    /// Which processes of the unit get the signal.
    #[serde(default)]
    pub whom: KillWhom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KillWhom {
    #[default]
    All,
    Main,
    Control,
}

impl KillWhom {
    pub fn as_str(self) -> &'static str {
        match self {
            KillWhom::All => "all",
            KillWhom::Main => "main",
            KillWhom::Control => "control",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyArgs {
    pub webhook: HttpUrl,
    /// What the body looks like; `json` when left out.
    #[serde(default, skip_serializing_if = "NotifyFormat::is_json")]
    pub format: NotifyFormat,
    #[serde(default = "defaults::notify_timeout", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
}

/// The body a `notify` posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NotifyFormat {
    /// salve's own: `{policy, target, event, attemptId, attempts, message, at}`.
    #[default]
    Json,
    /// `{"text": …}`, as Slack's incoming webhooks (and Mattermost's, Rocket.Chat's)
    /// take it.
    Slack,
    /// One alert for Alertmanager's `POST /api/v2/alerts`: the webhook is that URL.
    Alertmanager,
}

impl NotifyFormat {
    pub const ALL: [NotifyFormat; 3] = [
        NotifyFormat::Json,
        NotifyFormat::Slack,
        NotifyFormat::Alertmanager,
    ];

    /// As a policy writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyFormat::Json => "json",
            NotifyFormat::Slack => "slack",
            NotifyFormat::Alertmanager => "alertmanager",
        }
    }

    fn is_json(&self) -> bool {
        *self == NotifyFormat::Json
    }
}

/// A workload's replicas, changed by `by` per attempt and kept within `min`..=`max`.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleArgs {
    /// Replicas added per attempt.
    #[serde(default = "defaults::scale_by")]
    #[schemars(range(min = 1, max = 100))]
    pub by: u32,
    #[serde(default = "defaults::scale_min")]
    #[schemars(range(max = 10000))]
    pub min: u32,
    #[schemars(range(min = 1, max = 10000))]
    pub max: u32,
}

/// One container's memory limit in a workload's pod template, multiplied by `factor`
/// per attempt (an OOMKilled container) and never past `max`.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RaiseMemoryLimitArgs {
    pub container: String,
    #[serde(default = "defaults::memory_factor")]
    #[schemars(range(min = 1.1, max = 16.0))]
    pub factor: f64,
    pub max: MemoryQuantity,
}

/// Raises or sets nginx directives in the blocks whose head is `context`, in one key
/// of a ConfigMap in the target's namespace (an nginx config file mounted into the
/// workload's pods), then restarts the workload's rollout so its pods read it.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapEditArgs {
    pub config_map: String,
    /// The key whose value is the nginx config, e.g. `default.conf`.
    pub key: String,
    /// The block's head as written, e.g. `http`, `server` or `location ~ \.php$`.
    pub context: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::serde_text::mapping_list"
    )]
    pub raise: Vec<RaiseDirective>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::serde_text::mapping_list"
    )]
    pub set: Vec<SetDirective>,
}

/// Runs a program directly (argv, never a shell string).
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecArgs {
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    #[serde(default = "defaults::exec_timeout", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
    /// Variables the program gets beside PATH, LANG and salve's own (SALVE_POLICY,
    /// SALVE_TARGET, SALVE_ATTEMPT_ID); nothing else of the agent's environment is passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "env_text")]
    #[schemars(with = "Vec<String>", extend("description" = "NAME=value pairs the program gets beside PATH, LANG and SALVE_POLICY, SALVE_TARGET, SALVE_ATTEMPT_ID; nothing else of the agent's environment is passed."))]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Verify {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "HttpVerify")]
    pub http: Option<HttpVerify>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "UnitVerify")]
    pub unit: Option<UnitVerify>,
    /// A Kubernetes target is ready again: a pod Ready (or, deleted, its controller's
    /// pods), a workload's rollout complete with every replica available, a node Ready.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_mapping"
    )]
    #[schemars(with = "ReadyVerify")]
    pub ready: Option<ReadyVerify>,
}

#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadyVerify {
    #[serde(default = "defaults::verify_ready_within", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub within: Duration,
}

/// Passes when the URL answers one of `status` within `within`.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpVerify {
    pub url: HttpUrl,
    #[serde(
        default = "defaults::verify_status",
        deserialize_with = "non_empty::statuses"
    )]
    #[schemars(length(min = 1), inner(range(min = 100, max = 599)))]
    pub status: Vec<u16>,
    #[serde(default = "defaults::verify_within", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub within: Duration,
}

/// Passes when the target unit reaches one of `activeState` within `within`.
#[derive(Debug, Clone, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitVerify {
    #[serde(
        default = "defaults::verify_active_state",
        deserialize_with = "non_empty::active_states"
    )]
    #[schemars(length(min = 1))]
    pub active_state: Vec<ActiveState>,
    #[serde(default = "defaults::verify_within", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub within: Duration,
}

/// Limits on how often a policy may act on its target.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Guard {
    /// Minimum gap between the starts of two attempts; must not exceed `window`.
    #[serde(default = "defaults::cooldown", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub cooldown: Duration,
    /// Attempts allowed within `window` before the circuit opens.
    #[serde(default = "defaults::max_attempts")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: u32,
    #[serde(default = "defaults::window", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub window: Duration,
    /// Cooldown multiplier after each failed attempt (the cooldown never grows past
    /// `window`).
    #[serde(default = "defaults::backoff")]
    #[schemars(range(min = 1.0, max = 10.0))]
    pub backoff: f64,
    /// For a selector: how many of its objects may be unhealthy at once (a count, or a
    /// percentage of those selected, rounded up); for a policy with a `fleet`, how many
    /// of the group's policies in this agent. Above it salve acts on none of them
    /// and escalates once: many objects failing together is an outage a restart will
    /// not fix, and restarting them all would make it worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<MaxUnhealthySchema>")]
    pub max_unhealthy: Option<MaxUnhealthy>,
    /// How long the selected objects must stay at or under `maxUnhealthy` after a storm
    /// before salve acts on any of them again.
    #[serde(
        default = "defaults::settle",
        with = "duration_text",
        skip_serializing_if = "defaults::is_default_settle"
    )]
    #[schemars(with = "DurationSchema")]
    pub settle: Duration,
}

/// `maxUnhealthy`: a number of objects, or a percentage of those selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnhealthy {
    Count(u32),
    Percent(u8),
}

impl MaxUnhealthy {
    /// The largest count accepted: far beyond any fleet, and far from overflow.
    pub const MAX_COUNT: u32 = 1_000_000;

    /// `3` or `30%`. Zero is refused: it would leave salve able only to escalate.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (digits, percent) = match text.strip_suffix('%') {
            Some(digits) => (digits.trim_end(), true),
            None => (text, false),
        };
        let bad = || {
            format!("invalid maxUnhealthy \"{text}\": write a count such as 3 or a percentage such as 30%")
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        match percent {
            true if (1..=100).contains(&n) => Ok(MaxUnhealthy::Percent(n as u8)),
            true => Err(format!(
                "maxUnhealthy {text} is out of range: expected 1% to 100%"
            )),
            false if (1..=u64::from(Self::MAX_COUNT)).contains(&n) => {
                Ok(MaxUnhealthy::Count(n as u32))
            }
            false => Err(format!(
                "maxUnhealthy {text} is out of range: expected 1 to {}",
                Self::MAX_COUNT
            )),
        }
    }

    /// How many of `selected` objects may be unhealthy at once. A percentage rounds up,
    /// as a PodDisruptionBudget's does, so a small fleet still has room for one.
    pub fn allowed(self, selected: u32) -> u32 {
        match self {
            MaxUnhealthy::Count(n) => n,
            MaxUnhealthy::Percent(p) => ((u64::from(selected) * u64::from(p)).div_ceil(100)) as u32,
        }
    }
}

impl std::fmt::Display for MaxUnhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxUnhealthy::Count(n) => write!(f, "{n}"),
            MaxUnhealthy::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for MaxUnhealthy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxUnhealthy::Count(n) => s.serialize_u32(*n),
            MaxUnhealthy::Percent(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for MaxUnhealthy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountOrPercent;
        impl serde::de::Visitor<'_> for CountOrPercent {
            type Value = MaxUnhealthy;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a count such as 3 or a percentage such as 30%")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxUnhealthy, E> {
                MaxUnhealthy::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MaxUnhealthy, E> {
                MaxUnhealthy::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MaxUnhealthy, E> {
                MaxUnhealthy::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(CountOrPercent)
    }
}

impl Default for Guard {
    fn default() -> Self {
        defaults::guard()
    }
}

/// `#[serde(with = "env_text")]`: an exec's environment as `NAME=value` strings.
mod env_text {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(env: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(env.iter().map(|(k, v)| format!("{k}={v}")))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| super::parse_env_var(text).map_err(D::Error::custom))
            .collect()
    }
}

/// One `NAME=value` of an exec's environment. Names are what a shell can export, so a
/// program reads them back as written.
pub fn parse_env_var(text: &str) -> Result<(String, String), String> {
    let valid_name = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match text.split_once('=') {
        Some((name, value)) if valid_name(name) && !value.contains('\0') => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!(
            "\"{text}\" is not NAME=value (a name of letters, digits and _, not starting with a digit)"
        )),
    }
}
