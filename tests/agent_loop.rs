//! The agent's own loop (engine, attempts, reload, journal) against a scripted systemd
//! and tokio's paused clock: no root, no bus. Each test plays systemd by hand: it sees
//! every operation the agent asks for, answers it (or does not), and sends the unit
//! changes a real systemd would. What the agent did is read back from its journal.

use salve::agent::{self, AgentOptions, LinkFactory};
use salve::audit::{Entry, Record};
use salve::config::Config;
use salve::engine::{Event, OutcomeResult, UnitObservation};
use salve::policy::ActiveState;
use salve::signal::systemd::{Completion, JobResult, OpRequest, OpResult, UnitOp, UnitOpError};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const PHP: &str = "php.service";
const OTHER: &str = "other.service";

/// A policy named `name` that restarts `unit` when it fails, with a cooldown long
/// enough that no second attempt comes unasked.
fn policy(name: &str, unit: &str) -> String {
    format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ unit: {unit} }}\n  trigger:\n    - unit: {{ activeState: [failed] }}\n  actions:\n    - restart: {{}}\n  guard: {{ cooldown: 5s, maxAttempts: 5, window: 1h, backoff: 1.0 }}\n---\n"
    )
}

/// systemd, played by the test.
struct FakeSystemd {
    requests: mpsc::Receiver<OpRequest>,
    events: mpsc::Sender<Event>,
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

fn done(request: OpRequest, state: ActiveState) {
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
        salve::signal::systemd::SystemdHandle::new(tx)
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

    fn records(&self) -> Vec<Record> {
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("journal lines are records"))
            .collect()
    }

    /// Waits (on the real clock, while the paused one moves on in steps) until the
    /// journal holds what `wanted` looks for.
    async fn journal_until(&self, what: &str, wanted: impl Fn(&[Record]) -> bool) -> Vec<Record> {
        for _ in 0..4_000 {
            let records = self.records();
            if wanted(&records) {
                return records;
            }
            std::thread::sleep(Duration::from_millis(1));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the journal never showed {what}:\n{:#?}", self.records());
    }

    fn options(&self, systemd_link: LinkFactory) -> AgentOptions {
        AgentOptions {
            policy_paths: vec![self.policies.clone()],
            config: Config {
                journal_path: self.journal.clone(),
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
    done(watch, ActiveState::Active);
}

#[tokio::test(start_paused = true)]
async fn a_crash_is_restarted_once_and_both_ends_are_journalled() {
    let setup = Setup::new("crash", &policy("p", PHP));
    let setup = &setup;
    with_agent(setup, |mut systemd| async move {
        let restart = restart_after_crash(&mut systemd, PHP).await;
        // The restart's own transitions are not a second crash.
        systemd.unit(PHP, ActiveState::Deactivating).await;
        systemd.unit(PHP, ActiveState::Activating).await;
        done(restart, ActiveState::Active);
        systemd.unit(PHP, ActiveState::Active).await;
        let records = setup
            .journal_until("the outcome", |r| !outcomes(r, "p").is_empty())
            .await;
        assert_eq!(intents(&records, "p"), [(1, 1)]);
        assert_eq!(outcomes(&records, "p")[0].1, OutcomeResult::Ok);
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
        done(restart, ActiveState::Active);
        let records = setup
            .journal_until("the outcome of p's attempt", |r| {
                !outcomes(r, "p").is_empty()
            })
            .await;
        assert_eq!(
            outcomes(&records, "p")[0].0,
            1,
            "reported under the name it ran as"
        );
        // The next crash is the renamed policy's, and its guard remembers attempt 1.
        systemd.unit(PHP, ActiveState::Active).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        let restart = restart_after_crash(&mut systemd, PHP).await;
        done(restart, ActiveState::Active);
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
        done(restart, ActiveState::Failed);
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
        done(restart, ActiveState::Active);
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
        done(restart, ActiveState::Active);
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
        // Far more events than the channel holds, sent while the attempt runs; the
        // outcome travels the same channel.
        let events = systemd.events.clone();
        let flood = async move {
            for i in 0..20_000 {
                let state = if i % 2 == 0 {
                    ActiveState::Activating
                } else {
                    ActiveState::Deactivating
                };
                events
                    .send(Event::Unit(observation(PHP, state)))
                    .await
                    .expect("the agent keeps reading events");
            }
        };
        let answer = async move {
            done(restart, ActiveState::Active);
        };
        tokio::join!(flood, answer);
        systemd.unit(PHP, ActiveState::Active).await;
        let records = setup
            .journal_until("the outcome", |r| !outcomes(r, "p").is_empty())
            .await;
        assert_eq!(outcomes(&records, "p")[0].1, OutcomeResult::Ok);
        // The attempt's own transitions decided nothing.
        assert_eq!(intents(&records, "p"), [(1, 1)]);
        let skips = records
            .iter()
            .filter(|r| matches!(r.entry, Entry::Skip { .. }))
            .count();
        assert_eq!(skips, 0, "{records:#?}");
        // And the agent still heals.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let restart = restart_after_crash(&mut systemd, PHP).await;
        done(restart, ActiveState::Active);
        setup
            .journal_until("the second outcome", |r| outcomes(r, "p").len() == 2)
            .await;
    })
    .await;
}
