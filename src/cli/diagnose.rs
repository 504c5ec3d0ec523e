//! `salve diagnose`: which known cause of a 502/504 applies here, where, and which
//! policy heals it.

use salve::diagnose::gather::{gather, Options};
use salve::diagnose::{diagnose, Input};
use salve::policy::{DEFAULT_FPM_CONF, DEFAULT_NGINX_CONF};
use salve::systemd::Bus;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// nginx's main config; includes are followed.
    #[arg(long, default_value = DEFAULT_NGINX_CONF)]
    nginx_conf: PathBuf,
    /// PHP-FPM's main config; pool includes are followed.
    #[arg(long, default_value = DEFAULT_FPM_CONF)]
    fpm_conf: PathBuf,
    /// nginx's error log [default: the main config's error_log, else /var/log/nginx/error.log].
    #[arg(long)]
    error_log: Option<PathBuf>,
    /// PHP-FPM's log [default: its global error_log, else /var/log/php8.2-fpm.log].
    #[arg(long)]
    fpm_log: Option<PathBuf>,
    /// The PHP-FPM unit whose boot state is checked.
    #[arg(long, default_value = "php8.2-fpm.service")]
    unit: String,
    /// `system`, or a D-Bus address (e.g. the lab's, from `salve lab bus`).
    #[arg(long, default_value = "system")]
    bus: Bus,
    /// Skip the systemd check (no bus on this machine).
    #[arg(long)]
    no_systemd: bool,
    /// The public URL (through a CDN or proxy); with --origin-url, tells an edge failure
    /// from the origin's own.
    #[arg(long)]
    public_url: Option<String>,
    /// The same page on the origin, bypassing the edge.
    #[arg(long)]
    origin_url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Exit 0 when healthy, 1 with findings, 2 when the diagnosis itself could not run.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options {
        nginx_conf: args.nginx_conf,
        fpm_conf: args.fpm_conf,
        error_log: args.error_log,
        fpm_log: args.fpm_log,
        fpm_unit: args.unit,
        bus: (!args.no_systemd).then_some(args.bus),
        public_url: args.public_url,
        origin_url: args.origin_url,
        passwd: PathBuf::from("/etc/passwd"),
        group: PathBuf::from("/etc/group"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let gathered = match runtime.block_on(gather(&options)) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("salve diagnose: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut report = diagnose(&Input {
        nginx: &gathered.nginx,
        fpm: &gathered.fpm,
        nginx_log: &gathered.nginx_log,
        fpm_log: &gathered.fpm_log,
        accounts: &gathered.accounts,
        fpm_unit: &options.fpm_unit,
        unit: gathered.unit.clone(),
        memory: gathered.memory.clone(),
        edge: gathered.edge.clone(),
    });
    report
        .skipped
        .splice(0..0, gathered.skipped.iter().cloned());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
