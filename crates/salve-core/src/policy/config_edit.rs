//! The config-edit actions: what a policy may change in nginx's and PHP-FPM's files.
//! Every edit is validated by the service's own checker before it replaces the file,
//! then applied through systemd and verified; `action::config_edit` carries them out.

use super::defaults;
use super::names::UnitName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use super::defaults::{FPM_CONF as DEFAULT_FPM_CONF, NGINX_CONF as DEFAULT_NGINX_CONF};

/// How a changed config reaches the running service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApplyWith {
    /// `systemctl reload`: nginx re-reads its config without dropping connections.
    Reload,
    /// `systemctl restart`: needed when PHP-FPM must re-create its socket.
    Restart,
}

impl ApplyWith {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyWith::Reload => "reload",
            ApplyWith::Restart => "restart",
        }
    }
}

/// Raises or sets nginx directives inside the blocks of one file whose head is `context`.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NginxEditArgs {
    /// The file holding the block; absolute.
    #[schemars(with = "String")]
    pub file: PathBuf,
    /// The block's head as written, e.g. `http`, `server` or `location ~ \.php$`.
    pub context: String,
    /// Directives raised step by step: each step multiplies by `factor`, never past `max`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::serde_text::mapping_list"
    )]
    pub raise: Vec<RaiseDirective>,
    /// Directives given a fixed value.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::serde_text::mapping_list"
    )]
    pub set: Vec<SetDirective>,
    /// The main config `nginx -t -c` checks.
    #[serde(default = "defaults::nginx_conf")]
    #[schemars(with = "String")]
    pub config: PathBuf,
    /// The unit applying the change; the policy's target when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present"
    )]
    #[schemars(with = "UnitName")]
    pub unit: Option<UnitName>,
    #[serde(default = "defaults::nginx_apply")]
    pub apply: ApplyWith,
}

// Read through `RaiseDirectiveDoc`: what `max` means depends on the directive.
/// Raises one directive step by step.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(try_from = "RaiseDirectiveDoc", into = "RaiseDirectiveDoc")]
pub struct RaiseDirective {
    /// A size or time directive salve knows the default of, e.g. `fastcgi_buffer_size`.
    pub directive: String,
    pub factor: f64,
    /// The hard cap, in the directive's base unit.
    pub max: u64,
}

#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "RaiseDirective")]
pub struct RaiseDirectiveDoc {
    /// A size or time directive salve knows the default of, e.g. `fastcgi_buffer_size`.
    pub directive: String,
    #[schemars(range(min = 1.1, max = 16.0))]
    pub factor: f64,
    /// The hard cap, in the directive's unit: `64k`, `300s`.
    #[serde(deserialize_with = "super::serde_text::text_or_integer")]
    pub max: String,
}

/// The directive salve knows by that name, or the message saying which it knows.
pub fn known_raisable_directive(
    name: &str,
) -> Result<&'static salve_webconf::raisable::RaisableDirective, String> {
    salve_webconf::raisable::raisable_directive(name).ok_or_else(|| {
        let known = salve_webconf::raisable::raisable_directive_names();
        super::decode::unknown_name("raisable directive", name, &known)
    })
}

impl TryFrom<RaiseDirectiveDoc> for RaiseDirective {
    type Error = String;
    fn try_from(doc: RaiseDirectiveDoc) -> Result<Self, String> {
        let directive = known_raisable_directive(&doc.directive)?;
        Ok(RaiseDirective {
            directive: directive.name.to_string(),
            factor: doc.factor,
            max: directive.parse(&doc.max)?,
        })
    }
}

impl From<RaiseDirective> for RaiseDirectiveDoc {
    fn from(r: RaiseDirective) -> Self {
        let max = match salve_webconf::raisable::raisable_directive(&r.directive) {
            Some(d) => d.format(r.max),
            None => r.max.to_string(),
        };
        RaiseDirectiveDoc {
            directive: r.directive,
            factor: r.factor,
            max,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetDirective {
    pub directive: String,
    /// The arguments, as written in nginx's config.
    pub value: String,
}

/// Raises or sets keys of one PHP-FPM pool.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhpFpmEditArgs {
    /// The pool's file; absolute.
    #[schemars(with = "String")]
    pub file: PathBuf,
    /// The pool's name: its `[section]`.
    pub pool: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::serde_text::mapping_list"
    )]
    pub raise: Vec<RaiseKey>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "super::serde_text::mapping_list"
    )]
    pub set: Vec<SetKey>,
    /// The main config `php-fpm8.2 -t -y` checks.
    #[serde(default = "defaults::fpm_conf")]
    #[schemars(with = "String")]
    pub config: PathBuf,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present"
    )]
    #[schemars(with = "UnitName")]
    pub unit: Option<UnitName>,
    #[serde(default = "defaults::fpm_apply")]
    pub apply: ApplyWith,
}

#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RaiseKey {
    /// An integer key, e.g. `pm.max_children`.
    pub key: String,
    #[schemars(range(min = 1.1, max = 16.0))]
    pub factor: f64,
    pub max: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetKey {
    pub key: String,
    pub value: String,
}

/// Points every `fastcgi_pass` in `context` of nginx's `file` at the `listen` address
/// of a PHP-FPM pool, when it points at an address no pool listens on.
#[derive(Debug, Clone, PartialEq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlignFastcgiPassArgs {
    #[schemars(with = "String")]
    pub file: PathBuf,
    pub pool: String,
    #[serde(default = "defaults::fpm_conf")]
    #[schemars(with = "String")]
    pub fpm_config: PathBuf,
    #[serde(default = "defaults::nginx_conf")]
    #[schemars(with = "String")]
    pub config: PathBuf,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present"
    )]
    #[schemars(with = "UnitName")]
    pub unit: Option<UnitName>,
    #[serde(default = "defaults::nginx_apply")]
    pub apply: ApplyWith,
}
