use super::*;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// A host whose checker, apply and verify answer from scripts, recording what the
/// file held at each apply.
#[derive(Default)]
struct FakeHost {
    invalid: RefCell<VecDeque<bool>>,
    apply_fails: RefCell<VecDeque<bool>>,
    verify: RefCell<VecDeque<Option<bool>>>,
    applied: RefCell<Vec<String>>,
    file: PathBuf,
    /// Runs inside validation: what an attacker with write access to the directory
    /// could do between salve's read and its rename.
    meanwhile: Option<Box<dyn Fn()>>,
}

impl EditHost for FakeHost {
    async fn validate(&self, file: &Path, candidate: &[u8]) -> Result<(), String> {
        assert_eq!(file, self.file);
        assert!(!candidate.is_empty());
        if let Some(meanwhile) = &self.meanwhile {
            meanwhile();
        }
        match self.invalid.borrow_mut().pop_front() {
            Some(true) => Err("nginx: [emerg] invalid value".into()),
            _ => Ok(()),
        }
    }
    async fn apply(&self) -> Result<(), String> {
        let now = fs::read_to_string(&self.file).unwrap();
        self.applied.borrow_mut().push(now);
        match self.apply_fails.borrow_mut().pop_front() {
            Some(true) => Err("job failed".into()),
            _ => Ok(()),
        }
    }
    async fn verify(&self) -> Option<(bool, String)> {
        self.verify
            .borrow_mut()
            .pop_front()
            .unwrap_or(Some(true))
            .map(|ok| (ok, if ok { "HTTP 200" } else { "HTTP 502" }.to_string()))
    }
}

/// Appends "x" to a counter line each step, up to `steps` steps.
struct Counting {
    steps: u32,
}

impl Planner for Counting {
    fn next(&mut self, current: &str) -> Result<Option<Planned>, String> {
        if self.steps == 0 {
            return Ok(None);
        }
        self.steps -= 1;
        Ok(Some(Planned {
            text: format!("{current}x\n"),
            summary: format!("step {}", self.steps),
        }))
    }
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, contents: &str) -> (Scratch, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("salve-edit-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("site.conf");
        fs::write(&file, contents).unwrap();
        (Scratch(dir), file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

const ORIGINAL: &str = "# keep me\r\nline  with   spacing\n";

#[test]
fn a_verified_edit_keeps_the_new_file_and_a_byte_exact_backup() {
    let (_dir, file) = Scratch::new("ok", ORIGINAL);
    let host = FakeHost {
        file: file.clone(),
        ..Default::default()
    };
    let report = run(run_edit(
        &file,
        &mut Counting { steps: 3 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), format!("{ORIGINAL}x\n"));
    assert_eq!(fs::read(&backups(&file)[0]).unwrap(), ORIGINAL.as_bytes());
    assert_eq!(host.applied.borrow().len(), 1);
    let diff = report.diff.unwrap();
    assert!(diff.contains("\n+x\n"), "{diff}");
}

#[test]
fn a_failed_validation_never_replaces_the_file() {
    let (_dir, file) = Scratch::new("invalid", ORIGINAL);
    let host = FakeHost {
        file: file.clone(),
        invalid: RefCell::new([true].into()),
        ..Default::default()
    };
    let EditFailure { why, diff, .. } = run(run_edit(
        &file,
        &mut Counting { steps: 3 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap_err();
    assert!(
        why.contains("validation failed, file not replaced: nginx: [emerg]"),
        "{why}"
    );
    assert!(diff.is_some());
    assert_eq!(fs::read(&file).unwrap(), ORIGINAL.as_bytes());
    assert!(host.applied.borrow().is_empty(), "nothing to apply");
    assert!(backups(&file).is_empty());
}

#[test]
fn verify_failing_at_every_step_up_to_the_cap_restores_the_original_and_applies_it() {
    let (_dir, file) = Scratch::new("cap", ORIGINAL);
    let host = FakeHost {
        file: file.clone(),
        verify: RefCell::new([Some(false), Some(false)].into()),
        ..Default::default()
    };
    let EditFailure { why, .. } = run(run_edit(
        &file,
        &mut Counting { steps: 2 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap_err();
    assert!(
        why.contains("still failing verification at the cap"),
        "{why}"
    );
    assert!(why.ends_with("original restored and applied"), "{why}");
    assert_eq!(fs::read(&file).unwrap(), ORIGINAL.as_bytes());
    let applied = host.applied.borrow();
    assert_eq!(
        *applied,
        vec![
            format!("{ORIGINAL}x\n"),
            format!("{ORIGINAL}x\nx\n"),
            ORIGINAL.to_string()
        ]
    );
}

#[test]
fn a_second_step_passing_verification_keeps_the_raised_file() {
    let (_dir, file) = Scratch::new("second", ORIGINAL);
    let host = FakeHost {
        file: file.clone(),
        verify: RefCell::new([Some(false), Some(true)].into()),
        ..Default::default()
    };
    let report = run(run_edit(
        &file,
        &mut Counting { steps: 5 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("{ORIGINAL}x\nx\n")
    );
    assert!(
        report.summary.contains("verify failed (HTTP 502)"),
        "{}",
        report.summary
    );
    assert_eq!(fs::read(&backups(&file)[0]).unwrap(), ORIGINAL.as_bytes());
}

#[test]
fn a_failed_apply_restores_the_original() {
    let (_dir, file) = Scratch::new("apply", ORIGINAL);
    let host = FakeHost {
        file: file.clone(),
        apply_fails: RefCell::new([true, false].into()),
        ..Default::default()
    };
    let EditFailure { why, .. } = run(run_edit(
        &file,
        &mut Counting { steps: 1 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap_err();
    assert!(
        why.contains("applying the change failed: job failed"),
        "{why}"
    );
    assert!(why.ends_with("original restored and applied"), "{why}");
    assert_eq!(fs::read(&file).unwrap(), ORIGINAL.as_bytes());
    assert_eq!(
        host.applied.borrow().last().map(String::as_str),
        Some(ORIGINAL)
    );
}

#[test]
fn nothing_left_to_raise_changes_nothing() {
    let (_dir, file) = Scratch::new("atcap", ORIGINAL);
    let host = FakeHost {
        file: file.clone(),
        ..Default::default()
    };
    let EditFailure { why, diff, .. } = run(run_edit(
        &file,
        &mut Counting { steps: 0 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap_err();
    assert!(why.contains("already at its cap; nothing changed"), "{why}");
    assert_eq!(diff, None);
    assert!(host.applied.borrow().is_empty());
}

#[test]
fn helper_files_are_hidden_so_directory_includes_never_read_them() {
    let (_dir, file) = Scratch::new("hidden", ORIGINAL);
    let host = FakeHost {
        file: fs::canonicalize(&file).unwrap(),
        ..Default::default()
    };
    run(run_edit(
        &file,
        &mut Counting { steps: 1 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap();
    let names: Vec<String> = fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(".site.conf.salve-backup.")),
        "{names:?}"
    );
}

#[test]
fn every_edit_keeps_its_own_backup_so_no_original_is_ever_overwritten() {
    let (_dir, file) = Scratch::new("two-backups", ORIGINAL);
    let host = FakeHost {
        file: fs::canonicalize(&file).unwrap(),
        ..Default::default()
    };
    run(run_edit(
        &file,
        &mut Counting { steps: 1 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap();
    run(run_edit(
        &file,
        &mut Counting { steps: 1 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap();
    let kept = backups(&file);
    assert_eq!(kept.len(), 2);
    assert_eq!(fs::read(&kept[0]).unwrap(), ORIGINAL.as_bytes());
    assert_eq!(
        fs::read_to_string(&kept[1]).unwrap(),
        format!("{ORIGINAL}x\n")
    );
}

#[test]
fn a_symlinked_config_is_edited_where_it_points_and_stays_a_link() {
    let (dir, target) = Scratch::new("symlink", ORIGINAL);
    let link = dir.0.join("enabled.conf");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let host = FakeHost {
        file: fs::canonicalize(&target).unwrap(),
        ..Default::default()
    };
    run(run_edit(
        &link,
        &mut Counting { steps: 1 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        format!("{ORIGINAL}x\n")
    );
}

#[test]
fn the_mode_of_the_original_is_kept() {
    let (_dir, file) = Scratch::new("mode", ORIGINAL);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let host = FakeHost {
        file: file.clone(),
        ..Default::default()
    };
    run(run_edit(
        &file,
        &mut Counting { steps: 1 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap();
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o640);
    assert_eq!(
        fs::metadata(&backups(&file)[0]).unwrap().mode() & 0o777,
        0o640
    );
}

#[test]
fn a_validation_failure_after_a_step_was_swapped_in_restores_the_original() {
    let (_dir, file) = Scratch::new("second-invalid", ORIGINAL);
    let host = FakeHost {
        file: file.clone(),
        invalid: RefCell::new([false, true].into()),
        verify: RefCell::new([Some(false)].into()),
        ..Default::default()
    };
    let EditFailure { why, .. } = run(run_edit(
        &file,
        &mut Counting { steps: 5 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap_err();
    assert!(
        why.contains("validation failed, this step not applied"),
        "{why}"
    );
    assert!(why.ends_with("original restored and applied"), "{why}");
    assert_eq!(fs::read(&file).unwrap(), ORIGINAL.as_bytes());
    assert_eq!(
        host.applied.borrow().last().map(String::as_str),
        Some(ORIGINAL)
    );
}

/// A host whose verification lets a person edit the file first.
struct MeddlingHost(FakeHost);

impl EditHost for MeddlingHost {
    async fn validate(&self, file: &Path, candidate: &[u8]) -> Result<(), String> {
        self.0.validate(file, candidate).await
    }
    async fn apply(&self) -> Result<(), String> {
        self.0.apply().await
    }
    async fn verify(&self) -> Option<(bool, String)> {
        fs::write(&self.0.file, "edited by hand\n").unwrap();
        Some((false, "HTTP 502".into()))
    }
}

#[test]
fn a_change_made_by_hand_during_an_edit_is_never_overwritten() {
    let (_dir, file) = Scratch::new("meddled", ORIGINAL);
    let host = MeddlingHost(FakeHost {
        file: file.clone(),
        ..Default::default()
    });
    let EditFailure { why, .. } = run(run_edit(
        &file,
        &mut Counting { steps: 3 },
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap_err();
    assert!(why.contains("changed by someone else"), "{why}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "edited by hand\n");
}

/// A host whose apply never finishes: the edit is dropped halfway, as at shutdown.
struct HangingHost(FakeHost);

impl EditHost for HangingHost {
    async fn validate(&self, file: &Path, candidate: &[u8]) -> Result<(), String> {
        self.0.validate(file, candidate).await
    }
    async fn apply(&self) -> Result<(), String> {
        std::future::pending().await
    }
    async fn verify(&self) -> Option<(bool, String)> {
        None
    }
}

#[test]
fn an_edit_dropped_halfway_puts_the_original_back_on_disk() {
    let (_dir, file) = Scratch::new("dropped", ORIGINAL);
    let host = HangingHost(FakeHost {
        file: file.clone(),
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut planner = Counting { steps: 1 };
    let edit = run_edit(&file, &mut planner, &host, DEFAULT_KEEP_BACKUPS);
    let outcome = runtime
        .block_on(async { tokio::time::timeout(std::time::Duration::from_millis(50), edit).await });
    assert!(outcome.is_err(), "the edit was cut off");
    assert_eq!(fs::read(&file).unwrap(), ORIGINAL.as_bytes());
}

/// A planner whose first step changes nothing: the file already is as wanted.
struct AlreadyDone;

impl Planner for AlreadyDone {
    fn next(&mut self, current: &str) -> Result<Option<Planned>, String> {
        Ok(Some(Planned {
            text: current.to_string(),
            summary: "every fastcgi_pass already reaches a pool".into(),
        }))
    }
}

#[test]
fn an_edit_with_nothing_to_change_is_not_applicable_and_touches_nothing() {
    let (_dir, file) = Scratch::new("nothing", ORIGINAL);
    let host = FakeHost {
        file: file.clone(),
        ..Default::default()
    };
    let failure = run(run_edit(
        &file,
        &mut AlreadyDone,
        &host,
        DEFAULT_KEEP_BACKUPS,
    ))
    .unwrap_err();
    assert!(failure.not_applicable);
    assert!(failure.why.contains("nothing to change"), "{}", failure.why);
    assert!(host.applied.borrow().is_empty());
    assert!(backups(&file).is_empty());
}

#[test]
fn backups_are_hard_links_to_the_original_and_only_the_newest_are_kept() {
    use std::os::unix::fs::MetadataExt;
    let (_dir, file) = Scratch::new("prune", ORIGINAL);
    let original_inode = fs::metadata(&file).unwrap().ino();
    let host = FakeHost {
        file: fs::canonicalize(&file).unwrap(),
        ..Default::default()
    };
    run(run_edit(&file, &mut Counting { steps: 1 }, &host, 3)).unwrap();
    let first = backups(&file);
    assert_eq!(first.len(), 1);
    // No copy: the backup is the original's own inode, so restoring needs no space.
    assert_eq!(fs::metadata(&first[0]).unwrap().ino(), original_inode);
    for _ in 0..5 {
        run(run_edit(&file, &mut Counting { steps: 1 }, &host, 3)).unwrap();
    }
    let kept = backups(&file);
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(!kept.contains(&first[0]), "the oldest went first: {kept:?}");
}

#[test]
fn a_symlink_swapped_in_for_the_file_mid_edit_is_never_written_through() {
    let (dir, file) = Scratch::new("swap-file", ORIGINAL);
    let victim = dir.0.join("victim");
    fs::write(&victim, "root's secret\n").unwrap();
    let (file_c, victim_c) = (file.clone(), victim.clone());
    let host = FakeHost {
        file: fs::canonicalize(&file).unwrap(),
        meanwhile: Some(Box::new(move || {
            fs::remove_file(&file_c).unwrap();
            std::os::unix::fs::symlink(&victim_c, &file_c).unwrap();
        })),
        ..Default::default()
    };
    let failure = run(run_edit(&file, &mut Counting { steps: 1 }, &host, 5)).unwrap_err();
    assert!(
        failure.why.contains("replaced by a symbolic link"),
        "{}",
        failure.why
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's secret\n");
    assert!(fs::symlink_metadata(&file)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_directory_swapped_for_a_symlink_mid_edit_does_not_redirect_the_write() {
    let (dir, _) = Scratch::new("swap-dir", "");
    let conf = dir.0.join("conf");
    let elsewhere = dir.0.join("elsewhere");
    fs::create_dir_all(&conf).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    let file = conf.join("site.conf");
    fs::write(&file, ORIGINAL).unwrap();
    fs::write(elsewhere.join("site.conf"), "not salve's\n").unwrap();
    let (conf_c, elsewhere_c, moved) = (conf.clone(), elsewhere.clone(), dir.0.join("conf.moved"));
    let moved_c = moved.clone();
    let host = FakeHost {
        file: fs::canonicalize(&file).unwrap(),
        meanwhile: Some(Box::new(move || {
            fs::rename(&conf_c, &moved_c).unwrap();
            std::os::unix::fs::symlink(&elsewhere_c, &conf_c).unwrap();
        })),
        ..Default::default()
    };
    // The apply sees the path, which now leads elsewhere; what matters is where the
    // bytes went: into the directory salve opened, never through the new symlink.
    let _ = run(run_edit(&file, &mut Counting { steps: 1 }, &host, 5));
    assert_eq!(
        fs::read_to_string(elsewhere.join("site.conf")).unwrap(),
        "not salve's\n"
    );
    let names: Vec<String> = fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["site.conf"], "nothing of salve's landed elsewhere");
    assert!(fs::read_to_string(moved.join("site.conf"))
        .unwrap()
        .starts_with(ORIGINAL));
}

#[test]
fn a_backup_gone_before_the_restore_still_puts_the_original_back() {
    let (dir, file) = Scratch::new("backup-gone", ORIGINAL);
    let dir_c = dir.0.clone();
    let host = FakeHost {
        file: fs::canonicalize(&file).unwrap(),
        // The second step's checker refuses; by then someone removed the backup.
        invalid: RefCell::new(VecDeque::from([false, true])),
        verify: RefCell::new(VecDeque::from([Some(false)])),
        meanwhile: Some(Box::new(move || {
            for entry in fs::read_dir(&dir_c).unwrap().flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .contains(".salve-backup.")
                {
                    fs::remove_file(entry.path()).unwrap();
                }
            }
        })),
        ..Default::default()
    };
    let failure = run(run_edit(&file, &mut Counting { steps: 3 }, &host, 5)).unwrap_err();
    assert!(failure.why.contains("original restored"), "{}", failure.why);
    assert_eq!(fs::read_to_string(&file).unwrap(), ORIGINAL);
}
