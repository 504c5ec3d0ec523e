//! What a unit operation can end with, as types: callers decide by variant (a job that
//! timed out, a bus that is down), never by the text systemd or zbus wrote.

use std::time::Duration;

/// A job's result as systemd's `JobRemoved` signal names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "lowercase")]
pub enum JobResult {
    Done,
    Canceled,
    Timeout,
    Failed,
    Dependency,
    Skipped,
    Invalid,
    Assert,
    Unsupported,
    Collected,
    Once,
    Frozen,
    Concurrency,
    /// A result this salve does not know (a newer systemd): never a success.
    #[strum(serialize = "unknown")]
    Other,
}

impl JobResult {
    pub fn parse(text: &str) -> JobResult {
        text.parse().unwrap_or(JobResult::Other)
    }
}

/// How an operation ended: with a job and its result, or at once (reset-failed, kill,
/// enable, a state read), which systemd answers without a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Job(JobResult),
    Immediate,
}

impl Completion {
    pub fn succeeded(self) -> bool {
        matches!(
            self,
            Completion::Immediate | Completion::Job(JobResult::Done)
        )
    }

    pub fn timed_out(self) -> bool {
        self == Completion::Job(JobResult::Timeout)
    }
}

impl std::fmt::Display for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Completion::Job(result) => write!(f, "job {result}"),
            Completion::Immediate => f.write_str("ok"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UnitOpError {
    #[error("timed out after {}", humantime::format_duration(*after))]
    TimedOut { after: Duration },
    #[error("the systemd link has stopped")]
    LinkStopped,
    #[error("the systemd link dropped the request (D-Bus connection lost?)")]
    Dropped,
    #[error("D-Bus connection to systemd is down; reconnecting")]
    BusDown,
    /// systemd answered with an error (no such unit, access denied, …): the bus is fine.
    #[error("systemd refused {op} on {unit}: {name}: {detail}")]
    Refused {
        op: &'static str,
        unit: String,
        name: String,
        detail: String,
    },
    #[error("D-Bus call failed: {0}")]
    Call(String),
}

impl UnitOpError {
    pub fn timed_out(&self) -> bool {
        matches!(self, UnitOpError::TimedOut { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_results_parse_as_systemd_spells_them() {
        assert_eq!(JobResult::parse("done"), JobResult::Done);
        assert_eq!(JobResult::parse("timeout"), JobResult::Timeout);
        assert_eq!(JobResult::parse("dependency"), JobResult::Dependency);
        assert_eq!(JobResult::parse("something-new"), JobResult::Other);
        assert!(Completion::Job(JobResult::Done).succeeded());
        assert!(Completion::Immediate.succeeded());
        assert!(!Completion::Job(JobResult::Other).succeeded());
        assert!(Completion::Job(JobResult::Timeout).timed_out());
        assert_eq!(Completion::Job(JobResult::Failed).to_string(), "job failed");
    }
}
