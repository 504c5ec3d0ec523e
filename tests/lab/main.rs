//! The lab against real systemd, nginx and PHP-FPM. Needs root and the packages that
//! scripts/install-lab-packages.sh installs. Under CI (env CI set) a test that cannot
//! run fails; elsewhere it skips and says why.
//!
//! All tests share one port and take one lock: a second sandbox in the same cgroup is
//! refused by design, and nginx could not bind anyway.

use salve::lab::{
    check_packages, check_root, Lab, LabConfig, LabError, LabGuard, LbKind, Probe, Scenario,
    Topology, PHP_FPM_UNIT,
};
mod host_writes;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

static LAB_LOCK: Mutex<()> = Mutex::new(());
const PORT: u16 = 18480;

fn lab_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/lab-tests")
        .join(name)
}

/// The lock if this machine can run a lab; `None` (test skipped) otherwise, except
/// under CI, where not being able to run is a failure.
fn lab_lock() -> Option<MutexGuard<'static, ()>> {
    if let Err(reason) = check_root().and_then(|()| check_packages()) {
        if std::env::var_os("CI").is_some() {
            panic!("lab tests must run under CI: {reason}");
        }
        eprintln!("skipping lab test: {reason}");
        return None;
    }
    Some(LAB_LOCK.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Takes down whatever an aborted earlier run left in `dir`.
fn clear(dir: &Path) {
    if let Ok(old) = Lab::attach(dir) {
        old.down().unwrap();
    }
    Lab::remove_stale_record(dir).unwrap();
}

/// A running lab; the guard is declared first so it is dropped (taken down) before
/// the lock is released.
struct Running {
    lab: LabGuard,
    _lock: MutexGuard<'static, ()>,
}

fn start(name: &str) -> Option<Running> {
    let lock = lab_lock()?;
    let dir = lab_dir(name);
    clear(&dir);
    let lab = Lab::up(&LabConfig {
        dir,
        http_port: PORT,
        topology: Default::default(),
    })
    .unwrap();
    Some(Running {
        lab: LabGuard::new(lab),
        _lock: lock,
    })
}

fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn file_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Cgroup directories on the host, a few levels deep.
fn host_cgroups() -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.insert(entry.path());
                if depth > 0 {
                    walk(&entry.path(), depth - 1, out);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(Path::new("/sys/fs/cgroup"), 4, &mut out);
    out
}

/// Kernel log lines a sandboxed systemd, journald, nginx or PHP-FPM would write.
fn kernel_log_lines_from_lab_programs() -> Option<usize> {
    let output = Command::new("dmesg").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(
        text.lines()
            .filter(|l| {
                ["systemd", "journald", "nginx", "php-fpm"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .count(),
    )
}

/// Marker files in the host's /tmp and /var/tmp, removed whatever the test's outcome.
struct Markers(Vec<PathBuf>);

impl Drop for Markers {
    fn drop(&mut self) {
        for marker in &self.0 {
            let _ = fs::remove_file(marker);
        }
    }
}

/// The filesystems a lab could reach on the host: every one that holds one of these.
const HOST_ROOTS: &[&str] = &[
    "/", "/dev", "/run", "/etc", "/var", "/var/lib", "/var/log", "/tmp", "/var/tmp", "/root",
    "/home", "/srv", "/opt", "/usr", "/boot",
];

/// A writer that is not the lab's: started before the watch (so not in the test's
/// process lineage), it keeps writing under /tmp as a shell or a tool harness would.
struct UnrelatedWriter {
    child: std::process::Child,
    file: PathBuf,
}

impl UnrelatedWriter {
    fn start(tag: &str) -> UnrelatedWriter {
        let file = PathBuf::from("/tmp").join(format!("{tag}.unrelated"));
        let script = format!(
            "while :; do echo $$ > {f}.new && mv {f}.new {f}; sleep 0.05; done",
            f = file.display()
        );
        let child = Command::new("/bin/sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        UnrelatedWriter { child, file }
    }
}

impl Drop for UnrelatedWriter {
    fn drop(&mut self) {
        // Ours, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.file);
        let _ = fs::remove_file(self.file.with_extension("unrelated.new"));
    }
}

#[test]
fn lab_up_serves_ping_and_down_leaves_the_host_untouched() {
    host_safety("host-safety", Topology::Single);
}

/// The lab of two nodes runs more of Debian's programs (a second pool, haproxy, etcd
/// with its data directory): none of them writes outside the lab's directory either.
#[test]
fn a_lab_of_two_nodes_behind_haproxy_with_etcd_leaves_the_host_untouched() {
    host_safety("host-safety-fleet", Topology::Fleet(LbKind::Haproxy));
}

fn host_safety(name: &str, topology: Topology) {
    let Some(_lock) = lab_lock() else { return };
    let dir = lab_dir(name);
    clear(&dir);
    fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let tag = format!("salve-lab-test-{}", std::process::id());
    let markers = Markers(vec![
        PathBuf::from("/tmp").join(&tag),
        PathBuf::from("/var/tmp").join(&tag),
    ]);
    for marker in &markers.0 {
        fs::write(marker, &tag).unwrap();
    }
    let cgroups_before = host_cgroups();
    let kernel_lines_before = kernel_log_lines_from_lab_programs();
    let unrelated = UnrelatedWriter::start(&tag);
    std::thread::sleep(Duration::from_millis(100));
    let watch = host_writes::HostWrites::start(HOST_ROOTS)
        .expect("the host-safety test needs fanotify filesystem marks and the process connector (root, Linux >= 5.9)");
    eprintln!("host-safety: watching {:?}", watch.filesystems);

    let lab = LabGuard::new(
        Lab::up(&LabConfig {
            dir: dir.clone(),
            http_port: PORT,
            topology,
        })
        .unwrap(),
    );
    let pid = lab.pid();
    assert_eq!(get(PORT, "/ping.php"), (200, "pong\n".to_owned()));
    if let Some(lb) = lab.lb_port() {
        for _ in 0..4 {
            assert_eq!(
                get(lb, "/ping.php"),
                (200, "pong\n".to_owned()),
                "through haproxy"
            );
        }
        let status = lab.status().unwrap();
        assert!(
            status.extra.iter().all(|u| u.active_state == "active"),
            "{status}"
        );
    }
    let status = lab.status().unwrap();
    assert_eq!(status.nginx.active_state, "active", "{status}");
    assert_eq!(status.php_fpm.active_state, "active", "{status}");
    assert_eq!(status.php_fpm.unit_file_state, "enabled", "{status}");
    for marker in &markers.0 {
        assert_eq!(
            file_text(marker),
            tag,
            "{} while the lab runs",
            marker.display()
        );
    }
    // The other direction: a write outside the lab's directory by a process inside the
    // sandbox must be blamed. A canary on the host's filesystem, made from the sandbox's
    // namespaces and removed at once.
    let canary = PathBuf::from(format!("/var/lib/{tag}.canary"));
    let made = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-a", "/bin/touch"])
        .arg(&canary)
        .status()
        .unwrap();
    assert!(made.success());
    let _ = fs::remove_file(&canary);
    lab.down().unwrap();

    let report = watch.finish();
    drop(unrelated);
    assert!(
        report.lost.is_empty(),
        "the watch missed events: {:?}",
        report.lost
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || file_text(Path::new(&format!("/proc/{pid}/comm"))).trim() != "systemd",
        "the sandbox's systemd (pid {pid}) is still running"
    );
    assert!(!dir.join("lab.json").exists());
    for marker in &markers.0 {
        assert_eq!(file_text(marker), tag, "{} after down", marker.display());
    }
    let lab_dir = dir.canonicalize().unwrap_or(dir.clone());
    let outside: Vec<&host_writes::HostWrite> = report
        .by_lab
        .iter()
        .filter(|w| !w.path.starts_with(&lab_dir))
        .collect();
    let canary_seen = outside.iter().any(|w| w.path == canary);
    let unexpected: Vec<String> = outside
        .iter()
        .filter(|w| w.path != canary)
        .map(|w| format!("{} {} by pid {}", w.what, w.path.display(), w.pid))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the lab wrote outside its directory: {unexpected:#?}"
    );
    assert!(
        canary_seen,
        "the sandbox's write of {} was not blamed on the lab: {:#?}",
        canary.display(),
        report.by_lab
    );
    let unrelated_file = PathBuf::from("/tmp").join(format!("{tag}.unrelated"));
    assert!(
        report.by_others.iter().any(|w| w.path == unrelated_file),
        "the watch never saw the unrelated writer (so it could not show it is spared)"
    );
    assert!(
        !report.by_lab.iter().any(|w| w.path == unrelated_file),
        "an unrelated process's write was blamed on the lab"
    );
    eprintln!(
        "host-safety: {} writes by the lab (all inside {} but the canary), {} by other processes, spared",
        report.by_lab.len(),
        lab_dir.display(),
        report.by_others.len()
    );
    if file_text(Path::new("/proc/1/comm")).trim() != "systemd" {
        let left: Vec<_> = host_cgroups()
            .difference(&cgroups_before)
            .cloned()
            .collect();
        assert!(left.is_empty(), "the lab left cgroups: {left:#?}");
    }
    assert_eq!(
        kernel_log_lines_from_lab_programs(),
        kernel_lines_before,
        "the sandbox wrote to the host's kernel log"
    );
}

#[test]
fn crash_scenario_leaves_the_unit_failed_and_nginx_answers_502() {
    let Some(run) = start("crash") else { return };
    let lab = &run.lab;
    lab.break_scenario(Scenario::Crash).unwrap();

    let status = lab.status().unwrap();
    assert_eq!(status.php_fpm.active_state, "failed", "{status}");
    assert_eq!(status.ping, Probe::Status(502), "{status}");
    // The whole pool, workers included, is gone from the sandbox.
    let sandbox_pids = fs::read_link(format!("/proc/{}/ns/pid", lab.pid())).unwrap();
    let survivors: Vec<String> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| fs::read_link(e.path().join("ns/pid")).ok().as_ref() == Some(&sandbox_pids))
        .map(|e| file_text(&e.path().join("comm")).trim().to_owned())
        .filter(|comm| comm.starts_with("php-fpm"))
        .collect();
    assert!(survivors.is_empty(), "{survivors:?}");
    // The socket stays behind after a SIGKILL, so nginx is refused rather than lost.
    assert!(file_text(&lab.nginx_error_log()).contains("(111: Connection refused)"));

    lab.repair().unwrap();
    assert_eq!(lab.probe_ping(), Probe::Status(200));
}

#[test]
fn disable_scenario_keeps_the_pool_running_but_disabled() {
    let Some(run) = start("disable") else { return };
    let lab = &run.lab;
    // systemctl's SysV fallback would run update-rc.d on the host for php8.2-fpm.
    let rc_dirs: Vec<_> = (0..=6)
        .map(|n| PathBuf::from(format!("/etc/rc{n}.d")))
        .collect();
    let rc_before: Vec<_> = rc_dirs.iter().map(|d| mtime(d)).collect();

    lab.break_scenario(Scenario::Disable).unwrap();
    let status = lab.status().unwrap();
    assert_eq!(status.php_fpm.active_state, "active", "{status}");
    assert_eq!(status.php_fpm.unit_file_state, "disabled", "{status}");
    assert_eq!(status.ping, Probe::Status(200), "{status}");

    lab.repair().unwrap();
    assert_eq!(lab.status().unwrap().php_fpm.unit_file_state, "enabled");
    let rc_after: Vec<_> = rc_dirs.iter().map(|d| mtime(d)).collect();
    assert_eq!(
        rc_before, rc_after,
        "enable/disable touched the host's /etc/rc?.d"
    );
}

#[test]
fn crashloop_scenario_fails_every_start_and_repair_restores_the_config_byte_for_byte() {
    let Some(run) = start("crashloop") else {
        return;
    };
    let lab = &run.lab;
    let original = fs::read(lab.pool_conf()).unwrap();

    lab.break_scenario(Scenario::CrashLoop).unwrap();
    assert_eq!(lab.status().unwrap().php_fpm.active_state, "failed");
    assert_ne!(fs::read(lab.pool_conf()).unwrap(), original);
    for attempt in 1..=3 {
        let output = lab.systemctl(&["start", PHP_FPM_UNIT]).unwrap();
        assert!(!output.status.success(), "start {attempt} succeeded");
        let status = lab.status().unwrap();
        assert_eq!(status.php_fpm.active_state, "failed", "{status}");
        assert_eq!(status.ping, Probe::Status(502), "{status}");
    }

    lab.repair().unwrap();
    assert_eq!(fs::read(lab.pool_conf()).unwrap(), original);
    let status = lab.status().unwrap();
    assert_eq!(status.php_fpm.active_state, "active", "{status}");
    assert_eq!(status.ping, Probe::Status(200), "{status}");
}

#[test]
fn hang_scenario_keeps_the_unit_active_while_ping_fails() {
    let Some(run) = start("hang") else { return };
    let lab = &run.lab;
    lab.break_scenario(Scenario::Hang).unwrap();

    let status = lab.status().unwrap();
    assert_eq!(status.php_fpm.active_state, "active", "{status}");
    assert_eq!(status.ping, Probe::Status(504), "{status}");
    assert!(file_text(&lab.nginx_error_log())
        .contains("upstream timed out (110: Connection timed out)"));
    assert!(file_text(&lab.php_fpm_log()).contains("server reached pm.max_children setting (2)"));

    lab.repair().unwrap();
    assert_eq!(lab.probe_ping(), Probe::Status(200));
}

#[test]
fn restart_drop_in_lets_systemd_bring_the_pool_back_after_a_crash() {
    let Some(run) = start("restart") else { return };
    let lab = &run.lab;
    assert!(lab.set_php_fpm_restart("sometimes", "0").is_err());
    assert!(lab
        .set_php_fpm_restart("always", "0\nExecStart=/bin/sh")
        .is_err());
    lab.set_php_fpm_restart("always", "0").unwrap();

    lab.break_scenario(Scenario::Crash).unwrap();
    wait_until("pool restarted by systemd", Duration::from_secs(15), || {
        lab.probe_ping() == Probe::Status(200)
    });
    let restarts = lab
        .systemctl(&["show", "--property=NRestarts", "--value", PHP_FPM_UNIT])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&restarts.stdout).trim(), "1");
}

#[test]
fn attach_finds_a_running_lab_and_errors_clearly_when_none() {
    let Some(_lock) = lab_lock() else { return };
    let dir = lab_dir("attach");
    clear(&dir);
    let err = Lab::attach(&dir).unwrap_err();
    assert!(matches!(err, LabError::NotRunning { .. }), "{err}");
    assert!(err.to_string().contains("salve lab up --dir"), "{err}");

    let lab = LabGuard::new(
        Lab::up(&LabConfig {
            dir: dir.clone(),
            http_port: PORT,
            topology: Default::default(),
        })
        .unwrap(),
    );
    let attached = Lab::attach(&dir).unwrap();
    assert_eq!((attached.pid(), attached.http_port()), (lab.pid(), PORT));
    assert_eq!(
        attached.ping_url(),
        format!("http://127.0.0.1:{PORT}/ping.php")
    );
    let bus = attached.bus_address();
    let socket = bus.strip_prefix("unix:path=").unwrap();
    assert!(Path::new(socket).exists(), "{bus}");
    let err = Lab::up(&LabConfig {
        dir: dir.clone(),
        http_port: PORT + 1,
        topology: Default::default(),
    })
    .unwrap_err();
    assert!(matches!(err, LabError::AlreadyRunning { .. }), "{err}");

    let cli = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["lab", "status", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        stdout.contains("php8.2-fpm.service") && stdout.contains("HTTP 200"),
        "{stdout}"
    );

    let record = fs::read(dir.join("lab.json")).unwrap();
    attached.down().unwrap();
    // The record of a lab that is gone: attach says so, and it can be cleared.
    fs::write(dir.join("lab.json"), &record).unwrap();
    let err = Lab::attach(&dir).unwrap_err();
    assert!(matches!(err, LabError::Gone { .. }), "{err}");
    assert!(err.to_string().contains("no longer running"), "{err}");
    assert!(Lab::remove_stale_record(&dir).unwrap());
    // The first handle's lab is already down; taking it down again is harmless.
    lab.down().unwrap();
}
