//! Who wrote where on the host while a lab ran, so the host-safety test blames the
//! lab's own processes and never an unrelated writer on the same machine (a shell, a
//! tool harness, cron).
//!
//! Two kernel interfaces, because neither answers alone:
//! - fanotify with filesystem marks and `FAN_REPORT_DFID_NAME` reports every create,
//!   delete, rename, write and attribute change on the marked filesystems, with the
//!   writer's pid and the directory and name it touched;
//! - the process-events connector (cn_proc) reports every fork with parent and child,
//!   so the set of this test's descendants (the lab's launcher, the sandbox's systemd
//!   and everything it starts, the commands the lab runs) is known even for processes
//!   that are gone by the time their writes are read.
//!
//! Written by hand on libc: no maintained crate covers fanotify's FID records or cn_proc.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One change on the host: which process made it, to what.
#[derive(Debug, Clone)]
pub struct HostWrite {
    pub pid: u32,
    pub path: PathBuf,
    pub what: &'static str,
}

#[derive(Default)]
struct Seen {
    writes: Vec<HostWrite>,
    /// Thread-group ids of this process and of every process forked from one of them
    /// since the watch started.
    lineage: HashSet<u32>,
    /// Either queue overflowed: some writes or forks were not seen.
    lost: Vec<String>,
}

pub struct HostWrites {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    pub filesystems: Vec<PathBuf>,
}

/// What the watch found once stopped.
pub struct Report {
    /// Writes by this test's process tree (the lab's own processes).
    pub by_lab: Vec<HostWrite>,
    /// Writes by every other process.
    pub by_others: Vec<HostWrite>,
    pub lost: Vec<String>,
}

/// What changes a filesystem. Not `FAN_CLOSE_WRITE`: closing a file opened for writing
/// changes nothing by itself (systemd opens /etc/machine-id read-write and only reads
/// it); a real write is `FAN_MODIFY`.
const EVENTS: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_MODIFY
    | libc::FAN_ATTRIB
    | libc::FAN_ONDIR;

impl HostWrites {
    /// Starts watching every filesystem that holds one of `roots`. Errors name what the
    /// kernel refused, so a machine that cannot run the check says so.
    pub fn start(roots: &[&str]) -> io::Result<HostWrites> {
        // SAFETY: plain syscalls; every returned descriptor is checked and owned.
        let fan = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_NOTIF
                    | libc::FAN_REPORT_DFID_NAME
                    | libc::FAN_UNLIMITED_QUEUE
                    | libc::FAN_CLOEXEC
                    | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_CLOEXEC) as libc::c_uint,
            )
        };
        if fan < 0 {
            return Err(os_error("fanotify_init"));
        }
        // SAFETY: `fan` is a new descriptor nobody else owns.
        let fan = unsafe { OwnedFd::from_raw_fd(fan) };
        let mut mounts: Vec<(libc::fsid_t, OwnedFd)> = Vec::new();
        let mut filesystems = Vec::new();
        for root in roots {
            let path = Path::new(root);
            if !path.is_dir() {
                continue;
            }
            let fsid = fsid_of(path)?;
            if mounts.iter().any(|(known, _)| same_fsid(known, &fsid)) {
                continue;
            }
            let c_root = std::ffi::CString::new(*root).map_err(io::Error::other)?;
            // SAFETY: valid descriptor and NUL-terminated path.
            let marked = unsafe {
                libc::fanotify_mark(
                    fan.as_raw_fd(),
                    libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                    EVENTS,
                    libc::AT_FDCWD,
                    c_root.as_ptr(),
                )
            };
            if marked != 0 {
                return Err(os_error(&format!("fanotify_mark {root}")));
            }
            let dir = std::fs::File::open(path)?;
            mounts.push((fsid, dir.into()));
            filesystems.push(path.to_path_buf());
        }
        let procs = proc_connector()?;
        let seen = Arc::new(Mutex::new(Seen {
            lineage: HashSet::from([std::process::id()]),
            ..Seen::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || read_loop(fan, procs, mounts, seen, stop))
        };
        Ok(HostWrites {
            seen,
            stop,
            reader: Some(reader),
            filesystems,
        })
    }

    /// Stops watching (after the events already queued are read) and splits the
    /// writes by who made them.
    pub fn finish(mut self) -> Report {
        // Let the kernel deliver what the last writes queued.
        std::thread::sleep(std::time::Duration::from_millis(200));
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        let (by_lab, by_others) = seen
            .writes
            .into_iter()
            .partition(|w| seen.lineage.contains(&w.pid));
        Report {
            by_lab,
            by_others,
            lost: seen.lost,
        }
    }
}

impl Drop for HostWrites {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn os_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn fsid_of(path: &Path) -> io::Result<libc::fsid_t> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(os_error(&format!("statfs {}", path.display())));
    }
    Ok(st.f_fsid)
}

fn fsid_words(fsid: &libc::fsid_t) -> [i32; 2] {
    // SAFETY: fsid_t is two ints on Linux; reading them as such is what the kernel does.
    unsafe { std::mem::transmute_copy(fsid) }
}

fn same_fsid(a: &libc::fsid_t, b: &libc::fsid_t) -> bool {
    fsid_words(a) == fsid_words(b)
}

/// A netlink socket subscribed to the kernel's process events.
fn proc_connector() -> io::Result<OwnedFd> {
    const CN_IDX_PROC: u32 = 1;
    const CN_VAL_PROC: u32 = 1;
    const PROC_CN_MCAST_LISTEN: u32 = 1;
    // SAFETY: plain socket call.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_CONNECTOR,
        )
    };
    if fd < 0 {
        return Err(os_error("socket(NETLINK_CONNECTOR)"));
    }
    // SAFETY: new descriptor, owned from here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size: libc::c_int = 16 * 1024 * 1024;
    // SAFETY: valid descriptor and option buffer. Root may raise the limit; a short
    // buffer only risks ENOBUFS, which is reported.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    // SAFETY: zeroed sockaddr_nl is valid; fields set below.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = CN_IDX_PROC;
    addr.nl_pid = 0;
    // SAFETY: valid descriptor and address.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    } != 0
    {
        return Err(os_error("bind(NETLINK_CONNECTOR)"));
    }
    // nlmsghdr (16) + cn_msg (20) + the listen op (4).
    let mut msg = Vec::with_capacity(40);
    msg.extend_from_slice(&40u32.to_ne_bytes());
    msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&std::process::id().to_ne_bytes());
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
    msg.extend_from_slice(&4u16.to_ne_bytes()); // len
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    // SAFETY: valid descriptor and buffer.
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(os_error("send(PROC_CN_MCAST_LISTEN)"));
    }
    Ok(fd)
}

fn read_loop(
    fan: OwnedFd,
    procs: OwnedFd,
    mounts: Vec<(libc::fsid_t, OwnedFd)>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut fds = [
            libc::pollfd {
                fd: fan.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: procs.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: valid pollfd array.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, 20) };
        if ready <= 0 {
            if stopping {
                return;
            }
            continue;
        }
        // Forks first: a child's writes must find its parent already in the lineage.
        drain_forks(&procs, &mut buf, &seen);
        drain_writes(&fan, &mut buf, &mounts, &seen);
    }
}

fn drain_forks(procs: &OwnedFd, buf: &mut [u8], seen: &Mutex<Seen>) {
    const PROC_EVENT_FORK: u32 = 1;
    loop {
        // SAFETY: valid descriptor and buffer.
        let n = unsafe { libc::recv(procs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                lock(seen)
                    .lost
                    .push("process events were dropped (ENOBUFS)".into());
                continue;
            }
            return;
        }
        let msg = &buf[..n as usize];
        let mut at = 0;
        while at + 16 <= msg.len() {
            let len = u32_at(msg, at) as usize;
            if len < 16 || at + len > msg.len() {
                break;
            }
            // nlmsghdr (16), cn_msg (20), then proc_event: what, cpu, timestamp (16),
            // and for a fork: parent pid, parent tgid, child pid, child tgid.
            let event = at + 16 + 20;
            if len >= 16 + 20 + 16 + 16 && u32_at(msg, event) == PROC_EVENT_FORK {
                let parent_tgid = u32_at(msg, event + 16 + 4);
                let child_tgid = u32_at(msg, event + 16 + 12);
                let mut seen = lock(seen);
                if seen.lineage.contains(&parent_tgid) {
                    seen.lineage.insert(child_tgid);
                }
            }
            at += (len + 3) & !3;
        }
    }
}

fn drain_writes(
    fan: &OwnedFd,
    buf: &mut [u8],
    mounts: &[(libc::fsid_t, OwnedFd)],
    seen: &Mutex<Seen>,
) {
    loop {
        // SAFETY: valid descriptor and buffer.
        let n = unsafe { libc::read(fan.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        let data = &buf[..n as usize];
        let mut at = 0;
        while at + 24 <= data.len() {
            let event_len = u32_at(data, at) as usize;
            if event_len < 24 || at + event_len > data.len() {
                break;
            }
            let metadata_len = u16::from_ne_bytes([data[at + 6], data[at + 7]]) as usize;
            let mask = u64::from_ne_bytes(data[at + 8..at + 16].try_into().unwrap_or([0; 8]));
            let pid = i32::from_ne_bytes(data[at + 20..at + 24].try_into().unwrap_or([0; 4]));
            if mask & libc::FAN_Q_OVERFLOW != 0 {
                lock(seen).lost.push("the fanotify queue overflowed".into());
            } else {
                let info = &data[at + metadata_len..at + event_len];
                let path = resolve(info, mounts);
                let what = describe(mask);
                // Writing to a device node (/dev/null, a terminal) is I/O through the
                // node, not a change of the filesystem; the kernel log has its own check.
                let device_io =
                    what == "write" && std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file());
                if !device_io {
                    lock(seen).writes.push(HostWrite {
                        pid: pid as u32,
                        path,
                        what,
                    });
                }
            }
            at += event_len;
        }
    }
}

/// The directory (by its file handle) and name an info record names, as a path.
fn resolve(info: &[u8], mounts: &[(libc::fsid_t, OwnedFd)]) -> PathBuf {
    // fanotify_event_info_header (4), fsid (8), file_handle: bytes (4), type (4), handle,
    // then the name, NUL-terminated.
    if info.len() < 20 {
        return PathBuf::from("<no path>");
    }
    let fsid = [
        i32::from_ne_bytes(info[4..8].try_into().unwrap_or([0; 4])),
        i32::from_ne_bytes(info[8..12].try_into().unwrap_or([0; 4])),
    ];
    let handle_bytes = u32_at(info, 12) as usize;
    let handle_end = 20 + handle_bytes;
    if handle_end > info.len() {
        return PathBuf::from("<bad record>");
    }
    let name = info[handle_end..]
        .split(|&b| b == 0)
        .next()
        .map(OsStr::from_bytes)
        .unwrap_or_default();
    let dir = mounts
        .iter()
        .find(|(known, _)| fsid_words(known) == fsid)
        .and_then(|(_, mount)| open_handle(mount, &info[12..handle_end]));
    let dir = dir.unwrap_or_else(|| PathBuf::from("<gone>"));
    if name.is_empty() {
        dir
    } else {
        dir.join(name)
    }
}

fn open_handle(mount: &OwnedFd, handle: &[u8]) -> Option<PathBuf> {
    // struct file_handle is the same bytes the record carries: u32, i32, then the handle.
    let mut owned = handle.to_vec();
    // SAFETY: `owned` holds a complete file_handle as the kernel wrote it.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            owned.as_mut_ptr().cast(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: new descriptor, owned from here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

fn describe(mask: u64) -> &'static str {
    if mask & libc::FAN_CREATE != 0 {
        "create"
    } else if mask & libc::FAN_DELETE != 0 {
        "delete"
    } else if mask & (libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO) != 0 {
        "rename"
    } else if mask & libc::FAN_ATTRIB != 0 {
        "attributes"
    } else {
        "write"
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}
