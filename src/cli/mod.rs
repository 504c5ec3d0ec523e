//! Subcommands of the `salve` binary.

mod agent;
mod check;
mod control;
mod diagnose;
mod history;
mod lab;
mod operator;
mod simulate;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "salve",
    version,
    about = "Self-healing controller: watches health signals and applies remediation policies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Validate policy files and directories; print one line per valid policy.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the policy format.
    Schema,
    /// Print the RemediationPolicy CustomResourceDefinition (JSON, which kubectl also takes).
    Crd,
    /// Replay JSON Lines events through the engine on a virtual clock; print decisions.
    Simulate(simulate::Args),
    /// Show the audit journal: what salve decided and did, and why.
    History(history::Args),
    /// Run the host agent: watch systemd units and probes, heal by policy.
    Agent(agent::Args),
    /// Run in a Kubernetes cluster: watch RemediationPolicies and the pods, workloads
    /// and nodes they name, heal through the API server.
    Operator(operator::Args),
    /// Find which known cause of a 502/504 applies: configs, logs, boot state, memory.
    Diagnose(diagnose::Args),
    /// A disposable systemd sandbox with nginx and PHP-FPM to break on purpose.
    Lab(lab::Args),
    /// Ask the running agent: its policies, targets, circuits, pauses, last decisions.
    Status(control::StatusArgs),
    /// Hold back the agent's attempts on a target or a policy for a while (a deploy).
    Pause(control::PauseArgs),
    /// Lift a pause before it expires.
    Resume(control::ScopedArgs),
    /// Close a target's (or a policy's) open circuit: its attempts start afresh.
    Reset(control::ScopedArgs),
    /// Make the running agent read its policies again (as SIGHUP does).
    Reload(control::ReloadArgs),
}

pub fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { paths } => Ok(check::run(&paths)),
        Command::Simulate(args) => simulate::run(args),
        Command::History(args) => history::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Operator(args) => operator::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Diagnose(args) => diagnose::run(args),
        Command::Status(args) => control::status(args),
        Command::Pause(args) => control::pause(args),
        Command::Resume(args) => control::resume(args),
        Command::Reset(args) => control::reset(args),
        Command::Reload(args) => control::reload(args),
        Command::Schema => {
            print!("{}", salve::policy::policy_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd => {
            print!("{}", salve::kubernetes::crd_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}
