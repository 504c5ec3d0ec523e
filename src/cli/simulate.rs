//! `salve simulate --policies DIR --events FILE`

use salve::audit::{Journal, Rotation};
use salve::config::Config;
use salve::engine::{parse_offset, Engine, OutcomeResult, Timestamp};
use salve::policy;
use salve::simulate::{self, AssumeOutcome};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Policy files or directories.
    #[arg(long, required = true, num_args = 1..)]
    policies: Vec<PathBuf>,
    /// JSON Lines events, one per line: {"at": "1.5s", "unit": {...}} (see README).
    #[arg(long)]
    events: PathBuf,
    /// Agent config for the global limits (storm cap, concurrency, dry run).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Complete every attempt with this result unless the events report one.
    #[arg(long)]
    assume_outcome: Option<OutcomeResult>,
    /// How long each assumed attempt takes.
    #[arg(long, default_value = "1s", value_parser = parse_offset)]
    action_time: std::time::Duration,
    /// Keep the clock running until this time (default: the last event's).
    #[arg(long, value_parser = parse_offset)]
    until: Option<std::time::Duration>,
    /// Also append the journal the agent would have written to this file (the replay
    /// starts now, wall-clock), so `salve history` can be tried on it.
    #[arg(long)]
    journal: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policies = match policy::load(&args.policies) {
        Ok(p) => p,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(ExitCode::from(1));
        }
    };
    let limits = match &args.config {
        Some(path) => match Config::load(Some(path)) {
            Ok(c) => c.limits,
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                return Ok(ExitCode::from(1));
            }
        },
        // A simulation must not depend on the machine it runs on: no implicit config.
        None => Config::default().limits,
    };
    let until = args.until.map(Timestamp::from_duration);
    let text = match std::fs::read_to_string(&args.events) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{}: cannot read events file: {e}", args.events.display());
            return Ok(ExitCode::from(1));
        }
    };
    let events = match simulate::parse_events(&args.events.display().to_string(), &text) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let assume = args.assume_outcome.map(|result| AssumeOutcome {
        result,
        after: args.action_time,
    });
    let mut engine = Engine::new(policies, limits);

    let until = match until {
        Some(u) if u.since_origin() > simulate::MAX_SPAN => {
            eprintln!(
                "salve: --until {u} is beyond the longest replay ({})",
                humantime::format_duration(simulate::MAX_SPAN)
            );
            return Ok(ExitCode::from(1));
        }
        Some(u) if events.last().is_some_and(|e| e.at > u) => {
            eprintln!("salve: --until {u} is before the last event of {}: the replay would not be the history the file describes", args.events.display());
            return Ok(ExitCode::from(1));
        }
        u => u,
    };
    if let Some(path) = &args.journal {
        // A simulated journal must never be mixed into a real one.
        if path.exists() {
            eprintln!("salve: {} exists: --journal writes a new file only, so a replay is never mixed into a real journal", path.display());
            return Ok(ExitCode::from(1));
        }
    }
    let start = args.journal.as_ref().map(|_| std::time::SystemTime::now());
    let replay = simulate::run(&mut engine, &events, assume, until, start);
    for record in &replay.decisions {
        println!("{}", serde_json::to_string(record)?);
    }
    if replay.truncated {
        eprintln!(
            "salve: replay stopped after {} decisions; shorten --until or the events",
            simulate::MAX_DECISIONS
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(path) = &args.journal {
        let mut journal = Journal::open(path, Rotation::default())?;
        for record in &replay.journal {
            journal.append(record)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
