//! The control socket end to end: `salve status`, `pause` (journalled, held through an
//! agent restart, shown in `status`, decisions skipped as `paused`), `resume`,
//! `reset` of an open circuit and `reload`, through the real binary against an agent
//! healing the lab's pool; and a peer that is neither root nor in the admin group
//! refused by its credentials, and journalled.

use crate::harness::*;
use salve::audit::{Entry, Record};
use salve::control::StatusReport;
use salve::lab::Scenario;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const UNIT: &str = "php8.2-fpm.service";

fn policy(ping: &str, guard: &str) -> String {
    crate::agent::down_policy(ping, guard, "")
}

/// The agent config: the journal stays where the harness puts it, the socket goes
/// into the test's directory.
fn config(env: &Env) -> (PathBuf, PathBuf) {
    let socket = env.dir.join("control.sock");
    let path = env.dir.join("config.yaml");
    std::fs::write(
        &path,
        format!("control: {{ socket: {} }}\n", socket.display()),
    )
    .expect("write the agent config");
    (path, socket)
}

/// The crash policy with `guard` (verified within `within`), and an agent running it
/// with its control socket in the test's directory.
fn start(env: &Env, guard: &str, within: &str) -> (Agent, PathBuf, Vec<String>) {
    let policies = env.dir.join("policies");
    let yaml = policy(&env.lab().ping_url(), guard).replace("within: 10s", within);
    write_policy(&policies, "down.yaml", &yaml);
    let (config, socket) = config(env);
    let args = vec![
        "--config".to_string(),
        config.to_str().expect("UTF-8 path").to_string(),
    ];
    let borrowed: Vec<&str> = args.iter().map(String::as_str).collect();
    (Agent::start(env, &policies, &borrowed), socket, args)
}

fn salve(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("run salve")
}

fn said(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn status(socket: &Path) -> StatusReport {
    let out = salve(socket, &["status", "--json"]);
    assert!(out.status.success(), "{}", said(&out));
    serde_json::from_slice(&out.stdout).expect("status --json is the report")
}

fn controls(records: &[Record]) -> Vec<(String, String, Option<String>)> {
    records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Control {
                command,
                by,
                refused,
                ..
            } => Some((command.clone(), by.clone(), refused.clone())),
            _ => None,
        })
        .collect()
}

fn skipped_as(records: &[Record], reason: &str) -> usize {
    records
        .iter()
        .filter(|r| matches!(&r.entry, Entry::Skip { reason: why, .. } if why == reason))
        .count()
}

#[test]
fn a_pause_holds_back_healing_across_a_restart_until_it_is_lifted() {
    let Some(env) = lab("control_pause") else {
        return;
    };
    let lab = env.lab();
    let (agent, socket, args) = start(
        &env,
        "{ cooldown: 1s, maxAttempts: 3, window: 10m, backoff: 1.0 }",
        "within: 5s",
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&socket).expect("the agent made its control socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    let report = status(&socket);
    assert_eq!(report.policies.len(), 1, "{report:?}");
    assert_eq!(
        (
            report.policies[0].policy.as_str(),
            report.policies[0].target.as_str()
        ),
        ("php-fpm-down", UNIT)
    );
    assert_eq!(report.policies[0].state, "ok");
    let table = salve(&socket, &["status"]);
    assert!(table.status.success(), "{}", said(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("POLICY"), "{text}");
    assert!(
        text.contains("php-fpm-down") && text.contains(UNIT),
        "{text}"
    );

    let paused = salve(
        &socket,
        &["pause", UNIT, "--for", "30m", "--reason", "deploy"],
    );
    assert!(paused.status.success(), "{}", said(&paused));
    assert!(String::from_utf8_lossy(&paused.stdout)
        .starts_with(&format!("paused target {UNIT} until ")));
    // A pause without a reason, or too long, is refused and changes nothing.
    let refused = salve(&socket, &["pause", UNIT, "--for", "30d", "--reason", "x"]);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));

    lab.break_scenario(Scenario::Stop).expect("stop the pool");
    assert!(
        wait_until(Duration::from_secs(10), || skipped_as(
            &agent.records(),
            "paused"
        ) == 1),
        "no paused skip:\n{:#?}\n{}",
        agent.records(),
        agent.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.count("intent"), 0, "nothing acts while paused");
    assert_eq!(unit_state(lab, UNIT, "ActiveState"), "inactive");
    let report = status(&socket);
    assert_eq!(report.policies[0].state, "paused", "{report:?}");
    assert_eq!(
        report.policies[0].last_decision.as_deref(),
        Some("skip: paused")
    );
    assert_eq!(report.pauses.len(), 1);
    assert_eq!(report.pauses[0].scope, format!("target {UNIT}"));
    assert_eq!(report.pauses[0].reason.as_deref(), Some("deploy"));
    assert!(
        report.pauses[0]
            .by
            .as_deref()
            .is_some_and(|b| b.starts_with("uid 0 (root)")),
        "{report:?}"
    );

    // The pause outlives the agent: a new one reads it from the journal.
    agent.stop();
    let agent = Agent::start(&env, &env.dir.join("policies"), &args);
    let report = status(&socket);
    assert_eq!(report.policies[0].state, "paused", "{report:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.count("intent"), 0, "still paused after the restart");

    let resumed = salve(&socket, &["resume", UNIT]);
    assert!(resumed.status.success(), "{}", said(&resumed));
    assert!(
        wait_until(Duration::from_secs(15), || agent.count("outcome") >= 1),
        "resumed, the pool is healed:\n{}",
        agent.log_text()
    );
    assert!(wait_until(Duration::from_secs(5), || http_status(
        lab.http_port(),
        "/ping.php"
    ) == Some(200)));
    let report = status(&socket);
    assert_eq!(
        report.policies[0].last_outcome.as_deref(),
        Some("ok, verified"),
        "{report:?}"
    );
    assert!(report.pauses.is_empty());

    let reload = salve(&socket, &["reload"]);
    assert!(reload.status.success(), "{}", said(&reload));
    assert_eq!(
        String::from_utf8_lossy(&reload.stdout).trim(),
        "reloaded: 1 policies"
    );
    let commands: Vec<String> = controls(&agent.records())
        .into_iter()
        .map(|(command, by, refused)| {
            assert!(by.starts_with("uid 0"), "{by}");
            assert_eq!(refused, None);
            command
        })
        .collect();
    // The refused 30d pause never reached the journal: it was not a command run.
    assert_eq!(commands, ["pause", "resume", "reload"]);
    agent.stop();
}

#[test]
fn reset_closes_an_open_circuit_and_a_stranger_is_refused() {
    let Some(env) = lab("control_reset") else {
        return;
    };
    let lab = env.lab();
    let (agent, socket, _) = start(
        &env,
        "{ cooldown: 1s, maxAttempts: 1, window: 10m, backoff: 1.0 }",
        "within: 2s",
    );
    lab.break_scenario(Scenario::CrashLoop).expect("crash loop");
    assert!(
        wait_until(Duration::from_secs(30), || agent.count("escalate") == 1),
        "the one attempt fails and the circuit opens:\n{}",
        agent.log_text()
    );
    let report = status(&socket);
    assert_eq!(report.policies[0].state, "circuit open", "{report:?}");
    assert!(report.policies[0].circuit_open_until.is_some());
    let reset = salve(&socket, &["reset", "--policy", "php-fpm-down"]);
    assert!(reset.status.success(), "{}", said(&reset));
    // Closed, the circuit lets the policy act again at once on the pool still down.
    assert!(
        wait_until(Duration::from_secs(15), || agent.count("intent") == 2),
        "{:#?}",
        agent.records()
    );
    lab.repair().expect("repair the lab");

    // Someone who is neither root nor in the admin group: the socket's mode keeps
    // them out; opened to all by mistake, the credentials check still does.
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_salve"))
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .output()
            .expect("setpriv")
    };
    // Everything above the test's directory must let `nobody` through for the
    // connection to be tried at all; the test's own directory is opened for it.
    use std::os::unix::fs::PermissionsExt;
    let reachable = env
        .dir
        .ancestors()
        .skip(1)
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let denied = as_nobody(&["status"]);
    assert_eq!(denied.status.code(), Some(2), "{}", said(&denied));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
        "{}",
        said(&denied)
    );
    if !reachable {
        eprintln!(
            "note: {} is below a directory `nobody` may not enter: the credentials check is shown by the unit tests only",
            env.dir.display()
        );
        agent.stop();
        return;
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let refused = as_nobody(&["pause", UNIT, "--for", "1h", "--reason", "mine now"]);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("permission denied: only root and the agent's admin group"),
        "{}",
        said(&refused)
    );
    assert!(status(&socket).pauses.is_empty(), "nothing paused");
    let journalled = controls(&agent.records());
    let (command, by, why) = journalled
        .last()
        .expect("the refusal is journalled")
        .clone();
    assert_eq!(command, "pause");
    assert!(by.starts_with("uid 65534 (nobody)"), "{by}");
    assert!(why.is_some_and(|w| w.starts_with("permission denied")));
    assert_eq!(journalled[0].0, "reset");
    agent.stop();
}

/// Under the shipped units: salve.socket makes the socket, the admin group's, and
/// passes it to salve.service; root asks and is answered. A program the agent runs
/// (`exec`, as the agent's own user) cannot reach the socket at all: it is neither
/// the socket's owner nor in its group.
#[test]
fn the_shipped_socket_unit_is_root_and_the_admin_groups_and_never_the_agents_children() {
    let Some(env) = lab("control_socket_unit") else {
        return;
    };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    let sneaky = format!(
        "    - exec: {{ command: [{}, pause, {UNIT}, --for, 1h, --reason, sneaky, --socket, /run/salve/control.sock] }}\n",
        env!("CARGO_BIN_EXE_salve")
    );
    let yaml = policy(
        &lab.ping_url(),
        "{ cooldown: 1s, maxAttempts: 3, window: 10m, backoff: 1.0 }",
    )
    .replace(
        "    - restart: {}\n",
        &format!("    - restart: {{}}\n{sneaky}"),
    );
    write_policy(&policies, "down.yaml", &yaml);
    let agent = Agent::start_unit_with_socket(&env, &policies, &[]);
    let socket = PathBuf::from(format!("/proc/{}/root/run/salve/control.sock", lab.pid()));
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&socket).expect("salve.socket made the socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.uid(), 0);
    let group = std::fs::read_to_string(format!("/proc/{}/root/etc/group", lab.pid()))
        .expect("the lab's group file");
    let admin_gid: u32 = group
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"salve-admin")).then(|| f.get(2)?.parse().ok())?
        })
        .expect("the lab has the admin group");
    assert_eq!(meta.gid(), admin_gid);
    let report = status(&socket);
    assert_eq!(report.policies[0].policy, "php-fpm-down");
    assert!(
        !agent.log_text().contains("no control socket"),
        "{}",
        agent.log_text()
    );

    lab.break_scenario(Scenario::Crash).expect("crash the pool");
    assert!(
        wait_until(Duration::from_secs(20), || agent.count("outcome") >= 1),
        "{}",
        agent.log_text()
    );
    let outcome = agent
        .records()
        .into_iter()
        .find_map(|r| match r.entry {
            Entry::Outcome { steps, .. } => Some(steps),
            _ => None,
        })
        .expect("an outcome");
    assert_eq!(outcome[1], "restart: job done", "{outcome:?}");
    assert!(
        outcome[2].starts_with("exec: ") && outcome[2].contains("Permission denied"),
        "the agent's child never reaches the socket: {outcome:?}"
    );
    assert!(status(&socket).pauses.is_empty(), "nothing was paused");
    assert!(controls(&agent.records()).is_empty());
}
