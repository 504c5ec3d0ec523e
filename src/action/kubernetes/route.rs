//! A Gateway API `HTTPRoute`'s backend as a load-balancer server: its weight in every
//! rule that sends traffic to the Service, read and written through the API server.
//! k8s-openapi has no Gateway API types, so the route is a `DynamicObject` and only
//! the fields salve changes are looked at.
//!
//! A change is a merge patch of `spec.rules` with the route's `resourceVersion`, so a
//! route changed meanwhile is a 409 and the change is read and made again; a JSON patch
//! could address the weights alone, but kube's needs a crate of its own, and the
//! resourceVersion makes the whole list exact anyway. Field manager `salve`.

use super::{KubernetesObjects, Mode, Transient, FIELD_MANAGER};
use crate::action::load_balancer::{RouteWeight, RouteWeights};
use crate::action::Failure;
use crate::policy::{GatewayBackend, Policy, Target};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{json, Value};

/// What the Gateway API calls a backendRef's weight when it writes none.
const DEFAULT_WEIGHT: u64 = 1;

fn http_route() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

/// The namespace of the route: the backend's own, else the target's, else the
/// policy's.
fn namespace_of(policy: &Policy, backend: &GatewayBackend) -> String {
    let target = match &policy.spec.target {
        Target::Pods(s) | Target::Deployment(s) | Target::StatefulSet(s) => s.namespace.clone(),
        _ => None,
    };
    backend
        .namespace
        .clone()
        .or(target)
        .or_else(|| policy.metadata.namespace.clone())
        .unwrap_or_else(|| crate::policy::DEFAULT_NAMESPACE.to_string())
}

enum Refused {
    Api(kube::Error),
    /// The route is not as the policy says, or the change would leave a rule nothing.
    Route(String),
}

impl Transient for Refused {
    fn transient(&self) -> Option<u16> {
        match self {
            Refused::Api(e) => e.transient(),
            Refused::Route(_) => None,
        }
    }
}

impl From<kube::Error> for Refused {
    fn from(e: kube::Error) -> Self {
        Refused::Api(e)
    }
}

/// The backendRefs of `rules` that name the backend: (rule, ref, weight).
fn refs_of(rules: &[Value], backend: &GatewayBackend) -> Vec<(usize, usize, u64)> {
    let mut found = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let refs = rule["backendRefs"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        for (j, r) in refs.iter().enumerate() {
            let service = r["kind"].as_str().is_none_or(|k| k == "Service")
                && r["group"].as_str().is_none_or(str::is_empty);
            let port = backend
                .port
                .is_none_or(|p| r["port"].as_u64() == Some(u64::from(p)));
            if service && port && r["name"].as_str() == Some(backend.service.as_str()) {
                found.push((i, j, r["weight"].as_u64().unwrap_or(DEFAULT_WEIGHT)));
            }
        }
    }
    found
}

/// Refuses a drain that would leave a rule no backend with weight.
fn keep_one_serving(
    rules: &[Value],
    refs: &[(usize, usize, u64)],
    what: &str,
) -> Result<(), Refused> {
    for &(i, j, _) in refs {
        let others: u64 = rules[i]["backendRefs"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != j && !refs.iter().any(|&(ri, rj, _)| ri == i && rj == *k))
            .map(|(_, r)| r["weight"].as_u64().unwrap_or(DEFAULT_WEIGHT))
            .sum();
        if others == 0 {
            return Err(Refused::Route(format!(
                "refused to drain {what}: rule {i} of the route sends traffic to no other backend"
            )));
        }
    }
    Ok(())
}

impl KubernetesObjects {
    /// Sets the backend's weight in every rule that names it; the journal line (the
    /// weights before and after) and the weights it had.
    pub(super) async fn weigh_route(
        &self,
        policy: &Policy,
        backend: &GatewayBackend,
        weight: RouteWeight,
        mode: Mode,
    ) -> Result<(String, RouteWeights), Failure> {
        let namespace = namespace_of(policy, backend);
        let what = format!("{}", crate::policy::LbServer::Gateway(backend)).replacen(
            "HTTPRoute ",
            &format!("HTTPRoute {namespace}/"),
            1,
        );
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &namespace, &http_route());
        let changed = self
            .retry
            .run(|| async {
                let route = api.get(&backend.route).await?;
                let rules: Vec<Value> = route.data["spec"]["rules"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let refs = refs_of(&rules, backend);
                if refs.is_empty() {
                    return Err(Refused::Route(format!(
                        "{what}: no rule of the route sends traffic to that Service"
                    )));
                }
                let before: Vec<u64> = refs.iter().map(|&(_, _, w)| w).collect();
                let all = |w: u64| vec![w; refs.len()];
                let to: Vec<u64> = match &weight {
                    RouteWeight::Drain | RouteWeight::To(0) => {
                        keep_one_serving(&rules, &refs, &what)?;
                        all(0)
                    }
                    RouteWeight::To(w) => all(u64::from(*w)),
                    // Back to taking traffic: the weight it had, or the default after 0.
                    RouteWeight::Ready => all(before
                        .iter()
                        .copied()
                        .max()
                        .unwrap_or(0)
                        .max(DEFAULT_WEIGHT)),
                    RouteWeight::Back { had, step, of } => {
                        // Someone changed the route's rules since the drain: each ref
                        // gets a share of the largest weight there was.
                        let largest = had.iter().copied().max().unwrap_or(DEFAULT_WEIGHT);
                        (0..refs.len())
                            .map(|m| {
                                let full = if had.len() == refs.len() {
                                    had[m]
                                } else {
                                    largest
                                };
                                let part = full * u64::from(*step) / u64::from((*of).max(1));
                                if full == 0 {
                                    0
                                } else {
                                    part.max(1)
                                }
                            })
                            .collect()
                    }
                };
                let mut rules = rules;
                for (&(i, j, _), w) in refs.iter().zip(&to) {
                    rules[i]["backendRefs"][j]["weight"] = json!(w);
                }
                let patch = json!({
                    "metadata": { "resourceVersion": route.metadata.resource_version },
                    "spec": { "rules": rules }
                });
                let params = PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    dry_run: mode == Mode::DryRun,
                    ..PatchParams::default()
                };
                api.patch(&backend.route, &params, &Patch::Merge(&patch))
                    .await?;
                Ok((before, to))
            })
            .await
            .map_err(|refused| match refused {
                Refused::Api(e) => super::api_failure_about(&what, e),
                Refused::Route(message) => Failure::failed(message),
            })?;
        let (before, to) = changed;
        let shown = |ws: &[u64]| {
            let mut ws: Vec<String> = ws.iter().map(u64::to_string).collect();
            // One weight set everywhere is said once.
            ws.dedup();
            ws.join(", ")
        };
        let (was, now) = (
            before
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            shown(&to),
        );
        let line = mode.says(
            format!("{what}: weight {was} -> {now}"),
            format!("would set {what}: weight {was} -> {now}"),
        );
        Ok((line, RouteWeights(before)))
    }
}
