//! Load-balancer weight, end to end: the lab of two nodes behind Debian's haproxy (or
//! an nginx upstream), etcd beside them, `salve agent` processes on the host, one per
//! node, each watching its node's pool over D-Bus and draining it at the load
//! balancer before it heals it.

use crate::harness::{lab_of, wait_until, write_policy, Agent, Env, Webhook};
use salve::audit::{Entry, Record};
use salve::lab::{failures, LbKind, Load, Node, Scenario, Topology, LB_BACKEND, NODE_WEIGHT};
use salve::loadbalancer::haproxy::RuntimeApi;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Requests per second through the load balancer while a pool crashes, half GET and
/// half POST (the issue's measurement).
const RATE: u32 = 200;
/// A fleet slot's lease: how long a killed agent's slot stays taken.
const TTL: &str = "2s";

/// The node-side policy of `node`: its pool fails (pushed over D-Bus) -> drain it at
/// the load balancer -> restart -> verify over HTTP -> its weight back in 2 steps.
/// `server` is the drain's server (`haproxy: {…}` or `nginx: {…}`); `before_restart`
/// and `fleet` are spliced in as YAML.
fn node_policy(env: &Env, node: Node, server: &str, before_restart: &str, fleet: &str) -> String {
    let port = env.lab().node_port(node);
    format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: pool-{name}
spec:
  target:
    unit: {unit}
  trigger:
    - unit: {{ activeState: [failed] }}
  actions:
    - drain:
        {server}
        ramp: {{ steps: 2, interval: 300ms }}
{before_restart}    - restart: {{}}
  verify:
    http: {{ url: "http://127.0.0.1:{port}/ping.php", status: [200], within: 15s }}
  guard: {{ cooldown: 1s, maxAttempts: 10, window: 10m }}
{fleet}"#,
        name = node.name(),
        unit = node.unit(),
    )
}

fn haproxy_server(env: &Env, node: Node) -> String {
    let socket = env.lab().haproxy_socket().expect("a lab behind haproxy");
    format!(
        "haproxy: {{ socket: {}, backend: {LB_BACKEND}, server: {} }}",
        socket.display(),
        node.server()
    )
}

fn api(env: &Env) -> RuntimeApi {
    RuntimeApi::new(
        &env.lab().haproxy_socket().expect("a lab behind haproxy"),
        Duration::from_secs(5),
    )
}

/// A node's (admin state, weight) at haproxy: admin 0 is ready, 0x08 drained.
fn at_haproxy(env: &Env, node: Node) -> (u32, u32) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let state = runtime
        .block_on(api(env).server(LB_BACKEND, node.server()))
        .expect("haproxy answers");
    (state.admin, state.weight)
}

/// The attempts' outcomes, in the journal's order: (steps, verified).
fn outcomes(records: &[Record]) -> Vec<(Vec<String>, Option<bool>)> {
    records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Outcome {
                steps,
                verification,
                ..
            } => Some((steps.clone(), verification.as_ref().map(|v| v.passed))),
            _ => None,
        })
        .collect()
}

fn wait_for_outcomes(
    agent: &Agent,
    n: usize,
    within: Duration,
) -> Vec<(Vec<String>, Option<bool>)> {
    let done = wait_until(within, || outcomes(&agent.records()).len() >= n);
    assert!(
        done,
        "{n} outcome(s) not journalled within {within:?}: {:#?}\n{}",
        agent.records(),
        agent.log_text()
    );
    outcomes(&agent.records())
}

fn escalations(agent: &Agent) -> Vec<Vec<String>> {
    agent
        .records()
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Escalate { evidence, .. } => Some(evidence.clone()),
            _ => None,
        })
        .collect()
}

/// An agent config naming the lab's etcd and this agent's member name.
fn fleet_config(env: &Env, member: &str) -> std::path::PathBuf {
    let path = env.dir.join(format!("config-{member}.yaml"));
    std::fs::write(
        &path,
        format!(
            "fleet:\n  etcd: {}\n  member: {member}\n  ttl: {TTL}\n",
            env.lab().etcd_url().expect("a lab of two nodes")
        ),
    )
    .expect("write the agent config");
    path
}

fn policies(env: &Env, name: &str, yaml: &str) -> std::path::PathBuf {
    let dir = env.dir.join(name);
    std::fs::create_dir_all(&dir).expect("policy dir");
    write_policy(&dir, "policy.yaml", yaml);
    dir
}

fn start_agent(env: &Env, name: &str, yaml: &str, config: Option<&Path>) -> Agent {
    let dir = policies(env, &format!("policies-{name}"), yaml);
    let mut extra = Vec::new();
    if let Some(config) = config {
        extra.extend(["--config", config.to_str().expect("a UTF-8 path")]);
    }
    Agent::start_named(env, name, &dir, &extra)
}

fn fleet_guard() -> &'static str {
    "  fleet: { group: web, maxConcurrent: 1, lock: etcd }\n"
}

/// (a) Node b's pool SIGKILLed under load: drained at haproxy within milliseconds of
/// the D-Bus push, healed, verified, and its weight given back in steps, every weight
/// journalled before and after; the clients see no failed GET and at most the POSTs
/// that were inside the dead pool.
#[test]
fn a_crashed_node_is_drained_healed_and_given_its_weight_back_under_load() {
    let Some(env) = lab_of("lb_drain_under_load", Topology::Fleet(LbKind::Haproxy)) else {
        return;
    };
    let lab = env.lab();
    let agent = start_agent(
        &env,
        "node-b",
        &node_policy(&env, Node::B, &haproxy_server(&env, Node::B), "", ""),
        None,
    );
    let load = Load::start(lab.lb_port().expect("a load balancer"), RATE);
    std::thread::sleep(Duration::from_secs(1));
    lab.break_node(Scenario::Crash, Node::B)
        .expect("crash node b");
    let outcomes = wait_for_outcomes(&agent, 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let samples = load.finish();
    let (steps, verified) = &outcomes[0];
    assert_eq!(*verified, Some(true), "{steps:?}");
    assert_eq!(
        steps[0],
        format!("drain: drained {LB_BACKEND}/node-b: ready, weight {NODE_WEIGHT} -> drain, weight {NODE_WEIGHT}")
    );
    assert!(steps[1].starts_with("restart: "), "{steps:?}");
    assert_eq!(
        &steps[2..],
        [
            format!(
                "ramp: step 1 of 2: {LB_BACKEND}/node-b: drain, weight {NODE_WEIGHT} -> ready, weight 5"
            ),
            format!(
                "ramp: step 2 of 2: {LB_BACKEND}/node-b: ready, weight 5 -> ready, weight {NODE_WEIGHT}"
            ),
        ]
    );
    assert_eq!(at_haproxy(&env, Node::B), (0, NODE_WEIGHT));
    let (gets, posts, span) = failures(&samples);
    eprintln!(
        "{} requests: {gets} GET and {posts} POST failed, over {span:?}",
        samples.len()
    );
    assert!(
        samples.len() > RATE as usize,
        "the load ran: {}",
        samples.len()
    );
    assert_eq!(gets, 0, "haproxy retries a GET the dead pool refused");
    assert!(
        posts <= 5,
        "only the POSTs inside the dead pool may fail, not {posts}"
    );
}

/// (c) Both pools crash at once, an agent on each node, one slot in etcd: exactly one
/// agent drains its node, the other says whose slot it is and still heals its own.
#[test]
fn two_agents_racing_for_one_slot_drain_one_node() {
    let Some(env) = lab_of("lb_fleet_race", Topology::Fleet(LbKind::Haproxy)) else {
        return;
    };
    let lab = env.lab();
    // A second's work after the drain keeps the slot taken while the other looks.
    let hold = "    - exec: { command: [/bin/sleep, \"1\"] }\n";
    let agents: Vec<Agent> = [Node::A, Node::B]
        .into_iter()
        .map(|node| {
            let member = format!("node-{}", node.name());
            let config = fleet_config(&env, &member);
            start_agent(
                &env,
                &member,
                &node_policy(&env, node, &haproxy_server(&env, node), hold, fleet_guard()),
                Some(&config),
            )
        })
        .collect();
    let killed = lab
        .systemctl(&["kill", "--signal=SIGKILL", Node::A.unit(), Node::B.unit()])
        .expect("systemctl");
    assert!(killed.status.success());
    let firsts: Vec<String> = agents
        .iter()
        .map(|agent| {
            let outcomes = wait_for_outcomes(agent, 1, Duration::from_secs(30));
            assert_eq!(
                outcomes[0].1,
                Some(true),
                "each pool healed: {:?}",
                outcomes[0].0
            );
            outcomes[0].0[0].clone()
        })
        .collect();
    let drained: Vec<&String> = firsts
        .iter()
        .filter(|s| s.starts_with("drain: drained "))
        .collect();
    let refused: Vec<&String> = firsts
        .iter()
        .filter(|s| {
            s.starts_with("drain: not drained: fleet web: all 1 slot(s) are taken, by node-")
        })
        .collect();
    assert_eq!((drained.len(), refused.len()), (1, 1), "{firsts:?}");
    for agent in &agents {
        assert!(escalations(agent).is_empty(), "a full group is not news");
    }
    assert_eq!(at_haproxy(&env, Node::A), (0, NODE_WEIGHT));
    assert_eq!(at_haproxy(&env, Node::B), (0, NODE_WEIGHT));
}

/// The shipped load-balancer-side policies (one per server, one fleet group held in
/// this agent), pointed at the lab's nodes, escalating to `webhook`, settling for
/// `settle`.
fn lb_side_policies(env: &Env, webhook: &str, settle: &str) -> String {
    let lab = env.lab();
    crate::harness::shipped("policies/haproxy-server-down.yaml")
        .replace(
            "127.0.0.1:8480",
            &format!("127.0.0.1:{}", lab.node_port(Node::A)),
        )
        .replace(
            "127.0.0.1:8481",
            &format!("127.0.0.1:{}", lab.node_port(Node::B)),
        )
        .replace(
            "/run/haproxy/admin.sock",
            &lab.haproxy_socket()
                .expect("a lab behind haproxy")
                .display()
                .to_string(),
        )
        .replace("http://127.0.0.1:9093/hooks/salve", webhook)
        .replace("settle: 30s", &format!("settle: {settle}"))
}

/// (b) A single agent on the load balancer's side, no etcd: every node fails at once
/// with `maxUnhealthy: 1`, so none is drained and one escalation goes out. Once one
/// node is back and the count has settled, the one still failing is drained, and it
/// gets its weight back when it answers again.
#[test]
fn every_node_failing_at_once_drains_none_and_escalates_once() {
    let Some(env) = lab_of("lb_max_unhealthy", Topology::Fleet(LbKind::Haproxy)) else {
        return;
    };
    let lab = env.lab();
    let webhook = Webhook::start();
    let agent = start_agent(
        &env,
        "lb",
        &lb_side_policies(&env, &webhook.url, "2s"),
        None,
    );
    let stopped = lab
        .systemctl(&["stop", Node::A.unit(), Node::B.unit()])
        .expect("systemctl");
    assert!(stopped.status.success());
    assert!(
        wait_until(Duration::from_secs(20), || escalations(&agent).len() == 1),
        "no escalation:\n{:#?}\n{}",
        agent.records(),
        agent.log_text()
    );
    let held = |agent: &Agent| -> Vec<String> {
        let mut held: Vec<String> = agent
            .records()
            .into_iter()
            .filter(|r| matches!(&r.entry, Entry::Skip { reason, .. } if reason == "max_unhealthy"))
            .map(|r| r.policy)
            .collect();
        held.sort();
        held.dedup();
        held
    };
    // Both triggers' `for` has passed well before this: each was held, once.
    assert!(
        wait_until(Duration::from_secs(10), || held(&agent).len() == 2),
        "{:#?}",
        agent.records()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(held(&agent), ["haproxy-node-a-down", "haproxy-node-b-down"]);
    let escalated = escalations(&agent);
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    assert!(
        escalated[0][0].starts_with(
            "2 of 2 policies of fleet group web-lb unhealthy, over maxUnhealthy 1 (1 allowed)"
        ),
        "{escalated:?}"
    );
    assert_eq!(agent.count("intent"), 0, "nothing acted on");
    assert_eq!(at_haproxy(&env, Node::A), (0, NODE_WEIGHT));
    assert_eq!(at_haproxy(&env, Node::B), (0, NODE_WEIGHT));
    assert!(wait_until(Duration::from_secs(5), || webhook.count() == 1));

    // Node a is back: within the limit again, and after the settle node b is drained.
    let started = lab
        .systemctl(&["start", Node::A.unit()])
        .expect("systemctl");
    assert!(started.status.success());
    assert!(
        wait_until(Duration::from_secs(20), || at_haproxy(&env, Node::B).0
            & 0x08
            != 0),
        "node-b was not drained after the settle:\n{:#?}\n{}",
        agent.records(),
        agent.log_text()
    );
    assert_eq!(at_haproxy(&env, Node::A), (0, NODE_WEIGHT));
    let started = lab
        .systemctl(&["start", Node::B.unit()])
        .expect("systemctl");
    assert!(started.status.success());
    let outcomes = wait_for_outcomes(&agent, 1, Duration::from_secs(30));
    let (steps, verified) = &outcomes[0];
    assert_eq!(*verified, Some(true), "{steps:?}");
    assert!(
        steps[0].starts_with(&format!("drain: drained {LB_BACKEND}/node-b: ready")),
        "{steps:?}"
    );
    assert_eq!(at_haproxy(&env, Node::B), (0, NODE_WEIGHT));
    assert_eq!(escalations(&agent).len(), 1, "the storm was escalated once");
    assert_eq!(webhook.count(), 1);
}

/// (d) An agent SIGKILLed while it holds the slot keeps it only for the lease's TTL:
/// the other agent is refused before, and drains after. An agent SIGSTOPped past its
/// TTL and then continued finds its slot gone: it does not ramp, and says so.
#[test]
fn a_killed_holder_frees_its_slot_after_the_ttl_and_a_stopped_one_does_not_act() {
    let Some(env) = lab_of("lb_fleet_lease", Topology::Fleet(LbKind::Haproxy)) else {
        return;
    };
    let lab = env.lab();
    let slow = "    - exec: { command: [/bin/sleep, \"30\"] }\n";
    let config_a = fleet_config(&env, "node-a");
    let agent_a = start_agent(
        &env,
        "node-a",
        &node_policy(
            &env,
            Node::A,
            &haproxy_server(&env, Node::A),
            slow,
            fleet_guard(),
        ),
        Some(&config_a),
    );
    let pause = "    - exec: { command: [/bin/sleep, \"4\"] }\n";
    let config_b = fleet_config(&env, "node-b");
    let agent_b = start_agent(
        &env,
        "node-b",
        &node_policy(
            &env,
            Node::B,
            &haproxy_server(&env, Node::B),
            pause,
            fleet_guard(),
        ),
        Some(&config_b),
    );
    let etcd = salve::fleet::etcd::Etcd::new(
        salve::policy::HttpUrl::parse(&lab.etcd_url().unwrap()).unwrap(),
        Duration::from_secs(3),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let holders = || -> Vec<String> {
        runtime
            .block_on(etcd.range("/salve/fleet/web/"))
            .expect("etcd answers")
            .into_iter()
            .map(|kv| kv.value)
            .collect()
    };
    lab.break_node(Scenario::Crash, Node::A)
        .expect("crash node a");
    assert!(
        wait_until(Duration::from_secs(10), || holders() == ["node-a"]),
        "{:?}",
        holders()
    );
    assert!(wait_until(Duration::from_secs(5), || at_haproxy(
        &env,
        Node::A
    )
    .0 & 0x08
        != 0));
    let killed_at = std::time::Instant::now();
    drop(agent_a.kill());
    // The killed agent never healed its pool nor gave its weight back: an operator
    // (here, the test) does, as after any agent that died mid-attempt.
    lab.systemctl(&["restart", Node::A.unit()])
        .expect("restart pool a");
    runtime
        .block_on(api(&env).set_state(
            LB_BACKEND,
            Node::A.server(),
            salve::loadbalancer::haproxy::AdminState::Ready,
        ))
        .expect("ready a");
    lab.break_node(Scenario::Crash, Node::B)
        .expect("crash node b");
    let first = wait_for_outcomes(&agent_b, 1, Duration::from_secs(30));
    if killed_at.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            first[0].0[0],
            "drain: not drained: fleet web: all 1 slot(s) are taken, by node-a; the rest of the attempt goes on"
        );
    }
    assert!(
        wait_until(Duration::from_secs(10), || holders().is_empty()),
        "the lease ran out: {:?}",
        holders()
    );
    // The slot free, node b's next crash is drained; stopped past its TTL while it
    // holds the slot, the agent must not give the weight back when it continues.
    let before = outcomes(&agent_b.records()).len();
    lab.break_node(Scenario::Crash, Node::B)
        .expect("crash node b again");
    assert!(
        wait_until(Duration::from_secs(10), || holders() == ["node-b"]),
        "{:?}",
        holders()
    );
    agent_b.signal("-STOP");
    let gone = wait_until(Duration::from_secs(10), || holders().is_empty());
    agent_b.signal("-CONT");
    assert!(gone, "the stopped agent's lease ran out");
    let after = wait_for_outcomes(&agent_b, before + 1, Duration::from_secs(30));
    let (steps, verified) = &after[before];
    // haproxy's own check may have seen b down already (`ready, down, weight 10`).
    assert!(
        steps[0].starts_with(&format!("drain: drained {LB_BACKEND}/node-b: ready, ")),
        "{steps:?}"
    );
    assert_eq!(*verified, Some(true), "{steps:?}");
    assert_eq!(
        steps.last().unwrap(),
        &format!("ramp: not run: fleet web: this agent lost its slot (its lease ran out while it was stopped or cut off); it must not act on the load balancer; {LB_BACKEND}/node-b stays drained")
    );
    assert_eq!(at_haproxy(&env, Node::B).0 & 0x08, 0x08, "b stays drained");
    let escalated = escalations(&agent_b);
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    assert!(escalated[0][0].contains("lost its slot"), "{escalated:?}");
}

/// (e) etcd stopped: the crashed pool is still healed (restarting it takes nothing
/// from the fleet), nothing is drained, the journal says why, and the policy
/// escalates once however often it happens.
#[test]
fn with_etcd_away_nothing_is_drained_the_pool_is_healed_and_one_escalation_goes_out() {
    let Some(env) = lab_of("lb_fleet_etcd_away", Topology::Fleet(LbKind::Haproxy)) else {
        return;
    };
    let lab = env.lab();
    let webhook = Webhook::start();
    let escalate = format!(
        "  escalate:\n    - notify: {{ webhook: \"{}\" }}\n",
        webhook.url
    );
    let config = fleet_config(&env, "node-b");
    let agent = start_agent(
        &env,
        "node-b",
        &node_policy(
            &env,
            Node::B,
            &haproxy_server(&env, Node::B),
            "",
            &(fleet_guard().to_string() + &escalate),
        ),
        Some(&config),
    );
    let stopped = lab
        .systemctl(&["stop", salve::lab::ETCD_UNIT])
        .expect("systemctl");
    assert!(stopped.status.success());
    for round in 1..=2 {
        lab.break_node(Scenario::Crash, Node::B)
            .expect("crash node b");
        let outcomes = wait_for_outcomes(&agent, round, Duration::from_secs(30));
        let (steps, verified) = &outcomes[round - 1];
        assert_eq!(*verified, Some(true), "healed all the same: {steps:?}");
        assert!(
            steps[0].starts_with("drain: not drained: fleet web: etcd at http://127.0.0.1:")
                && steps[0].ends_with("; the rest of the attempt goes on"),
            "{steps:?}"
        );
        assert!(steps[1].starts_with("restart: "), "{steps:?}");
        assert_eq!(
            steps.len(),
            2,
            "no ramp for a node never drained: {steps:?}"
        );
        assert_eq!(at_haproxy(&env, Node::B), (0, NODE_WEIGHT));
        std::thread::sleep(Duration::from_millis(1200));
    }
    assert!(wait_until(Duration::from_secs(5), || webhook.count() == 1));
    let escalated = escalations(&agent);
    assert_eq!(escalated.len(), 1, "once, not per crash: {escalated:?}");
    assert!(
        escalated[0][0].starts_with("not drained: fleet web: etcd at "),
        "{escalated:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(webhook.count(), 1);
}

/// The load balancer's side with nginx: the agent next to nginx probes node b and,
/// while it fails, takes its upstream server `down` (the policy's target is the server
/// line itself, with a guard of its own); once node b answers again, the weight comes
/// back in steps and the file has its original bytes.
#[test]
fn an_nginx_upstream_server_is_the_load_balancers_own_target() {
    let Some(env) = lab_of("lb_nginx_target", Topology::Fleet(LbKind::Nginx)) else {
        return;
    };
    let lab = env.lab();
    let upstream = lab.lb_site().expect("an nginx load balancer");
    let original = std::fs::read(&upstream).unwrap();
    let port = lab.node_port(Node::B);
    let yaml = format!(
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata:
  name: nginx-node-b-down
spec:
  target:
    nginx: {{ file: {file}, upstream: {LB_BACKEND}, server: "127.0.0.1:{port}", config: {config} }}
  trigger:
    - http: {{ url: "http://127.0.0.1:{port}/ping.php", status: [500, 502, 503, 504], failures: 2, interval: 500ms, timeout: 500ms }}
  actions:
    - drain: {{ ramp: {{ steps: 2, interval: 300ms }} }}
  verify:
    http: {{ url: "http://127.0.0.1:{port}/ping.php", status: [200], within: 1m }}
  guard: {{ cooldown: 1s, maxAttempts: 3, window: 10m }}
"#,
        file = upstream.display(),
        config = lab.nginx_conf().display(),
    );
    let agent = start_agent(&env, "lb", &yaml, None);
    let stopped = lab.systemctl(&["stop", Node::B.unit()]).expect("systemctl");
    assert!(stopped.status.success());
    let drained = wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&upstream).is_ok_and(|text| {
            text.lines()
                .any(|l| l.contains(&format!("127.0.0.1:{port}")) && l.contains(" down"))
        })
    });
    assert!(drained, "node b was not taken down:\n{}", agent.log_text());
    let started = lab
        .systemctl(&["start", Node::B.unit()])
        .expect("systemctl");
    assert!(started.status.success());
    let outcomes = wait_for_outcomes(&agent, 1, Duration::from_secs(30));
    let (steps, verified) = &outcomes[0];
    assert_eq!(*verified, Some(true), "{steps:?}");
    let at = format!(
        "upstream {LB_BACKEND} server 127.0.0.1:{port} in {}",
        upstream.display()
    );
    assert_eq!(
        steps[0],
        format!("drain: drained {at}: weight {NODE_WEIGHT} -> down, weight {NODE_WEIGHT}")
    );
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(
        std::fs::read(&upstream).unwrap(),
        original,
        "every byte back"
    );
    let intent = agent
        .records()
        .into_iter()
        .find(|r| r.entry.kind() == "intent")
        .expect("an intent");
    assert_eq!(
        intent.target,
        format!("nginx:{LB_BACKEND}/127.0.0.1:{port}@{}", upstream.display())
    );
}

/// (f) The nginx load balancer: node b's crash takes its upstream server `down` (an
/// edit `nginx -t` passed, then a reload) and the ramp gives the file its original
/// bytes back. With another file of the config broken by someone else, the edit fails
/// `nginx -t`: the upstream file keeps every byte, nginx keeps serving, the pool is
/// healed all the same, and the policy escalates.
#[test]
fn an_nginx_upstream_is_drained_by_an_edit_and_a_config_that_fails_nginx_t_is_left_alone() {
    let Some(env) = lab_of("lb_nginx_upstream", Topology::Fleet(LbKind::Nginx)) else {
        return;
    };
    let lab = env.lab();
    let upstream = lab.lb_site().expect("an nginx load balancer");
    let original = std::fs::read(&upstream).unwrap();
    let server = format!(
        "nginx: {{ file: {}, upstream: {LB_BACKEND}, server: \"127.0.0.1:{}\", config: {}, unit: nginx.service }}",
        upstream.display(),
        lab.node_port(Node::B),
        lab.nginx_conf().display()
    );
    let agent = start_agent(
        &env,
        "node-b",
        &node_policy(&env, Node::B, &server, "", ""),
        None,
    );
    lab.break_node(Scenario::Crash, Node::B)
        .expect("crash node b");
    let outcomes = wait_for_outcomes(&agent, 1, Duration::from_secs(30));
    let (steps, verified) = &outcomes[0];
    assert_eq!(*verified, Some(true), "{steps:?}");
    let at = format!(
        "upstream {LB_BACKEND} server 127.0.0.1:{} in {}",
        lab.node_port(Node::B),
        upstream.display()
    );
    assert_eq!(
        steps[0],
        format!("drain: drained {at}: weight {NODE_WEIGHT} -> down, weight {NODE_WEIGHT}")
    );
    assert_eq!(
        steps[2],
        format!("ramp: step 1 of 2: {at}: down, weight {NODE_WEIGHT} -> weight 5")
    );
    assert_eq!(
        steps[3],
        format!("ramp: step 2 of 2: {at}: weight 5 -> weight {NODE_WEIGHT}")
    );
    assert_eq!(
        std::fs::read(&upstream).unwrap(),
        original,
        "every byte back"
    );
    // Someone leaves a broken file in the config.
    let typo = lab.nginx_site().with_file_name("zz-typo.conf");
    std::fs::write(
        &typo,
        "server { listen 127.0.0.1:1; bogus_directive on; }\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    lab.break_node(Scenario::Crash, Node::B)
        .expect("crash node b again");
    let outcomes = wait_for_outcomes(&agent, 2, Duration::from_secs(30));
    let (steps, verified) = &outcomes[1];
    assert_eq!(*verified, Some(true), "healed all the same: {steps:?}");
    assert!(
        steps[0].starts_with(&format!(
            "drain: not drained: {at}: weight {NODE_WEIGHT} -> down, weight {NODE_WEIGHT}: validation failed, file not replaced: "
        )) && steps[0].contains("unknown directive \"bogus_directive\""),
        "{steps:?}"
    );
    assert_eq!(
        std::fs::read(&upstream).unwrap(),
        original,
        "not a byte changed"
    );
    assert_eq!(
        lab.probe(lab.lb_port().unwrap(), "/ping.php").status(),
        Some(200),
        "nginx serves its running config"
    );
    assert_eq!(escalations(&agent).len(), 1);
    std::fs::remove_file(&typo).unwrap();
}

/// (g) One host, two pools: nginx passes PHP to the pool and to a backup pool of its
/// own unit, and on to the backup when the first refuses. Under the shipped unit and
/// the shipped policy, a SIGKILL of the primary under load costs no request that
/// reached nginx after it (only those already inside the dead pool may fail: nginx
/// never passes a request on once it has sent it to one), salve restarts the primary,
/// and then keeps the backup alive the same way.
#[test]
fn a_backup_pool_turns_a_crash_into_a_retry_and_both_pools_are_kept_alive() {
    let Some(env) = lab_of("backup_pool", Topology::BackupPool) else {
        return;
    };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    write_policy(
        &policies,
        "php-fpm-backup-pool.yaml",
        &crate::harness::shipped("policies/php-fpm-backup-pool.yaml"),
    );
    let agent = Agent::start_unit(&env, &policies, &[]);
    let healed = |policy: &str, n: usize| {
        wait_until(Duration::from_secs(30), || {
            agent
                .records()
                .iter()
                .filter(|r| {
                    r.policy == policy
                        && matches!(
                            r.entry,
                            Entry::Outcome {
                                result: salve::audit::OutcomeResult::Ok,
                                ..
                            }
                        )
                })
                .count()
                >= n
        })
    };
    let load = Load::start(lab.http_port(), RATE);
    std::thread::sleep(Duration::from_secs(1));
    let killing = std::time::Instant::now();
    let killed = lab
        .systemctl(&["kill", "--signal=SIGKILL", salve::lab::PHP_FPM_UNIT])
        .expect("systemctl");
    assert!(killed.status.success());
    // `systemctl kill` returns once the signals are sent; until the last of the pool's
    // processes is gone its socket still takes connections, and a request it takes
    // is inside the dead pool. The crash is over when the socket refuses.
    let socket = PathBuf::from(format!(
        "/proc/{}/root{}",
        lab.pid(),
        salve::lab::PHP_FPM_SOCKET
    ));
    let dying = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        assert!(
            dying.elapsed() < Duration::from_secs(5),
            "the killed pool's socket still takes connections"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed_at = std::time::Instant::now();
    assert!(
        healed("php-fpm-primary-pool-down", 1),
        "the primary was not restarted:\n{}",
        agent.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let killed = lab
        .systemctl(&["kill", "--signal=SIGKILL", salve::lab::PHP_FPM_UNIT_BACKUP])
        .expect("systemctl");
    assert!(killed.status.success());
    assert!(
        healed("php-fpm-backup-pool-down", 1),
        "the backup was not restarted:\n{}",
        agent.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let samples = load.finish();
    let after: Vec<_> = samples.iter().filter(|s| s.sent >= killed_at).collect();
    let inside: Vec<_> = samples
        .iter()
        .filter(|s| s.sent >= killing - Duration::from_millis(50) && s.sent < killed_at)
        .collect();
    let failed_after = after.iter().filter(|s| s.failed()).count();
    let failed_inside = inside.iter().filter(|s| s.failed()).count();
    eprintln!(
        "{} requests after the kill, {failed_after} failed; {} sent while it was being killed, {failed_inside} failed; {} failed in all",
        after.len(),
        inside.len(),
        samples.iter().filter(|s| s.failed()).count()
    );
    assert!(
        after.len() > RATE as usize,
        "the load ran on: {}",
        after.len()
    );
    assert_eq!(
        failed_after, 0,
        "a request reaching nginx after the crash failed"
    );
    assert_eq!(
        samples.iter().filter(|s| s.failed()).count(),
        failed_inside,
        "only requests in flight at the crash may fail"
    );
    for unit in [salve::lab::PHP_FPM_UNIT, salve::lab::PHP_FPM_UNIT_BACKUP] {
        assert_eq!(
            crate::harness::unit_state(lab, unit, "ActiveState"),
            "active"
        );
    }
}

/// The shipped load-balancer policies, one per side, under the shipped unit (as the
/// `salve` user, with the haproxy drop-in and nothing else): node a's pool crashes and
/// its own policy drains it, restarts it and ramps it back; node b's pool stops, and
/// the load balancer's policy drains its server while it fails and gives the weight
/// back once it answers again.
#[test]
fn the_shipped_load_balancer_policies_work_under_the_shipped_unit() {
    let Some(env) = lab_of("lb_shipped", Topology::Fleet(LbKind::Haproxy)) else {
        return;
    };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    for file in ["php-fpm-drain-at-haproxy.yaml", "haproxy-server-down.yaml"] {
        let yaml = crate::harness::shipped(&format!("policies/{file}"))
            .replace(
                "127.0.0.1:8480",
                &format!("127.0.0.1:{}", lab.node_port(Node::A)),
            )
            .replace(
                "127.0.0.1:8481",
                &format!("127.0.0.1:{}", lab.node_port(Node::B)),
            );
        write_policy(&policies, file, &yaml);
    }
    let agent = Agent::start_unit(&env, &policies, &["salve.service.d/haproxy.conf"]);
    let outcome_of = |policy: &str| {
        agent.records().into_iter().find_map(|r| match r.entry {
            Entry::Outcome {
                steps,
                verification,
                ..
            } if r.policy == policy => Some((steps, verification.map(|v| v.passed))),
            _ => None,
        })
    };
    let wait = |policy: &str| {
        assert!(
            wait_until(Duration::from_secs(40), || outcome_of(policy).is_some()),
            "{policy}: no outcome\n{}",
            agent.log_text()
        );
        outcome_of(policy).unwrap()
    };

    lab.break_node(Scenario::Crash, Node::A)
        .expect("crash node a");
    let (steps, verified) = wait("php-fpm-drain-at-haproxy");
    assert_eq!(verified, Some(true), "{steps:?}");
    assert_eq!(
        steps[0],
        format!("drain: drained {LB_BACKEND}/node-a: ready, weight {NODE_WEIGHT} -> drain, weight {NODE_WEIGHT}")
    );
    assert_eq!(
        steps.len(),
        3 + 4,
        "drain, resetFailed, restart, 4 ramp steps: {steps:?}"
    );
    assert!(
        steps[6].ends_with(&format!("-> ready, weight {NODE_WEIGHT}")),
        "{steps:?}"
    );
    assert_eq!(at_haproxy(&env, Node::A), (0, NODE_WEIGHT));

    let stopped = lab.systemctl(&["stop", Node::B.unit()]).expect("systemctl");
    assert!(stopped.status.success());
    assert!(
        wait_until(Duration::from_secs(15), || at_haproxy(&env, Node::B).0
            & 0x08
            != 0),
        "node-b was not drained:\n{}",
        agent.log_text()
    );
    // The node heals (its own agent would); the load balancer's policy sees it answer.
    let started = lab
        .systemctl(&["start", Node::B.unit()])
        .expect("systemctl");
    assert!(started.status.success());
    let (steps, verified) = wait("haproxy-node-b-down");
    assert_eq!(verified, Some(true), "{steps:?}");
    assert!(
        steps[0].starts_with(&format!("drain: drained {LB_BACKEND}/node-b: ready")),
        "{steps:?}"
    );
    assert_eq!(steps.len(), 1 + 4, "{steps:?}");
    assert_eq!(at_haproxy(&env, Node::B), (0, NODE_WEIGHT));
}
