//! Decoding the config-edit actions: `nginxEdit`, `phpFpmEdit`, `alignFastcgiPass`.

use super::super::decode::{unknown_name, Decoder, Fields, Noun};
use super::super::defaults;
use super::super::model::*;
use super::super::names::UnitName;
use super::super::rules;
use super::super::yaml::Node;
use super::{opt, optional, parsed};
use std::path::PathBuf;

pub(crate) const NGINX_EDIT_FIELDS: &[&str] =
    &["file", "context", "raise", "set", "config", "unit", "apply"];
pub(crate) const CONFIG_MAP_EDIT_FIELDS: &[&str] = &["configMap", "key", "context", "raise", "set"];
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

/// What an nginx edit changes, in a file or in a ConfigMap's key.
#[allow(clippy::type_complexity)]
fn nginx_directives(
    dec: &mut Decoder,
    f: &Fields<'_>,
) -> (
    Option<String>,
    Option<Vec<RaiseDirective>>,
    Option<Vec<SetDirective>>,
) {
    let context = f
        .required(dec, "context")
        .and_then(|n| dec.checked_string(n, |t| rules::not_blank(t, "context")));
    let raise = opt(dec, f, "raise", Vec::new(), |d, n| {
        d.list(n, RAISES, raise_directive)
    });
    let set = opt(dec, f, "set", Vec::new(), |d, n| {
        d.list(n, SETS, set_directive)
    });
    (context, raise, set)
}

pub(super) fn nginx_edit(dec: &mut Decoder, args: &Node) -> Option<Action> {
    let f = dec.options(args, "the nginxEdit action", NGINX_EDIT_FIELDS)?;
    let file = f.required(dec, "file").and_then(|n| absolute_path(dec, n));
    let (context, raise, set) = nginx_directives(dec, &f);
    let (config, unit, apply) = common(dec, &f, defaults::nginx_conf(), defaults::nginx_apply())?;
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

pub(super) fn config_map_edit(dec: &mut Decoder, args: &Node) -> Option<Action> {
    let f = dec.fields(args, "the configMapEdit action", CONFIG_MAP_EDIT_FIELDS)?;
    let config_map = f
        .required(dec, "configMap")
        .and_then(|n| dec.checked_string(n, |t| rules::object_name(t, "ConfigMap")));
    let key = f
        .required(dec, "key")
        .and_then(|n| dec.checked_string(n, rules::config_map_key));
    let (context, raise, set) = nginx_directives(dec, &f);
    Some(Action::ConfigMapEdit(ConfigMapEditArgs {
        config_map: config_map?,
        key: key?,
        context: context?,
        raise: raise?,
        set: set?,
    }))
}

pub(super) fn php_fpm_edit(dec: &mut Decoder, args: &Node) -> Option<Action> {
    let f = dec.options(args, "the phpFpmEdit action", PHP_FPM_EDIT_FIELDS)?;
    let file = f.required(dec, "file").and_then(|n| absolute_path(dec, n));
    let pool = f.required(dec, "pool").and_then(|n| pool_name(dec, n));
    let raise = opt(dec, &f, "raise", Vec::new(), |d, n| {
        d.list(n, RAISES, raise_key)
    });
    let set = opt(dec, &f, "set", Vec::new(), |d, n| d.list(n, SETS, set_key));
    let (config, unit, apply) = common(dec, &f, defaults::fpm_conf(), defaults::fpm_apply())?;
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
    let f = dec.options(
        args,
        "the alignFastcgiPass action",
        ALIGN_FASTCGI_PASS_FIELDS,
    )?;
    let file = f.required(dec, "file").and_then(|n| absolute_path(dec, n));
    let pool = f.required(dec, "pool").and_then(|n| pool_name(dec, n));
    let fpm_config = opt(dec, &f, "fpmConfig", defaults::fpm_conf(), absolute_path);
    let (config, unit, apply) = common(dec, &f, defaults::nginx_conf(), defaults::nginx_apply())?;
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
    default_config: PathBuf,
    default_apply: ApplyWith,
) -> Option<(PathBuf, Option<UnitName>, ApplyWith)> {
    let config = opt(dec, f, "config", default_config, absolute_path);
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

pub(super) fn absolute_path(dec: &mut Decoder, node: &Node) -> Option<PathBuf> {
    dec.checked_string(node, rules::absolute_path)
        .map(PathBuf::from)
}

fn pool_name(dec: &mut Decoder, node: &Node) -> Option<String> {
    dec.checked_string(node, rules::pool_name)
}

fn factor(dec: &mut Decoder, f: &Fields<'_>) -> Option<f64> {
    f.required(dec, "factor")
        .and_then(|n| dec.float(n, rules::RAISE_FACTOR))
}

fn raise_directive(dec: &mut Decoder, node: &Node) -> Option<RaiseDirective> {
    let f = dec.fields(node, "a raise", RAISE_DIRECTIVE_FIELDS)?;
    let directive = f
        .required(dec, "directive")
        .and_then(|n| parsed(dec, n, known_raisable_directive));
    let factor = factor(dec, &f);
    let max = match (directive, f.required(dec, "max")) {
        (Some(d), Some(n)) => dec
            .text_or_integer(n)
            .and_then(|t| d.parse(&t).map_err(|e| dec.error(n.pos, e)).ok()),
        _ => None,
    };
    Some(RaiseDirective {
        directive: directive?.name.to_string(),
        factor: factor?,
        max: max?,
    })
}

fn set_directive(dec: &mut Decoder, node: &Node) -> Option<SetDirective> {
    let f = dec.fields(node, "a setting", SET_DIRECTIVE_FIELDS)?;
    let directive = f
        .required(dec, "directive")
        .and_then(|n| dec.checked_string(n, rules::settable_directive));
    let value = f.required(dec, "value").and_then(|n| {
        dec.checked_string(n, |t| rules::config_value(t, rules::NGINX_VALUE_FORBIDDEN))
    });
    Some(SetDirective {
        directive: directive?,
        value: value?,
    })
}

fn raise_key(dec: &mut Decoder, node: &Node) -> Option<RaiseKey> {
    let f = dec.fields(node, "a raise", RAISE_KEY_FIELDS)?;
    let key = f
        .required(dec, "key")
        .and_then(|n| dec.checked_string(n, rules::raisable_pool_key));
    let factor = factor(dec, &f);
    let max = f
        .required(dec, "max")
        .and_then(|n| dec.integer(n, rules::POOL_KEY_MAX));
    Some(RaiseKey {
        key: key?,
        factor: factor?,
        max: max?,
    })
}

fn set_key(dec: &mut Decoder, node: &Node) -> Option<SetKey> {
    let f = dec.fields(node, "a setting", SET_KEY_FIELDS)?;
    let key = f
        .required(dec, "key")
        .and_then(|n| dec.checked_string(n, rules::settable_pool_key));
    let value = f.required(dec, "value").and_then(|n| {
        dec.checked_string(n, |t| rules::config_value(t, rules::FPM_VALUE_FORBIDDEN))
    });
    Some(SetKey {
        key: key?,
        value: value?,
    })
}
