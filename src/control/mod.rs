//! The agent's control socket: a person on call asks the running agent its state
//! (`salve status`) and steers it (`pause`, `resume`, `reset`, `reload`).
//!
//! One JSON request per connection, one JSON answer, over a Unix socket in the
//! agent's runtime directory (or one systemd passes from a `.socket` unit). The socket
//! is the owner's and the admin group's (`salve-admin`), mode 0660; every request's
//! sender is checked again from the credentials the kernel gives for the connection
//! (`SO_PEERCRED`, `SO_PEERGROUPS`): root, or a member of the admin group. Never the
//! agent's own user: the programs an `exec` action runs are that user too, and a
//! policy's program must not be able to pause the agent that runs it. Every command
//! the agent carries out is journalled with who sent it before the answer goes back;
//! a permission refusal is journalled too, at most once a minute per user.

pub mod client;
pub mod peer;
pub mod server;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The answer to a sender who is neither root nor in the admin group.
pub const PERMISSION_DENIED: &str =
    "permission denied: only root and the agent's admin group may use its control socket";

/// Where the agent listens unless its config says otherwise (`control.socket`).
pub const DEFAULT_SOCKET: &str = "/run/salve/control.sock";
/// The group whose members may use the socket besides root.
pub const DEFAULT_ADMIN_GROUP: &str = "salve-admin";
/// The longest pause: a deploy window, not a way to switch salve off for good.
pub const MAX_PAUSE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest reason kept.
pub const MAX_REASON: usize = crate::policy::rules::PAUSE_REASON_MAX;
/// The largest request read: far more than any command, and a bound for a peer that
/// sends without end.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Where the control socket is and who may use it (`control:` in the agent config).
#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    pub socket: PathBuf,
    pub admin_group: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            admin_group: DEFAULT_ADMIN_GROUP.to_string(),
        }
    }
}

/// What `salve status|pause|resume|reset|reload` asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "command",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Request {
    Status {},
    /// Holds back new attempts on a target or a policy for `duration` (`30m`).
    Pause {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
        #[serde(rename = "for")]
        duration: String,
        reason: String,
    },
    Resume {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
    },
    /// Closes the circuit of a target (of every target of a policy).
    Reset {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
    },
    /// Reads the policies again, as SIGHUP does.
    Reload {},
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status {} => "status",
            Request::Pause { .. } => "pause",
            Request::Resume { .. } => "resume",
            Request::Reset { .. } => "reset",
            Request::Reload {} => "reload",
        }
    }

    /// What the request names (nothing for `status` and `reload`).
    pub fn scope(&self) -> Scope {
        match self {
            Request::Pause { target, policy, .. }
            | Request::Resume { target, policy }
            | Request::Reset { target, policy } => Scope {
                target: target.clone(),
                policy: policy.clone(),
            },
            Request::Status {} | Request::Reload {} => Scope::default(),
        }
    }
}

/// A target (as `salve status` names it) or a policy, exactly one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl Scope {
    pub fn engine(&self) -> Result<crate::engine::PauseScope, String> {
        use crate::engine::PauseScope;
        match (&self.target, &self.policy) {
            (Some(t), None) => Ok(PauseScope::Target(t.clone())),
            (None, Some(p)) => Ok(PauseScope::Policy(p.clone())),
            _ => Err("name either a target or a policy (--policy), not both".to_string()),
        }
    }
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: message.into(),
            status: None,
        }
    }

    pub fn refused(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            message: message.into(),
            status: None,
        }
    }
}

/// `salve status`: every policy's line and the pauses in force. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub policies: Vec<PolicyLine>,
    pub pauses: Vec<PauseLine>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyLine {
    pub policy: String,
    pub target: String,
    /// `ok`, `triggered`, `acting`, `cooldown`, `circuit open`, `paused`, `selector`.
    pub state: String,
    pub dry_run: bool,
    pub attempts: u32,
    pub max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_open_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<String>,
    /// The last decision journalled (`act`, `skip: cooldown`, ...) and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision_at: Option<String>,
    /// The last attempt's result (`ok, verified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseLine {
    /// `target php8.2-fpm.service` or `policy php-fpm-down`.
    pub scope: String,
    pub until: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A pause's duration as a person writes it, within bounds.
pub fn pause_duration(text: &str) -> Result<Duration, String> {
    let d = crate::policy::parse_duration(text)
        .map_err(|e| format!("invalid pause duration \"{text}\": {e}"))?;
    if d < Duration::from_secs(1) || d > MAX_PAUSE {
        return Err(format!(
            "a pause lasts from 1s to {}, not {text}",
            humantime::format_duration(MAX_PAUSE)
        ));
    }
    Ok(d)
}

/// A pause's reason: said, short, and one line of printable text (it goes to the
/// journal and to a terminal).
pub fn pause_reason(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("say why (--reason \"deploy\"): a pause is journalled with its reason".into());
    }
    if text.chars().count() > MAX_REASON {
        return Err(format!("the reason is longer than {MAX_REASON} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("the reason must be one line of printable text".into());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_the_cli_writes_them() {
        let pause: Request = serde_json::from_str(
            r#"{"command":"pause","target":"php8.2-fpm.service","for":"30m","reason":"deploy"}"#,
        )
        .unwrap();
        assert_eq!(
            pause,
            Request::Pause {
                target: Some("php8.2-fpm.service".into()),
                policy: None,
                duration: "30m".into(),
                reason: "deploy".into()
            }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"command":"status"}"#).unwrap(),
            Request::Status {}
        );
        for bad in [
            r#"{"command":"shutdown"}"#,
            r#"{"command":"pause","target":"x","for":"1m"}"#,
            r#"{"command":"pause","target":"x","for":"1m","reason":"r","extra":1}"#,
            r#"{"command":"status","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pause_is_bounded_and_says_why() {
        assert_eq!(pause_duration("30m"), Ok(Duration::from_secs(1800)));
        assert!(pause_duration("0s").is_err());
        assert!(pause_duration("8d")
            .unwrap_err()
            .contains("from 1s to 7days"));
        assert!(pause_duration("soon").is_err());
        assert_eq!(pause_reason(" deploy "), Ok("deploy".into()));
        assert!(pause_reason("").is_err());
        assert!(pause_reason("a\nb").is_err());
        assert!(pause_reason(&"x".repeat(501)).is_err());
        let both = Scope {
            target: Some("a".into()),
            policy: Some("b".into()),
        };
        assert!(both.engine().is_err());
        assert!(Scope::default().engine().is_err());
    }
}
