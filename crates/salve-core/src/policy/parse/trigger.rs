//! Decoding trigger conditions: `unit`, `http`, `log`, the Kubernetes ones `pod`,
//! `workload` and `node`, and Alertmanager's `alert`.

use super::super::decode::Decoder;
use super::super::model::*;
use super::super::yaml::Node;
use super::*;

pub(super) fn trigger(dec: &mut Decoder, node: &Node) -> Option<Trigger> {
    let f = dec.fields(node, "a trigger condition", TRIGGER_FIELDS)?;
    let kinds: Vec<&str> = CONDITION_KINDS
        .iter()
        .copied()
        .filter(|k| f.get(k).is_some())
        .collect();
    let hold = opt(dec, &f, "for", defaults::hold(), |d, n| d.duration(n));
    let condition = match kinds.as_slice() {
        ["unit"] => f
            .get("unit")
            .and_then(|n| unit_condition(dec, n))
            .map(Condition::Unit),
        ["http"] => f
            .get("http")
            .and_then(|n| http_condition(dec, n))
            .map(Condition::Http),
        ["log"] => f
            .get("log")
            .and_then(|n| log_condition(dec, n))
            .map(Condition::Log),
        ["pod"] => f
            .get("pod")
            .and_then(|n| pod_condition(dec, n))
            .map(Condition::Pod),
        ["workload"] => f
            .get("workload")
            .and_then(|n| workload_condition(dec, n))
            .map(Condition::Workload),
        ["node"] => f
            .get("node")
            .and_then(|n| node_condition(dec, n))
            .map(Condition::Node),
        ["alert"] => f
            .get("alert")
            .and_then(|n| alert_condition(dec, n))
            .map(Condition::Alert),
        ["phpFpm"] => f
            .get("phpFpm")
            .and_then(|n| php_fpm_condition(dec, n))
            .map(Condition::PhpFpm),
        // A misspelt kind was reported already; "needs one of" would only repeat it.
        [] if f.had_unknown => None,
        _ => {
            if let Some(error) = trigger_kinds_error(&kinds) {
                dec.error(f.pos, error);
            }
            None
        }
    };
    Some(Trigger {
        condition: condition?,
        hold: hold?,
    })
}

fn alert_condition(dec: &mut Decoder, node: &Node) -> Option<AlertCondition> {
    let f = dec.fields(node, "an alert condition", ALERT_CONDITION_FIELDS)?;
    let name = f
        .required(dec, "name")
        .and_then(|n| dec.checked_string(n, rules::alert_name));
    let labels = opt(dec, &f, "labels", Default::default(), |d, n| {
        string_map(d, n, "labels")
    });
    Some(AlertCondition {
        name: name?,
        labels: labels?,
    })
}

fn php_fpm_condition(dec: &mut Decoder, node: &Node) -> Option<PhpFpmCondition> {
    let f = dec.fields(node, "a phpFpm condition", PHP_FPM_CONDITION_FIELDS)?;
    let status = f
        .required(dec, "status")
        .and_then(|n| dec.checked_string(n, |t| rules::fpm_status_address(t).map(|_| ())));
    let path = opt(dec, &f, "path", defaults::fpm_status_path(), |d, n| {
        d.checked_string(n, rules::fpm_status_path)
    });
    let listen_queue = optional(f.get("listenQueue").map(|n| {
        // FPM_LISTEN_QUEUE's maximum fits a u32.
        dec.integer(n, rules::FPM_LISTEN_QUEUE).map(|v| v as u32)
    }));
    let idle_at_most = optional(f.get("idleAtMost").map(|n| {
        // FPM_IDLE's maximum fits a u32.
        dec.integer(n, rules::FPM_IDLE).map(|v| v as u32)
    }));
    let max_children_reached = opt(dec, &f, "maxChildrenReached", false, |d, n| d.bool(n));
    let failures = opt(dec, &f, "failures", defaults::probe_failures(), |d, n| {
        // PROBE_FAILURES's maximum fits a u32.
        d.integer(n, rules::PROBE_FAILURES).map(|v| v as u32)
    });
    let interval = opt(
        dec,
        &f,
        "interval",
        defaults::fpm_status_interval(),
        positive_duration,
    );
    let timeout = opt(
        dec,
        &f,
        "timeout",
        defaults::fpm_status_timeout(),
        positive_duration,
    );
    Some(PhpFpmCondition {
        status: status?,
        path: path?,
        listen_queue: listen_queue?,
        idle_at_most: idle_at_most?,
        max_children_reached: max_children_reached?,
        failures: failures?,
        interval: interval?,
        timeout: timeout?,
    })
}

fn unit_condition(dec: &mut Decoder, node: &Node) -> Option<UnitCondition> {
    let f = dec.fields(node, "a unit condition", UNIT_CONDITION_FIELDS)?;
    let active_state = opt(dec, &f, "activeState", Vec::new(), active_states);
    let sub_state = opt(dec, &f, "subState", Vec::new(), |d, n| {
        d.non_empty_list(n, Noun::new("sub state", "sub states"), |d, n| {
            d.checked_string(n, |t| rules::not_blank(t, "a sub state"))
        })
    });
    let unit_file_state = opt(dec, &f, "unitFileState", Vec::new(), unit_file_states);
    Some(UnitCondition {
        active_state: active_state?,
        sub_state: sub_state?,
        unit_file_state: unit_file_state?,
    })
}

fn http_condition(dec: &mut Decoder, node: &Node) -> Option<HttpCondition> {
    let f = dec.fields(node, "an http condition", HTTP_CONDITION_FIELDS)?;
    let url = f.required(dec, "url").and_then(|n| url(dec, n));
    let status = opt(dec, &f, "status", defaults::probe_status(), statuses);
    let failures = opt(dec, &f, "failures", defaults::probe_failures(), |d, n| {
        // PROBE_FAILURES's maximum fits a u32.
        d.integer(n, rules::PROBE_FAILURES).map(|v| v as u32)
    });
    let interval = opt(
        dec,
        &f,
        "interval",
        defaults::probe_interval(),
        positive_duration,
    );
    let timeout = opt(
        dec,
        &f,
        "timeout",
        defaults::probe_timeout(),
        positive_duration,
    );
    Some(HttpCondition {
        url: url?,
        status: status?,
        failures: failures?,
        interval: interval?,
        timeout: timeout?,
    })
}

fn log_condition(dec: &mut Decoder, node: &Node) -> Option<LogCondition> {
    let f = dec.fields(node, "a log condition", LOG_CONDITION_FIELDS)?;
    let path = f
        .required(dec, "path")
        .and_then(|n| dec.checked_string(n, rules::log_path))
        .map(std::path::PathBuf::from);
    let pattern = match (f.get("pattern"), f.get("match")) {
        (Some(n), None) => parsed(dec, n, LogPattern::own),
        (None, Some(n)) => parsed(dec, n, LogPattern::builtin),
        (Some(_), Some(n)) => {
            dec.error(n.pos, PATTERN_OR_MATCH);
            None
        }
        (None, None) => {
            if !f.had_unknown {
                dec.error(f.pos, PATTERN_NEEDED);
            }
            None
        }
    };
    let count = opt(dec, &f, "count", defaults::log_count(), |d, n| {
        // LOG_COUNT's maximum fits a u32.
        d.integer(n, rules::LOG_COUNT).map(|v| v as u32)
    });
    let within = opt(dec, &f, "within", defaults::log_within(), positive_duration);
    Some(LogCondition {
        path: path?,
        pattern: pattern?,
        count: count?,
        within: within?,
    })
}

fn pod_condition(dec: &mut Decoder, node: &Node) -> Option<PodCondition> {
    let f = dec.fields(node, "a pod condition", POD_CONDITION_FIELDS)?;
    let reason = opt(dec, &f, "reason", Vec::new(), |d, n| {
        d.non_empty_list(n, Noun::new("reason", "reasons"), |d, n| {
            d.checked_string(n, |t| rules::not_blank(t, "a reason"))
        })
    });
    let restarts = optional(f.get("restarts").map(|n| {
        // POD_RESTARTS's maximum fits a u32.
        dec.integer(n, rules::POD_RESTARTS).map(|v| v as u32)
    }));
    let (condition, status) = object_condition(dec, &f);
    Some(PodCondition {
        reason: reason?,
        restarts: restarts?,
        condition: condition?,
        status: status?,
    })
}

fn workload_condition(dec: &mut Decoder, node: &Node) -> Option<WorkloadCondition> {
    let f = dec.fields(node, "a workload condition", WORKLOAD_CONDITION_FIELDS)?;
    let unavailable = optional(f.get("unavailable").map(|n| {
        // UNAVAILABLE_REPLICAS's maximum fits a u32.
        dec.integer(n, rules::UNAVAILABLE_REPLICAS)
            .map(|v| v as u32)
    }));
    let (condition, status) = object_condition(dec, &f);
    Some(WorkloadCondition {
        unavailable: unavailable?,
        condition: condition?,
        status: status?,
    })
}

/// A pod's or workload's optional `condition` and its `status` list (empty: `[False]`).
fn object_condition(
    dec: &mut Decoder,
    f: &Fields<'_>,
) -> (Option<Option<String>>, Option<Vec<ConditionValue>>) {
    let condition = optional(
        f.get("condition")
            .map(|n| dec.checked_string(n, rules::condition_type)),
    );
    let status = opt(dec, f, "status", Vec::new(), condition_statuses);
    (condition, status)
}

fn condition_statuses(d: &mut Decoder, n: &Node) -> Option<Vec<ConditionValue>> {
    enum_list(
        d,
        n,
        Noun::new("condition status", "condition statuses"),
        &ConditionValue::ALL,
        ConditionValue::as_str,
    )
}

fn node_condition(dec: &mut Decoder, node: &Node) -> Option<NodeCondition> {
    let f = dec.fields(node, "a node condition", NODE_CONDITION_FIELDS)?;
    let condition = opt(dec, &f, "condition", defaults::node_condition(), |d, n| {
        d.checked_string(n, rules::condition_type)
    });
    let status = opt(
        dec,
        &f,
        "status",
        defaults::node_status(),
        condition_statuses,
    );
    Some(NodeCondition {
        condition: condition?,
        status: status?,
    })
}
