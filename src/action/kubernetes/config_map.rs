//! `configMapEdit`: nginx directives raised or set in one key of a ConfigMap a workload
//! mounts, then the workload's rollout restarted so its pods read the new config, then
//! the policy's verification; the same planner and the same promise as `nginxEdit` on a
//! host: a change that does not verify is undone, and the original text goes back.
//!
//! There is no `nginx -t` in the operator's container: the edited text must parse as
//! nginx configuration before it is written, and the rollout itself is the real check
//! (a pod whose nginx refuses the config never becomes Ready, so `verify.ready` fails
//! and the original is restored). Each write carries the `resourceVersion` it read and
//! the text salve expects, so a change someone makes meanwhile is never overwritten.

use super::{api_failure, KubernetesObjects, Mode, Transient};
use crate::action::config_edit::diff;
use crate::action::config_edit::nginx::NginxPlanner;
use crate::action::config_edit::Planner;
use crate::action::{Acted, Executor, Failure};
use crate::policy::{ApplyWith, ConfigMapEditArgs, NginxEditArgs, Policy, TargetKey};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch};
use serde_json::json;
use std::path::PathBuf;

/// Why the ConfigMap could not be written as planned.
enum Refused {
    Api(kube::Error),
    /// The key holds something else than salve expects: someone changed it.
    Changed,
    /// No such key.
    NoKey,
}

impl Transient for Refused {
    fn transient(&self) -> Option<u16> {
        match self {
            Refused::Api(e) => e.transient(),
            _ => None,
        }
    }
}

impl From<kube::Error> for Refused {
    fn from(e: kube::Error) -> Self {
        Refused::Api(e)
    }
}

/// The ConfigMap, where it is, and the name its text goes by in the journal's diffs.
struct Place {
    api: Api<ConfigMap>,
    name: String,
    key: String,
    /// `configmap/NAMESPACE/NAME/KEY`.
    label: PathBuf,
}

impl Place {
    fn describe(&self, refused: Refused) -> Failure {
        let label = self.label.display();
        match refused {
            Refused::Api(kube::Error::Api(status)) if status.code == 404 => {
                Failure::failed(format!("no ConfigMap {label}: {}", status.message))
            }
            Refused::Api(kube::Error::Api(status)) => Failure::failed(format!(
                "the API server refused to change {label}: {} ({} {})",
                status.message, status.code, status.reason
            )),
            Refused::Api(other) => Failure::failed(format!(
                "could not reach the API server to change {label}: {other}"
            )),
            Refused::Changed => Failure::failed(format!(
                "{label} was changed by someone else while salve was editing it; their version was left in place"
            )),
            Refused::NoKey => Failure::failed(format!("{label}: the ConfigMap has no such key")),
        }
    }

    /// The key's text now.
    async fn read(&self, retry: super::Retry) -> Result<String, Refused> {
        retry
            .run(|| async {
                let map = self.api.get(&self.name).await?;
                map.data
                    .and_then(|mut d| d.remove(&self.key))
                    .ok_or(Refused::NoKey)
            })
            .await
    }

    /// Writes `text` over the key while it still holds one of `expected`; the read and
    /// the write are retried together, so a conflict reads afresh. A key that holds
    /// `text` already is written (a try whose answer was lost may have landed).
    async fn write(
        &self,
        retry: super::Retry,
        mode: Mode,
        expected: &[&str],
        text: &str,
    ) -> Result<(), Refused> {
        let params = mode.patch_params();
        retry
            .run(|| async {
                let map = self.api.get(&self.name).await?;
                let now = map.data.as_ref().and_then(|d| d.get(&self.key));
                match now {
                    None => return Err(Refused::NoKey),
                    Some(now) if now == text => return Ok(()),
                    Some(now) if !expected.contains(&now.as_str()) => return Err(Refused::Changed),
                    Some(_) => {}
                }
                let patch = json!({
                    "metadata": { "resourceVersion": map.metadata.resource_version },
                    "data": { &self.key: text }
                });
                self.api
                    .patch(&self.name, &params, &Patch::Merge(&patch))
                    .await?;
                Ok(())
            })
            .await
    }
}

/// The claim of one key's edit, given back when the edit ends however it ends.
struct Editing<'a> {
    keys: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    key: String,
}

impl<'a> Editing<'a> {
    fn claim(
        keys: &'a std::sync::Mutex<std::collections::HashSet<String>>,
        key: &str,
    ) -> Option<Editing<'a>> {
        let mut held = keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.insert(key.to_string()).then(|| Editing {
            keys,
            key: key.to_string(),
        })
    }
}

impl Drop for Editing<'_> {
    fn drop(&mut self) {
        let mut held = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.remove(&self.key);
    }
}

impl KubernetesObjects {
    /// Where the edit is, and the host planner's arguments for it.
    fn place_of(
        &self,
        key: &TargetKey,
        args: &ConfigMapEditArgs,
    ) -> Result<(Place, NginxEditArgs), Failure> {
        let namespace = match key {
            TargetKey::Deployment { namespace, .. } | TargetKey::StatefulSet { namespace, .. } => {
                namespace
            }
            _ => {
                return Err(Failure::failed(format!(
                    "`configMapEdit` cannot act on {key}"
                )))
            }
        };
        let place = Place {
            api: Api::namespaced(self.client.clone(), namespace),
            name: args.config_map.clone(),
            key: args.key.clone(),
            label: PathBuf::from(format!(
                "configmap/{namespace}/{}/{}",
                args.config_map, args.key
            )),
        };
        // The host's planner, on the key's text: `file` names it in messages and diffs;
        // the rest of nginxEdit's arguments are about a host and unused here.
        let nginx = NginxEditArgs {
            file: place.label.clone(),
            context: args.context.clone(),
            raise: args.raise.clone(),
            set: args.set.clone(),
            config: PathBuf::from("/"),
            unit: None,
            apply: ApplyWith::Reload,
        };
        Ok((place, nginx))
    }

    /// The edit's first step, in the API server's dry run: the key read, the step
    /// planned and parsed, the patch and the rollout restart sent with `dryRun=All`.
    pub(super) async fn rehearse_config_map_edit(
        &self,
        key: &TargetKey,
        args: &ConfigMapEditArgs,
    ) -> Result<String, Failure> {
        let (place, nginx) = self.place_of(key, args)?;
        let label = place.label.display();
        let original = place
            .read(self.retry)
            .await
            .map_err(|refused| place.describe(refused))?;
        let planned = match NginxPlanner::new(&nginx).next(&original) {
            Ok(Some(planned)) => planned,
            Ok(None) => {
                return Err(Failure {
                    timed_out: false,
                    not_applicable: true,
                    message: format!("{label} already holds what the edit would write"),
                })
            }
            Err(e) => return Err(Failure::failed(format!("{label}: {e}"))),
        };
        if let Err(e) = crate::webconf::nginx::parse(&place.label, &planned.text) {
            return Err(Failure::failed(format!(
                "internal: the edit of {label} would not parse ({e})"
            )));
        }
        place
            .write(self.retry, Mode::DryRun, &[&original], &planned.text)
            .await
            .map_err(|refused| place.describe(refused))?;
        self.restart_rollout_of(key, Mode::DryRun)
            .await
            .map_err(|e| api_failure(key, e))?;
        Ok(format!(
            "would edit {label}: {}, then restart the rollout of {key}",
            planned.summary
        ))
    }

    pub(super) async fn edit_config_map(
        &self,
        executor: &Executor<Self>,
        policy: &Policy,
        key: &TargetKey,
        args: &ConfigMapEditArgs,
    ) -> Acted {
        let (place, nginx) = match self.place_of(key, args) {
            Ok(found) => found,
            Err(failure) => return Acted::done(Err(failure)),
        };
        // One edit of a key at a time: a second would take the first one's unverified
        // text for the original, and could put it back.
        let label = place.label.display().to_string();
        let Some(_editing) = Editing::claim(&self.editing, &label) else {
            return Acted::done(Err(Failure::failed(format!(
                "another attempt is editing {label}; not edited"
            ))));
        };
        let original = match place.read(self.retry).await {
            Ok(text) => text,
            Err(refused) => return Acted::done(Err(place.describe(refused))),
        };
        let mut planner = NginxPlanner::new(&nginx);
        let mut current = original.clone();
        let mut steps: Vec<String> = Vec::new();
        // What the last verification saw, and whether it passed.
        let mut verified: Option<(bool, String)> = None;
        loop {
            let planned = match planner.next(&current) {
                Ok(Some(planned)) => planned,
                Ok(None) if steps.is_empty() => {
                    return Acted::done(Err(Failure {
                        timed_out: false,
                        not_applicable: true,
                        message: format!(
                            "{} already holds what the edit would write (every raise at its cap)",
                            place.label.display()
                        ),
                    }))
                }
                Ok(None) => break,
                Err(e) => {
                    let failure = Failure::failed(format!("{}: {e}", place.label.display()));
                    return self
                        .undo(&place, key, policy, &original, &[&current], failure)
                        .await;
                }
            };
            // What salve writes must read as nginx config; the rollout checks the rest.
            if let Err(e) = crate::webconf::nginx::parse(&place.label, &planned.text) {
                let failure = Failure::failed(format!(
                    "internal: the edit of {} would not parse ({e}); not written",
                    place.label.display()
                ));
                return self
                    .undo(&place, key, policy, &original, &[&current], failure)
                    .await;
            }
            if let Err(refused) = place
                .write(self.retry, Mode::Apply, &[&current], &planned.text)
                .await
            {
                // Refused by the API server, the write may have landed though its
                // answer was lost: either text is salve's to take back. Refused
                // before writing, only what salve wrote before is.
                let maybe_landed = matches!(refused, Refused::Api(_));
                let failure = place.describe(refused);
                let written: &[&str] = if maybe_landed {
                    &[&current, &planned.text]
                } else {
                    &[&current]
                };
                return self
                    .undo(&place, key, policy, &original, written, failure)
                    .await;
            }
            current = planned.text;
            steps.push(planned.summary);
            if let Err(e) = self.restart_rollout_of(key, Mode::Apply).await {
                let failure = api_failure(key, e);
                return self
                    .undo(&place, key, policy, &original, &[&current], failure)
                    .await;
            }
            verified = executor.verify(policy).await;
            // One step more while the verification fails and a raise has one.
            if verified.as_ref().is_none_or(|(passed, _)| *passed) {
                break;
            }
        }
        let diff = Some(diff::unified(&place.label, &original, &current));
        let after = if steps.len() == 1 { "it" } else { "each step" };
        let done = format!(
            "edited {}: {}; restarted the rollout of {key} after {after}",
            place.label.display(),
            steps.join("; "),
        );
        match verified {
            Some((false, seen)) => {
                let failure = Failure::failed(format!("{done}, which did not verify: {seen}"));
                self.undo(&place, key, policy, &original, &[&current], failure)
                    .await
            }
            verified => Acted {
                result: Ok(self.record(key, policy, "ConfigMapEdit", &done).await),
                diff,
                verified: verified.map(|(_, seen)| seen),
            },
        }
    }

    /// Puts the original text back, if the key holds one of the texts salve `written`
    /// and nobody has changed it since, and restarts the rollout again so the pods
    /// read it.
    async fn undo(
        &self,
        place: &Place,
        key: &TargetKey,
        policy: &Policy,
        original: &str,
        written: &[&str],
        failure: Failure,
    ) -> Acted {
        let Some(changed) = written.iter().rev().find(|w| **w != original) else {
            return Acted::done(Err(failure));
        };
        let diff = Some(diff::unified(&place.label, original, changed));
        let restored = match place
            .write(self.retry, Mode::Apply, written, original)
            .await
        {
            Ok(()) => match self.restart_rollout_of(key, Mode::Apply).await {
                Ok(()) => "the original text is back and the rollout restarted again".to_string(),
                Err(e) => format!(
                    "the original text is back, but restarting the rollout again failed: {}",
                    api_failure(key, e).message
                ),
            },
            Err(refused) => format!("NOT RESTORED: {}", place.describe(refused).message),
        };
        let undone = format!("undid its edit of {}: {restored}", place.label.display());
        let undone = self.record(key, policy, "ConfigMapEdit", &undone).await;
        Acted {
            result: Err(Failure {
                message: format!("{}; {undone}", failure.message),
                ..failure
            }),
            diff,
            verified: None,
        }
    }

    /// Restarts the workload's rollout: its pods read a mounted ConfigMap at start.
    async fn restart_rollout_of(&self, key: &TargetKey, mode: Mode) -> Result<(), kube::Error> {
        match key {
            TargetKey::Deployment { namespace, name } => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
                self.rollout_restart(&api, name, mode).await
            }
            TargetKey::StatefulSet { namespace, name } => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace);
                self.rollout_restart(&api, name, mode).await
            }
            _ => Ok(()),
        }
    }
}
