//! The journal's own thread: records are appended and fsync'd there, never on the
//! agent's runtime thread, so a slow or stalled disk delays only what must wait for
//! durability (an action waiting for its intent), never D-Bus events, probes or the
//! watchdog.
//!
//! Records are written in the order they are queued. A caller that must not go on
//! before its record is on disk awaits the [`Durable`] that `write` returns; a record
//! nobody waits for (a skip, an outcome) is queued with `record` and any failure is
//! logged from the writer thread.

use super::record::Record;
use super::{AuditError, Journal};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Records queued and not yet written, at most. A disk stalled long enough to fill this
/// makes new intents fail at once (their actions do not run) instead of the queue
/// growing without bound.
pub const QUEUE: usize = 1024;

/// Where the writer thread puts records: the journal, or in tests a sink that stalls.
pub trait Sink: Send + 'static {
    fn append(&mut self, record: &Record) -> Result<(), AuditError>;
}

impl Sink for Journal {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        Journal::append(self, record)
    }
}

impl Sink for Box<dyn Sink> {
    fn append(&mut self, record: &Record) -> Result<(), AuditError> {
        (**self).append(record)
    }
}

struct Job {
    record: Record,
    done: Option<oneshot::Sender<Result<(), AuditError>>>,
}

pub struct JournalWriter {
    path: PathBuf,
    queue: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// Resolves once the record is on disk, or with the reason it is not.
pub struct Durable(DurableState);

enum DurableState {
    Waiting(PathBuf, oneshot::Receiver<Result<(), AuditError>>),
    Ready(Option<Result<(), AuditError>>),
}

impl Future for Durable {
    type Output = Result<(), AuditError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let state = &mut self.get_mut().0;
        let result = match state {
            DurableState::Ready(result) => result.take(),
            DurableState::Waiting(path, rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(result)) => Some(result),
                Poll::Ready(Err(_)) => Some(Err(AuditError::WriterGone { path: path.clone() })),
                Poll::Pending => return Poll::Pending,
            },
        };
        *state = DurableState::Ready(None);
        // Polled again after it answered: never claim durability a second time.
        Poll::Ready(result.unwrap_or_else(|| {
            Err(AuditError::WriterGone {
                path: PathBuf::new(),
            })
        }))
    }
}

impl JournalWriter {
    /// Starts the writer thread over `sink`; `path` names the journal in errors.
    pub fn start(sink: impl Sink, path: PathBuf) -> Result<JournalWriter, AuditError> {
        JournalWriter::start_observed(sink, path, |_, _| {})
    }

    /// `start`, telling `observe` how long each record took to append and sync, and
    /// whether it was written (the agent's metrics).
    pub fn start_observed(
        sink: impl Sink,
        path: PathBuf,
        observe: impl Fn(std::time::Duration, bool) + Send + 'static,
    ) -> Result<JournalWriter, AuditError> {
        let (queue, jobs) = sync_channel::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("salve-journal".into())
            .spawn(move || write_all(sink, jobs, observe))
            .map_err(|cause| AuditError::Write {
                path: path.clone(),
                doing: "start the writer thread of",
                cause,
            })?;
        Ok(JournalWriter {
            path,
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `record`; the returned future resolves once it is durable.
    pub fn write(&self, record: Record) -> Durable {
        let (done, rx) = oneshot::channel();
        match self.enqueue(Job {
            record,
            done: Some(done),
        }) {
            Ok(()) => Durable(DurableState::Waiting(self.path.clone(), rx)),
            Err(e) => Durable(DurableState::Ready(Some(Err(e)))),
        }
    }

    /// Queues `record` without waiting; a failure to write it is logged.
    pub fn record(&self, record: Record) {
        let kind = record.entry.kind();
        if let Err(e) = self.enqueue(Job { record, done: None }) {
            tracing::error!(error = %e, kind, "journal record lost");
        }
    }

    fn enqueue(&self, job: Job) -> Result<(), AuditError> {
        let Some(queue) = &self.queue else {
            return Err(AuditError::WriterGone {
                path: self.path.clone(),
            });
        };
        queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => AuditError::Behind {
                path: self.path.clone(),
                queued: QUEUE,
            },
            TrySendError::Disconnected(_) => AuditError::WriterGone {
                path: self.path.clone(),
            },
        })
    }

    /// Writes what is queued, then stops the thread. Blocks until then: call it once
    /// nothing else needs the runtime (at shutdown).
    pub fn close(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "the journal writer thread panicked");
            }
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.shut();
    }
}

fn write_all(
    mut sink: impl Sink,
    jobs: std::sync::mpsc::Receiver<Job>,
    observe: impl Fn(std::time::Duration, bool),
) {
    for job in jobs {
        let started = std::time::Instant::now();
        let result = sink.append(&job.record);
        observe(started.elapsed(), result.is_ok());
        match job.done {
            Some(done) => {
                // The waiter may have given up (agent shutting down); the record is
                // written either way.
                let _ = done.send(result);
            }
            None => {
                if let Err(e) = result {
                    tracing::error!(error = %e, kind = job.record.entry.kind(), "cannot journal a record");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
