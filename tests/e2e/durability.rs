//! Durability, proven from the outside: the real agent runs under Debian's strace, and
//! its system calls show that every journal record is followed by its own fdatasync
//! before the next record, and that the action an intent announces (an `exec` of
//! /bin/true) starts only after the intent's fdatasync returned. The same check run on
//! the trace with the syncs taken out fails, so the test would see a missing sync.

use crate::harness::*;
use salve::lab::Scenario;
use std::time::Duration;

#[derive(Debug, PartialEq)]
struct Durability {
    records: usize,
    synced_before_the_action: bool,
}

/// Walks an `strace -f -y` trace in order. Errors say which rule broke.
fn check_trace(trace: &str, journal: &str, program: &str) -> Result<Durability, String> {
    let on_journal = |line: &str| line.contains(&format!("{journal}>"));
    let mut records = 0;
    // A record written and not yet synced.
    let mut unsynced: Option<String> = None;
    let mut intent_synced = false;
    let mut action_after_sync = None;
    // Per pid, the journal call left unfinished by a line of another thread.
    let mut unfinished: std::collections::HashMap<String, String> = Default::default();
    for line in trace.lines() {
        let pid = line.split_whitespace().next().unwrap_or("").to_string();
        let body = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let (call, done) = if let Some(rest) = body.strip_prefix("<... ") {
            let name = rest.split_whitespace().next().unwrap_or("").to_string();
            match unfinished.remove(&pid) {
                Some(call) if call == name => (call, true),
                _ => continue,
            }
        } else {
            let name = body.split('(').next().unwrap_or("").to_string();
            let is_action = name == "execve" && body.contains(&format!("\"{program}\""));
            if !(on_journal(body) || is_action) {
                continue;
            }
            if body.ends_with("<unfinished ...>") {
                if name != "execve" {
                    unfinished.insert(pid, name.clone());
                }
                // A write starts the record; an execve starts the action.
                let started = name_starts_effect(&name);
                (name, started)
            } else {
                (name, true)
            }
        };
        match call.as_str() {
            "write" if done && !body.starts_with("<...") => {
                if let Some(previous) = unsynced.take() {
                    return Err(format!(
                        "a record was written before the last one was synced: {previous}"
                    ));
                }
                records += 1;
                let is_intent = body.contains("\\\"kind\\\":\\\"intent\\\"");
                unsynced = Some(if is_intent {
                    "intent".into()
                } else {
                    "record".into()
                });
                if is_intent {
                    intent_synced = false;
                }
            }
            "fdatasync" | "fsync" if done => {
                if unsynced.as_deref() == Some("intent") {
                    intent_synced = true;
                }
                unsynced = None;
            }
            "execve" if action_after_sync.is_none() => action_after_sync = Some(intent_synced),
            _ => {}
        }
    }
    if let Some(last) = unsynced {
        return Err(format!("the last {last} was never synced"));
    }
    match action_after_sync {
        None => Err(format!("{program} never ran")),
        Some(false) => Err(format!("{program} ran before its intent was synced")),
        Some(true) if records == 0 => Err("no journal record was written".into()),
        Some(true) => Ok(Durability {
            records,
            synced_before_the_action: true,
        }),
    }
}

/// An unfinished write or execve has already begun its effect.
fn name_starts_effect(name: &str) -> bool {
    name == "write" || name == "execve"
}

#[test]
fn every_record_is_synced_and_the_action_waits_for_its_intent() {
    let Some(env) = lab("durability") else { return };
    let lab = env.lab();
    let policies = env.dir.join("policies");
    write_policy(
        &policies,
        "down.yaml",
        r#"apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata: { name: php-fpm-down }
spec:
  target: { unit: php8.2-fpm.service }
  trigger:
    - unit: { activeState: [failed, inactive] }
  actions:
    - exec: { command: [/bin/true] }
    - resetFailed: {}
    - restart: {}
  guard: { cooldown: 10s, maxAttempts: 3, window: 10m }
"#,
    );
    let trace_path = env.dir.join("strace.txt");
    let trace_arg = trace_path.display().to_string();
    let agent = Agent::start_wrapped(
        &env,
        &policies,
        &[],
        &[
            "strace",
            "-f",
            "-qq",
            "-y",
            "-s",
            "256",
            "-e",
            "trace=write,fdatasync,fsync,execve",
            "-o",
            &trace_arg,
        ],
    );
    lab.break_scenario(Scenario::Crash).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || agent.count("outcome") >= 1),
        "no outcome\n{}",
        agent.log_text()
    );
    let journal = agent.journal.display().to_string();
    agent.stop();
    let trace = std::fs::read_to_string(&trace_path).unwrap();
    let found = check_trace(&trace, &journal, "/bin/true")
        .unwrap_or_else(|e| panic!("{e}\n--- trace ---\n{trace}"));
    assert!(found.records >= 2, "{found:?}");
    eprintln!("{} journal records, each synced before the next; /bin/true ran after its intent's fdatasync", found.records);
    // Without the syncs the same trace fails the check.
    let unsynced: String = trace
        .lines()
        .filter(|l| !l.contains("fdatasync(") && !l.contains("fdatasync resumed"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(check_trace(&unsynced, &journal, "/bin/true").is_err());
}
