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
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn salve_ids(lab: &Lab) -> (u32, u32) {
    let passwd = std::fs::read_to_string(lab.dir().join("etc/passwd")).expect("the lab's passwd");
    let line = passwd
        .lines()
        .find(|l| l.split(':').next() == Some(SALVE_USER))
        .expect("the lab's passwd has the salve user");
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

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

fn shipped(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).expect(file)
}

#[test]
fn the_salve_user_heals_through_polkit_and_can_do_nothing_else() {
    let Some(env) = lab("least-privilege") else {
        return;
    };
    let lab = env.lab();
    let (uid, gid) = salve_ids(lab);

    // The shipped policies, pointed at this test's lab port.
    let policies = env.dir.join("policies");
    for file in ["php-fpm-down.yaml", "php-fpm-not-enabled.yaml"] {
        let yaml = shipped(&format!("policies/{file}"))
            .replace("127.0.0.1:8480", &format!("127.0.0.1:{LAB_PORT}"));
        write_policy(&policies, file, &yaml);
    }
    // The state directory StateDirectory= would make, in the test's folder instead
    // (the sandbox shares the host's /var/lib), owned by the salve user.
    let state = env.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    let journal = state.join("journal.jsonl");

    let units = std::path::PathBuf::from(format!("/proc/{}/root/etc/systemd/system", lab.pid()));
    std::fs::write(
        units.join("salve.service"),
        shipped("deploy/systemd/salve.service"),
    )
    .unwrap();
    // Only paths change: the binary under test, its policies, its state. User, group,
    // capabilities and every hardening line stay as shipped.
    let dropin = format!(
        "[Service]\nStateDirectory=\nReadWritePaths=\nReadWritePaths={state}\nExecStart=\nExecStart={bin} agent --policies {policies} --journal {journal} --log-format json\n",
        state = state.display(),
        bin = env!("CARGO_BIN_EXE_salve"),
        policies = policies.display(),
        journal = journal.display(),
    );
    std::fs::create_dir_all(units.join("salve.service.d")).unwrap();
    std::fs::write(units.join("salve.service.d/test-paths.conf"), dropin).unwrap();
    lab.systemctl(&["daemon-reload"]).unwrap();
    let started = lab.systemctl(&["start", "salve.service"]).unwrap();
    let logs = || {
        lab.systemctl(&["status", "--no-pager", "-n", "40", "salve.service"])
            .map(|o| text(&o))
            .unwrap_or_default()
    };
    assert!(
        started.status.success(),
        "salve.service did not start:\n{}\n{}",
        text(&started),
        logs()
    );
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
    lab.systemctl(&["stop", "salve.service"]).unwrap();
}

/// `systemd-analyze security UNIT`'s overall exposure, printed in full for the record.
pub fn exposure(lab: &Lab, unit: &str) -> f64 {
    let out = Command::new("nsenter")
        .args([
            "-t",
            &lab.pid().to_string(),
            "-a",
            "systemd-analyze",
            "security",
            "--no-pager",
            unit,
        ])
        .output()
        .expect("systemd-analyze in the sandbox");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("systemd-analyze security {unit}:\n{report}");
    report
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{report}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}
