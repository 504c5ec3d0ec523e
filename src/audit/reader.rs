//! Reading the journal back, tolerating what a crash can leave behind.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::journal::parent_dir;
use super::record::Record;
use super::AuditError;

/// Everything read from a journal and its rotated files, oldest first.
#[derive(Debug, Default)]
pub struct JournalRead {
    pub records: Vec<Record>,
    pub problems: Vec<ReadProblem>,
}

/// A line that could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadProblem {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ReadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Reads `path.N` ... `path.1`, then `path`. No journal at all reads as empty:
/// a controller that has not acted yet has no history, which is not an error.
pub fn read_journal(path: &Path) -> Result<JournalRead, AuditError> {
    let mut out = JournalRead::default();
    for file in journal_files(path)? {
        read_file(&file, &mut out)?;
    }
    Ok(out)
}

/// The longest line `read_recent` parses; a record is a few KiB at most (4 KiB of
/// stderr, diffs of small config files), so anything longer is not one of salve's.
const MAX_RECORD: usize = 4 * 1024 * 1024;

/// The records of `path` and its rotated files with `ts >= since` for which `keep`
/// says yes, oldest first, reading line by line (`keep` sees every record, older ones
/// too, so it can take note of them): at start the agent needs only the
/// attempts inside its policies' windows, not every skip of 60 MiB of journal in memory.
/// Unreadable lines are skipped (and counted in `problems`), as `read_journal` does.
pub fn read_recent(
    path: &Path,
    since: std::time::SystemTime,
    keep: impl Fn(&Record) -> bool,
) -> Result<JournalRead, AuditError> {
    use std::io::{BufRead, Read};
    let mut out = JournalRead::default();
    for file in journal_files(path)? {
        let handle = match fs::File::open(&file) {
            Ok(handle) => handle,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(read_err(&file, "read")(e)),
        };
        let mut reader = io::BufReader::new(handle);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_RECORD as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(read_err(&file, "read"))?;
            if n == 0 {
                break;
            }
            number += 1;
            if line.last() != Some(&b'\n') {
                if n > MAX_RECORD {
                    // Skip the rest of the overlong line.
                    let mut rest = Vec::new();
                    while !matches!(rest.last(), Some(b'\n')) {
                        rest.clear();
                        let m = (&mut reader)
                            .take(MAX_RECORD as u64)
                            .read_until(b'\n', &mut rest)
                            .map_err(read_err(&file, "read"))?;
                        if m == 0 {
                            break;
                        }
                    }
                    out.problems.push(ReadProblem {
                        file: file.clone(),
                        line: number,
                        message: format!("line longer than {MAX_RECORD} bytes"),
                    });
                }
                // Else an unterminated last line: a write that never completed.
                continue;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(&line) {
                Ok(record) if keep(&record) && record.ts >= since => out.records.push(record),
                Ok(_) => {}
                Err(e) if e.is_eof() => {}
                Err(e) => out.problems.push(ReadProblem {
                    file: file.clone(),
                    line: number,
                    message: format!("not a journal record: {e}"),
                }),
            }
        }
    }
    Ok(out)
}

fn read_file(file: &Path, out: &mut JournalRead) -> Result<(), AuditError> {
    let bytes = match fs::read(file) {
        Ok(bytes) => bytes,
        // Rotated away between listing and reading.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(read_err(file, "read")(e)),
    };
    let terminated = bytes.last() == Some(&b'\n');
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // `split` yields at least one (possibly empty) piece, so no underflow.
    let last = lines.len() - 1;
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => out.records.push(record),
            // A write in progress, or one cut short by a crash: it was never
            // acknowledged, so nothing is missing.
            Err(_) if i == last && !terminated => {
                tracing::debug!(file = %file.display(), line = i + 1, "ignoring unterminated last line");
            }
            // JSON that simply stops is a torn write that a later
            // `Journal::open` terminated; garbage would be a syntax error.
            Err(e) if e.is_eof() => {
                tracing::warn!(file = %file.display(), line = i + 1, "skipping record torn by an earlier crash");
            }
            Err(e) => out.problems.push(ReadProblem {
                file: file.to_path_buf(),
                line: i + 1,
                message: format!("not a journal record: {e}"),
            }),
        }
    }
    Ok(())
}

/// The journal's files in chronological order. Rotated files are found by
/// listing the directory rather than probing 1, 2, ... because a crash during
/// rotation can leave a gap in the numbering.
/// How much of each file's end `read_last` reads: 50 records are a few dozen KiB.
const TAIL_BYTES: u64 = 256 * 1024;

/// The last `count` records, oldest first, from the ends of the journal and (when it
/// holds fewer since its rotation) the newest rotated file: at most [`TAIL_BYTES`] of
/// each is read, however large the journal. Unreadable lines are left out.
pub fn read_last(path: &Path, count: usize) -> Result<Vec<Record>, AuditError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut files = journal_files(path)?;
    let mut newest_first = Vec::new();
    while newest_first.len() < count {
        let Some(file) = files.pop() else { break };
        let mut handle = match fs::File::open(&file) {
            Ok(handle) => handle,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(read_err(&file, "read")(e)),
        };
        let length = handle.metadata().map_err(read_err(&file, "read"))?.len();
        let from = length.saturating_sub(TAIL_BYTES);
        handle
            .seek(SeekFrom::Start(from))
            .map_err(read_err(&file, "read"))?;
        let mut tail = Vec::new();
        handle
            .take(TAIL_BYTES)
            .read_to_end(&mut tail)
            .map_err(read_err(&file, "read"))?;
        let mut lines: Vec<&[u8]> = tail.split(|&b| b == b'\n').collect();
        // Read from the middle of a file, the first piece is the end of a line; the last
        // piece is what follows the final newline (empty, or a write cut off).
        if from > 0 && !lines.is_empty() {
            lines.remove(0);
        }
        lines.pop();
        for line in lines.into_iter().rev() {
            if newest_first.len() == count {
                break;
            }
            if let Ok(record) = serde_json::from_slice::<Record>(line) {
                newest_first.push(record);
            }
        }
    }
    newest_first.reverse();
    Ok(newest_first)
}

fn journal_files(path: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let Some(name) = path.file_name() else {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name");
        return Err(read_err(path, "locate")(source));
    };
    let mut prefix = name.as_encoded_bytes().to_vec();
    prefix.push(b'.');
    let entries = match fs::read_dir(parent_dir(path)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(path, "list the directory of")(e)),
    };
    let mut rotated_files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err(path, "list the directory of"))?;
        let file_name = entry.file_name();
        let Some(suffix) = file_name.as_encoded_bytes().strip_prefix(prefix.as_slice()) else {
            continue;
        };
        // Exactly the names `rotated` produces: no sign, no leading zero.
        let number = std::str::from_utf8(suffix)
            .ok()
            .filter(|s| !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(n) = number {
            rotated_files.push((n, entry.path()));
        }
    }
    rotated_files.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = rotated_files.into_iter().map(|(_, p)| p).collect();
    files.push(path.to_path_buf());
    Ok(files)
}

fn read_err(path: &Path, doing: &'static str) -> impl FnOnce(io::Error) -> AuditError {
    let path = path.to_path_buf();
    move |source| AuditError::Read {
        path,
        doing,
        cause: source,
    }
}

#[cfg(test)]
mod tests {
    use super::super::TestDir;
    use super::*;

    fn line(id: u64) -> String {
        serde_json::to_string(&TestDir::record(id)).unwrap() + "\n"
    }

    #[test]
    fn missing_journal_is_empty_not_an_error() {
        let dir = TestDir::new("missing");
        for path in [dir.0.join("audit.jsonl"), dir.0.join("no/such/dir/a.jsonl")] {
            let read = read_journal(&path).unwrap();
            assert!(read.records.is_empty() && read.problems.is_empty());
        }
    }

    #[test]
    fn the_last_records_come_from_the_ends_of_the_journal_and_its_newest_rotation() {
        let dir = TestDir::new("last");
        let path = dir.0.join("audit.jsonl");
        assert!(read_last(&path, 50).unwrap().is_empty(), "no journal yet");
        let rotated: String = (0..5).map(line).collect();
        fs::write(dir.0.join("audit.jsonl.1"), rotated).unwrap();
        // A torn last write and a garbled line are left out.
        fs::write(
            &path,
            line(5) + "disk ate this {\n" + &line(6) + &line(7)[..30],
        )
        .unwrap();
        assert_eq!(TestDir::ids(&read_last(&path, 3).unwrap()), [4, 5, 6]);
        assert_eq!(
            TestDir::ids(&read_last(&path, 50).unwrap()),
            [0, 1, 2, 3, 4, 5, 6]
        );
        // A journal larger than the tail read: only its end is read, whole lines only.
        let big: String = (100..100 + 4000).map(line).collect();
        assert!(big.len() as u64 > TAIL_BYTES);
        fs::write(&path, big).unwrap();
        let last = read_last(&path, 50).unwrap();
        assert_eq!(TestDir::ids(&last), (4050..4100).collect::<Vec<_>>());
    }

    #[test]
    fn torn_last_line_is_tolerated() {
        let dir = TestDir::new("torn");
        let path = dir.0.join("audit.jsonl");
        let torn = &line(3)[..40];
        fs::write(&path, line(0) + &line(1) + &line(2) + torn).unwrap();
        let read = read_journal(&path).unwrap();
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        assert_eq!(TestDir::ids(&read.records), [0, 1, 2]);
    }

    #[test]
    fn garbled_middle_line_is_reported_with_its_number() {
        let dir = TestDir::new("garbled");
        let path = dir.0.join("audit.jsonl");
        let text = line(0) + "\n" + "disk ate this {\n" + &line(1) + &line(2);
        fs::write(&path, text).unwrap();
        let read = read_journal(&path).unwrap();
        assert_eq!(TestDir::ids(&read.records), [0, 1, 2]);
        assert_eq!(read.problems.len(), 1, "{:?}", read.problems);
        let problem = &read.problems[0];
        assert_eq!((problem.file.as_path(), problem.line), (path.as_path(), 3));
        assert!(problem
            .to_string()
            .contains("audit.jsonl:3: not a journal record"));
    }

    #[test]
    fn terminated_bad_last_line_is_a_problem() {
        let dir = TestDir::new("badlast");
        let path = dir.0.join("audit.jsonl");
        // Well-formed JSON but not a record: a crash cannot produce this.
        fs::write(&path, line(0) + "{\"kind\":\"nope\"}\n").unwrap();
        let read = read_journal(&path).unwrap();
        assert_eq!(TestDir::ids(&read.records), [0]);
        assert_eq!(read.problems.len(), 1);
        assert_eq!(read.problems[0].line, 2);
    }

    #[test]
    fn rotated_files_are_read_oldest_first_despite_gaps() {
        let dir = TestDir::new("order");
        let path = dir.0.join("audit.jsonl");
        let file = |suffix: &str| dir.0.join(format!("audit.jsonl{suffix}"));
        fs::write(file(".12"), line(0)).unwrap();
        fs::write(file(".3"), line(1) + &line(2)).unwrap();
        fs::write(file(".1"), line(3)).unwrap();
        fs::write(&path, line(4)).unwrap();
        // Look-alikes that are not rotated files of this journal.
        for decoy in [".0", ".01", ".+4", ".bak", ".1.tmp", "x.2"] {
            fs::write(file(decoy), line(99)).unwrap();
        }
        fs::write(dir.0.join("other.jsonl.2"), line(99)).unwrap();
        let read = read_journal(&path).unwrap();
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        assert_eq!(TestDir::ids(&read.records), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn rotated_files_are_read_even_if_the_live_file_is_gone() {
        let dir = TestDir::new("nolive");
        let path = dir.0.join("audit.jsonl");
        fs::write(dir.0.join("audit.jsonl.1"), line(7)).unwrap();
        assert_eq!(TestDir::ids(&read_journal(&path).unwrap().records), [7]);
    }
}
