//! Decoding trigger conditions: `unit`, `http` and `log`.

use super::super::decode::Decoder;
use super::super::model::*;
use super::super::yaml::Node;
use super::*;
use std::time::Duration;

pub(super) fn trigger(dec: &mut Decoder, node: &Node) -> Option<Trigger> {
    let f = dec.fields(node, "a trigger condition", TRIGGER_FIELDS)?;
    let kinds: Vec<&str> = CONDITION_KINDS
        .iter()
        .copied()
        .filter(|k| f.get(k).is_some())
        .collect();
    let hold = opt(dec, &f, "for", Duration::ZERO, |d, n| d.duration(n));
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
        [] => {
            if !f.had_unknown {
                dec.error(f.pos, "a trigger condition needs one of: unit, http, log");
            }
            None
        }
        _ => {
            dec.error(
                f.pos,
                format!(
                    "a trigger condition names exactly one kind, found {}: write each as its own list item",
                    kinds.join(" and ")
                ),
            );
            None
        }
    };
    Some(Trigger {
        condition: condition?,
        hold: hold?,
    })
}

fn unit_condition(dec: &mut Decoder, node: &Node) -> Option<UnitCondition> {
    let f = dec.fields(node, "a unit condition", UNIT_CONDITION_FIELDS)?;
    if f.is_empty() {
        dec.error(
            f.pos,
            "a unit condition needs at least one of: activeState, subState, unitFileState",
        );
        return None;
    }
    let active_state = opt(dec, &f, "activeState", Vec::new(), active_states);
    let sub_state = opt(dec, &f, "subState", Vec::new(), |d, n| {
        d.non_empty_list(n, Noun::new("sub state", "sub states"), |d, n| {
            d.non_empty_string(n, "a sub state")
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
    let status = opt(dec, &f, "status", vec![502, 503, 504], statuses);
    let failures = opt(dec, &f, "failures", 3, |d, n| {
        d.integer(n, 1, 1000).map(|v| v as u32)
    });
    let interval = opt(
        dec,
        &f,
        "interval",
        Duration::from_secs(5),
        positive_duration,
    );
    let timeout = opt(
        dec,
        &f,
        "timeout",
        Duration::from_secs(2),
        positive_duration,
    );
    if let (Some(i), Some(t)) = (interval, timeout) {
        if t > i {
            // Point at whichever of the two was written; with both defaulted this cannot
            // happen (2s timeout, 5s interval).
            let (pos, what) = match (f.get("timeout"), f.get("interval")) {
                (Some(n), _) => (n.pos, "timeout"),
                (None, Some(n)) => (n.pos, "interval"),
                (None, None) => (f.pos, "timeout"),
            };
            exceeds(
                dec,
                pos,
                what,
                ("timeout", t),
                ("interval", i),
                ", or probes would overlap",
            );
            return None;
        }
    }
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
    let path = f.required(dec, "path").and_then(|n| {
        let p = dec.non_empty_string(n, "a log path")?;
        if !p.starts_with('/') {
            dec.error(n.pos, format!("log path \"{p}\" must be absolute"));
            return None;
        }
        Some(std::path::PathBuf::from(p))
    });
    let pattern = match (f.get("pattern"), f.get("match")) {
        (Some(n), None) => dec.regex(n).map(|regex| LogPattern {
            regex,
            builtin: None,
        }),
        (None, Some(n)) => builtin_pattern(dec, n),
        (Some(_), Some(n)) => {
            dec.error(n.pos, "give either `pattern` or `match`, not both");
            None
        }
        (None, None) => {
            if !f.had_unknown {
                dec.error(
                    f.pos,
                    "a log condition needs `pattern` (a regex) or `match` (a built-in pattern)",
                );
            }
            None
        }
    };
    let count = opt(dec, &f, "count", 1, |d, n| {
        d.integer(n, 1, 100_000).map(|v| v as u32)
    });
    let within = opt(
        dec,
        &f,
        "within",
        Duration::from_secs(60),
        positive_duration,
    );
    Some(LogCondition {
        path: path?,
        pattern: pattern?,
        count: count?,
        within: within?,
    })
}

fn builtin_pattern(dec: &mut Decoder, node: &Node) -> Option<LogPattern> {
    let name = dec.string(node)?;
    let Some(builtin) = crate::policy::log_patterns::builtin(&name) else {
        let names: Vec<&str> = crate::policy::log_patterns::builtin_names().collect();
        dec.error(
            node.pos,
            super::super::decode::unknown_name("built-in pattern", &name, &names),
        );
        return None;
    };
    match regex::Regex::new(builtin.regex) {
        Ok(regex) => Some(LogPattern {
            regex,
            builtin: Some(builtin.name),
        }),
        // A test compiles every built-in pattern; this cannot happen in a release.
        Err(e) => {
            dec.error(
                node.pos,
                format!("built-in pattern {name} does not compile: {e}"),
            );
            None
        }
    }
}
