//! The host cgroups the sandbox's systemd works in.
//!
//! With `unshare --cgroup` the sandbox's cgroup root is the cgroup salve runs in. When
//! the host's PID 1 is not systemd there is no delegated scope to put it in, so the
//! sandbox's systemd creates init.scope, system.slice and unit cgroups right there, in
//! the host's hierarchy, and leaves init.scope behind when it exits. Two consequences:
//! a second sandbox in the same cgroup would share unit cgroups with the first (a
//! `systemctl kill` in one would kill the other's pool), and `down` must remove what
//! the sandbox created. Removal is `rmdir` only: the kernel refuses to remove a cgroup
//! that still has processes or children, so nothing alive can be disturbed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// The child cgroups present in one hierarchy's root before the sandbox booted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Baseline {
    pub root: PathBuf,
    pub children: BTreeSet<String>,
}

/// This process's cgroup directory in every mounted hierarchy (v1 and v2), and each
/// hierarchy's mount point: where the process sits below a hierarchy's root (here the
/// memory controller puts it in `/process_api/…`), the sandbox's systemd, which sees the
/// host's /sys/fs/cgroup, still creates its cgroups at the top.
pub fn own_roots() -> Vec<PathBuf> {
    let (Ok(membership), Ok(mounts)) = (
        fs::read_to_string("/proc/self/cgroup"),
        fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return Vec::new();
    };
    let mounts: Vec<CgroupMount> = mounts.lines().filter_map(CgroupMount::parse).collect();
    let mut roots = Vec::new();
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let found = mounts.iter().find(|m| m.serves(controllers));
        let own = found.and_then(|m| m.directory_for(path));
        let top = found.map(|m| m.mount_point.clone());
        for root in [own, top].into_iter().flatten() {
            if root.is_dir() && !roots.contains(&root) {
                roots.push(root);
            }
        }
    }
    roots
}

pub fn snapshot() -> Vec<Baseline> {
    own_roots()
        .into_iter()
        .map(|root| Baseline {
            children: child_dirs(&root),
            root,
        })
        .collect()
}

/// PIDs of a systemd already managing this cgroup level (another sandbox).
pub fn busy_pids() -> Vec<u32> {
    let mut pids = BTreeSet::new();
    for root in own_roots() {
        let Ok(procs) = fs::read_to_string(root.join("init.scope").join("cgroup.procs")) else {
            continue;
        };
        pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    pids.into_iter().collect()
}

/// Removes every cgroup the sandbox left beside the baseline, deepest first. Cgroups
/// whose last processes are still being torn down refuse removal for a moment, so
/// this retries within `patience`. Returns the cgroups that could not be removed.
pub fn remove_leftovers(baselines: &[Baseline], patience: Duration) -> Vec<PathBuf> {
    let deadline = Instant::now() + patience;
    loop {
        let mut stuck = Vec::new();
        for baseline in baselines {
            for child in child_dirs(&baseline.root) {
                // Only what a systemd creates (unit-named cgroups): anything else that
                // appeared meanwhile belongs to someone else on the host.
                if !baseline.children.contains(&child) && is_unit_name(&child) {
                    remove_tree(&baseline.root.join(child), &mut stuck);
                }
            }
        }
        if stuck.is_empty() || Instant::now() >= deadline {
            return stuck;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn is_unit_name(name: &str) -> bool {
    [".scope", ".slice", ".service", ".mount", ".socket", ".swap"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

fn remove_tree(dir: &Path, stuck: &mut Vec<PathBuf>) {
    for child in child_dirs(dir) {
        remove_tree(&dir.join(child), stuck);
    }
    if let Err(e) = fs::remove_dir(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            stuck.push(dir.to_path_buf());
        }
    }
}

fn child_dirs(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

struct CgroupMount {
    /// The path inside the hierarchy that is mounted (usually `/`).
    root: String,
    mount_point: PathBuf,
    /// `None` for cgroup2; otherwise the v1 super options (controllers, `name=`).
    options: Option<Vec<String>>,
}

impl CgroupMount {
    /// Parses one /proc/self/mountinfo line:
    /// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS…] - FSTYPE SOURCE SUPEROPTS`.
    fn parse(line: &str) -> Option<CgroupMount> {
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let options = match *right.first()? {
            "cgroup2" => None,
            "cgroup" => Some(right.get(2)?.split(',').map(str::to_owned).collect()),
            _ => return None,
        };
        Some(CgroupMount {
            root: unescape(left.get(3)?),
            mount_point: PathBuf::from(unescape(left.get(4)?)),
            options,
        })
    }

    /// Whether this mount is the hierarchy of a /proc/self/cgroup line whose
    /// controller field is `controllers` (empty for cgroup2).
    fn serves(&self, controllers: &str) -> bool {
        match &self.options {
            None => controllers.is_empty(),
            Some(options) => {
                !controllers.is_empty()
                    && controllers
                        .split(',')
                        .all(|c| options.iter().any(|o| o == c))
            }
        }
    }

    fn directory_for(&self, path: &str) -> Option<PathBuf> {
        let relative = if self.root == "/" {
            path
        } else {
            path.strip_prefix(self.root.as_str())?
        };
        Some(self.mount_point.join(relative.trim_start_matches('/')))
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_map_cgroup_paths_to_directories() {
        let v1 = CgroupMount::parse(
            "35 30 0:31 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd",
        )
        .unwrap();
        assert!(v1.serves("name=systemd") && !v1.serves("") && !v1.serves("memory"));
        assert_eq!(
            v1.directory_for("/init.scope").unwrap(),
            Path::new("/sys/fs/cgroup/systemd/init.scope")
        );
        let v2 = CgroupMount::parse(
            "36 30 0:32 /lab /sys/fs/cgroup/uni\\040fied rw - cgroup2 cgroup2 rw,nsdelegate",
        )
        .unwrap();
        assert!(v2.serves(""));
        assert_eq!(
            v2.directory_for("/lab/system.slice").unwrap(),
            Path::new("/sys/fs/cgroup/uni fied/system.slice")
        );
        assert!(CgroupMount::parse("22 1 8:1 / / rw - ext4 /dev/vda rw").is_none());
    }

    #[test]
    fn only_cgroups_missing_from_the_baseline_are_removed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/unit-tests")
            .join(format!("salve-cgroup-{}", std::process::id()));
        fs::create_dir_all(root.join("kept")).unwrap();
        fs::create_dir_all(root.join("init.scope")).unwrap();
        let baseline = Baseline {
            root: root.clone(),
            children: ["kept".to_owned()].into(),
        };
        fs::create_dir_all(root.join("system.slice/nginx.service")).unwrap();
        let stuck = remove_leftovers(&[baseline], Duration::ZERO);
        assert!(stuck.is_empty(), "{stuck:?}");
        assert_eq!(child_dirs(&root), ["kept".to_owned()].into());
        fs::remove_dir_all(&root).unwrap();
    }
}
