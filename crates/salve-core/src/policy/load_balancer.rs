//! Load-balancer servers, as the actions that drain, weigh and ready them name them:
//! a HAProxy server behind its admin socket, a server of an nginx `upstream` block
//! (nginx open source has no runtime API: its server line is edited and nginx
//! reloaded), or a backend of a Gateway API `HTTPRoute` (its `weight`, through the
//! API server).

use super::schema_types::DurationSchema;
use super::serde_text::duration_text;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A server of a HAProxy backend, reached through HAProxy's admin socket (`stats socket
/// PATH level admin` in its configuration).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HaproxyServer {
    /// The admin socket's absolute path.
    pub socket: PathBuf,
    pub backend: String,
    pub server: String,
    /// The level the socket gives salve (`stats socket PATH level LEVEL`). Every change
    /// salve makes (`set server … state`, `set weight`) is one HAProxy allows only at
    /// `admin`, the default; a lower level is refused when the policy is loaded,
    /// rather than by HAProxy at 3 a.m.
    #[serde(default, skip_serializing_if = "HaproxyLevel::is_admin")]
    pub level: HaproxyLevel,
}

/// A HAProxy CLI access level, lowest last.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    JsonSchema,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HaproxyLevel {
    #[default]
    Admin,
    Operator,
    User,
}

impl HaproxyLevel {
    pub const ALL: [HaproxyLevel; 3] = [
        HaproxyLevel::Admin,
        HaproxyLevel::Operator,
        HaproxyLevel::User,
    ];

    pub fn is_admin(&self) -> bool {
        *self == HaproxyLevel::Admin
    }

    /// As HAProxy's configuration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HaproxyLevel::Admin => "admin",
            HaproxyLevel::Operator => "operator",
            HaproxyLevel::User => "user",
        }
    }
}

/// A server of an nginx `upstream` block, as its `server ADDRESS ...;` line names it.
/// Draining writes `down` on that line, a weight writes `weight=N`; each change passes
/// `nginx -t` before it replaces the file and is applied with a reload of `unit`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NginxUpstreamServer {
    /// The file holding the `upstream` block; absolute.
    #[schemars(with = "String")]
    pub file: PathBuf,
    /// The upstream's name: `upstream NAME { ... }`.
    pub upstream: String,
    /// The server's address exactly as its line writes it: `10.0.0.2:9000`,
    /// `unix:/run/php/a.sock`.
    pub server: String,
    /// The main config `nginx -t -c` checks.
    #[serde(default = "super::defaults::nginx_conf")]
    #[schemars(with = "String")]
    pub config: PathBuf,
    /// The unit reloaded to apply a change.
    #[serde(default = "super::defaults::nginx_unit")]
    pub unit: super::UnitName,
}

/// A backend of a Gateway API `HTTPRoute`: every `backendRefs[]` entry of its rules
/// that names `service` (and `port`, when given). Draining sets their `weight` to 0,
/// a ramp gives it back; the operator patches the route with field manager `salve`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayBackend {
    /// The route's namespace; the policy's own when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present"
    )]
    pub namespace: Option<String>,
    /// The `HTTPRoute`'s name.
    pub route: String,
    /// The Service its backendRef names.
    pub service: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present"
    )]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

/// The server a load-balancer action names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbServer<'a> {
    Haproxy(&'a HaproxyServer),
    Nginx(&'a NginxUpstreamServer),
    Gateway(&'a GatewayBackend),
}

impl<'a> LbServer<'a> {
    /// The one an action's `haproxy`, `nginx` or `gateway` names (validation allows
    /// one at most).
    pub fn named(
        haproxy: &'a Option<HaproxyServer>,
        nginx: &'a Option<NginxUpstreamServer>,
        gateway: &'a Option<GatewayBackend>,
    ) -> Option<LbServer<'a>> {
        haproxy
            .as_ref()
            .map(LbServer::Haproxy)
            .or(nginx.as_ref().map(LbServer::Nginx))
            .or(gateway.as_ref().map(LbServer::Gateway))
    }
}

impl std::fmt::Display for LbServer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LbServer::Haproxy(s) => write!(f, "{}/{}", s.backend, s.server),
            LbServer::Nginx(s) => write!(f, "upstream {} server {}", s.upstream, s.server),
            LbServer::Gateway(g) => {
                write!(f, "HTTPRoute {} backend {}", g.route, g.service)?;
                match g.port {
                    Some(port) => write!(f, ":{port}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The server a `ready` acts on: the one named, or the policy's target.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbServerArgs {
    /// Absent (and no `nginx` or `gateway`): the policy's own target, a `haproxy` server.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub haproxy: Option<HaproxyServer>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub nginx: Option<NginxUpstreamServer>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub gateway: Option<GatewayBackend>,
}

/// `drain`: the server, and how its weight comes back once the attempt verifies.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainArgs {
    /// Absent (and no `nginx` or `gateway`): the policy's own target, a `haproxy` server.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub haproxy: Option<HaproxyServer>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub nginx: Option<NginxUpstreamServer>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub gateway: Option<GatewayBackend>,
    /// Without it the server stays drained (a later `ready` brings it back).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub ramp: Option<Ramp>,
}

/// The weight a drained server had, given back in `steps` equal parts `interval`
/// apart, after the attempt's verification passed, and only then.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ramp {
    #[schemars(range(min = 1, max = 20))]
    pub steps: u32,
    #[serde(default = "super::defaults::ramp_interval", with = "duration_text")]
    #[schemars(with = "DurationSchema")]
    pub interval: Duration,
}

/// `setWeight`: the server and the weight it gets.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetWeightArgs {
    /// Absent (and no `nginx` or `gateway`): the policy's own target, a `haproxy` server.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub haproxy: Option<HaproxyServer>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub nginx: Option<NginxUpstreamServer>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::serde_text::present_mapping"
    )]
    pub gateway: Option<GatewayBackend>,
    pub weight: LbWeight,
}

/// A weight as HAProxy's `set weight` takes it: absolute (0 to 256), or a percentage
/// (`"50%"`, 0 to 100) of the weight the configuration gave the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "super::schema_types::LbWeightSchema")]
pub enum LbWeight {
    Absolute(u32),
    Percent(u32),
}

/// The fleet guard of a policy: at most `max_concurrent` members of `group` (the nodes
/// behind one load balancer, each agent a member) drained at once, across agents. A
/// drain that finds every slot taken, or the lock unreachable, is not made; the rest
/// of the attempt (a restart of what is down on this host) still runs.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetGuard {
    pub group: String,
    #[serde(default = "super::defaults::fleet_max_concurrent")]
    pub max_concurrent: FleetSlots,
    /// Where the slots are held.
    pub lock: FleetLockKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FleetLockKind {
    /// etcd, at the endpoint the agent's config names (`fleet.etcd`): for groups whose
    /// members are agents on several hosts.
    Etcd,
    /// In the agent itself: for a group whose every policy runs in one agent (the
    /// agent on the load balancer's host, one policy per server). Nothing outlives the
    /// agent; a restarted agent finds its drained servers drained and their slots free.
    Local,
}

impl FleetLockKind {
    /// As a policy writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FleetLockKind::Etcd => "etcd",
            FleetLockKind::Local => "local",
        }
    }
}

/// How many members of a fleet group may be drained at once: a number (1 to 1000), or
/// a percentage (`"25%"`) of the servers behind the load balancer the drain acts on
/// (its HAProxy backend, its nginx upstream), rounded down and never below one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "super::schema_types::FleetSlotsSchema")]
pub enum FleetSlots {
    Count(u32),
    Percent(u32),
}

impl FleetSlots {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid maxConcurrent \"{text}\": write a whole number from 1 to 1000, or a percentage of the servers from 1% to 100%"
            )
        };
        match count_or_share(text) {
            Some((p, true)) if (1..=100).contains(&p) => Ok(FleetSlots::Percent(p)),
            Some((n, false)) if (1..=1000).contains(&n) => Ok(FleetSlots::Count(n)),
            _ => Err(bad()),
        }
    }

    /// The slots among `servers` servers.
    pub fn of(self, servers: usize) -> u32 {
        match self {
            FleetSlots::Count(n) => n,
            FleetSlots::Percent(p) => {
                let share = servers.saturating_mul(p as usize) / 100;
                u32::try_from(share).unwrap_or(u32::MAX).max(1)
            }
        }
    }
}

impl std::fmt::Display for FleetSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FleetSlots::Count(n) => write!(f, "{n}"),
            FleetSlots::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for FleetSlots {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FleetSlots::Count(n) => s.serialize_u32(*n),
            FleetSlots::Percent(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for FleetSlots {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = super::serde_text::text_or_integer(d)?;
        FleetSlots::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A whole number, or one followed by `%` (then `true`): what a weight and a fleet's
/// slots are written as, each with bounds of its own.
fn count_or_share(text: &str) -> Option<(u32, bool)> {
    let trimmed = text.trim();
    match trimmed.strip_suffix('%') {
        Some(number) => number.parse().ok().map(|p| (p, true)),
        None => trimmed.parse().ok().map(|n| (n, false)),
    }
}

/// HAProxy's largest weight.
pub const MAX_WEIGHT: u32 = 256;

/// An nginx upstream server's address as its line writes it: one token (`host:port`,
/// `unix:/path`), nothing that would end the directive or start a comment.
pub fn upstream_address(address: &str) -> Result<(), String> {
    let fits = !address.is_empty()
        && address.len() <= 255
        && address.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, ';' | '{' | '}' | '#' | '"' | '\'' | '$')
        });
    if fits {
        Ok(())
    } else {
        Err(format!(
            "invalid nginx upstream server \"{address}\": one address as the `server` line writes it (`10.0.0.2:9000`, `unix:/run/php/a.sock`)"
        ))
    }
}

impl LbWeight {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid weight \"{text}\": write a whole number from 0 to {MAX_WEIGHT}, or a percentage from 0% to 100%"
            )
        };
        match count_or_share(text) {
            Some((p, true)) if p <= 100 => Ok(LbWeight::Percent(p)),
            Some((w, false)) if w <= MAX_WEIGHT => Ok(LbWeight::Absolute(w)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for LbWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LbWeight::Absolute(w) => write!(f, "{w}"),
            LbWeight::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for LbWeight {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LbWeight::Absolute(w) => s.serialize_u32(*w),
            LbWeight::Percent(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for LbWeight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = super::serde_text::text_or_integer(d)?;
        LbWeight::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A HAProxy backend's or server's name as it can go into a command line: a space, a
/// `;` or a newline would start a second command.
pub fn haproxy_name(name: &str, what: &str) -> Result<(), String> {
    plain_name(name, &format!("HAProxy {what}"))
}

/// A name that goes into a command line or a key as it is (a HAProxy name, a fleet
/// group or member in an etcd key): letters, digits and `-_.:`, nothing that ends or
/// splits it.
pub fn plain_name(name: &str, what: &str) -> Result<(), String> {
    let fits = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name \"{name}\": letters, digits, `-`, `_`, `.` and `:` only"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_read_as_haproxy_takes_them() {
        assert_eq!(LbWeight::parse("50%"), Ok(LbWeight::Percent(50)));
        assert_eq!(LbWeight::parse("0"), Ok(LbWeight::Absolute(0)));
        assert_eq!(LbWeight::parse("256"), Ok(LbWeight::Absolute(256)));
        for bad in ["257", "101%", "-1", "x", "", "5.5", "%"] {
            assert!(LbWeight::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FleetSlots::parse("25%"), Ok(FleetSlots::Percent(25)));
        assert_eq!(FleetSlots::parse("3"), Ok(FleetSlots::Count(3)));
        for bad in ["0", "0%", "1001", "101%", "x", ""] {
            assert!(FleetSlots::parse(bad).is_err(), "{bad}");
        }
        // 25% of 4 servers is one, of 10 is two (rounded down), of 2 still one.
        let quarter = FleetSlots::Percent(25);
        assert_eq!((quarter.of(4), quarter.of(10), quarter.of(2)), (1, 2, 1));
        assert_eq!(FleetSlots::Count(2).of(100), 2);
        assert!(haproxy_name("web;shutdown", "backend").is_err());
        assert!(haproxy_name("node-b.1", "server").is_ok());
    }
}
