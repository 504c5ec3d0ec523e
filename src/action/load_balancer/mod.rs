//! The load-balancer actions every family shares (a node-side policy drains its own
//! node at the LB before it restarts PHP-FPM): `drain`, `ready` and `setWeight` on a
//! HAProxy server (here) or an nginx upstream server (`nginx.rs`). Each reads the
//! server's state before and after its change, so the journal shows both; HAProxy's
//! refusals are quoted as HAProxy wrote them.
//!
//! salve never takes the last server that takes traffic out of its backend: a drain
//! or a zero weight that would leave the backend nobody to send requests to is refused
//! before it is sent.

mod attempt;

pub(in crate::action) use attempt::NotDrained;
pub mod nginx;

use super::Failure;
use crate::loadbalancer::haproxy::{AdminState, HaproxyError, RuntimeApi, ServerState, Weight};
use crate::policy::{HaproxyServer, LbServer, LbWeight, NginxUpstreamServer, Policy};
use std::time::Duration;

/// How long one command on the admin socket may take: HAProxy answers at once, so a
/// socket that does not is a HAProxy that is stuck.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

fn failure(e: HaproxyError) -> Failure {
    Failure {
        timed_out: matches!(e, HaproxyError::TimedOut { .. }),
        not_applicable: false,
        message: e.to_string(),
    }
}

fn api(server: &HaproxyServer) -> RuntimeApi {
    RuntimeApi::new(&server.socket, SOCKET_TIMEOUT)
}

/// Refuses to leave `backend` with no server taking traffic; `change` is what was
/// asked ("drain web/b").
fn keep_one_serving(
    servers: &[ServerState],
    server: &HaproxyServer,
    change: &str,
) -> Result<(), Failure> {
    let others = servers
        .iter()
        .filter(|s| s.server != server.server && s.serving())
        .count();
    if others > 0 {
        return Ok(());
    }
    let states: Vec<String> = servers
        .iter()
        .map(|s| format!("{}: {}", s.server, s.describe()))
        .collect();
    Err(Failure::failed(format!(
        "refused to {change}: it is the last server taking traffic in its backend ({})",
        states.join("; ")
    )))
}

/// Reads the server, makes the change, reads it again: `VERB BACKEND/SERVER: before ->
/// after`, and the state before. `stops_traffic` says, from the server's state,
/// whether the change leaves it no traffic.
async fn changed(
    server: &HaproxyServer,
    verb: &str,
    asked: &str,
    stops_traffic: impl Fn(&ServerState) -> bool,
    change: impl std::future::Future<Output = Result<(), HaproxyError>>,
) -> Result<(String, ServerState), Failure> {
    let api = api(server);
    let (backend, name) = (&server.backend, &server.server);
    let servers = api.servers(backend).await.map_err(failure)?;
    let found = servers.iter().find(|s| &s.server == name).ok_or_else(|| {
        failure(HaproxyError::NoSuchServer {
            backend: backend.clone(),
            server: name.clone(),
        })
    })?;
    let before = found.clone();
    if stops_traffic(found) {
        keep_one_serving(&servers, server, asked)?;
    }
    if let Err(refused) = change.await {
        // A socket below level admin is refused with a bare "Permission denied":
        // say which level it has and which it needs, beside HAProxy's own words.
        return Err(match api.require_admin().await {
            Err(not_admin @ HaproxyError::NotAdmin { .. }) => {
                let mut f = failure(not_admin);
                f.message = format!("{} (HAProxy said: {refused})", f.message);
                f
            }
            _ => failure(refused),
        });
    }
    let after = match api.server(backend, name).await {
        Ok(state) => state.describe(),
        Err(e) => format!("not read back: {e}"),
    };
    let line = format!("{verb} {backend}/{name}: {} -> {after}", before.describe());
    Ok((line, before))
}

/// A drained server, and the weight it had: what a ramp gives back.
pub struct Drained {
    pub line: String,
    pub weight: u32,
}

/// The server an action names, or else the policy's target.
pub fn server_of<'a>(
    haproxy: &'a Option<HaproxyServer>,
    nginx: &'a Option<NginxUpstreamServer>,
    gateway: &'a Option<crate::policy::GatewayBackend>,
    policy: &'a Policy,
) -> Result<LbServer<'a>, Failure> {
    // Validation requires one or the other.
    LbServer::named(haproxy, nginx, gateway)
        .or(policy.spec.target.haproxy().map(LbServer::Haproxy))
        .or(policy.spec.target.nginx().map(LbServer::Nginx))
        .ok_or_else(|| {
            Failure::failed("no load-balancer server named, and the target is none".into())
        })
}

/// How many servers the load balancer `server` is in has: its HAProxy backend's, its
/// nginx upstream's (what a fleet guard's percentage is of).
pub async fn servers_behind(server: LbServer<'_>) -> Result<usize, Failure> {
    match server {
        LbServer::Haproxy(s) => api(s)
            .servers(&s.backend)
            .await
            .map(|servers| servers.len())
            .map_err(failure),
        LbServer::Nginx(s) => nginx::servers_in_upstream(s),
        LbServer::Gateway(_) => Err(Failure::failed(
            "a share of an HTTPRoute's backends is not counted: give maxConcurrent as a number"
                .into(),
        )),
    }
}

/// Whether `server` takes traffic now: ready (no admin state) with a weight at
/// HAProxy, not `down` in nginx. A route's backend is never held by a fleet slot.
pub async fn serving(server: LbServer<'_>) -> Result<bool, Failure> {
    match server {
        LbServer::Haproxy(s) => api(s)
            .server(&s.backend, &s.server)
            .await
            .map(|state| state.admin == 0 && state.weight > 0)
            .map_err(failure),
        LbServer::Nginx(s) => nginx::serving(s),
        LbServer::Gateway(_) => Ok(true),
    }
}

/// What a change of a Gateway API backend's weight is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteWeight {
    /// 0, unless no other backend of a rule has weight.
    Drain,
    To(u32),
    /// Taking traffic again: the weight it has, or the Gateway API's default (1) after 0.
    Ready,
    /// Step `step` of `of` of a ramp back: each backendRef gets that share of the
    /// weight it had before the drain (`had`, in the route's order), so a Service
    /// weighted differently in two rules gets each rule's weight back.
    Back {
        had: Vec<u64>,
        step: u32,
        of: u32,
    },
}

/// The weight of each backendRef a route change touched, in the route's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteWeights(pub Vec<u64>);

impl RouteWeights {
    pub fn largest(&self) -> u32 {
        let largest = self.0.iter().copied().max().unwrap_or(0);
        u32::try_from(largest).unwrap_or(u32::MAX)
    }
}

/// A drained server kept for its ramp back, once the attempt verifies.
#[derive(Debug, Clone)]
pub enum DrainedServer {
    Haproxy(HaproxyServer),
    Nginx(NginxUpstreamServer),
    /// With the weight each of its backendRefs had.
    Gateway(crate::policy::GatewayBackend, RouteWeights),
}

impl DrainedServer {
    /// `route_had`: a route backend's weights before the drain.
    pub fn of(server: LbServer<'_>, route_had: RouteWeights) -> Self {
        match server {
            LbServer::Haproxy(s) => DrainedServer::Haproxy(s.clone()),
            LbServer::Nginx(s) => DrainedServer::Nginx(s.clone()),
            LbServer::Gateway(g) => DrainedServer::Gateway(g.clone(), route_had),
        }
    }

    pub fn as_ref(&self) -> LbServer<'_> {
        match self {
            DrainedServer::Haproxy(s) => LbServer::Haproxy(s),
            DrainedServer::Nginx(s) => LbServer::Nginx(s),
            DrainedServer::Gateway(g, _) => LbServer::Gateway(g),
        }
    }
}

pub async fn drain(s: &HaproxyServer) -> Result<Drained, Failure> {
    let api = api(s);
    let (line, before) = changed(
        s,
        "drained",
        &format!("drain {}/{}", s.backend, s.server),
        |_| true,
        api.set_state(&s.backend, &s.server, AdminState::Drain),
    )
    .await?;
    // A server at weight 0 before (set so by hand, say) gets its configured weight.
    let weight = if before.weight > 0 {
        before.weight
    } else {
        before.initial_weight
    };
    Ok(Drained { line, weight })
}

/// The weights of a ramp back to `weight` in `steps` equal parts, the last `weight`
/// itself, none below 1.
pub(super) fn ramp_weights(weight: u32, steps: u32) -> Vec<u32> {
    let mut weights: Vec<u32> = (1..=steps)
        .map(|k| (u64::from(weight) * u64::from(k) / u64::from(steps)).max(1) as u32)
        .collect();
    // A small weight has fewer distinct parts than steps: each is set once.
    weights.dedup();
    weights
}

/// One step of a drained server's ramp back (step `i` of `n`, weight `w`): the first
/// sets the weight before the server is made ready, so it comes back at its smallest
/// share. The step's line; or, when HAProxy refuses, why (a refused command changes
/// nothing: the server keeps the last weight that held, and a server still drained
/// gets its old weight back for a later `ready`).
pub async fn ramp_step(
    server: &HaproxyServer,
    i: usize,
    n: usize,
    w: u32,
) -> Result<String, Failure> {
    let api = api(server);
    let (backend, name) = (&server.backend, &server.server);
    let before = api.server(backend, name).await.map_err(failure)?;
    api.set_weight(backend, name, Weight::Absolute(w))
        .await
        .map_err(failure)?;
    if i == 0 {
        if let Err(e) = api.set_state(backend, name, AdminState::Ready).await {
            let restored = match api
                .set_weight(backend, name, Weight::Absolute(before.weight))
                .await
            {
                Ok(()) => format!("its weight is back at {}", before.weight),
                Err(again) => format!("its weight could not be put back: {again}"),
            };
            let mut f = failure(e);
            f.message = format!("{}; {backend}/{name} stays drained, {restored}", f.message);
            return Err(f);
        }
    }
    let after = match api.server(backend, name).await {
        Ok(state) => state.describe(),
        Err(e) => format!("not read back: {e}"),
    };
    Ok(format!(
        "step {} of {n}: {backend}/{name}: {} -> {after}",
        i + 1,
        before.describe()
    ))
}

pub async fn ready(s: &HaproxyServer) -> Result<String, Failure> {
    let api = api(s);
    changed(
        s,
        "readied",
        "",
        |_| false,
        api.set_state(&s.backend, &s.server, AdminState::Ready),
    )
    .await
    .map(|(line, _)| line)
}

pub async fn set_weight(s: &HaproxyServer, weight: LbWeight) -> Result<String, Failure> {
    let api = api(s);
    let weight = match weight {
        LbWeight::Absolute(w) => Weight::Absolute(w),
        LbWeight::Percent(p) => Weight::Percent(p),
    };
    // A percentage is of the configured weight, rounded down: 30% of 1 is 0.
    let to_zero = |state: &ServerState| match weight {
        Weight::Absolute(w) => w == 0,
        Weight::Percent(p) => state.initial_weight * p / 100 == 0,
    };
    changed(
        s,
        &format!("set the weight {weight} on"),
        &format!("set the weight of {}/{} to {weight}", s.backend, s.server),
        to_zero,
        api.set_weight(&s.backend, &s.server, weight),
    )
    .await
    .map(|(line, _)| line)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Against a real HAProxy (Debian's), started here by PID with an admin socket and
    //! an operator-level one in a directory of its own, and no listener at all: the
    //! runtime API needs none.

    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};

    const HAPROXY: &str = "/usr/sbin/haproxy";

    /// Debian's haproxy, started for one test: backends `web` (a, b: weight 10), `one`
    /// (only), `fixed` (c, d: a static algorithm, weight 1) and `fixed10` (e, f: the
    /// same, weight 10).
    pub(crate) struct Haproxy {
        child: Child,
        pub(crate) dir: PathBuf,
    }

    impl Haproxy {
        pub(crate) fn start(name: &str) -> Option<Haproxy> {
            if !Path::new(HAPROXY).exists() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{HAPROXY} is missing; under CI it must run (scripts/setup-test.sh installs it)"
                );
                eprintln!("skipping: {HAPROXY} is not installed");
                return None;
            }
            let dir =
                std::env::temp_dir().join(format!("salve-haproxy-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let config = format!(
                "global\n    stats socket {d}/admin.sock level admin\n    stats socket {d}/operator.sock level operator\n\
                 defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
                 backend web\n    server a 127.0.0.1:1 weight 10\n    server b 127.0.0.1:2 weight 10\n\
                 backend one\n    server only 127.0.0.1:3 weight 10\n\
                 backend fixed\n    balance source\n    server c 127.0.0.1:4\n    server d 127.0.0.1:5\n\
                 backend fixed10\n    balance source\n    server e 127.0.0.1:6 weight 10\n    server f 127.0.0.1:7 weight 10\n",
                d = dir.display()
            );
            std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
            let child = Command::new(HAPROXY)
                .arg("-f")
                .arg(dir.join("haproxy.cfg"))
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy starts");
            let haproxy = Haproxy { child, dir };
            for _ in 0..100 {
                if std::os::unix::net::UnixStream::connect(haproxy.socket()).is_ok() {
                    return Some(haproxy);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("haproxy's admin socket never opened");
        }

        pub(crate) fn socket(&self) -> PathBuf {
            self.dir.join("admin.sock")
        }

        pub(crate) fn server(&self, backend: &str, server: &str) -> HaproxyServer {
            HaproxyServer {
                level: Default::default(),
                socket: self.socket(),
                backend: backend.into(),
                server: server.into(),
            }
        }
    }

    impl Drop for Haproxy {
        fn drop(&mut self) {
            // Only the process this test started, by its PID.
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn lb(server: HaproxyServer) -> HaproxyServer {
        server
    }

    async fn drain(server: &HaproxyServer) -> Result<String, Failure> {
        super::drain(server).await.map(|d| d.line)
    }

    struct SetWeightArgs {
        haproxy: HaproxyServer,
        weight: LbWeight,
    }

    async fn set_weight(args: &SetWeightArgs) -> Result<String, Failure> {
        super::set_weight(&args.haproxy, args.weight).await
    }

    #[test]
    fn a_ramp_comes_back_in_equal_parts_each_set_once() {
        assert_eq!(ramp_weights(10, 3), [3, 6, 10]);
        assert_eq!(ramp_weights(2, 4), [1, 2]);
        assert_eq!(ramp_weights(1, 3), [1]);
        assert_eq!(ramp_weights(256, 1), [256]);
    }

    #[tokio::test]
    async fn a_drained_server_is_journalled_before_and_after_and_readied_back() {
        let Some(h) = Haproxy::start("drain") else {
            return;
        };
        let b = lb(h.server("web", "b"));
        assert_eq!(
            drain(&b).await.unwrap(),
            "drained web/b: ready, weight 10 -> drain, weight 10"
        );
        let state = api(&b).server("web", "b").await.unwrap();
        assert_eq!(state.admin & 0x08, 0x08, "{state:?}");
        assert!(!state.serving());
        assert_eq!(
            ready(&b).await.unwrap(),
            "readied web/b: drain, weight 10 -> ready, weight 10"
        );
        assert!(api(&b).server("web", "b").await.unwrap().serving());
    }

    #[tokio::test]
    async fn weights_are_set_absolute_or_in_percent_and_haproxy_refusals_are_quoted() {
        let Some(h) = Haproxy::start("weight") else {
            return;
        };
        let set = |backend: &str, server: &str, weight| SetWeightArgs {
            haproxy: h.server(backend, server),
            weight,
        };
        assert_eq!(
            set_weight(&set("web", "a", LbWeight::Absolute(5)))
                .await
                .unwrap(),
            "set the weight 5 on web/a: ready, weight 10 -> ready, weight 5"
        );
        assert_eq!(
            set_weight(&set("web", "a", LbWeight::Percent(30)))
                .await
                .unwrap(),
            "set the weight 30% on web/a: ready, weight 5 -> ready, weight 3"
        );
        let refused = set_weight(&set("fixed", "c", LbWeight::Absolute(5)))
            .await
            .unwrap_err();
        assert_eq!(
            refused.message,
            "HAProxy refused `set weight fixed/c 5`: Backend is using a static LB algorithm and only accepts weights '0%' and '100%'."
        );
        // 30% of a weight of 1 is 0: no traffic, which the last-server rule weighs.
        assert_eq!(
            set_weight(&set("fixed", "c", LbWeight::Percent(30)))
                .await
                .unwrap(),
            "set the weight 30% on fixed/c: ready, weight 1 -> ready, weight 0"
        );
        let last = set_weight(&set("fixed", "d", LbWeight::Percent(30)))
            .await
            .unwrap_err();
        assert!(
            last.message
                .starts_with("refused to set the weight of fixed/d to 30%: it is the last server"),
            "{}",
            last.message
        );
        assert!(!refused.timed_out);
        let missing = drain(&lb(h.server("web", "zz"))).await.unwrap_err();
        assert_eq!(missing.message, "HAProxy has no server web/zz");
        let no_backend = drain(&lb(h.server("nope", "a"))).await.unwrap_err();
        assert_eq!(
            no_backend.message,
            "HAProxy refused `show servers state nope`: Can't find backend."
        );
    }

    #[tokio::test]
    async fn the_last_server_taking_traffic_is_never_drained_or_weighed_to_zero() {
        let Some(h) = Haproxy::start("last") else {
            return;
        };
        let only = lb(h.server("one", "only"));
        let refused = drain(&only).await.unwrap_err();
        assert_eq!(
            refused.message,
            "refused to drain one/only: it is the last server taking traffic in its backend (only: ready, weight 10)"
        );
        let zero = SetWeightArgs {
            haproxy: h.server("one", "only"),
            weight: LbWeight::Absolute(0),
        };
        assert!(set_weight(&zero).await.is_err());
        assert!(api(&only).server("one", "only").await.unwrap().serving());
        // Of two, the first drains; the second is then the last.
        drain(&lb(h.server("web", "a"))).await.unwrap();
        let second = drain(&lb(h.server("web", "b"))).await.unwrap_err();
        assert!(
            second
                .message
                .starts_with("refused to drain web/b: it is the last server"),
            "{}",
            second.message
        );
    }

    #[tokio::test]
    async fn a_socket_below_admin_or_with_nobody_behind_it_changes_nothing() {
        let Some(h) = Haproxy::start("level") else {
            return;
        };
        let mut operator = h.server("web", "b");
        operator.socket = h.dir.join("operator.sock");
        let denied = drain(&lb(operator.clone())).await.unwrap_err();
        assert_eq!(
            denied.message,
            format!(
                "HAProxy's socket {s} is at level operator; changing a server needs level admin (`stats socket {s} level admin`) (HAProxy said: HAProxy refused `set server web/b state drain`: Permission denied)",
                s = operator.socket.display()
            )
        );
        assert_eq!(api(&operator).level().await.unwrap(), "operator");
        assert!(matches!(
            api(&operator).require_admin().await,
            Err(HaproxyError::NotAdmin { .. })
        ));
        assert!(api(&h.server("web", "b"))
            .server("web", "b")
            .await
            .unwrap()
            .serving());
        let mut nobody = h.server("web", "b");
        nobody.socket = h.dir.join("absent.sock");
        let unreachable = drain(&lb(nobody)).await.unwrap_err();
        assert!(
            unreachable
                .message
                .starts_with("cannot reach HAProxy's admin socket"),
            "{}",
            unreachable.message
        );
    }
}
