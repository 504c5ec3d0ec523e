//! The edited file, held by its directory: once the canonical path is resolved, every
//! step (read, stage, back up, replace, restore, prune) works on one opened directory
//! handle with `openat`/`renameat`/`linkat` and `O_NOFOLLOW`, so a hostile directory
//! (a symlink swapped in for the file or for a directory above it mid-edit) cannot
//! redirect a write. Before each rename the name must still be the inode salve last saw
//! or wrote there.
//!
//! Backups are hard links to the original inode, not copies: salve never writes into a
//! file, only renames new ones over it, so the original's bytes stay as they were, and
//! putting them back is a link and a rename, which needs no free disk space. An edit
//! that ran the disk full can still restore. Where a hard link is refused (another file
//! system cannot happen beside the file, but a link limit or policy can), the backup is
//! a copy, as before.
//!
//! Written on libc: std has no `*at` calls, and these few are all salve needs.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Which file a name leads to: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    fn of(meta: &Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Backups kept per file when nothing else is configured.
pub const DEFAULT_KEEP_BACKUPS: usize = 5;

#[derive(Debug)]
pub struct ConfigFile {
    /// The canonical path, for messages and for the checkers.
    pub path: PathBuf,
    dir: OwnedFd,
    name: OsString,
}

impl ConfigFile {
    /// Resolves `path` (a symlinked config is edited where it points) and opens its
    /// directory; the file must be a regular file.
    pub fn open(path: &Path) -> io::Result<(ConfigFile, Identity)> {
        let path = std::fs::canonicalize(path)?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file in a directory",
            ));
        };
        let dir = open_dir(dir)?;
        let file = ConfigFile {
            name: name.to_os_string(),
            path,
            dir,
        };
        let identity = file.identity()?;
        Ok((file, identity))
    }

    /// What the name leads to now, without following a link there.
    pub fn identity(&self) -> io::Result<Identity> {
        let meta = self.stat(&self.name)?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is no longer a regular file", self.path.display()),
            ));
        }
        Ok(Identity::of(&meta))
    }

    /// The file's bytes and identity, read through the directory handle.
    pub fn read(&self) -> io::Result<(Vec<u8>, Identity)> {
        // O_NONBLOCK: a FIFO swapped in must not hold a blocking-pool thread for ever.
        let mut file = self
            .open_at(&self.name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    io::Error::other(format!(
                        "{} was replaced by a symbolic link; salve never writes through one",
                        self.path.display()
                    ))
                } else {
                    e
                }
            })?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.path.display()),
            ));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok((bytes, Identity::of(&meta)))
    }

    /// Creates a new hidden sibling (`.NAME<suffix>`, which must not exist) holding
    /// `bytes`, with `like`'s mode and owner, synced. Returns its name.
    pub fn create_sibling(
        &self,
        suffix: &str,
        bytes: &[u8],
        like: &Metadata,
    ) -> io::Result<OsString> {
        let name = self.sibling_name(suffix);
        let mut out = self.open_at(&name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
        let written = (|| {
            out.write_all(bytes)?;
            // Mode first, while the file is still ours: after the chown, changing it
            // would need CAP_FOWNER.
            out.set_permissions(std::fs::Permissions::from_mode(like.mode() & 0o7777))?;
            // Only root (or CAP_CHOWN) may give a file away; an agent without it keeps
            // its own ownership.
            if let Err(e) = std::os::unix::fs::fchown(&out, Some(like.uid()), Some(like.gid())) {
                tracing::debug!(file = %self.path.display(), error = %e, "cannot give the file its original owner");
            }
            out.sync_all()
        })();
        if let Err(e) = written {
            let _ = self.unlink(&name);
            return Err(e);
        }
        Ok(name)
    }

    /// Metadata of the file itself (mode, owner), for staging candidates like it.
    pub fn metadata(&self) -> io::Result<Metadata> {
        let meta = self.stat(&self.name)?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.path.display()),
            ));
        }
        Ok(meta)
    }

    /// Keeps the bytes behind `original` under a new backup name: a hard link when the
    /// name still leads there (no copy, no space), else a copy of `bytes`.
    pub fn back_up(
        &self,
        original: Identity,
        bytes: &[u8],
        like: &Metadata,
    ) -> io::Result<OsString> {
        let name = self.sibling_name(&backup_suffix());
        if self.identity()? == original {
            match self.link(&self.name, &name) {
                Ok(()) if self.stat(&name).map(|m| Identity::of(&m)).ok() == Some(original) => {
                    self.sync_dir();
                    return Ok(name);
                }
                Ok(()) => {
                    // Replaced between the check and the link: not the original.
                    let _ = self.unlink(&name);
                }
                Err(e) => {
                    tracing::debug!(file = %self.path.display(), error = %e, "cannot hard-link the backup; copying it");
                }
            }
        }
        self.create_sibling(&backup_suffix(), bytes, like)
    }

    /// Renames the sibling `staged` over the file, if the file is still `expected`.
    /// Returns the new identity. The rename is the commit point.
    pub fn replace_with(&self, staged: &OsStr, expected: Identity) -> io::Result<Identity> {
        let new = Identity::of(&self.stat(staged)?);
        if self.identity()? != expected {
            let _ = self.unlink(staged);
            return Err(io::Error::other(format!(
                "{} was replaced by another file while salve was editing it; left as it is",
                self.path.display()
            )));
        }
        if let Err(e) = self.rename(staged, &self.name) {
            let _ = self.unlink(staged);
            return Err(e);
        }
        self.sync_dir();
        Ok(new)
    }

    /// Writes `bytes` as a new file and renames it over the file (if it is still
    /// `expected`). Returns the new identity.
    pub fn write(&self, bytes: &[u8], like: &Metadata, expected: Identity) -> io::Result<Identity> {
        let staged = self.create_sibling(&temp_suffix("new"), bytes, like)?;
        self.replace_with(&staged, expected)
    }

    /// Puts the backup `backup` back under the file's name: a second link to it, renamed
    /// over the file. Needs no data blocks, so it works on a full disk.
    pub fn restore(&self, backup: &OsStr, expected: Identity) -> io::Result<()> {
        let link = self.sibling_name(&temp_suffix("restore"));
        self.link(backup, &link)?;
        self.replace_with(&link, expected).map(|_| ())
    }

    /// Removes all but the newest `keep` backups of this file, never `spare` (the one
    /// the edit just made, whatever its name sorts as after a clock step).
    pub fn prune_backups(&self, keep: usize, spare: Option<&OsStr>) {
        let backups: Vec<PathBuf> = backups(&self.path)
            .into_iter()
            .filter(|b| b.file_name() != spare)
            .collect();
        let others = keep.saturating_sub(usize::from(spare.is_some()));
        let excess = backups.len().saturating_sub(others);
        for old in &backups[..excess] {
            if let Some(name) = old.file_name() {
                if let Err(e) = self.unlink(name) {
                    tracing::warn!(backup = %old.display(), error = %e, "cannot remove an old backup");
                }
            }
        }
    }

    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        let c = cstring(name)?;
        // SAFETY: valid directory descriptor and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) })
    }

    /// `.NAME<suffix>`: hidden, so no include glob of nginx or php-fpm reads it.
    pub fn sibling_name(&self, suffix: &str) -> OsString {
        let mut name = OsString::from(".");
        name.push(&self.name);
        name.push(suffix);
        name
    }

    fn open_at(&self, name: &OsStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
        let c = cstring(name)?;
        // SAFETY: valid directory descriptor, NUL-terminated name; the returned
        // descriptor is checked and owned by the File.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nobody else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn stat(&self, name: &OsStr) -> io::Result<Metadata> {
        // std has no fstatat. O_PATH with O_NOFOLLOW opens a symlink itself rather
        // than failing, so the metadata is the link's: callers check `is_file`.
        let file = self.open_at(name, libc::O_PATH, 0)?;
        file.metadata()
    }

    fn link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (cstring(from)?, cstring(to)?);
        let dir = self.dir.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names; flags 0 never follows a
        // symlink at `from`.
        check(unsafe { libc::linkat(dir, f.as_ptr(), dir, t.as_ptr(), 0) })
    }

    fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (cstring(from)?, cstring(to)?);
        let dir = self.dir.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names.
        check(unsafe { libc::renameat(dir, f.as_ptr(), dir, t.as_ptr()) })
    }

    /// The renames are directory entries: without this a crash could undo them.
    fn sync_dir(&self) {
        // SAFETY: valid descriptor.
        if unsafe { libc::fsync(self.dir.as_raw_fd()) } != 0 {
            let e = io::Error::last_os_error();
            tracing::warn!(file = %self.path.display(), error = %e, "renamed into place, but cannot sync the directory");
        }
    }
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let c = cstring(dir.as_os_str())?;
    // SAFETY: NUL-terminated path; the descriptor is checked and owned.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstring(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a name with a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Distinguishes temporary files of concurrent edits in one process.
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn temp_suffix(what: &str) -> String {
    format!(".salve-{what}.{}.{}", std::process::id(), unique())
}

/// `.salve-backup.<unix seconds>.<n>`: never reused, so no backup is overwritten.
fn backup_suffix() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(".salve-backup.{seconds}.{}", unique())
}

/// The backups of `file` salve has kept, oldest first.
pub fn backups(file: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Vec::new();
    };
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".salve-backup.");
    let prefix = prefix.to_string_lossy().into_owned();
    let mut found: Vec<(u64, u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (seconds, n) = name.strip_prefix(&prefix)?.split_once('.')?;
            Some((seconds.parse().ok()?, n.parse().ok()?, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, _, p)| p).collect()
}
