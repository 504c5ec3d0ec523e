//! What every end-to-end test needs: a lab, an agent process, a webhook receiver, and
//! patient assertions with deadlines.

use salve::audit::{read_journal, Entry, Record};
use salve::lab::{Lab, LabConfig, LabGuard};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// This binary's own fixed port, distinct from the lab tests' and the demo's.
pub const LAB_PORT: u16 = 18490;

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Env {
    pub lab: LabGuard,
    pub dir: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl Env {
    pub fn lab(&self) -> &Lab {
        &self.lab
    }
}

/// Boots a fresh lab for one test, or explains why it cannot (and fails under CI).
pub fn lab(test: &str) -> Option<Env> {
    lab_of(test, salve::lab::Topology::Single)
}

/// `lab`, of two nodes behind a load balancer with etcd beside them.
pub fn lab_of(test: &str, topology: salve::lab::Topology) -> Option<Env> {
    let lock = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if salve::lab::check_root().is_err() {
        let why = "end-to-end tests need root (they boot systemd in a PID namespace)";
        assert!(
            std::env::var_os("CI").is_none(),
            "{why}; under CI they must run"
        );
        eprintln!("skipping {test}: {why}");
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/e2e")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    let config = LabConfig {
        dir: dir.join("lab"),
        http_port: LAB_PORT,
        topology,
    };
    let lab = Lab::up(&config).unwrap_or_else(|e| panic!("lab up failed: {e}"));
    Some(Env {
        lab: LabGuard::new(lab),
        dir,
        _lock: lock,
    })
}

/// A running `salve agent`, stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Agent {
    runner: Runner,
    pub log: PathBuf,
    pub journal: PathBuf,
}

/// How the agent runs: a process of this test, or the shipped unit inside the lab.
enum Runner {
    Process(Child),
    /// The agent under a wrapper of this test's (strace): the wrapper is our child,
    /// the agent its child, stopped by its own PID.
    Wrapped {
        wrapper: Child,
        agent_pid: u32,
    },
    /// `salve.service` in the sandbox whose systemd has this pid.
    Unit {
        lab_pid: u32,
    },
}

/// The lab's /etc/systemd/system, reached from the host through the sandbox's root.
fn lab_units(env: &Env) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root/etc/systemd/system", env.lab().pid()))
}

pub fn shipped(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).expect(file)
}

impl Agent {
    /// Runs the agent as production does: `deploy/systemd/salve.service`, as the
    /// `salve` user, started by the lab's systemd, with the shipped drop-ins named in
    /// `dropins` (e.g. `salve.service.d/config-edits.conf`). The only change is a test
    /// drop-in of paths: the binary under test, its policies, a state directory in the
    /// test's folder (StateDirectory= would make /var/lib/salve, which the sandbox
    /// shares with the host), and the lab's own directory in place of /etc/nginx and
    /// /etc/php. User, capabilities and every hardening line stay as shipped.
    pub fn start_unit(env: &Env, policies: &Path, dropins: &[&str]) -> Agent {
        Agent::start_unit_as(env, policies, dropins, false)
    }

    /// `start_unit`, with the shipped control socket (deploy/systemd/salve.socket)
    /// started first, so systemd passes it to the agent.
    pub fn start_unit_with_socket(env: &Env, policies: &Path, dropins: &[&str]) -> Agent {
        Agent::start_unit_as(env, policies, dropins, true)
    }

    fn start_unit_as(env: &Env, policies: &Path, dropins: &[&str], socket: bool) -> Agent {
        let lab = env.lab();
        let (uid, gid) = lab.salve_ids().expect("the lab's salve user");
        let state = env.dir.join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        std::os::unix::fs::chown(&state, Some(uid), Some(gid)).expect("chown state dir");
        let log = env.dir.join("agent.log");
        let journal = state.join("journal.jsonl");
        let _ = std::fs::remove_file(&log);
        let units = lab_units(env);
        std::fs::write(
            units.join("salve.service"),
            shipped("deploy/systemd/salve.service"),
        )
        .expect("install salve.service in the lab");
        let dir = units.join("salve.service.d");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("drop-in dir");
        for dropin in dropins {
            let name = Path::new(dropin).file_name().expect("drop-in name");
            std::fs::write(dir.join(name), shipped(&format!("deploy/systemd/{dropin}")))
                .expect("install a shipped drop-in");
        }
        let paths = format!(
            "[Service]\nStateDirectory=\nReadWritePaths=\nReadWritePaths={state} {labdir}\nEnvironment=RUST_LOG=salve=debug\nStandardOutput=append:{log}\nStandardError=append:{log}\nExecStart=\nExecStart={bin} agent --policies {policies} --journal {journal}\n",
            state = state.display(),
            labdir = lab.dir().display(),
            log = log.display(),
            bin = env!("CARGO_BIN_EXE_salve"),
            policies = policies.display(),
            journal = journal.display(),
        );
        // Sorts after every shipped drop-in, so its resets win.
        std::fs::write(dir.join("zz-test-paths.conf"), paths).expect("test drop-in");
        if socket {
            std::fs::write(
                units.join("salve.socket"),
                shipped("deploy/systemd/salve.socket"),
            )
            .expect("install salve.socket in the lab");
        }
        lab.systemctl(&["daemon-reload"]).expect("daemon-reload");
        if socket {
            let listening = lab
                .systemctl(&["start", "salve.socket"])
                .expect("start salve.socket");
            assert!(
                listening.status.success(),
                "salve.socket did not start: {}",
                String::from_utf8_lossy(&listening.stderr)
            );
        }
        let started = lab
            .systemctl(&["start", "salve.service"])
            .expect("start salve.service");
        assert!(
            started.status.success(),
            "salve.service did not start: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let agent = Agent {
            runner: Runner::Unit { lab_pid: lab.pid() },
            log,
            journal,
        };
        agent.wait_for_log("watching systemd units", Duration::from_secs(10));
        agent
    }

    pub fn start(env: &Env, policies: &Path, extra: &[&str]) -> Agent {
        Agent::start_wrapped(env, policies, extra, &[])
    }

    /// `start`, with the agent run by `wrapper…` (e.g. `strace -f -o FILE`).
    pub fn start_wrapped(env: &Env, policies: &Path, extra: &[&str], wrapper: &[&str]) -> Agent {
        Agent::launch(env, "agent", policies, extra, wrapper)
    }

    /// `start`, for one of several agents on the lab (one per node): its log and
    /// journal are `NAME.log` and `NAME.jsonl` in the test's directory.
    pub fn start_named(env: &Env, name: &str, policies: &Path, extra: &[&str]) -> Agent {
        Agent::launch(env, name, policies, extra, &[])
    }

    fn launch(env: &Env, name: &str, policies: &Path, extra: &[&str], wrapper: &[&str]) -> Agent {
        let (log, journal) = if name == "agent" {
            (env.dir.join("agent.log"), env.dir.join("journal.jsonl"))
        } else {
            (
                env.dir.join(format!("{name}.log")),
                env.dir.join(format!("{name}.jsonl")),
            )
        };
        let out = std::fs::File::create(&log).expect("agent log");
        let err = out.try_clone().expect("agent log");
        let bus = env.lab().bus_address();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_salve"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_salve")),
        };
        let child = command
            .args(["agent", "--policies"])
            .arg(policies)
            .args(["--bus", &bus, "--journal"])
            .arg(&journal)
            .args(extra)
            .env("RUST_LOG", "salve=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start salve agent");
        let runner = if wrapper.is_empty() {
            Runner::Process(child)
        } else {
            let wrapper_pid = child.id();
            let mut agent_pid = None;
            wait_until(Duration::from_secs(10), || {
                agent_pid = std::fs::read_to_string(format!(
                    "/proc/{wrapper_pid}/task/{wrapper_pid}/children"
                ))
                .ok()
                .and_then(|c| c.split_whitespace().next()?.parse().ok());
                agent_pid.is_some()
            });
            Runner::Wrapped {
                wrapper: child,
                agent_pid: agent_pid.expect("the wrapper started the agent"),
            }
        };
        let agent = Agent {
            runner,
            log,
            journal,
        };
        agent.wait_for_log("watching systemd units", Duration::from_secs(20));
        agent
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent has watched its units a second time: it lost the bus and
    /// reconnected.
    pub fn wait_for_reconnect(&self, within: Duration) {
        let reconnected = wait_until(within, || {
            self.log_text().matches("watching systemd units").count() >= 2
        });
        assert!(reconnected, "agent did not reconnect\n{}", self.log_text());
    }

    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let found = wait_until(within, || self.log_text().contains(needle));
        assert!(
            found,
            "agent log never said {needle:?} within {within:?}:\n{}",
            self.log_text()
        );
    }

    pub fn records(&self) -> Vec<Record> {
        let read = read_journal(&self.journal).expect("read journal");
        assert!(
            read.problems.is_empty(),
            "journal problems: {:?}",
            read.problems
        );
        read.records
    }

    pub fn count(&self, kind: &str) -> usize {
        self.records()
            .iter()
            .filter(|r| r.entry.kind() == kind)
            .count()
    }

    /// Kills the agent as the OOM killer or a watchdog would: SIGKILL, by this child's
    /// own PID (or through the lab's systemd), nothing finished or journalled.
    pub fn kill(mut self) -> String {
        match &mut self.runner {
            Runner::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Runner::Unit { lab_pid } => {
                let _ = sandbox_systemctl(*lab_pid, &["kill", "--signal=KILL", "salve.service"]);
            }
            Runner::Wrapped { wrapper, agent_pid } => {
                signal_pid(*agent_pid, "-KILL");
                let _ = wrapper.wait();
            }
        }
        self.log_text()
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the agent, a process of this test.
    pub fn signal(&self, signal: &str) {
        match &self.runner {
            Runner::Process(child) => signal_pid(child.id(), signal),
            Runner::Wrapped { agent_pid, .. } => signal_pid(*agent_pid, signal),
            Runner::Unit { .. } => panic!("signal a unit through the lab's systemctl"),
        }
    }

    /// Stops the agent the way systemd would, and waits for it.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.log_text()
    }

    fn terminate(&mut self) {
        let child = match &mut self.runner {
            Runner::Process(child) => child,
            Runner::Unit { lab_pid } => {
                let _ = sandbox_systemctl(*lab_pid, &["stop", "salve.service"]);
                return;
            }
            Runner::Wrapped { wrapper, agent_pid } => {
                if let Ok(Some(_)) = wrapper.try_wait() {
                    return;
                }
                // The agent by its own PID (a wrapper that dies first would leave it
                // running); the wrapper ends with it.
                signal_pid(*agent_pid, "-TERM");
                if !wait_until(Duration::from_secs(10), || {
                    matches!(wrapper.try_wait(), Ok(Some(_)))
                }) {
                    signal_pid(*agent_pid, "-KILL");
                    let _ = wrapper.kill();
                    let _ = wrapper.wait();
                }
                return;
            }
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SIGTERM by this child's own PID: it is ours.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `kill -SIG PID` for a process this test started.
fn signal_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// systemctl inside the sandbox (the lab may already be down: then nothing runs).
fn sandbox_systemctl(lab_pid: u32, args: &[&str]) -> Option<std::process::ExitStatus> {
    Command::new("nsenter")
        .args(["-t", &lab_pid.to_string(), "-a", "systemctl"])
        .args(args)
        .env("SYSTEMCTL_SKIP_SYSV", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Stops a process this test started, by its PID: SIGTERM, then SIGKILL after 10 s.
pub fn stop_child(child: &mut Child) {
    signal_pid(child.id(), "-TERM");
    if !wait_until(Duration::from_secs(10), || {
        matches!(child.try_wait(), Ok(Some(_)))
    }) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One GET with a short timeout; `None` when nothing answered.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    http_status_within(port, path, Duration::from_secs(2))
}

/// One GET that waits up to `timeout` for the status line.
pub fn http_status_within(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).ok()?;
    status_line.split_whitespace().nth(1)?.parse().ok()
}

pub fn write_policy(dir: &Path, file: &str, yaml: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("policy dir");
    let path = dir.join(file);
    std::fs::write(&path, yaml).expect("write policy");
    path
}

/// Counts POSTs to a local webhook and keeps their bodies.
pub struct Webhook {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    pub bodies: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let port = listener.local_addr().expect("webhook addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (h, b) = (Arc::clone(&hits), Arc::clone(&bodies));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let text = read_request(&mut stream);
                if text.starts_with("POST") {
                    h.fetch_add(1, Ordering::SeqCst);
                    b.lock().unwrap_or_else(|e| e.into_inner()).push(text);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Webhook {
            url: format!("http://127.0.0.1:{port}/hooks/salve"),
            hits,
            bodies,
        }
    }

    pub fn count(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// One request, head and body: read until its `Content-Length` is in (a sender may
/// write the two apart), at most 1 MiB.
fn read_request(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let wanted = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= wanted {
                break;
            }
        }
        if raw.len() > 1 << 20 {
            break;
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

pub fn intents(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| matches!(r.entry, Entry::Intent { .. }))
        .collect()
}

pub fn unit_state(lab: &Lab, unit: &str, property: &str) -> String {
    let out = lab
        .systemctl(&["show", "-p", property, "--value", unit])
        .expect("systemctl show");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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

/// One GET to 127.0.0.1:`port`: the status and the whole body, `None` when nothing
/// answered within two seconds.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_whole(port, path).map(|(status, _, body)| (status, body))
}

/// `http_get`, with the response's head (status line and headers) too.
pub fn http_get_whole(port: u16, path: &str) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    // Bodies here are small and not chunked when the server closes (HTTP/1.1 with
    // Connection: close); a chunked one is decoded well enough for JSON.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, head.to_string(), body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
