//! Config edits, done the way a careful operator would: compute the new text, have the
//! service's own checker validate it *before* it replaces the file, keep a backup, swap
//! it in with an atomic rename, apply it through systemd, verify, and put the original
//! bytes back (and apply them) if any of that fails.
//!
//! The steps that touch the world beyond the file (validate, apply, verify) sit behind
//! [`EditHost`] so the rollback rules are tested without nginx or systemd.

pub mod align;
pub mod diff;
pub mod fpm;
mod host;
pub mod nginx;
pub mod validate;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
}

/// The file beside `file` that holds its bytes from before salve's last edit.
pub fn backup_path(file: &Path) -> PathBuf {
    sibling(file, ".salve-backup")
}

/// A hidden file in `file`'s directory. Hidden because configs include whole
/// directories (`include /etc/nginx/sites-enabled/*;`), and nginx's and php-fpm's
/// glob(3) skip dot files: a backup or a candidate must never be read as config.
fn sibling(file: &Path, suffix: &str) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(file.file_name().unwrap_or(file.as_os_str()));
    name.push(suffix);
    file.with_file_name(name)
}

/// Runs one edit to completion. `Ok` only if the final file passed validation, was
/// applied, and verified (when the policy verifies); on `Err` the file holds its
/// original bytes again. The report travels with both, so the journal shows the diff
/// that was tried.
pub async fn run_edit(
    file: &Path,
    planner: &mut impl Planner,
    host: &impl EditHost,
) -> Result<EditReport, (String, Option<String>)> {
    let original =
        fs::read(file).map_err(|e| (format!("cannot read {}: {e}", file.display()), None))?;
    let original_text = String::from_utf8(original.clone()).map_err(|_| {
        (
            format!(
                "{} is not UTF-8 text; salve edits only text configs",
                file.display()
            ),
            None,
        )
    })?;
    let mut current = original_text.clone();
    let mut summaries: Vec<String> = Vec::new();
    let mut swapped = false;
    loop {
        let planned = match planner.next(&current) {
            Ok(Some(planned)) if planned.text == current => {
                let why = if summaries.is_empty() {
                    format!(
                        "{} already has the values the policy sets: the edit cannot help here",
                        file.display()
                    )
                } else {
                    format!("{}; no further step changes anything", summaries.join("; "))
                };
                return fail(
                    file,
                    &original,
                    swapped,
                    host,
                    why,
                    &original_text,
                    &current,
                )
                .await;
            }
            Ok(Some(planned)) => planned,
            Ok(None) if summaries.is_empty() => {
                return Err((
                    format!(
                        "{}: every raise is already at its cap; nothing changed",
                        file.display()
                    ),
                    None,
                ));
            }
            Ok(None) => {
                let why = format!(
                    "{}: still failing verification at the cap",
                    summaries.join("; ")
                );
                return fail(
                    file,
                    &original,
                    swapped,
                    host,
                    why,
                    &original_text,
                    &current,
                )
                .await;
            }
            Err(e) => {
                return fail(file, &original, swapped, host, e, &original_text, &current).await
            }
        };
        summaries.push(planned.summary.clone());
        if let Err(e) = host.validate(file, planned.text.as_bytes()).await {
            let why = format!(
                "{}: validation failed, file not replaced: {e}",
                planned.summary
            );
            return fail(
                file,
                &original,
                swapped,
                host,
                why,
                &original_text,
                &planned.text,
            )
            .await;
        }
        if !swapped {
            write_atomically(&backup_path(file), &original, file)
                .map_err(|e| (format!("cannot keep a backup: {e}"), None))?;
        }
        if let Err(e) = write_atomically(file, planned.text.as_bytes(), file) {
            let why = format!("cannot replace {}: {e}", file.display());
            return fail(
                file,
                &original,
                swapped,
                host,
                why,
                &original_text,
                &planned.text,
            )
            .await;
        }
        swapped = true;
        current = planned.text;
        if let Err(e) = host.apply().await {
            let why = format!("{}: applying the change failed: {e}", planned.summary);
            return fail(
                file,
                &original,
                swapped,
                host,
                why,
                &original_text,
                &current,
            )
            .await;
        }
        match host.verify().await {
            None | Some((true, _)) => {
                return Ok(EditReport {
                    summary: summaries.join("; "),
                    diff: Some(diff::unified(file, &original_text, &current)),
                })
            }
            Some((false, seen)) => {
                tracing::info!(file = %file.display(), step = %planned.summary, seen = %seen, "edit applied but verification fails; trying the next step");
                summaries.push(format!("verify failed ({seen})"));
            }
        }
    }
}

/// Puts the original bytes back if they were replaced, applies them, and reports `why`
/// with the diff that was tried.
async fn fail(
    file: &Path,
    original: &[u8],
    swapped: bool,
    host: &impl EditHost,
    why: String,
    original_text: &str,
    tried: &str,
) -> Result<EditReport, (String, Option<String>)> {
    let diff = (tried != original_text).then(|| diff::unified(file, original_text, tried));
    if !swapped {
        return Err((why, diff));
    }
    if let Err(e) = write_atomically(file, original, file) {
        return Err((
            format!(
                "{why}; RESTORING THE ORIGINAL FAILED: {e} (the original bytes are in {})",
                backup_path(file).display()
            ),
            diff,
        ));
    }
    match host.apply().await {
        Ok(()) => Err((format!("{why}; original restored and applied"), diff)),
        Err(e) => Err((
            format!("{why}; original restored, but applying it failed: {e}"),
            diff,
        )),
    }
}

/// Writes `bytes` to a temporary file beside `path` with `like`'s mode and owner,
/// fsyncs it, and renames it over `path`: readers see the old file or the new one,
/// never half of either.
pub fn write_atomically(path: &Path, bytes: &[u8], like: &Path) -> std::io::Result<()> {
    let temporary = sibling(path, ".salve-new");
    let result = (|| {
        let mut out = fs::File::create(&temporary)?;
        out.write_all(bytes)?;
        if let Ok(meta) = fs::metadata(like) {
            out.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            // Only root may give a file away; a non-root agent keeps its own ownership.
            let _ = std::os::unix::fs::fchown(&out, Some(meta.uid()), Some(meta.gid()));
        }
        out.sync_all()?;
        fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
