//! Plans `phpFpmEdit`: raise or set keys of one pool.

use super::{Planned, Planner};
use crate::policy::PhpFpmEditArgs;
use crate::webconf::fpm::{self, Entry, Section};
use crate::webconf::raisable::next_step;
use crate::webconf::{apply_edits, Edit};

pub struct FpmPlanner<'a> {
    pub args: &'a PhpFpmEditArgs,
}

impl Planner for FpmPlanner<'_> {
    fn next(&mut self, current: &str) -> Result<Option<Planned>, String> {
        let file = fpm::parse(&self.args.file, current).map_err(|e| e.to_string())?;
        let Some(section) = file
            .sections
            .iter()
            .rev()
            .find(|s| s.name == self.args.pool)
        else {
            return Err(format!(
                "no pool [{}] in {}",
                self.args.pool,
                self.args.file.display()
            ));
        };
        let mut edits: Vec<Edit> = Vec::new();
        let mut summary = Vec::new();
        let mut raised = false;
        for raise in &self.args.raise {
            let Some(entry) = last(section, &raise.key) else {
                return Err(format!(
                    "pool [{}] in {} sets no {}: there is nothing to raise from",
                    self.args.pool,
                    self.args.file.display(),
                    raise.key
                ));
            };
            let value: u64 = entry.value.trim().parse().map_err(|_| {
                format!(
                    "{}:{}: {} = {} is not a whole number",
                    self.args.file.display(),
                    entry.line,
                    raise.key,
                    entry.value
                )
            })?;
            let Some(next) = next_step(value, raise.factor, raise.max, 1) else {
                continue;
            };
            raised = true;
            summary.push(format!("{} {value} -> {next}", raise.key));
            edits.push(fpm::replace_value(entry, &next.to_string()));
        }
        let mut inserts = String::new();
        let mut insert_at = None;
        for set in &self.args.set {
            match last(section, &set.key) {
                Some(entry) if entry.value == set.value => {}
                Some(entry) => {
                    summary.push(format!("{} {} -> {}", set.key, entry.value, set.value));
                    edits.push(fpm::replace_value(entry, &set.value));
                }
                None => {
                    summary.push(format!("{} = {} (added)", set.key, set.value));
                    let edit = fpm::insert_entry(&file, section, &set.key, &set.value);
                    insert_at = Some(edit.range.clone());
                    inserts.push_str(&edit.replacement);
                }
            }
        }
        if let Some(range) = insert_at {
            edits.push(Edit {
                range,
                replacement: inserts,
            });
        }
        // Every raise at its cap and every setting in place: no further step.
        if !self.args.raise.is_empty() && !raised && edits.is_empty() {
            return Ok(None);
        }
        let text = apply_edits(current, &edits).map_err(|e| e.to_string())?;
        Ok(Some(Planned {
            text,
            summary: format!("pool [{}]: {}", self.args.pool, summary.join(", ")),
        }))
    }
}

/// php-fpm reads a pool top to bottom, so the last occurrence of a key is the one in force.
fn last<'a>(section: &'a Section, key: &str) -> Option<&'a Entry> {
    section.entries.iter().rev().find(|e| e.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::config_edit::Planner;
    use crate::policy::{ApplyWith, RaiseKey, SetKey};
    use std::path::PathBuf;

    const POOL: &str = "; the pool\n[www]\nuser = www-data\nlisten = /run/php/php8.2-fpm.sock\nlisten.owner = root\nlisten.mode = 0600\n; worker count\npm.max_children = 1\n";

    fn args(raise: Vec<RaiseKey>, set: Vec<SetKey>) -> PhpFpmEditArgs {
        PhpFpmEditArgs {
            file: PathBuf::from("/etc/php/8.2/fpm/pool.d/www.conf"),
            pool: "www".into(),
            raise,
            set,
            config: PathBuf::from("/etc/php/8.2/fpm/php-fpm.conf"),
            unit: None,
            apply: ApplyWith::Restart,
        }
    }

    fn set(key: &str, value: &str) -> SetKey {
        SetKey {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn setting_socket_permissions_changes_only_those_values_and_adds_the_missing_key() {
        let a = args(
            Vec::new(),
            vec![
                set("listen.owner", "www-data"),
                set("listen.group", "www-data"),
                set("listen.mode", "0660"),
            ],
        );
        let planned = FpmPlanner { args: &a }.next(POOL).unwrap().unwrap();
        assert_eq!(
            planned.text,
            "; the pool\n[www]\nuser = www-data\nlisten = /run/php/php8.2-fpm.sock\nlisten.owner = www-data\nlisten.mode = 0660\n; worker count\npm.max_children = 1\nlisten.group = www-data\n"
        );
        assert!(
            planned.summary.contains("listen.mode 0600 -> 0660"),
            "{}",
            planned.summary
        );
    }

    #[test]
    fn raising_max_children_steps_by_the_factor_and_stops_at_the_cap() {
        let a = args(
            vec![RaiseKey {
                key: "pm.max_children".into(),
                factor: 4.0,
                max: 10,
            }],
            Vec::new(),
        );
        let mut planner = FpmPlanner { args: &a };
        let first = planner.next(POOL).unwrap().unwrap();
        assert!(
            first.text.ends_with("pm.max_children = 4\n"),
            "{}",
            first.text
        );
        let second = planner.next(&first.text).unwrap().unwrap();
        assert!(second.text.ends_with("pm.max_children = 10\n"));
        assert_eq!(planner.next(&second.text).unwrap(), None);
    }

    #[test]
    fn an_unknown_pool_is_an_error_naming_the_file() {
        let mut a = args(Vec::new(), vec![set("listen.mode", "0660")]);
        a.pool = "api".into();
        let err = FpmPlanner { args: &a }.next(POOL).unwrap_err();
        assert!(
            err.contains("no pool [api] in /etc/php/8.2/fpm/pool.d/www.conf"),
            "{err}"
        );
    }
}
