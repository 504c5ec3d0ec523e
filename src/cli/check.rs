//! `salve check`: validate policies, print one line per valid policy or every error.

use salve::policy::{self, Policy};
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(paths: &[PathBuf]) -> ExitCode {
    match policy::load(paths) {
        Ok(policies) => {
            for p in &policies {
                println!("{}", summary(p));
            }
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            for d in &diagnostics.0 {
                println!("{d}");
            }
            let files: std::collections::BTreeSet<_> =
                diagnostics.0.iter().map(|d| &d.file).collect();
            eprintln!(
                "{} error(s) in {} file(s)",
                diagnostics.0.len(),
                files.len()
            );
            ExitCode::from(1)
        }
    }
}

fn summary(p: &Policy) -> String {
    let actions: Vec<&str> = p.spec.actions.iter().map(|a| a.name()).collect();
    format!(
        "ok {}:{} {} (target {}, {} trigger(s), actions: {}{})",
        p.source.file.display(),
        p.source.line,
        p.name(),
        salve::engine::target_name(p),
        p.spec.trigger.len(),
        actions.join(", "),
        if p.spec.dry_run { ", dry run" } else { "" }
    )
}
