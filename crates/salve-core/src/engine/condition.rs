//! Trigger conditions: what each one has seen, whether it holds, and for how long.

use super::event::{
    AlertObservation, AlertStatus, ContainerObservation, HttpObservation, PhpFpmObservation,
    PhpFpmStatus,
};
use super::time::Timestamp;
use super::vec_map::VecMap;
use crate::policy::{
    ActiveState, AlertCondition, Condition, ConditionValue, HttpCondition, LogCondition,
    NodeCondition, PhpFpmCondition, PodCondition, Trigger, UnitCondition, UnitFileState,
};
use std::collections::BTreeMap;
use std::collections::VecDeque;

/// What is known of a Kubernetes object a policy targets, from its last observation.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectState {
    Pod {
        containers: Vec<ContainerObservation>,
        conditions: KeptConditions,
    },
    Workload {
        replicas: u32,
        available: u32,
        conditions: KeptConditions,
    },
    Node(KeptConditions),
}

/// An object's condition types with their statuses: `{"Ready": "False"}`.
pub type Conditions = BTreeMap<String, ConditionValue>;

/// The same, as the engine keeps it for each object.
pub type KeptConditions = VecMap<ConditionValue>;

/// What is known of a policy's target: a unit's state, or a Kubernetes object's.
#[derive(Clone, Copy, Default)]
pub struct Observed<'a> {
    pub unit: Option<&'a UnitSnapshot>,
    pub object: Option<&'a ObjectState>,
}

/// What is known of a unit; D-Bus updates arrive piecemeal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitSnapshot {
    pub active_state: Option<ActiveState>,
    pub sub_state: Option<String>,
    pub unit_file_state: Option<UnitFileState>,
    pub result: Option<String>,
    pub n_restarts: Option<u32>,
}

#[derive(Debug, Default)]
pub struct TriggerState {
    /// Since when the condition has held without a break; `None` while it does not hold.
    pub holds_since: Option<Timestamp>,
    /// HTTP: consecutive failed probes.
    consecutive_failures: u32,
    last_failure: Option<String>,
    /// Log: times of matching lines still inside `within`.
    hits: VecDeque<Timestamp>,
    last_line: Option<String>,
    /// Containers seen ending (their restart count went up) since an attempt last used
    /// them up, each with why: `lastState.terminated.reason` stays set while the
    /// restarted container runs fine, so only a new termination is evidence.
    terminations: Vec<(String, String)>,
    /// Alert: the alerts Alertmanager has said fire, until they resolve.
    alerts: Vec<HeardAlert>,
    /// PHP-FPM status: the last reading (or why there was none), while no attempt has
    /// used it; and the pool's max-children count the reading before saw.
    fpm: Option<Box<FpmReading>>,
    fpm_children_before: Option<u64>,
    /// Status reads in a row that got no answer.
    fpm_unanswered: u32,
}

/// The last answer of a status page, or why there was none.
#[derive(Debug)]
struct FpmReading {
    status: Option<PhpFpmStatus>,
    error: Option<String>,
    /// The pool hit `pm.max_children` since an attempt last used a reading.
    children_reached: bool,
    /// Reads in a row with no answer, this one included.
    unanswered: u32,
}

/// One firing alert a trigger heard of: which alert (Alertmanager's group key and
/// fingerprint) and which time it fired (`startsAt`), and whether an attempt used it.
#[derive(Debug)]
struct HeardAlert {
    group_key: String,
    fingerprint: String,
    starts_at: String,
    used: bool,
    /// `{instance="web-1", severity="page"}`, for the journal.
    labels: String,
}

/// How many firing alerts a trigger remembers: a group's worth, bounded whatever
/// Alertmanager sends.
const REMEMBERED_ALERTS: usize = 64;
/// How much of an alert's labels the evidence quotes.
const QUOTED_LABELS: usize = 512;

/// Whether an alert is the one a condition waits for: its name, and every label the
/// condition names with exactly that value.
pub fn alert_matches(cond: &AlertCondition, alert: &AlertObservation) -> bool {
    alert.labels.get("alertname") == Some(&cond.name)
        && cond
            .labels
            .iter()
            .all(|(k, v)| alert.labels.get(k) == Some(v))
}

/// How many fresh terminations a trigger remembers: enough to name the containers of
/// any pod, bounded whatever a pod reports.
const REMEMBERED_TERMINATIONS: usize = 32;

impl TriggerState {
    pub fn observe_http(&mut self, cond: &HttpCondition, obs: &HttpObservation) {
        let failed = match obs.status {
            Some(status) => cond.status.contains(&status),
            None => true,
        };
        if failed {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.last_failure = Some(match (obs.status, &obs.error) {
                (Some(s), _) => format!("status {s}"),
                (None, Some(e)) => format!("no response: {e}"),
                (None, None) => "no response".to_string(),
            });
        } else {
            self.consecutive_failures = 0;
        }
    }

    /// Keeps only the newest `count` hits: the condition holds when the `count`-th newest
    /// is inside `within`, so older ones can never matter, and a flood of matching lines
    /// costs no memory.
    pub fn observe_log_match(&mut self, cond: &LogCondition, now: Timestamp, line: &str) {
        while self.hits.len() >= cond.count.max(1) as usize {
            self.hits.pop_front();
        }
        self.hits.push_back(now);
        self.last_line = Some(line.to_string());
    }

    /// A firing alert is remembered once, however often Alertmanager repeats it; a
    /// resolved one is forgotten, so the same alert firing again later is news.
    pub fn observe_alert(&mut self, alert: &AlertObservation) {
        let same =
            |a: &HeardAlert| a.group_key == alert.group_key && a.fingerprint == alert.fingerprint;
        match alert.status {
            // By fingerprint alone: the resolution may come down another route (a
            // changed `group_by`, a `continue`) than the firing did.
            AlertStatus::Resolved => self.alerts.retain(|a| a.fingerprint != alert.fingerprint),
            AlertStatus::Firing => {
                if let Some(known) = self.alerts.iter_mut().find(|a| same(a)) {
                    // Fired again after a resolution this agent never heard of (resolved
                    // notifications off, or lost while it was down).
                    if known.starts_at != alert.starts_at {
                        known.starts_at = alert.starts_at.clone();
                        known.used = false;
                    }
                    return;
                }
                if self.alerts.len() >= REMEMBERED_ALERTS {
                    let oldest = self.alerts.iter().position(|a| a.used).unwrap_or(0);
                    self.alerts.remove(oldest);
                }
                self.alerts.push(HeardAlert {
                    group_key: alert.group_key.clone(),
                    fingerprint: alert.fingerprint.clone(),
                    starts_at: alert.starts_at.clone(),
                    used: false,
                    labels: quoted_labels(&alert.labels),
                });
            }
        }
    }

    /// A status page's answer replaces the one before.
    pub fn observe_fpm(&mut self, obs: &PhpFpmObservation) {
        let children = obs.status.as_ref().map(|s| s.max_children_reached);
        // A restarted pool counts from 0 again: only a rise is news.
        let rose = match (self.fpm_children_before, children) {
            (Some(before), Some(now)) => now > before,
            _ => false,
        };
        if children.is_some() {
            self.fpm_children_before = children;
        }
        // A rise is kept until an attempt uses it: it happened once, between two reads,
        // and a `for` or a cooldown must not let it slip by.
        let children_reached = rose || self.fpm.as_ref().is_some_and(|r| r.children_reached);
        self.fpm_unanswered = match obs.status {
            Some(_) => 0,
            None => self.fpm_unanswered.saturating_add(1),
        };
        self.fpm = Some(Box::new(FpmReading {
            status: obs.status.clone(),
            error: obs.error.clone(),
            children_reached,
            unanswered: self.fpm_unanswered,
        }));
    }

    /// The evidence an attempt acts on is used up by it: the next attempt needs fresh
    /// failures or log lines. Live unit state is not evidence that can be used up.
    pub fn consume_evidence(&mut self) {
        let fresh_alerts = self.alerts.iter().any(|a| !a.used);
        if self.consecutive_failures > 0
            || !self.hits.is_empty()
            || !self.terminations.is_empty()
            || fresh_alerts
            || self.fpm.is_some()
        {
            self.consecutive_failures = 0;
            self.hits.clear();
            self.terminations.clear();
            self.fpm = None;
            // Still firing, so remembered: Alertmanager's repeats are not news.
            self.alerts.iter_mut().for_each(|a| a.used = true);
            self.holds_since = None;
        }
    }

    /// An attempt that did not fix things leaves the alerts still firing as news: it
    /// is the guard (cooldown, backoff, circuit) that paces the next try, not
    /// Alertmanager's resolution. After a success they stay used, and a repeat of
    /// them fires nothing while Alertmanager catches up.
    pub fn rearm_alerts(&mut self) {
        self.alerts.iter_mut().for_each(|a| a.used = false);
    }

    /// Containers of the target pod that ended since its last observation.
    pub fn observe_terminations(&mut self, ended: &[(String, String)]) {
        for ended in ended {
            if self.terminations.len() >= REMEMBERED_TERMINATIONS {
                self.terminations.remove(0);
            }
            self.terminations.push(ended.clone());
        }
    }

    /// The target object is gone: what it did is no evidence for its successor.
    pub fn forget_object(&mut self) {
        self.terminations.clear();
    }

    fn container_matches(&self, cond: &PodCondition, c: &ContainerObservation) -> bool {
        let ended_for = |reason: &String| {
            self.terminations
                .iter()
                .any(|(name, r)| *name == c.name && r == reason)
        };
        let reason_ok = cond.reason.is_empty()
            || cond
                .reason
                .iter()
                .any(|r| c.waiting.as_ref() == Some(r) || ended_for(r));
        reason_ok && cond.restarts.is_none_or(|n| c.restarts >= n)
    }

    /// Updates `holds_since` and returns whether the condition holds right now.
    pub fn refresh(&mut self, trigger: &Trigger, seen: Observed<'_>, now: Timestamp) -> bool {
        let holds = match &trigger.condition {
            Condition::Unit(cond) => seen.unit.is_some_and(|u| unit_matches(cond, u)),
            Condition::Pod(cond) => match seen.object {
                Some(ObjectState::Pod {
                    containers,
                    conditions,
                }) => {
                    let about_containers = !cond.reason.is_empty() || cond.restarts.is_some();
                    (!about_containers
                        || containers.iter().any(|c| self.container_matches(cond, c)))
                        && object_condition_holds(
                            cond.condition.as_deref(),
                            cond.statuses(),
                            conditions,
                        )
                }
                _ => false,
            },
            Condition::Workload(cond) => match seen.object {
                Some(ObjectState::Workload {
                    replicas,
                    available,
                    conditions,
                }) => {
                    cond.unavailable_at_least()
                        .is_none_or(|n| replicas.saturating_sub(*available) >= n)
                        && object_condition_holds(
                            cond.condition.as_deref(),
                            cond.statuses(),
                            conditions,
                        )
                }
                _ => false,
            },
            Condition::Node(cond) => match seen.object {
                Some(ObjectState::Node(conditions)) => node_matches(cond, conditions),
                _ => false,
            },
            Condition::Http(cond) => self.consecutive_failures >= cond.failures,
            Condition::Alert(_) => self.alerts.iter().any(|a| !a.used),
            Condition::PhpFpm(cond) => self.fpm.as_deref().is_some_and(|r| fpm_holds(cond, r)),
            Condition::Log(cond) => {
                while self.hits.front().is_some_and(|&t| t + cond.within <= now) {
                    self.hits.pop_front();
                }
                self.hits.len() >= cond.count as usize
            }
        };
        match (holds, self.holds_since) {
            (true, None) => self.holds_since = Some(now),
            (false, Some(_)) => self.holds_since = None,
            _ => {}
        }
        holds
    }

    /// Whether the condition has held for the trigger's whole `for`.
    pub fn satisfied(&self, trigger: &Trigger, now: Timestamp) -> bool {
        self.holds_since
            .is_some_and(|since| since + trigger.hold <= now)
    }

    /// The next moment this trigger could change on its own, with no new event.
    pub fn deadline(&self, trigger: &Trigger, now: Timestamp) -> Option<Timestamp> {
        let hold_ends = self
            .holds_since
            .map(|since| since + trigger.hold)
            .filter(|&t| t > now);
        let oldest_hit_expires = match &trigger.condition {
            Condition::Log(cond) => self.hits.front().map(|&t| t + cond.within),
            _ => None,
        };
        match (hold_ends, oldest_hit_expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn evidence(&self, trigger: &Trigger, unit_name: &str, seen: Observed<'_>) -> String {
        let unit = seen.unit;
        match &trigger.condition {
            Condition::Pod(cond) => {
                let mut parts: Vec<String> = Vec::new();
                if let Some(ObjectState::Pod {
                    containers,
                    conditions,
                }) = seen.object
                {
                    if !cond.reason.is_empty() || cond.restarts.is_some() {
                        parts.extend(
                            containers
                                .iter()
                                .filter(|c| self.container_matches(cond, c))
                                .map(|c| {
                                    format!(
                                        "container {} waiting={} lastTerminated={} restarts={}",
                                        c.name,
                                        c.waiting.as_deref().unwrap_or("-"),
                                        c.last_terminated.as_deref().unwrap_or("-"),
                                        c.restarts
                                    )
                                }),
                        );
                    }
                    if let Some(condition) = &cond.condition {
                        parts.push(format!(
                            "{condition}={}",
                            status_of(condition, conditions).as_str()
                        ));
                    }
                }
                format!("{unit_name}: {}", parts.join("; "))
            }
            Condition::Workload(cond) => match seen.object {
                Some(ObjectState::Workload {
                    replicas,
                    available,
                    conditions,
                }) => {
                    let mut text =
                        format!("{unit_name}: {available} of {replicas} replicas available");
                    if let Some(condition) = &cond.condition {
                        text.push_str(&format!(
                            ", {condition}={}",
                            status_of(condition, conditions).as_str()
                        ));
                    }
                    text
                }
                _ => format!("{unit_name}: not seen"),
            },
            Condition::Node(cond) => {
                let status = match seen.object {
                    Some(ObjectState::Node(conditions)) => node_status(cond, conditions),
                    _ => ConditionValue::Unknown,
                };
                format!("{unit_name}: {}={}", cond.condition, status.as_str())
            }
            Condition::Unit(_) => {
                let active = unit
                    .and_then(|u| u.active_state)
                    .map_or("?", |s| s.as_str());
                let sub = unit.and_then(|u| u.sub_state.as_deref()).unwrap_or("?");
                let file = unit
                    .and_then(|u| u.unit_file_state)
                    .map_or("?", |s| s.as_str());
                let mut text = format!(
                    "unit {unit_name}: activeState={active} subState={sub} unitFileState={file}"
                );
                if let Some(result) = unit.and_then(|u| u.result.as_deref()) {
                    text.push_str(&format!(" result={result}"));
                }
                if let Some(n) = unit.and_then(|u| u.n_restarts) {
                    text.push_str(&format!(" nRestarts={n}"));
                }
                text
            }
            Condition::PhpFpm(cond) => {
                let said = match self.fpm.as_deref() {
                    Some(FpmReading {
                        status: Some(s),
                        children_reached,
                        ..
                    }) => format!(
                        "pool {}: listen queue {}, {} active and {} idle of {}{}",
                        s.pool,
                        s.listen_queue,
                        s.active,
                        s.idle,
                        s.total,
                        if *children_reached {
                            format!(
                                ", reached pm.max_children ({} times)",
                                s.max_children_reached
                            )
                        } else {
                            String::new()
                        }
                    ),
                    Some(FpmReading {
                        error, unanswered, ..
                    }) => format!(
                        "no answer {unanswered} time(s) in a row, last: {}",
                        error.as_deref().unwrap_or("?")
                    ),
                    None => "not read yet".to_string(),
                };
                format!("phpFpm status {}: {said}", cond.source())
            }
            Condition::Alert(cond) => {
                let fresh: Vec<&HeardAlert> = self.alerts.iter().filter(|a| !a.used).collect();
                format!(
                    "alert {}: {} firing and not acted on yet, last: {}",
                    cond.name,
                    fresh.len(),
                    fresh.last().map_or("?", |a| a.labels.as_str())
                )
            }
            Condition::Http(cond) => format!(
                "http {}: {} consecutive failures, last: {}",
                cond.url,
                self.consecutive_failures,
                self.last_failure.as_deref().unwrap_or("?")
            ),
            Condition::Log(cond) => format!(
                "log {}{}: {} matching line(s) within {}, last: {}",
                cond.path.display(),
                cond.pattern
                    .builtin
                    .map(|b| format!(" ({b})"))
                    .unwrap_or_default(),
                self.hits.len(),
                humantime::format_duration(cond.within),
                self.last_line.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// Whether a status page's reading is the trouble the condition names: `failures`
/// reads in a row without an answer are, and so is an answer meeting every threshold
/// given.
fn fpm_holds(cond: &PhpFpmCondition, reading: &FpmReading) -> bool {
    let Some(status) = &reading.status else {
        return reading.unanswered >= cond.failures;
    };
    cond.listen_queue_at_least()
        .is_none_or(|n| status.listen_queue >= n)
        && cond.idle_at_most.is_none_or(|n| status.idle <= n)
        && (!cond.max_children_reached || reading.children_reached)
}

/// An alert's labels as the journal quotes them, `alertname` left out (the evidence
/// names it) and cut at a bound.
fn quoted_labels(labels: &BTreeMap<String, String>) -> String {
    let mut text = String::from("{");
    for (k, v) in labels.iter().filter(|(k, _)| *k != "alertname") {
        if text.len() > 1 {
            text.push_str(", ");
        }
        text.push_str(&format!("{k}={v:?}"));
        if text.len() > QUOTED_LABELS {
            let mut end = QUOTED_LABELS;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
            break;
        }
    }
    text.push('}');
    text
}

/// The containers that ended between two observations of a pod (their restart count
/// went up), each with the reason it last ended for. A container seen for the first
/// time has no "before": its old terminations are history, not news.
pub fn ended_since(
    before: &[ContainerObservation],
    after: &[ContainerObservation],
) -> Vec<(String, String)> {
    after
        .iter()
        .filter_map(|c| {
            let was = before.iter().find(|b| b.name == c.name)?;
            let reason = c.last_terminated.as_ref()?;
            (c.restarts > was.restarts).then(|| (c.name.clone(), reason.clone()))
        })
        .collect()
}

/// A condition an object does not report is `Unknown`, as the node controller says of
/// a kubelet it cannot hear.
fn status_of(condition: &str, conditions: &KeptConditions) -> ConditionValue {
    conditions
        .get(condition)
        .copied()
        .unwrap_or(ConditionValue::Unknown)
}

fn node_status(cond: &NodeCondition, conditions: &KeptConditions) -> ConditionValue {
    status_of(&cond.condition, conditions)
}

fn node_matches(cond: &NodeCondition, conditions: &KeptConditions) -> bool {
    cond.status.contains(&node_status(cond, conditions))
}

/// A pod's or workload's `condition`, when it names one, has one of `statuses`.
fn object_condition_holds(
    condition: Option<&str>,
    statuses: &[ConditionValue],
    conditions: &KeptConditions,
) -> bool {
    condition.is_none_or(|c| statuses.contains(&status_of(c, conditions)))
}

fn unit_matches(cond: &UnitCondition, unit: &UnitSnapshot) -> bool {
    let matches = |wanted_empty: bool, found: bool| wanted_empty || found;
    matches(
        cond.active_state.is_empty(),
        unit.active_state
            .is_some_and(|s| cond.active_state.contains(&s)),
    ) && matches(
        cond.sub_state.is_empty(),
        unit.sub_state
            .as_ref()
            .is_some_and(|s| cond.sub_state.contains(s)),
    ) && matches(
        cond.unit_file_state.is_empty(),
        unit.unit_file_state
            .is_some_and(|s| cond.unit_file_state.contains(&s)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::LogPattern;
    use std::time::Duration;

    #[test]
    fn a_flood_of_matching_lines_keeps_only_count_hits() {
        let cond = LogCondition {
            path: "/var/log/nginx/error.log".into(),
            pattern: LogPattern {
                regex: regex::Regex::new("x").unwrap(),
                builtin: None,
            },
            count: 3,
            within: Duration::from_secs(3600),
        };
        let mut state = TriggerState::default();
        for i in 0..100_000 {
            state.observe_log_match(&cond, Timestamp::from_millis(i), "x");
        }
        assert_eq!(state.hits.len(), 3);
        assert_eq!(state.hits.front(), Some(&Timestamp::from_millis(99_997)));
    }
}
