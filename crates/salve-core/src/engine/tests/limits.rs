//! Dry run and the agent-wide limits: the storm cap and max concurrent attempts.

use super::*;
use crate::policy::{parse_file, Policy};
use std::path::Path;

#[test]
fn dry_run_decides_and_skips_but_never_acts() {
    let mut e = one(DOWN, GUARD, "  dryRun: true\n");
    let v = feed(&mut e, 0.0, unit("php.service", Failed));
    assert!(
        matches!(
            v.as_slice(),
            [Verdict::Skip {
                reason: SkipReason::DryRun,
                attempt: Some(1),
                ..
            }]
        ),
        "{v:?}"
    );
    let mut later = Vec::new();
    for t in 1..200 {
        later.extend(feed(&mut e, t as f64, Event::Tick {}));
    }
    assert!(later.iter().all(|v| !v.is_executable()), "{later:?}");
    assert!(later
        .iter()
        .any(|v| matches!(v, Verdict::Escalate { dry_run: true, .. })));
}

#[test]
fn agent_wide_dry_run_applies_to_every_policy() {
    let limits = Limits {
        dry_run: true,
        ..Limits::default()
    };
    let mut e = engine_from(&[policy_yaml("p", "php.service", DOWN, GUARD, "")], limits);
    let v = feed(&mut e, 0.0, unit("php.service", Failed));
    assert_eq!(skip_reason(&v), Some(SkipReason::DryRun));
}

#[test]
fn storm_cap_limits_actions_per_minute_across_policies() {
    let yaml: Vec<String> = (0..5)
        .map(|i| policy_yaml(&format!("p{i}"), &format!("u{i}.service"), DOWN, GUARD, ""))
        .collect();
    let limits = Limits {
        max_actions_per_minute: 2,
        max_concurrent: 100,
        dry_run: false,
    };
    let mut e = engine_from(&yaml, limits);
    let mut all = Vec::new();
    for i in 0..5 {
        all.extend(feed(&mut e, 0.0, unit(&format!("u{i}.service"), Failed)));
    }
    assert_eq!(acts(&all), 2);
    assert_eq!(
        all.iter()
            .filter(|v| matches!(
                v,
                Verdict::Skip {
                    reason: SkipReason::StormCap,
                    ..
                }
            ))
            .count(),
        3
    );
    for i in 0..2 {
        feed(&mut e, 1.0, outcome(&format!("p{i}"), OutcomeResult::Ok));
    }
    assert_eq!(
        acts(&feed(&mut e, 60.0, Event::Tick {})),
        2,
        "the cap frees after 60s"
    );
}

#[test]
fn max_concurrent_holds_back_until_a_slot_frees() {
    let yaml: Vec<String> = (0..3)
        .map(|i| policy_yaml(&format!("p{i}"), &format!("u{i}.service"), DOWN, GUARD, ""))
        .collect();
    let limits = Limits {
        max_actions_per_minute: 100,
        max_concurrent: 1,
        dry_run: false,
    };
    let mut e = engine_from(&yaml, limits);
    assert_eq!(acts(&feed(&mut e, 0.0, unit("u0.service", Failed))), 1);
    let v = feed(&mut e, 0.0, unit("u1.service", Failed));
    assert_eq!(skip_reason(&v), Some(SkipReason::MaxConcurrent));
    let v = feed(&mut e, 2.0, outcome("p0", OutcomeResult::Ok));
    assert!(
        v.iter().any(|v| matches!(v, Verdict::Act { .. })),
        "waiting policy acts once a slot frees: {v:?}"
    );
}

#[test]
fn a_freed_slot_goes_to_the_policy_that_waited_first() {
    let yaml: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| {
            policy_yaml(
                n,
                &format!("{n}.service"),
                DOWN,
                "{ cooldown: 0s, maxAttempts: 10, window: 10m, backoff: 1.0 }",
                "",
            )
        })
        .collect();
    let limits = Limits {
        max_actions_per_minute: 100,
        max_concurrent: 1,
        dry_run: false,
    };
    let mut e = engine_from(&yaml, limits);
    assert_eq!(acts(&feed(&mut e, 0.0, unit("a.service", Failed))), 1);
    assert_eq!(
        skip_reason(&feed(&mut e, 0.1, unit("b.service", Failed))),
        Some(SkipReason::MaxConcurrent)
    );
    let mut out = Vec::new();
    e.handle(at(1.0), &outcome("a", OutcomeResult::Failed), &mut out);
    let first_act = out
        .iter()
        .find(|d| matches!(d.verdict, Verdict::Act { .. }))
        .expect("someone acts");
    assert_eq!(first_act.policy, PolicyId(1), "b waited first: {out:?}");
}

#[test]
fn policies_held_back_by_max_concurrent_keep_their_order_across_a_reload() {
    let yaml: Vec<String> = ["x", "a", "b"]
        .iter()
        .map(|n| policy_yaml(n, &format!("{n}.service"), DOWN, GUARD, ""))
        .collect();
    let limits = Limits {
        max_concurrent: 1,
        ..Limits::default()
    };
    let mut e = engine_from(&yaml, limits.clone());
    assert_eq!(acts(&feed(&mut e, 0.0, unit("x.service", Failed))), 1);
    // b waits first, then a, although a comes first in the file.
    feed(&mut e, 1.0, unit("b.service", Failed));
    feed(&mut e, 2.0, unit("a.service", Failed));
    let mut out = Vec::new();
    let same: Vec<Policy> = yaml
        .iter()
        .flat_map(|y| parse_file(Path::new("r.yaml"), y).0)
        .collect();
    e.replace_policies(at(3.0), same, &mut out);
    let mut out = Vec::new();
    e.handle(at(4.0), &outcome("x", OutcomeResult::Ok), &mut out);
    let acted: Vec<String> = out
        .iter()
        .filter(|d| matches!(d.verdict, Verdict::Act { .. }))
        .map(|d| e.policy(d.policy).name().to_string())
        .collect();
    assert_eq!(acted, ["b"], "{out:?}");
}
