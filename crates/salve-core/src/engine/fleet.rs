//! `maxUnhealthy`: a selector's objects, or the policies of one fleet group, counted
//! together. When more of them are
//! unhealthy at once than the policy allows, the trouble is not in any one of them (a
//! bad rollout, a failing dependency, a zone going down) and restarting them all would
//! make it worse: salve acts on none, escalates once, and acts again only after the
//! count has stayed at or under the limit for the policy's `settle`.
//!
//! An object counts as unhealthy from the moment one of its conditions holds (before
//! any `for` has passed) and while an attempt on it runs: a pod being restarted is not
//! serving either. So with a `for` longer than a watch's first listing takes, every
//! object is counted before any is acted on.
//!
//! A fleet group (`fleet.group`) is how a single agent on the load balancer's host
//! writes one policy per server and still counts them as one fleet: its policies with
//! a `maxUnhealthy` are counted by the first of them written, whose guard (limit,
//! settle) and escalation speak for the group. The count is this agent's own: it needs
//! no etcd, and it sees only the servers this agent's policies name.

use super::decision::{Decision, Verdict};
use super::time::Timestamp;
use super::{Engine, PolicyId, Role};

/// What a selector policy with `maxUnhealthy` knows of its objects as a whole (or the
/// first policy of a fleet group, of the group's).
#[derive(Debug, Default, Clone)]
pub(super) struct Fleet {
    /// Objects with an instance of the policy (policies in the group).
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
    /// The storm began while a person had the policy paused: its escalation waits for
    /// the pause to end (a deploy window is no time to page), and goes out then if the
    /// storm still lasts.
    pub unsent: bool,
}

/// How many unhealthy objects an escalation names; the count says the rest.
const NAMED_IN_ESCALATION: usize = 10;

impl Engine {
    /// The policy that counts policy `i` for `maxUnhealthy`: an instance's selector, or
    /// the first policy of its fleet group.
    pub(super) fn counted_by(&self, i: usize) -> Option<PolicyId> {
        match self.states[i].role {
            Role::Instance { of } => Some(of),
            Role::Named => self.states[i].in_group_of,
            Role::Selector | Role::Free => None,
        }
    }

    /// Joins each written policy with a fleet group and a `maxUnhealthy` to its group's
    /// count, kept by the first of them.
    pub(super) fn count_fleet_groups(&mut self) {
        let mut first: std::collections::HashMap<&str, PolicyId> = Default::default();
        for i in 0..self.written {
            let spec = &self.policies[i].spec;
            let (Some(fleet), Some(_)) = (&spec.fleet, spec.guard.max_unhealthy) else {
                continue;
            };
            if self.states[i].role != Role::Named {
                continue;
            }
            let of = *first
                .entry(fleet.group.as_str())
                .or_insert(PolicyId(i as u32));
            self.states[i].in_group_of = Some(of);
            self.states[of.index()].fleet.selected += 1;
        }
    }

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
        let storm = fleet.storm?;
        if storm.unsent && storm.calm_since.is_none() && self.paused_until(of, now).is_none() {
            self.escalate_storm(now, of, out);
        }
        let fleet = &mut self.states[of.index()].fleet;
        match storm {
            Storm {
                calm_since: None, ..
            } => Some(None),
            Storm {
                calm_since: Some(since),
                ..
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
        let fleet = &self.states[of.index()].fleet;
        let allowed = max.allowed(fleet.selected);
        let over = fleet.unhealthy > allowed;
        match (fleet.storm, over) {
            (None, true) => {
                self.states[of.index()].fleet.storm = Some(Storm {
                    calm_since: None,
                    unsent: true,
                });
                if self.paused_until(of, now).is_none() {
                    self.escalate_storm(now, of, out);
                }
            }
            (
                Some(Storm {
                    calm_since: Some(_),
                    unsent,
                }),
                true,
            ) => {
                self.states[of.index()].fleet.storm = Some(Storm {
                    calm_since: None,
                    unsent,
                });
            }
            (
                Some(Storm {
                    calm_since: None,
                    unsent,
                }),
                false,
            ) => {
                self.states[of.index()].fleet.storm = Some(Storm {
                    calm_since: Some(now),
                    unsent,
                });
                let wake = now + settle;
                for i in 0..self.states.len() {
                    let state = &self.states[i];
                    if state.unhealthy && self.counted_by(i) == Some(of) {
                        let at = state.scheduled.map_or(wake, |s| s.min(wake));
                        self.schedule(PolicyId(i as u32), Some(at));
                    }
                }
            }
            _ => {}
        }
    }

    /// The storm's one escalation, now.
    fn escalate_storm(&mut self, now: Timestamp, of: PolicyId, out: &mut Vec<Decision>) {
        let policy = &self.policies[of.index()];
        let Some(max) = policy.spec.guard.max_unhealthy else {
            return;
        };
        let dry_run = policy.spec.dry_run || self.limits.dry_run;
        let allowed = max.allowed(self.states[of.index()].fleet.selected);
        let evidence = self.storm_evidence(of, allowed);
        if let Some(storm) = self.states[of.index()].fleet.storm.as_mut() {
            storm.unsent = false;
        }
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

    /// What a storm's escalation says: the count, the limit, and the first objects.
    fn storm_evidence(&self, of: PolicyId, allowed: u32) -> Vec<String> {
        let fleet = &self.states[of.index()].fleet;
        let guard = &self.policies[of.index()].spec.guard;
        let max = guard
            .max_unhealthy
            .map(|m| m.to_string())
            .unwrap_or_default();
        let mut names: Vec<&str> = (0..self.states.len())
            .filter(|&i| self.states[i].unhealthy && self.counted_by(i) == Some(of))
            .map(|i| self.target_names[i].as_str())
            .collect();
        names.sort_unstable();
        let more = names.len().saturating_sub(NAMED_IN_ESCALATION);
        names.truncate(NAMED_IN_ESCALATION);
        let mut listed = names.join(", ");
        if more > 0 {
            listed.push_str(&format!(" and {more} more"));
        }
        let counted = match (
            &self.states[of.index()].role,
            &self.policies[of.index()].spec.fleet,
        ) {
            (Role::Named, Some(group)) => format!("policies of fleet group {}", group.group),
            _ => "selected objects".to_string(),
        };
        vec![
            format!(
                "{} of {} {counted} unhealthy, over maxUnhealthy {max} ({allowed} allowed): acting on none until they stay within it for {}",
                fleet.unhealthy,
                fleet.selected,
                humantime::format_duration(guard.settle)
            ),
            format!("unhealthy: {listed}"),
        ]
    }
}
