//! Restart benchmark (`make bench-restart`, root): in one lab, SIGKILL the whole PHP-FPM
//! pool 20 times per restarter and time until nginx serves the first 200 again, for
//! (i) salve with the unit at `Restart=no`, (ii) systemd `Restart=always` with its
//! default `RestartSec=100ms`, (iii) `Restart=always RestartSec=0`, the floor for any
//! restarter, (iv) Monit with `set daemon 1`. Then the agent's idle RSS and CPU with
//! 100 policies loaded. Every figure is printed next to its reference or target.

mod agent;
mod crash;
mod monit;
#[path = "../common/owned.rs"]
mod owned;
mod report;
#[path = "../common/rng.rs"]
mod rng;

use anyhow::{bail, Context, Result};
use salve::lab::{check_packages, check_root, Lab, LabConfig, LabGuard, PHP_FPM_UNIT};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

/// This benchmark's own port, apart from the lab tests' (18480), the e2e tests'
/// (18490) and the demo's (8480).
const PORT: u16 = 18520;
/// Long enough that one 10 ms CPU tick is 0.033 % of a core.
const IDLE: Duration = Duration::from_secs(30);
/// Lets the last restart's journal writes and D-Bus traffic settle before "idle".
const SETTLE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    // `cargo test --all-targets` runs this binary without `--bench`, in a debug build:
    // booting a lab and crashing it for minutes there would help nobody.
    if !std::env::args().any(|a| a == "--bench") {
        println!("restart benchmark: not run without --bench (run `make bench-restart` as root)");
        return ExitCode::SUCCESS;
    }
    if check_root().is_err() {
        eprintln!(
            "the restart benchmark needs root: it boots systemd in a PID namespace (the lab). Run: sudo make bench-restart"
        );
        return ExitCode::from(1);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("restart benchmark failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<()> {
    check_packages()?;
    if !Path::new(monit::MONIT).exists() {
        bail!(
            "monit is missing ({} not found): run `sudo scripts/install-lab-packages.sh`",
            monit::MONIT
        );
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-restart");
    let agent_dir = dir.join("agent");
    // A previous run's policies and journal would be counted with this run's.
    if agent_dir.exists() {
        std::fs::remove_dir_all(&agent_dir)
            .with_context(|| format!("cannot clear {}", agent_dir.display()))?;
    }
    let config = LabConfig {
        dir: dir.join("lab"),
        http_port: PORT,
        topology: Default::default(),
    };
    let lab = Lab::up_with_progress(&config, &mut |step| eprintln!("lab: {step}"))?;
    // Taken down on every way out, a panic included.
    let lab = LabGuard::new(lab);
    let killer = crash::Killer::connect(&lab.bus_address())?;
    let mut rng = rng::Rng::from_clock();

    eprintln!("(i) salve agent, {PHP_FPM_UNIT} at Restart=no");
    let probe_url = lab.ping_url().replace("/ping.php", "/salve-bench-probe");
    let mut agent = agent::start(&agent_dir, &lab.bus_address(), &probe_url)?;
    let salve = crash::run(&lab, &killer, &mut rng, "salve")?;
    thread::sleep(SETTLE);
    let attempts = agent.attempts()?;
    eprintln!("salve agent: measuring its footprint over {IDLE:?} of idling");
    let footprint = agent.footprint(IDLE)?;
    agent.stop();

    eprintln!("(ii) systemd Restart=always RestartSec=100ms");
    lab.set_php_fpm_restart("always", "100ms")?;
    let systemd_default = crash::run(&lab, &killer, &mut rng, "systemd 100ms")?;
    eprintln!("(iii) systemd Restart=always RestartSec=0");
    lab.set_php_fpm_restart("always", "0")?;
    let systemd_floor = crash::run(&lab, &killer, &mut rng, "systemd 0")?;
    // Back to the lab's own setting: from here on only monit restarts the pool.
    lab.set_php_fpm_restart("no", "100ms")?;

    eprintln!("(iv) monit, set daemon 1");
    let mut monit = monit::start(&lab)?;
    let cycle = monit.cycle()?;
    eprintln!("monit (pid {}): measured cycle {cycle:?}", monit.pid());
    let monit_summary = crash::run(&lab, &killer, &mut rng, "monit")?;
    monit.stop();
    drop(killer);
    lab.down()?;

    report::print(&report::Results {
        port: PORT,
        salve,
        attempts,
        systemd_default,
        systemd_floor,
        monit: monit_summary,
        monit_cycle: cycle,
        footprint,
    });
    Ok(())
}
