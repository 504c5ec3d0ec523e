//! Reload on policy file change: inotify on the policy paths, debounced.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Editors write a file in several steps (write a temp file, rename, chmod); wait for
/// the burst to end before reloading once.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Sends `()` after each burst of changes under `paths`. A directory is watched for files
/// created, written, moved or deleted in it; a file is watched through its directory,
/// because editors replace files by renaming over them. If inotify is unavailable, logs
/// why and never sends (SIGHUP still reloads).
pub fn watch(paths: &[PathBuf]) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    let dirs: Vec<PathBuf> = paths
        .iter()
        .map(|p| if p.is_dir() { p.clone() } else { parent_of(p) })
        .collect();
    match start(&dirs) {
        Ok(mut stream) => {
            tokio::spawn(async move {
                use futures_util::StreamExt;
                while stream.next().await.is_some() {
                    // Swallow the rest of the burst.
                    while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, stream.next()).await {}
                    if tx.send(()).await.is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot watch policy files; reload with SIGHUP"),
    }
    rx
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn start(dirs: &[PathBuf]) -> std::io::Result<inotify::EventStream<Vec<u8>>> {
    use inotify::{Inotify, WatchMask};
    let inotify = Inotify::init()?;
    for dir in dirs {
        inotify.watches().add(
            dir,
            WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::CREATE
                | WatchMask::DELETE,
        )?;
    }
    inotify.into_event_stream(vec![0u8; 4096])
}
