//! `salve status|pause|resume|reset|reload`: ask or steer the running agent through
//! its control socket.

use salve::config::Config;
use salve::control::{client, Request, Response, StatusReport};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where the agent listens.
#[derive(clap::Args)]
pub struct Socket {
    /// The agent's control socket (default: the agent config's, else
    /// /run/salve/control.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Agent config naming the socket.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    socket: Socket,
    /// The agent's answer as JSON.
    #[arg(long)]
    json: bool,
}

/// A target as `salve status` names it, or `--policy NAME`.
#[derive(clap::Args)]
pub struct ScopeArgs {
    /// The target (`php8.2-fpm.service`, `pod/web/php-0`).
    #[arg(required_unless_present = "policy", conflicts_with = "policy")]
    target: Option<String>,
    /// A policy, all its targets.
    #[arg(long)]
    policy: Option<String>,
}

#[derive(clap::Args)]
pub struct PauseArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// How long, e.g. 30m, 2h (at most 7 days); the pause then ends by itself.
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// Why: journalled and shown in `salve status`.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    socket: Socket,
}

#[derive(clap::Args)]
pub struct ScopedArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    #[command(flatten)]
    socket: Socket,
}

#[derive(clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    socket: Socket,
}

impl Socket {
    fn path(&self) -> Result<PathBuf, ExitCode> {
        if let Some(path) = &self.socket {
            return Ok(path.clone());
        }
        match Config::load(self.config.as_deref()) {
            Ok(config) => Ok(config.control.socket),
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                Err(ExitCode::from(1))
            }
        }
    }
}

fn ask(socket: &Socket, request: Request) -> anyhow::Result<Result<Response, ExitCode>> {
    let path = match socket.path() {
        Ok(path) => path,
        Err(code) => return Ok(Err(code)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(client::ask(&path, &request, Duration::from_secs(35))) {
        Ok(response) => Ok(Ok(response)),
        Err(e) => {
            eprintln!("salve: {e}");
            Ok(Err(ExitCode::from(2)))
        }
    }
}

/// Prints the agent's message; refused is exit status 1.
fn said(response: Response) -> ExitCode {
    if response.ok {
        println!("{}", response.message);
        ExitCode::SUCCESS
    } else {
        eprintln!("salve: {}", response.message);
        ExitCode::from(1)
    }
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let response = match ask(&args.socket, Request::Status {})? {
        Ok(response) => response,
        Err(code) => return Ok(code),
    };
    let Some(report) = response.status.clone().filter(|_| response.ok) else {
        return Ok(said(response));
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The status as a person reads it: one line per policy and target, then the pauses.
pub fn table(report: &StatusReport) -> String {
    let mut rows = vec![[
        "POLICY".to_string(),
        "TARGET".to_string(),
        "STATE".to_string(),
        "ATTEMPTS".to_string(),
        "LAST DECISION".to_string(),
        "LAST OUTCOME".to_string(),
        "NEXT / UNTIL".to_string(),
    ]];
    for line in &report.policies {
        let until = line
            .paused_until
            .as_ref()
            .or(line.circuit_open_until.as_ref())
            .or(line.next_attempt_at.as_ref())
            .cloned()
            .unwrap_or_default();
        let state = match line.dry_run {
            true => format!("{} (dry run)", line.state),
            false => line.state.clone(),
        };
        rows.push([
            line.policy.clone(),
            line.target.clone(),
            state,
            format!("{}/{}", line.attempts, line.max_attempts),
            line.last_decision.clone().unwrap_or_default(),
            line.last_outcome.clone().unwrap_or_default(),
            until,
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for pause in &report.pauses {
        out.push_str(&format!(
            "paused: {} until {}{}{}\n",
            pause.scope,
            pause.until,
            pause
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            pause
                .by
                .as_ref()
                .map(|b| format!(", by {b}"))
                .unwrap_or_default()
        ));
    }
    out
}

pub fn pause(args: PauseArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Pause {
        target: args.scope.target,
        policy: args.scope.policy,
        duration: args.duration,
        reason: args.reason,
    };
    Ok(ask(&args.socket, request)?.map_or_else(|code| code, said))
}

pub fn resume(args: ScopedArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Resume {
        target: args.scope.target,
        policy: args.scope.policy,
    };
    Ok(ask(&args.socket, request)?.map_or_else(|code| code, said))
}

pub fn reset(args: ScopedArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Reset {
        target: args.scope.target,
        policy: args.scope.policy,
    };
    Ok(ask(&args.socket, request)?.map_or_else(|code| code, said))
}

pub fn reload(args: ReloadArgs) -> anyhow::Result<ExitCode> {
    Ok(ask(&args.socket, Request::Reload {})?.map_or_else(|code| code, said))
}
