//! Checks that run before anything is started, so a missing package or a bad
//! directory is a clear sentence rather than a sandbox that fails half-way.

use super::LabError;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The executables the lab runs, with the Debian package that ships each one.
const REQUIRED: &[(&str, &str)] = &[
    ("/usr/sbin/nginx", "nginx"),
    ("/usr/sbin/php-fpm8.2", "php8.2-fpm"),
    ("/lib/systemd/systemd", "systemd"),
    ("/usr/bin/systemctl", "systemd"),
    ("/usr/bin/dbus-daemon", "dbus"),
    ("/usr/bin/unshare", "util-linux"),
    ("/usr/bin/nsenter", "util-linux"),
    ("/usr/bin/setsid", "util-linux"),
];

/// Root, packages and the lab directory. The port is checked separately, after the
/// lab knows no earlier lab of its own is the one holding it.
pub fn check(dir: &Path) -> Result<(), LabError> {
    check_root()?;
    check_packages()?;
    check_dir(dir)
}

pub fn check_root() -> Result<(), LabError> {
    if effective_uid() == Some(0) {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// What a lab of two nodes runs beyond a single node's.
const FLEET_REQUIRED: &[(&str, &str)] = &[("/usr/bin/etcd", "etcd-server")];
const HAPROXY_REQUIRED: &[(&str, &str)] = &[("/usr/sbin/haproxy", "haproxy")];

pub fn check_packages() -> Result<(), LabError> {
    missing(REQUIRED)
}

/// The packages a lab of this shape needs beyond a single node's.
pub fn check_fleet_packages(topology: super::nodes::Topology) -> Result<(), LabError> {
    use super::nodes::{LbKind, Topology};
    match topology {
        Topology::Single | Topology::BackupPool => Ok(()),
        Topology::Fleet(LbKind::Nginx) => missing(FLEET_REQUIRED),
        Topology::Fleet(LbKind::Haproxy) => {
            missing(FLEET_REQUIRED).and_then(|()| missing(HAPROXY_REQUIRED))
        }
    }
}

fn missing(required: &[(&'static str, &'static str)]) -> Result<(), LabError> {
    match required
        .iter()
        .find(|(binary, _)| !Path::new(binary).exists())
    {
        Some((binary, package)) => Err(LabError::MissingPackage { package, binary }),
        None => Ok(()),
    }
}

/// The effective UID from /proc (no libc call needed for one number).
pub fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

pub fn check_dir(dir: &Path) -> Result<(), LabError> {
    if !dir.is_absolute() || !dir.to_str().is_some_and(is_plain_path) {
        return Err(LabError::DirUnsafe {
            dir: dir.to_path_buf(),
        });
    }
    if dir.components().any(|c| c == Component::ParentDir) {
        return Err(LabError::DirUnsafe {
            dir: dir.to_path_buf(),
        });
    }
    let resolved = resolve_existing_prefix(dir);
    for tmp in ["/tmp", "/var/tmp"] {
        if resolved.starts_with(tmp) || dir.starts_with(tmp) {
            return Err(LabError::DirUnderTmp {
                dir: dir.to_path_buf(),
            });
        }
    }
    // Directories we create get 0755; the ones already there must let others through.
    for ancestor in resolved.ancestors().skip(1) {
        if let Ok(meta) = fs::metadata(ancestor) {
            if meta.permissions().mode() & 0o001 == 0 {
                return Err(LabError::DirNotTraversable {
                    dir: dir.to_path_buf(),
                    blocker: ancestor.to_path_buf(),
                });
            }
        }
    }
    check_root_owned(dir, &resolved)
}

/// The lab directory and every directory above it must be root's alone: root writes
/// configs and units there and systemd runs what they say, so a directory another user
/// (the `salve` service user, www-data) may write would let that user swap a file or a
/// directory on the way for a symlink of their own.
fn check_root_owned(dir: &Path, resolved: &Path) -> Result<(), LabError> {
    for path in resolved.ancestors() {
        let Ok(meta) = fs::metadata(path) else {
            continue; // Not created yet: the lab creates it, root-owned, 0755.
        };
        let mode = meta.permissions().mode();
        if meta.uid() != 0 || mode & 0o022 != 0 {
            return Err(LabError::DirNotRootOwned {
                dir: dir.to_path_buf(),
                writable: path.to_path_buf(),
                uid: meta.uid(),
                mode: mode & 0o7777,
            });
        }
    }
    Ok(())
}

pub fn check_port(port: u16) -> Result<(), LabError> {
    TcpListener::bind(super::http::address(port))
        .map(drop)
        .map_err(|cause| LabError::PortInUse { port, cause })
}

/// The path nginx, PHP-FPM and systemd will read unquoted: no spaces, quotes,
/// semicolons, `$` or `%` (systemd specifiers).
fn is_plain_path(path: &str) -> bool {
    path.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
}

/// Canonicalizes the longest existing prefix of `dir`, so a symlink into /tmp is caught
/// even before the lab directory itself exists.
fn resolve_existing_prefix(dir: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut probe = dir.to_path_buf();
    loop {
        if let Ok(real) = probe.canonicalize() {
            let mut resolved = real;
            for part in missing.iter().rev() {
                resolved.push(part);
            }
            return resolved;
        }
        match (probe.file_name().map(|n| n.to_os_string()), probe.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name);
                probe = parent.to_path_buf();
            }
            _ => return dir.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_directories_under_tmp_are_refused_with_the_reason() {
        for dir in ["/tmp/lab", "/var/tmp/x/lab"] {
            let err = check_dir(Path::new(dir)).unwrap_err();
            assert!(matches!(err, LabError::DirUnderTmp { .. }), "{dir}: {err}");
        }
    }

    #[test]
    fn paths_that_configs_cannot_hold_unquoted_are_refused() {
        for dir in [
            "relative/lab",
            "/srv/my lab",
            "/srv/la;b",
            "/srv/%n",
            "/srv/../tmp/lab",
        ] {
            let err = check_dir(Path::new(dir)).unwrap_err();
            assert!(matches!(err, LabError::DirUnsafe { .. }), "{dir}: {err}");
        }
    }

    #[test]
    fn a_plain_directory_outside_tmp_is_accepted() {
        check_dir(Path::new(crate::lab::DEFAULT_DIR)).unwrap();
    }

    #[test]
    fn a_directory_others_may_write_is_refused_on_the_way() {
        if effective_uid() != Some(0) {
            return; // Ownership by root is what is checked; only root can set it up.
        }
        let base = std::env::temp_dir().join(format!("salve-preflight-{}", std::process::id()));
        let shared = base.join("shared");
        fs::create_dir_all(&shared).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let lab = shared.join("lab");
        let err = check_root_owned(&lab, &lab).unwrap_err();
        assert!(
            matches!(&err, LabError::DirNotRootOwned { writable, .. } if *writable == shared),
            "{err}"
        );
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        let parent_ok = check_root_owned(&lab, &lab);
        let _ = fs::remove_dir_all(&base);
        // /tmp itself is world-writable (sticky), so even the fixed tree is refused.
        assert!(parent_ok.is_err());
    }

    #[test]
    fn a_port_in_use_is_named_in_the_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = check_port(port).unwrap_err().to_string();
        assert!(err.contains(&format!("port {port}")), "{err}");
    }
}
