//! The agent's own loop (engine, attempts, reload, journal) against a scripted systemd
//! and tokio's paused clock: no root, no bus. Each test plays systemd by hand: it sees
//! every operation the agent asks for, answers it (or does not), and sends the unit
//! changes a real systemd would. What the agent did is read back from its journal.

use salve::agent::{self, AgentOptions, LinkFactory};
use salve::audit::{Entry, Record};
use salve::config::Config;
use salve::engine::{Event, OutcomeResult, UnitObservation};
use salve::policy::ActiveState;
use salve::systemd::{Completion, JobResult, OpRequest, OpResult, UnitOp, UnitOpError};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const PHP: &str = "php.service";
const OTHER: &str = "other.service";

/// A policy named `name` that restarts `unit` when it is failed or inactive.
fn policy_with_cooldown(name: &str, unit: &str, cooldown: &str) -> String {
    format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ unit: {unit} }}\n  trigger:\n    - unit: {{ activeState: [failed, inactive] }}\n  actions:\n    - restart: {{}}\n  guard: {{ cooldown: {cooldown}, maxAttempts: 5, window: 1h, backoff: 1.0 }}\n---\n"
    )
}

fn policy(name: &str, unit: &str) -> String {
    policy_with_cooldown(name, unit, "5s")
}

/// systemd, played by the test.
struct FakeSystemd {
    requests: mpsc::Receiver<OpRequest>,
    events: salve::signal::EventSender,
}

impl FakeSystemd {
    /// The next operation the agent asks for. Watches of units a reload added are
    /// answered here and returned too, so a test can tell that a reload happened.
    async fn next(&mut self) -> OpRequest {
        self.requests
            .recv()
            .await
            .expect("the agent keeps its systemd handle while it runs")
    }

    async fn unit(&self, unit: &str, state: ActiveState) {
        self.events
            .send(Event::Unit(observation(unit, state)))
            .await
            .expect("the agent keeps reading events");
    }
}

fn observation(unit: &str, state: ActiveState) -> UnitObservation {
    UnitObservation {
        name: unit.into(),
        active_state: Some(state),
        sub_state: None,
        unit_file_state: None,
        result: None,
        n_restarts: None,
    }
}

/// Answers an operation as systemd would: the unit's new state is announced first
/// (PropertiesChanged), then the job ends (JobRemoved), on the same ordered channel
/// the agent's outcome follows.
async fn done(systemd: &FakeSystemd, request: OpRequest, state: ActiveState) {
    systemd.unit(&request.unit, state).await;
    let _ = request.reply.send(Ok(OpResult {
        completion: Completion::Job(JobResult::Done),
        state: observation(&request.unit, state),
    }));
}

fn fake_systemd() -> (LinkFactory, oneshot::Receiver<FakeSystemd>) {
    let (give, take) = oneshot::channel();
    let factory: LinkFactory = Box::new(move |_units, events, _shutdown| {
        let (tx, requests) = mpsc::channel(64);
        let _ = give.send(FakeSystemd { requests, events });
        salve::systemd::SystemdHandle::new(tx)
    });
    (factory, take)
}

struct Setup {
    dir: PathBuf,
    policies: PathBuf,
    journal: PathBuf,
}

impl Setup {
    fn new(tag: &str, policies: &str) -> Setup {
        let dir =
            std::env::temp_dir().join(format!("salve-agent-loop-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        let setup = Setup {
            policies: dir.join("policies"),
            journal: dir.join("journal.jsonl"),
            dir,
        };
        setup.write_policies(policies);
        setup
    }

    /// Replaces the policy file the way editors do: a new file renamed over it.
    fn write_policies(&self, text: &str) {
        let tmp = self.dir.join("policies.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.policies.join("p.yaml")).unwrap();
    }

    /// The journal's complete lines (the writer may be midway through the last one).
    fn records(&self) -> Vec<Record> {
        let text = std::fs::read_to_string(&self.journal).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .map(|l| serde_json::from_str(l).expect("journal lines are records"))
            .collect()
    }

    /// Waits on the real clock until the journal holds what `wanted` looks for. The
    /// paused clock does not move meanwhile (the test never lets the runtime idle), so
    /// how long the disk takes changes nothing the agent decides.
    async fn journal_until(&self, what: &str, wanted: impl Fn(&[Record]) -> bool) -> Vec<Record> {
        for _ in 0..10_000 {
            let records = self.records();
            if wanted(&records) {
                return records;
            }
            std::thread::sleep(Duration::from_millis(1));
            tokio::task::yield_now().await;
        }
        panic!("the journal never showed {what}:\n{:#?}", self.records());
    }

    fn options(&self, systemd_link: LinkFactory) -> AgentOptions {
        AgentOptions {
            policy_paths: vec![self.policies.clone()],
            config: Config {
                journal_path: self.journal.clone(),
                // No listener: tests run side by side, and none reads it.
                web: salve::web::WebConfig {
                    listen: None,
                    status_page: false,
                },
                ..Config::default()
            },
            bus: "unix:path=/nonexistent".parse().unwrap(),
            journal_sink: None,
            systemd_link: Some(systemd_link),
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// On the paused clock a test whose agent never asks for what the script awaits would
/// wait for ever, without a timer to fire: past a minute of real time, the test binary
/// stops with the test's name instead.
struct HangGuard(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl HangGuard {
    fn new(name: String) -> HangGuard {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            for _ in 0..600 {
                std::thread::sleep(Duration::from_millis(100));
                if seen.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
            }
            eprintln!("agent loop test {name} hung for a minute of real time");
            std::process::abort();
        });
        HangGuard(done)
    }
}

impl Drop for HangGuard {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs the agent beside the test's script until the script ends; the agent must not.
async fn with_agent<F: std::future::Future<Output = ()>>(
    setup: &Setup,
    script: impl FnOnce(FakeSystemd) -> F,
) {
    let _guard = HangGuard::new(setup.dir.display().to_string());
    let (factory, systemd) = fake_systemd();
    let agent = agent::run(setup.options(factory));
    tokio::pin!(agent);
    let systemd = tokio::select! {
        ended = &mut agent => panic!("the agent stopped before its link started: {ended:?}"),
        systemd = systemd => systemd.expect("the agent starts its link"),
    };
    let script = script(systemd);
    tokio::select! {
        ended = agent => panic!("the agent stopped during the test: {ended:?}"),
        () = script => {}
    }
}

fn intents(records: &[Record], policy: &str) -> Vec<(u64, u32)> {
    records
        .iter()
        .filter(|r| r.policy == policy)
        .filter_map(|r| match r.entry {
            Entry::Intent { id, attempt, .. } => Some((id, attempt)),
            _ => None,
        })
        .collect()
}

fn skips(records: &[Record], reason: &str) -> usize {
    records
        .iter()
        .filter(|r| matches!(&r.entry, Entry::Skip { reason: why, .. } if why == reason))
        .count()
}

fn outcomes(records: &[Record], policy: &str) -> Vec<(u64, OutcomeResult, Option<String>)> {
    records
        .iter()
        .filter(|r| r.policy == policy)
        .filter_map(|r| match &r.entry {
            Entry::Outcome {
                id, result, error, ..
            } => Some((*id, *result, error.clone())),
            _ => None,
        })
        .collect()
}

/// The restart the agent asks for after a crash, unanswered yet.
async fn restart_after_crash(systemd: &mut FakeSystemd, unit: &str) -> OpRequest {
    systemd.unit(unit, ActiveState::Failed).await;
    let request = systemd.next().await;
    assert_eq!(
        (request.unit.as_str(), &request.op),
        (unit, &UnitOp::Restart)
    );
    request
}

/// Rewrites the policies and waits for the agent to have reloaded them: the new set
/// names `OTHER`, which the agent then asks systemd to watch.
async fn reload_adding_other(setup: &Setup, systemd: &mut FakeSystemd, policies: &str) {
    setup.write_policies(policies);
    let watch = systemd.next().await;
    assert_eq!((watch.unit.as_str(), &watch.op), (OTHER, &UnitOp::Watch));
    done(systemd, watch, ActiveState::Active).await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_is_restarted_once_and_both_ends_are_journalled() {
    // No cooldown: only the in-flight rule keeps a second restart from starting.
    let setup = Setup::new("crash", &policy_with_cooldown("p", PHP, "0s"));
    let setup = &setup;
    with_agent(setup, |mut systemd| async move {
        let restart = restart_after_crash(&mut systemd, PHP).await;
        // The restart's own transitions, which match the trigger, are not a new crash.
        systemd.unit(PHP, ActiveState::Deactivating).await;
        systemd.unit(PHP, ActiveState::Inactive).await;
        systemd.unit(PHP, ActiveState::Activating).await;
        systemd.unit(PHP, ActiveState::Failed).await;
        done(&systemd, restart, ActiveState::Active).await;
        let records = setup
            .journal_until("the outcome", |r| !outcomes(r, "p").is_empty())
            .await;
        assert_eq!(intents(&records, "p"), [(1, 1)]);
        assert_eq!(outcomes(&records, "p")[0].1, OutcomeResult::Ok);
        assert_eq!(skips(&records, "in_flight"), 2, "{records:#?}");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_during_an_attempt_keeps_its_outcome_and_its_guard() {
    let setup = Setup::new("reload", &policy("p", PHP));
    let setup = &setup;
    with_agent(setup, |mut systemd| async move {
        let restart = restart_after_crash(&mut systemd, PHP).await;
        // Renamed while its restart runs, and a policy on another unit added.
        let renamed = policy("q", PHP) + &policy("r", OTHER);
        reload_adding_other(setup, &mut systemd, &renamed).await;
        done(&systemd, restart, ActiveState::Active).await;
        let records = setup
            .journal_until("the outcome of p's attempt", |r| {
                !outcomes(r, "p").is_empty()
            })
            .await;
        assert_eq!(
            (outcomes(&records, "p")[0].0, outcomes(&records, "p")[0].1),
            (1, OutcomeResult::Ok),
            "reported under the name it ran as"
        );
        // The next crash is the renamed policy's, and its guard remembers attempt 1.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let restart = restart_after_crash(&mut systemd, PHP).await;
        done(&systemd, restart, ActiveState::Active).await;
        let records = setup
            .journal_until("q's outcome", |r| !outcomes(r, "q").is_empty())
            .await;
        assert_eq!(intents(&records, "q"), [(2, 2)], "{records:#?}");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_outcome_after_its_policy_was_removed_is_journalled_and_nothing_more_runs() {
    let setup = Setup::new("removed", &policy("p", PHP));
    let setup = &setup;
    with_agent(setup, |mut systemd| async move {
        let restart = restart_after_crash(&mut systemd, PHP).await;
        reload_adding_other(setup, &mut systemd, &policy("r", OTHER)).await;
        done(&systemd, restart, ActiveState::Failed).await;
        let records = setup
            .journal_until("the outcome of the removed policy's attempt", |r| {
                !outcomes(r, "p").is_empty()
            })
            .await;
        assert_eq!(outcomes(&records, "p")[0].0, 1);
        // No policy names php.service any more: a crash there is nobody's business,
        // while the other unit is still looked after.
        systemd.unit(PHP, ActiveState::Failed).await;
        let restart = restart_after_crash(&mut systemd, OTHER).await;
        done(&systemd, restart, ActiveState::Active).await;
        let records = setup
            .journal_until("r's outcome", |r| !outcomes(r, "r").is_empty())
            .await;
        assert_eq!(intents(&records, "p").len(), 1, "{records:#?}");
        assert_eq!(intents(&records, "r"), [(2, 1)]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_dbus_loss_during_an_attempt_fails_it_and_the_next_crash_is_healed() {
    let setup = Setup::new("dbus-loss", &policy("p", PHP));
    let setup = &setup;
    with_agent(setup, |mut systemd| async move {
        let restart = restart_after_crash(&mut systemd, PHP).await;
        // The link drops the request, as it does when the bus goes away mid-job.
        let _ = restart.reply.send(Err(UnitOpError::Dropped));
        let records = setup
            .journal_until("the failed outcome", |r| !outcomes(r, "p").is_empty())
            .await;
        let (id, result, error) = outcomes(&records, "p")[0].clone();
        assert_eq!((id, result), (1, OutcomeResult::Failed));
        assert!(
            error.unwrap_or_default().contains("dropped"),
            "{records:#?}"
        );
        // After reconnecting the link reads the unit again: still failed. Once the
        // cooldown has passed, the agent acts again.
        systemd.unit(PHP, ActiveState::Failed).await;
        let restart = systemd.next().await;
        assert_eq!(restart.op, UnitOp::Restart);
        done(&systemd, restart, ActiveState::Active).await;
        let records = setup
            .journal_until("the second outcome", |r| outcomes(r, "p").len() == 2)
            .await;
        assert_eq!(intents(&records, "p"), [(1, 1), (2, 2)]);
        assert_eq!(outcomes(&records, "p")[1].1, OutcomeResult::Ok);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_job_that_never_ends_times_out_and_is_journalled_as_timed_out() {
    let setup = Setup::new("timeout", &policy("p", PHP));
    let setup = &setup;
    with_agent(setup, |mut systemd| async move {
        // Held and never answered: the job never ends.
        let _held = restart_after_crash(&mut systemd, PHP).await;
        // Let virtual time run (the test sleeps, the runtime idles and the clock jumps)
        // past the 90 s job timeout, a second at a time.
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let records = setup
            .journal_until("the timed-out outcome", |r| !outcomes(r, "p").is_empty())
            .await;
        let (id, result, error) = outcomes(&records, "p")[0].clone();
        assert_eq!((id, result), (1, OutcomeResult::TimedOut), "{error:?}");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_flood_that_fills_the_event_channel_loses_no_outcome() {
    let setup = Setup::new("flood", &policy("p", PHP));
    let setup = &setup;
    with_agent(setup, |mut systemd| async move {
        let restart = restart_after_crash(&mut systemd, PHP).await;
        // Far more events than the channel holds, all saying the unit is still failed,
        // sent while the attempt runs; the outcome then travels the same channel.
        for _ in 0..20_000 {
            systemd.unit(PHP, ActiveState::Failed).await;
        }
        done(&systemd, restart, ActiveState::Active).await;
        let records = setup
            .journal_until("the outcome", |r| !outcomes(r, "p").is_empty())
            .await;
        assert_eq!(outcomes(&records, "p")[0].1, OutcomeResult::Ok);
        // One episode of a failed unit under an attempt in flight: one attempt, and
        // one in-flight record, not twenty thousand.
        assert_eq!(intents(&records, "p"), [(1, 1)]);
        assert_eq!(skips(&records, "in_flight"), 1, "{records:#?}");
        // And the agent still heals.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let restart = restart_after_crash(&mut systemd, PHP).await;
        done(&systemd, restart, ActiveState::Active).await;
        setup
            .journal_until("the second outcome", |r| outcomes(r, "p").len() == 2)
            .await;
    })
    .await;
}

fn controls(records: &[Record]) -> Vec<(String, String, Option<String>)> {
    records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Control {
                command,
                by,
                reason,
                ..
            } => Some((command.clone(), by.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_pause_in_the_policys_spec_holds_it_back_until_the_field_goes() {
    let until =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3600));
    let paused = policy("p", PHP).replace(
        "---\n",
        &format!("  pause: {{ until: \"{until}\", reason: \"deploy 42\" }}\n---\n"),
    );
    let setup = Setup::new("spec-pause", &paused);
    let setup = &setup;
    with_agent(setup, |mut systemd| async move {
        let records = setup
            .journal_until("the spec's pause", |r| !controls(r).is_empty())
            .await;
        assert_eq!(
            controls(&records),
            [(
                "pause".to_string(),
                "spec.pause".to_string(),
                Some("deploy 42".to_string())
            )]
        );
        systemd.unit(PHP, ActiveState::Failed).await;
        let records = setup
            .journal_until("a paused skip", |r| skips(r, "paused") == 1)
            .await;
        assert!(intents(&records, "p").is_empty(), "{records:#?}");
        // The field goes: the pause is lifted, journalled, and the policy acts at once
        // on the unit still failed.
        setup.write_policies(&policy("p", PHP));
        let restart = systemd.next().await;
        assert_eq!(
            (restart.unit.as_str(), &restart.op),
            (PHP, &UnitOp::Restart)
        );
        done(&systemd, restart, ActiveState::Active).await;
        let records = setup
            .journal_until("the outcome", |r| !outcomes(r, "p").is_empty())
            .await;
        let said = controls(&records);
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!(
            (said[1].0.as_str(), said[1].1.as_str()),
            ("resume", "spec.pause")
        );
        assert_eq!(intents(&records, "p"), [(1, 1)]);
    })
    .await;
}
