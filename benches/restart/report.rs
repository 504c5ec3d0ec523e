//! The one table: every figure of the run next to its reference or target.

use crate::agent::{Footprint, POLICIES, PROBES_AND_FOLLOWERS};
use crate::crash::{ms, Summary, POLL, REPETITIONS};
use crate::monit::CYCLES;
use std::time::Duration;

/// salve's p50 may be at most this many times the floor, (iii), of the same run.
const TARGET_FACTOR: f64 = 1.5;
const TARGET_RSS_BYTES: u64 = 15_000_000;
const TARGET_CPU_PERCENT: f64 = 0.1;

pub struct Results {
    pub port: u16,
    pub salve: Summary,
    /// The journal's (intents, ok outcomes) on the pool.
    pub attempts: (usize, usize),
    pub systemd_default: Summary,
    pub systemd_floor: Summary,
    pub monit: Summary,
    pub monit_cycle: Duration,
    pub footprint: Footprint,
}

pub fn print(r: &Results) {
    let floor_p50 = ms(r.systemd_floor.percentile(0.5));
    let salve_p50 = ms(r.salve.percentile(0.5));
    let salve_limit = TARGET_FACTOR * floor_p50;
    let f = &r.footprint;
    let rss_mb = f.rss_bytes as f64 / 1e6;

    println!();
    println!(
        "salve restart benchmark: SIGKILL of the whole PHP-FPM pool (master and workers) → first HTTP 200"
    );
    println!(
        "  kill: D-Bus KillUnit(php8.2-fpm.service, \"all\", SIGKILL), as `systemctl kill --signal=SIGKILL`; clock starts just before the call"
    );
    println!(
        "  probe: GET http://127.0.0.1:{}/ping.php, a fresh connection every {} ms; {REPETITIONS} crashes per restarter, 0.5–1.5 s random pause",
        r.port,
        POLL.as_millis()
    );
    println!("  times in ms, nearest-rank percentiles; 502s and other answers are totals over the {REPETITIONS} outages");
    println!();
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>6} {:>6}  target, or salve against it (this run)",
        "restarter", "p50", "p95", "max", "502s", "other"
    );
    let row = |name: &str, s: &Summary, note: String| {
        println!(
            "{:<40} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>6}  {note}",
            name,
            ms(s.percentile(0.5)),
            ms(s.percentile(0.95)),
            ms(s.max()),
            s.seen.bad_gateway,
            s.seen.other_status + s.seen.no_answer,
        )
    };
    row(
        "(i)   salve agent, unit Restart=no",
        &r.salve,
        format!(
            "target p50 ≤ {TARGET_FACTOR} × (iii) = {salve_limit:.1}: {} ({:.2} ×)",
            verdict(salve_p50 <= salve_limit),
            salve_p50 / floor_p50
        ),
    );
    row(
        "(ii)  systemd Restart=always, 100ms",
        &r.systemd_default,
        faster(salve_p50, &r.systemd_default),
    );
    row(
        "(iii) systemd Restart=always, 0 (floor)",
        &r.systemd_floor,
        "the floor: salve's target comes from it".to_string(),
    );
    row(
        &format!(
            "(iv)  monit, set daemon 1 (cycle {:.2} s)",
            r.monit_cycle.as_secs_f64()
        ),
        &r.monit,
        format!(
            "{}; {}",
            faster(salve_p50, &r.monit),
            if (0.9..=1.1).contains(&r.monit_cycle.as_secs_f64()) {
                "1 s cycle verified"
            } else {
                "cycle is NOT 1 s"
            }
        ),
    );
    let resolution = 100.0 / (f.ticks_per_second.max(1) as f64 * f.interval.as_secs_f64());
    let blank = |name: String, value: String, note: String| {
        println!(
            "{name:<40} {value:>8} {:>8} {:>8} {:>6} {:>6}  {note}",
            "", "", "", ""
        )
    };
    blank(
        format!("salve agent idle, {POLICIES} policies: RSS MB"),
        format!("{rss_mb:.1}"),
        format!(
            "target ≤ {} MB: {} (VmRSS; peak VmHWM {:.1} MB; {PROBES_AND_FOLLOWERS} probes and {PROBES_AND_FOLLOWERS} log followers running; metrics and status page on, /metrics read every 15 s, the page every 10 s)",
            TARGET_RSS_BYTES / 1_000_000,
            verdict(f.rss_bytes <= TARGET_RSS_BYTES),
            f.peak_rss_bytes as f64 / 1e6
        ),
    );
    blank(
        format!("salve agent idle, {POLICIES} policies: CPU %"),
        format!("{:.3}", f.cpu_percent),
        format!(
            "target ≤ {TARGET_CPU_PERCENT} % of a core: {} ({} ticks in {:.1} s; 1 tick = {resolution:.3} %)",
            verdict(f.cpu_percent <= TARGET_CPU_PERCENT),
            f.ticks,
            f.interval.as_secs_f64()
        ),
    );
    println!();
    let (intents, ok) = r.attempts;
    let one_each = if intents == REPETITIONS && ok == REPETITIONS {
        "one crash, one restart"
    } else {
        "expected one ok attempt per crash"
    };
    println!(
        "  salve journalled {intents} attempts on the pool, {ok} ok, for {REPETITIONS} crashes ({one_each})"
    );
    println!(
        "  salve's policy: unit trigger activeState [failed, inactive] → resetFailed, restart; guard cooldown 0s, maxAttempts 1000, window 1h, backoff 1.0"
    );
    println!(
        "  the other {} policies each watch a unit of their own that never fails, {PROBES_AND_FOLLOWERS} of them also probing nginx (a 404 it serves itself) every second and following a log file of their own; before each crash the pool's start-rate counter is reset (reset-failed), for every restarter alike",
        POLICIES - 1
    );
    let other: u64 = [&r.salve, &r.systemd_default, &r.systemd_floor, &r.monit]
        .iter()
        .map(|s| s.seen.no_answer)
        .sum();
    println!(
        "  (ii) spreads over RestartSec + up to 250 ms: systemd 252 arms the restart timer with sd-event's default accuracy (service_arm_timer passes 0 → 250 ms), so wake-ups coalesce"
    );
    println!(
        "  (iv) monit's cycle measured between {CYCLES} consecutive checks of the pool in its log (monit -v): {:.3} s",
        r.monit_cycle.as_secs_f64()
    );
    println!("  of the \"other\" answers, {other} were no HTTP answer at all (refused, reset or timed out)");
}

/// How salve's p50 compares with another restarter's, both from this run.
fn faster(salve_p50: f64, other: &Summary) -> String {
    let theirs = ms(other.percentile(0.5));
    format!(
        "salve's p50 is {:.1} × faster",
        theirs / salve_p50.max(0.001)
    )
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT MET"
    }
}
