//! Every default of the policy format, written once: serde's `default = "…"`, the
//! positioned decoder and the JSON Schema's `default` (which schemars derives from the
//! serde attribute) all read these.

use super::model::{ActiveState, ApplyWith, ConditionValue, Guard};
use std::path::PathBuf;
use std::time::Duration;

pub const NGINX_CONF: &str = "/etc/nginx/nginx.conf";
pub const FPM_CONF: &str = "/etc/php/8.2/fpm/php-fpm.conf";

pub fn guard() -> Guard {
    Guard {
        cooldown: cooldown(),
        max_attempts: max_attempts(),
        window: window(),
        backoff: backoff(),
        max_unhealthy: None,
        settle: settle(),
    }
}
pub fn cooldown() -> Duration {
    Duration::from_secs(10)
}
pub fn max_attempts() -> u32 {
    3
}
pub fn window() -> Duration {
    Duration::from_secs(600)
}
pub fn backoff() -> f64 {
    2.0
}
pub fn scale_by() -> u32 {
    1
}
pub fn scale_min() -> u32 {
    1
}
pub fn memory_factor() -> f64 {
    1.5
}
/// A rollout of a few pods, each pulling its image and passing its readiness probe.
pub fn verify_ready_within() -> Duration {
    Duration::from_secs(180)
}
/// Long enough for a rollout or a node's return to show it holds.
pub fn settle() -> Duration {
    Duration::from_secs(300)
}
pub fn is_default_settle(d: &Duration) -> bool {
    *d == settle()
}

/// A trigger's `for`: fire as soon as the condition holds.
pub fn hold() -> Duration {
    Duration::ZERO
}
/// The statuses a probe counts as failures: the gateway errors a 502 outage produces.
pub fn probe_status() -> Vec<u16> {
    vec![502, 503, 504]
}
pub fn probe_failures() -> u32 {
    3
}
pub fn probe_interval() -> Duration {
    Duration::from_secs(5)
}
pub fn fpm_status_path() -> String {
    "/status".to_string()
}
pub fn fpm_status_interval() -> Duration {
    Duration::from_secs(2)
}
pub fn fpm_status_timeout() -> Duration {
    Duration::from_secs(1)
}
pub fn probe_timeout() -> Duration {
    Duration::from_secs(2)
}
pub fn log_count() -> u32 {
    1
}
pub fn log_within() -> Duration {
    Duration::from_secs(60)
}

pub fn notify_timeout() -> Duration {
    Duration::from_secs(5)
}
pub fn exec_timeout() -> Duration {
    Duration::from_secs(30)
}

pub fn verify_status() -> Vec<u16> {
    vec![200]
}
pub fn verify_active_state() -> Vec<ActiveState> {
    vec![ActiveState::Active]
}
pub fn verify_within() -> Duration {
    Duration::from_secs(10)
}

pub fn nginx_conf() -> PathBuf {
    PathBuf::from(NGINX_CONF)
}
pub fn fpm_conf() -> PathBuf {
    PathBuf::from(FPM_CONF)
}
/// The unit a load balancer's nginx runs as, reloaded after its upstream is edited.
pub fn nginx_unit() -> super::UnitName {
    super::UnitName::parse("nginx.service").unwrap_or_else(|_| unreachable!("a valid unit name"))
}
/// nginx re-reads its config on reload without dropping connections.
pub fn nginx_apply() -> ApplyWith {
    ApplyWith::Reload
}
/// PHP-FPM's listen settings only take effect when the socket is re-created.
pub fn fpm_apply() -> ApplyWith {
    ApplyWith::Restart
}

/// A workload condition: one replica down is already worth knowing.
pub fn unavailable() -> u32 {
    1
}
/// A node condition: the kubelet's own verdict.
pub fn node_condition() -> String {
    "Ready".to_string()
}
pub fn node_status() -> Vec<ConditionValue> {
    vec![ConditionValue::False, ConditionValue::Unknown]
}

/// Between two steps of a load balancer's ramp: long enough for a health check to
/// see the server under its new share.
pub fn ramp_interval() -> Duration {
    Duration::from_secs(2)
}

/// Members of a fleet group drained at once: one, the cautious default.
pub fn fleet_max_concurrent() -> super::FleetSlots {
    super::FleetSlots::Count(1)
}
