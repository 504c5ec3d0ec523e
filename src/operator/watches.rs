//! What the operator watches: only the objects its policies name or select, each kind
//! in each namespace with the policy's own label or name selector, so the API server
//! sends (and salve holds) nothing else. A watch that ends (410 Gone after a long
//! disconnection, say) is relisted by kube's watcher; objects the relist no longer
//! shows are reported deleted.

use crate::engine::Event;
use crate::kubernetes::observe;
use crate::policy::{Policy, Target, DEFAULT_NAMESPACE};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Pods,
    Deployments,
    StatefulSets,
    Nodes,
}

/// One watch: a kind, in a namespace (none for nodes), narrowed by labels or a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchSpec {
    pub kind: ObjectKind,
    pub namespace: Option<String>,
    /// A label selector, `app=php,tier=web`.
    pub labels: Option<String>,
    /// One object's name (a `metadata.name` field selector).
    pub name: Option<String>,
}

/// The watches `policies` need, one per distinct target.
pub fn plan(policies: &[Policy]) -> BTreeSet<WatchSpec> {
    let mut watches = BTreeSet::new();
    for policy in policies {
        let namespace = policy
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE);
        let labels = |selector: &std::collections::BTreeMap<String, String>| {
            (!selector.is_empty()).then(|| {
                selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        };
        let spec = match &policy.spec.target {
            Target::Unit(_) => continue,
            Target::Pods(s) | Target::Deployment(s) | Target::StatefulSet(s) => WatchSpec {
                kind: match &policy.spec.target {
                    Target::Pods(_) => ObjectKind::Pods,
                    Target::Deployment(_) => ObjectKind::Deployments,
                    _ => ObjectKind::StatefulSets,
                },
                namespace: Some(s.namespace.as_deref().unwrap_or(namespace).to_string()),
                labels: labels(&s.selector),
                name: s.name.clone(),
            },
            Target::Node(n) => WatchSpec {
                kind: ObjectKind::Nodes,
                namespace: None,
                labels: labels(&n.selector),
                name: n.name.clone(),
            },
        };
        watches.insert(spec);
    }
    watches
}

/// The watches running now, each a task sending its objects' observations.
#[derive(Default)]
pub struct Watches {
    running: HashMap<WatchSpec, JoinHandle<()>>,
}

impl Watches {
    /// Starts the watches of `wanted` not yet running and stops those not wanted.
    pub fn follow(
        &mut self,
        client: &Client,
        wanted: BTreeSet<WatchSpec>,
        events: &mpsc::Sender<Event>,
    ) {
        self.running.retain(|spec, task| {
            let keep = wanted.contains(spec);
            if !keep {
                task.abort();
            }
            keep
        });
        for spec in wanted {
            if self.running.contains_key(&spec) {
                continue;
            }
            tracing::info!(kind = ?spec.kind, namespace = ?spec.namespace, labels = ?spec.labels, name = ?spec.name, "watching");
            let task = start(client.clone(), &spec, events.clone());
            self.running.insert(spec, task);
        }
    }

    pub fn stop(&mut self) {
        for (_, task) in self.running.drain() {
            task.abort();
        }
    }
}

fn start(client: Client, spec: &WatchSpec, events: mpsc::Sender<Event>) -> JoinHandle<()> {
    let mut config = watcher::Config::default();
    if let Some(labels) = &spec.labels {
        config = config.labels(labels);
    }
    if let Some(name) = &spec.name {
        config = config.fields(&format!("metadata.name={name}"));
    }
    let namespace = spec.namespace.clone();
    match spec.kind {
        ObjectKind::Pods => tokio::spawn(follow(
            api::<Pod>(client, namespace),
            config,
            observe::pod,
            events,
        )),
        ObjectKind::Deployments => tokio::spawn(follow(
            api::<Deployment>(client, namespace),
            config,
            observe::deployment,
            events,
        )),
        ObjectKind::StatefulSets => tokio::spawn(follow(
            api::<StatefulSet>(client, namespace),
            config,
            observe::statefulset,
            events,
        )),
        ObjectKind::Nodes => tokio::spawn(follow(
            Api::<Node>::all(client),
            config,
            observe::node,
            events,
        )),
    }
}

fn api<K>(client: Client, namespace: Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client, &ns),
        None => Api::all(client),
    }
}

/// Sends each object the watch shows as an observation. An object a relist no longer
/// shows was deleted while the watch was down: it is reported deleted, from what is
/// left of it (its namespace and name), so its instance and state go.
async fn follow<K>(
    api: Api<K>,
    config: watcher::Config,
    observe: fn(&K, bool) -> Event,
    events: mpsc::Sender<Event>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Default + Send + 'static,
    K::DynamicType: Default,
{
    use futures_util::StreamExt;
    let mut known: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    let mut listed: Option<BTreeSet<(Option<String>, String)>> = None;
    let stream = watcher(api, config).default_backoff();
    futures_util::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "watch failed; retrying");
                continue;
            }
        };
        let seen = match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let id = (object.namespace(), object.name_any());
                if let Some(listed) = listed.as_mut() {
                    listed.insert(id.clone());
                }
                known.insert(id);
                observe(&object, false)
            }
            watcher::Event::Delete(object) => {
                known.remove(&(object.namespace(), object.name_any()));
                observe(&object, true)
            }
            watcher::Event::Init => {
                listed = Some(BTreeSet::new());
                continue;
            }
            watcher::Event::InitDone => {
                let Some(listed) = listed.take() else {
                    continue;
                };
                for (namespace, name) in known.difference(&listed) {
                    let mut gone = K::default();
                    gone.meta_mut().namespace = namespace.clone();
                    gone.meta_mut().name = Some(name.clone());
                    if events.send(observe(&gone, true)).await.is_err() {
                        return;
                    }
                }
                known = listed;
                continue;
            }
        };
        if events.send(seen).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::api_server::route;
    use std::path::Path;
    use std::time::Duration;

    #[tokio::test]
    async fn an_object_a_relist_after_410_gone_no_longer_shows_is_reported_deleted() {
        let (client, _requests) = route(super::super::tests::api_server());
        let (tx, mut rx) = mpsc::channel(16);
        let config = watcher::Config::default().labels("app=php");
        let task = tokio::spawn(follow(
            api::<Pod>(client, Some("web".into())),
            config,
            observe::pod,
            tx,
        ));
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            match next {
                Ok(Some(Event::Pod(p))) => seen.push((p.name, p.deleted)),
                other => panic!("{other:?} after {seen:?}"),
            }
        }
        task.abort();
        assert_eq!(
            seen,
            [
                ("php-0".to_string(), false),
                ("php-1".to_string(), false),
                // The watch ended with 410 Gone; the relist shows php-0 only.
                ("php-0".to_string(), false),
                ("php-1".to_string(), true),
            ]
        );
    }

    fn policies(yaml: &str) -> Vec<Policy> {
        let (found, errors) = crate::policy::parse_file(Path::new("p.yaml"), yaml);
        assert!(errors.is_empty(), "{errors:?}");
        found
    }

    #[test]
    fn each_target_is_one_watch_narrowed_to_its_objects() {
        let doc = |meta: &str, target: &str, trigger: &str| {
            format!("apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {meta}\nspec:\n  target: {target}\n  trigger:\n    - {trigger}\n  actions:\n    - notify: {{ webhook: \"http://am:9093/\" }}\n---\n")
        };
        let yaml = [
            doc(
                "{ name: a, namespace: web }",
                "{ pods: { selector: { app: php, tier: web } } }",
                "pod: { restarts: 3 }",
            ),
            doc(
                "{ name: b, namespace: web }",
                "{ pods: { selector: { tier: web, app: php } } }",
                "pod: { restarts: 5 }",
            ),
            doc(
                "{ name: c }",
                "{ deployment: { name: php } }",
                "workload: {}",
            ),
            doc(
                "{ name: d, namespace: web }",
                "{ statefulset: { namespace: db, name: mariadb } }",
                "workload: {}",
            ),
            doc(
                "{ name: e }",
                "{ node: { selector: { pool: web } } }",
                "node: {}",
            ),
        ]
        .concat();
        let watches: Vec<WatchSpec> = plan(&policies(&yaml)).into_iter().collect();
        let spec =
            |kind, namespace: Option<&str>, labels: Option<&str>, name: Option<&str>| WatchSpec {
                kind,
                namespace: namespace.map(String::from),
                labels: labels.map(String::from),
                name: name.map(String::from),
            };
        assert_eq!(
            watches,
            [
                spec(
                    ObjectKind::Pods,
                    Some("web"),
                    Some("app=php,tier=web"),
                    None
                ),
                spec(ObjectKind::Deployments, Some("default"), None, Some("php")),
                spec(ObjectKind::StatefulSets, Some("db"), None, Some("mariadb")),
                spec(ObjectKind::Nodes, None, Some("pool=web"), None),
            ]
        );
    }
}
