//! Who is on the other end of a control connection, from the kernel's own record of
//! the connecting process (not from anything the peer says), and whether they may
//! steer the agent.

use std::os::fd::AsRawFd;

/// The connecting process's identity at `connect()` time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// Supplementary groups (`SO_PEERGROUPS`); empty when the kernel gives none.
    pub groups: Vec<u32>,
    /// The user's name, when the user database has one.
    pub user: Option<String>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {}", self.uid)?;
        if let Some(user) = &self.user {
            write!(f, " ({user})")?;
        }
        write!(f, ", gid {}", self.gid)?;
        if let Some(pid) = self.pid {
            write!(f, ", pid {pid}")?;
        }
        Ok(())
    }
}

/// `SO_PEERGROUPS` (Linux 4.13), as asm-generic and x86 number it; the libc crate
/// exports it only for some targets.
const SO_PEERGROUPS: libc::c_int = 59;
/// More groups than any user has (`NGROUPS_MAX` is 65536, but a peer's list is read
/// once per command and a bound keeps the buffer small).
const MAX_GROUPS: usize = 1024;

impl Peer {
    pub fn of(stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let uid = cred.uid();
        Ok(Peer {
            uid,
            gid: cred.gid(),
            pid: cred.pid(),
            groups: peer_groups(stream.as_raw_fd()),
            user: user_name(uid),
        })
    }

    /// Whether this peer may use the control socket: root, or a member of the admin
    /// group (`admin_gid`, when that group exists).
    pub fn allowed(&self, admin_gid: Option<u32>) -> bool {
        self.uid == 0 || admin_gid.is_some_and(|g| self.gid == g || self.groups.contains(&g))
    }
}

fn peer_groups(fd: libc::c_int) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; MAX_GROUPS];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: the buffer is `len` bytes of gid_t; the kernel writes at most `len`
    // bytes and says how many it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    groups
}

/// The numeric id of group `name`, through the system's user database (NSS).
pub fn group_id(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is to a live buffer of the length given; the result points
    // into `group` and `buf`, read before they go.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some(group.gr_gid)
}

fn user_name(uid: u32) -> Option<String> {
    let mut passwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in `group_id`.
    let rc = unsafe { libc::getpwuid_r(uid, &mut passwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || passwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r set pw_name to a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(passwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_or_the_admin_group_and_nobody_else() {
        let peer = |uid, gid, groups: Vec<u32>| Peer {
            uid,
            gid,
            pid: Some(1),
            groups,
            user: None,
        };
        assert!(peer(0, 0, vec![]).allowed(None));
        assert!(peer(1000, 1000, vec![27, 990]).allowed(Some(990)));
        assert!(peer(1000, 990, vec![]).allowed(Some(990)));
        assert!(!peer(1000, 1000, vec![27]).allowed(Some(990)));
        assert!(!peer(1000, 1000, vec![27]).allowed(None));
        assert_eq!(
            Peer {
                user: Some("alice".into()),
                ..peer(1000, 1000, vec![])
            }
            .to_string(),
            "uid 1000 (alice), gid 1000, pid 1"
        );
    }

    #[test]
    fn the_user_database_is_read() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-salve"), None);
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }

    #[tokio::test]
    async fn a_connected_peer_is_known_by_its_credentials() {
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        let peer = Peer::of(&a).unwrap();
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        assert_eq!(peer.uid, uid);
        assert_eq!(peer.pid, Some(std::process::id() as i32));
    }
}
