//! `salve lab up|break|repair|status|down`: the disposable nginx + PHP-FPM sandbox.

use salve::lab::{
    Lab, LabConfig, LabError, LbKind, Node, Scenario, Topology, DEFAULT_DIR, DEFAULT_HTTP_PORT,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(clap::Subcommand)]
enum LabCommand {
    /// Boot systemd in a private namespace with nginx in front of a PHP-FPM pool.
    Up {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// nginx listens on 127.0.0.1:PORT (a lab of two nodes also on the four
        /// ports after it: node b, the load balancer, etcd's client and peer ports).
        #[arg(long, default_value_t = DEFAULT_HTTP_PORT)]
        port: u16,
        /// 2: a second node (its own pool and port) behind a load balancer, and etcd.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        nodes: u8,
        /// What fronts the two nodes: haproxy or nginx (an upstream).
        #[arg(long, requires = "nodes")]
        lb: Option<LbKind>,
        /// One node whose nginx passes PHP to an upstream of the pool and a backup
        /// pool of its own unit (`fastcgi_next_upstream error timeout`).
        #[arg(long, conflicts_with_all = ["nodes", "lb"])]
        backup_pool: bool,
    },
    /// Break the lab on purpose: crash, stop, disable, crashloop, hang, socket-permissions,
    /// fastcgi-mismatch or exhaustion.
    Break {
        #[arg(value_parser = parse_scenario)]
        scenario: Scenario,
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// The node to break in a lab of two: a or b.
        #[arg(long, default_value = "a")]
        node: Node,
    },
    /// Undo every scenario: rewrite the configs as a fresh lab has them, enable and
    /// restart the pool, restart nginx.
    Repair {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Show the units and what a client of nginx sees.
    Status {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Print the lab's D-Bus address, for `salve agent --bus`.
    Bus {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Stop the sandbox and everything in it.
    Down {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
}

fn parse_scenario(s: &str) -> Result<Scenario, LabError> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        LabCommand::Up {
            dir,
            port,
            nodes,
            lb,
            backup_pool,
        } => {
            let topology = match (nodes, lb) {
                (1, None) if backup_pool => Topology::BackupPool,
                (1, None) => Topology::Single,
                (1, Some(_)) => anyhow::bail!("--lb needs --nodes 2: it fronts two nodes"),
                (_, lb) => Topology::Fleet(lb.unwrap_or(LbKind::Haproxy)),
            };
            up(dir, port, topology)
        }
        LabCommand::Break {
            scenario,
            dir,
            node,
        } => break_lab(scenario, &dir, node),
        LabCommand::Repair { dir } => {
            let lab = Lab::attach(&dir)?;
            say("repairing: rewriting the configs, enabling and restarting php8.2-fpm, restarting nginx");
            lab.repair()?;
            println!("{}", lab.status()?);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status { dir } => {
            println!("{}", Lab::attach(&dir)?.status()?);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Bus { dir } => {
            println!("{}", Lab::attach(&dir)?.bus_address());
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Down { dir } => down(&dir),
    }
}

fn up(dir: PathBuf, port: u16, topology: Topology) -> anyhow::Result<ExitCode> {
    let config = LabConfig {
        dir: dir.clone(),
        http_port: port,
        topology,
    };
    let lab = Lab::up_with_progress(&config, &mut |step| say(step))?;
    println!("{}", lab.status()?);
    let dir_arg = dir_arg(&dir);
    say(&format!(
        "break it with `salve lab break crash{dir_arg}`, stop it with `salve lab down{dir_arg}`"
    ));
    Ok(ExitCode::SUCCESS)
}

fn break_lab(scenario: Scenario, dir: &Path, node: Node) -> anyhow::Result<ExitCode> {
    let lab = Lab::attach(dir)?;
    let on = match node {
        Node::A => String::new(),
        Node::B => format!(" (on node b: {})", node.unit()),
    };
    say(&format!(
        "breaking the lab: {scenario}: {}{on}",
        scenario.describe()
    ));
    let started = Instant::now();
    lab.break_node(scenario, node)?;
    say(&format!(
        "done in {:.1} s; undo with `salve lab repair{}`",
        started.elapsed().as_secs_f64(),
        dir_arg(dir)
    ));
    println!("{}", lab.status()?);
    Ok(ExitCode::SUCCESS)
}

fn down(dir: &Path) -> anyhow::Result<ExitCode> {
    match Lab::attach(dir) {
        Ok(lab) => {
            say(&format!("stopping the sandbox (systemd pid {})", lab.pid()));
            let started = Instant::now();
            lab.down()?;
            say(&format!(
                "lab is down in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        Err(LabError::Gone { pid, .. }) => {
            Lab::remove_stale_record(dir)?;
            say(&format!(
                "the sandbox (pid {pid}) was already gone; cleared its record"
            ));
        }
        Err(LabError::NotRunning { .. }) => say("no lab is running there; nothing to do"),
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

fn say(step: &str) {
    println!("salve lab: {step}");
}

fn dir_arg(dir: &Path) -> String {
    if dir == Path::new(DEFAULT_DIR) {
        String::new()
    } else {
        format!(" --dir {}", dir.display())
    }
}
