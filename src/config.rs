//! The agent's own settings: where the journal lives and the fleet-wide limits.
//! Every field has a safe default, so a missing file means "defaults", not an error.

use crate::audit::Rotation;
use crate::engine::Limits;
use crate::policy::rules::{self, Whole};
use crate::policy::{parse_documents, Decoder, Diagnostic, Diagnostics, Pos};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_JOURNAL: &str = "/var/lib/salve/journal.jsonl";
pub const DEFAULT_CONFIG: &str = "/etc/salve/config.yaml";

const CONFIG_FIELDS: &[&str] = &[
    "journal",
    "maxActionsPerMinute",
    "maxConcurrentActions",
    "dryRun",
    "configBackups",
    "fleet",
    "control",
    "metrics",
    "alerts",
];
const ALERTS_FIELDS: &[&str] = &["listen", "tokenFile"];
const METRICS_FIELDS: &[&str] = &["enabled", "listen", "statusPage"];
const CONTROL_FIELDS: &[&str] = &["socket", "group"];
const JOURNAL_FIELDS: &[&str] = &["path", "maxBytes", "keep"];
const FLEET_FIELDS: &[&str] = &["etcd", "member", "ttl"];

/// Where a policy's `fleet` slots are held, and who this agent is among the members.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// etcd's client URL, `http://HOST:2379`.
    pub etcd: crate::policy::HttpUrl,
    /// This agent's name in every group: the host's name unless set.
    pub member: String,
    /// How long a slot outlives this agent's last renewal: the time a killed agent's
    /// slot stays taken.
    pub ttl: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub journal_path: PathBuf,
    pub rotation: Rotation,
    pub limits: Limits,
    /// Backups of an edited config kept per file; older ones are removed after an edit.
    pub config_backups: usize,
    /// Absent: a policy whose `fleet` lock is etcd drains nothing (and says so).
    pub fleet: Option<FleetConfig>,
    /// The control socket (`salve status`, `pause`, …).
    pub control: crate::control::ControlConfig,
    /// The HTTP listener: `/metrics`, `/healthz`, `/readyz`.
    pub web: crate::web::WebConfig,
    /// Alertmanager's webhook receiver; none unless configured.
    pub alerts: Option<crate::signal::alertmanager::ReceiverConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            journal_path: PathBuf::from(DEFAULT_JOURNAL),
            rotation: Rotation::default(),
            limits: Limits::default(),
            config_backups: crate::action::config_edit::DEFAULT_KEEP_BACKUPS,
            fleet: None,
            control: Default::default(),
            web: Default::default(),
            alerts: None,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file at the default location gives the defaults, a
    /// missing file named explicitly is an error.
    pub fn load(path: Option<&Path>) -> Result<Config, Diagnostics> {
        let (path, explicit) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_CONFIG), false),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(path, &text),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Config::default())
            }
            Err(e) => Err(Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                pos: Pos::default(),
                path: None,
                message: format!("cannot read config: {e}"),
            }])),
        }
    }

    pub fn parse(file: &Path, text: &str) -> Result<Config, Diagnostics> {
        let diag = |pos: Pos, message: String| Diagnostic {
            file: file.to_path_buf(),
            pos,
            path: None,
            message,
        };
        let docs = parse_documents(text).map_err(|e| {
            Diagnostics(vec![diag(
                e.pos,
                format!("YAML syntax error: {}", e.message),
            )])
        })?;
        let mut config = Config::default();
        let Some(doc) = docs.first() else {
            return Ok(config);
        };
        let mut dec = Decoder::default();
        if let Some(f) = dec.fields(doc, "the agent config", CONFIG_FIELDS) {
            if let Some(n) = f.get("journal") {
                if let Some(j) = dec.fields(n, "journal", JOURNAL_FIELDS) {
                    if let Some(p) = j.get("path").and_then(|n| {
                        dec.checked_string(n, |t| rules::not_blank(t, "the journal path"))
                    }) {
                        config.journal_path = PathBuf::from(p);
                    }
                    if let Some(v) = j.get("maxBytes").and_then(|n| {
                        dec.integer(
                            n,
                            Whole {
                                min: 4096,
                                max: u64::MAX,
                            },
                        )
                    }) {
                        config.rotation.max_bytes = v;
                    }
                    // At least one rotated file: the agent rebuilds its guard state from the
                    // journal, and a rotation that kept nothing would forget every attempt.
                    if let Some(v) = j
                        .get("keep")
                        .and_then(|n| dec.integer(n, Whole { min: 1, max: 1000 }))
                    {
                        config.rotation.keep = v as usize;
                    }
                }
            }
            if let Some(v) = f.get("maxActionsPerMinute").and_then(|n| {
                dec.integer(
                    n,
                    Whole {
                        min: 1,
                        max: 10_000,
                    },
                )
            }) {
                config.limits.max_actions_per_minute = v as u32;
            }
            if let Some(v) = f
                .get("maxConcurrentActions")
                .and_then(|n| dec.integer(n, Whole { min: 1, max: 1000 }))
            {
                config.limits.max_concurrent = v as u32;
            }
            if let Some(v) = f.get("dryRun").and_then(|n| dec.bool(n)) {
                config.limits.dry_run = v;
            }
            if let Some(v) = f
                .get("configBackups")
                .and_then(|n| dec.integer(n, Whole { min: 1, max: 1000 }))
            {
                config.config_backups = v as usize;
            }
            if let Some(n) = f.get("fleet") {
                config.fleet = fleet_config(&mut dec, n);
            }
            if let Some(c) = f
                .get("control")
                .and_then(|n| dec.fields(n, "control", CONTROL_FIELDS))
            {
                if let Some(p) = c.get("socket").and_then(|n| {
                    dec.checked_string(n, |t| match t.starts_with('/') {
                        true => Ok(()),
                        false => Err(format!(
                            "the control socket must be an absolute path, not \"{t}\""
                        )),
                    })
                }) {
                    config.control.socket = PathBuf::from(p);
                }
                if let Some(g) = c.get("group").and_then(|n| {
                    dec.checked_string(n, |t| crate::policy::load_balancer::plain_name(t, "group"))
                }) {
                    config.control.admin_group = g;
                }
            }
            if let Some(n) = f.get("metrics") {
                web_config(&mut dec, n, &mut config.web);
            }
            if let Some(n) = f.get("alerts") {
                config.alerts = alerts_config(&mut dec, n);
            }
        }
        if dec.errors.is_empty() {
            Ok(config)
        } else {
            Err(Diagnostics(
                dec.errors.into_iter().map(|(p, m)| diag(p, m)).collect(),
            ))
        }
    }
}

fn web_config(dec: &mut Decoder, node: &crate::policy::Node, web: &mut crate::web::WebConfig) {
    let Some(f) = dec.fields(node, "metrics", METRICS_FIELDS) else {
        return;
    };
    if let Some(listen) = f.get("listen").and_then(|n| {
        let text = dec.string(n)?;
        text.parse::<std::net::SocketAddr>()
            .map_err(|_| {
                dec.error(
                    n.pos,
                    format!("the metrics listener must be an address and port, as 127.0.0.1:9847 or [::1]:9847, not \"{text}\""),
                )
            })
            .ok()
    }) {
        web.listen = Some(listen);
    }
    if let Some(on) = f.get("statusPage").and_then(|n| dec.bool(n)) {
        web.status_page = on;
    }
    if let Some(false) = f.get("enabled").and_then(|n| dec.bool(n)) {
        web.listen = None;
    }
}

fn alerts_config(
    dec: &mut Decoder,
    node: &crate::policy::Node,
) -> Option<crate::signal::alertmanager::ReceiverConfig> {
    let f = dec.fields(node, "alerts", ALERTS_FIELDS)?;
    let listen = f.required(dec, "listen").and_then(|n| {
        let text = dec.string(n)?;
        text.parse::<std::net::SocketAddr>()
            .map_err(|_| {
                dec.error(
                    n.pos,
                    format!("the alert receiver must listen on an address and port, as 0.0.0.0:9848, not \"{text}\""),
                )
            })
            .ok()
    });
    // No receiver without a token: anyone who reaches it could fire every policy.
    let token_file = f
        .required(dec, "tokenFile")
        .and_then(|n| dec.checked_string(n, rules::absolute_path));
    Some(crate::signal::alertmanager::ReceiverConfig {
        listen: listen?,
        token_file: PathBuf::from(token_file?),
    })
}

fn fleet_config(dec: &mut Decoder, node: &crate::policy::Node) -> Option<FleetConfig> {
    let f = dec.fields(node, "fleet", FLEET_FIELDS)?;
    let etcd = f.required(dec, "etcd").and_then(|n| {
        let text = dec.string(n)?;
        crate::policy::HttpUrl::parse(&text)
            .map_err(|e| dec.error(n.pos, e))
            .ok()
    });
    let member = match f.get("member") {
        Some(n) => dec.checked_string(n, |t| {
            crate::policy::load_balancer::plain_name(t, "fleet member")
        }),
        None => Some(host_name()),
    };
    let ttl = match f.get("ttl") {
        Some(n) => dec.duration(n).and_then(|d| {
            let whole = Duration::from_secs(d.as_secs());
            if (2..=300).contains(&whole.as_secs()) {
                Some(whole)
            } else {
                dec.error(
                    n.pos,
                    "the fleet ttl must be from 2s to 5m, in whole seconds",
                );
                None
            }
        }),
        None => Some(Duration::from_secs(10)),
    };
    Some(FleetConfig {
        etcd: etcd?,
        member: member?,
        ttl: ttl?,
    })
}

/// The host's name, as a fleet member's default name (`/proc` says it without a call
/// into libc).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| crate::policy::load_balancer::plain_name(h, "").is_ok())
        .unwrap_or_else(|| "salve-agent".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_means_safe_defaults() {
        assert_eq!(
            Config::parse(Path::new("c.yaml"), "").unwrap(),
            Config::default()
        );
        assert!(!Config::default().limits.dry_run);
    }

    #[test]
    fn config_fields_override_defaults() {
        let c = Config::parse(
            Path::new("c.yaml"),
            "journal: { path: /x/j.jsonl, keep: 2 }\nmaxActionsPerMinute: 5\nmaxConcurrentActions: 2\ndryRun: true\n",
        )
        .unwrap();
        assert_eq!(c.journal_path, PathBuf::from("/x/j.jsonl"));
        assert_eq!(c.rotation.keep, 2);
        assert_eq!(
            c.limits,
            Limits {
                max_actions_per_minute: 5,
                max_concurrent: 2,
                dry_run: true
            }
        );
    }

    #[test]
    fn the_fleet_lock_names_etcd_and_this_agent() {
        let c = Config::parse(
            Path::new("c.yaml"),
            "fleet: { etcd: \"http://10.0.0.9:2379\", member: node-b, ttl: 15s }\n",
        )
        .unwrap();
        let fleet = c.fleet.unwrap();
        assert_eq!(fleet.etcd.as_str(), "http://10.0.0.9:2379");
        assert_eq!(
            (fleet.member.as_str(), fleet.ttl),
            ("node-b", Duration::from_secs(15))
        );
        // The member defaults to the host's name.
        let c = Config::parse(
            Path::new("c.yaml"),
            "fleet: { etcd: \"http://10.0.0.9:2379\" }\n",
        );
        assert!(!c.unwrap().fleet.unwrap().member.is_empty());
        let err = Config::parse(Path::new("c.yaml"), "fleet: { member: \"a b\", ttl: 1s }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("etcd"), "{err}");
        assert!(err.contains("invalid fleet member name"), "{err}");
        assert!(err.contains("the fleet ttl must be from 2s to 5m"), "{err}");
    }

    #[test]
    fn metrics_listen_on_loopback_by_default_and_can_be_moved_or_switched_off() {
        assert_eq!(
            Config::default().web.listen,
            Some("127.0.0.1:9847".parse().unwrap())
        );
        let c = Config::parse(Path::new("c.yaml"), "metrics: { listen: \"[::1]:9900\" }\n");
        assert_eq!(c.unwrap().web.listen, Some("[::1]:9900".parse().unwrap()));
        let c = Config::parse(Path::new("c.yaml"), "metrics: { enabled: false }\n");
        assert_eq!(c.unwrap().web.listen, None);
        assert!(
            !Config::default().web.status_page,
            "the status page is off by default"
        );
        let c = Config::parse(Path::new("c.yaml"), "metrics: { statusPage: true }\n");
        assert!(c.unwrap().web.status_page);
        let err = Config::parse(Path::new("c.yaml"), "metrics: { listen: localhost }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.yaml:1:20: the metrics listener must be an address and port"),
            "{err}"
        );
    }

    #[test]
    fn the_alert_receiver_is_off_unless_configured_and_needs_a_token_file() {
        assert_eq!(Config::default().alerts, None);
        let c = Config::parse(
            Path::new("c.yaml"),
            "alerts: { listen: \"0.0.0.0:9848\", tokenFile: /etc/salve/alertmanager.token }\n",
        )
        .unwrap();
        let alerts = c.alerts.unwrap();
        assert_eq!(alerts.listen, "0.0.0.0:9848".parse().unwrap());
        assert_eq!(
            alerts.token_file,
            PathBuf::from("/etc/salve/alertmanager.token")
        );
        let err = Config::parse(
            Path::new("c.yaml"),
            "alerts: { listen: \"0.0.0.0:9848\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tokenFile"), "{err}");
        let err = Config::parse(
            Path::new("c.yaml"),
            "alerts: { listen: anywhere, tokenFile: token }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("the alert receiver must listen on an address and port"),
            "{err}"
        );
        assert!(err.contains("must be an absolute path"), "{err}");
    }

    #[test]
    fn config_errors_name_file_line_and_column() {
        let err = Config::parse(
            Path::new("c.yaml"),
            "maxActionsPerMinit: 5\nmaxConcurrentActions: 0\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("c.yaml:1:1: unknown field"), "{text}");
        assert!(
            text.contains("did you mean `maxActionsPerMinute`"),
            "{text}"
        );
        assert!(text.contains("c.yaml:2:23: 0 is out of range"), "{text}");
    }

    #[test]
    fn missing_default_config_is_defaults_but_missing_named_config_is_an_error() {
        assert!(Config::load(Some(Path::new("/nonexistent/salve.yaml"))).is_err());
    }
}
