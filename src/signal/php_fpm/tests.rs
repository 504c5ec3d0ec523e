//! Against Debian's php-fpm8.2, started here by PID in a directory of its own: one
//! worker on a TCP listener (PHP reports the listen queue of TCP listeners only) and
//! the status page on a socket of its own.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const PHP_FPM: &str = "/usr/sbin/php-fpm8.2";

struct Fpm {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Fpm {
    fn start(name: &str, port: u16) -> Option<Fpm> {
        if !Path::new(PHP_FPM).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{PHP_FPM} is missing; under CI it must run (scripts/setup-test.sh installs it)"
            );
            eprintln!("skipping: {PHP_FPM} is not installed");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("salve-fpm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Root must name a user for the workers; anyone else runs them as itself.
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user = nobody\ngroup = nogroup\n"
        } else {
            ""
        };
        let config = format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\n[www]\n{user}listen = 127.0.0.1:{port}\n\
             pm = static\npm.max_children = 1\npm.status_path = /status\n\
             pm.status_listen = {d}/status.sock\n",
            d = dir.display()
        );
        std::fs::write(dir.join("fpm.conf"), config).unwrap();
        std::fs::write(
            dir.join("slow.php"),
            "<?php usleep(1500000); echo \"done\\n\";\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(dir.clone(), 0o755), (dir.join("slow.php"), 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let child = Command::new(PHP_FPM)
            .args(["--nodaemonize", "--fpm-config"])
            .arg(dir.join("fpm.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("php-fpm starts");
        let fpm = Fpm { child, dir, port };
        for _ in 0..100 {
            if std::os::unix::net::UnixStream::connect(fpm.status()).is_ok() {
                return Some(fpm);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "php-fpm's status socket never opened: {}",
            std::fs::read_to_string(fpm.dir.join("fpm.log")).unwrap_or_default()
        );
    }

    fn status(&self) -> PathBuf {
        self.dir.join("status.sock")
    }

    /// Sends the slow page to the pool's worker and keeps the connection open.
    fn busy(&self) -> std::thread::JoinHandle<()> {
        let (port, script) = (self.port, self.dir.join("slow.php"));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                let script = script.display().to_string();
                let params = Params::default()
                    .request_method("GET")
                    .script_name("/slow.php")
                    .script_filename(script)
                    .content_length(0);
                let _ = Client::new_tokio(stream)
                    .execute_once(Request::new(params, fastcgi_client::io::empty()))
                    .await;
            });
        })
    }
}

impl Drop for Fpm {
    fn drop(&mut self) {
        // Only the master this test started, by its PID; its workers go with it.
        // SAFETY: a plain kill(2) of the PID this test spawned and still holds.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        if !(0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn the_status_page_answers_while_the_only_worker_is_busy_and_shows_the_queue() {
    let Some(fpm) = Fpm::start("queue", 19131) else {
        return;
    };
    let address = FpmStatusAddress::Unix(fpm.status());
    let idle = read_status(&address, "/status", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        (
            idle.pool.as_str(),
            idle.active,
            idle.idle,
            idle.total,
            idle.listen_queue
        ),
        ("www", 0, 1, 1, 0),
        "{idle:?}"
    );
    // One request holds the worker, three wait in the listen queue.
    let clients: Vec<_> = (0..4).map(|_| fpm.busy()).collect();
    let mut seen = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let status = read_status(&address, "/status", Duration::from_secs(1))
            .await
            .unwrap();
        if status.listen_queue >= 3 {
            seen = Some(status);
            break;
        }
    }
    let busy = seen.expect("the queue grew while the worker was busy");
    assert_eq!((busy.active, busy.idle), (1, 0), "{busy:?}");
    for client in clients {
        let _ = client.join();
    }
}

#[tokio::test]
async fn a_status_page_that_cannot_be_read_says_why() {
    let Some(fpm) = Fpm::start("refusals", 19132) else {
        return;
    };
    let address = FpmStatusAddress::Unix(fpm.status());
    let err = read_status(&address, "/nope", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.contains("is the path pm.status_path?"), "{err}");
    let gone = FpmStatusAddress::Unix(fpm.dir.join("none.sock"));
    assert_eq!(
        read_status(&gone, "/status", Duration::from_secs(1))
            .await
            .unwrap_err(),
        "no such socket"
    );
    let closed = FpmStatusAddress::Tcp {
        host: "127.0.0.1".into(),
        port: 1,
    };
    assert_eq!(
        read_status(&closed, "/status", Duration::from_secs(1))
            .await
            .unwrap_err(),
        "connection refused"
    );
    // A listener that never answers: the timeout is the answer.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hung = FpmStatusAddress::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    assert_eq!(
        read_status(&hung, "/status", Duration::from_millis(300))
            .await
            .unwrap_err(),
        "timed out after 300ms"
    );
}

#[test]
fn an_answer_is_headers_then_the_json_status() {
    let answer = b"Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Type: application/json\r\n\r\n{\"pool\":\"www\",\"process manager\":\"static\",\"start time\":1796319636,\"start since\":2,\"accepted conn\":2,\"listen queue\":3,\"max listen queue\":3,\"listen queue len\":4096,\"idle processes\":0,\"active processes\":2,\"total processes\":2,\"max active processes\":2,\"max children reached\":1,\"slow requests\":0}";
    let status = parse_answer(answer).unwrap();
    assert_eq!(
        status,
        PhpFpmStatus {
            pool: "www".into(),
            listen_queue: 3,
            idle: 0,
            active: 2,
            total: 2,
            max_children_reached: 1,
        }
    );
    let refused = parse_answer(b"Status: 403 Forbidden\r\n\r\nAccess denied.").unwrap_err();
    assert!(
        refused.starts_with("the status page answered 403 Forbidden"),
        "{refused}"
    );
    let html = parse_answer(b"Content-Type: text/html\r\n\r\n<html>").unwrap_err();
    assert!(html.starts_with("not PHP-FPM's JSON status"), "{html}");
}
