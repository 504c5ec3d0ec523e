//! `maxUnhealthy`: a selector's objects counted together. When more of them are
//! unhealthy at once than the policy allows, the trouble is not in any one of them (a
//! bad rollout, a failing dependency, a zone going down) and restarting them all would
//! make it worse: salve acts on none, escalates once, and acts again only after the
//! count has stayed at or under the limit for the policy's `settle`.
//!
//! An object counts as unhealthy from the moment one of its conditions holds (before
//! any `for` has passed) and while an attempt on it runs: a pod being restarted is not
//! serving either. So with a `for` longer than a watch's first listing takes, every
//! object is counted before any is acted on.

use super::decision::{Decision, Verdict};
use super::time::Timestamp;
use super::{Engine, PolicyId, Role};

/// What a selector policy with `maxUnhealthy` knows of its objects as a whole.
#[derive(Debug, Default, Clone)]
pub(super) struct Fleet {
    /// Objects with an instance of the policy.
    pub selected: u32,
    /// Of those, the ones unhealthy now.
    pub unhealthy: u32,
    pub storm: Option<Storm>,
}

/// Too many objects were unhealthy at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Storm {
    /// Since when the count has been at or under the limit; `None` while above it.
    pub calm_since: Option<Timestamp>,
}

/// How many unhealthy objects an escalation names; the count says the rest.
const NAMED_IN_ESCALATION: usize = 10;

impl Engine {
    /// Counts instance `id` of selector `of` as `unhealthy` or not, updates the storm,
    /// and says whether the policy's objects are held back: `Some(retry_at)` while a
    /// storm lasts or settles (`retry_at` is when the settling ends, if it has begun).
    pub(super) fn fleet_check(
        &mut self,
        now: Timestamp,
        id: PolicyId,
        of: PolicyId,
        unhealthy: bool,
        out: &mut Vec<Decision>,
    ) -> Option<Option<Timestamp>> {
        let guard = &self.policies[of.index()].spec.guard;
        guard.max_unhealthy?;
        let settle = guard.settle;
        let was = std::mem::replace(&mut self.states[id.index()].unhealthy, unhealthy);
        let fleet = &mut self.states[of.index()].fleet;
        match (was, unhealthy) {
            (false, true) => fleet.unhealthy += 1,
            (true, false) => fleet.unhealthy = fleet.unhealthy.saturating_sub(1),
            _ => {}
        }
        self.update_storm(now, of, out);
        let fleet = &mut self.states[of.index()].fleet;
        match fleet.storm? {
            Storm { calm_since: None } => Some(None),
            Storm {
                calm_since: Some(since),
            } if now < since + settle => Some(Some(since + settle)),
            Storm { .. } => {
                fleet.storm = None;
                None
            }
        }
    }

    /// An instance of `of` joins (`+1`) or leaves (`-1`) the count.
    pub(super) fn fleet_membership(&mut self, instance: PolicyId, of: PolicyId, joined: bool) {
        let unhealthy = self.states[instance.index()].unhealthy;
        let fleet = &mut self.states[of.index()].fleet;
        if joined {
            fleet.selected += 1;
        } else {
            fleet.selected = fleet.selected.saturating_sub(1);
            if unhealthy {
                fleet.unhealthy = fleet.unhealthy.saturating_sub(1);
            }
        }
    }

    /// Starts a storm when the count goes over the limit (escalating once), and starts
    /// its settling when the count comes back under it; the objects still unhealthy
    /// are woken when the settling ends.
    pub(super) fn update_storm(&mut self, now: Timestamp, of: PolicyId, out: &mut Vec<Decision>) {
        let policy = &self.policies[of.index()];
        let Some(max) = policy.spec.guard.max_unhealthy else {
            return;
        };
        let settle = policy.spec.guard.settle;
        let dry_run = policy.spec.dry_run || self.limits.dry_run;
        let fleet = &self.states[of.index()].fleet;
        let allowed = max.allowed(fleet.selected);
        let over = fleet.unhealthy > allowed;
        match (fleet.storm, over) {
            (None, true) => {
                let evidence = self.storm_evidence(of, allowed);
                self.states[of.index()].fleet.storm = Some(Storm { calm_since: None });
                out.push(Decision {
                    at: now,
                    policy: of,
                    verdict: Verdict::Escalate {
                        attempts: 0,
                        dry_run,
                        evidence,
                    },
                });
            }
            (
                Some(Storm {
                    calm_since: Some(_),
                }),
                true,
            ) => {
                self.states[of.index()].fleet.storm = Some(Storm { calm_since: None });
            }
            (Some(Storm { calm_since: None }), false) => {
                self.states[of.index()].fleet.storm = Some(Storm {
                    calm_since: Some(now),
                });
                let wake = now + settle;
                for i in 0..self.states.len() {
                    let state = &self.states[i];
                    if state.role == (Role::Instance { of }) && state.unhealthy {
                        let at = state.scheduled.map_or(wake, |s| s.min(wake));
                        self.schedule(PolicyId(i as u32), Some(at));
                    }
                }
            }
            _ => {}
        }
    }

    /// What a storm's escalation says: the count, the limit, and the first objects.
    fn storm_evidence(&self, of: PolicyId, allowed: u32) -> Vec<String> {
        let fleet = &self.states[of.index()].fleet;
        let guard = &self.policies[of.index()].spec.guard;
        let max = guard
            .max_unhealthy
            .map(|m| m.to_string())
            .unwrap_or_default();
        let mut names: Vec<&str> = (0..self.states.len())
            .filter(|&i| self.states[i].role == (Role::Instance { of }) && self.states[i].unhealthy)
            .map(|i| self.target_names[i].as_str())
            .collect();
        names.sort_unstable();
        let more = names.len().saturating_sub(NAMED_IN_ESCALATION);
        names.truncate(NAMED_IN_ESCALATION);
        let mut listed = names.join(", ");
        if more > 0 {
            listed.push_str(&format!(" and {more} more"));
        }
        vec![
            format!(
                "{} of {} selected objects unhealthy, over maxUnhealthy {max} ({allowed} allowed): acting on none until they stay within it for {}",
                fleet.unhealthy,
                fleet.selected,
                humantime::format_duration(guard.settle)
            ),
            format!("unhealthy: {listed}"),
        ]
    }
}
