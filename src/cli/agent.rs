//! `salve agent --policies DIR [--config FILE] [--bus system|unix:path=…]`

use salve::agent::{self, AgentOptions};
use salve::config::Config;
use salve::systemd::Bus;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Policy files or directories (reloaded on change and on SIGHUP).
    #[arg(long, required = true, num_args = 1..)]
    policies: Vec<PathBuf>,
    /// Agent config (default /etc/salve/config.yaml if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The D-Bus to reach systemd on: `system`, or an address such as
    /// unix:path=/proc/PID/root/run/dbus/system_bus_socket (the lab's).
    #[arg(long, default_value = "system")]
    bus: Bus,
    /// Journal file; overrides the config's.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Decide and journal, change nothing (overrides the config).
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(journal) = args.journal {
        config.journal_path = journal;
    }
    if args.dry_run {
        config.limits.dry_run = true;
    }
    // One thread: the agent mostly waits, and a single thread keeps its footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = AgentOptions {
        policy_paths: args.policies,
        config,
        bus: args.bus,
        journal_sink: None,
        systemd_link: None,
    };
    match runtime.block_on(agent::run(options)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(agent::AgentError::Policies(diagnostics)) => {
            eprintln!("{diagnostics}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
