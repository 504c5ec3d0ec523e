//! salve's Kubernetes side: the `RemediationPolicy` custom resource and its definition.
//! The operator's runtime builds on these types.

mod crd;

pub use crd::{
    crd, crd_json, ConditionStatus, LastAttempt, RemediationPolicy, RemediationPolicySpec,
    RemediationPolicyStatus, StatusCondition, KUBERNETES_FORMATS,
};
