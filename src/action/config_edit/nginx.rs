//! Plans `nginxEdit`: raise or set directives in the blocks of one file.

use super::{Planned, Planner};
use crate::policy::NginxEditArgs;
use crate::webconf::nginx::{self, Directive, NginxFile};
use crate::webconf::raisable::raisable_directive;
use crate::webconf::{apply_edits, Edit};
use std::collections::BTreeMap;

pub struct NginxPlanner<'a> {
    pub args: &'a NginxEditArgs,
    /// Values set at the `http` level in other files of the config: what a block in
    /// this file inherits when neither it nor its enclosing blocks here set a directive.
    /// Raising from nginx's default instead could *lower* such a value.
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
        let mut edits: Vec<Edit> = Vec::new();
        let mut summary = Vec::new();
        let mut raised = false;
        for (block, ancestors) in &blocks {
            for raise in &self.args.raise {
                let Some(known) = raisable_directive(&raise.directive) else {
                    return Err(format!("salve cannot raise {}", raise.directive));
                };
                let existing = child(block, &raise.directive);
                let mut args: Vec<String> =
                    match existing.or_else(|| inherited(ancestors, &raise.directive)) {
                        Some(d) => d.args.clone(),
                        None => match self.outer.get(&raise.directive) {
                            Some(args) => args.clone(),
                            None => known.default.iter().map(|s| s.to_string()).collect(),
                        },
                    };
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
                push(&mut edits, &file, block, existing, &raise.directive, &args);
            }
            for set in &self.args.set {
                let args: Vec<String> = set.value.split_whitespace().map(String::from).collect();
                let existing = if KEYED.contains(&set.directive.as_str()) {
                    last_child(block, &set.directive, args.first())
                } else {
                    child(block, &set.directive)
                };
                if existing.is_some_and(|d| d.args == args) {
                    continue;
                }
                summary.push(format!("{} = {}", set.directive, set.value));
                push(&mut edits, &file, block, existing, &set.directive, &args);
            }
        }
        // Every raise at its cap and every setting in place: no further step.
        if !self.args.raise.is_empty() && !raised && edits.is_empty() {
            return Ok(None);
        }
        let text = apply_edits(current, &edits).map_err(|e| e.to_string())?;
        Ok(Some(Planned {
            text,
            summary: format!("{} in `{}`", summary.join(", "), self.args.context),
        }))
    }
}

/// Several new directives in one block become one insertion, so their order is kept.
fn push(
    edits: &mut Vec<Edit>,
    file: &NginxFile,
    block: &Directive,
    existing: Option<&Directive>,
    name: &str,
    args: &[String],
) {
    let edit = match existing {
        Some(d) => nginx::replace_args(d, args),
        None => nginx::insert_directive(file, block, name, args),
    };
    match edits
        .iter_mut()
        .find(|e| e.range == edit.range && e.range.is_empty())
    {
        Some(same_spot) => same_spot.replacement.push_str(&edit.replacement),
        None => edits.push(edit),
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
