//! The policy format's rules on single values: bounds, non-empty text, absolute paths,
//! what a config edit may touch. Each rule is written once, here, with its message.
//!
//! `validate.rs` applies every rule to a decoded policy (however it arrived); the
//! positioned decoder applies the same rules field by field as it reads, so `salve
//! check` still reports a bad value next to an unrelated mistake in the same mapping.

use std::fmt::Display;
use std::time::Duration;

/// An inclusive range of whole numbers a field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole {
    pub min: u64,
    pub max: u64,
}

/// An inclusive range of (finite) numbers a field accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Real {
    pub min: f64,
    pub max: f64,
}

pub const MAX_ATTEMPTS: Whole = Whole { min: 1, max: 1000 };
pub const PROBE_FAILURES: Whole = Whole { min: 1, max: 1000 };
pub const FPM_LISTEN_QUEUE: Whole = Whole {
    min: 1,
    max: 1_000_000,
};
pub const FPM_IDLE: Whole = Whole {
    min: 0,
    max: 100_000,
};
pub const LOG_COUNT: Whole = Whole {
    min: 1,
    max: 100_000,
};
pub const HTTP_STATUS: Whole = Whole { min: 100, max: 599 };
pub const POD_RESTARTS: Whole = Whole {
    min: 1,
    max: 1_000_000,
};
pub const UNAVAILABLE_REPLICAS: Whole = Whole {
    min: 1,
    max: 100_000,
};
/// A pool key's cap, e.g. `pm.max_children`.
pub const POOL_KEY_MAX: Whole = Whole {
    min: 1,
    max: 100_000,
};
pub const SCALE_STEP: Whole = Whole { min: 1, max: 100 };
/// Members of a fleet group drained at once.
pub const FLEET_SLOTS: Whole = Whole { min: 1, max: 1000 };
pub const PORT: Whole = Whole { min: 1, max: 65535 };
/// The share of a load balancer's servers a fleet group may have drained at once.
pub const FLEET_PERCENT: Whole = Whole { min: 1, max: 100 };
/// The steps of a load balancer's ramp back.
pub const RAMP_STEPS: Whole = Whole { min: 1, max: 20 };
pub const REPLICAS: Whole = Whole {
    min: 0,
    max: 10_000,
};
pub const BACKOFF: Real = Real {
    min: 1.0,
    max: 10.0,
};
/// How much one step of a raise multiplies by.
pub const RAISE_FACTOR: Real = Real {
    min: 1.1,
    max: 16.0,
};

/// "N is out of range: expected MIN to MAX"
pub fn out_of_range(written: impl Display, min: impl Display, max: impl Display) -> String {
    format!("{written} is out of range: expected {min} to {max}")
}

pub fn whole(value: u64, range: Whole) -> Result<(), String> {
    if (range.min..=range.max).contains(&value) {
        Ok(())
    } else {
        Err(out_of_range(value, range.min, range.max))
    }
}

pub fn real(value: f64, range: Real) -> Result<(), String> {
    if value.is_finite() && value >= range.min && value <= range.max {
        Ok(())
    } else {
        Err(out_of_range(value, range.min, range.max))
    }
}

/// Intervals, timeouts and windows: zero would mean "never" or "always".
pub fn positive(d: Duration) -> Result<(), String> {
    if d.is_zero() {
        Err("must be longer than 0s".to_string())
    } else {
        Ok(())
    }
}

/// "WHAT must not be empty" for text that is empty or only blanks.
pub fn not_blank(text: &str, what: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err(format!("{what} must not be empty"))
    } else {
        Ok(())
    }
}

/// A path salve opens or passes on: relative paths would depend on the agent's cwd.
/// A wall-clock time as Kubernetes writes one: RFC 3339 in UTC.
pub fn utc_time(text: &str) -> Result<(), String> {
    match humantime::parse_rfc3339(text) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "\"{text}\" is not a time in RFC 3339 UTC, as 2026-12-03T16:00:00Z"
        )),
    }
}

/// The longest pause reason: it goes to the journal, the status and a terminal.
pub const PAUSE_REASON_MAX: usize = 500;

/// A pause's reason: said, short, and one line of printable text.
pub fn pause_reason(text: &str) -> Result<(), String> {
    not_blank(text, "a pause's reason")?;
    if text.chars().any(char::is_control) {
        return Err("a pause's reason is one line of printable text".to_string());
    }
    if text.chars().count() > PAUSE_REASON_MAX {
        return Err(format!(
            "a pause's reason is at most {PAUSE_REASON_MAX} characters"
        ));
    }
    Ok(())
}

/// An alert's name (its `alertname` label): said, one line.
pub fn alert_name(text: &str) -> Result<(), String> {
    not_blank(text, "an alert's name")?;
    one_line(text, "an alert's name", ALERT_TEXT_MAX)
}

/// How long an alert's name or a label's value may be: far beyond any alerting rule's,
/// and a bound on what each trigger keeps.
pub const ALERT_TEXT_MAX: usize = 1024;
/// How many labels an alert condition may name.
pub const ALERT_LABELS_MAX: usize = 32;

/// One label an alert must carry: a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`,
/// not `__`-reserved, not `alertname`, which is the condition's `name`) and a value.
pub fn alert_label(key: &str, value: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let named = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !named {
        return Err(format!(
            "\"{key}\" is not a Prometheus label name: a letter or `_`, then letters, digits and `_`"
        ));
    }
    if key.starts_with("__") {
        return Err(format!(
            "\"{key}\": labels starting with `__` are Prometheus's own and never reach Alertmanager"
        ));
    }
    if key == "alertname" {
        return Err("the alert's name is the condition's `name`, not one of its labels".into());
    }
    one_line(value, &format!("the value of label {key}"), ALERT_TEXT_MAX)
}

fn one_line(text: &str, what: &str, max: usize) -> Result<(), String> {
    if text.chars().any(char::is_control) {
        return Err(format!("{what} is one line of printable text"));
    }
    if text.chars().count() > max {
        return Err(format!("{what} is at most {max} characters"));
    }
    Ok(())
}

/// A status page's address (`pm.status_listen`).
pub fn fpm_status_address(text: &str) -> Result<super::FpmStatusAddress, String> {
    super::FpmStatusAddress::parse(text)
}

/// A status page's path (`pm.status_path`): absolute, one line, as PHP-FPM requires.
pub fn fpm_status_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/')
        || text.chars().any(|c| c.is_control() || c == ' ' || c == '?')
        || text.len() > 256
    {
        return Err(format!(
            "\"{text}\" is not a status path: PHP-FPM's pm.status_path starts with / (as /status)"
        ));
    }
    Ok(())
}

pub fn absolute_path(text: &str) -> Result<(), String> {
    not_blank(text, "a path")?;
    if text.starts_with('/') {
        Ok(())
    } else {
        Err(format!("\"{text}\" must be an absolute path"))
    }
}

pub fn log_path(text: &str) -> Result<(), String> {
    not_blank(text, "a log path")?;
    if text.starts_with('/') {
        Ok(())
    } else {
        Err(format!("log path \"{text}\" must be absolute"))
    }
}

/// No PATH lookup: a remediation must run the program the policy author meant.
pub fn exec_program(program: &str) -> Result<(), String> {
    if program.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "exec command \"{program}\" must be an absolute path"
        ))
    }
}

pub fn pool_name(text: &str) -> Result<(), String> {
    not_blank(text, "pool")?;
    if text.contains(['[', ']', '\n']) {
        return Err("a pool name is the text between [ and ], without them".to_string());
    }
    Ok(())
}

/// Characters that would end an nginx directive or open a block, or a quote.
pub const NGINX_VALUE_FORBIDDEN: &[char] = &[';', '{', '}', '#', '"', '\''];
/// Characters that would end a PHP-FPM value.
pub const FPM_VALUE_FORBIDDEN: &[char] = &[';', '"'];

/// A value written into a config line: one line, and nothing that would end the
/// directive or open a block, so a policy can never inject a second directive.
pub fn config_value(text: &str, forbidden: &[char]) -> Result<(), String> {
    not_blank(text, "value")?;
    match text
        .chars()
        .find(|c| forbidden.contains(c) || c.is_control())
    {
        Some(c) => Err(format!("value must not contain {c:?}")),
        None => Ok(()),
    }
}

fn config_name(text: &str, what: &str, extra: &[char]) -> Result<(), String> {
    not_blank(text, what)?;
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
    {
        Ok(())
    } else {
        Err(format!("\"{text}\" is not a valid {what}"))
    }
}

/// Directives a policy may not set: each could make nginx read or run something else
/// entirely, which is not a remediation but a new deployment.
const UNSETTABLE_DIRECTIVES: &[&str] = &[
    "include",
    "load_module",
    "user",
    "pid",
    "env",
    "daemon",
    "master_process",
    "working_directory",
    "root",
    "alias",
    "fastcgi_pass",
    "proxy_pass",
];

pub fn settable_directive(name: &str) -> Result<(), String> {
    config_name(name, "nginx directive", &[])?;
    if UNSETTABLE_DIRECTIVES.contains(&name) {
        return Err(format!("salve does not set `{name}`: it changes what nginx runs, not how it heals (alignFastcgiPass fixes fastcgi_pass)"));
    }
    Ok(())
}

/// The pool keys a policy may set: how the pool listens and how many workers it runs.
/// Anything else (its user, `php_admin_value[...]`, `include`) changes what runs, not
/// how a 502 is healed.
pub fn settable_pool_key(key: &str) -> Result<(), String> {
    config_name(key, "pool key", &['.', '[', ']'])?;
    let settable = key == "listen"
        || key.starts_with("listen.")
        || key == "pm"
        || key.starts_with("pm.")
        || ["request_terminate_timeout", "request_slowlog_timeout"].contains(&key);
    if settable {
        Ok(())
    } else {
        Err(format!("salve does not set `{key}`: only listen, listen.*, pm, pm.*, request_terminate_timeout and request_slowlog_timeout"))
    }
}

pub fn raisable_pool_key(key: &str) -> Result<(), String> {
    use salve_webconf::raisable::RAISABLE_FPM_KEYS;
    if RAISABLE_FPM_KEYS.contains(&key) {
        Ok(())
    } else {
        Err(super::decode::unknown_name(
            "raisable pool key",
            key,
            RAISABLE_FPM_KEYS,
        ))
    }
}

/// A Kubernetes object name (an RFC 1123 subdomain): a pod, a workload, a node.
pub fn object_name(text: &str, what: &str) -> Result<(), String> {
    if dns_name(text, 253, true) {
        Ok(())
    } else {
        Err(format!("invalid {what} name \"{text}\": use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"))
    }
}

/// A ConfigMap's key: a file name, as Kubernetes allows it.
pub fn config_map_key(text: &str) -> Result<(), String> {
    if !text.is_empty()
        && text.len() <= 253
        && text != "."
        && text != ".."
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(())
    } else {
        Err(format!(
            "invalid ConfigMap key \"{text}\": use at most 253 letters, digits, '-', '_' and '.'"
        ))
    }
}

/// A namespace (an RFC 1123 label).
pub fn namespace(text: &str) -> Result<(), String> {
    if dns_name(text, 63, false) {
        Ok(())
    } else {
        Err(format!("invalid namespace \"{text}\": use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"))
    }
}

fn dns_name(text: &str, max: usize, dots: bool) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !text.is_empty()
        && text.len() <= max
        && edge(text.chars().next())
        && edge(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.'))
}

/// A Kubernetes condition type (`Ready`, `MemoryPressure`): one word of letters.
pub fn condition_type(text: &str) -> Result<(), String> {
    if !text.is_empty() && text.len() <= 316 && text.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!("invalid condition type \"{text}\": one word of letters and digits, e.g. Ready or MemoryPressure"))
    }
}

/// A label of a selector, as Kubernetes allows it: an optional DNS-subdomain prefix and
/// `/`, a name of up to 63 characters; a value of up to 63, possibly empty.
pub fn label(key: &str, value: &str) -> Result<(), String> {
    let segment = |s: &str| {
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        s.len() <= 63
            && edge(s.chars().next())
            && edge(s.chars().last())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if !segment(name) || prefix.is_some_and(|p| !dns_name(p, 253, true)) {
        return Err(format!("invalid label key \"{key}\": [prefix/]name, the name up to 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"));
    }
    if !value.is_empty() && !segment(value) {
        return Err(format!("invalid label value \"{value}\" for {key}: up to 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"));
    }
    Ok(())
}

/// "CONTEXT: A (x) must not exceed B (y)WHY"
pub fn exceeds(
    context: &str,
    (a_name, a): (&str, Duration),
    (b_name, b): (&str, Duration),
    why: &str,
) -> String {
    format!(
        "{context}: {a_name} ({}) must not exceed {b_name} ({}){why}",
        humantime::format_duration(a),
        humantime::format_duration(b)
    )
}

pub const ESCALATE_NO_EDITS: &str = "escalate may not edit configs: escalation runs once, unverified and without an outcome record; put the edit in actions";
pub const EDIT_NEEDS_VERIFY: &str =
    "a config edit needs `verify`: without it an edit that breaks the site would be kept";
pub const RAMP_NEEDS_VERIFY: &str =
    "a drain that ramps back needs `verify`: weight returns only to a server that verified healthy";
pub const ESCALATE_NO_RAMP: &str =
    "escalate may not ramp a drained server back: escalation is never verified";
pub const VERIFY_NEEDS_ONE: &str = "verify needs at least one of: http, unit, ready";
pub const UNIT_CONDITION_NEEDS_ONE: &str =
    "a unit condition needs at least one of: activeState, subState, unitFileState";
pub const POD_CONDITION_NEEDS_ONE: &str =
    "a pod condition needs at least one of: reason, restarts, condition";
pub const STATUS_NEEDS_CONDITION: &str =
    "`status` lists the values of `condition` that count: name the condition too";
pub const EDIT_NEEDS_CHANGE: &str = "a config edit needs at least one entry in raise or set";
pub const PROBES_OVERLAP: &str = ", or probes would overlap";
pub const NAME_OR_SELECTOR: &str = "give either `name` or `selector`, not both";
/// The actions a Kubernetes target takes; the rest act on a systemd unit or its host.
pub const MAX_UNHEALTHY_NEEDS_SELECTOR: &str =
    "`maxUnhealthy` counts the objects a selector selects, or the policies of one `fleet` group, and this policy's target names one object and it has no `fleet`";

/// A HAProxy socket below level admin: salve could not change a server through it.
pub fn haproxy_level(level: crate::policy::load_balancer::HaproxyLevel) -> String {
    format!(
        "level {} cannot change a server: HAProxy sets a server's state and weight only at level admin (`stats socket PATH level admin`)",
        level.as_str()
    )
}

/// The actions each kind of Kubernetes target takes. `restart` is the one every
/// restartable kind shares (a pod deleted, a workload's rollout restarted); a node is
/// not a process, and salve never reboots one.
pub fn kubernetes_actions(target: &crate::policy::Target) -> &'static [&'static str] {
    use crate::policy::Target;
    match target {
        Target::Pods(_) => &[
            "restart",
            "deletePod",
            "drain",
            "ready",
            "setWeight",
            "notify",
            "exec",
        ],
        Target::Deployment(_) | Target::StatefulSet(_) => &[
            "restart",
            "rolloutRestart",
            "scale",
            "raiseMemoryLimit",
            "configMapEdit",
            "drain",
            "ready",
            "setWeight",
            "notify",
            "exec",
        ],
        Target::Node(_) => &["cordon", "notify", "exec"],
        _ => &[],
    }
}

/// nginx's `weight=` is a whole number from 1: no percentages (nginx keeps no
/// configured weight to take one of), and no 0 (nginx refuses it; `drain` writes
/// `down`).
pub fn nginx_weight(weight: super::LbWeight) -> Result<(), String> {
    match weight {
        super::LbWeight::Absolute(w) if w >= 1 => Ok(()),
        super::LbWeight::Absolute(_) => Err(
            "an nginx upstream server's weight is 1 or more; `drain` takes it out (`down`)"
                .to_string(),
        ),
        super::LbWeight::Percent(_) => Err(
            "an nginx upstream server's weight is a whole number: nginx keeps no configured weight to take a percentage of"
                .to_string(),
        ),
    }
}

/// A Gateway API weight is a whole number: a backendRef keeps no configured weight to
/// take a percentage of.
pub fn gateway_weight(weight: super::LbWeight) -> Result<(), String> {
    match weight {
        super::LbWeight::Absolute(_) => Ok(()),
        super::LbWeight::Percent(_) => Err(
            "an HTTPRoute backend's weight is a whole number: the route keeps no configured weight to take a percentage of"
                .to_string(),
        ),
    }
}

/// The actions a load balancer's server target (HAProxy, nginx) takes.
pub const LOAD_BALANCER_ACTIONS: &[&str] = &["drain", "ready", "setWeight", "notify", "exec"];

/// Actions only a Kubernetes target takes.
pub const KUBERNETES_ONLY_ACTIONS: &[&str] = &[
    "deletePod",
    "rolloutRestart",
    "scale",
    "raiseMemoryLimit",
    "configMapEdit",
    "cordon",
];

/// What an action acts on, for the message that it does not fit a target.
pub fn what_acts_on(action: &str) -> &'static str {
    match action {
        "restart" => {
            "restarts a unit, a pod or a workload's rollout, and salve never reboots a node"
        }
        "deletePod" => "deletes a pod",
        "rolloutRestart" | "scale" | "raiseMemoryLimit" => "changes a deployment or statefulset",
        "configMapEdit" => {
            "edits a ConfigMap a deployment or statefulset reads, and restarts its rollout"
        }
        "cordon" => "cordons a node",
        "drain" | "ready" | "setWeight" => "shifts a load balancer's traffic",
        _ => "acts on a systemd unit or its host",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_include_both_ends_and_nothing_past_them() {
        assert!(whole(1, MAX_ATTEMPTS).is_ok());
        assert!(whole(1000, MAX_ATTEMPTS).is_ok());
        assert_eq!(
            whole(0, MAX_ATTEMPTS).unwrap_err(),
            "0 is out of range: expected 1 to 1000"
        );
        assert!(whole(1001, MAX_ATTEMPTS).is_err());
        assert!(real(1.0, BACKOFF).is_ok());
        assert!(real(10.0, BACKOFF).is_ok());
        assert!(real(0.99, BACKOFF).is_err());
        assert!(real(10.01, BACKOFF).is_err());
        assert!(real(f64::NAN, BACKOFF).is_err());
        assert!(real(f64::INFINITY, BACKOFF).is_err());
    }

    #[test]
    fn text_rules_say_what_is_wrong() {
        assert!(positive(Duration::from_nanos(1)).is_ok());
        assert_eq!(
            positive(Duration::ZERO).unwrap_err(),
            "must be longer than 0s"
        );
        assert_eq!(
            not_blank(" ", "context").unwrap_err(),
            "context must not be empty"
        );
        assert!(absolute_path("/etc/x").is_ok());
        assert!(absolute_path("etc/x").unwrap_err().contains("absolute"));
        assert!(absolute_path("").unwrap_err().contains("empty"));
        assert!(log_path("/var/log/x").is_ok());
        assert!(log_path("x").unwrap_err().contains("log path"));
        assert!(log_path(" ").unwrap_err().contains("empty"));
        assert!(exec_program("/bin/true").is_ok());
        assert!(exec_program("true").is_err());
        assert!(pool_name("www").is_ok());
        assert!(pool_name("[www]").is_err());
        assert!(pool_name("a\nb").is_err());
        assert!(pool_name("").is_err());
        assert!(config_value("64k", NGINX_VALUE_FORBIDDEN).is_ok());
        assert!(config_value("a;b", NGINX_VALUE_FORBIDDEN).is_err());
        assert!(config_value("a\u{7}", NGINX_VALUE_FORBIDDEN).is_err());
        assert!(config_value("a'b", FPM_VALUE_FORBIDDEN).is_ok());
        assert!(config_value("", FPM_VALUE_FORBIDDEN).is_err());
    }

    #[test]
    fn kubernetes_names_follow_kubernetes() {
        assert!(object_name("php-0", "pod").is_ok());
        assert!(object_name("worker-1.example.com", "node").is_ok());
        assert!(object_name("Php", "pod")
            .unwrap_err()
            .contains("invalid pod name"));
        assert!(object_name("-x", "pod").is_err());
        assert!(object_name("x-", "pod").is_err());
        assert!(object_name("", "pod").is_err());
        assert!(object_name(&"a".repeat(253), "pod").is_ok());
        assert!(object_name(&"a".repeat(254), "pod").is_err());
        assert!(namespace("web").is_ok());
        assert!(namespace("a.b").is_err());
        assert!(namespace(&"a".repeat(63)).is_ok());
        assert!(namespace(&"a".repeat(64)).is_err());
        assert!(label("app", "php").is_ok());
        assert!(label("app.kubernetes.io/name", "php_8.2").is_ok());
        assert!(label("tier", "").is_ok());
        assert!(label("-app", "x").unwrap_err().contains("label key"));
        assert!(label("Bad_Prefix/app", "x").is_err());
        assert!(label("app", "-x").unwrap_err().contains("label value"));
        assert!(label(&"a".repeat(63), &"b".repeat(63)).is_ok());
        assert!(label(&"a".repeat(64), "x").is_err());
        assert!(label("a", &"b".repeat(64)).is_err());
    }

    #[test]
    fn config_edits_reach_only_what_heals() {
        assert!(settable_directive("client_max_body_size").is_ok());
        assert!(settable_directive("include")
            .unwrap_err()
            .contains("does not set"));
        assert!(settable_directive("a-b")
            .unwrap_err()
            .contains("not a valid"));
        assert!(settable_directive("").is_err());
        for key in [
            "listen",
            "listen.mode",
            "pm",
            "pm.max_children",
            "request_slowlog_timeout",
            "request_terminate_timeout",
        ] {
            assert!(settable_pool_key(key).is_ok(), "{key}");
        }
        assert!(settable_pool_key("user")
            .unwrap_err()
            .contains("does not set"));
        assert!(settable_pool_key("listenx").is_err());
        assert!(settable_pool_key("pmx").is_err());
        assert!(settable_pool_key("a b")
            .unwrap_err()
            .contains("not a valid"));
        assert!(raisable_pool_key("pm.max_children").is_ok());
        assert!(raisable_pool_key("pm.max_childs")
            .unwrap_err()
            .contains("did you mean"));
    }
}
