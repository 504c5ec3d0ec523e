//! The policy model: what a `RemediationPolicy` document means once it has been
//! validated. The JSON Schema (`salve schema`) is derived from these types, and
//! `parse.rs` decodes YAML into them; a test keeps the two in step.

pub use super::config_edit::*;
use super::names::{HttpUrl, PolicyName, SignalName, UnitName};
use super::schema_types::{DurationSchema, NoArgs, RegexSchema};
use regex::Regex;
use schemars::JsonSchema;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub const API_VERSION: &str = "salve.dev/v1alpha1";
pub const KIND: &str = "RemediationPolicy";

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "salve.dev/v1alpha1")]
    V1Alpha1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum Kind {
    RemediationPolicy,
}

/// Where a policy was defined, for messages and `salve check` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    pub file: PathBuf,
    /// Position of the policy's `metadata.name` value.
    pub line: usize,
    pub col: usize,
}

/// A salve remediation policy: when the trigger fires on the target, run the actions,
/// verify they worked, within the guard's limits.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "RemediationPolicy")]
pub struct Policy {
    pub api_version: ApiVersion,
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: PolicySpec,
    #[serde(skip)]
    pub source: Source,
}

impl Policy {
    pub fn name(&self) -> &str {
        self.metadata.name.as_str()
    }
}

#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: PolicyName,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    pub target: Target,
    /// Any one of these conditions fires the policy.
    #[schemars(length(min = 1))]
    pub trigger: Vec<Trigger>,
    /// Run in order; the attempt stops at the first failure.
    #[schemars(length(min = 1))]
    pub actions: Vec<Action>,
    /// The attempt counts as a success only if this holds in time.
    #[serde(default)]
    pub verify: Option<Verify>,
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub guard: Guard,
    /// Run once when the circuit opens.
    #[serde(default)]
    pub escalate: Vec<Action>,
    /// Decide and journal, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    pub unit: UnitName,
}

#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    #[serde(flatten)]
    pub condition: Condition,
    /// The condition must hold continuously this long; a flap resets it.
    #[serde(rename = "for", default)]
    #[schemars(with = "DurationSchema", extend("default" = "0s"))]
    pub hold: Duration,
}

#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Condition {
    Unit(UnitCondition),
    Http(HttpCondition),
    Log(LogCondition),
}

/// Holds while every listed property of the target unit has one of the listed values.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitCondition {
    #[serde(default)]
    pub active_state: Vec<ActiveState>,
    #[serde(default)]
    pub sub_state: Vec<String>,
    #[serde(default)]
    pub unit_file_state: Vec<UnitFileState>,
}

/// systemd's `ActiveState` values (org.freedesktop.systemd1.Unit).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Maintenance,
    Refreshing,
}

impl ActiveState {
    pub const ALL: [ActiveState; 8] = [
        ActiveState::Active,
        ActiveState::Reloading,
        ActiveState::Inactive,
        ActiveState::Failed,
        ActiveState::Activating,
        ActiveState::Deactivating,
        ActiveState::Maintenance,
        ActiveState::Refreshing,
    ];

    /// From systemd's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// systemd's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Maintenance => "maintenance",
            ActiveState::Refreshing => "refreshing",
        }
    }
}

/// systemd's `UnitFileState` values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum UnitFileState {
    Enabled,
    EnabledRuntime,
    Linked,
    LinkedRuntime,
    Alias,
    Masked,
    MaskedRuntime,
    Static,
    Disabled,
    Invalid,
    Indirect,
    Generated,
    Transient,
    Bad,
}

impl UnitFileState {
    pub const ALL: [UnitFileState; 14] = [
        UnitFileState::Enabled,
        UnitFileState::EnabledRuntime,
        UnitFileState::Linked,
        UnitFileState::LinkedRuntime,
        UnitFileState::Alias,
        UnitFileState::Masked,
        UnitFileState::MaskedRuntime,
        UnitFileState::Static,
        UnitFileState::Disabled,
        UnitFileState::Invalid,
        UnitFileState::Indirect,
        UnitFileState::Generated,
        UnitFileState::Transient,
        UnitFileState::Bad,
    ];

    /// From systemd's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// systemd's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitFileState::Enabled => "enabled",
            UnitFileState::EnabledRuntime => "enabled-runtime",
            UnitFileState::Linked => "linked",
            UnitFileState::LinkedRuntime => "linked-runtime",
            UnitFileState::Alias => "alias",
            UnitFileState::Masked => "masked",
            UnitFileState::MaskedRuntime => "masked-runtime",
            UnitFileState::Static => "static",
            UnitFileState::Disabled => "disabled",
            UnitFileState::Invalid => "invalid",
            UnitFileState::Indirect => "indirect",
            UnitFileState::Generated => "generated",
            UnitFileState::Transient => "transient",
            UnitFileState::Bad => "bad",
        }
    }
}

/// Holds after `failures` consecutive failed probes: no response, or a status in `status`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCondition {
    pub url: HttpUrl,
    /// Statuses that count as a failure.
    #[serde(default)]
    #[schemars(extend("default" = [502, 503, 504]), inner(range(min = 100, max = 599)))]
    pub status: Vec<u16>,
    /// Consecutive failures needed.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000), extend("default" = 3))]
    pub failures: u32,
    #[serde(default)]
    #[schemars(with = "DurationSchema", extend("default" = "5s"))]
    pub interval: Duration,
    #[serde(default)]
    #[schemars(with = "DurationSchema", extend("default" = "2s"))]
    pub timeout: Duration,
}

/// Holds when `pattern` (or the built-in pattern named by `match`) matched at least
/// `count` lines of `path` within `within`.
#[derive(Debug, Clone)]
pub struct LogCondition {
    pub path: PathBuf,
    pub pattern: LogPattern,
    pub count: u32,
    pub within: Duration,
}

/// What a log condition looks for: the policy's own regex, or a built-in one by name.
#[derive(Debug, Clone)]
pub struct LogPattern {
    pub regex: Regex,
    /// The built-in pattern's name (`nginx.too_big_header`), if the policy used `match`.
    pub builtin: Option<&'static str>,
}

/// Written by hand: `pattern` and `match` are alternatives (exactly one is required),
/// which the derive cannot express. `parse.rs` decodes the same fields, and a test
/// keeps the two in step.
impl JsonSchema for LogCondition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LogCondition".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let duration = generator.subschema_for::<DurationSchema>();
        let regex = generator.subschema_for::<RegexSchema>();
        let builtins: Vec<&str> = crate::policy::log_patterns::builtin_names().collect();
        schemars::json_schema!({
            "description": "Holds when `pattern` (or the built-in pattern named by `match`) matched at least `count` lines of `path` within `within`.",
            "type": "object",
            "properties": {
                "path": { "type": "string", "description": "Absolute path of the log file; followed across rotation and truncation." },
                "pattern": regex,
                "match": { "type": "string", "enum": builtins, "description": "A built-in pattern, instead of `pattern`." },
                "count": { "type": "integer", "format": "uint32", "minimum": 1, "maximum": 100000, "default": 1 },
                "within": duration
            },
            "required": ["path"],
            "oneOf": [ { "required": ["pattern"] }, { "required": ["match"] } ],
            "additionalProperties": false
        })
    }
}

/// A remediation step. systemd actions apply to the target unit.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Start(NoArgs),
    Stop(NoArgs),
    Restart(NoArgs),
    TryRestart(NoArgs),
    Reload(NoArgs),
    ResetFailed(NoArgs),
    Kill(KillArgs),
    Enable(NoArgs),
    Disable(NoArgs),
    Notify(NotifyArgs),
    Exec(ExecArgs),
    NginxEdit(NginxEditArgs),
    PhpFpmEdit(PhpFpmEditArgs),
    AlignFastcgiPass(AlignFastcgiPassArgs),
}

impl Action {
    /// Whether the action rewrites a config file (and so must be verified, and may not
    /// escalate).
    pub fn is_config_edit(&self) -> bool {
        matches!(
            self,
            Action::NginxEdit(_) | Action::PhpFpmEdit(_) | Action::AlignFastcgiPass(_)
        )
    }

    /// The action's name as written in a policy.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Start(_) => "start",
            Action::Stop(_) => "stop",
            Action::Restart(_) => "restart",
            Action::TryRestart(_) => "tryRestart",
            Action::Reload(_) => "reload",
            Action::ResetFailed(_) => "resetFailed",
            Action::Kill(_) => "kill",
            Action::Enable(_) => "enable",
            Action::Disable(_) => "disable",
            Action::Notify(_) => "notify",
            Action::Exec(_) => "exec",
            Action::NginxEdit(_) => "nginxEdit",
            Action::PhpFpmEdit(_) => "phpFpmEdit",
            Action::AlignFastcgiPass(_) => "alignFastcgiPass",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KillArgs {
    #[serde(default)]
    #[schemars(extend("default" = "SIGTERM"))]
    pub signal: SignalName,
    /// Which processes of the unit get the signal.
    #[serde(default)]
    #[schemars(extend("default" = "all"))]
    pub whom: KillWhom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum KillWhom {
    #[default]
    All,
    Main,
    Control,
}

impl KillWhom {
    pub fn as_str(self) -> &'static str {
        match self {
            KillWhom::All => "all",
            KillWhom::Main => "main",
            KillWhom::Control => "control",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyArgs {
    pub webhook: HttpUrl,
    #[serde(default)]
    #[schemars(with = "DurationSchema", extend("default" = "5s"))]
    pub timeout: Duration,
}

/// Runs a program directly (argv, never a shell string).
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecArgs {
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    #[serde(default)]
    #[schemars(with = "DurationSchema", extend("default" = "30s"))]
    pub timeout: Duration,
    /// Variables the program gets beside PATH, LANG and salve's own (SALVE_POLICY,
    /// SALVE_TARGET, SALVE_ATTEMPT_ID); nothing else of the agent's environment is passed.
    #[serde(default)]
    #[schemars(with = "Vec<String>", extend("description" = "NAME=value pairs the program gets beside PATH, LANG and SALVE_POLICY, SALVE_TARGET, SALVE_ATTEMPT_ID; nothing else of the agent's environment is passed."))]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Verify {
    #[serde(default)]
    pub http: Option<HttpVerify>,
    #[serde(default)]
    pub unit: Option<UnitVerify>,
}

/// Passes when the URL answers one of `status` within `within`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpVerify {
    pub url: HttpUrl,
    #[serde(default)]
    #[schemars(extend("default" = [200]), inner(range(min = 100, max = 599)))]
    pub status: Vec<u16>,
    #[serde(default)]
    #[schemars(with = "DurationSchema", extend("default" = "10s"))]
    pub within: Duration,
}

/// Passes when the target unit reaches one of `activeState` within `within`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitVerify {
    #[serde(default)]
    #[schemars(extend("default" = ["active"]))]
    pub active_state: Vec<ActiveState>,
    #[serde(default)]
    #[schemars(with = "DurationSchema", extend("default" = "10s"))]
    pub within: Duration,
}

/// Limits on how often a policy may act on its target.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Guard {
    /// Minimum gap between the starts of two attempts; must not exceed `window`.
    #[serde(default)]
    #[schemars(with = "DurationSchema", extend("default" = "10s"))]
    pub cooldown: Duration,
    /// Attempts allowed within `window` before the circuit opens.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000), extend("default" = 3))]
    pub max_attempts: u32,
    #[serde(default)]
    #[schemars(with = "DurationSchema", extend("default" = "10m"))]
    pub window: Duration,
    /// Cooldown multiplier after each failed attempt (the cooldown never grows past
    /// `window`).
    #[serde(default)]
    #[schemars(range(min = 1.0, max = 10.0), extend("default" = 2.0))]
    pub backoff: f64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            cooldown: Duration::from_secs(10),
            max_attempts: 3,
            window: Duration::from_secs(600),
            backoff: 2.0,
        }
    }
}
