//! Config edits, done the way a careful operator would: compute the new text, have the
//! service's own checker validate it *before* it replaces the file, keep a backup, swap
//! it in with an atomic rename, apply it through systemd, verify, and put the original
//! bytes back (and apply them) if any of that fails.
//!
//! The steps that touch the world beyond the file (validate, apply, verify) sit behind
//! [`EditHost`] so the rollback rules are tested without nginx or systemd.

pub mod align;
pub mod diff;
mod file;
pub mod fpm;
mod host;
pub mod nginx;
pub mod validate;

use file::{ConfigFile, Identity};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The side effects of an edit beyond writing the file.
// Implemented only by concrete types inside salve, whose futures' Send-ness the
// compiler sees; no caller needs a `Send` bound spelled out.
#[allow(async_fn_in_trait)]
pub trait EditHost {
    /// Runs the service's checker as if `candidate` already were `file`'s contents.
    async fn validate(&self, file: &Path, candidate: &[u8]) -> Result<(), String>;
    /// Makes the service pick up the file's current contents (reload or restart).
    async fn apply(&self) -> Result<(), String>;
    /// The policy's verification; `None` when the policy has none.
    async fn verify(&self) -> Option<(bool, String)>;
}

/// Produces the next candidate text from the current one: one step of a raise, or the
/// whole of a set. `Ok(None)` means there is no further step (every raise is at its cap).
pub trait Planner {
    fn next(&mut self, current: &str) -> Result<Option<Planned>, String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub text: String,
    /// What this step changes, for the journal: "fastcgi_buffer_size 4k -> 8k".
    pub summary: String,
}

/// What happened to the file; `diff` is journalled whether the change stayed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditReport {
    pub summary: String,
    pub diff: Option<String>,
    /// What the policy's verification saw once the edit was in place.
    pub verification: Option<String>,
}

pub use file::{backups, DEFAULT_KEEP_BACKUPS};
pub(in crate::action) use host::{file_lock, load_nginx};

/// Runs blocking file work off the runtime's thread: a slow disk must not stall the
/// agent's event loop while an edit writes and syncs.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(work).await.unwrap_or_else(|e| {
            Err(std::io::Error::other(format!(
                "file work did not finish: {e}"
            )))
        }),
        Err(_) => work(),
    }
}

/// Why an edit ended without a verified change, and the diff it tried (if any).
#[derive(Debug)]
pub struct EditFailure {
    pub why: String,
    pub diff: Option<String>,
    /// The file already held what the edit would write: not this edit's trouble.
    pub not_applicable: bool,
}

impl EditFailure {
    fn new(why: String, diff: Option<String>) -> Self {
        EditFailure {
            why,
            diff,
            not_applicable: false,
        }
    }
}

type EditResult = Result<EditReport, EditFailure>;

/// What the file holds as salve last left it. Shared with the file work on the
/// blocking pool, which updates it in the same critical section as its rename, so an
/// edit dropped while a write runs still knows what it committed.
struct Committed {
    /// The edit was dropped: file work still queued must not touch the file any more.
    abandoned: bool,
    /// The bytes the name holds as far as salve knows, and the inode it leads to:
    /// compared before every write, so a change a person makes meanwhile (or a file
    /// swapped in) is never overwritten.
    expected: Vec<u8>,
    identity: Identity,
    /// Whether the original has been replaced (the rename is the commit point).
    swapped: bool,
}

/// The original, and how to put it back.
struct Original {
    bytes: Vec<u8>,
    /// Its mode and owner, which every file salve writes gets.
    like: std::fs::Metadata,
    /// The backup beside the file, once salve is about to replace it.
    backup: Option<OsString>,
}

fn lock(state: &Mutex<Committed>) -> MutexGuard<'_, Committed> {
    // A panic while holding it leaves plain data behind; carry on with it.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Committed {
    /// Whether the file still holds what salve expects; `Err` says what happened.
    fn unchanged(&self, file: &ConfigFile) -> Result<(), String> {
        match file.read() {
            Ok((now, identity)) if now == self.expected && identity == self.identity => Ok(()),
            Ok(_) => Err(format!(
                "{} was changed by someone else while salve was editing it; their version was left in place",
                file.path.display()
            )),
            Err(e) => Err(format!("cannot read {} again: {e}", file.path.display())),
        }
    }

    /// Renames `text`, written as a new file, over the file, if it is still what salve
    /// expects and the edit goes on.
    fn commit(&mut self, file: &ConfigFile, staged: &OsStr, text: Vec<u8>) -> std::io::Result<()> {
        if self.abandoned {
            let _ = file.unlink(staged);
            return Err(std::io::Error::other("the edit was abandoned"));
        }
        self.identity = file.replace_with(staged, self.identity)?;
        self.expected = text;
        self.swapped = true;
        Ok(())
    }

    /// Puts the original back, if it was replaced and nobody changed the file since:
    /// the backup linked back when there is one (no disk space needed), else (or if the
    /// link is refused) the bytes written anew.
    fn put_back(&mut self, file: &ConfigFile, original: &Original) -> Result<(), String> {
        if !self.swapped {
            return Ok(());
        }
        self.unchanged(file)
            .map_err(|changed| format!("not restored: {changed}"))?;
        let linked = match &original.backup {
            Some(backup) => file.restore(backup, self.identity).map_err(|e| {
                tracing::warn!(file = %file.path.display(), error = %e, "cannot link the backup back; writing the original bytes instead");
            }),
            None => Err(()),
        };
        if linked.is_err() {
            file.write(&original.bytes, &original.like, self.identity)
                .map_err(|e| format!(
                    "RESTORING THE ORIGINAL FAILED: {e} (the original bytes are in the newest {}.salve-backup.* beside it)",
                    file.path.display()
                ))?;
        }
        self.identity = file.identity().map_err(|e| {
            format!(
                "restored, but cannot look at {} again: {e}",
                file.path.display()
            )
        })?;
        self.expected = original.bytes.clone();
        self.swapped = false;
        Ok(())
    }
}

/// One edit of one file.
struct Session<'h, H: EditHost> {
    file: Arc<ConfigFile>,
    host: &'h H,
    original: Arc<Original>,
    original_text: String,
    state: Arc<Mutex<Committed>>,
    keep_backups: usize,
    /// Set once the edit has ended either way; see `Drop`.
    done: bool,
}

/// An edit dropped halfway (the agent's shutdown grace ran out while a raise was still
/// stepping, or mid-write) must not leave a half-raised, unverified file behind: the
/// original bytes go back on disk. File work still queued sees the edit abandoned and
/// does nothing. Applying the original needs the bus, which is gone by then; the next
/// reload or restart of the service picks it up.
impl<H: EditHost> Drop for Session<'_, H> {
    fn drop(&mut self) {
        // Waits at most for one rename in progress on the blocking pool.
        let mut state = lock(&self.state);
        state.abandoned = true;
        if self.done || !state.swapped {
            return;
        }
        match state.put_back(&self.file, &self.original) {
            Ok(()) => {
                tracing::warn!(file = %self.file.path.display(), "edit interrupted: original bytes restored on disk, not yet applied")
            }
            Err(e) => {
                tracing::error!(file = %self.file.path.display(), error = %e, "edit interrupted and the original could not be restored")
            }
        }
    }
}

impl<H: EditHost> Session<'_, H> {
    fn diff(&self, tried: &str) -> Option<String> {
        (tried != self.original_text)
            .then(|| diff::unified(&self.file.path, &self.original_text, tried))
    }

    fn swapped(&self) -> bool {
        lock(&self.state).swapped
    }

    async fn unchanged(&self) -> Result<(), String> {
        let (file, state) = (Arc::clone(&self.file), Arc::clone(&self.state));
        blocking(move || Ok(lock(&state).unchanged(&file)))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    }

    /// Keeps the original beside the file before its first replacement.
    async fn back_up(&mut self) -> Result<(), String> {
        if self.original.backup.is_some() {
            return Ok(());
        }
        let (file, original) = (Arc::clone(&self.file), Arc::clone(&self.original));
        let identity = lock(&self.state).identity;
        let backup = blocking(move || file.back_up(identity, &original.bytes, &original.like))
            .await
            .map_err(|e| {
                format!(
                    "cannot keep a backup beside {}: {e}; file not replaced",
                    self.file.path.display()
                )
            })?;
        match Arc::get_mut(&mut self.original) {
            Some(original) => original.backup = Some(backup),
            None => {
                // Only this session holds the original between steps.
                return Err("internal: the original is shared".to_string());
            }
        }
        Ok(())
    }

    /// Writes `text` as the file's new contents.
    async fn replace(&self, text: &str) -> Result<(), String> {
        let (file, state, original) = (
            Arc::clone(&self.file),
            Arc::clone(&self.state),
            Arc::clone(&self.original),
        );
        let bytes = text.as_bytes().to_vec();
        blocking(move || {
            let staged = file.create_sibling(&file::temp_suffix("new"), &bytes, &original.like)?;
            lock(&state).commit(&file, &staged, bytes)
        })
        .await
        .map_err(|e| format!("cannot replace {}: {e}", self.file.path.display()))
    }

    /// Ends the edit with `why`: the original bytes back in place (if they had been
    /// replaced, and nobody changed the file since) and applied.
    async fn fail(mut self, why: String, tried: &str) -> EditResult {
        let diff = self.diff(tried);
        if !self.swapped() {
            self.done = true;
            return Err(EditFailure::new(why, diff));
        }
        let (file, state, original) = (
            Arc::clone(&self.file),
            Arc::clone(&self.state),
            Arc::clone(&self.original),
        );
        let restored = blocking(move || {
            let mut state = lock(&state);
            if state.abandoned {
                return Ok(Err("the edit was abandoned".to_string()));
            }
            Ok(state.put_back(&file, &original))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        // Only now: had this been cancelled before, `Drop` would still restore.
        self.done = true;
        if let Err(e) = restored {
            return Err(EditFailure::new(format!("{why}; {e}"), diff));
        }
        match self.host.apply().await {
            Ok(()) => Err(EditFailure::new(
                format!("{why}; original restored and applied"),
                diff,
            )),
            Err(e) => Err(EditFailure::new(
                format!("{why}; original restored, but applying it failed: {e}"),
                diff,
            )),
        }
    }

    /// The edit ends with its change in place: older backups beyond `keep_backups` go,
    /// never the one this edit made.
    async fn succeed(&mut self) {
        self.done = true;
        let (file, original) = (Arc::clone(&self.file), Arc::clone(&self.original));
        let keep = self.keep_backups;
        let _ = blocking(move || {
            file.prune_backups(keep, original.backup.as_deref());
            Ok(())
        })
        .await;
    }
}

/// Runs one edit to completion. `Ok` only if the final file passed validation, was
/// applied, and verified (when the policy verifies); on `Err` the file holds its
/// original bytes again (unless someone else changed it meanwhile: then theirs). The
/// report travels with both, so the journal shows the diff that was tried.
///
/// A symlinked config (Debian's sites-enabled) is edited where it points, so the link
/// stays a link.
pub async fn run_edit(
    file: &Path,
    planner: &mut impl Planner,
    host: &impl EditHost,
    keep_backups: usize,
) -> EditResult {
    let path = file.to_path_buf();
    let opened = blocking(move || {
        let (file, _) = ConfigFile::open(&path)?;
        let (bytes, identity) = file.read()?;
        let like = file.metadata()?;
        Ok((file, bytes, identity, like))
    })
    .await;
    let (config_file, original, identity, like) = opened
        .map_err(|e| EditFailure::new(format!("cannot read {}: {e}", file.display()), None))?;
    let Ok(original_text) = String::from_utf8(original.clone()) else {
        let why = format!(
            "{} is not UTF-8 text; salve edits only text configs",
            config_file.path.display()
        );
        return Err(EditFailure::new(why, None));
    };
    let mut session = Session {
        file: Arc::new(config_file),
        host,
        original: Arc::new(Original {
            bytes: original.clone(),
            like,
            backup: None,
        }),
        original_text: original_text.clone(),
        state: Arc::new(Mutex::new(Committed {
            abandoned: false,
            expected: original,
            identity,
            swapped: false,
        })),
        keep_backups: keep_backups.max(1),
        done: false,
    };
    let mut current = original_text;
    let mut summaries: Vec<String> = Vec::new();
    let mut verify_failed = false;
    loop {
        let planned = match planner.next(&current) {
            Ok(Some(planned)) if planned.text == current => {
                if summaries.is_empty() {
                    // Nothing was written: there is nothing to restore.
                    session.done = true;
                    return Err(EditFailure {
                        why: format!(
                            "{}: {}; nothing to change, so this edit cannot be the cure",
                            session.file.path.display(),
                            planned.summary
                        ),
                        diff: None,
                        not_applicable: true,
                    });
                }
                let why = format!("{}; no further step changes anything", summaries.join("; "));
                return session.fail(why, &current).await;
            }
            Ok(Some(planned)) => planned,
            Ok(None) if summaries.is_empty() => {
                let why = format!(
                    "{}: every raise is already at its cap; nothing changed",
                    session.file.path.display()
                );
                return Err(EditFailure::new(why, None));
            }
            Ok(None) => {
                let at = if verify_failed {
                    "still failing verification at the cap"
                } else {
                    "no further step"
                };
                let why = format!("{}: {at}", summaries.join("; "));
                return session.fail(why, &current).await;
            }
            Err(e) => return session.fail(e, &current).await,
        };
        summaries.push(planned.summary.clone());
        if let Err(e) = host
            .validate(&session.file.path, planned.text.as_bytes())
            .await
        {
            let not = if session.swapped() {
                "this step not applied"
            } else {
                "file not replaced"
            };
            let why = format!("{}: validation failed, {not}: {e}", planned.summary);
            return session.fail(why, &planned.text).await;
        }
        if let Err(changed) = session.unchanged().await {
            return session.fail(changed, &planned.text).await;
        }
        if let Err(why) = session.back_up().await {
            return session.fail(why, &planned.text).await;
        }
        if let Err(why) = session.replace(&planned.text).await {
            return session.fail(why, &planned.text).await;
        }
        current = planned.text;
        if let Err(e) = host.apply().await {
            let why = format!("{}: applying the change failed: {e}", planned.summary);
            return session.fail(why, &current).await;
        }
        match host.verify().await {
            None => {
                session.succeed().await;
                return Ok(EditReport {
                    summary: summaries.join("; "),
                    diff: session.diff(&current),
                    verification: None,
                });
            }
            Some((true, seen)) => {
                session.succeed().await;
                return Ok(EditReport {
                    summary: summaries.join("; "),
                    diff: session.diff(&current),
                    verification: Some(seen),
                });
            }
            Some((false, seen)) => {
                tracing::info!(file = %session.file.path.display(), step = %planned.summary, seen = %seen, "edit applied but verification fails; trying the next step");
                summaries.push(format!("verify failed ({seen})"));
                verify_failed = true;
            }
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
