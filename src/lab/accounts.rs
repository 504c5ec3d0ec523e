//! The sandbox's own accounts and polkit rules: a `salve` service user that exists only
//! inside the lab, and the shipped polkit rule, so the agent can run there as it does in
//! production (unprivileged, through polkit) while the host's /etc/passwd, /etc/group
//! and /etc/polkit-1/rules.d stay untouched. boot.sh bind-mounts these copies over the
//! originals in the sandbox's mount namespace.

use super::files::{write, Layout};
use super::LabError;
use std::collections::HashSet;
use std::fs;

/// The service user the shipped unit and polkit rule name.
pub const SALVE_USER: &str = "salve";
/// The group the shipped control socket (salve.socket) belongs to.
pub const ADMIN_GROUP: &str = crate::control::DEFAULT_ADMIN_GROUP;

/// The polkit rule and helper units exactly as shipped.
pub const POLKIT_RULE: &str = include_str!("../../deploy/polkit/50-salve.rules");
pub const HELPER_UNITS: &[(&str, &str)] = &[
    (
        "salve-enable@.service",
        include_str!("../../deploy/systemd/salve-enable@.service"),
    ),
    (
        "salve-disable@.service",
        include_str!("../../deploy/systemd/salve-disable@.service"),
    ),
];

/// Writes the sandbox's passwd, group and polkit rules; returns the `salve` user's
/// uid (also its group's gid), one the host does not use.
pub fn write_accounts(layout: &Layout) -> Result<u32, LabError> {
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    let taken: HashSet<u32> = passwd
        .lines()
        .chain(group.lines())
        .filter_map(|l| l.split(':').nth(2)?.parse().ok())
        .collect();
    let name_taken =
        |text: &str, name: &str| text.lines().any(|l| l.split(':').next() == Some(name));
    // A system id, from the top of Debian's dynamic range down.
    let id = (100..999)
        .rev()
        .find(|id| !taken.contains(id))
        .ok_or_else(|| {
            let full = std::io::Error::other("every id from 100 to 998 is taken");
            LabError::io("find a free system uid in", "/etc/passwd", full)
        })?;
    let mut passwd = passwd;
    let mut group = group;
    for text in [&mut passwd, &mut group] {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
    }
    if !name_taken(&passwd, SALVE_USER) {
        passwd.push_str(&format!(
            "{SALVE_USER}:x:{id}:{id}:salve self-healing agent (lab):/nonexistent:/usr/sbin/nologin\n"
        ));
    }
    if !name_taken(&group, SALVE_USER) {
        group.push_str(&format!("{SALVE_USER}:x:{id}:\n"));
    }
    if !name_taken(&group, ADMIN_GROUP) {
        // No one is in it: the tests reach the socket as root, and show that the
        // agent's own user (and so its exec children) is kept out.
        let admin = (100..id)
            .rev()
            .find(|g| !taken.contains(g))
            .ok_or_else(|| {
                let full = std::io::Error::other("every id from 100 to 998 is taken");
                LabError::io("find a free system gid in", "/etc/group", full)
            })?;
        group.push_str(&format!("{ADMIN_GROUP}:x:{admin}:\n"));
    }
    super::files::create_dir(&layout.etc())?;
    super::files::create_dir(&layout.polkit_rules())?;
    write(&layout.passwd(), &passwd, 0o644)?;
    write(&layout.group(), &group, 0o644)?;
    write(
        &layout.polkit_rules().join("50-salve.rules"),
        POLKIT_RULE,
        0o644,
    )?;
    Ok(id)
}

/// The `salve` user's (uid, gid) in the sandbox's passwd, as `write_accounts` left it
/// (or as the host had it, when it already has a `salve`).
pub fn salve_ids(layout: &Layout) -> Result<(u32, u32), LabError> {
    let path = layout.passwd();
    let passwd = fs::read_to_string(&path).map_err(|e| LabError::io("read", &path, e))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&SALVE_USER))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .ok_or_else(|| {
            let missing = std::io::Error::other(format!("no {SALVE_USER} user with numeric ids"));
            LabError::io("find the service user in", &path, missing)
        })
}

fn read(path: &str) -> Result<String, LabError> {
    fs::read_to_string(path).map_err(|e| LabError::io("read", path, e))
}
