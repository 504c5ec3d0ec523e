//! What the operator watches: only the objects its policies name or select, each kind
//! in each namespace with the policy's own label or name selector, so the API server
//! sends (and salve holds) nothing else. A watch that ends (410 Gone after a long
//! disconnection, say) is relisted by kube's watcher; objects the relist no longer
//! shows are gone from that watch.
//!
//! An object leaves a label-selector watch when it is deleted and also when it loses
//! the labels, and two policies' watches may both see it: the engine hears that it is
//! gone only when no watch sees it any more.

use crate::engine::Event;
use crate::kubernetes::observe;
use crate::kubernetes::watched::{Deployment, Node, Pod, StatefulSet};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

mod plan;
pub use plan::plan;

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

/// A running watch's number: what each observation says it came from (a number, not
/// the spec, so an event costs no copy of its selector).
pub type WatchId = u32;

/// One observation, with the watch it came from.
pub struct Seen {
    pub watch: WatchId,
    pub event: Event,
}

/// How many watches list at once. Each listing holds its whole answer while it is
/// decoded; a thousand watches starting together (or relisting after the API server
/// restarted) would hold a thousand answers at once, and the process would keep that
/// memory for good.
const CONCURRENT_LISTINGS: usize = 4;

/// Objects per page of a listing (kube's default is 500): a page is held whole while it
/// is decoded, and 500 Pods with their `managedFields` are a few megabytes.
const LIST_PAGE: u32 = 100;

/// The watches that see one object: nearly always one, which takes no allocation.
#[derive(Debug)]
enum SeenBy {
    One(WatchId),
    Many(Vec<WatchId>),
}

impl SeenBy {
    fn add(&mut self, watch: WatchId) {
        match self {
            SeenBy::One(w) if *w == watch => {}
            SeenBy::One(w) => *self = SeenBy::Many(vec![*w, watch]),
            SeenBy::Many(ws) if !ws.contains(&watch) => ws.push(watch),
            SeenBy::Many(_) => {}
        }
    }

    /// Keeps the watches `keep` says; whether any is left.
    fn retain(&mut self, keep: impl Fn(WatchId) -> bool) -> bool {
        match self {
            SeenBy::One(w) => keep(*w),
            SeenBy::Many(ws) => {
                ws.retain(|&w| keep(w));
                !ws.is_empty()
            }
        }
    }
}

/// The watches running now, each a task sending its objects' observations, and which
/// watches see each object.
pub struct Watches {
    running: HashMap<WatchSpec, (WatchId, JoinHandle<()>)>,
    next_id: WatchId,
    /// The ids of `running`, for each observation to be checked against.
    live: std::collections::HashSet<WatchId>,
    seen_by: HashMap<String, SeenBy>,
    listing: Arc<Semaphore>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            running: HashMap::new(),
            next_id: 0,
            live: Default::default(),
            seen_by: HashMap::new(),
            listing: Arc::new(Semaphore::new(CONCURRENT_LISTINGS)),
        }
    }
}

impl Watches {
    /// Starts the watches of `wanted` not yet running and stops those not wanted.
    pub fn follow(
        &mut self,
        client: &Client,
        wanted: BTreeSet<WatchSpec>,
        events: &mpsc::Sender<Seen>,
    ) {
        self.running.retain(|spec, (_, task)| {
            let keep = wanted.contains(spec);
            if !keep {
                task.abort();
            }
            keep
        });
        // What only a stopped watch saw is forgotten here; the engine forgets it with
        // the policy that named it.
        self.live = self.running.values().map(|(id, _)| *id).collect();
        let live = &self.live;
        self.seen_by
            .retain(|_, watches| watches.retain(|w| live.contains(&w)));
        for spec in wanted {
            if self.running.contains_key(&spec) {
                continue;
            }
            tracing::info!(kind = ?spec.kind, namespace = ?spec.namespace, labels = ?spec.labels, name = ?spec.name, "watching");
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let task = start(
                client.clone(),
                &spec,
                id,
                events.clone(),
                self.listing.clone(),
            );
            self.running.insert(spec, (id, task));
            self.live.insert(id);
        }
    }

    /// What the engine hears of `seen`: an object one watch no longer shows is news
    /// only when no other watch shows it either.
    pub fn merge(&mut self, seen: Seen) -> Option<Event> {
        // Sent before its watch was stopped: what that watch saw is forgotten already,
        // and a replacing watch lists afresh.
        if !self.live.contains(&seen.watch) {
            return None;
        }
        let (key, deleted) = match &seen.event {
            Event::Pod(p) => (p.key(), p.deleted),
            Event::Workload(w) => (w.key(), w.deleted),
            Event::Node(n) => (n.key(), n.deleted),
            _ => return Some(seen.event),
        };
        let key = key.to_string();
        if !deleted {
            match self.seen_by.get_mut(&key) {
                Some(watches) => watches.add(seen.watch),
                None => {
                    self.seen_by.insert(key, SeenBy::One(seen.watch));
                }
            }
            return Some(seen.event);
        }
        if let Some(watches) = self.seen_by.get_mut(&key) {
            if watches.retain(|w| w != seen.watch) {
                return None;
            }
            self.seen_by.remove(&key);
        }
        Some(seen.event)
    }

    pub fn stop(&mut self) {
        for (_, (_, task)) in self.running.drain() {
            task.abort();
        }
        self.live.clear();
    }
}

/// A watch's identity: the spec it logs, the number its observations carry.
struct Watch {
    spec: WatchSpec,
    id: WatchId,
}

fn start(
    client: Client,
    spec: &WatchSpec,
    id: WatchId,
    events: mpsc::Sender<Seen>,
    listing: Arc<Semaphore>,
) -> JoinHandle<()> {
    let mut config = watcher::Config::default().page_size(LIST_PAGE);
    if let Some(labels) = &spec.labels {
        config = config.labels(labels);
    }
    if let Some(name) = &spec.name {
        config = config.fields(&format!("metadata.name={name}"));
    }
    let namespace = spec.namespace.clone();
    let watch = Watch {
        spec: spec.clone(),
        id,
    };
    match spec.kind {
        ObjectKind::Pods => tokio::spawn(follow(
            api::<Pod>(client, namespace),
            config,
            observe::pod,
            watch,
            events,
            listing,
        )),
        ObjectKind::Deployments => tokio::spawn(follow(
            api::<Deployment>(client, namespace),
            config,
            observe::deployment,
            watch,
            events,
            listing,
        )),
        ObjectKind::StatefulSets => tokio::spawn(follow(
            api::<StatefulSet>(client, namespace),
            config,
            observe::statefulset,
            watch,
            events,
            listing,
        )),
        ObjectKind::Nodes => tokio::spawn(follow(
            Api::<Node>::all(client),
            config,
            observe::node,
            watch,
            events,
            listing,
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
    watch: Watch,
    events: mpsc::Sender<Seen>,
    listing: Arc<Semaphore>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Default + Send + 'static,
    K::DynamicType: Default,
{
    use futures_util::StreamExt;
    // By name: a watch is of one namespace (or, of nodes, of none).
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut listed: Option<BTreeSet<String>> = None;
    // Held from `Init` (the watcher lists on its next poll) to `InitDone`.
    let mut listing_permit: Option<OwnedSemaphorePermit> = None;
    let stream = watcher(api, config).default_backoff();
    futures_util::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                // kube's watcher backs off and tries again; RBAC missing for this kind
                // shows here, on every try. Others list meanwhile.
                listing_permit = None;
                let spec = &watch.spec;
                tracing::warn!(kind = ?spec.kind, namespace = ?spec.namespace, labels = ?spec.labels, name = ?spec.name, error = %e, "watch failed; retrying");
                continue;
            }
        };
        let seen = match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                // While relisting, what it shows becomes what is known at its end.
                let name = object.name_any();
                match listed.as_mut() {
                    Some(listed) => listed.insert(name),
                    None => known.insert(name),
                };
                observe(&object, false)
            }
            watcher::Event::Delete(object) => {
                known.remove(&object.name_any());
                observe(&object, true)
            }
            watcher::Event::Init => {
                // A permit still held (a listing that failed) goes back before waiting.
                drop(listing_permit.take());
                // The semaphore is never closed.
                listing_permit = listing.clone().acquire_owned().await.ok();
                listed = Some(BTreeSet::new());
                continue;
            }
            watcher::Event::InitDone => {
                listing_permit = None;
                let Some(listed) = listed.take() else {
                    continue;
                };
                for name in known.difference(&listed) {
                    let mut gone = K::default();
                    gone.meta_mut().namespace = watch.spec.namespace.clone();
                    gone.meta_mut().name = Some(name.clone());
                    let seen = Seen {
                        watch: watch.id,
                        event: observe(&gone, true),
                    };
                    if events.send(seen).await.is_err() {
                        return;
                    }
                }
                known = listed;
                continue;
            }
        };
        let seen = Seen {
            watch: watch.id,
            event: seen,
        };
        if events.send(seen).await.is_err() {
            return;
        }
    }
    drop(listing_permit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::api_server::route;
    use std::time::Duration;

    #[tokio::test]
    async fn an_object_a_relist_after_410_gone_no_longer_shows_is_reported_deleted() {
        let (client, _requests) = route(super::super::tests::api_server());
        let (tx, mut rx) = mpsc::channel(16);
        let config = watcher::Config::default().labels("app=php");
        let spec = WatchSpec {
            kind: ObjectKind::Pods,
            namespace: Some("web".into()),
            labels: Some("app=php".into()),
            name: None,
        };
        let task = tokio::spawn(follow(
            api::<Pod>(client, Some("web".into())),
            config,
            observe::pod,
            Watch { spec, id: 0 },
            tx,
            Arc::new(Semaphore::new(1)),
        ));
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            match next {
                Ok(Some(Seen {
                    event: Event::Pod(p),
                    ..
                })) => seen.push((p.name, p.deleted)),
                Ok(Some(other)) => panic!("{:?} after {seen:?}", other.event),
                Ok(None) | Err(_) => panic!("no more events after {seen:?}"),
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

    #[test]
    fn an_object_is_gone_only_when_no_watch_sees_it() {
        // Two watches, `app=php` (0) and `tier=web` (1), both showing php-0.
        let seen = |watch: WatchId, deleted| Seen {
            watch,
            event: Event::Pod(crate::engine::PodObservation {
                namespace: "web".into(),
                name: "php-0".into(),
                labels: Default::default(),
                containers: Vec::new(),
                conditions: Default::default(),
                deleted,
            }),
        };
        let mut watches = Watches::default();
        watches.live.extend([0, 1]);
        assert!(watches.merge(seen(0, false)).is_some());
        assert!(watches.merge(seen(1, false)).is_some());
        // It lost `tier`: the other watch still sees it.
        assert!(watches.merge(seen(1, true)).is_none());
        assert!(matches!(
            watches.merge(seen(0, true)),
            Some(Event::Pod(p)) if p.deleted
        ));
        assert!(watches.seen_by.is_empty());
        // What a stopped watch sent before it stopped is not heard.
        watches.live.remove(&1);
        assert!(watches.merge(seen(1, false)).is_none());
    }
}
