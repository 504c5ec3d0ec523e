//! The audit journal: every remediation decision, durably, as JSON Lines.
//!
//! Writing is append-only with size-based rotation ([`Journal`]); reading is
//! tolerant of the torn last line a crash leaves behind ([`read_journal`]);
//! [`filter`], [`render_table`] and [`render_json`] are the query and
//! rendering behind `salve history`.

pub(crate) mod history;
mod journal;
mod reader;
mod record;
mod recorder;
mod writer;

use std::io;
use std::path::PathBuf;

pub use history::{filter, render_json, render_table, HistoryFilter, OutcomeFilter};
pub use journal::{Journal, Rotation};
pub use reader::{read_journal, read_last, read_recent, JournalRead, ReadProblem};
pub(crate) use record::format_ts;
pub use record::{Entry, OutcomeResult, Record, Verification};
pub use recorder::{decision_record, drain_escalation, outcome_record};
pub use writer::{Durable, JournalWriter, Sink};

/// Everything that can go wrong in the audit module. Each message names the
/// file and suggests what to check, because the reader is usually an
/// operator looking at a controller that refused to act.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "cannot {doing} audit journal {}: {cause}; check that salve may write \
         there and that the disk is not full",
        path.display()
    )]
    Write {
        path: PathBuf,
        doing: &'static str,
        cause: io::Error,
    },

    #[error(
        "cannot {doing} audit journal {}: {cause}; check that the file and its \
         directory are readable",
        path.display()
    )]
    Read {
        path: PathBuf,
        doing: &'static str,
        cause: io::Error,
    },

    #[error(
        "cannot encode a {kind} record for audit journal {}: {cause}",
        path.display()
    )]
    Encode {
        path: PathBuf,
        kind: &'static str,
        cause: serde_json::Error,
    },

    #[error(
        "audit journal {} is in use by another salve (its lock file {} is held); \
         run one agent per journal, or give this one its own with --journal",
        path.display(),
        journal::lock_path(path).display()
    )]
    Locked { path: PathBuf },

    #[error(
        "audit journal {} is {queued} records behind (is the disk stalled?); \
         the record was not written",
        path.display()
    )]
    Behind { path: PathBuf, queued: usize },

    #[error("the writer of audit journal {} has stopped", path.display())]
    WriterGone { path: PathBuf },

    #[error(
        "unknown outcome filter {given:?}; use one of: ok, failed, timed_out, \
         not_applicable, unknown, skipped, dry_run"
    )]
    UnknownOutcomeFilter { given: String },
}

/// A scratch directory per test, removed on drop, so parallel tests and
/// reruns never see each other's journals.
#[cfg(test)]
pub(crate) struct TestDir(pub PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn new(name: &str) -> TestDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("salve-audit-{name}-{}-{n}", std::process::id()));
        // A leftover from a killed earlier run with the same pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    /// A record with a distinguishable id, for ordering assertions.
    pub(crate) fn record(id: u64) -> Record {
        Record {
            ts: std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            policy: "web".into(),
            target: "nginx".into(),
            entry: Entry::Outcome {
                id,
                result: OutcomeResult::Ok,
                error: None,
                duration_ms: 1,
                steps: Vec::new(),
                verification: None,
                diffs: Vec::new(),
            },
        }
    }

    pub(crate) fn ids(records: &[Record]) -> Vec<u64> {
        records.iter().filter_map(|r| r.entry.id()).collect()
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
