//! Plans `nginxEdit`: raise or set directives in the blocks of one file.

use super::{Planned, Planner};
use crate::policy::NginxEditArgs;
use crate::webconf::apply_edits;
use crate::webconf::nginx::{self, Directive, NginxFile};
use crate::webconf::raisable::raisable_directive;
use std::collections::BTreeMap;

pub struct NginxPlanner<'a> {
    pub args: &'a NginxEditArgs,
    /// For each raised directive, the largest value set in another file of the config
    /// in a block enclosing the edited ones (through includes): what they may inherit
    /// when nothing in this file sets it. Raising from nginx's default instead could
    /// *lower* such a value; taking the largest candidate never does.
    pub outer: BTreeMap<String, Vec<String>>,
}

impl<'a> NginxPlanner<'a> {
    pub fn new(args: &'a NginxEditArgs) -> Self {
        NginxPlanner {
            args,
            outer: BTreeMap::new(),
        }
    }
}

/// Directives that may appear many times in one block, told apart by their first
/// argument (the header or parameter name): setting one must not replace another.
const KEYED: &[&str] = &[
    "add_header",
    "fastcgi_param",
    "proxy_set_header",
    "fastcgi_hide_header",
    "proxy_hide_header",
    "fastcgi_pass_header",
    "proxy_pass_header",
];

/// One directive to write into the `block`-th matching block.
struct Change {
    block: usize,
    name: String,
    args: Vec<String>,
}

impl Planner for NginxPlanner<'_> {
    fn next(&mut self, current: &str) -> Result<Option<Planned>, String> {
        let file = nginx::parse(&self.args.file, current).map_err(|e| e.to_string())?;
        let blocks = blocks_with_ancestors(&file, &self.args.context);
        if blocks.is_empty() {
            return Err(format!(
                "no `{}` block in {}",
                self.args.context,
                self.args.file.display()
            ));
        }
        let mut changes: Vec<Change> = Vec::new();
        let mut summary = Vec::new();
        let mut raised = false;
        for (index, (block, ancestors)) in blocks.iter().enumerate() {
            for raise in &self.args.raise {
                let Some(known) = raisable_directive(&raise.directive) else {
                    return Err(format!("salve cannot raise {}", raise.directive));
                };
                // A file included inside a block (a snippet in `server`) has its top-level
                // directives in that block: they count as its outermost ancestor here.
                let in_force = child(block, &raise.directive)
                    .or_else(|| inherited(ancestors, &raise.directive))
                    .or_else(|| {
                        file.directives
                            .iter()
                            .rev()
                            .find(|d| d.name == raise.directive && d.block.is_none())
                    })
                    .map(|d| d.args.clone())
                    .or_else(|| self.outer.get(&raise.directive).cloned());
                let mut args: Vec<String> = in_force
                    .unwrap_or_else(|| known.default.iter().map(|s| s.to_string()).collect());
                let Some(text) = args.get(known.arg) else {
                    return Err(format!(
                        "{} has too few arguments in {}",
                        raise.directive,
                        self.args.file.display()
                    ));
                };
                let value = known.parse(text).map_err(|e| {
                    format!("{} in {}: {e}", raise.directive, self.args.file.display())
                })?;
                let Some(next) = crate::webconf::raisable::next_step(
                    value,
                    raise.factor,
                    raise.max,
                    known.unit.granule(),
                ) else {
                    continue;
                };
                raised = true;
                let before = args.join(" ");
                args[known.arg] = known.format(next);
                summary.push(format!(
                    "{} {before} -> {}",
                    raise.directive,
                    args.join(" ")
                ));
                changes.push(Change {
                    block: index,
                    name: raise.directive.clone(),
                    args,
                });
            }
            for set in &self.args.set {
                let args: Vec<String> = set.value.split_whitespace().map(String::from).collect();
                if existing(block, &set.directive, &args).is_some_and(|d| d.args == args) {
                    continue;
                }
                summary.push(format!("{} = {}", set.directive, set.value));
                changes.push(Change {
                    block: index,
                    name: set.directive.clone(),
                    args,
                });
            }
        }
        // Every raise at its cap and every setting in place: no further step.
        if !self.args.raise.is_empty() && !raised && changes.is_empty() {
            return Ok(None);
        }
        // One change at a time, each on a fresh parse: an insertion reshapes its block
        // (a one-line block opens up), so offsets from before it would be stale.
        let mut text = current.to_string();
        for change in changes.iter().rev() {
            let file = nginx::parse(&self.args.file, &text).map_err(|e| e.to_string())?;
            let blocks = blocks_with_ancestors(&file, &self.args.context);
            let Some((block, _)) = blocks.get(change.block) else {
                return Err(format!(
                    "the `{}` block moved while editing",
                    self.args.context
                ));
            };
            let edit = match existing(block, &change.name, &change.args) {
                Some(d) => nginx::replace_args(d, &change.args),
                None => nginx::insert_directive(&file, block, &change.name, &change.args),
            };
            text = apply_edits(&text, &[edit]).map_err(|e| e.to_string())?;
        }
        Ok(Some(Planned {
            text,
            summary: format!("{} in `{}`", summary.join(", "), self.args.context),
        }))
    }
}

/// The directive a change to `name` rewrites: for a keyed one (`add_header X ...`) only
/// the one with the same first argument.
fn existing<'a>(block: &'a Directive, name: &str, args: &[String]) -> Option<&'a Directive> {
    if KEYED.contains(&name) {
        last_child(block, name, args.first())
    } else {
        child(block, name)
    }
}

/// The last direct child named `name` (and, for a keyed directive, whose first argument
/// is `key`): nginx rejects most duplicates, so the last is the one a person would edit.
fn last_child<'a>(block: &'a Directive, name: &str, key: Option<&String>) -> Option<&'a Directive> {
    block
        .block
        .as_ref()?
        .children
        .iter()
        .rev()
        .find(|d| d.name == name && (key.is_none() || d.args.first() == key))
}

fn child<'a>(block: &'a Directive, name: &str) -> Option<&'a Directive> {
    last_child(block, name, None)
}

/// The value a block inherits from the nearest enclosing block that sets it.
fn inherited<'a>(ancestors: &[&'a Directive], name: &str) -> Option<&'a Directive> {
    ancestors.iter().rev().find_map(|a| child(a, name))
}

/// Every block whose head matches `context`, with its enclosing blocks (outermost first).
fn blocks_with_ancestors<'a>(
    file: &'a NginxFile,
    context: &str,
) -> Vec<(&'a Directive, Vec<&'a Directive>)> {
    fn visit<'a>(
        directives: &'a [Directive],
        context: &str,
        path: &mut Vec<&'a Directive>,
        found: &mut Vec<(&'a Directive, Vec<&'a Directive>)>,
    ) {
        for d in directives {
            let Some(block) = &d.block else { continue };
            if normalized(&d.head()) == normalized(context) {
                found.push((d, path.clone()));
            }
            path.push(d);
            visit(&block.children, context, path, found);
            path.pop();
        }
    }
    let mut found = Vec::new();
    visit(&file.directives, context, &mut Vec::new(), &mut found);
    found
}

fn normalized(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[path = "nginx_tests.rs"]
mod tests;
