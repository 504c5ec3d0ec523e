//! The shipped deployment is least-privilege, proven against Debian's polkitd running
//! inside the lab: the agent runs there from deploy/systemd/salve.service as the
//! `salve` user (which exists only in the sandbox's own /etc/passwd), heals and enables
//! php8.2-fpm through the shipped polkit rule and helper units, and that user can start,
//! stop or restart nothing else, link or enable no unit file and reload no daemon.
//!
//! The agent must run inside the sandbox: polkitd learns the caller's pid from the bus
//! and checks it in its own PID namespace, where a process outside the sandbox has none.

use crate::harness::*;
use salve::audit::{Entry, OutcomeResult};
use salve::lab::{Lab, Scenario, PHP_FPM_UNIT, SALVE_USER};
use std::process::{Command, Output};
use std::time::Duration;

/// `systemctl --no-ask-password ARGS` inside the sandbox as the `salve` user.
fn systemctl_as_salve(lab: &Lab, args: &[&str]) -> Output {
    let pid = lab.pid().to_string();
    Command::new("nsenter")
        .args([
            "-t", &pid, "-a", "setpriv", "--reuid", SALVE_USER, "--regid", SALVE_USER,
        ])
        .args(["--clear-groups", "/usr/bin/systemctl", "--no-ask-password"])
        .args(args)
        .env("SYSTEMCTL_SKIP_SYSV", "1")
        .output()
        .expect("run systemctl in the sandbox")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_denied(lab: &Lab, args: &[&str]) {
    let out = systemctl_as_salve(lab, args);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "`systemctl {}` as salve was allowed:\n{said}",
        args.join(" ")
    );
    assert!(
        said.contains("Access denied") || said.contains("Interactive authentication required"),
        "`systemctl {}` as salve failed, but not by polkit's refusal:\n{said}",
        args.join(" ")
    );
}

#[test]
fn the_salve_user_heals_through_polkit_and_can_do_nothing_else() {
    let Some(env) = lab("least-privilege") else {
        return;
    };
    let lab = env.lab();

    // The shipped policies, pointed at this test's lab port.
    let policies = env.dir.join("policies");
    for file in ["php-fpm-down.yaml", "php-fpm-not-enabled.yaml"] {
        let yaml = shipped(&format!("policies/{file}"))
            .replace("127.0.0.1:8480", &format!("127.0.0.1:{LAB_PORT}"));
        write_policy(&policies, file, &yaml);
    }
    let agent = Agent::start_unit(&env, &policies, &[]);
    let journal = agent.journal.clone();
    let logs = || agent.log_text();
    assert_eq!(unit_state(lab, "salve.service", "User"), SALVE_USER);

    let outcome_ok = |policy: &str| {
        salve::audit::read_journal(&journal).is_ok_and(|read| {
            read.records.iter().any(|r| {
                r.policy == policy
                    && matches!(
                        r.entry,
                        Entry::Outcome {
                            result: OutcomeResult::Ok,
                            ..
                        }
                    )
            })
        })
    };
    // Disabled at boot, enabled again through salve-enable@php8.2-fpm.service.service.
    lab.break_scenario(Scenario::Disable).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || outcome_ok(
            "php-fpm-not-enabled"
        )),
        "the unit was not enabled again as salve:\n{}",
        logs()
    );
    assert_eq!(unit_state(lab, PHP_FPM_UNIT, "UnitFileState"), "enabled");

    // Then a crash, healed by a restart polkit allows for this unit (after the shared
    // target's 10 s cooldown from the enable).
    lab.break_scenario(Scenario::Crash).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || outcome_ok("php-fpm-down")),
        "the crash was not healed as salve:\n{}",
        logs()
    );
    assert!(wait_until(Duration::from_secs(10), || http_status(
        lab.http_port(),
        "/ping.php"
    ) == Some(200)));
    // The rule is consulted (a listed unit's reload is granted) ...
    let reload = systemctl_as_salve(lab, &["reload", PHP_FPM_UNIT]);
    assert!(reload.status.success(), "{}", text(&reload));
    // ... and refuses everything else.
    let dbus_pid = unit_state(lab, "dbus.service", "MainPID");
    assert_denied(lab, &["restart", "dbus.service"]);
    assert_denied(lab, &["stop", "dbus.service"]);
    assert_denied(lab, &["start", "salve-enable@dbus.service.service"]);
    assert_denied(lab, &["kill", "dbus.service"]);
    let evil = "/tmp/salve-evil.service";
    let wrote = Command::new("nsenter")
        .args([
            "-t",
            &lab.pid().to_string(),
            "-a",
            "setpriv",
            "--reuid",
            SALVE_USER,
            "--regid",
            SALVE_USER,
            "--clear-groups",
        ])
        .args([
            "/bin/sh",
            "-c",
            &format!("printf '[Service]\\nExecStart=/bin/true\\n' > {evil}"),
        ])
        .status()
        .unwrap();
    assert!(wrote.success());
    assert_denied(lab, &["link", evil]);
    assert_denied(lab, &["enable", evil]);
    assert_denied(lab, &["enable", "dbus.service"]);
    assert_denied(lab, &["disable", "nginx.service"]);
    assert_denied(lab, &["mask", "nginx.service"]);
    assert_denied(lab, &["daemon-reload"]);
    // A listed unit, but verbs salve never uses: a persistent drop-in, wiping its state.
    assert_denied(lab, &["set-property", PHP_FPM_UNIT, "MemoryMax=1G"]);
    assert_denied(lab, &["clean", "--what=runtime", PHP_FPM_UNIT]);
    assert_denied(lab, &["freeze", PHP_FPM_UNIT]);
    assert_eq!(
        unit_state(lab, "dbus.service", "MainPID"),
        dbus_pid,
        "dbus was restarted"
    );
    assert_eq!(
        unit_state(lab, "salve-evil.service", "LoadState"),
        "not-found"
    );
    assert_eq!(unit_state(lab, "nginx.service", "UnitFileState"), "enabled");

    let records = salve::audit::read_journal(&journal).unwrap().records;
    assert!(
        !records.iter().any(|r| matches!(
            r.entry,
            Entry::Outcome {
                result: OutcomeResult::Failed,
                ..
            }
        )),
        "{records:#?}"
    );
    let exposure = exposure(lab, "salve.service");
    assert!(
        exposure <= 2.0,
        "systemd-analyze security: exposure {exposure} > 2.0"
    );
    agent.stop();
}

/// Every example policy runs end to end under the shipped unit: the crash and enable
/// policies above, the config-edit and notify-only ones in config_edits.rs (through
/// its `start`, the shipped unit with the config-edit drop-in), the load-balancer and
/// backup-pool ones in load_balancer.rs.
#[test]
fn every_shipped_policy_has_an_end_to_end_test_under_the_shipped_unit() {
    let tests = [
        include_str!("least_privilege.rs"),
        include_str!("config_edits.rs"),
        include_str!("load_balancer.rs"),
    ]
    .concat();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    let untested: Vec<&String> = names
        .iter()
        .filter(|n| !tests.contains(&format!("\"{n}\"")))
        .collect();
    assert!(untested.is_empty(), "no end-to-end test runs {untested:?}");
}
