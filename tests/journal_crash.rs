//! The journal's durability promise, tested against a real crash: a writer
//! process is SIGKILLed mid-stream, and every record whose `append` had
//! returned must still be readable.
//!
//! The writer is this same test binary re-run with `--exact` on
//! `journal_child_writer`, which only writes when `CHILD_ENV` is set; in a
//! normal run it returns at once.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use salve::audit::{read_journal, Entry, Journal, Record, Rotation};

const CHILD_ENV: &str = "SALVE_JOURNAL_CHILD";

/// Small enough that a few hundred records already rotate, so kills can land
/// around a rotation too; large `keep` so nothing acknowledged is rotated away.
const CHILD_ROTATION: Rotation = Rotation {
    max_bytes: 64 * 1024,
    keep: 100,
};

fn record(id: u64) -> Record {
    Record {
        ts: SystemTime::now(),
        policy: "web-health".into(),
        target: "nginx.service".into(),
        entry: Entry::Intent {
            id,
            attempt: 1,
            actions: vec!["restart".into(), "reload-config".into()],
            dry_run: false,
            evidence: vec![format!("probe http://localhost/health failed: 503 (#{id})")],
        },
    }
}

#[test]
fn journal_child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut journal = Journal::open(Path::new(&path), CHILD_ROTATION).unwrap();
    let mut out = std::io::stdout().lock();
    // libtest has printed "test journal_child_writer ... " without a newline;
    // start on a fresh line so the parent sees each ack alone on its line.
    writeln!(out).unwrap();
    for id in 0.. {
        journal.append(&record(id)).unwrap();
        writeln!(out, "acked {id}").unwrap();
        out.flush().unwrap();
    }
}

struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir =
            std::env::temp_dir().join(format!("salve-journal-crash-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the writer even when an assertion fails first, so no test run
/// leaves a process appending forever.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a writer on `journal`, SIGKILLs it once `acks` appends have been
/// acknowledged, and returns every acknowledged id.
fn write_until_killed(journal: &Path, acks: usize) -> Vec<u64> {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "--exact",
            "journal_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut writer = Writer(child);
    let stdout = writer.0.stdout.take().unwrap();

    // A reader thread, so a wedged child fails the test instead of hanging it.
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            // An unterminated line was cut by the kill; it proves nothing.
            if let Some(id) = line
                .strip_suffix('\n')
                .and_then(|l| l.strip_prefix("acked "))
            {
                if tx.send(id.parse::<u64>().unwrap()).is_err() {
                    break;
                }
            }
            line.clear();
        }
    });

    let mut acked = Vec::new();
    while acked.len() < acks {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(id) => acked.push(id),
            Err(e) => panic!("writer stopped after {} acks: {e}", acked.len()),
        }
    }
    writer.0.kill().unwrap();
    let status = writer.0.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "writer was not killed: {status}");
    }
    #[cfg(not(unix))]
    assert!(!status.success());
    // Acks still in the pipe were acknowledged before the kill: count them.
    acked.extend(rx.iter());
    reader.join().unwrap();
    assert_eq!(first_gap(&acked), None, "writer acknowledged out of order");
    acked
}

/// The first position whose id is not its index, so failures print one
/// number instead of thousands.
fn first_gap(ids: &[u64]) -> Option<(usize, u64)> {
    ids.iter()
        .enumerate()
        .find(|&(i, &id)| id != i as u64)
        .map(|(i, &id)| (i, id))
}

fn ids(records: &[Record]) -> Vec<u64> {
    records.iter().filter_map(|r| r.entry.id()).collect()
}

/// Every acknowledged id once, in order, contiguous from 0, plus at most the
/// one record that was durable but killed before its ack was printed.
fn assert_complete(read_ids: &[u64], acked: usize) {
    assert_eq!(first_gap(read_ids), None, "ids not contiguous from 0");
    assert!(
        read_ids.len() == acked || read_ids.len() == acked + 1,
        "{} records read for {acked} acks",
        read_ids.len()
    );
}

#[test]
fn killed_writer_loses_no_acknowledged_record() {
    let dir = TestDir::new("kill");
    let path = dir.0.join("audit.jsonl");
    let acked = write_until_killed(&path, 2000);

    assert!(
        dir.0.join("audit.jsonl.2").exists(),
        "the writer should have rotated at least twice"
    );
    let read = read_journal(&path).unwrap();
    assert!(read.problems.is_empty(), "{:?}", read.problems);
    assert_complete(&ids(&read.records), acked.len());
}

#[test]
fn reopen_after_kill_and_torn_tail_appends_cleanly() {
    let dir = TestDir::new("torn");
    let path = dir.0.join("audit.jsonl");
    let acked = write_until_killed(&path, 300);
    let before = read_journal(&path).unwrap();
    assert!(before.problems.is_empty(), "{:?}", before.problems);
    assert_complete(&ids(&before.records), acked.len());

    // What a crash in the middle of the next write would have left.
    let next = before.records.len() as u64;
    let full = serde_json::to_string(&record(next)).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&full.as_bytes()[..full.len() / 2])
        .unwrap();

    let mut journal = Journal::open(&path, CHILD_ROTATION).unwrap();
    let last = record(next);
    journal.append(&last).unwrap();
    drop(journal);

    let after = read_journal(&path).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    let after_ids = ids(&after.records);
    assert_eq!(first_gap(&after_ids), None);
    assert_eq!(after_ids.len() as u64, next + 1);
    assert_eq!(after.records.last(), Some(&reparsed(&last)));
}

/// `last` as it reads back: timestamps keep only milliseconds.
fn reparsed(record: &Record) -> Record {
    serde_json::from_str(&serde_json::to_string(record).unwrap()).unwrap()
}
