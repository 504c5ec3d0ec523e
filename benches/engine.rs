//! Engine benchmark, one thread, two shapes:
//! - spread: 1,000 policies on 1,000 targets, 1,000,000 events, each reaching one
//!   policy: throughput and per-event latency next to the targets (>= 1,000,000
//!   events/s, p99 <= 10 µs);
//! - fan-out: 1,000 policies on one target, one URL and one log file, so every event
//!   reaches every policy: policy evaluations per second next to the target
//!   (>= 1,000,000/s), and per-event latency.
//!
//! Run with `make bench`.

use salve::engine::{
    Decision, Engine, Event, HttpObservation, Limits, LogLine, Outcome, OutcomeResult, Timestamp,
    UnitObservation, Verdict,
};
use salve::policy::{parse_file, ActiveState};
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

const POLICIES: usize = 1_000;
const EVENTS: usize = 1_000_000;
/// An attempt's outcome arrives this many events after the decision.
const OUTCOME_DELAY: usize = 50;

/// How the policies spread over targets and signals.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Policy i watches unit, URL and log file i of its own.
    Spread,
    /// Every policy watches the same unit, URL and log file.
    FanOut,
}

impl Shape {
    /// Which unit, URL port and log file policy (or event) `i` uses.
    fn slot(self, i: usize) -> usize {
        match self {
            Shape::Spread => i,
            Shape::FanOut => 0,
        }
    }
}

/// Events in the fan-out run: each reaches all 1,000 policies.
const FAN_OUT_EVENTS: usize = 20_000;

fn policies(shape: Shape) -> Engine {
    let mut all = Vec::with_capacity(POLICIES);
    for i in 0..POLICIES {
        let slot = shape.slot(i);
        let yaml = format!(
            "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: p{i} }}\nspec:\n  target: {{ unit: php{slot}.service }}\n  trigger:\n    - unit: {{ activeState: [failed, inactive] }}\n      for: 2s\n    - http: {{ url: \"http://127.0.0.1:{port}/ping.php\", failures: 3, interval: 1s, timeout: 1s }}\n    - log: {{ path: /var/log/site{slot}/error.log, pattern: 'connect\\(\\) to unix:\\S+ failed', count: 2, within: 30s }}\n  actions:\n    - restart: {{}}\n  guard: {{ cooldown: 10s, maxAttempts: 3, window: 10m, backoff: 2.0 }}\n  escalate:\n    - notify: {{ webhook: \"http://127.0.0.1:9093/\" }}\n",
            port = 10_000 + slot
        );
        let (found, errors) = parse_file(Path::new("bench.yaml"), &yaml);
        assert!(errors.is_empty(), "{errors:?}");
        all.extend(found);
    }
    Engine::new(
        all,
        Limits {
            max_actions_per_minute: 1_000_000,
            max_concurrent: 1_000_000,
            dry_run: false,
        },
    )
}

fn events(shape: Shape, count: usize) -> Vec<Event> {
    let mut rng = Rng::new(0x5A17E);
    let states = [
        ActiveState::Active,
        ActiveState::Active,
        ActiveState::Active,
        ActiveState::Failed,
        ActiveState::Inactive,
    ];
    (0..count)
        .map(|_| {
            let i = shape.slot(rng.below(POLICIES));
            match rng.below(100) {
                0..=59 => Event::Unit(UnitObservation {
                    name: format!("php{i}.service"),
                    active_state: Some(states[rng.below(states.len())]),
                    sub_state: None,
                    unit_file_state: None,
                    result: None,
                    n_restarts: None,
                }),
                60..=89 => Event::Http(HttpObservation {
                    url: format!("http://127.0.0.1:{}/ping.php", 10_000 + i),
                    status: Some(if rng.below(4) == 0 { 502 } else { 200 }),
                    error: None,
                }),
                90..=94 => Event::Log(LogLine {
                    path: format!("/var/log/site{i}/error.log").into(),
                    line: if rng.below(2) == 0 {
                        "2026/11/24 22:00:30 [error] 812#812: *41 connect() to unix:/run/php/php8.2-fpm.sock failed (111: Connection refused) while connecting to upstream".into()
                    } else {
                        "2026/11/24 22:00:31 [error] 812#812: *43 open() \"/var/www/html/favicon.ico\" failed (2: No such file or directory)".into()
                    },
                }),
                _ => Event::Tick {},
            }
        })
        .collect()
}

struct Run {
    elapsed: Duration,
    latencies_ns: Vec<u64>,
    handled: usize,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    acts: usize,
    skips: usize,
    escalations: usize,
}

/// Feeds every event at 1 ms virtual steps, returning outcomes for attempts as the
/// agent would. With `timed`, each `handle` call is timed on its own.
fn run(shape: Shape, events: &[Event], timed: bool) -> Run {
    let mut engine = policies(shape);
    let names: Vec<String> = engine.policies().map(|p| p.name().to_string()).collect();
    let mut pending: VecDeque<(usize, Event)> = VecDeque::new();
    let mut out: Vec<Decision> = Vec::with_capacity(16);
    let mut latencies_ns = Vec::with_capacity(if timed { events.len() * 2 } else { 0 });
    let mut counts = Counts::default();
    let mut handled = 0usize;
    let start = Instant::now();
    for (n, scripted) in events.iter().enumerate() {
        let now = Timestamp::from_millis(n as u64);
        // Outcomes of earlier attempts come back first, as the agent would report them.
        while pending.front().is_some_and(|(at, _)| *at <= n) {
            let Some((_, outcome)) = pending.pop_front() else {
                break;
            };
            handle(
                &mut engine,
                now,
                &outcome,
                &mut out,
                timed.then_some(&mut latencies_ns),
            );
            handled += 1;
            tally(&out, n, &names, &mut pending, &mut counts);
        }
        handle(
            &mut engine,
            now,
            scripted,
            &mut out,
            timed.then_some(&mut latencies_ns),
        );
        handled += 1;
        tally(&out, n, &names, &mut pending, &mut counts);
    }
    Run {
        elapsed: start.elapsed(),
        latencies_ns,
        handled,
        counts,
    }
}

fn handle(
    engine: &mut Engine,
    now: Timestamp,
    event: &Event,
    out: &mut Vec<Decision>,
    latencies: Option<&mut Vec<u64>>,
) {
    out.clear();
    match latencies {
        Some(latencies) => {
            let t = Instant::now();
            engine.handle(now, event, out);
            latencies.push(t.elapsed().as_nanos() as u64);
        }
        None => engine.handle(now, event, out),
    }
}

/// Counts decisions and schedules each attempt's outcome a little later (every third
/// attempt fails, so backoff and circuits are exercised too).
fn tally(
    out: &[Decision],
    n: usize,
    names: &[String],
    pending: &mut VecDeque<(usize, Event)>,
    counts: &mut Counts,
) {
    for d in out {
        match &d.verdict {
            Verdict::Act { attempt_id, .. } => {
                counts.acts += 1;
                let result = if attempt_id % 3 == 0 {
                    OutcomeResult::Failed
                } else {
                    OutcomeResult::Ok
                };
                let outcome = Event::Outcome(Outcome {
                    policy: names[d.policy.index()].clone(),
                    attempt_id: Some(*attempt_id),
                    result,
                    verified: None,
                    detail: None,
                });
                pending.push_back((n + OUTCOME_DELAY, outcome));
            }
            Verdict::Skip { .. } => counts.skips += 1,
            Verdict::Escalate { .. } => counts.escalations += 1,
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench` in a debug build:
    // then only check that a short run works, and print no figures that mean nothing.
    if !std::env::args().any(|a| a == "--bench") {
        let smoke = run(Shape::Spread, &events(Shape::Spread, 20_000), false);
        assert!(
            smoke.handled >= 20_000 && smoke.counts.acts > 0,
            "engine benchmark smoke run made no decisions"
        );
        let fan = run(Shape::FanOut, &events(Shape::FanOut, 200), false);
        assert!(
            fan.counts.acts > 0 && fan.counts.skips > 0,
            "fan-out smoke run made no decisions"
        );
        println!("engine benchmark: smoke runs ok (use `make bench` for figures)");
        return;
    }
    let verdict = |ok: bool| if ok { "PASS" } else { "MISSED" };
    println!("salve engine benchmark, one thread");
    println!("spread: {POLICIES} policies on {POLICIES} targets, {EVENTS} scripted events, each reaching one policy");
    let events_spread = events(Shape::Spread, EVENTS);
    run(Shape::Spread, &events_spread[..100_000], false); // warm-up
    let plain = run(Shape::Spread, &events_spread, false);
    let rate = plain.handled as f64 / plain.elapsed.as_secs_f64();
    let mut timed = run(Shape::Spread, &events_spread, true);
    timed.latencies_ns.sort_unstable();
    let l = &timed.latencies_ns;
    let (p50, p99, p999, max) = (
        percentile(l, 0.50),
        percentile(l, 0.99),
        percentile(l, 0.999),
        l[l.len() - 1],
    );
    println!(
        "  handled {} events ({} outcomes of attempts among them): {} act, {} skip, {} escalate",
        plain.handled,
        plain.handled - EVENTS,
        plain.counts.acts,
        plain.counts.skips,
        plain.counts.escalations
    );
    println!("  {:<18} {:>18}   {:<22}", "figure", "measured", "target");
    println!(
        "  {:<18} {:>13.0} ev/s   {:<22} {}",
        "throughput",
        rate,
        ">= 1000000 ev/s",
        verdict(rate >= 1_000_000.0)
    );
    println!("  {:<18} {:>15} ns", "latency p50", p50);
    println!(
        "  {:<18} {:>15} ns   {:<22} {}",
        "latency p99",
        p99,
        "<= 10000 ns",
        verdict(p99 <= 10_000)
    );
    println!("  {:<18} {:>15} ns", "latency p99.9", p999);
    println!("  {:<18} {:>15} ns", "latency max", max);

    println!("fan-out: {POLICIES} policies on one target, one URL, one log file, {FAN_OUT_EVENTS} events, each reaching every policy");
    let events_fan = events(Shape::FanOut, FAN_OUT_EVENTS);
    run(Shape::FanOut, &events_fan[..2_000], false); // warm-up
    let fan = run(Shape::FanOut, &events_fan, false);
    // Ticks reach no policy; every other event and every outcome reaches all of them.
    let ticks = events_fan
        .iter()
        .filter(|e| matches!(e, Event::Tick {}))
        .count();
    let evaluations = (fan.handled - ticks) as f64 * POLICIES as f64;
    let eval_rate = evaluations / fan.elapsed.as_secs_f64();
    let mut fan_timed = run(Shape::FanOut, &events_fan, true);
    fan_timed.latencies_ns.sort_unstable();
    let l = &fan_timed.latencies_ns;
    println!(
        "  handled {} events: {} act, {} skip, {} escalate",
        fan.handled, fan.counts.acts, fan.counts.skips, fan.counts.escalations
    );
    println!(
        "  {:<18} {:>13.0} ev/s",
        "throughput",
        fan.handled as f64 / fan.elapsed.as_secs_f64()
    );
    println!(
        "  {:<18} {:>11.0} evals/s   {:<22} {}",
        "policy evaluations",
        eval_rate,
        ">= 1000000 evals/s",
        verdict(eval_rate >= 1_000_000.0)
    );
    println!("  {:<18} {:>15} ns", "latency p50", percentile(l, 0.50));
    println!("  {:<18} {:>15} ns", "latency p99", percentile(l, 0.99));
    println!("  {:<18} {:>15} ns", "latency max", l[l.len() - 1]);
}
