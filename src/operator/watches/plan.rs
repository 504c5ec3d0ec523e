//! Which watches the policies need: one per distinct target, and one-label selectors
//! of one key sharing set-based watches.

use super::{ObjectKind, WatchSpec};
use crate::policy::{label_selector, Policy, Target, DEFAULT_NAMESPACE};
use std::collections::{BTreeMap, BTreeSet};

/// How many values one set-based selector (`app in (a,b,…)`) carries on average:
/// enough that a thousand policies are a handful of watches, few enough that the
/// request stays short.
const SET_SELECTOR_VALUES: usize = 100;

/// The watches `policies` need, one per distinct target; policies selecting one kind
/// in one namespace by one label of the same key (`app=a`, `app=b`, …) share watches
/// with a set-based selector (`app in (a,b)`), which asks the API server for exactly
/// the same objects: a thousand such policies are ten watches, not a thousand (each
/// watch costs a connection, a task and its buffers).
pub fn plan(policies: &[Policy]) -> BTreeSet<WatchSpec> {
    let mut watches = BTreeSet::new();
    // (kind, namespace, label key) -> the values selected.
    let mut sets: BTreeMap<(ObjectKind, Option<String>, String), BTreeSet<String>> =
        BTreeMap::new();
    for policy in policies {
        let namespace = policy
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE);
        let (kind, namespace, selector, name) = match &policy.spec.target {
            Target::Unit(_) | Target::Haproxy(_) | Target::Nginx(_) => continue,
            Target::Pods(s) | Target::Deployment(s) | Target::StatefulSet(s) => (
                match &policy.spec.target {
                    Target::Pods(_) => ObjectKind::Pods,
                    Target::Deployment(_) => ObjectKind::Deployments,
                    _ => ObjectKind::StatefulSets,
                },
                Some(s.namespace.as_deref().unwrap_or(namespace).to_string()),
                &s.selector,
                &s.name,
            ),
            Target::Node(n) => (ObjectKind::Nodes, None, &n.selector, &n.name),
        };
        if name.is_none() && selector.len() == 1 {
            if let Some((key, value)) = selector.iter().next() {
                sets.entry((kind, namespace, key.clone()))
                    .or_default()
                    .insert(value.clone());
                continue;
            }
        }
        watches.insert(WatchSpec {
            kind,
            namespace,
            labels: (!selector.is_empty()).then(|| label_selector(selector)),
            name: name.clone(),
        });
    }
    for ((kind, namespace, key), values) in sets {
        // Each value goes to a bucket by a hash of its own text, so adding or removing
        // one policy changes one watch's selector, not every watch after it (only
        // when the bucket count doubles or halves do they all move).
        let buckets = values
            .len()
            .div_ceil(SET_SELECTOR_VALUES)
            .next_power_of_two();
        let mut grouped: Vec<Vec<&String>> = vec![Vec::new(); buckets];
        for value in &values {
            grouped[(stable_hash(value) % buckets as u64) as usize].push(value);
        }
        for group in grouped.into_iter().filter(|g| !g.is_empty()) {
            let labels = match group.as_slice() {
                [one] => format!("{key}={one}"),
                many => format!(
                    "{key} in ({})",
                    many.iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            };
            watches.insert(WatchSpec {
                kind,
                namespace: namespace.clone(),
                labels: Some(labels),
                name: None,
            });
        }
    }
    watches
}

/// FNV-1a: the same bucket for a value in every run and every build (std's hasher
/// promises neither), so a restart plans the same watches.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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

        // One label of one key, many values: one set-based watch per hundred values.
        let many: String = (0..150)
            .map(|i| {
                doc(
                    &format!("{{ name: s{i:03}, namespace: web }}"),
                    &format!("{{ pods: {{ selector: {{ app: svc-{i:03} }} }} }}"),
                    "pod: { restarts: 3 }",
                )
            })
            .collect();
        let lone = doc(
            "{ name: lone, namespace: web }",
            "{ pods: { selector: { tier: db } } }",
            "pod: { restarts: 3 }",
        );
        let watches: Vec<WatchSpec> = plan(&policies(&(many + &lone))).into_iter().collect();
        // 150 values: two buckets, each value in the one its hash names, each
        // bucket's values in order; the lone two-label-free selector stays its own.
        let bucket = |b: u64| -> String {
            let values: Vec<String> = (0..150)
                .map(|i| format!("svc-{i:03}"))
                .filter(|v| stable_hash(v) % 2 == b)
                .collect();
            assert!((50..=100).contains(&values.len()), "{}", values.len());
            format!("app in ({})", values.join(","))
        };
        let mut expected = vec![
            spec(ObjectKind::Pods, Some("web"), Some(&bucket(0)), None),
            spec(ObjectKind::Pods, Some("web"), Some(&bucket(1)), None),
            spec(ObjectKind::Pods, Some("web"), Some("tier=db"), None),
        ];
        expected.sort();
        assert_eq!(watches, expected);
        // One policy more changes one watch, not both.
        let more = doc(
            "{ name: s150, namespace: web }",
            "{ pods: { selector: { app: svc-150 } } }",
            "pod: { restarts: 3 }",
        );
        let yaml: String = (0..150)
            .map(|i| {
                doc(
                    &format!("{{ name: s{i:03}, namespace: web }}"),
                    &format!("{{ pods: {{ selector: {{ app: svc-{i:03} }} }} }}"),
                    "pod: { restarts: 3 }",
                )
            })
            .collect::<String>()
            + &lone
            + &more;
        let after = plan(&policies(&yaml));
        let kept = expected.iter().filter(|w| after.contains(*w)).count();
        assert_eq!(kept, 2, "{after:?}");
    }
}
