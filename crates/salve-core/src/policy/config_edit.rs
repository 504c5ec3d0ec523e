//! The config-edit actions: what a policy may change in nginx's and PHP-FPM's files.
//! Every edit is validated by the service's own checker before it replaces the file,
//! then applied through systemd and verified; `action::config_edit` carries them out.

use super::names::UnitName;
use schemars::JsonSchema;
use std::path::PathBuf;

pub const DEFAULT_NGINX_CONF: &str = "/etc/nginx/nginx.conf";
pub const DEFAULT_FPM_CONF: &str = "/etc/php/8.2/fpm/php-fpm.conf";

/// How a changed config reaches the running service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ApplyWith {
    /// `systemctl reload`: nginx re-reads its config without dropping connections.
    #[default]
    Reload,
    /// `systemctl restart`: needed when PHP-FPM must re-create its socket.
    Restart,
}

impl ApplyWith {
    /// PHP-FPM's default: listen settings only take effect when the socket is re-created.
    pub fn restart() -> Self {
        ApplyWith::Restart
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApplyWith::Reload => "reload",
            ApplyWith::Restart => "restart",
        }
    }
}

/// Raises or sets nginx directives inside the blocks of one file whose head is `context`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NginxEditArgs {
    /// The file holding the block; absolute.
    #[schemars(with = "String")]
    pub file: PathBuf,
    /// The block's head as written, e.g. `http`, `server` or `location ~ \.php$`.
    pub context: String,
    /// Directives raised step by step: each step multiplies by `factor`, never past `max`.
    #[serde(default)]
    pub raise: Vec<RaiseDirective>,
    /// Directives given a fixed value.
    #[serde(default)]
    pub set: Vec<SetDirective>,
    /// The main config `nginx -t -c` checks.
    #[serde(default)]
    #[schemars(with = "String", extend("default" = DEFAULT_NGINX_CONF))]
    pub config: PathBuf,
    /// The unit applying the change; the policy's target when absent.
    #[serde(default)]
    pub unit: Option<UnitName>,
    #[serde(default)]
    pub apply: ApplyWith,
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RaiseDirective {
    /// A size or time directive salve knows the default of, e.g. `fastcgi_buffer_size`.
    pub directive: String,
    #[schemars(range(min = 1.1, max = 16.0))]
    pub factor: f64,
    /// The hard cap, in the directive's unit: `64k`, `300s`.
    #[schemars(with = "String")]
    pub max: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetDirective {
    pub directive: String,
    /// The arguments, as written in nginx's config.
    pub value: String,
}

/// Raises or sets keys of one PHP-FPM pool.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhpFpmEditArgs {
    /// The pool's file; absolute.
    #[schemars(with = "String")]
    pub file: PathBuf,
    /// The pool's name: its `[section]`.
    pub pool: String,
    #[serde(default)]
    pub raise: Vec<RaiseKey>,
    #[serde(default)]
    pub set: Vec<SetKey>,
    /// The main config `php-fpm8.2 -t -y` checks.
    #[serde(default)]
    #[schemars(with = "String", extend("default" = DEFAULT_FPM_CONF))]
    pub config: PathBuf,
    #[serde(default)]
    pub unit: Option<UnitName>,
    #[serde(default = "ApplyWith::restart")]
    pub apply: ApplyWith,
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RaiseKey {
    /// An integer key, e.g. `pm.max_children`.
    pub key: String,
    #[schemars(range(min = 1.1, max = 16.0))]
    pub factor: f64,
    pub max: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetKey {
    pub key: String,
    pub value: String,
}

/// Points every `fastcgi_pass` in `context` of nginx's `file` at the `listen` address
/// of a PHP-FPM pool, when it points at an address no pool listens on.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlignFastcgiPassArgs {
    #[schemars(with = "String")]
    pub file: PathBuf,
    pub pool: String,
    #[serde(default)]
    #[schemars(with = "String", extend("default" = DEFAULT_FPM_CONF))]
    pub fpm_config: PathBuf,
    #[serde(default)]
    #[schemars(with = "String", extend("default" = DEFAULT_NGINX_CONF))]
    pub config: PathBuf,
    #[serde(default)]
    pub unit: Option<UnitName>,
    #[serde(default)]
    pub apply: ApplyWith,
}
