//! Follows one log file like `tail -F`, pushed by inotify, and sends every complete line
//! appended after start as `Event::Log`. The decisions (line splitting, truncation,
//! which file to read) live in `lines`; this file only does the I/O around them.
//!
//! Two watches: the directory, for the name (`CREATE`/`MOVED_TO`: a new file took the
//! name after rotation or deletion; `MODIFY` of the name), and the open file itself
//! (`MODIFY`/`MOVE_SELF`/`DELETE_SELF`), because after `rename` rotation nginx keeps
//! writing to the old file, under another name, until it is told to reopen (USR1).
//! Every relevant event triggers the same step: drain the open file, then look at what
//! the path names now. Deciding from the file system rather than from the event kind
//! makes missed or coalesced events (and `IN_Q_OVERFLOW`) harmless.

use super::lines::{path_change, read_from, FileId, LineSplitter, PathChange, ReadFrom};
use super::scan::LineScanner;
use crate::engine::{Event, LogLine};
use futures_util::StreamExt;
use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Bytes read per `read` call. Reads of a local regular file do not block for long, so
/// they run on the task itself: a round trip through `spawn_blocking` per chunk would add
/// latency to every line. Sending between chunks yields to the runtime.
const CHUNK: usize = 64 * 1024;

/// Chunks read per wake-up before the follower yields to the rest of the agent and
/// comes back for more without waiting for a new event: a log written faster than it is
/// read (or a huge backlog after rotation) must not keep the only runtime thread busy.
const CHUNKS_PER_WAKE: usize = 16;

/// How often to retry when the log's directory does not exist yet (or inotify cannot be
/// set up). Only this start-up wait polls; once watching, everything is pushed.
const RETRY: Duration = Duration::from_secs(1);

/// Follows `path` until `shutdown` turns true (or its sender is dropped) or nobody reads
/// `tx`. Starts at the current end of the file: old lines are not news. A file that does
/// not exist yet is waited for and then read from its start, as is every file that takes
/// the name later (rotation, delete and recreate). Truncation restarts at offset 0.
pub async fn follow(
    path: PathBuf,
    tx: crate::signal::EventSender,
    shutdown: watch::Receiver<bool>,
) {
    follow_with_ready(path, None, tx, shutdown, None).await
}

/// `follow`, sending only the lines `scanner` says may match: the agent passes the
/// patterns of every trigger on this file, so the engine (which matches each trigger
/// again) is not woken for the noise that makes up most of an error log.
pub async fn follow_filtered(
    path: PathBuf,
    scanner: Arc<LineScanner>,
    tx: crate::signal::EventSender,
    shutdown: watch::Receiver<bool>,
) {
    follow_with_ready(path, Some(scanner), tx, shutdown, None).await
}

/// `follow`, telling `ready` once the watches are in place and the starting offset is
/// known: lines written after that are guaranteed to be seen. Tests wait for it.
pub(crate) async fn follow_with_ready(
    path: PathBuf,
    scanner: Option<Arc<LineScanner>>,
    tx: crate::signal::EventSender,
    mut shutdown: watch::Receiver<bool>,
    mut ready: Option<oneshot::Sender<()>>,
) {
    let Some(name) = path.file_name().map(|n| n.to_os_string()) else {
        tracing::error!(path = %path.display(), "log path names no file; not following it");
        return;
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut warned = false;
    let (mut stream, dir_wd) = loop {
        match watch_dir(&dir) {
            Ok(watching) => break watching,
            Err(e) => {
                if !warned {
                    tracing::warn!(path = %path.display(), error = %e, "cannot watch the log's directory yet; retrying every second");
                    warned = true;
                }
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|&stop| stop) => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    };
    let mut follower = Follower {
        path: path.clone(),
        watches: stream.watches(),
        open: None,
        splitter: LineSplitter::default(),
        scanner,
        started: false,
        backlog: false,
        refused: None,
    };
    loop {
        // Each step (wait for an event, read, send) races shutdown, so neither a quiet
        // file nor a full channel delays stopping.
        let step = async {
            if follower.started && !follower.backlog {
                match stream.next().await {
                    Some(Ok(event)) if relevant(&event, &dir_wd, &name) => {}
                    Some(Ok(_)) => return true,
                    Some(Err(e)) => {
                        tracing::warn!(path = %path.display(), error = %e, "inotify failed; no longer following the log");
                        return false;
                    }
                    None => return false,
                }
            }
            if follower.backlog {
                tokio::task::yield_now().await;
            }
            let sent = follower.sync(&tx).await;
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            sent
        };
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|&stop| stop) => return,
            keep_going = step => if !keep_going { return },
        }
    }
}

/// A directory event about another file (an access log next to the error log) is noise;
/// everything else (our name, the open file's own watch, a queue overflow) is a reason
/// to look again.
fn relevant(event: &inotify::Event<OsString>, dir_wd: &WatchDescriptor, name: &OsString) -> bool {
    event.wd != *dir_wd || event.name.as_ref().is_none_or(|n| n == name)
}

fn watch_dir(dir: &Path) -> io::Result<(inotify::EventStream<Vec<u8>>, WatchDescriptor)> {
    let inotify = Inotify::init()?;
    let wd = inotify.watches().add(
        dir,
        WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::MODIFY,
    )?;
    Ok((inotify.into_event_stream(vec![0u8; 4096])?, wd))
}

struct OpenFile {
    file: File,
    id: FileId,
    offset: u64,
    wd: Option<WatchDescriptor>,
}

struct Follower {
    path: PathBuf,
    watches: Watches,
    open: Option<OpenFile>,
    splitter: LineSplitter,
    scanner: Option<Arc<LineScanner>>,
    /// Whether the first look is done: only a file present then is read from its end.
    started: bool,
    /// The last drain stopped at its budget with more to read.
    backlog: bool,
    /// The non-regular file last found at the path (a FIFO, a device, a socket), so it
    /// is reported once, not on every event.
    refused: Option<FileId>,
}

impl Follower {
    /// Drains the open file, then switches to the file the path names if that is another
    /// one. Returns false when the receiver is gone.
    async fn sync(&mut self, tx: &crate::signal::EventSender) -> bool {
        if !self.drain(tx).await {
            return false;
        }
        // The open file is not read to its end yet: switching now would lose the rest
        // of it (after rotation nginx may still be writing there). Come back for more
        // first; the next step follows the path.
        if self.backlog {
            return true;
        }
        let at_path = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| self.readable(&m));
        let open_id = self.open.as_ref().map(|o| o.id);
        if let PathChange::Switch { from_end } = path_change(open_id, at_path, self.started) {
            match self.open_path(from_end) {
                Ok(new) => {
                    // The old file was drained above; a line it left unfinished will
                    // never get its newline, but it was written, so it is delivered.
                    if let Some(line) = self.splitter.finish() {
                        if !self.send(tx, line).await {
                            return false;
                        }
                    }
                    if let Some(wd) = self.open.take().and_then(|old| old.wd) {
                        // Fails when the kernel already dropped the watch (file deleted).
                        let _ = self.watches.remove(wd);
                    }
                    self.open = Some(new);
                    if !self.drain(tx).await {
                        return false;
                    }
                }
                // Gone again between stat and open: the next event tells what came next.
                Err(e) => {
                    tracing::debug!(path = %self.path.display(), error = %e, "cannot open the log yet")
                }
            }
        }
        self.started = true;
        true
    }

    /// The file at the path if it is one salve reads: only a regular file. Opening a
    /// FIFO blocks until a writer appears, and reading /dev/zero never ends; either would
    /// stall the agent's only runtime thread. Anything else is logged once and looked at
    /// again on the next event in the directory.
    fn readable(&mut self, meta: &std::fs::Metadata) -> Option<FileId> {
        let id = file_id(meta);
        if meta.is_file() {
            self.refused = None;
            return Some(id);
        }
        if self.refused != Some(id) {
            self.refused = Some(id);
            tracing::warn!(path = %self.path.display(), kind = file_kind(meta), "the log path is not a regular file; not reading it until a regular file takes its place");
        }
        None
    }

    fn open_path(&mut self, from_end: bool) -> io::Result<OpenFile> {
        // O_NONBLOCK: if the name was replaced by a FIFO between stat and open, the
        // open returns at once instead of waiting for a writer; the check below then
        // refuses it. On a regular file the flag changes nothing.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            self.readable(&meta);
            return Err(io::Error::other("not a regular file"));
        }
        // The watch follows this inode wherever it is renamed to; if the name was
        // replaced again between open and here, the directory watch brings us back.
        let wd = self
            .watches
            .add(
                &self.path,
                WatchMask::MODIFY | WatchMask::MOVE_SELF | WatchMask::DELETE_SELF,
            )
            .ok();
        Ok(OpenFile {
            file,
            id: file_id(&meta),
            offset: if from_end { meta.len() } else { 0 },
            wd,
        })
    }

    /// Reads the open file from our offset towards its current end, at most
    /// `CHUNKS_PER_WAKE` chunks (setting `backlog` if it stopped there), and sends each
    /// complete line. A file now shorter than the offset was truncated: start again at 0.
    async fn drain(&mut self, tx: &crate::signal::EventSender) -> bool {
        self.backlog = false;
        let Some(open) = self.open.as_mut() else {
            return true;
        };
        let size = open.file.metadata().map(|m| m.len()).unwrap_or(open.offset);
        if read_from(open.offset, size) == ReadFrom::Truncated {
            self.splitter.reset();
            open.offset = 0;
        }
        let mut buf = vec![0u8; CHUNK];
        for _ in 0..CHUNKS_PER_WAKE {
            let Some(open) = self.open.as_mut() else {
                return true;
            };
            let n = match open.file.read_at(&mut buf, open.offset) {
                Ok(0) => return true,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot read the log");
                    return true;
                }
            };
            open.offset += n as u64;
            let mut lines = Vec::new();
            match &self.scanner {
                Some(scanner) => self
                    .splitter
                    .push_candidates(&buf[..n], scanner, &mut lines),
                None => self.splitter.push(&buf[..n], &mut lines),
            }
            for line in lines {
                if !self.send(tx, line).await {
                    return false;
                }
            }
        }
        self.backlog = true;
        true
    }

    async fn send(&self, tx: &crate::signal::EventSender, line: String) -> bool {
        let event = Event::Log(LogLine {
            path: self.path.clone(),
            line,
        });
        tx.send(event).await.is_ok()
    }
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_fifo() {
        "fifo"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_dir() {
        "directory"
    } else {
        "other"
    }
}

fn file_id(meta: &std::fs::Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;
