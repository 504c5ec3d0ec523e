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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: Option<i32>,
    /// The last 4 KiB of stderr, decoded lossily.
    pub stderr_tail: String,
}

/// Runs `argv[0]` with args `argv[1..]`: stdin null, stdout discarded, the last 4 KiB of
/// stderr kept for the journal. Kills the process (and waits for it) once `timeout`
/// passes: `Err("timed out after 30s; killed")`. `Ok(output)` when it exited 0;
/// `Err("exited with status 3: <stderr tail>")` otherwise; when it cannot start,
/// `Err("cannot run /x: No such file or directory")`.
///
/// Only the process itself is killed on timeout, not children it started; programs run
/// here (systemctl, a cache flush script) are expected to wait for their own children.
pub async fn run(argv: &[String], timeout: Duration) -> Result<ExecOutput, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("cannot run an empty command".to_string());
    };
    let mut command = Command::new(program);
    command.args(args);
    run_command(command, program, timeout).await
}

/// [`run`] for a command the caller has prepared (e.g. with a `pre_exec` step); stdio
/// is set here. `program` names it in messages.
pub async fn run_command(
    mut command: Command,
    program: &str,
    timeout: Duration,
) -> Result<ExecOutput, String> {
    let deadline = Instant::now() + timeout;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // If this future is dropped (agent shutdown), the program must not linger unowned.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {}", io_message(&e)))?;

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
        // `start_kill` sends SIGKILL; waiting reaps the process so no zombie is left and
        // the caller knows it is really gone when this returns.
        if let Err(e) = child.start_kill() {
            tracing::warn!(program = %program, error = %e, "cannot kill timed-out command");
        }
        let _ = child.wait().await;
        let timed_out = format!("timed out after {}; killed", human_duration(timeout));
        return Err(with_tail(timed_out, &tail.into_string()));
    };
    let status = waited.map_err(|e| format!("cannot wait for {program}: {}", io_message(&e)))?;

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
        Err(with_tail(describe_exit(status), &stderr_tail))
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
