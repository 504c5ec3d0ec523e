//! One test per guardrail rule, each driving the engine with explicit times; the
//! helpers here, the tests in one file per concern.

mod attempts;
mod control;
mod fleet;
mod guard;
mod limits;
mod objects;
mod restore;
mod selectors;
mod triggers;

pub(super) use super::*;
use crate::policy::parse_file;
use std::path::Path;
pub(super) use std::time::Duration;

pub(crate) fn policy_yaml(
    name: &str,
    unit: &str,
    trigger: &str,
    guard: &str,
    extra: &str,
) -> String {
    format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ unit: {unit} }}\n  trigger:\n{trigger}\n  actions:\n    - restart: {{}}\n  escalate:\n    - notify: {{ webhook: \"http://127.0.0.1:9093/\" }}\n  guard: {guard}\n{extra}"
    )
}

pub(crate) fn engine_from(yaml: &[String], limits: Limits) -> Engine {
    let mut policies = Vec::new();
    for text in yaml {
        let (found, errors) = parse_file(Path::new("test.yaml"), text);
        assert!(errors.is_empty(), "{errors:?}\n{text}");
        policies.extend(found);
    }
    Engine::new(policies, limits)
}

pub(super) const DOWN: &str = "    - unit: { activeState: [failed, inactive] }";
pub(super) const GUARD: &str = "{ cooldown: 10s, maxAttempts: 3, window: 10m, backoff: 2.0 }";

pub(super) fn one(trigger: &str, guard: &str, extra: &str) -> Engine {
    engine_from(
        &[policy_yaml("p", "php.service", trigger, guard, extra)],
        Limits::default(),
    )
}

pub(super) fn at(secs: f64) -> Timestamp {
    Timestamp::from_duration(Duration::from_secs_f64(secs))
}

pub(super) fn unit(name: &str, state: ActiveState) -> Event {
    Event::Unit(UnitObservation {
        name: name.into(),
        active_state: Some(state),
        sub_state: None,
        unit_file_state: None,
        result: None,
        n_restarts: None,
    })
}

pub(super) fn outcome(policy: &str, result: OutcomeResult) -> Event {
    Event::Outcome(Outcome {
        policy: policy.into(),
        attempt_id: None,
        result,
        verified: None,
        detail: None,
    })
}

pub(super) fn feed(engine: &mut Engine, secs: f64, event: Event) -> Vec<Verdict> {
    let mut out = Vec::new();
    engine.handle(at(secs), &event, &mut out);
    out.into_iter().map(|d| d.verdict).collect()
}

pub(super) fn acts(verdicts: &[Verdict]) -> usize {
    verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Act { .. }))
        .count()
}

pub(super) fn skip_reason(verdicts: &[Verdict]) -> Option<SkipReason> {
    verdicts.iter().find_map(|v| match v {
        Verdict::Skip { reason, .. } => Some(*reason),
        _ => None,
    })
}

pub(super) use crate::policy::ActiveState::{self, Active, Failed};
