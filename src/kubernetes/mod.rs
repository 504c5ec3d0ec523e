//! salve's Kubernetes side: the `RemediationPolicy` custom resource and its definition,
//! and Kubernetes objects as the engine hears them. The operator's runtime builds on
//! these; what acts on objects is `action::kubernetes`.

#[cfg(test)]
pub(crate) mod api_server;
mod crd;
pub mod observe;
pub mod watched;

pub use crd::{
    crd, crd_json, ConditionStatus, LastAttempt, RemediationPolicy, RemediationPolicySpec,
    RemediationPolicyStatus, StatusCondition, KUBERNETES_FORMATS,
};
