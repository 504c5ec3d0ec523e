//! Append-only journal writer with size-based rotation.
//!
//! One writer per journal: `open` takes an exclusive lock on `<journal>.lock` beside it
//! and holds it while the journal is open, so a second agent on the same journal (two
//! units, a forgotten foreground run) refuses to start instead of interleaving records
//! and rotating the other's file away. The lock is a separate file because rotation
//! renames the journal itself.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::record::Record;
use super::AuditError;

/// When to start a new file and how many old ones to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    /// Number of rotated files (`path.1` ... `path.keep`); 0 keeps none.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// An open journal. `append` returning `Ok` means the record is on disk.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Held for the journal's lifetime; the flock ends when it closes.
    _lock: File,
    rotation: Rotation,
    file: File,
    size: u64,
    /// Set when a write failed part-way, so the file may end mid-line.
    tail_suspect: bool,
}

impl Journal {
    pub fn open(path: &Path, rotation: Rotation) -> Result<Journal, AuditError> {
        let dir = parent_dir(path);
        fs::create_dir_all(dir).map_err(write_err(path, "create the directory of"))?;
        let lock = lock(path)?;
        let (file, size) = open_append(path)?;
        // The file may have just been created; its name must survive a crash
        // just like the records that will go into it.
        sync_dir(path)?;
        let mut journal = Journal {
            path: path.to_path_buf(),
            _lock: lock,
            rotation,
            file,
            size,
            tail_suspect: true,
        };
        journal.heal_tail()?;
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record` as one line and fsyncs it before returning, because
    /// callers run actions only once their intent is durable.
    pub fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).map_err(|source| AuditError::Encode {
            path: self.path.clone(),
            kind: record.entry.kind(),
            cause: source,
        })?;
        line.push(b'\n');
        if self.tail_suspect {
            self.heal_tail()?;
        }
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.rotation.max_bytes {
            self.rotate()?;
        }
        // A single write_all of the whole line: a crash can then only tear
        // the last line, which the reader knows how to skip.
        let written = self
            .file
            .write_all(&line)
            .map_err(write_err(&self.path, "append to"))
            .and_then(|()| {
                self.file
                    .sync_data()
                    .map_err(write_err(&self.path, "flush to disk"))
            });
        match written {
            Ok(()) => {
                self.size += len;
                Ok(())
            }
            Err(e) => {
                self.tail_suspect = true;
                Err(e)
            }
        }
    }

    /// Makes sure the file ends with '\n'. After a crash mid-write the last
    /// line is a fragment without one; appending straight after it would glue
    /// the next record onto the fragment and make that record unreadable.
    /// The fragment itself is kept (this journal never rewrites history) and
    /// the reader recognises it as a torn write.
    fn heal_tail(&mut self) -> Result<(), AuditError> {
        let size = self
            .file
            .metadata()
            .map_err(write_err(&self.path, "inspect"))?
            .len();
        if size > 0 {
            let mut last = [0u8; 1];
            self.file
                .seek(SeekFrom::End(-1))
                .and_then(|_| self.file.read_exact(&mut last))
                .map_err(write_err(&self.path, "read the end of"))?;
            if last[0] != b'\n' {
                tracing::warn!(path = %self.path.display(), "audit journal ends with a torn line; terminating it");
                self.file
                    .write_all(b"\n")
                    .and_then(|()| self.file.sync_data())
                    .map_err(write_err(&self.path, "repair the torn last line of"))?;
                self.size = size + 1;
                self.tail_suspect = false;
                return Ok(());
            }
        }
        self.size = size;
        self.tail_suspect = false;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        let keep = self.rotation.keep;
        tracing::debug!(path = %self.path.display(), keep, "rotating audit journal");
        // Files past `keep` (left by an earlier, larger setting) would never
        // be rotated away otherwise.
        let mut n = keep + 1;
        while remove_if_present(&rotated(&self.path, n))? {
            n += 1;
        }
        if keep == 0 {
            remove_if_present(&self.path)?;
        } else {
            // Oldest first, so a crash part-way leaves at worst a gap in the
            // numbering (the reader copes) and never loses a file.
            for n in (1..keep).rev() {
                rename_if_present(&rotated(&self.path, n), &rotated(&self.path, n + 1))?;
            }
            rename_if_present(&self.path, &rotated(&self.path, 1))?;
        }
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        // Renames and the new file are directory entries: without this a
        // crash could undo the rotation while later records sit in the file.
        sync_dir(&self.path)
    }
}

pub(super) fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The lock file's path: `<journal>.lock`, which no reader takes for a rotated file.
pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

fn lock(path: &Path) -> Result<File, AuditError> {
    let lock_path = lock_path(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(write_err(&lock_path, "open the lock of"))?;
    // SAFETY: flock(2) on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let cause = io::Error::last_os_error();
        return Err(if cause.raw_os_error() == Some(libc::EWOULDBLOCK) {
            AuditError::Locked {
                path: path.to_path_buf(),
            }
        } else {
            write_err(&lock_path, "lock")(cause)
        });
    }
    Ok(file)
}

fn open_append(path: &Path) -> Result<(File, u64), AuditError> {
    // `read` is for checking the last byte in `heal_tail`; in append mode
    // every write still lands at the end whatever the read position. 0640: the
    // journal holds evidence (log lines, URLs) for the service's group, not everyone.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o640)
        .open(path)
        .map_err(write_err(path, "open"))?;
    let size = file.metadata().map_err(write_err(path, "inspect"))?.len();
    Ok((file, size))
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<(), AuditError> {
    File::open(parent_dir(path))
        .and_then(|dir| dir.sync_all())
        .map_err(write_err(path, "flush the directory entry of"))
}

/// Other platforms cannot open a directory to fsync it; their file systems
/// make renames durable by other means or not at all.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<(), AuditError> {
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<bool, AuditError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(write_err(path, "remove old rotated")(e)),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> Result<(), AuditError> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(write_err(from, "rotate")(e)),
        _ => Ok(()),
    }
}

fn write_err(path: &Path, doing: &'static str) -> impl FnOnce(io::Error) -> AuditError {
    let path = path.to_path_buf();
    move |source| AuditError::Write {
        path,
        doing,
        cause: source,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{read_journal, TestDir};
    use super::*;

    fn line_len() -> u64 {
        serde_json::to_vec(&TestDir::record(0)).unwrap().len() as u64 + 1
    }

    fn append_ids(journal: &mut Journal, ids: std::ops::Range<u64>) {
        for id in ids {
            journal.append(&TestDir::record(id)).unwrap();
        }
    }

    #[test]
    fn rotation_keeps_the_newest_files_in_order() {
        let dir = TestDir::new("rotate");
        let path = dir.0.join("audit.jsonl");
        // Room for exactly two records per file.
        let rotation = Rotation {
            max_bytes: 2 * line_len() + 1,
            keep: 2,
        };
        let mut journal = Journal::open(&path, rotation).unwrap();
        append_ids(&mut journal, 0..10);
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists(), "only `keep` rotated files");
        let read = read_journal(&path).unwrap();
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        assert_eq!(TestDir::ids(&read.records), [4, 5, 6, 7, 8, 9]);
        let newest = read_journal(&rotated(&path, 2)).unwrap();
        assert_eq!(TestDir::ids(&newest.records), [4, 5]);
    }

    #[test]
    fn keep_zero_keeps_only_the_live_file() {
        let dir = TestDir::new("keep0");
        let path = dir.0.join("audit.jsonl");
        let rotation = Rotation {
            max_bytes: 2 * line_len() + 1,
            keep: 0,
        };
        let mut journal = Journal::open(&path, rotation).unwrap();
        append_ids(&mut journal, 0..5);
        assert!(!rotated(&path, 1).exists());
        assert_eq!(TestDir::ids(&read_journal(&path).unwrap().records), [4]);
    }

    #[test]
    fn rotation_removes_files_beyond_a_smaller_keep() {
        let dir = TestDir::new("shrink");
        let path = dir.0.join("audit.jsonl");
        for n in [2, 3] {
            fs::write(rotated(&path, n), b"").unwrap();
        }
        let rotation = Rotation {
            max_bytes: line_len(),
            keep: 1,
        };
        let mut journal = Journal::open(&path, rotation).unwrap();
        append_ids(&mut journal, 0..2);
        assert!(!rotated(&path, 2).exists() && !rotated(&path, 3).exists());
        assert_eq!(TestDir::ids(&read_journal(&path).unwrap().records), [0, 1]);
    }

    #[test]
    fn reopen_after_torn_tail_keeps_new_records_intact() {
        let dir = TestDir::new("heal");
        let path = dir.0.join("nested/dirs/audit.jsonl");
        let mut journal = Journal::open(&path, Rotation::default()).unwrap();
        append_ids(&mut journal, 0..2);
        drop(journal);
        let fragment = br#"{"ts":"2023-11-14T22:13:20.000Z","policy":"we"#;
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(fragment)
            .unwrap();
        let mut journal = Journal::open(&path, Rotation::default()).unwrap();
        append_ids(&mut journal, 2..3);
        let text = fs::read(&path).unwrap();
        let mut healed = fragment.to_vec();
        healed.push(b'\n');
        assert!(
            text.windows(healed.len()).any(|w| w == healed),
            "fragment kept and terminated"
        );
        let read = read_journal(&path).unwrap();
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        assert_eq!(TestDir::ids(&read.records), [0, 1, 2]);
    }

    #[test]
    fn newlines_inside_fields_stay_on_one_line() {
        let dir = TestDir::new("oneline");
        let path = dir.0.join("audit.jsonl");
        let mut record = TestDir::record(0);
        record.policy = "multi\nline".into();
        let mut journal = Journal::open(&path, Rotation::default()).unwrap();
        journal.append(&record).unwrap();
        journal.append(&record).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert_eq!(
            read_journal(&path).unwrap().records,
            [record.clone(), record]
        );
    }

    #[test]
    fn open_error_names_the_path() {
        let dir = TestDir::new("openerr");
        let blocker = dir.0.join("not-a-dir");
        fs::write(&blocker, b"").unwrap();
        let path = blocker.join("audit.jsonl");
        let err = Journal::open(&path, Rotation::default()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, AuditError::Write { .. }), "{message}");
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
    }

    #[test]
    fn a_second_writer_on_the_same_journal_is_refused_until_the_first_closes() {
        let dir = TestDir::new("lock");
        let path = dir.0.join("audit.jsonl");
        let first = Journal::open(&path, Rotation::default()).unwrap();
        let err = Journal::open(&path, Rotation::default()).unwrap_err();
        assert!(matches!(err, AuditError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another salve"), "{err}");
        drop(first);
        Journal::open(&path, Rotation::default()).unwrap();
    }

    #[test]
    fn the_journal_is_created_readable_by_its_group_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TestDir::new("mode");
        let path = dir.0.join("audit.jsonl");
        let _journal = Journal::open(&path, Rotation::default()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "{mode:o}");
        assert_eq!(mode & 0o022, 0, "{mode:o}");
    }
}
