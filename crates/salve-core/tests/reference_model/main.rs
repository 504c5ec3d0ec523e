//! The engine against the reference model (`model.rs`), decision by decision, on
//! generated histories: several targets with several policies each, unit, HTTP and log
//! triggers, outcomes with and without attempt ids (ok, failed, timed_out,
//! not_applicable, unknown, failed verification, stale ids), resets, reloads that
//! rename, remove, retune, reorder and restore policies or flip them to dry run, time
//! gaps from milliseconds to past every window, and dry-run and live policies mixed.
//!
//! Both are ticked at every instant either could act on its own (the engine's
//! `next_deadline` and the model's own wake times), so a missed timer in the engine is
//! a disagreement, not a blind spot.

mod model;

use model::{Model, Said};
use proptest::prelude::*;
use salve_core::engine::{
    AlertObservation, AlertStatus, Decision, Engine, Event, HttpObservation, Limits, LogLine,
    Outcome, OutcomeResult, PhpFpmObservation, PhpFpmStatus, Reset, Timestamp, UnitObservation,
    Verdict,
};
use salve_core::policy::{parse_file, ActiveState, Policy};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone)]
struct PolicySpec {
    name: String,
    target: usize,
    dry_run: bool,
    unit_hold_s: Option<u64>,
    /// The unit trigger also asks for `subState: [failed]`.
    unit_sub_failed: bool,
    /// (URL, failures, `for` in seconds).
    http: Option<(usize, u32, u64)>,
    /// (log file, count, within, `for` in seconds).
    log: Option<(usize, u32, u64, u64)>,
    /// (alert name, `for` in seconds).
    alert: Option<(usize, u64)>,
    /// A status page's listen queue threshold, and `for` in seconds.
    fpm: Option<(u32, u64)>,
    cooldown_s: u64,
    max_attempts: u32,
    window_s: u64,
    backoff_tenths: u32,
}

impl PolicySpec {
    fn yaml(&self) -> String {
        let mut trigger = String::new();
        if let Some(hold) = self.unit_hold_s {
            let sub = if self.unit_sub_failed {
                ", subState: [failed]"
            } else {
                ""
            };
            trigger += &format!(
                "    - unit: {{ activeState: [failed, inactive]{sub} }}\n      for: {hold}s\n"
            );
        }
        if let Some((url, failures, hold)) = self.http {
            trigger += &format!(
                "    - http: {{ url: \"http://127.0.0.1/{url}\", failures: {failures} }}\n      for: {hold}s\n"
            );
        }
        if let Some((path, count, within, hold)) = self.log {
            trigger += &format!(
                "    - log: {{ path: /var/log/{path}.log, pattern: refused, count: {count}, within: {within}s }}\n      for: {hold}s\n"
            );
        }
        if let Some((name, hold)) = self.alert {
            trigger += &format!("    - alert: {{ name: A{name} }}\n      for: {hold}s\n");
        }
        if let Some((queue, hold)) = self.fpm {
            trigger += &format!("    - phpFpm: {{ status: \"127.0.0.1:9001\", listenQueue: {queue}, failures: 2 }}\n      for: {hold}s\n");
        }
        format!(
            "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: {} }}\nspec:\n  target: {{ unit: t{}.service }}\n  trigger:\n{trigger}  actions:\n    - restart: {{}}\n  escalate:\n    - notify: {{ webhook: \"http://127.0.0.1:9093/\" }}\n  guard: {{ cooldown: {}s, maxAttempts: {}, window: {}s, backoff: {}.{} }}\n  dryRun: {}\n",
            self.name,
            self.target,
            self.cooldown_s,
            self.max_attempts,
            self.window_s,
            self.backoff_tenths / 10,
            self.backoff_tenths % 10,
            self.dry_run,
        )
    }
}

fn policies(specs: &[PolicySpec]) -> Vec<Policy> {
    let text: String = specs.iter().map(|s| s.yaml() + "---\n").collect();
    if specs.is_empty() {
        return Vec::new();
    }
    let (found, errors) = parse_file(Path::new("generated.yaml"), &text);
    assert!(errors.is_empty(), "{errors:?}\n{text}");
    found
}

fn policy_spec(index: usize) -> impl Strategy<Value = PolicySpec> {
    let hold = || prop_oneof![3 => Just(0u64), 1 => 1u64..3];
    (
        0usize..3,
        prop::bool::weighted(0.25),
        (
            prop::option::weighted(0.7, 0u64..4),
            prop::bool::weighted(0.2),
        ),
        prop::option::weighted(0.5, (0usize..2, 1u32..4, hold())),
        (
            prop::option::weighted(0.5, (0usize..2, 1u32..4, 5u64..60, hold())),
            prop::option::weighted(0.3, (0usize..2, hold())),
            prop::option::weighted(0.3, (1u32..3, hold())),
        ),
        (0u64..20, 1u32..9, 0u64..120, 10u32..30),
    )
        .prop_map(
            move |(
                target,
                dry_run,
                (unit, unit_sub_failed),
                http,
                (log, alert, fpm),
                (c, m, w, b),
            )| {
                PolicySpec {
                    name: format!("p{index}"),
                    target,
                    dry_run,
                    // At least one trigger.
                    unit_hold_s: if unit.is_none()
                        && http.is_none()
                        && log.is_none()
                        && alert.is_none()
                        && fpm.is_none()
                    {
                        Some(0)
                    } else {
                        unit
                    },
                    unit_sub_failed,
                    http,
                    log,
                    alert,
                    fpm,
                    cooldown_s: c,
                    max_attempts: m,
                    window_s: c.max(1) + w,
                    backoff_tenths: b,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Mutation {
    Rename(usize),
    Remove(usize),
    Retune(usize, u64, u32),
    ToggleDryRun(usize),
    Reverse,
    Restore,
}

#[derive(Debug, Clone)]
enum Step {
    /// A unit's active state, and sometimes its sub-state.
    Unit(usize, ActiveState, Option<&'static str>),
    Probe(usize, Option<u16>),
    Log(usize, bool),
    /// An alert's name, fingerprint and start, and whether it fires or resolved.
    Alert(usize, usize, usize, bool),
    /// A status page's listen queue, or no answer.
    Fpm(Option<u32>),
    /// Which attempt (index into those running), the result, a failed verification,
    /// and how it names the attempt: 0 by id, 1 by policy name only, 2 a stale id.
    Outcome(usize, OutcomeResult, bool, u8),
    Reset(usize),
    Reload(Mutation),
    Tick,
}

fn step() -> impl Strategy<Value = Step> {
    let state = prop_oneof![
        Just(ActiveState::Active),
        Just(ActiveState::Failed),
        Just(ActiveState::Inactive),
        Just(ActiveState::Activating),
    ];
    let result = prop_oneof![
        3 => Just(OutcomeResult::Ok),
        3 => Just(OutcomeResult::Failed),
        1 => Just(OutcomeResult::TimedOut),
        1 => Just(OutcomeResult::NotApplicable),
        1 => Just(OutcomeResult::Unknown),
    ];
    let status = prop_oneof![Just(Some(200u16)), Just(Some(502u16)), Just(None)];
    let mutation = prop_oneof![
        (0usize..8).prop_map(Mutation::Rename),
        (0usize..8).prop_map(Mutation::Remove),
        (0usize..8, 0u64..20, 1u32..5).prop_map(|(i, c, m)| Mutation::Retune(i, c, m)),
        (0usize..8).prop_map(Mutation::ToggleDryRun),
        Just(Mutation::Reverse),
        Just(Mutation::Restore),
    ];
    prop_oneof![
        4 => (0usize..3, state, prop_oneof![2 => Just(None), 1 => Just(Some("failed")), 1 => Just(Some("dead"))])
            .prop_map(|(t, s, sub)| Step::Unit(t, s, sub)),
        3 => (0usize..2, status).prop_map(|(u, s)| Step::Probe(u, s)),
        2 => (0usize..2, prop::bool::weighted(0.8)).prop_map(|(p, m)| Step::Log(p, m)),
        2 => (0usize..2, 0usize..3, 0usize..2, prop::bool::weighted(0.7))
            .prop_map(|(n, f, s, firing)| Step::Alert(n, f, s, firing)),
        2 => prop::option::weighted(0.8, 0u32..4).prop_map(Step::Fpm),
        4 => (0usize..4, result, prop::bool::weighted(0.2), prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)])
            .prop_map(|(i, r, v, by)| Step::Outcome(i, r, v, by)),
        1 => (0usize..8).prop_map(Step::Reset),
        1 => mutation.prop_map(Step::Reload),
        1 => Just(Step::Tick),
    ]
}

fn gap() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0u64..50).prop_map(Duration::from_millis),
        4 => (50u64..5_000).prop_map(Duration::from_millis),
        2 => (5u64..200).prop_map(Duration::from_secs),
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    specs: Vec<PolicySpec>,
    limits: Limits,
    steps: Vec<(Duration, Step)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        (2usize..7).prop_flat_map(|n| (0..n).map(policy_spec).collect::<Vec<_>>()),
        (
            prop_oneof![1u32..6, Just(30u32)],
            1u32..4,
            prop::bool::weighted(0.1),
        ),
        prop::collection::vec((gap(), step()), 1..120),
    )
        .prop_map(|(specs, (storm, concurrent, dry_run), steps)| Scenario {
            specs,
            limits: Limits {
                max_actions_per_minute: storm,
                max_concurrent: concurrent,
                dry_run,
            },
            steps,
        })
}

fn said(engine: &Engine, decisions: &[Decision]) -> Vec<Said> {
    let mut said: Vec<Said> = decisions
        .iter()
        .map(|d| {
            let policy = engine.policy(d.policy).name().to_string();
            match &d.verdict {
                Verdict::Act {
                    attempt_id,
                    attempt,
                    evidence,
                } => Said::Act {
                    policy,
                    attempt_id: *attempt_id,
                    attempt: *attempt,
                    evidence: evidence.len(),
                },
                Verdict::Escalate {
                    attempts, dry_run, ..
                } => Said::Escalate {
                    policy,
                    attempts: *attempts,
                    dry_run: *dry_run,
                },
                Verdict::Skip {
                    reason,
                    retry_at,
                    attempt,
                    evidence,
                } => Said::Skip {
                    policy,
                    reason: reason.as_str(),
                    retry_at: *retry_at,
                    attempt: *attempt,
                    evidence: evidence.len(),
                },
            }
        })
        .collect();
    sort(&mut said);
    said
}

/// Within one instant the engine and the model may say things in a different order
/// (the engine follows its indexes, the model re-decides everyone); what is said, and
/// who got each attempt id, must be the same.
fn sort(said: &mut [Said]) {
    said.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
}

fn mutate(
    specs: &mut Vec<PolicySpec>,
    original: &[PolicySpec],
    mutation: &Mutation,
    renames: &mut u32,
) {
    let pick = |i: usize, len: usize| if len == 0 { None } else { Some(i % len) };
    match mutation {
        Mutation::Rename(i) => {
            if let Some(i) = pick(*i, specs.len()) {
                *renames += 1;
                specs[i].name = format!("renamed{renames}");
            }
        }
        Mutation::Remove(i) => {
            if let Some(i) = pick(*i, specs.len()) {
                specs.remove(i);
            }
        }
        Mutation::Retune(i, cooldown, max_attempts) => {
            if let Some(i) = pick(*i, specs.len()) {
                specs[i].cooldown_s = *cooldown;
                specs[i].window_s = specs[i].window_s.max((*cooldown).max(1));
                specs[i].max_attempts = *max_attempts;
            }
        }
        Mutation::ToggleDryRun(i) => {
            if let Some(i) = pick(*i, specs.len()) {
                specs[i].dry_run = !specs[i].dry_run;
            }
        }
        Mutation::Reverse => specs.reverse(),
        Mutation::Restore => *specs = original.to_vec(),
    }
}

/// What a run said, by kind (`act`, `escalate`, each skip reason): the generators must
/// reach every rule, or agreement would prove little.
type Coverage = std::collections::BTreeMap<&'static str, u64>;

fn run(scenario: &Scenario, coverage: &mut Coverage) -> Result<(), TestCaseError> {
    let mut specs = scenario.specs.clone();
    let mut engine = Engine::new(policies(&specs), scenario.limits.clone());
    let mut model = Model::new(policies(&specs), scenario.limits.clone());
    let mut now = Timestamp::ZERO;
    let mut running: Vec<(u64, String)> = Vec::new();
    let mut finished: Vec<u64> = Vec::new();
    let mut renames = 0;
    let mut trace: Vec<String> = Vec::new();

    let check = |trace: &mut Vec<String>,
                 coverage: &mut Coverage,
                 engine: &Engine,
                 decisions: Vec<Decision>,
                 mut expected: Vec<Said>,
                 running: &mut Vec<(u64, String)>|
     -> Result<(), TestCaseError> {
        let got = said(engine, &decisions);
        sort(&mut expected);
        for d in &got {
            let kind = match d {
                Said::Act { .. } => "act",
                Said::Escalate { .. } => "escalate",
                Said::Skip { reason, .. } => reason,
            };
            *coverage.entry(kind).or_default() += 1;
            trace.push(format!("    {d:?}"));
            if let Said::Act {
                attempt_id, policy, ..
            } = d
            {
                running.push((*attempt_id, policy.clone()));
            }
        }
        prop_assert_eq!(
            &got,
            &expected,
            "engine (left) and model (right) disagree; history:\n{}",
            trace.join("\n")
        );
        Ok(())
    };

    for (gap, step) in &scenario.steps {
        let until = now + *gap;
        // Every instant either side could act on its own, up to the next event.
        let mut ticks = 0;
        loop {
            let next = engine
                .next_deadline()
                .into_iter()
                .chain(model.wake_times(now))
                .filter(|&t| t > now && t <= until)
                .min();
            let Some(at) = next else { break };
            ticks += 1;
            prop_assert!(ticks < 10_000, "runaway timers");
            now = at;
            trace.push(format!("{now:?} tick"));
            let mut out = Vec::new();
            engine.handle(now, &Event::Tick {}, &mut out);
            let expected = model.handle(now, &Event::Tick {});
            check(&mut trace, coverage, &engine, out, expected, &mut running)?;
        }
        now = until;
        let event = match step {
            Step::Unit(t, state, sub) => Event::Unit(UnitObservation {
                name: format!("t{t}.service"),
                active_state: Some(*state),
                sub_state: sub.map(str::to_string),
                unit_file_state: None,
                result: None,
                n_restarts: None,
            }),
            Step::Probe(u, status) => Event::Http(HttpObservation {
                url: format!("http://127.0.0.1/{u}"),
                status: *status,
                error: status.is_none().then(|| "connection refused".to_string()),
            }),
            Step::Log(p, matching) => Event::Log(LogLine {
                path: format!("/var/log/{p}.log").into(),
                line: if *matching {
                    "connect() failed (111: Connection refused)".into()
                } else {
                    "a quiet line".into()
                },
            }),
            Step::Alert(name, fingerprint, starts, firing) => Event::Alert(AlertObservation {
                group_key: "{}:{}".into(),
                fingerprint: format!("f{fingerprint}"),
                status: if *firing {
                    AlertStatus::Firing
                } else {
                    AlertStatus::Resolved
                },
                starts_at: format!("s{starts}"),
                labels: [("alertname".to_string(), format!("A{name}"))].into(),
            }),
            Step::Fpm(queue) => Event::PhpFpm(PhpFpmObservation {
                source: "127.0.0.1:9001 /status".into(),
                status: queue.map(|q| PhpFpmStatus {
                    pool: "www".into(),
                    listen_queue: q,
                    idle: 0,
                    active: 1,
                    total: 1,
                    max_children_reached: 0,
                }),
                error: queue.is_none().then(|| "timed out after 2s".to_string()),
            }),
            Step::Outcome(i, result, unverified, by) => {
                let (attempt_id, policy) = match (running.is_empty(), by) {
                    (true, _) => (
                        None,
                        specs.first().map_or("none".into(), |s| s.name.clone()),
                    ),
                    (false, 2) => {
                        let stale = finished.get(*i % finished.len().max(1)).copied();
                        (Some(stale.unwrap_or(9_999)), running[0].1.clone())
                    }
                    (false, by) => {
                        let (id, policy) = running.remove(*i % running.len());
                        finished.push(id);
                        ((*by == 0).then_some(id), policy)
                    }
                };
                Event::Outcome(Outcome {
                    policy,
                    attempt_id,
                    result: *result,
                    verified: unverified.then_some(false),
                    detail: None,
                })
            }
            Step::Reset(i) => Event::Reset(Reset {
                policy: specs
                    .get(i % specs.len().max(1))
                    .map_or("none".into(), |s| s.name.clone()),
                target: None,
            }),
            Step::Reload(mutation) => {
                mutate(&mut specs, &scenario.specs, mutation, &mut renames);
                trace.push(format!(
                    "{now:?} reload {mutation:?}: {:?}",
                    specs
                        .iter()
                        .map(|s| (&s.name, s.target, s.dry_run))
                        .collect::<Vec<_>>()
                ));
                let mut out = Vec::new();
                engine.replace_policies(now, policies(&specs), &mut out);
                let expected = model.reload(now, policies(&specs));
                check(&mut trace, coverage, &engine, out, expected, &mut running)?;
                continue;
            }
            Step::Tick => Event::Tick {},
        };
        trace.push(format!(
            "{now:?} {}",
            serde_json::to_string(&event).unwrap_or_default()
        ));
        let mut out = Vec::new();
        engine.handle(now, &event, &mut out);
        let expected = model.handle(now, &event);
        check(&mut trace, coverage, &engine, out, expected, &mut running)?;
    }
    Ok(())
}

#[test]
fn the_engine_decides_as_the_reference_model_does() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        // A failure prints its history; shrinking it is what makes it readable.
        max_shrink_iters: 2_000,
        // The histories that found engine bugs run first, every time (cargo runs tests
        // from the crate's directory).
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "tests/reference_model/regressions.txt",
            ),
        )),
        ..ProptestConfig::default()
    });
    let coverage = std::cell::RefCell::new(Coverage::new());
    let result = runner.run(&scenario(), |scenario| {
        run(&scenario, &mut coverage.borrow_mut())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let coverage = coverage.into_inner();
    eprintln!("{cases} cases; decisions by kind: {coverage:?}");
    for kind in [
        "act",
        "escalate",
        "cooldown",
        "circuit_open",
        "dry_run",
        "storm_cap",
        "max_concurrent",
        "in_flight",
    ] {
        let seen = coverage.get(kind).copied().unwrap_or(0);
        assert!(
            seen >= u64::from(cases) / 10,
            "the generators reach `{kind}` too rarely ({seen} in {cases} cases): {coverage:?}"
        );
    }
}
