//! The second family: Kubernetes objects, through the API server. `restart` deletes a
//! pod (its controller replaces it) or restarts a workload's rollout the way
//! `kubectl rollout restart` does. Every change carries the field manager `salve` and
//! is recorded as a Kubernetes Event on its target (reason `SalveRemediation`).

mod changes;
mod config_map;
mod ready;
mod route;

use super::{Acted, Executor, Failure, Family};
use crate::policy::{Action, Policy, TargetKey, Verify};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use std::time::{Duration, SystemTime};

/// Who salve's changes and Events are from, as `managedFields` and `kubectl get events`
/// show it.
pub const FIELD_MANAGER: &str = "salve";
/// The reason of the Events salve records on what it changed.
pub const EVENT_REASON: &str = "SalveRemediation";
/// The pod-template annotation `kubectl rollout restart` sets: a new value is a new
/// template, so the workload's controller replaces its pods at the pace its rollout
/// strategy allows.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// How often a request the API server turned away for now (429, 5xx, a conflict) is
/// tried, and the pause before the first retry, doubled after each.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub tries: u32,
    pub first_pause: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            tries: 4,
            first_pause: Duration::from_millis(250),
        }
    }
}

/// An error that may pass if the request is made again.
pub trait Transient {
    /// The API server's status code when it said "not now": too many requests (429),
    /// a conflict with a change made meanwhile (409), or trouble on its side (5xx).
    fn transient(&self) -> Option<u16>;
}

impl Transient for kube::Error {
    fn transient(&self) -> Option<u16> {
        match self {
            kube::Error::Api(status)
                if status.code == 429 || status.code == 409 || status.code >= 500 =>
            {
                Some(status.code)
            }
            _ => None,
        }
    }
}

impl Retry {
    /// Runs `request`, again after a pause while its error is transient. A request
    /// that reads before it writes is retried whole, so a conflict reads afresh.
    pub async fn run<T, E, F, Fut>(self, mut request: F) -> Result<T, E>
    where
        E: Transient,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut pause = self.first_pause;
        let mut tries = 1;
        loop {
            match request().await {
                Err(e) if tries < self.tries && e.transient().is_some() => {
                    let code = e.transient().unwrap_or_default();
                    tracing::info!(
                        code,
                        tries,
                        "API server turned the request away; trying again"
                    );
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    tries += 1;
                }
                done => return done,
            }
        }
    }
}

/// A change made for real, or in the API server's own dry run (`dryRun=All`), which
/// runs admission, validation and RBAC and stores nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Apply,
    DryRun,
}

impl Mode {
    fn patch_params(self) -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            dry_run: self == Mode::DryRun,
            ..PatchParams::default()
        }
    }

    /// What a change did, or would do in a dry run.
    fn says(self, done: String, would: String) -> String {
        match self {
            Mode::Apply => done,
            Mode::DryRun => would,
        }
    }
}

/// `at` as the API server writes times, to the second: `2026-12-02T05:00:00Z`.
pub fn api_time(at: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(at)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

pub struct KubernetesObjects {
    client: Client,
    recorder: Recorder,
    retry: Retry,
    /// The wall clock the `restartedAt` value is read from (a fixed one in tests).
    clock: fn() -> SystemTime,
    /// How often `verify.ready` looks again.
    poll: Duration,
    /// Pods salve deleted whose verification has not run yet, oldest first.
    deleted: std::sync::Mutex<std::collections::VecDeque<(TargetKey, ready::Deleted)>>,
    /// The ConfigMap keys a `configMapEdit` is editing now.
    editing: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl KubernetesObjects {
    /// `instance` tells replicas apart in the Events (the pod's name).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        };
        KubernetesObjects {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            retry: Retry::default(),
            clock: SystemTime::now,
            poll: Duration::from_secs(2),
            deleted: std::sync::Mutex::default(),
            editing: std::sync::Mutex::default(),
        }
    }

    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }

    /// The one object an action changes: the engine acts on a selector's objects one
    /// by one, each named.
    fn one_object(&self, policy: &Policy, action: &Action) -> Result<TargetKey, Failure> {
        policy.target_key().ok_or_else(|| {
            Failure::failed(format!(
                "`{}` needs one object, and {} selects by label",
                action.name(),
                crate::engine::target_name(policy)
            ))
        })
    }

    /// A change's result, with the Event that records it when it was made.
    async fn recorded(
        &self,
        key: &TargetKey,
        policy: &Policy,
        action: &str,
        done: Result<String, Failure>,
    ) -> Result<String, Failure> {
        Ok(self.record(key, policy, action, &done?).await)
    }

    async fn restart(&self, policy: &Policy, mode: Mode) -> Result<String, Failure> {
        let key = self.one_object(policy, &Action::Restart(crate::policy::NoArgs))?;
        let done = match &key {
            TargetKey::Pod { namespace, name } => {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                let params = DeleteParams {
                    dry_run: mode == Mode::DryRun,
                    ..DeleteParams::default()
                };
                let deleted = self.retry.run(|| pods.delete(name, &params)).await;
                match deleted {
                    Ok(_) if mode == Mode::DryRun => format!("would delete {key}"),
                    Ok(answer) => {
                        // The API server answers with the pod (a Status once it is gone
                        // at once): its uid and owner tell its replacement.
                        if let Some(pod) = answer.left() {
                            let owner = pod
                                .metadata
                                .owner_references
                                .unwrap_or_default()
                                .into_iter()
                                .find(|o| o.controller == Some(true));
                            let uid = pod.metadata.uid;
                            self.remember_deleted(&key, ready::Deleted { uid, owner });
                        }
                        format!("deleted {key}")
                    }
                    // Gone already: what a restart of it asks for has happened.
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        format!("{key} was already gone")
                    }
                    Err(e) => return Err(api_failure(&key, e)),
                }
            }
            TargetKey::Deployment { namespace, name } => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
                self.rollout_restart(&api, name, mode)
                    .await
                    .map_err(|e| api_failure(&key, e))?;
                mode.says(
                    format!("restarted the rollout of {key}"),
                    format!("would restart the rollout of {key}"),
                )
            }
            TargetKey::StatefulSet { namespace, name } => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
                self.rollout_restart(&api, name, mode)
                    .await
                    .map_err(|e| api_failure(&key, e))?;
                mode.says(
                    format!("restarted the rollout of {key}"),
                    format!("would restart the rollout of {key}"),
                )
            }
            // Validation keeps `restart` to pods and workloads.
            TargetKey::Node { .. }
            | TargetKey::Unit(_)
            | TargetKey::Haproxy(_)
            | TargetKey::Nginx { .. } => {
                return Err(Failure::failed(format!("`restart` cannot act on {key}")))
            }
        };
        match mode {
            Mode::Apply => Ok(self.record(&key, policy, "Restart", &done).await),
            Mode::DryRun => Ok(done),
        }
    }

    /// `kubectl rollout restart`: a strategic merge patch of the template's annotation.
    async fn rollout_restart<K>(
        &self,
        api: &Api<K>,
        name: &str,
        mode: Mode,
    ) -> Result<(), kube::Error>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let at = api_time((self.clock)());
        let patch = serde_json::json!({
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } }
        });
        let params = mode.patch_params();
        let patch = Patch::Strategic(&patch);
        self.retry
            .run(|| api.patch(name, &params, &patch))
            .await
            .map(|_| ())
    }

    /// Records what salve did as an Event on the object; an Event the API server
    /// refuses costs the action nothing, and the journal says so.
    async fn record(&self, key: &TargetKey, policy: &Policy, action: &str, done: &str) -> String {
        let event = Event {
            type_: EventType::Normal,
            reason: EVENT_REASON.to_string(),
            note: Some(format!("salve policy {}: {done}", policy.name())),
            action: action.to_string(),
            secondary: None,
        };
        let Some(regarding) = reference(key) else {
            return done.to_string();
        };
        match self.recorder.publish(&event, &regarding).await {
            Ok(()) => done.to_string(),
            Err(e) => {
                tracing::warn!(target = %key, error = %e, "could not record the Event");
                format!("{done} (Event not recorded: {e})")
            }
        }
    }
}

/// The object an Event is about; a unit has none.
fn reference(key: &TargetKey) -> Option<ObjectReference> {
    let (api_version, kind, namespace, name) = match key {
        TargetKey::Pod { namespace, name } => ("v1", "Pod", Some(namespace), name),
        TargetKey::Deployment { namespace, name } => {
            ("apps/v1", "Deployment", Some(namespace), name)
        }
        TargetKey::StatefulSet { namespace, name } => {
            ("apps/v1", "StatefulSet", Some(namespace), name)
        }
        TargetKey::Node { name } => ("v1", "Node", None, name),
        TargetKey::Unit(_) | TargetKey::Haproxy(_) | TargetKey::Nginx { .. } => return None,
    };
    Some(ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        namespace: namespace.cloned(),
        name: Some(name.clone()),
        ..ObjectReference::default()
    })
}

fn api_failure(key: &TargetKey, e: kube::Error) -> Failure {
    api_failure_about(&key.to_string(), e)
}

fn api_failure_about(what: &str, e: kube::Error) -> Failure {
    let timed_out = matches!(&e, kube::Error::Api(status) if status.code == 504);
    let message = match e {
        kube::Error::Api(status) => format!(
            "the API server refused to change {what}: {} ({} {})",
            status.message, status.code, status.reason
        ),
        other => format!("could not reach the API server to change {what}: {other}"),
    };
    Failure {
        timed_out,
        not_applicable: false,
        message,
    }
}

impl Family for KubernetesObjects {
    async fn act<'a>(
        &'a self,
        executor: &'a Executor<Self>,
        policy: &'a Policy,
        action: &'a Action,
    ) -> Option<Acted> {
        match action {
            Action::Restart(_) | Action::DeletePod(_) | Action::RolloutRestart(_) => {
                Some(Acted::done(self.restart(policy, Mode::Apply).await))
            }
            Action::Scale(args) => Some(Acted::done(match self.one_object(policy, action) {
                Ok(key) => {
                    let done = self.scale(&key, args, Mode::Apply).await;
                    self.recorded(&key, policy, "Scale", done).await
                }
                Err(f) => Err(f),
            })),
            Action::RaiseMemoryLimit(args) => {
                Some(Acted::done(match self.one_object(policy, action) {
                    Ok(key) => {
                        let done = self.raise_memory_limit(&key, args, Mode::Apply).await;
                        self.recorded(&key, policy, "RaiseMemoryLimit", done).await
                    }
                    Err(f) => Err(f),
                }))
            }
            Action::ConfigMapEdit(args) => Some(match self.one_object(policy, action) {
                Ok(key) => self.edit_config_map(executor, policy, &key, args).await,
                Err(f) => Acted::done(Err(f)),
            }),
            Action::Cordon(_) => Some(Acted::done(match self.one_object(policy, action) {
                Ok(key) => {
                    let done = self.cordon(&key, Mode::Apply).await;
                    self.recorded(&key, policy, "Cordon", done).await
                }
                Err(f) => Err(f),
            })),
            _ => None,
        }
    }

    async fn weigh_route<'a>(
        &'a self,
        policy: &'a Policy,
        backend: &'a crate::policy::GatewayBackend,
        weight: crate::action::load_balancer::RouteWeight,
    ) -> Result<(String, crate::action::load_balancer::RouteWeights), Failure> {
        KubernetesObjects::weigh_route(self, policy, backend, weight, Mode::Apply).await
    }

    const REHEARSES: bool = true;

    async fn rehearse<'a>(
        &'a self,
        policy: &'a Policy,
        action: &'a Action,
    ) -> Option<Result<String, Failure>> {
        let mode = Mode::DryRun;
        let key = || self.one_object(policy, action);
        Some(match action {
            Action::Restart(_) | Action::DeletePod(_) | Action::RolloutRestart(_) => {
                self.restart(policy, mode).await
            }
            Action::Scale(args) => match key() {
                Ok(key) => self.scale(&key, args, mode).await,
                Err(f) => Err(f),
            },
            Action::RaiseMemoryLimit(args) => match key() {
                Ok(key) => self.raise_memory_limit(&key, args, mode).await,
                Err(f) => Err(f),
            },
            Action::ConfigMapEdit(args) => match key() {
                Ok(key) => self.rehearse_config_map_edit(&key, args).await,
                Err(f) => Err(f),
            },
            Action::Cordon(_) => match key() {
                Ok(key) => self.cordon(&key, mode).await,
                Err(f) => Err(f),
            },
            // The load-balancer actions on a route's backend; on a host's HAProxy or
            // nginx there is no dry run to send them through.
            Action::Drain(crate::policy::DrainArgs {
                gateway: Some(g), ..
            }) => self
                .weigh_route(
                    policy,
                    g,
                    crate::action::load_balancer::RouteWeight::Drain,
                    mode,
                )
                .await
                .map(|(line, _)| line),
            Action::Ready(crate::policy::LbServerArgs {
                gateway: Some(g), ..
            }) => self
                .weigh_route(
                    policy,
                    g,
                    crate::action::load_balancer::RouteWeight::Ready,
                    mode,
                )
                .await
                .map(|(line, _)| line),
            Action::SetWeight(crate::policy::SetWeightArgs {
                gateway: Some(g),
                weight: crate::policy::LbWeight::Absolute(w),
                ..
            }) => self
                .weigh_route(
                    policy,
                    g,
                    crate::action::load_balancer::RouteWeight::To(*w),
                    mode,
                )
                .await
                .map(|(line, _)| line),
            _ => return None,
        })
    }

    async fn verify_target<'a>(
        &'a self,
        policy: &'a Policy,
        verify: &'a Verify,
    ) -> Option<(bool, String)> {
        let ready = verify.ready.as_ref()?;
        Some(self.wait_ready(policy, ready.within).await)
    }
}

#[cfg(test)]
mod tests;
