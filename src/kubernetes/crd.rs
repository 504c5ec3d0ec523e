//! The `RemediationPolicy` custom resource (`salve.dev/v1alpha1`, namespaced): the same
//! spec as a host policy file, from the same types, plus the status the operator writes.
//!
//! kube-derive generates the root type and the CustomResourceDefinition; its schema is
//! the policy model's, rewritten by kube into a structural schema (and tested to be one,
//! in `tests/crd.rs`).

use kube::CustomResource;
use salve_core::policy::{Diagnostic, Diagnostics, Policy, PolicySpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a `RemediationPolicy` asks for: when the trigger fires on the target, run the
/// actions, verify they worked, within the guard's limits.
// Each printer column repeats `type_ = …`; clippy takes that for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "salve.dev",
    version = "v1alpha1",
    kind = "RemediationPolicy",
    namespaced,
    shortname = "rp",
    category = "salve",
    status = "RemediationPolicyStatus",
    doc = "A salve remediation policy: when the trigger fires on the target, run the actions, verify they worked, within the guard's limits.",
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.target"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Attempts",
        type_ = "integer",
        json_path = ".status.attempts",
        description = "Attempts within the guard's window"
    ),
    printcolumn(
        name = "Circuit",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"CircuitOpen\")].status",
        description = "True while the circuit is open and the policy does not act"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
// Transparent, so the resource's `spec` is exactly a policy file's `spec` (flatten would
// let unknown fields through).
#[serde(transparent)]
pub struct RemediationPolicySpec {
    pub policy: PolicySpec,
}

impl RemediationPolicy {
    /// The policy this resource stands for, validated like a file (every error at
    /// once, placed by JSON path). Deserializing the resource alone checks types only:
    /// read through this.
    pub fn to_policy(&self) -> Result<Policy, Diagnostics> {
        let origin = format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or("-"),
            self.metadata.name.as_deref().unwrap_or("-")
        );
        let object = serde_json::to_value(self).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: origin.clone().into(),
                pos: Default::default(),
                path: None,
                message: format!("cannot read the resource: {e}"),
            }])
        })?;
        salve_core::policy::decode_resource(&object, &origin)
    }
}

/// What the operator last saw and did for a policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the policy loaded and is watching its target) and `CircuitOpen`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<StatusCondition>,
    /// Attempts within the guard's window.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<LastAttempt>,
}

/// One condition, shaped like Kubernetes' own `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// One CamelCase word a program can match.
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// The most recent attempt and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastAttempt {
    pub attempt_id: u64,
    /// The object it acted on (`pod/web/php-0`): a selector's objects each have theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// RFC 3339.
    pub started: String,
    /// `ok`, `failed`, `timed_out`, …; absent while the attempt runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

type Definition =
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
type SchemaProps =
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;

/// The CustomResourceDefinition, as kube-derive builds it, with each `format` the API
/// server does not know (schemars' `uint32`, `regex`, …) replaced by the one it does or
/// dropped: the bounds that matter are `minimum` and `maximum`, which stay.
pub fn crd() -> Definition {
    let mut crd = <RemediationPolicy as kube::CustomResourceExt>::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            kubernetes_formats(schema);
        }
    }
    crd
}

/// Formats an API server validates (k8s.io/kube-openapi's list, less the exotic ones).
pub const KUBERNETES_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "duration",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "password",
];

fn kubernetes_formats(schema: &mut SchemaProps) {
    schema.format = match schema.format.take().as_deref() {
        Some("uint8" | "uint16" | "uint32" | "uint64" | "uint" | "int") => Some("int64".into()),
        Some(f) if KUBERNETES_FORMATS.contains(&f) => Some(f.to_string()),
        _ => None,
    };
    for sub in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        kubernetes_formats(sub);
    }
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => kubernetes_formats(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(kubernetes_formats)
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        kubernetes_formats(extra);
    }
    for list in [&mut schema.one_of, &mut schema.any_of, &mut schema.all_of] {
        list.iter_mut().flatten().for_each(kubernetes_formats);
    }
}

/// The definition as pretty JSON (which is also YAML: `kubectl apply -f` takes either).
pub fn crd_json() -> String {
    // Serializing a CustomResourceDefinition built in memory cannot fail.
    serde_json::to_string_pretty(&crd()).unwrap_or_default() + "\n"
}
