//! External commands for the lab: argv only, a deadline on every call, stderr kept.

use super::LabError;
use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How often a running command is checked against its deadline. Short, because most
/// lab commands (systemctl, nsenter) finish in a few milliseconds.
const POLL: Duration = Duration::from_millis(5);

/// Runs `program args…` with stdin closed, collecting stdout and stderr. Returns the
/// output whatever the exit status; a command still running at `timeout` is killed.
pub(crate) fn run<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output, LabError> {
    let command_line = display(program, args);
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().map_err(|cause| LabError::Spawn {
        command: command_line.clone(),
        cause,
    })?;
    // Both pipes are drained on their own threads: a child that fills one pipe while we
    // wait on the other would otherwise block forever.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(POLL),
            Err(cause) => {
                return Err(LabError::Spawn {
                    command: command_line,
                    cause,
                })
            }
        }
    };
    let Some(status) = status else {
        // Our own child, killed through its handle: never a PID that could be reused.
        let _ = child.kill();
        let _ = child.wait();
        let stderr = stderr.map(join).unwrap_or_default();
        return Err(LabError::CommandTimeout {
            command: command_line,
            after: timeout,
            stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
        });
    };
    Ok(Output {
        status,
        stdout: stdout.map(join).unwrap_or_default(),
        stderr: stderr.map(join).unwrap_or_default(),
    })
}

/// Like [`run`], but a non-zero exit is an error carrying the command's stderr.
pub(crate) fn run_ok<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output, LabError> {
    let output = run(program, args, envs, timeout)?;
    check(display(program, args), output)
}

pub(crate) fn check(command: String, output: Output) -> Result<Output, LabError> {
    if output.status.success() {
        return Ok(output);
    }
    let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    }
    Err(LabError::CommandFailed {
        command,
        status: output.status.to_string(),
        stderr,
    })
}

pub(crate) fn display<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}

fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = pipe.read_to_end(&mut buffer);
        let _ = sender.send(buffer);
    });
    receiver
}

/// A grandchild that inherited the pipe (nsenter forks before it execs) can keep it
/// open after the child is gone; give up on its output rather than hang with it.
fn join(receiver: mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
    receiver
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_deadline_is_killed_and_reported() {
        let started = Instant::now();
        let err = run("sleep", &["5"], &[], Duration::from_millis(100)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, LabError::CommandTimeout { .. }), "{err}");
    }

    #[test]
    fn a_failing_command_keeps_its_stderr_in_the_error() {
        let err = run_ok(
            "ls",
            &["/no/such/path/for/salve"],
            &[],
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/no/such/path/for/salve"), "{err}");
    }
}
