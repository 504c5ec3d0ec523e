//! The `exec` action: run a program given as argv, never through a shell, so that no
//! value from a policy or a log line can ever be interpreted as shell syntax.

use crate::signal::http::{human_duration, io_message};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::{sleep_until, timeout_at, Instant};

/// How much of stderr is kept for the journal. The end of stderr is where programs say
/// why they gave up; the beginning is usually banners and warnings.
const STDERR_TAIL: usize = 4 * 1024;

/// After the program exits, how long to keep reading stderr. A grandchild that inherited
/// the pipe can hold it open indefinitely; the exit is what we report, not the grandchild.
const STDERR_DRAIN: Duration = Duration::from_millis(200);

/// The search path a policy's program and its children get: the programs a remediation
/// runs live in the system directories, never in whatever PATH the agent inherited.
pub const MINIMAL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: Option<i32>,
    /// The last 4 KiB of stderr, decoded lossily.
    pub stderr_tail: String,
}

/// Why a command did not succeed. Callers decide by variant, never by message text.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot run an empty command")]
    Empty,
    #[error("cannot run {program}: {}", io_message(cause))]
    Spawn {
        program: String,
        cause: std::io::Error,
    },
    #[error("cannot wait for {program}: {}", io_message(cause))]
    Wait {
        program: String,
        cause: std::io::Error,
    },
    #[error("{}", with_tail(format!("timed out after {}; killed", human_duration(*after)), stderr_tail))]
    TimedOut {
        after: Duration,
        stderr_tail: String,
    },
    #[error("{}", with_tail(describe_exit(*status), stderr_tail))]
    Exited {
        status: ExitStatus,
        stderr_tail: String,
    },
}

/// What the program runs with besides its argv: the environment is built from nothing
/// (a remediation must not see the agent's own variables, tokens included), holding
/// PATH, LANG and `vars` (salve's context variables and whatever the policy lists).
#[derive(Debug, Clone, Default)]
pub struct ExecEnv {
    pub vars: Vec<(String, String)>,
}

/// Runs `argv[0]` with args `argv[1..]` in a process group of its own: stdin null,
/// stdout discarded, the last 4 KiB of stderr kept for the journal, the environment
/// `env`. Once `timeout` passes, the whole group is killed (a shell script's children
/// too) and the program reaped: `ExecError::TimedOut`. `Ok(output)` when it exited 0.
pub async fn run(
    argv: &[String],
    env: &ExecEnv,
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(ExecError::Empty);
    };
    let mut command = Command::new(program);
    command.args(args).env_clear().env("PATH", MINIMAL_PATH);
    command.env(
        "LANG",
        std::env::var_os("LANG").unwrap_or_else(|| "C.UTF-8".into()),
    );
    for (name, value) in &env.vars {
        command.env(name, value);
    }
    run_command(command, program, timeout).await
}

/// [`run`] for a command the caller has prepared (e.g. with a `pre_exec` step and its
/// own environment); stdio and the process group are set here. `program` names it in
/// messages.
pub async fn run_command(
    mut command: Command,
    program: &str,
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    // Durations are bounded at parse time; a far deadline is still no reason to panic.
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(366 * 24 * 3600));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group, so a timeout (or the agent dropping the attempt) reaches every
        // process it started, not just the first.
        .process_group(0)
        // If this future is dropped (agent shutdown), the program must not linger unowned.
        .kill_on_drop(true)
        .spawn()
        .map_err(|cause| ExecError::Spawn {
            program: program.to_string(),
            cause,
        })?;
    let mut group = GroupGuard(child.id());

    let mut stderr = child.stderr.take();
    let mut tail = Tail::default();
    let mut chunk = [0u8; 4096];
    // Read stderr while waiting: a program that fills the pipe would otherwise block
    // forever on its write and never exit.
    let waited = loop {
        tokio::select! {
            status = child.wait() => break Some(status),
            read = read_some(&mut stderr, &mut chunk) => match read {
                Some(n) => tail.push(&chunk[..n]),
                None => stderr = None,
            },
            _ = sleep_until(deadline) => break None,
        }
    };
    let Some(waited) = waited else {
        // The leader is not reaped yet, so the group id cannot have been reused.
        group.kill();
        // Waiting reaps the leader so no zombie is left and the caller knows it is
        // really gone when this returns.
        let _ = child.wait().await;
        group.0 = None;
        return Err(ExecError::TimedOut {
            after: timeout,
            stderr_tail: tail.into_string(),
        });
    };
    // Reaped: from here the group id may belong to someone else.
    group.0 = None;
    let status = waited.map_err(|cause| ExecError::Wait {
        program: program.to_string(),
        cause,
    })?;

    if let Some(mut pipe) = stderr {
        let drain = async {
            while let Ok(n) = pipe.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                tail.push(&chunk[..n]);
            }
        };
        let _ = timeout_at(Instant::now() + STDERR_DRAIN, drain).await;
    }
    let stderr_tail = tail.into_string();
    tracing::debug!(program = %program, code = ?status.code(), "command finished");
    if status.success() {
        Ok(ExecOutput {
            code: status.code(),
            stderr_tail,
        })
    } else {
        Err(ExecError::Exited {
            status,
            stderr_tail,
        })
    }
}

/// The process group of a child not yet reaped. Dropped while still set (the attempt
/// was abandoned), it kills the group, as `kill_on_drop` does for the leader alone.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory
            // is involved.
            if unsafe { libc::kill(-pgid, libc::SIGKILL) } != 0 {
                let e = std::io::Error::last_os_error();
                tracing::warn!(pgid, error = %e, "cannot kill a timed-out command's process group");
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one chunk; `None` at end of stream or error. Stays pending forever once the
/// pipe is gone, so the `select!` above simply stops choosing this branch.
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match pipe {
        Some(pipe) => match pipe.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => format!("ended abnormally ({status})"),
    }
}

fn with_tail(message: String, tail: &str) -> String {
    if tail.is_empty() {
        message
    } else {
        format!("{message}: {tail}")
    }
}

/// The last `STDERR_TAIL` bytes seen.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
        // Trim only when twice over the limit, so a chatty program costs amortised O(1)
        // per byte instead of a shift on every read.
        if self.0.len() > 2 * STDERR_TAIL {
            let excess = self.0.len() - STDERR_TAIL;
            self.0.drain(..excess);
        }
    }

    fn into_string(self) -> String {
        let mut bytes = self.0.as_slice();
        if bytes.len() > STDERR_TAIL {
            bytes = &bytes[bytes.len() - STDERR_TAIL..];
            // The cut may land inside a UTF-8 sequence; skip its continuation bytes
            // (0b10xxxxxx) rather than show a replacement character.
            let skip = bytes
                .iter()
                .take(3)
                .take_while(|&&b| b & 0xC0 == 0x80)
                .count();
            bytes = &bytes[skip..];
        }
        String::from_utf8_lossy(bytes).trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    async fn run(argv: &[String], timeout: Duration) -> Result<ExecOutput, String> {
        super::run(argv, &ExecEnv::default(), timeout)
            .await
            .map_err(|e| e.to_string())
    }

    fn alive(pid: &str) -> bool {
        // A zombie still has a /proc entry; only a running or sleeping process counts.
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let pid_file =
            std::env::temp_dir().join(format!("salve-exec-group-{}", std::process::id()));
        // The shell starts a grandchild and waits for it: killing the shell alone would
        // leave the sleep running.
        let script = format!("/bin/sleep 30 & echo $! > {}; wait", pid_file.display());
        let err = super::run(
            &argv(&["/bin/sh", "-c", &script]),
            &ExecEnv::default(),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExecError::TimedOut { .. }), "{err}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        std::fs::remove_file(&pid_file).unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(&pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !alive(&pid),
            "the grandchild {} survived the timeout",
            pid.trim()
        );
    }

    #[tokio::test]
    async fn the_program_sees_only_path_lang_and_the_variables_given() {
        std::env::set_var("SALVE_TEST_SECRET", "do-not-leak");
        let env = ExecEnv {
            vars: vec![("SALVE_POLICY".into(), "php-fpm-down".into())],
        };
        let out_file = std::env::temp_dir().join(format!("salve-exec-env-{}", std::process::id()));
        let script = format!("/usr/bin/env > {}", out_file.display());
        super::run(&argv(&["/bin/sh", "-c", &script]), &env, TIMEOUT)
            .await
            .unwrap();
        let seen = std::fs::read_to_string(&out_file).unwrap();
        std::fs::remove_file(&out_file).unwrap();
        let mut names: Vec<&str> = seen
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(n, _)| n)
            .collect();
        names.sort_unstable();
        // sh itself adds PWD (and dash nothing else).
        names.retain(|n| *n != "PWD");
        assert_eq!(names, ["LANG", "PATH", "SALVE_POLICY"], "{seen}");
        assert!(seen.contains(&format!("PATH={MINIMAL_PATH}\n")), "{seen}");
        assert!(!seen.contains("do-not-leak"), "{seen}");
    }

    #[tokio::test]
    async fn successful_command_returns_its_stderr() {
        let output = run(
            &argv(&["/bin/sh", "-c", "echo noted >&2; echo ignored"]),
            TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(
            output,
            ExecOutput {
                code: Some(0),
                stderr_tail: "noted".into()
            }
        );
    }

    #[tokio::test]
    async fn nonzero_exit_is_an_error_with_the_stderr_tail() {
        let err = run(
            &argv(&["/bin/sh", "-c", "echo 'cache dir missing' >&2; exit 3"]),
            TIMEOUT,
        )
        .await
        .unwrap_err();
        assert_eq!(err, "exited with status 3: cache dir missing");
    }

    #[tokio::test]
    async fn only_the_last_4_kib_of_stderr_is_kept() {
        let script = "i=0; while [ $i -lt 2000 ]; do echo 'line of noise' >&2; i=$((i+1)); done; echo END >&2; exit 1";
        let err = run(&argv(&["/bin/sh", "-c", script]), TIMEOUT)
            .await
            .unwrap_err();
        let tail = err.strip_prefix("exited with status 1: ").unwrap();
        assert!(tail.ends_with("END"), "{tail}");
        assert!(tail.len() <= STDERR_TAIL, "{}", tail.len());
        assert!(tail.len() > STDERR_TAIL - 100, "{}", tail.len());
    }

    #[tokio::test]
    async fn timeout_kills_the_process() {
        let pid_file = std::env::temp_dir().join(format!("salve-exec-test-{}", std::process::id()));
        // `exec` makes sleep the very process `run` spawned, so its pid is the one to check.
        let script = format!("echo $$ > {}; exec /bin/sleep 30", pid_file.display());
        let started = Instant::now();
        let err = run(
            &argv(&["/bin/sh", "-c", &script]),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert_eq!(err, "timed out after 200ms; killed");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        std::fs::remove_file(&pid_file).unwrap();
        let proc_entry = format!("/proc/{}", pid.trim());
        assert!(
            !std::path::Path::new(&proc_entry).exists(),
            "{proc_entry} still exists"
        );
    }

    #[tokio::test]
    async fn missing_program_is_reported_by_name() {
        let err = run(&argv(&["/nonexistent/salve-flush"]), TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "cannot run /nonexistent/salve-flush: No such file or directory"
        );
    }

    #[tokio::test]
    async fn empty_command_is_an_error() {
        assert!(run(&[], TIMEOUT).await.is_err());
    }
}
