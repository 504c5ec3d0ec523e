//! Validating a candidate config with the service's own checker before it replaces
//! the real file.
//!
//! The file being edited is usually an include (a site, a pool), and the checkers only
//! take the main config's path. So the checker runs in a private mount namespace where
//! the candidate is bind-mounted over the real file: nginx and php-fpm see the whole
//! config exactly as it will be, includes and all, while every other process still sees
//! the original. The namespace (and the bind mount) vanish with the checker.

use crate::action::exec;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

/// Debian's paths. The PHP version is part of the binary's name there.
pub const NGINX_BIN: &str = "/usr/sbin/nginx";
pub const PHP_FPM_BIN: &str = "/usr/sbin/php-fpm8.2";

/// Long enough for a large config on a busy host; a checker that hangs is a failure.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// A config checker: the program and the arguments that name the main config.
#[derive(Debug, Clone)]
pub struct Checker {
    pub program: PathBuf,
    /// Arguments before the main config's path.
    pub args: Vec<String>,
    pub config: PathBuf,
}

impl Checker {
    /// `nginx -t -q -e stderr -c CONFIG`: `-e stderr` because nginx otherwise opens its
    /// compiled-in /var/log/nginx/error.log before reading the config, and a failed
    /// check would write there.
    pub fn nginx(config: &Path) -> Self {
        Checker {
            program: PathBuf::from(NGINX_BIN),
            args: ["-t", "-q", "-e", "stderr", "-c"]
                .map(String::from)
                .to_vec(),
            config: config.to_path_buf(),
        }
    }

    /// `php-fpm8.2 -t -y CONFIG`.
    pub fn php_fpm(config: &Path) -> Self {
        Checker {
            program: PathBuf::from(PHP_FPM_BIN),
            args: ["-t", "-y"].map(String::from).to_vec(),
            config: config.to_path_buf(),
        }
    }

    /// Runs the checker as if `file` held `candidate`. The candidate is written beside
    /// the file (hidden, so no include glob reads it; in the main config's directory
    /// when it *is* the main config, so its relative includes still resolve) and
    /// removed after.
    pub async fn check(&self, file: &Path, candidate: &[u8]) -> Result<(), String> {
        let (file_path, bytes) = (file.to_path_buf(), candidate.to_vec());
        // Staged through the file's directory handle, as every write of an edit, and
        // off the runtime's thread.
        let staged = super::blocking(move || {
            let (config, _) = super::file::ConfigFile::open(&file_path)?;
            let suffix = super::file::temp_suffix("candidate");
            let path = config.path.with_file_name(config.sibling_name(&suffix));
            let like = config.metadata()?;
            config
                .create_sibling(&suffix, &bytes, &like)
                .map(|_| path.clone())
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        })
        .await
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (the agent may not write beside the config: config edits need the drop-in deploy/systemd/salve.service.d/config-edits.conf)"
            } else {
                ""
            };
            format!("cannot stage the candidate {e}{hint}")
        })?;
        let staged = Staged(staged);
        self.run(file, &staged.0).await
    }

    async fn run(&self, file: &Path, staged: &Path) -> Result<(), String> {
        let program = self.program.display().to_string();
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if file == self.config {
            // The main config itself: point the checker at the candidate, no namespace needed.
            command.arg(staged);
        } else {
            command.arg(&self.config);
            let source = cstring(staged)?;
            let target = cstring(file)?;
            // SAFETY: the closure runs in the forked child before exec and calls only
            // async-signal-safe syscalls on memory allocated before the fork.
            unsafe {
                command.pre_exec(move || bind_in_private_namespace(&source, &target));
            }
        }
        exec::run_command(command, &program, CHECK_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| match &e {
                // A refused namespace surfaces as the spawn failing, before the checker ran.
                exec::ExecError::Spawn { cause, .. }
                    if cause.raw_os_error() == Some(libc::EPERM) =>
                {
                    format!("{e} (validating an included file needs CAP_SYS_ADMIN for a private mount namespace)")
                }
                _ => e.to_string(),
            })
    }
}

/// The staged candidate, removed however the check ends (even when the agent drops the
/// check halfway at shutdown).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn cstring(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))
}

/// In the child: a new mount namespace, made private first so the bind mount can never
/// propagate back to the host's namespace, then the candidate over the real file.
fn bind_in_private_namespace(source: &CString, target: &CString) -> std::io::Result<()> {
    // SAFETY: plain syscalls with valid NUL-terminated strings or null pointers.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
    }

    #[test]
    fn the_checker_sees_the_candidate_in_place_of_the_file_and_the_host_never_does() {
        if !is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "needs root; under CI it must run"
            );
            eprintln!("skipping: a private mount namespace needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("salve-validate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (file, config) = (dir.join("site.conf"), dir.join("main.conf"));
        std::fs::write(&file, "original\n").unwrap();
        std::fs::write(&config, "main\n").unwrap();
        let mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        // grep exits 0 only if one of its files holds the candidate's text: `site.conf`
        // does only inside the checker's namespace.
        let checker = Checker {
            program: PathBuf::from("/usr/bin/grep"),
            args: vec!["-q".into(), "candidate".into(), file.display().to_string()],
            config: config.clone(),
        };
        let seen = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(checker.check(&file, b"candidate\n"));
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let file_after = std::fs::read_to_string(&file).unwrap();
        let mounts_after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(seen, Ok(()), "the checker did not see the candidate");
        assert_eq!(file_after, "original\n");
        assert_eq!(
            mounts_after, mounts_before,
            "a mount leaked out of the namespace"
        );
        assert_eq!(
            left.len(),
            2,
            "the staged candidate was not removed: {left:?}"
        );
    }
}
