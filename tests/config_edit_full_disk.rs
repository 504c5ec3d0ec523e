//! A raise that runs the disk full halfway still puts the original bytes back: the
//! backup is a hard link to the original, and restoring is a link and a rename, which
//! need no free blocks.
//!
//! The small file system is a tmpfs mounted in a private mount namespace: the test
//! re-runs itself under `unshare --mount --propagation private`, so the host's mount
//! table never changes. Needs root (as the lab does); under CI it must run.

use salve::action::config_edit::{run_edit, EditHost, Planned, Planner, DEFAULT_KEEP_BACKUPS};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const INNER: &str = "SALVE_FULL_DISK_INNER";
const ORIGINAL: &str = "fastcgi_buffer_size 4k;\n";

/// Each step appends 16 KiB: the first fits, the one after the disk filled cannot.
struct Growing;

impl Planner for Growing {
    fn next(&mut self, current: &str) -> Result<Option<Planned>, String> {
        Ok(Some(Planned {
            text: format!("{current}# {}\n", "x".repeat(16 * 1024)),
            summary: "grow".into(),
        }))
    }
}

/// Validation passes; the first apply fills the disk; verification always fails, so
/// the raise takes another step.
struct FillsTheDisk {
    dir: PathBuf,
    applies: Cell<u32>,
}

impl EditHost for FillsTheDisk {
    async fn validate(&self, _file: &Path, _candidate: &[u8]) -> Result<(), String> {
        Ok(())
    }
    async fn apply(&self) -> Result<(), String> {
        self.applies.set(self.applies.get() + 1);
        if self.applies.get() == 1 {
            let mut filler = std::fs::File::create(self.dir.join("filler")).unwrap();
            let block = vec![0u8; 4096];
            while filler.write_all(&block).is_ok() {}
        }
        Ok(())
    }
    async fn verify(&self) -> Option<(bool, String)> {
        Some((false, "HTTP 502".into()))
    }
}

#[test]
fn an_edit_that_fills_the_disk_still_restores_the_original() {
    if std::env::var_os(INNER).is_none() {
        let root = salve::lab::check_root().is_ok();
        if !root {
            assert!(std::env::var_os("CI").is_none(), "needs root under CI");
            eprintln!("skipping: needs root for a private mount namespace");
            return;
        }
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "an_edit_that_fills_the_disk_still_restores_the_original",
                "--nocapture",
            ])
            .env(INNER, "1")
            .status()
            .expect("unshare runs");
        assert!(
            status.success(),
            "the test inside the private mount namespace failed"
        );
        return;
    }
    // Inside the private namespace: a 64 KiB tmpfs nobody else sees.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/full-disk");
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-n", "-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(mounted.success());
    let file = dir.join("site.conf");
    std::fs::write(&file, ORIGINAL).unwrap();
    let host = FillsTheDisk {
        dir: dir.clone(),
        applies: Cell::new(0),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let failure = runtime
        .block_on(run_edit(&file, &mut Growing, &host, DEFAULT_KEEP_BACKUPS))
        .unwrap_err();
    eprintln!("{}", failure.why);
    assert!(failure.why.contains("No space left"), "{}", failure.why);
    assert!(failure.why.contains("original restored"), "{}", failure.why);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ORIGINAL);
    assert_eq!(host.applies.get(), 2, "the original was applied again");
}
