//! The agent's own settings: where the journal lives and the fleet-wide limits.
//! Every field has a safe default, so a missing file means "defaults", not an error.

use crate::audit::Rotation;
use crate::engine::Limits;
use crate::policy::rules::{self, Whole};
use crate::policy::{parse_documents, Decoder, Diagnostic, Diagnostics, Pos};
use std::path::{Path, PathBuf};

pub const DEFAULT_JOURNAL: &str = "/var/lib/salve/journal.jsonl";
pub const DEFAULT_CONFIG: &str = "/etc/salve/config.yaml";

const CONFIG_FIELDS: &[&str] = &[
    "journal",
    "maxActionsPerMinute",
    "maxConcurrentActions",
    "dryRun",
    "configBackups",
];
const JOURNAL_FIELDS: &[&str] = &["path", "maxBytes", "keep"];

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub journal_path: PathBuf,
    pub rotation: Rotation,
    pub limits: Limits,
    /// Backups of an edited config kept per file; older ones are removed after an edit.
    pub config_backups: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            journal_path: PathBuf::from(DEFAULT_JOURNAL),
            rotation: Rotation::default(),
            limits: Limits::default(),
            config_backups: crate::action::config_edit::DEFAULT_KEEP_BACKUPS,
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
