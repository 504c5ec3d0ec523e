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
/// exports it only for some targets. Elsewhere (sparc, parisc, mips number it
/// otherwise) no supplementary group is read: only the primary group counts.
const SO_PEERGROUPS: Option<libc::c_int> = if cfg!(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)) {
    Some(59)
} else {
    None
};
/// More groups than any user has (`NGROUPS_MAX` is 65536, but a peer's list is read
/// once per command and a bound keeps the buffer small).
const MAX_GROUPS: usize = 1024;

impl Peer {
    /// The peer's credentials; its user's name is looked up apart (`named`), as the
    /// user database may be a network service.
    pub fn of(stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
            groups: peer_groups(stream.as_raw_fd()),
            user: None,
        })
    }

    /// Fills in the user's name, off the async runtime (NSS may block on LDAP).
    pub async fn named(mut self) -> Peer {
        let uid = self.uid;
        self.user = tokio::task::spawn_blocking(move || user_name(uid))
            .await
            .ok()
            .flatten();
        self
    }

    /// Whether this peer may use the control socket: root, or a member of the admin
    /// group (`admin_gid`, when that group exists); never the agent's own user
    /// (`own_uid`, unless root), whose `exec` children share it.
    pub fn allowed(&self, admin_gid: Option<u32>, own_uid: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        self.uid != own_uid && admin_gid.is_some_and(|g| self.gid == g || self.groups.contains(&g))
    }
}

/// This process's effective uid.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process is itself in group `gid` (then its `exec` children are too).
pub fn in_group(gid: u32) -> bool {
    // SAFETY: with a zero size getgroups only counts.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n <= 0 {
        return false;
    }
    let mut groups = vec![0 as libc::gid_t; n as usize];
    // SAFETY: writes at most `n` entries into a buffer of `n`.
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    // SAFETY: getegid has no preconditions.
    let egid = unsafe { libc::getegid() };
    egid == gid || groups.iter().take(n.max(0) as usize).any(|&g| g == gid)
}

fn peer_groups(fd: libc::c_int) -> Vec<u32> {
    let Some(option) = SO_PEERGROUPS else {
        return Vec::new();
    };
    let mut groups = vec![0 as libc::gid_t; MAX_GROUPS];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: the buffer is `len` bytes of gid_t; the kernel writes at most `len`
    // bytes and says how many it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
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
    // A group with many members needs a larger buffer: grown until it fits (1 MiB).
    let mut size = 16 * 1024;
    loop {
        // SAFETY: a zeroed `group` is a valid value to be overwritten.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; size];
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is to a live buffer of the length given; the result
        // points into `group` and `buf`, read before they go.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && size < 1024 * 1024 {
            size *= 4;
            continue;
        }
        return (rc == 0 && !found.is_null()).then_some(group.gr_gid);
    }
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
        let agent = 995;
        assert!(peer(0, 0, vec![]).allowed(None, agent));
        assert!(peer(1000, 1000, vec![27, 990]).allowed(Some(990), agent));
        assert!(peer(1000, 990, vec![]).allowed(Some(990), agent));
        assert!(!peer(1000, 1000, vec![27]).allowed(Some(990), agent));
        assert!(!peer(1000, 1000, vec![27]).allowed(None, agent));
        // The agent's own user, even in the admin group: its exec children are it.
        assert!(!peer(agent, agent, vec![990]).allowed(Some(990), agent));
        // An agent run as root lets root in, as every root process could anyway.
        assert!(peer(0, 0, vec![]).allowed(Some(990), 0));
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
