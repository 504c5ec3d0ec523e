//! `salve history [--policy P] [--target T] [--since 1h] [--outcome failed] [--json]`

use salve::audit::{self, HistoryFilter, OutcomeFilter};
use salve::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[derive(clap::Args)]
pub struct Args {
    /// Journal file (default: the one named in the agent config).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Agent config naming the journal.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    policy: Option<String>,
    #[arg(long)]
    target: Option<String>,
    /// Only records newer than this, e.g. 30m, 1h, 2days.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// ok, failed, timed_out, not_applicable, skipped or dry_run.
    #[arg(long)]
    outcome: Option<OutcomeFilter>,
    /// JSON Lines instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let journal = match args.journal {
        Some(path) => path,
        None => match Config::load(args.config.as_deref()) {
            Ok(c) => c.journal_path,
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let read = audit::read_journal(&journal)?;
    if read.records.is_empty() && read.problems.is_empty() && !journal.exists() {
        // Most likely a wrong path or an agent that never ran: say so, not just "empty".
        eprintln!(
            "salve: no journal at {} (nothing recorded yet?)",
            journal.display()
        );
    }
    for problem in &read.problems {
        tracing::warn!(%problem, "unreadable journal line skipped");
    }
    let filter = HistoryFilter {
        policy: args.policy,
        target: args.target,
        since: args.since.map(|d| {
            SystemTime::now()
                .checked_sub(d)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }),
        outcome: args.outcome,
    };
    let selected = audit::filter(&read.records, &filter);
    if args.json {
        print!("{}", audit::render_json(&selected));
    } else {
        print!("{}", audit::render_table(&selected));
    }
    Ok(ExitCode::SUCCESS)
}
