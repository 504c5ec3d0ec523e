//! Decodes one YAML document into a [`Policy`], reporting every problem with its position.
//! The field lists here are the contract; `schema.rs` tests that the JSON Schema derived
//! from `model.rs` names exactly the same fields.

mod config_edit;
mod trigger;

#[cfg(test)]
pub(crate) use config_edit::{
    ALIGN_FASTCGI_PASS_FIELDS, CONFIG_MAP_EDIT_FIELDS, NGINX_EDIT_FIELDS, PHP_FPM_EDIT_FIELDS,
    RAISE_DIRECTIVE_FIELDS, RAISE_KEY_FIELDS, SET_DIRECTIVE_FIELDS, SET_KEY_FIELDS,
};

use super::decode::{Decoder, Fields, Noun};
use super::defaults;
use super::model::*;
use super::names::{HttpUrl, PolicyName, SignalName, UnitName};
use super::rules;
use super::schema_types::NoArgs;
use super::yaml::Node;
use crate::policy::{
    DrainArgs, FleetGuard, FleetLockKind, GatewayBackend, HaproxyServer, LbServerArgs, LbWeight,
    NginxUpstreamServer, Ramp, SetWeightArgs,
};
use std::time::Duration;

pub(crate) const POLICY_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
pub(crate) const METADATA_FIELDS: &[&str] = &["name", "namespace", "labels", "annotations"];
pub(crate) const SPEC_FIELDS: &[&str] = &[
    "target", "trigger", "actions", "verify", "guard", "escalate", "dryRun", "fleet", "pause",
];
pub(crate) const FLEET_FIELDS: &[&str] = &["group", "maxConcurrent", "lock"];
pub(crate) const SELECTION_FIELDS: &[&str] = &["namespace", "name", "selector"];
pub(crate) const NODE_SELECTION_FIELDS: &[&str] = &["name", "selector"];
pub(crate) const TRIGGER_FIELDS: &[&str] = &[
    "unit", "http", "log", "pod", "workload", "node", "alert", "phpFpm", "for",
];
pub(crate) const ALERT_CONDITION_FIELDS: &[&str] = &["name", "labels"];
pub(crate) const PHP_FPM_CONDITION_FIELDS: &[&str] = &[
    "status",
    "path",
    "listenQueue",
    "idleAtMost",
    "maxChildrenReached",
    "failures",
    "interval",
    "timeout",
];
pub(crate) const POD_CONDITION_FIELDS: &[&str] = &["reason", "restarts", "condition", "status"];
pub(crate) const WORKLOAD_CONDITION_FIELDS: &[&str] = &["unavailable", "condition", "status"];
pub(crate) const NODE_CONDITION_FIELDS: &[&str] = &["condition", "status"];
pub(crate) const UNIT_CONDITION_FIELDS: &[&str] = &["activeState", "subState", "unitFileState"];
pub(crate) const HTTP_CONDITION_FIELDS: &[&str] =
    &["url", "status", "failures", "interval", "timeout"];
pub(crate) const LOG_CONDITION_FIELDS: &[&str] = &["path", "pattern", "match", "count", "within"];
pub(crate) const ACTION_KINDS: &[&str] = &[
    "start",
    "stop",
    "restart",
    "tryRestart",
    "reload",
    "resetFailed",
    "kill",
    "enable",
    "disable",
    "notify",
    "exec",
    "nginxEdit",
    "phpFpmEdit",
    "alignFastcgiPass",
    "deletePod",
    "rolloutRestart",
    "scale",
    "raiseMemoryLimit",
    "cordon",
    "configMapEdit",
    "drain",
    "ready",
    "setWeight",
];
pub(crate) const LB_SERVER_FIELDS: &[&str] = &["haproxy", "nginx", "gateway"];
pub(crate) const DRAIN_FIELDS: &[&str] = &["haproxy", "nginx", "gateway", "ramp"];
pub(crate) const RAMP_FIELDS: &[&str] = &["steps", "interval"];
pub(crate) const HAPROXY_SERVER_FIELDS: &[&str] = &["socket", "backend", "server", "level"];
pub(crate) const SET_WEIGHT_FIELDS: &[&str] = &["haproxy", "nginx", "gateway", "weight"];
pub(crate) const GATEWAY_BACKEND_FIELDS: &[&str] = &["namespace", "route", "service", "port"];
pub(crate) const NGINX_UPSTREAM_FIELDS: &[&str] = &["file", "upstream", "server", "config", "unit"];
pub(crate) const SCALE_FIELDS: &[&str] = &["by", "min", "max"];
pub(crate) const RAISE_MEMORY_FIELDS: &[&str] = &["container", "factor", "max"];
pub(crate) const KILL_FIELDS: &[&str] = &["signal", "whom"];
pub(crate) const NOTIFY_FIELDS: &[&str] = &["webhook", "format", "timeout"];
pub(crate) const EXEC_FIELDS: &[&str] = &["command", "timeout", "env"];
pub(crate) const VERIFY_FIELDS: &[&str] = &["http", "unit", "ready"];
pub(crate) const READY_VERIFY_FIELDS: &[&str] = &["within"];
pub(crate) const HTTP_VERIFY_FIELDS: &[&str] = &["url", "status", "within"];
pub(crate) const UNIT_VERIFY_FIELDS: &[&str] = &["activeState", "within"];
pub(crate) const GUARD_FIELDS: &[&str] = &[
    "cooldown",
    "maxAttempts",
    "window",
    "backoff",
    "maxUnhealthy",
    "settle",
];

const TRIGGERS: Noun = Noun::new("trigger condition", "trigger conditions");
const ACTIONS: Noun = Noun::new("action", "actions");

/// Decodes a policy document; `None` when any error was reported to `dec`.
pub fn policy(dec: &mut Decoder, doc: &Node) -> Option<PolicyDraft> {
    let before = dec.errors.len();
    // A custom resource exported from a cluster also has the status the operator wrote.
    let known: Vec<&str> = POLICY_FIELDS.iter().copied().chain(["status"]).collect();
    let f = dec.fields(doc, "the policy", &known)?;
    expect_value(dec, &f, "apiVersion", API_VERSION);
    expect_value(dec, &f, "kind", KIND);
    let metadata = f.required(dec, "metadata").and_then(|n| metadata(dec, n));
    let spec = f.required(dec, "spec").and_then(|n| spec(dec, n));
    if dec.errors.len() > before {
        return None;
    }
    Some(PolicyDraft {
        metadata: metadata?,
        spec: spec?,
        name_pos: name_position(f.get("metadata")).unwrap_or(f.pos),
    })
}

/// Where a broken rule points: the value at `at`, else at `or_at`, else the deepest
/// value written on the way to `at` (a rule broken by a default).
pub fn position_of(doc: &Node, v: &super::Violation) -> super::yaml::Pos {
    let (node, complete) = node_at(doc, &v.at);
    if complete {
        return node.pos;
    }
    match v.or_at.as_ref().map(|p| node_at(doc, p)) {
        Some((other, true)) => other.pos,
        _ => node.pos,
    }
}

/// The node at `path`, or the deepest one on the way there (and `false`).
fn node_at<'n>(doc: &'n Node, path: &super::FieldPath) -> (&'n Node, bool) {
    use super::yaml::Value;
    let mut node = doc;
    for step in &path.0 {
        let next = match (step, &node.value) {
            (super::Step::Key(key), Value::Map(entries)) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
                .map(|(_, v)| v),
            (super::Step::Index(i), Value::Seq(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return (node, false),
        }
    }
    (node, true)
}

/// Checks that the required field `key` is exactly `expected`.
fn expect_value(dec: &mut Decoder, f: &Fields<'_>, key: &str, expected: &str) {
    let Some(n) = f.required(dec, key) else {
        return;
    };
    if let Some(v) = dec.string(n) {
        if v != expected {
            dec.error(
                n.pos,
                format!("unsupported {key} \"{v}\": expected \"{expected}\""),
            );
        }
    }
}

/// A decoded policy before cross-file checks (duplicate names) and its source are known.
pub struct PolicyDraft {
    pub metadata: Metadata,
    pub spec: PolicySpec,
    pub name_pos: super::yaml::Pos,
}

pub(super) fn parsed<T>(
    dec: &mut Decoder,
    node: &Node,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    let text = dec.string(node)?;
    parse(&text).map_err(|e| dec.error(node.pos, e)).ok()
}

/// Where the policy's name is written: the place a person looks for the policy.
fn name_position(metadata: Option<&Node>) -> Option<super::yaml::Pos> {
    let super::yaml::Value::Map(entries) = &metadata?.value else {
        return metadata.map(|n| n.pos);
    };
    entries
        .iter()
        .find(
            |(k, _)| matches!(&k.value, super::yaml::Value::Scalar { text, .. } if text == "name"),
        )
        .map(|(_, v)| v.pos)
}

fn metadata(dec: &mut Decoder, node: &Node) -> Option<Metadata> {
    let known: Vec<&str> = METADATA_FIELDS
        .iter()
        .chain(SERVER_SET_METADATA)
        .copied()
        .collect();
    let f = dec.fields(node, "metadata", &known)?;
    let name = f
        .required(dec, "name")
        .and_then(|n| parsed(dec, n, PolicyName::parse));
    let namespace = optional(f.get("namespace").map(|n| dec.string(n)));
    let labels = opt(dec, &f, "labels", Default::default(), |d, n| {
        string_map(d, n, "labels")
    });
    let annotations = opt(dec, &f, "annotations", Default::default(), |d, n| {
        string_map(d, n, "annotations")
    });
    Some(Metadata {
        name: name?,
        namespace: namespace?,
        labels: labels?,
        annotations: annotations?,
    })
}

/// A mapping of strings to strings: labels, annotations.
pub(super) fn string_map(
    dec: &mut Decoder,
    node: &Node,
    what: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let super::yaml::Value::Map(entries) = &node.value else {
        dec.error(
            node.pos,
            format!("expected a mapping of {what}, found {}", node.describe()),
        );
        return None;
    };
    let mut map = std::collections::BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        // A key is text whatever it looks like: JSON (and so the API server) has no
        // other keys, and `1: x` reaches it as "1".
        let key = match &k.value {
            super::yaml::Value::Scalar { text, .. } => Some(text.clone()),
            _ => dec.string(k),
        };
        match (key, dec.string(v)) {
            (Some(key), Some(v)) => {
                if map.insert(key.clone(), v).is_some() {
                    dec.error(k.pos, format!("duplicate key `{key}` in {what}"));
                    ok = false;
                }
            }
            _ => ok = false,
        }
    }
    ok.then_some(map)
}

fn spec(dec: &mut Decoder, node: &Node) -> Option<PolicySpec> {
    let f = dec.fields(node, "spec", SPEC_FIELDS)?;
    let target = f.required(dec, "target").and_then(|n| target(dec, n));
    let trigger = f
        .required(dec, "trigger")
        .and_then(|n| dec.non_empty_list(n, TRIGGERS, trigger::trigger));
    let actions = f
        .required(dec, "actions")
        .and_then(|n| dec.non_empty_list(n, ACTIONS, action));
    let verify = optional(f.get("verify").map(|n| verify(dec, n)));
    let guard = f.get("guard").map(|n| guard(dec, n));
    let escalate = f.get("escalate").map(|n| dec.list(n, ACTIONS, action));
    let dry_run = f.get("dryRun").map(|n| dec.bool(n));
    let fleet = optional(f.get("fleet").map(|n| fleet(dec, n)));
    let pause = optional(f.get("pause").map(|n| pause(dec, n)));
    Some(PolicySpec {
        target: target?,
        trigger: trigger?,
        actions: actions?,
        verify: verify?,
        guard: guard.unwrap_or_else(|| Some(defaults::guard()))?,
        escalate: escalate.unwrap_or_else(|| Some(Vec::new()))?,
        dry_run: dry_run.unwrap_or(Some(false))?,
        fleet: fleet?,
        pause: pause?,
    })
}

pub(crate) const PAUSE_FIELDS: &[&str] = &["until", "reason"];

/// The checks on its text are the validation pass's (both readers share them).
fn pause(dec: &mut Decoder, node: &Node) -> Option<crate::policy::SpecPause> {
    let f = dec.fields(node, "pause", PAUSE_FIELDS)?;
    let until = f.required(dec, "until").and_then(|n| dec.string(n));
    let reason = f.required(dec, "reason").and_then(|n| dec.string(n));
    Some(crate::policy::SpecPause {
        until: until?,
        reason: reason?,
    })
}

fn fleet(dec: &mut Decoder, node: &Node) -> Option<FleetGuard> {
    use crate::policy::load_balancer::plain_name;
    let f = dec.fields(node, "fleet", FLEET_FIELDS)?;
    let group = f
        .required(dec, "group")
        .and_then(|n| dec.checked_string(n, |t| plain_name(t, "fleet group")));
    let max_concurrent = opt(
        dec,
        &f,
        "maxConcurrent",
        defaults::fleet_max_concurrent(),
        |d, n| {
            let text = d.text_or_integer(n)?;
            crate::policy::FleetSlots::parse(&text)
                .map_err(|e| d.error(n.pos, e))
                .ok()
        },
    );
    let lock = f.required(dec, "lock").and_then(|n| {
        let text = dec.string(n)?;
        let kinds = [FleetLockKind::Etcd, FleetLockKind::Local];
        match kinds.into_iter().find(|k| k.as_str() == text) {
            Some(kind) => Some(kind),
            None => {
                let names = kinds.map(FleetLockKind::as_str);
                dec.error(
                    n.pos,
                    super::decode::unknown_name("fleet lock", &text, &names),
                );
                None
            }
        }
    });
    Some(FleetGuard {
        group: group?,
        max_concurrent: max_concurrent?,
        lock: lock?,
    })
}

fn target(dec: &mut Decoder, node: &Node) -> Option<Target> {
    let f = dec.fields(node, "target", TARGET_KINDS)?;
    let kinds: Vec<&str> = TARGET_KINDS
        .iter()
        .copied()
        .filter(|k| f.get(k).is_some())
        .collect();
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => {
            if !f.had_unknown {
                dec.error(
                    f.pos,
                    format!("a target needs one of: {}", TARGET_KINDS.join(", ")),
                );
            }
            return None;
        }
        _ => {
            dec.error(
                f.pos,
                format!("a target names one kind, found {}", kinds.join(" and ")),
            );
            return None;
        }
    };
    let value = f.get(kind)?;
    if kind == "unit" {
        return Some(Target::Unit(parsed(dec, value, UnitName::parse)?));
    }
    if kind == "haproxy" {
        return Some(Target::Haproxy(haproxy_server(dec, value)?));
    }
    if kind == "nginx" {
        return Some(Target::Nginx(nginx_upstream_server(dec, value)?));
    }
    // Every other kind names one object or selects by labels the same way; only nodes
    // have no namespace.
    let (what, known) = match kind {
        "node" => ("a node target", NODE_SELECTION_FIELDS),
        _ => ("the target", SELECTION_FIELDS),
    };
    let f = dec.fields(value, what, known)?;
    let namespace = optional(f.get("namespace").map(|n| dec.string(n)));
    let name = optional(f.get("name").map(|n| dec.string(n)));
    let selector = opt(dec, &f, "selector", Default::default(), |d, n| {
        string_map(d, n, "labels")
    });
    let (namespace, name, selector) = (namespace?, name?, selector?);
    Some(match kind {
        "node" => Target::Node(NodeSelection { name, selector }),
        _ => {
            let selection = Selection {
                namespace,
                name,
                selector,
            };
            match kind {
                "pods" => Target::Pods(selection),
                "deployment" => Target::Deployment(selection),
                _ => Target::StatefulSet(selection),
            }
        }
    })
}

/// Reads an optional field, falling back to `default` when absent; `None` on a bad value.
pub(super) fn opt<T>(
    dec: &mut Decoder,
    f: &Fields<'_>,
    key: &str,
    default: T,
    read: impl FnOnce(&mut Decoder, &Node) -> Option<T>,
) -> Option<T> {
    match f.get(key) {
        Some(n) => read(dec, n),
        None => Some(default),
    }
}

/// One `NAME=value` of an exec's environment.
fn env_var(dec: &mut Decoder, node: &Node) -> Option<(String, String)> {
    parsed(dec, node, parse_env_var)
}

pub(super) fn positive_duration(dec: &mut Decoder, node: &Node) -> Option<Duration> {
    let d = dec.duration(node)?;
    rules::positive(d)
        .map_err(|e| dec.error(node.pos, e))
        .ok()?;
    Some(d)
}

/// A list of systemd state names, each one of `all` as spelled by `name`.
pub(super) fn enum_list<T: Copy>(
    dec: &mut Decoder,
    node: &Node,
    what: Noun,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Option<Vec<T>> {
    dec.non_empty_list(node, what, |d, n| {
        let text = d.string(n)?;
        match all.iter().copied().find(|&v| name(v) == text) {
            Some(v) => Some(v),
            None => {
                let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
                d.error(n.pos, super::decode::unknown_name(what.one, &text, &names));
                None
            }
        }
    })
}

pub(super) fn active_states(dec: &mut Decoder, node: &Node) -> Option<Vec<ActiveState>> {
    let what = Noun::new("active state", "active states");
    enum_list(dec, node, what, &ActiveState::ALL, ActiveState::as_str)
}

pub(super) fn unit_file_states(dec: &mut Decoder, node: &Node) -> Option<Vec<UnitFileState>> {
    let what = Noun::new("unit file state", "unit file states");
    enum_list(dec, node, what, &UnitFileState::ALL, UnitFileState::as_str)
}

pub(super) fn statuses(dec: &mut Decoder, node: &Node) -> Option<Vec<u16>> {
    dec.non_empty_list(
        node,
        Noun::new("HTTP status code", "HTTP status codes"),
        // HTTP_STATUS's maximum fits a u16.
        |d, n| d.integer(n, rules::HTTP_STATUS).map(|s| s as u16),
    )
}

pub(super) fn url(dec: &mut Decoder, node: &Node) -> Option<HttpUrl> {
    parsed(dec, node, HttpUrl::parse)
}

fn no_args(dec: &mut Decoder, node: &Node, name: &'static str) -> Option<NoArgs> {
    let f = dec.options(node, name, &[])?;
    f.is_empty().then_some(NoArgs)
}

fn action(dec: &mut Decoder, node: &Node) -> Option<Action> {
    let (kind, args) = dec.variant(node, "action", ACTION_KINDS)?;
    let action = match kind {
        "start" => Action::Start(no_args(dec, args, "the start action")?),
        "stop" => Action::Stop(no_args(dec, args, "the stop action")?),
        "restart" => Action::Restart(no_args(dec, args, "the restart action")?),
        "tryRestart" => Action::TryRestart(no_args(dec, args, "the tryRestart action")?),
        "reload" => Action::Reload(no_args(dec, args, "the reload action")?),
        "resetFailed" => Action::ResetFailed(no_args(dec, args, "the resetFailed action")?),
        "enable" => Action::Enable(no_args(dec, args, "the enable action")?),
        "disable" => Action::Disable(no_args(dec, args, "the disable action")?),
        "kill" => {
            let f = dec.options(args, "the kill action", KILL_FIELDS)?;
            let signal = opt(dec, &f, "signal", SignalName::default(), |d, n| {
                parsed(d, n, SignalName::parse)
            });
            let whom = opt(dec, &f, "whom", KillWhom::default(), |d, n| {
                let names = ["all", "main", "control"];
                let text = d.string(n)?;
                match text.as_str() {
                    "all" => Some(KillWhom::All),
                    "main" => Some(KillWhom::Main),
                    "control" => Some(KillWhom::Control),
                    _ => {
                        d.error(
                            n.pos,
                            super::decode::unknown_name("kill target", &text, &names),
                        );
                        None
                    }
                }
            });
            Action::Kill(KillArgs {
                signal: signal?,
                whom: whom?,
            })
        }
        "notify" => {
            let f = dec.options(args, "the notify action", NOTIFY_FIELDS)?;
            let webhook = f.required(dec, "webhook").and_then(|n| url(dec, n));
            let timeout = opt(
                dec,
                &f,
                "timeout",
                defaults::notify_timeout(),
                positive_duration,
            );
            let format = opt(dec, &f, "format", NotifyFormat::default(), |d, n| {
                let text = d.string(n)?;
                match NotifyFormat::ALL.into_iter().find(|k| k.as_str() == text) {
                    Some(format) => Some(format),
                    None => {
                        let names = NotifyFormat::ALL.map(NotifyFormat::as_str);
                        d.error(
                            n.pos,
                            super::decode::unknown_name("notify format", &text, &names),
                        );
                        None
                    }
                }
            });
            Action::Notify(NotifyArgs {
                webhook: webhook?,
                format: format?,
                timeout: timeout?,
            })
        }
        "exec" => {
            let f = dec.options(args, "the exec action", EXEC_FIELDS)?;
            let command = f.required(dec, "command").and_then(|n| {
                let argv = dec.non_empty_list(
                    n,
                    Noun::new("command argument", "command arguments"),
                    |d, n| d.string(n),
                )?;
                let program = argv.first()?;
                rules::exec_program(program)
                    .map_err(|e| dec.error(n.pos, e))
                    .ok()?;
                Some(argv)
            });
            let timeout = opt(
                dec,
                &f,
                "timeout",
                defaults::exec_timeout(),
                positive_duration,
            );
            let env = opt(dec, &f, "env", Vec::new(), |d, n| {
                d.list(n, Noun::new("variable", "variables"), env_var)
            });
            Action::Exec(ExecArgs {
                command: command?,
                timeout: timeout?,
                env: env?,
            })
        }
        "nginxEdit" => return config_edit::nginx_edit(dec, args),
        "phpFpmEdit" => return config_edit::php_fpm_edit(dec, args),
        "alignFastcgiPass" => return config_edit::align_fastcgi_pass(dec, args),
        "configMapEdit" => return config_edit::config_map_edit(dec, args),
        "deletePod" => Action::DeletePod(no_args(dec, args, "the deletePod action")?),
        "rolloutRestart" => {
            Action::RolloutRestart(no_args(dec, args, "the rolloutRestart action")?)
        }
        "cordon" => Action::Cordon(no_args(dec, args, "the cordon action")?),
        "scale" => {
            let f = dec.fields(args, "the scale action", SCALE_FIELDS)?;
            let whole = |d: &mut Decoder, n: &Node, range| d.integer(n, range).map(|v| v as u32);
            // SCALE_STEP's and REPLICAS' maxima fit a u32.
            let by = opt(dec, &f, "by", defaults::scale_by(), |d, n| {
                whole(d, n, rules::SCALE_STEP)
            });
            let min = opt(dec, &f, "min", defaults::scale_min(), |d, n| {
                whole(d, n, rules::REPLICAS)
            });
            let max = f
                .required(dec, "max")
                .and_then(|n| whole(dec, n, rules::REPLICAS));
            Action::Scale(ScaleArgs {
                by: by?,
                min: min?,
                max: max?,
            })
        }
        "raiseMemoryLimit" => {
            let f = dec.fields(args, "the raiseMemoryLimit action", RAISE_MEMORY_FIELDS)?;
            let container = f
                .required(dec, "container")
                .and_then(|n| dec.checked_string(n, |t| rules::object_name(t, "container")));
            let factor = opt(dec, &f, "factor", defaults::memory_factor(), |d, n| {
                d.float(n, rules::RAISE_FACTOR)
            });
            let max = f.required(dec, "max").and_then(|n| {
                let text = dec.text_or_integer(n)?;
                MemoryQuantity::parse(&text)
                    .map_err(|e| dec.error(n.pos, e))
                    .ok()
            });
            Action::RaiseMemoryLimit(RaiseMemoryLimitArgs {
                container: container?,
                factor: factor?,
                max: max?,
            })
        }
        "drain" => {
            let f = dec.fields(args, "the drain action", DRAIN_FIELDS)?;
            let haproxy = optional(f.get("haproxy").map(|n| haproxy_server(dec, n)));
            let nginx = optional(f.get("nginx").map(|n| nginx_upstream_server(dec, n)));
            let gateway = optional(f.get("gateway").map(|n| gateway_backend(dec, n)));
            let ramp = optional(f.get("ramp").map(|n| {
                let f = dec.fields(n, "a ramp", RAMP_FIELDS)?;
                // RAMP_STEPS' maximum fits a u32.
                let steps = f
                    .required(dec, "steps")
                    .and_then(|n| dec.integer(n, rules::RAMP_STEPS).map(|v| v as u32));
                let interval = opt(
                    dec,
                    &f,
                    "interval",
                    defaults::ramp_interval(),
                    positive_duration,
                );
                Some(Ramp {
                    steps: steps?,
                    interval: interval?,
                })
            }));
            Action::Drain(DrainArgs {
                haproxy: haproxy?,
                nginx: nginx?,
                gateway: gateway?,
                ramp: ramp?,
            })
        }
        "ready" => {
            let f = dec.fields(args, "the ready action", LB_SERVER_FIELDS)?;
            let haproxy = optional(f.get("haproxy").map(|n| haproxy_server(dec, n)));
            let nginx = optional(f.get("nginx").map(|n| nginx_upstream_server(dec, n)));
            let gateway = optional(f.get("gateway").map(|n| gateway_backend(dec, n)));
            Action::Ready(LbServerArgs {
                haproxy: haproxy?,
                nginx: nginx?,
                gateway: gateway?,
            })
        }
        "setWeight" => {
            let f = dec.fields(args, "the setWeight action", SET_WEIGHT_FIELDS)?;
            let haproxy = optional(f.get("haproxy").map(|n| haproxy_server(dec, n)));
            let nginx = optional(f.get("nginx").map(|n| nginx_upstream_server(dec, n)));
            let gateway = optional(f.get("gateway").map(|n| gateway_backend(dec, n)));
            let weight = f.required(dec, "weight").and_then(|n| {
                let text = dec.text_or_integer(n)?;
                LbWeight::parse(&text).map_err(|e| dec.error(n.pos, e)).ok()
            });
            Action::SetWeight(SetWeightArgs {
                haproxy: haproxy?,
                nginx: nginx?,
                gateway: gateway?,
                weight: weight?,
            })
        }
        // `variant` only returns names from ACTION_KINDS, all handled above.
        _ => return None,
    };
    Some(action)
}

fn haproxy_server(dec: &mut Decoder, node: &Node) -> Option<HaproxyServer> {
    use crate::policy::load_balancer::haproxy_name;
    let f = dec.fields(node, "a HAProxy server", HAPROXY_SERVER_FIELDS)?;
    let socket = f
        .required(dec, "socket")
        .and_then(|n| config_edit::absolute_path(dec, n));
    let backend = f
        .required(dec, "backend")
        .and_then(|n| dec.checked_string(n, |t| haproxy_name(t, "backend")));
    let server = f
        .required(dec, "server")
        .and_then(|n| dec.checked_string(n, |t| haproxy_name(t, "server")));
    let level = opt(dec, &f, "level", Default::default(), |d, n| {
        use crate::policy::load_balancer::HaproxyLevel;
        let text = d.string(n)?;
        let Some(level) = HaproxyLevel::ALL.into_iter().find(|l| l.as_str() == text) else {
            let names = HaproxyLevel::ALL.map(HaproxyLevel::as_str);
            d.error(
                n.pos,
                super::decode::unknown_name("HAProxy level", &text, &names),
            );
            return None;
        };
        if !level.is_admin() {
            d.error(n.pos, rules::haproxy_level(level));
            return None;
        }
        Some(level)
    });
    Some(HaproxyServer {
        socket: socket?,
        backend: backend?,
        server: server?,
        level: level?,
    })
}

fn gateway_backend(dec: &mut Decoder, node: &Node) -> Option<GatewayBackend> {
    let f = dec.fields(node, "a Gateway API backend", GATEWAY_BACKEND_FIELDS)?;
    let namespace = optional(
        f.get("namespace")
            .map(|n| dec.checked_string(n, rules::namespace)),
    );
    let route = f
        .required(dec, "route")
        .and_then(|n| dec.checked_string(n, |t| rules::object_name(t, "HTTPRoute")));
    let service = f
        .required(dec, "service")
        .and_then(|n| dec.checked_string(n, |t| rules::object_name(t, "Service")));
    let port = optional(
        f.get("port")
            .map(|n| dec.integer(n, rules::PORT).map(|p| p as u16)),
    );
    Some(GatewayBackend {
        namespace: namespace?,
        route: route?,
        service: service?,
        port: port?,
    })
}

fn nginx_upstream_server(dec: &mut Decoder, node: &Node) -> Option<NginxUpstreamServer> {
    use crate::policy::load_balancer::{plain_name, upstream_address};
    let f = dec.fields(node, "an nginx upstream server", NGINX_UPSTREAM_FIELDS)?;
    let file = f
        .required(dec, "file")
        .and_then(|n| config_edit::absolute_path(dec, n));
    let upstream = f
        .required(dec, "upstream")
        .and_then(|n| dec.checked_string(n, |t| plain_name(t, "nginx upstream")));
    let server = f
        .required(dec, "server")
        .and_then(|n| dec.checked_string(n, upstream_address));
    let config = opt(
        dec,
        &f,
        "config",
        defaults::nginx_conf(),
        config_edit::absolute_path,
    );
    let unit = opt(dec, &f, "unit", defaults::nginx_unit(), |d, n| {
        parsed(d, n, UnitName::parse)
    });
    Some(NginxUpstreamServer {
        file: file?,
        upstream: upstream?,
        server: server?,
        config: config?,
        unit: unit?,
    })
}

/// An optional sub-value: absent is fine (`Some(None)`), present but invalid is `None`.
pub(super) fn optional<T>(decoded: Option<Option<T>>) -> Option<Option<T>> {
    decoded.map_or(Some(None), |v| v.map(Some))
}

fn verify(dec: &mut Decoder, node: &Node) -> Option<Verify> {
    let f = dec.fields(node, "verify", VERIFY_FIELDS)?;
    let http = f.get("http").map(|n| {
        let f = dec.fields(n, "an http verification", HTTP_VERIFY_FIELDS)?;
        let url = f.required(dec, "url").and_then(|n| url(dec, n));
        let status = opt(dec, &f, "status", defaults::verify_status(), statuses);
        let within = opt(
            dec,
            &f,
            "within",
            defaults::verify_within(),
            positive_duration,
        );
        Some(HttpVerify {
            url: url?,
            status: status?,
            within: within?,
        })
    });
    let unit = f.get("unit").map(|n| {
        let f = dec.fields(n, "a unit verification", UNIT_VERIFY_FIELDS)?;
        let active_state = opt(
            dec,
            &f,
            "activeState",
            defaults::verify_active_state(),
            active_states,
        );
        let within = opt(
            dec,
            &f,
            "within",
            defaults::verify_within(),
            positive_duration,
        );
        Some(UnitVerify {
            active_state: active_state?,
            within: within?,
        })
    });
    let ready = f.get("ready").map(|n| {
        let f = dec.fields(n, "a ready verification", READY_VERIFY_FIELDS)?;
        let within = opt(
            dec,
            &f,
            "within",
            defaults::verify_ready_within(),
            positive_duration,
        );
        Some(ReadyVerify { within: within? })
    });
    Some(Verify {
        http: optional(http)?,
        unit: optional(unit)?,
        ready: optional(ready)?,
    })
}

fn guard(dec: &mut Decoder, node: &Node) -> Option<Guard> {
    let f = dec.fields(node, "guard", GUARD_FIELDS)?;
    let cooldown = opt(dec, &f, "cooldown", defaults::cooldown(), |d, n| {
        d.duration(n)
    });
    let max_attempts = opt(dec, &f, "maxAttempts", defaults::max_attempts(), |d, n| {
        // MAX_ATTEMPTS's maximum fits a u32.
        d.integer(n, rules::MAX_ATTEMPTS).map(|v| v as u32)
    });
    let window = opt(dec, &f, "window", defaults::window(), positive_duration);
    let backoff = opt(dec, &f, "backoff", defaults::backoff(), |d, n| {
        d.float(n, rules::BACKOFF)
    });
    let max_unhealthy = opt(dec, &f, "maxUnhealthy", None, |d, n| {
        count_or_percent(d, n).map(Some)
    });
    let settle = opt(dec, &f, "settle", defaults::settle(), |d, n| d.duration(n));
    Some(Guard {
        cooldown: cooldown?,
        max_attempts: max_attempts?,
        window: window?,
        backoff: backoff?,
        max_unhealthy: max_unhealthy?,
        settle: settle?,
    })
}

/// `maxUnhealthy`: a whole number, or a percentage (text, as YAML reads `30%`).
fn count_or_percent(dec: &mut Decoder, node: &Node) -> Option<MaxUnhealthy> {
    let text = match &node.value {
        super::yaml::Value::Scalar {
            text,
            quoted: false,
        } if super::yaml::plain_scalar(text).is_number() => text.clone(),
        _ => dec.string(node)?,
    };
    MaxUnhealthy::parse(&text)
        .map_err(|e| dec.error(node.pos, e))
        .ok()
}
