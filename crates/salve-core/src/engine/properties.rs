//! Property tests: random event sequences against random guard settings must never
//! break the guardrail invariants.

use super::tests::{engine_from, policy_yaml};
use super::*;
use crate::policy::{ActiveState, Guard};
use proptest::prelude::*;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Step {
    UnitState(usize, ActiveState),
    Probe(usize, u16),
    LogLine(usize, bool),
    Outcome(usize, OutcomeResult, bool),
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
        Just(OutcomeResult::Ok),
        Just(OutcomeResult::Failed),
        Just(OutcomeResult::TimedOut),
        Just(OutcomeResult::NotApplicable)
    ];
    prop_oneof![
        3 => (0..POLICIES, state).prop_map(|(u, s)| Step::UnitState(u, s)),
        2 => (0..POLICIES, prop_oneof![Just(200u16), Just(502u16)]).prop_map(|(u, s)| Step::Probe(u, s)),
        1 => (0..POLICIES, any::<bool>()).prop_map(|(u, m)| Step::LogLine(u, m)),
        3 => (0..POLICIES, result, any::<bool>()).prop_map(|(p, r, v)| Step::Outcome(p, r, v)),
        1 => Just(Step::Tick),
    ]
}

const POLICIES: usize = 3;

#[derive(Debug, Clone)]
struct GuardParams {
    cooldown_s: u64,
    max_attempts: u32,
    window_s: u64,
    backoff_tenths: u32,
    hold_s: u64,
}

fn guard_params() -> impl Strategy<Value = GuardParams> {
    (0u64..20, 1u32..5, 0u64..120, 10u32..30, 0u64..4).prop_map(|(c, m, w, b, h)| GuardParams {
        cooldown_s: c,
        max_attempts: m,
        window_s: c.max(1) + w,
        backoff_tenths: b,
        hold_s: h,
    })
}

fn build(params: &[GuardParams], dry_run: bool, limits: Limits) -> Engine {
    engine_from(&policies_yaml("p", params, dry_run), limits)
}

/// One policy per guard, named `{prefix}0`, `{prefix}1`, …; policy i watches target
/// `target_of(i)`, probe `/{i}` and log `/var/log/{i}.log`, whatever its prefix, so
/// policies of two sets with the same index see the same signals.
fn policies_yaml(prefix: &str, params: &[GuardParams], dry_run: bool) -> Vec<String> {
    params
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let trigger = format!(
                "    - unit: {{ activeState: [failed, inactive] }}\n      for: {}s\n    - http: {{ url: \"http://127.0.0.1/{i}\", failures: 2, interval: 1s, timeout: 1s }}\n    - log: {{ path: /var/log/{i}.log, pattern: 'refused', count: 1, within: 30s }}",
                g.hold_s
            );
            let guard = format!(
                "{{ cooldown: {}s, maxAttempts: {}, window: {}s, backoff: {}.{} }}",
                g.cooldown_s,
                g.max_attempts,
                g.window_s,
                g.backoff_tenths / 10,
                g.backoff_tenths % 10
            );
            let extra = if dry_run { "  dryRun: true\n" } else { "" };
            // Policies 0 and 2 share a target: guardrails hold per target, across policies.
            let unit = format!("u{}.service", target_of(i));
            policy_yaml(&format!("{prefix}{i}"), &unit, &trigger, &guard, extra)
        })
        .collect()
}

fn event(step: &Step) -> Event {
    match step {
        Step::UnitState(u, s) => Event::Unit(UnitObservation {
            name: format!("u{}.service", target_of(*u)),
            active_state: Some(*s),
            sub_state: None,
            unit_file_state: None,
            result: None,
            n_restarts: None,
        }),
        Step::Probe(u, status) => Event::Http(HttpObservation {
            url: format!("http://127.0.0.1/{u}"),
            status: Some(*status),
            error: None,
        }),
        Step::LogLine(u, matching) => Event::Log(LogLine {
            path: format!("/var/log/{u}.log").into(),
            line: if *matching {
                "connect() failed (111: Connection refused)"
            } else {
                "favicon"
            }
            .into(),
        }),
        Step::Outcome(p, result, verified) => Event::Outcome(Outcome {
            policy: format!("p{p}"),
            attempt_id: None,
            result: *result,
            verified: Some(*verified),
            detail: None,
        }),
        Step::Tick => Event::Tick {},
    }
}

/// What happened during a run, in order: a step fed, or a decision made.
#[derive(Debug)]
enum Logged {
    Fed(usize),
    Decided(Decision),
}

/// Runs the steps with random gaps, honouring every timer the engine asks for.
fn run_logged(engine: &mut Engine, steps: &[(u64, Step)]) -> Vec<Logged> {
    let mut now = Timestamp::ZERO;
    let mut log = Vec::new();
    let mut out = Vec::new();
    for (i, (gap_ms, step)) in steps.iter().enumerate() {
        now = now + Duration::from_millis(*gap_ms);
        while let Some(deadline) = engine.next_deadline().filter(|&d| d <= now) {
            engine.handle(deadline, &Event::Tick {}, &mut out);
            log.extend(out.drain(..).map(Logged::Decided));
        }
        log.push(Logged::Fed(i));
        engine.handle(now, &event(step), &mut out);
        log.extend(out.drain(..).map(Logged::Decided));
    }
    log
}

fn run(engine: &mut Engine, steps: &[(u64, Step)]) -> Vec<Decision> {
    run_logged(engine, steps)
        .into_iter()
        .filter_map(|l| match l {
            Logged::Decided(d) => Some(d),
            Logged::Fed(_) => None,
        })
        .collect()
}

const TARGETS: usize = 2;

fn target_of(policy: usize) -> usize {
    policy % TARGETS
}

/// Every act on `target` that counts toward its circuit, in order, with the policy that
/// made it: all of them but those whose outcome was `not_applicable`.
fn counted_acts_on(
    log: &[Logged],
    steps: &[(u64, Step)],
    target: usize,
) -> Vec<(Timestamp, usize)> {
    let mut acts = Vec::new();
    let mut in_flight = false;
    for entry in log {
        match entry {
            Logged::Decided(d) if target_of(d.policy.index()) == target => {
                if let Verdict::Act { .. } = d.verdict {
                    acts.push((d.at, d.policy.index()));
                    in_flight = true;
                }
            }
            Logged::Fed(i) => {
                if let Step::Outcome(q, result, _) = &steps[*i].1 {
                    if target_of(*q) == target && in_flight {
                        in_flight = false;
                        if *result == OutcomeResult::NotApplicable {
                            acts.pop();
                        }
                    }
                }
            }
            Logged::Decided(_) => {}
        }
    }
    acts
}

fn guard_of(engine: &Engine, id: PolicyId) -> Guard {
    engine.policy(id).spec.guard.clone()
}

fn steps() -> impl Strategy<Value = Vec<(u64, Step)>> {
    prop::collection::vec((0u64..15_000, step()), 1..300)
}

/// A person's pause at step `at` of a run: of policy `policy`'s target, or of the
/// policy, for `for_ms`.
#[derive(Debug, Clone)]
struct PauseAt {
    at: usize,
    policy: usize,
    by_target: bool,
    for_ms: u64,
}

fn pauses() -> impl Strategy<Value = Vec<PauseAt>> {
    prop::collection::vec(
        (0usize..300, 0..POLICIES, any::<bool>(), 1u64..60_000).prop_map(
            |(at, policy, by_target, for_ms)| PauseAt {
                at,
                policy,
                by_target,
                for_ms,
            },
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// While a pause names a policy or its target, that policy starts nothing, and
    /// every skip it journals meanwhile says `paused` or names a rule checked before
    /// pauses (an attempt in flight).
    #[test]
    fn a_paused_policy_never_acts_until_its_pause_ends(
        params in prop::collection::vec(guard_params(), POLICIES),
        steps in steps(),
        pauses in pauses(),
    ) {
        let mut engine = build(&params, false, Limits::default());
        let mut now = Timestamp::ZERO;
        let mut out = Vec::new();
        // What each pause names, and until when.
        let mut windows: Vec<(PauseScope, Timestamp)> = Vec::new();
        // Checks the decisions just made against the pauses in force when they were.
        let check = |out: &mut Vec<Decision>, windows: &[(PauseScope, Timestamp)]| -> Result<(), TestCaseError> {
            for d in out.drain(..) {
                let name = format!("p{}", d.policy.index());
                let target = format!("u{}.service", target_of(d.policy.index()));
                let paused = windows.iter().any(|(scope, until)| {
                    *until > d.at
                        && match scope {
                            PauseScope::Policy(p) => *p == name,
                            PauseScope::Target(t) => *t == target,
                        }
                });
                if paused {
                    prop_assert!(
                        !matches!(d.verdict, Verdict::Act { .. } | Verdict::Escalate { .. }),
                        "{name} acted or escalated at {:?} while paused: {windows:?}", d.at
                    );
                    if let Verdict::Skip { reason, .. } = d.verdict {
                        prop_assert!(
                            matches!(reason, SkipReason::Paused | SkipReason::InFlight),
                            "{name} skipped as {reason:?} while paused"
                        );
                    }
                }
            }
            Ok(())
        };
        for (i, (gap_ms, step)) in steps.iter().enumerate() {
            now = now + Duration::from_millis(*gap_ms);
            while let Some(deadline) = engine.next_deadline().filter(|&d| d <= now) {
                engine.handle(deadline, &Event::Tick {}, &mut out);
                check(&mut out, &windows)?;
            }
            for p in pauses.iter().filter(|p| p.at == i) {
                let scope = match p.by_target {
                    true => PauseScope::Target(format!("u{}.service", target_of(p.policy))),
                    false => PauseScope::Policy(format!("p{}", p.policy)),
                };
                let until = now + Duration::from_millis(p.for_ms);
                // A later pause of the same scope replaces the earlier one.
                windows.retain(|(s, _)| s != &scope);
                windows.push((scope.clone(), until));
                engine.pause(now, scope, until, &mut out).expect("a known scope");
                check(&mut out, &windows)?;
            }
            engine.handle(now, &event(step), &mut out);
            check(&mut out, &windows)?;
        }
    }

    #[test]
    fn attempts_on_a_target_within_any_window_never_exceed_max_attempts(
        params in prop::collection::vec(guard_params(), POLICIES),
        steps in steps(),
    ) {
                let mut engine = build(&params, false, Limits { max_actions_per_minute: 1000, max_concurrent: 1000, dry_run: false });
        let log = run_logged(&mut engine, &steps);
        for target in 0..TARGETS {
            let acts = counted_acts_on(&log, &steps, target);
            for (i, &(t, p)) in acts.iter().enumerate() {
                let guard = guard_of(&engine, PolicyId(p as u32));
                let in_window = acts[..=i].iter().filter(|&&(s, _)| s + guard.window > t).count();
                prop_assert!(in_window as u32 <= guard.max_attempts,
                    "target u{target}: {in_window} attempts within {:?} ending at {t} (p{p} allows {})", guard.window, guard.max_attempts);
            }
        }
    }

    #[test]
    fn consecutive_attempts_on_a_target_are_at_least_the_current_cooldown_apart(
        params in prop::collection::vec(guard_params(), POLICIES),
        steps in steps(),
    ) {
        let mut engine = build(&params, false, Limits { max_actions_per_minute: 1000, max_concurrent: 1000, dry_run: false });
        let log = run_logged(&mut engine, &steps);
        // Walk the run in order to know each target's failure streak at every act.
        for target in 0..TARGETS {
            let mut last_act: Option<Timestamp> = None;
            let mut streak = 0u32;
            let mut circuit_window: Option<Duration> = None;
            let mut in_flight = false;
            for entry in &log {
                match entry {
                    Logged::Fed(i) => {
                        if let Step::Outcome(q, result, verified) = &steps[*i].1 {
                            if target_of(*q) == target && in_flight {
                                in_flight = false;
                                if *result == OutcomeResult::Ok && *verified { streak = 0 } else { streak += 1 }
                            }
                        }
                    }
                    Logged::Decided(d) if target_of(d.policy.index()) == target => match d.verdict {
                        Verdict::Act { .. } => {
                            let guard = guard_of(&engine, d.policy);
                            if let Some(prev) = last_act {
                                let gap = d.at.saturating_since(prev);
                                let needed = circuit_window.unwrap_or_else(|| current_cooldown(&guard, streak));
                                prop_assert!(gap >= needed, "u{target}: attempts {prev} and {} only {gap:?} apart, need {needed:?}", d.at);
                            }
                            last_act = Some(d.at);
                            circuit_window = None;
                            in_flight = true;
                        }
                        Verdict::Escalate { .. } => {
                            circuit_window = Some(guard_of(&engine, d.policy).window);
                            streak = 0;
                        }
                        Verdict::Skip { .. } => {}
                    },
                    Logged::Decided(_) => {}
                }
            }
        }
    }

    #[test]
    fn dry_run_never_yields_an_executable_action(
        params in prop::collection::vec(guard_params(), POLICIES),
        steps in steps(),
        agent_wide in any::<bool>(),
    ) {
        let limits = Limits { dry_run: agent_wide, ..Limits::default() };
        let mut engine = build(&params, !agent_wide, limits);
        let decisions = run(&mut engine, &steps);
        prop_assert!(decisions.iter().all(|d| !d.verdict.is_executable()));
    }

    /// Previews in dry run, on the same targets and signals as the live policies and
    /// with guards of their own, change nothing the live policies decide: the live
    /// decisions are those of the same run without them, decision for decision.
    #[test]
    fn dry_run_policies_never_change_what_live_policies_decide(
        live in prop::collection::vec(guard_params(), POLICIES),
        previews in prop::collection::vec(guard_params(), POLICIES),
        steps in steps(),
        cap in 1u32..6,
        concurrent in 1u32..3,
    ) {
        let limits = Limits { max_actions_per_minute: cap, max_concurrent: concurrent, dry_run: false };
        // Previews fire as soon as their trigger holds, so whenever a live policy acts,
        // a preview has decided something too (checked below).
        let previews: Vec<GuardParams> = previews.into_iter().map(|g| GuardParams { hold_s: 0, ..g }).collect();
        let mut yaml = policies_yaml("d", &previews, true);
        yaml.extend(policies_yaml("p", &live, false));
        let mut mixed = engine_from(&yaml, limits.clone());
        let mut alone = build(&live, false, limits);
        let named = |engine: &Engine, decisions: Vec<Decision>| -> Vec<(Timestamp, String, String)> {
            decisions
                .into_iter()
                .map(|d| (d.at, engine.policy(d.policy).name().to_string(), format!("{:?}", d.verdict)))
                .filter(|(_, name, _)| name.starts_with('p'))
                .collect()
        };
        let with_previews = run(&mut mixed, &steps);
        let previews_decided = with_previews.iter().filter(|d| mixed.policy(d.policy).name().starts_with('d')).count();
        let with_previews = named(&mixed, with_previews);
        let without = run(&mut alone, &steps);
        let without = named(&alone, without);
        prop_assert_eq!(with_previews, without);
        // The previews did take part: otherwise this would prove nothing.
        let live_acted = run(&mut build(&live, false, Limits::default()), &steps)
            .iter()
            .any(|d| matches!(d.verdict, Verdict::Act { .. }));
        prop_assert!(!live_acted || previews_decided > 0, "the previews never decided anything");
    }

    #[test]
    fn escalation_happens_at_most_once_per_circuit_opening(
        params in prop::collection::vec(guard_params(), POLICIES),
        steps in steps(),
    ) {
        let mut engine = build(&params, false, Limits { max_actions_per_minute: 1000, max_concurrent: 1000, dry_run: false });
        let decisions = run(&mut engine, &steps);
        for target in 0..TARGETS {
            let mut acts_since_escalation = u32::MAX;
            let mut last_escalation: Option<(Timestamp, Duration)> = None;
            for d in decisions.iter().filter(|d| target_of(d.policy.index()) == target) {
                match d.verdict {
                    Verdict::Act { .. } => acts_since_escalation = acts_since_escalation.saturating_add(1),
                    Verdict::Escalate { .. } => {
                        let guard = guard_of(&engine, d.policy);
                        // A new opening needs the old circuit closed (its window passed)
                        // and the attempts counted afresh up to maxAttempts.
                        // On a target with one policy, that means maxAttempts fresh
                        // attempts; with several, another policy's longer window may
                        // still count attempts from before, so only the window holds.
                        let policies_on_target = (0..POLICIES).filter(|&q| target_of(q) == target).count();
                        if policies_on_target == 1 {
                            prop_assert!(acts_since_escalation >= guard.max_attempts,
                                "u{target}: escalated again after only {acts_since_escalation} attempts");
                        }
                        if let Some((prev, window)) = last_escalation {
                            prop_assert!(d.at.saturating_since(prev) >= window);
                        }
                        last_escalation = Some((d.at, guard.window));
                        acts_since_escalation = 0;
                    }
                    Verdict::Skip { .. } => {}
                }
            }
        }
    }

    #[test]
    fn global_caps_hold_across_all_policies(
        params in prop::collection::vec(guard_params(), POLICIES),
        steps in steps(),
        cap in 1u32..4,
        concurrent in 1u32..3,
    ) {
        let limits = Limits { max_actions_per_minute: cap, max_concurrent: concurrent, dry_run: false };
        let mut engine = build(&params, false, limits);
        let log = run_logged(&mut engine, &steps);
        let mut starts: Vec<Timestamp> = Vec::new();
        let mut running = [false; TARGETS];
        for entry in &log {
            match entry {
                Logged::Fed(i) => {
                    if let Step::Outcome(q, _, _) = &steps[*i].1 {
                        running[target_of(*q)] = false;
                    }
                }
                Logged::Decided(d) => {
                    if let Verdict::Act { .. } = d.verdict {
                        let t = d.at;
                        starts.push(t);
                        let in_minute = starts.iter().filter(|&&s| s + STORM_WINDOW > t).count();
                        prop_assert!(in_minute as u32 <= cap, "{in_minute} actions in the minute ending at {t}");
                        running[target_of(d.policy.index())] = true;
                        let at_once = running.iter().filter(|&&r| r).count();
                        prop_assert!(at_once as u32 <= concurrent, "{at_once} attempts running at once at {t}");
                    }
                }
            }
        }
    }
}

/// Liveness, from the README's rules rather than the engine's code: properties a
/// do-nothing engine fails.
mod liveness {
    use super::*;

    fn one_policy(
        cooldown_s: u64,
        max_attempts: u32,
        window_s: u64,
        backoff_tenths: u32,
    ) -> Engine {
        let guard = format!(
            "{{ cooldown: {cooldown_s}s, maxAttempts: {max_attempts}, window: {window_s}s, backoff: {}.{} }}",
            backoff_tenths / 10,
            backoff_tenths % 10
        );
        let yaml = policy_yaml(
            "p",
            "u.service",
            "    - unit: { activeState: [failed] }",
            &guard,
            "",
        );
        engine_from(
            &[yaml],
            Limits {
                max_actions_per_minute: 1000,
                max_concurrent: 1000,
                dry_run: false,
            },
        )
    }

    fn failed(unit: &str) -> Event {
        Event::Unit(UnitObservation {
            name: unit.into(),
            active_state: Some(ActiveState::Failed),
            sub_state: None,
            unit_file_state: None,
            result: None,
            n_restarts: None,
        })
    }

    fn outcome_of(policy: &str, attempt_id: u64) -> Event {
        Event::Outcome(Outcome {
            policy: policy.into(),
            attempt_id: Some(attempt_id),
            result: OutcomeResult::Failed,
            verified: None,
            detail: None,
        })
    }

    /// Feeds `event` at `at`, after every timer due before it, and returns what was
    /// decided, with its time.
    fn feed_at(engine: &mut Engine, at: Timestamp, event: &Event) -> Vec<Decision> {
        let mut out = Vec::new();
        while let Some(deadline) = engine.next_deadline().filter(|&d| d <= at) {
            engine.handle(deadline, &Event::Tick {}, &mut out);
        }
        engine.handle(at, event, &mut out);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A unit that stays failed, every attempt failing after `took_ms`: each attempt
        /// starts the moment the guard allows (its outcome, or the last start plus
        /// cooldown × backoff^failures, whichever is later); after maxAttempts the next
        /// decision escalates, exactly once; once the window has passed, it acts again.
        #[test]
        fn a_failed_target_is_acted_on_as_soon_as_the_guard_allows_then_escalates_once(
            cooldown_s in 1u64..20,
            max_attempts in 1u32..5,
            backoff_tenths in 10u32..30,
            took_ms in 0u64..30_000,
        ) {
            // A window past every gap, so none is capped and all attempts count.
            let window_s = 10_000;
            let mut e = one_policy(cooldown_s, max_attempts, window_s, backoff_tenths);
            let backoff = f64::from(backoff_tenths) / 10.0;
            let mut now = Timestamp::ZERO;
            let mut decided = feed_at(&mut e, now, &failed("u.service"));
            let mut starts: Vec<Timestamp> = Vec::new();
            let mut escalations = 0;
            loop {
                match decided.iter().find(|d| !matches!(d.verdict, Verdict::Skip { .. })) {
                    Some(Decision { at, verdict: Verdict::Act { attempt_id, .. }, .. }) => {
                        let expected = match starts.last() {
                            None => Timestamp::ZERO,
                            Some(&last) => {
                                let failures = starts.len() as i32;
                                let gap = Duration::from_secs_f64(cooldown_s as f64 * backoff.powi(failures));
                                (last + gap).max(last + Duration::from_millis(took_ms))
                            }
                        };
                        let diff = at.since_origin().abs_diff(expected.since_origin());
                        prop_assert!(diff <= Duration::from_millis(1), "attempt {} at {at}, expected {expected}", starts.len() + 1);
                        starts.push(*at);
                        now = *at + Duration::from_millis(took_ms);
                        let id = *attempt_id;
                        decided = feed_at(&mut e, now, &outcome_of("p", id));
                    }
                    Some(Decision { at, verdict: Verdict::Escalate { attempts, .. }, .. }) => {
                        prop_assert_eq!(starts.len() as u32, max_attempts, "escalated after {} attempts", starts.len());
                        prop_assert_eq!(*attempts, max_attempts);
                        prop_assert_eq!(*at, now, "the circuit opens at the decision after the last failure");
                        escalations += 1;
                        break;
                    }
                    _ => {
                        // Nothing decided now: the next timer must bring the attempt.
                        let next = e.next_deadline();
                        prop_assert!(next.is_some(), "a failed target with no timer pending after {} attempts", starts.len());
                        now = next.unwrap_or(now);
                        decided = feed_at(&mut e, now, &Event::Tick {});
                    }
                }
                prop_assert!(starts.len() as u32 <= max_attempts, "more attempts than maxAttempts");
            }
            prop_assert_eq!(escalations, 1);
            // Open: nothing until the window has passed since it opened, then an act.
            let opened = now;
            let quiet = feed_at(&mut e, opened + (Duration::from_secs(window_s) - Duration::from_millis(1)), &Event::Tick {});
            prop_assert!(quiet.iter().all(|d| matches!(d.verdict, Verdict::Skip { .. })), "{quiet:?}");
            let again = feed_at(&mut e, opened + Duration::from_secs(window_s), &Event::Tick {});
            prop_assert!(again.iter().any(|d| matches!(d.verdict, Verdict::Act { .. })), "no attempt once the window passed: {again:?}");
        }

        /// With one slot, the policy held back by `max_concurrent` acts the moment the
        /// running attempt reports, whatever the order the targets failed in.
        #[test]
        fn a_freed_concurrency_slot_goes_to_the_waiting_policy_at_once(
            first_fails_at_ms in 0u64..5_000,
            second_after_ms in 0u64..5_000,
            took_ms in 1u64..20_000,
        ) {
            let yaml: Vec<String> = ["a", "b"]
                .iter()
                .map(|n| policy_yaml(n, &format!("{n}.service"), "    - unit: { activeState: [failed] }", "{ cooldown: 1s, maxAttempts: 3, window: 10m }", ""))
                .collect();
            let mut e = engine_from(&yaml, Limits { max_actions_per_minute: 1000, max_concurrent: 1, dry_run: false });
            let t0 = Timestamp::from_millis(first_fails_at_ms);
            let first = feed_at(&mut e, t0, &failed("a.service"));
            let Some(Decision { verdict: Verdict::Act { attempt_id, .. }, .. }) = first.first().cloned() else {
                return Err(TestCaseError::fail(format!("a did not act: {first:?}")));
            };
            let t1 = t0 + Duration::from_millis(second_after_ms);
            let held = feed_at(&mut e, t1, &failed("b.service"));
            let done_at = t0 + Duration::from_millis(took_ms).max(Duration::from_millis(second_after_ms));
            if done_at > t1 {
                prop_assert!(matches!(held.as_slice(), [Decision { verdict: Verdict::Skip { reason: SkipReason::MaxConcurrent, .. }, .. }]), "{held:?}");
            }
            let freed = feed_at(&mut e, done_at, &outcome_of("a", attempt_id));
            let b = e.policy_id("b");
            prop_assert!(
                freed.iter().any(|d| Some(d.policy) == b && matches!(d.verdict, Verdict::Act { .. }) && d.at == done_at),
                "b did not get the freed slot at {done_at}: {freed:?}"
            );
        }
    }
}
