//! The agent's side of a config edit: the real checker, systemd, and the policy's verify.

use super::validate::Checker;
use super::{
    align::AlignPlanner, fpm::FpmPlanner, nginx::NginxPlanner, run_edit, EditFailure, EditHost,
};
use crate::action::{Executor, SystemdUnits};
use crate::policy::{Action, ApplyWith, NginxEditArgs, PhpFpmEditArgs, Policy, UnitName};
use crate::systemd::UnitOp;
use crate::webconf::fpm::{self, FpmConfig};
use crate::webconf::nginx::{self, NginxConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

struct AgentHost<'a> {
    units: &'a SystemdUnits,
    executor: &'a Executor<SystemdUnits>,
    policy: &'a Policy,
    checker: Checker,
    unit: UnitName,
    apply: ApplyWith,
}

impl EditHost for AgentHost<'_> {
    async fn validate(&self, file: &Path, candidate: &[u8]) -> Result<(), String> {
        self.checker.check(file, candidate).await
    }

    async fn apply(&self) -> Result<(), String> {
        let op = match self.apply {
            ApplyWith::Reload => UnitOp::Reload,
            ApplyWith::Restart => UnitOp::Restart,
        };
        // The same systemd call as a `restart` action; only the message names the edit.
        self.units
            .unit_op(self.unit.as_str(), op)
            .await
            .map(|_| ())
            .map_err(|failure| {
                format!(
                    "{} of {}: {}",
                    self.apply.as_str(),
                    self.unit,
                    failure.message
                )
            })
    }

    async fn verify(&self) -> Option<(bool, String)> {
        self.executor.verify(self.policy).await
    }
}

/// What one config-edit action did, for the attempt's outcome.
pub(in crate::action) struct EditOutcome {
    pub result: Result<String, String>,
    pub diff: Option<String>,
    /// What verification saw with the edit in place, when it ran.
    pub verification: Option<String>,
    /// Nothing to change: the attempt does not count against the policy.
    pub not_applicable: bool,
}

impl EditOutcome {
    fn failed(why: String) -> Self {
        EditOutcome {
            result: Err(why),
            diff: None,
            verification: None,
            not_applicable: false,
        }
    }
}

/// One edit per file at a time, across every policy and attempt: two edits of one file
/// would validate each other's candidates and roll back each other's changes.
pub(in crate::action) fn file_lock(file: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: Mutex<BTreeMap<PathBuf, Arc<tokio::sync::Mutex<()>>>> =
        Mutex::new(BTreeMap::new());
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(locks.entry(file.to_path_buf()).or_default())
}

/// The file must be one the checker reads: editing a file outside `config`'s include
/// tree would pass `nginx -t` trivially and change nothing the service runs.
fn in_tree(file: &Path, config: &Path, files: impl Iterator<Item = PathBuf>) -> Result<(), String> {
    let wanted =
        std::fs::canonicalize(file).map_err(|e| format!("cannot find {}: {e}", file.display()))?;
    if files
        .filter_map(|f| std::fs::canonicalize(f).ok())
        .any(|f| f == wanted)
    {
        Ok(())
    } else {
        Err(format!(
            "{} is not read by {} (not the file itself, nor included from it): the checker could not validate an edit of it",
            file.display(),
            config.display()
        ))
    }
}

/// nginx's config from `config`, once `file` is known to be part of it.
pub(in crate::action) fn load_nginx(file: &Path, config: &Path) -> Result<NginxConfig, String> {
    let loaded = nginx::load(config).map_err(|e| e.to_string())?;
    in_tree(file, config, loaded.files.iter().map(|f| f.path.clone()))?;
    Ok(loaded)
}

/// PHP-FPM's config from `config`, once `file` is known to be part of it.
fn load_fpm(file: &Path, config: &Path) -> Result<FpmConfig, String> {
    let loaded = fpm::load(config).map_err(|e| e.to_string())?;
    in_tree(file, config, loaded.files.iter().map(|f| f.path.clone()))?;
    Ok(loaded)
}

/// For each raised directive, the largest value set in another file of the config at a
/// level enclosing the edited blocks: their context chain (following includes) starts
/// with the setting's. A sibling `server` has the same chain as the edited one, so this
/// can over-state what is inherited (the raise then starts higher, still capped), but it
/// never under-states it.
fn inherited_elsewhere(
    config: &NginxConfig,
    args: &NginxEditArgs,
) -> BTreeMap<String, Vec<String>> {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let edited = canonical(&args.file);
    let Some(edited_file) = config.files.iter().find(|f| canonical(&f.path) == edited) else {
        return BTreeMap::new();
    };
    let walk = config.walk();
    let context = args
        .context
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let chains: Vec<&Vec<String>> = walk
        .iter()
        .filter(|l| std::ptr::eq(l.file, edited_file) && l.directive.block.is_some())
        .filter(|l| {
            l.directive
                .head()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                == context
        })
        .map(|l| &l.contexts)
        .collect();
    let mut outer = BTreeMap::new();
    for raise in &args.raise {
        let Some(known) = crate::webconf::raisable::raisable_directive(&raise.directive) else {
            continue;
        };
        let best = walk
            .iter()
            .filter(|l| l.directive.name == raise.directive && !std::ptr::eq(l.file, edited_file))
            .filter(|l| chains.iter().any(|c| c.starts_with(&l.contexts)))
            .filter_map(|l| {
                let value = known.parse(l.directive.args.get(known.arg)?).ok()?;
                Some((value, l.directive.args.clone()))
            })
            .max_by_key(|(value, _)| *value);
        if let Some((_, args)) = best {
            outer.insert(raise.directive.clone(), args);
        }
    }
    outer
}

/// Refuses a pool key whose value in force comes from another file: changing it here
/// would change nothing.
fn pool_keys_here(fpm: &FpmConfig, args: &PhpFpmEditArgs) -> Result<(), String> {
    let Some(pool) = fpm.pools().into_iter().find(|p| p.name == args.pool) else {
        return Err(format!(
            "no pool [{}] in {}",
            args.pool,
            args.config.display()
        ));
    };
    let here = std::fs::canonicalize(&args.file).ok();
    let keys = args
        .raise
        .iter()
        .map(|r| &r.key)
        .chain(args.set.iter().map(|s| &s.key));
    for key in keys {
        if let Some((file, entry)) = pool.locate(key) {
            if std::fs::canonicalize(&file.path).ok() != here {
                return Err(format!(
                    "pool [{}] takes {key} from {}:{}, which overrides {}: edit that file instead",
                    args.pool,
                    file.path.display(),
                    entry.line,
                    args.file.display()
                ));
            }
        }
    }
    Ok(())
}

impl SystemdUnits {
    /// Runs one config-edit action; returns its result and the diff it made or tried.
    pub(in crate::action) async fn run_config_edit(
        &self,
        executor: &Executor<SystemdUnits>,
        policy: &Policy,
        action: &Action,
    ) -> EditOutcome {
        // Config edits are validated to come only with a unit target.
        let Some(target) = policy.spec.target.unit() else {
            return EditOutcome::failed(format!(
                "target {} is not a systemd unit",
                policy.spec.target
            ));
        };
        let host = |checker: Checker, unit: &Option<UnitName>, apply: ApplyWith| AgentHost {
            units: self,
            executor,
            policy,
            checker,
            unit: unit.as_ref().unwrap_or(target).clone(),
            apply,
        };
        let file = match action {
            Action::NginxEdit(a) => &a.file,
            Action::PhpFpmEdit(a) => &a.file,
            Action::AlignFastcgiPass(a) => &a.file,
            _ => return EditOutcome::failed(format!("{} is not a config edit", action.name())),
        };
        let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        let lock = file_lock(&canonical);
        let _editing = lock.lock().await;
        let outcome = match action {
            Action::NginxEdit(args) => {
                let prepared = load_nginx(&args.file, &args.config)
                    .map(|config| inherited_elsewhere(&config, args));
                match prepared {
                    Ok(outer) => {
                        let mut planner = NginxPlanner { args, outer };
                        let host = host(Checker::nginx(&args.config), &args.unit, args.apply);
                        run_edit(&args.file, &mut planner, &host, self.keep_backups).await
                    }
                    Err(e) => Err(EditFailure::new(e, None)),
                }
            }
            Action::PhpFpmEdit(args) => {
                let prepared = load_fpm(&args.file, &args.config)
                    .and_then(|config| pool_keys_here(&config, args));
                match prepared {
                    Ok(()) => {
                        let host = host(Checker::php_fpm(&args.config), &args.unit, args.apply);
                        run_edit(
                            &args.file,
                            &mut FpmPlanner { args },
                            &host,
                            self.keep_backups,
                        )
                        .await
                    }
                    Err(e) => Err(EditFailure::new(e, None)),
                }
            }
            Action::AlignFastcgiPass(args) => {
                let prepared = load_nginx(&args.file, &args.config)
                    .and_then(|_| fpm::load(&args.fpm_config).map_err(|e| e.to_string()));
                match prepared {
                    Ok(fpm) => {
                        let host = host(Checker::nginx(&args.config), &args.unit, args.apply);
                        run_edit(
                            &args.file,
                            &mut AlignPlanner::new(args, &fpm),
                            &host,
                            self.keep_backups,
                        )
                        .await
                    }
                    Err(e) => Err(EditFailure::new(e, None)),
                }
            }
            _ => return EditOutcome::failed(format!("{} is not a config edit", action.name())),
        };
        match outcome {
            Ok(report) => {
                tracing::info!(file_change = %report.summary, "config edit applied and verified");
                EditOutcome {
                    result: Ok(report.summary),
                    diff: report.diff,
                    verification: report.verification,
                    not_applicable: false,
                }
            }
            // Only the alignment fires on a symptom another cause shares (a stopped
            // PHP-FPM logs the same "No such file"): a set or raise with nothing to
            // change means its own trouble was not cured, which is a failure to report.
            Err(failure) => EditOutcome {
                result: Err(failure.why),
                diff: failure.diff,
                verification: None,
                not_applicable: failure.not_applicable
                    && matches!(action, Action::AlignFastcgiPass(_)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RaiseDirective;

    #[test]
    fn a_value_set_in_the_server_that_includes_the_edited_file_is_what_a_raise_starts_from() {
        let dir = std::env::temp_dir().join(format!("salve-inherit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (main, snippet) = (dir.join("nginx.conf"), dir.join("php.conf"));
        std::fs::write(
            &main,
            "http {\n    fastcgi_buffer_size 8k;\n    server {\n        fastcgi_buffer_size 32k;\n        include php.conf;\n    }\n    server {\n        fastcgi_buffer_size 16k;\n    }\n}\n",
        )
        .unwrap();
        std::fs::write(
            &snippet,
            "location ~ \\.php$ {\n    fastcgi_pass unix:/run/php/php8.2-fpm.sock;\n}\n",
        )
        .unwrap();
        let args = NginxEditArgs {
            file: snippet.clone(),
            context: "location ~ \\.php$".into(),
            raise: vec![RaiseDirective {
                directive: "fastcgi_buffer_size".into(),
                factor: 2.0,
                max: 65536,
            }],
            set: Vec::new(),
            config: main.clone(),
            unit: None,
            apply: ApplyWith::Reload,
        };
        let config = nginx::load(&main).unwrap();
        let outer = inherited_elsewhere(&config, &args);
        let in_tree = in_tree(&snippet, &main, config.files.iter().map(|f| f.path.clone()));
        let outside = in_tree_check_outside(&dir, &main, &config);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            outer.get("fastcgi_buffer_size"),
            Some(&vec!["32k".to_string()])
        );
        assert_eq!(in_tree, Ok(()));
        assert!(outside.unwrap_err().contains("is not read by"));
    }

    fn in_tree_check_outside(dir: &Path, main: &Path, config: &NginxConfig) -> Result<(), String> {
        let stray = dir.join("disabled.conf");
        std::fs::write(&stray, "server {}\n").unwrap();
        in_tree(&stray, main, config.files.iter().map(|f| f.path.clone()))
    }
}
