//! What a policy acts on: a systemd unit on the host, a load balancer's server, or
//! Kubernetes pods, a workload or a node in a cluster, by name or by label selector.

use super::names::UnitName;
use super::serde_text::present;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What a policy acts on. A selector selects many objects; each gets a guard of its own.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// A systemd unit on this host (`salve agent`).
    Unit(UnitName),
    /// Pods, by name or by label selector.
    #[serde(deserialize_with = "super::serde_text::mapping")]
    Pods(Selection),
    #[serde(deserialize_with = "super::serde_text::mapping")]
    Deployment(Selection),
    #[serde(
        rename = "statefulset",
        deserialize_with = "super::serde_text::mapping"
    )]
    StatefulSet(Selection),
    /// A node, by name or by label selector (nodes have no namespace).
    #[serde(deserialize_with = "super::serde_text::mapping")]
    Node(NodeSelection),
    /// A HAProxy backend's server, as the load balancer's own agent sees it: probed
    /// over HTTP, drained and given its weight back through the admin socket.
    #[serde(deserialize_with = "super::serde_text::mapping")]
    Haproxy(super::HaproxyServer),
    /// A server of an nginx `upstream` block, as the load balancer's own agent sees
    /// it: probed over HTTP, drained and given its weight back by editing its line.
    #[serde(deserialize_with = "super::serde_text::mapping")]
    Nginx(super::NginxUpstreamServer),
}

/// The target kinds as a policy spells them.
pub const TARGET_KINDS: &[&str] = &[
    "unit",
    "pods",
    "deployment",
    "statefulset",
    "node",
    "haproxy",
    "nginx",
];

/// Namespaced objects of one kind: one by `name`, or all with the `selector`'s labels.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selection {
    /// The namespace; a custom resource's own when absent, else `default`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String")]
    pub namespace: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String")]
    pub name: Option<String>,
    /// Every object carrying all these labels (a `matchLabels` selector).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// Nodes: one by `name`, or all with the `selector`'s labels.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelection {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// The namespace of a namespaced target written without one, outside a custom resource.
pub const DEFAULT_NAMESPACE: &str = "default";

impl Target {
    /// The kind as written: `unit`, `pods`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Unit(_) => "unit",
            Target::Pods(_) => "pods",
            Target::Deployment(_) => "deployment",
            Target::StatefulSet(_) => "statefulset",
            Target::Node(_) => "node",
            Target::Haproxy(_) => "haproxy",
            Target::Nginx(_) => "nginx",
        }
    }

    /// A load balancer's server: the policy of the load balancer's own agent.
    pub fn is_load_balancer(&self) -> bool {
        matches!(self, Target::Haproxy(_) | Target::Nginx(_))
    }

    /// The nginx upstream server, for a load balancer's target.
    pub fn nginx(&self) -> Option<&super::NginxUpstreamServer> {
        match self {
            Target::Nginx(n) => Some(n),
            _ => None,
        }
    }

    /// A Kubernetes object the operator acts on through the API server.
    pub fn is_kubernetes(&self) -> bool {
        matches!(
            self,
            Target::Pods(_) | Target::Deployment(_) | Target::StatefulSet(_) | Target::Node(_)
        )
    }

    /// The HAProxy server, for a load balancer's target.
    pub fn haproxy(&self) -> Option<&super::HaproxyServer> {
        match self {
            Target::Haproxy(h) => Some(h),
            _ => None,
        }
    }

    /// The unit, for a systemd target.
    pub fn unit(&self) -> Option<&UnitName> {
        match self {
            Target::Unit(u) => Some(u),
            _ => None,
        }
    }

    /// The one object a target names; `None` for a selector, whose objects are known
    /// only as they are seen. `namespace` stands in where the target names none.
    pub fn key(&self, namespace: &str) -> Option<TargetKey> {
        let in_ns = |s: &Selection| {
            let ns = s.namespace.as_deref().unwrap_or(namespace).to_string();
            s.name.clone().map(|name| (ns, name))
        };
        Some(match self {
            Target::Unit(u) => TargetKey::Unit(u.clone()),
            Target::Pods(s) => {
                let (namespace, name) = in_ns(s)?;
                TargetKey::Pod { namespace, name }
            }
            Target::Deployment(s) => {
                let (namespace, name) = in_ns(s)?;
                TargetKey::Deployment { namespace, name }
            }
            Target::StatefulSet(s) => {
                let (namespace, name) = in_ns(s)?;
                TargetKey::StatefulSet { namespace, name }
            }
            Target::Node(n) => TargetKey::Node {
                name: n.name.clone()?,
            },
            Target::Haproxy(h) => TargetKey::Haproxy(h.clone()),
            Target::Nginx(n) => TargetKey::Nginx {
                file: n.file.clone(),
                upstream: n.upstream.clone(),
                server: n.server.clone(),
            },
        })
    }
}

impl Target {
    /// Whether the target selects objects by label, rather than naming one.
    pub fn is_selector(&self) -> bool {
        match self {
            Target::Unit(_) | Target::Haproxy(_) | Target::Nginx(_) => false,
            Target::Pods(s) | Target::Deployment(s) | Target::StatefulSet(s) => {
                s.name.is_none() && !s.selector.is_empty()
            }
            Target::Node(n) => n.name.is_none() && !n.selector.is_empty(),
        }
    }

    /// The labels a selector target requires; `None` for a target naming one object.
    pub fn selector_labels(&self) -> Option<&BTreeMap<String, String>> {
        if !self.is_selector() {
            return None;
        }
        match self {
            Target::Unit(_) | Target::Haproxy(_) | Target::Nginx(_) => None,
            Target::Pods(s) | Target::Deployment(s) | Target::StatefulSet(s) => Some(&s.selector),
            Target::Node(n) => Some(&n.selector),
        }
    }

    /// Whether this selector target selects the object `key` carrying `labels`:
    /// the same kind, in the selector's namespace (`namespace` standing in where it
    /// names none), with every label of the selector. A target naming one object
    /// selects nothing this way: its object is known by its key.
    pub fn selects(
        &self,
        key: &TargetKey,
        labels: &BTreeMap<String, String>,
        namespace: &str,
    ) -> bool {
        let has_labels = |selector: &BTreeMap<String, String>| {
            !selector.is_empty()
                && selector
                    .iter()
                    .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
        };
        let in_selection = |s: &Selection, ns: &str| {
            s.name.is_none()
                && s.namespace.as_deref().unwrap_or(namespace) == ns
                && has_labels(&s.selector)
        };
        match (self, key) {
            (Target::Pods(s), TargetKey::Pod { namespace, .. })
            | (Target::Deployment(s), TargetKey::Deployment { namespace, .. })
            | (Target::StatefulSet(s), TargetKey::StatefulSet { namespace, .. }) => {
                in_selection(s, namespace)
            }
            (Target::Node(n), TargetKey::Node { .. }) => {
                n.name.is_none() && has_labels(&n.selector)
            }
            _ => false,
        }
    }

    /// The target naming exactly the object `key`: what one of a selector's objects is
    /// acted on as.
    pub fn named(key: &TargetKey) -> Target {
        let one = |namespace: &str, name: &str| Selection {
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            selector: BTreeMap::new(),
        };
        match key {
            TargetKey::Unit(u) => Target::Unit(u.clone()),
            TargetKey::Pod { namespace, name } => Target::Pods(one(namespace, name)),
            TargetKey::Deployment { namespace, name } => Target::Deployment(one(namespace, name)),
            TargetKey::StatefulSet { namespace, name } => Target::StatefulSet(one(namespace, name)),
            TargetKey::Node { name } => Target::Node(NodeSelection {
                name: Some(name.clone()),
                selector: BTreeMap::new(),
            }),
            TargetKey::Haproxy(h) => Target::Haproxy(h.clone()),
            // A key knows the server, not how nginx is checked and reloaded: those are
            // the defaults here (only a selector's objects are made from keys, and an
            // nginx server is never one).
            TargetKey::Nginx {
                file,
                upstream,
                server,
            } => Target::Nginx(super::NginxUpstreamServer {
                file: file.clone(),
                upstream: upstream.clone(),
                server: server.clone(),
                config: super::defaults::nginx_conf(),
                unit: super::defaults::nginx_unit(),
            }),
        }
    }
}

impl Target {
    /// The target in words, `namespace` standing in where it names none:
    /// `php8.2-fpm.service`, `pod/web/php-0`, `pods web/app=php`, `node/worker-1`.
    pub fn describe(&self, namespace: &str) -> String {
        if let Some(key) = self.key(namespace) {
            return key.to_string();
        }
        let labels = label_selector;
        match self {
            Target::Pods(s) | Target::Deployment(s) | Target::StatefulSet(s) => format!(
                "{} {}/{}",
                self.kind(),
                s.namespace.as_deref().unwrap_or(namespace),
                labels(&s.selector)
            ),
            Target::Node(n) => format!("node {}", labels(&n.selector)),
            // A unit and a load balancer's server always have a key (above).
            Target::Unit(u) => u.to_string(),
            Target::Haproxy(_) | Target::Nginx(_) => String::new(),
        }
    }
}

/// A `matchLabels` map as a label selector's text, `app=php,tier=web`: how the
/// journal names a selector, and what a watch asks the API server for.
pub fn label_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Target {
    /// As `describe`, in the `default` namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(DEFAULT_NAMESPACE))
    }
}

/// One thing a guard protects: a unit, a pod, a workload, a node. The engine and the
/// journal know it by its text (`php8.2-fpm.service`, `pod/web/php-0`, `node/worker-1`,
/// see `engine::target_name`) and never look inside; `parse` reads the text back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKey {
    Unit(UnitName),
    Pod {
        namespace: String,
        name: String,
    },
    Deployment {
        namespace: String,
        name: String,
    },
    StatefulSet {
        namespace: String,
        name: String,
    },
    Node {
        name: String,
    },
    /// `haproxy:BACKEND/SERVER@SOCKET`: two HAProxies on one host may share names.
    Haproxy(super::HaproxyServer),
    /// `nginx:UPSTREAM/SERVER@FILE`: the server line of one upstream in one file.
    Nginx {
        file: std::path::PathBuf,
        upstream: String,
        server: String,
    },
}

impl TargetKey {
    /// Reads the journal's text back; a unit is written bare, as it always was.
    pub fn parse(text: &str) -> Option<TargetKey> {
        // HAProxy's names hold no `/` or `@`: the first of each ends them.
        if let Some(rest) = text.strip_prefix("haproxy:") {
            let (names, socket) = rest.split_once('@')?;
            let (backend, server) = names.split_once('/')?;
            let fits = |n: &str| super::load_balancer::haproxy_name(n, "").is_ok();
            if !fits(backend) || !fits(server) || !socket.starts_with('/') {
                return None;
            }
            return Some(TargetKey::Haproxy(super::HaproxyServer {
                socket: socket.into(),
                backend: backend.to_string(),
                server: server.to_string(),
                level: Default::default(),
            }));
        }
        // An upstream's name holds no `/`; a server's address may (`unix:/run/a.sock`)
        // and the file is absolute: the last `@/` ends the server.
        if let Some(rest) = text.strip_prefix("nginx:") {
            let (names, file) = rest.rsplit_once("@/")?;
            let (upstream, server) = names.split_once('/')?;
            super::load_balancer::plain_name(upstream, "").ok()?;
            super::load_balancer::upstream_address(server).ok()?;
            return Some(TargetKey::Nginx {
                file: format!("/{file}").into(),
                upstream: upstream.to_string(),
                server: server.to_string(),
            });
        }
        let mut parts = text.splitn(3, '/');
        let (kind, a, b) = (parts.next()?, parts.next(), parts.next());
        let namespaced = |ns: Option<&str>, name: Option<&str>| {
            let present = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(String::from);
            Some((present(ns)?, present(name)?))
        };
        Some(match kind {
            "pod" => {
                let (namespace, name) = namespaced(a, b)?;
                TargetKey::Pod { namespace, name }
            }
            "deployment" => {
                let (namespace, name) = namespaced(a, b)?;
                TargetKey::Deployment { namespace, name }
            }
            "statefulset" => {
                let (namespace, name) = namespaced(a, b)?;
                TargetKey::StatefulSet { namespace, name }
            }
            "node" if b.is_none() => TargetKey::Node {
                name: a.filter(|n| !n.is_empty())?.to_string(),
            },
            _ => TargetKey::Unit(UnitName::parse(text).ok()?),
        })
    }
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetKey::Unit(u) => write!(f, "{u}"),
            TargetKey::Pod { namespace, name } => write!(f, "pod/{namespace}/{name}"),
            TargetKey::Deployment { namespace, name } => {
                write!(f, "deployment/{namespace}/{name}")
            }
            TargetKey::StatefulSet { namespace, name } => {
                write!(f, "statefulset/{namespace}/{name}")
            }
            TargetKey::Node { name } => write!(f, "node/{name}"),
            TargetKey::Haproxy(h) => write!(
                f,
                "haproxy:{}/{}@{}",
                h.backend,
                h.server,
                h.socket.display()
            ),
            TargetKey::Nginx {
                file,
                upstream,
                server,
            } => write!(f, "nginx:{upstream}/{server}@{}", file.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_what_they_write() {
        let keys = [
            TargetKey::Unit(UnitName::parse("php8.2-fpm.service").unwrap()),
            TargetKey::Pod {
                namespace: "web".into(),
                name: "php-0".into(),
            },
            TargetKey::Deployment {
                namespace: "web".into(),
                name: "php".into(),
            },
            TargetKey::StatefulSet {
                namespace: "db".into(),
                name: "mariadb".into(),
            },
            TargetKey::Node {
                name: "worker-1".into(),
            },
            TargetKey::Haproxy(crate::policy::HaproxyServer {
                socket: "/run/haproxy/admin.sock".into(),
                backend: "web".into(),
                server: "node-b".into(),
                level: Default::default(),
            }),
            TargetKey::Nginx {
                file: "/etc/nginx/conf.d/lb.conf".into(),
                upstream: "web".into(),
                server: "10.0.0.2:8080".into(),
            },
            TargetKey::Nginx {
                file: "/etc/nginx/conf.d/l@b.conf".into(),
                upstream: "pools".into(),
                server: "unix:/run/php/a@b.sock".into(),
            },
        ];
        for key in keys {
            assert_eq!(
                TargetKey::parse(&key.to_string()),
                Some(key.clone()),
                "{key}"
            );
        }
        assert_eq!(TargetKey::parse("pod/web"), None);
        assert_eq!(TargetKey::parse("pod//php-0"), None);
        assert_eq!(TargetKey::parse("node/a/b"), None);
        assert_eq!(TargetKey::parse("node/"), None);
        assert_eq!(TargetKey::parse("nginx"), None);
    }

    #[test]
    fn a_named_target_is_one_key_and_a_selector_none() {
        let pods = |name: Option<&str>, ns: Option<&str>| {
            Target::Pods(Selection {
                namespace: ns.map(String::from),
                name: name.map(String::from),
                selector: BTreeMap::from([("app".to_string(), "php".to_string())]),
            })
        };
        assert_eq!(
            pods(Some("php-0"), None).key("shop"),
            Some(TargetKey::Pod {
                namespace: "shop".into(),
                name: "php-0".into()
            })
        );
        assert_eq!(
            pods(Some("php-0"), Some("web"))
                .key("shop")
                .map(|k| k.to_string()),
            Some("pod/web/php-0".to_string())
        );
        assert_eq!(pods(None, Some("web")).key("shop"), None);
        assert_eq!(pods(None, Some("web")).to_string(), "pods web/app=php");
        assert_eq!(pods(None, None).describe("shop"), "pods shop/app=php");
        assert_eq!(pods(Some("php-0"), None).describe("shop"), "pod/shop/php-0");
        let node = Target::Node(NodeSelection {
            name: Some("worker-1".into()),
            selector: BTreeMap::new(),
        });
        assert_eq!(
            node.key("x").map(|k| k.to_string()),
            Some("node/worker-1".into())
        );
        assert_eq!(node.kind(), "node");
    }

    #[test]
    fn a_selector_selects_its_kind_in_its_namespace_with_all_its_labels() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let selection = |namespace: Option<&str>| Selection {
            namespace: namespace.map(String::from),
            name: None,
            selector: labels(&[("app", "php"), ("tier", "")]),
        };
        let pod = |ns: &str| TargetKey::Pod {
            namespace: ns.into(),
            name: "php-0".into(),
        };
        let all = labels(&[("app", "php"), ("tier", ""), ("extra", "x")]);
        let pods = Target::Pods(selection(None));
        assert!(pods.is_selector());
        assert!(pods.selects(&pod("shop"), &all, "shop"));
        assert!(
            !pods.selects(&pod("web"), &all, "shop"),
            "another namespace"
        );
        assert!(!pods.selects(&pod("shop"), &labels(&[("app", "php")]), "shop"));
        assert!(!pods.selects(
            &pod("shop"),
            &labels(&[("app", "php"), ("tier", "x")]),
            "shop"
        ));
        let in_web = Target::Pods(selection(Some("web")));
        assert!(
            in_web.selects(&pod("web"), &all, "shop"),
            "its own namespace wins"
        );
        let workload = TargetKey::Deployment {
            namespace: "shop".into(),
            name: "php-0".into(),
        };
        assert!(!pods.selects(&workload, &all, "shop"), "another kind");
        assert!(Target::Deployment(selection(None)).selects(&workload, &all, "shop"));
        let node = TargetKey::Node {
            name: "worker-1".into(),
        };
        let nodes = Target::Node(NodeSelection {
            name: None,
            selector: labels(&[("pool", "web")]),
        });
        assert!(nodes.selects(&node, &labels(&[("pool", "web")]), "shop"));
        assert!(!nodes.selects(&node, &all, "shop"));
        // A named target selects nothing by label; its object is known by its key.
        let named = Target::named(&pod("shop"));
        assert!(!named.is_selector());
        assert!(!named.selects(&pod("shop"), &all, "shop"));
        assert_eq!(named.key("elsewhere"), Some(pod("shop")));
        for key in [pod("web"), workload, node] {
            assert_eq!(Target::named(&key).key("x"), Some(key));
        }
    }
}
