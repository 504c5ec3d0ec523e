//! Decoding the config-edit actions: `nginxEdit`, `phpFpmEdit`, `alignFastcgiPass`.

use super::super::decode::{unknown_name, Decoder, Fields, Noun};
use super::super::model::*;
use super::super::names::UnitName;
use super::super::yaml::Node;
use super::{opt, optional, parsed};
use salve_webconf::raisable::{raisable_directive, raisable_directive_names, RAISABLE_FPM_KEYS};
use std::path::PathBuf;

pub(crate) const NGINX_EDIT_FIELDS: &[&str] =
    &["file", "context", "raise", "set", "config", "unit", "apply"];
pub(crate) const RAISE_DIRECTIVE_FIELDS: &[&str] = &["directive", "factor", "max"];
pub(crate) const SET_DIRECTIVE_FIELDS: &[&str] = &["directive", "value"];
pub(crate) const PHP_FPM_EDIT_FIELDS: &[&str] =
    &["file", "pool", "raise", "set", "config", "unit", "apply"];
pub(crate) const RAISE_KEY_FIELDS: &[&str] = &["key", "factor", "max"];
pub(crate) const SET_KEY_FIELDS: &[&str] = &["key", "value"];
pub(crate) const ALIGN_FASTCGI_PASS_FIELDS: &[&str] =
    &["file", "pool", "fpmConfig", "config", "unit", "apply"];

const RAISES: Noun = Noun::new("raise", "raises");
const SETS: Noun = Noun::new("setting", "settings");

pub(super) fn nginx_edit(dec: &mut Decoder, args: &Node) -> Option<Action> {
    let f = dec.fields(args, "the nginxEdit action", NGINX_EDIT_FIELDS)?;
    let file = f.required(dec, "file").and_then(|n| absolute_path(dec, n));
    let context = f
        .required(dec, "context")
        .and_then(|n| dec.non_empty_string(n, "context"));
    let raise = opt(dec, &f, "raise", Vec::new(), |d, n| {
        d.list(n, RAISES, raise_directive)
    });
    let set = opt(dec, &f, "set", Vec::new(), |d, n| {
        d.list(n, SETS, set_directive)
    });
    let common = common(dec, &f, DEFAULT_NGINX_CONF, ApplyWith::Reload);
    something_to_change(dec, &f, &raise, &set)?;
    let (config, unit, apply) = common?;
    Some(Action::NginxEdit(NginxEditArgs {
        file: file?,
        context: context?,
        raise: raise?,
        set: set?,
        config,
        unit,
        apply,
    }))
}

pub(super) fn php_fpm_edit(dec: &mut Decoder, args: &Node) -> Option<Action> {
    let f = dec.fields(args, "the phpFpmEdit action", PHP_FPM_EDIT_FIELDS)?;
    let file = f.required(dec, "file").and_then(|n| absolute_path(dec, n));
    let pool = f.required(dec, "pool").and_then(|n| pool_name(dec, n));
    let raise = opt(dec, &f, "raise", Vec::new(), |d, n| {
        d.list(n, RAISES, raise_key)
    });
    let set = opt(dec, &f, "set", Vec::new(), |d, n| d.list(n, SETS, set_key));
    let common = common(dec, &f, DEFAULT_FPM_CONF, ApplyWith::Restart);
    something_to_change(dec, &f, &raise, &set)?;
    let (config, unit, apply) = common?;
    Some(Action::PhpFpmEdit(PhpFpmEditArgs {
        file: file?,
        pool: pool?,
        raise: raise?,
        set: set?,
        config,
        unit,
        apply,
    }))
}

pub(super) fn align_fastcgi_pass(dec: &mut Decoder, args: &Node) -> Option<Action> {
    let f = dec.fields(
        args,
        "the alignFastcgiPass action",
        ALIGN_FASTCGI_PASS_FIELDS,
    )?;
    let file = f.required(dec, "file").and_then(|n| absolute_path(dec, n));
    let pool = f.required(dec, "pool").and_then(|n| pool_name(dec, n));
    let fpm_config = opt(
        dec,
        &f,
        "fpmConfig",
        PathBuf::from(DEFAULT_FPM_CONF),
        absolute_path,
    );
    let (config, unit, apply) = common(dec, &f, DEFAULT_NGINX_CONF, ApplyWith::Reload)?;
    Some(Action::AlignFastcgiPass(AlignFastcgiPassArgs {
        file: file?,
        pool: pool?,
        fpm_config: fpm_config?,
        config,
        unit,
        apply,
    }))
}

fn common(
    dec: &mut Decoder,
    f: &Fields<'_>,
    default_config: &str,
    default_apply: ApplyWith,
) -> Option<(PathBuf, Option<UnitName>, ApplyWith)> {
    let config = opt(
        dec,
        f,
        "config",
        PathBuf::from(default_config),
        absolute_path,
    );
    let unit = optional(f.get("unit").map(|n| parsed(dec, n, UnitName::parse)));
    let apply = opt(dec, f, "apply", default_apply, |d, n| {
        let text = d.string(n)?;
        match text.as_str() {
            "reload" => Some(ApplyWith::Reload),
            "restart" => Some(ApplyWith::Restart),
            _ => {
                d.error(n.pos, unknown_name("apply", &text, &["reload", "restart"]));
                None
            }
        }
    });
    Some((config?, unit?, apply?))
}

fn something_to_change<A, B>(
    dec: &mut Decoder,
    f: &Fields<'_>,
    raise: &Option<Vec<A>>,
    set: &Option<Vec<B>>,
) -> Option<()> {
    if let (Some(raise), Some(set)) = (raise, set) {
        if raise.is_empty() && set.is_empty() {
            dec.error(
                f.pos,
                "a config edit needs at least one entry in raise or set",
            );
            return None;
        }
    }
    Some(())
}

fn absolute_path(dec: &mut Decoder, node: &Node) -> Option<PathBuf> {
    let text = dec.non_empty_string(node, "a path")?;
    if !text.starts_with('/') {
        dec.error(node.pos, format!("\"{text}\" must be an absolute path"));
        return None;
    }
    Some(PathBuf::from(text))
}

fn pool_name(dec: &mut Decoder, node: &Node) -> Option<String> {
    let text = dec.non_empty_string(node, "pool")?;
    if text.contains(['[', ']', '\n']) {
        dec.error(
            node.pos,
            "a pool name is the text between [ and ], without them",
        );
        return None;
    }
    Some(text)
}

fn factor(dec: &mut Decoder, f: &Fields<'_>) -> Option<f64> {
    f.required(dec, "factor")
        .and_then(|n| dec.float(n, 1.1, 16.0))
}

/// A value written into a config line: one line, and nothing that would end the
/// directive or open a block, so a policy can never inject a second directive.
fn config_value(dec: &mut Decoder, node: &Node, forbidden: &[char]) -> Option<String> {
    let text = dec.non_empty_string(node, "value")?;
    if let Some(c) = text
        .chars()
        .find(|c| forbidden.contains(c) || c.is_control())
    {
        dec.error(node.pos, format!("value must not contain {c:?}"));
        return None;
    }
    Some(text)
}

fn config_name(dec: &mut Decoder, node: &Node, what: &str, extra: &[char]) -> Option<String> {
    let text = dec.non_empty_string(node, what)?;
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
    {
        dec.error(node.pos, format!("\"{text}\" is not a valid {what}"));
        return None;
    }
    Some(text)
}

fn raise_directive(dec: &mut Decoder, node: &Node) -> Option<RaiseDirective> {
    let f = dec.fields(node, "a raise", RAISE_DIRECTIVE_FIELDS)?;
    let known = raisable_directive_names();
    let directive = f.required(dec, "directive").and_then(|n| {
        let name = dec.string(n)?;
        match raisable_directive(&name) {
            Some(d) => Some(d),
            None => {
                dec.error(n.pos, unknown_name("raisable directive", &name, &known));
                None
            }
        }
    });
    let factor = factor(dec, &f);
    let max = match (directive, f.required(dec, "max")) {
        (Some(d), Some(n)) => parsed(dec, n, |t| d.parse(t)),
        _ => None,
    };
    Some(RaiseDirective {
        directive: directive?.name.to_string(),
        factor: factor?,
        max: max?,
    })
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

/// The pool keys a policy may set: how the pool listens and how many workers it runs.
/// Anything else (its user, `php_admin_value[...]`, `include`) changes what runs, not
/// how a 502 is healed.
fn settable_pool_key(key: &str) -> bool {
    key == "listen"
        || key.starts_with("listen.")
        || key == "pm"
        || key.starts_with("pm.")
        || ["request_terminate_timeout", "request_slowlog_timeout"].contains(&key)
}

fn set_directive(dec: &mut Decoder, node: &Node) -> Option<SetDirective> {
    let f = dec.fields(node, "a setting", SET_DIRECTIVE_FIELDS)?;
    let directive = f.required(dec, "directive").and_then(|n| {
        let name = config_name(dec, n, "nginx directive", &[])?;
        if UNSETTABLE_DIRECTIVES.contains(&name.as_str()) {
            dec.error(n.pos, format!("salve does not set `{name}`: it changes what nginx runs, not how it heals (alignFastcgiPass fixes fastcgi_pass)"));
            return None;
        }
        Some(name)
    });
    let value = f
        .required(dec, "value")
        .and_then(|n| config_value(dec, n, &[';', '{', '}', '#', '"', '\'']));
    Some(SetDirective {
        directive: directive?,
        value: value?,
    })
}

fn raise_key(dec: &mut Decoder, node: &Node) -> Option<RaiseKey> {
    let f = dec.fields(node, "a raise", RAISE_KEY_FIELDS)?;
    let key = f.required(dec, "key").and_then(|n| {
        let key = dec.string(n)?;
        if RAISABLE_FPM_KEYS.contains(&key.as_str()) {
            Some(key)
        } else {
            dec.error(
                n.pos,
                unknown_name("raisable pool key", &key, RAISABLE_FPM_KEYS),
            );
            None
        }
    });
    let factor = factor(dec, &f);
    let max = f
        .required(dec, "max")
        .and_then(|n| dec.integer(n, 1, 100_000));
    Some(RaiseKey {
        key: key?,
        factor: factor?,
        max: max?,
    })
}

fn set_key(dec: &mut Decoder, node: &Node) -> Option<SetKey> {
    let f = dec.fields(node, "a setting", SET_KEY_FIELDS)?;
    let key = f.required(dec, "key").and_then(|n| {
        let key = config_name(dec, n, "pool key", &['.', '[', ']'])?;
        if !settable_pool_key(&key) {
            dec.error(n.pos, format!("salve does not set `{key}`: only listen, listen.*, pm, pm.*, request_terminate_timeout and request_slowlog_timeout"));
            return None;
        }
        Some(key)
    });
    let value = f
        .required(dec, "value")
        .and_then(|n| config_value(dec, n, &[';', '"']));
    Some(SetKey {
        key: key?,
        value: value?,
    })
}
