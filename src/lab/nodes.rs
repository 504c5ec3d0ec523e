//! The lab as a small fleet (`salve lab up --nodes 2 --lb haproxy|nginx`): a second
//! node beside the first (its own PHP-FPM unit and pool, and an nginx site on the next
//! port), a load balancer in front of both, and etcd for the fleet guard. Everything
//! runs in the same sandbox: the nodes are told apart by unit and port, as two hosts
//! would be by address.
//!
//! Ports, from the lab's HTTP port P: node a on P, node b on P+1, the load balancer
//! on P+2, etcd's clients on P+3 and its peer port on P+4.

use super::files::{self, create_dir, write, Layout, PHP_FPM_UNIT};
use super::LabError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub const PHP_FPM_UNIT_B: &str = "php8.2-fpm-b.service";
pub const PHP_FPM_SOCKET_B: &str = "/run/php/php8.2-fpm-b.sock";
/// The backup pool beside the first (`salve lab up --backup-pool`).
pub const PHP_FPM_UNIT_BACKUP: &str = "php8.2-fpm-backup.service";
pub const PHP_FPM_SOCKET_BACKUP: &str = "/run/php/php8.2-fpm-backup.sock";
/// The nginx upstream of the primary pool and its backup.
pub const POOLS_UPSTREAM: &str = "php_pools";
pub const HAPROXY_UNIT: &str = "haproxy.service";
pub const ETCD_UNIT: &str = "etcd.service";
/// HAProxy's admin socket inside the sandbox (a private /run).
pub const HAPROXY_SOCKET: &str = "/run/haproxy/admin.sock";
/// The HAProxy backend and the nginx upstream in front of the two nodes; their
/// servers are `node-a` and `node-b` (HAProxy), `127.0.0.1:P` and `127.0.0.1:P+1`
/// (nginx): the names the shipped load-balancer policies use.
pub const LB_BACKEND: &str = "web";
/// Each node's weight at the load balancer, as a fresh lab has it.
pub const NODE_WEIGHT: u32 = 10;

/// What fronts the two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbKind {
    /// Debian's haproxy, with the best health-check settings haproxy alone has
    /// (`option httpchk` every 500 ms, down after 2, `retry-on all-retryable-errors`,
    /// `option redispatch`): the reference salve is measured against.
    Haproxy,
    /// An nginx `upstream` of the two nodes, in the lab's own nginx.
    Nginx,
}

impl FromStr for LbKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "haproxy" => Ok(LbKind::Haproxy),
            "nginx" => Ok(LbKind::Nginx),
            _ => Err(format!("unknown load balancer \"{s}\": haproxy or nginx")),
        }
    }
}

impl fmt::Display for LbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LbKind::Haproxy => "haproxy",
            LbKind::Nginx => "nginx",
        })
    }
}

/// One node, one node with a backup pool, or two nodes behind a load balancer with
/// etcd beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Topology {
    #[default]
    Single,
    /// nginx passes PHP to an upstream of the pool and a second, backup pool (its own
    /// unit), and on to the backup when the first refuses (`fastcgi_next_upstream
    /// error timeout`): a crash of one pool is a retry, not a 502.
    BackupPool,
    Fleet(LbKind),
}

impl Topology {
    pub fn lb(self) -> Option<LbKind> {
        match self {
            Topology::Single | Topology::BackupPool => None,
            Topology::Fleet(lb) => Some(lb),
        }
    }

    /// The units a lab of this shape starts beyond nginx and the first pool.
    pub(super) fn extra_units(self) -> Vec<&'static str> {
        match self {
            Topology::Single => Vec::new(),
            Topology::BackupPool => vec![PHP_FPM_UNIT_BACKUP],
            Topology::Fleet(LbKind::Haproxy) => vec![PHP_FPM_UNIT_B, ETCD_UNIT, HAPROXY_UNIT],
            Topology::Fleet(LbKind::Nginx) => vec![PHP_FPM_UNIT_B, ETCD_UNIT],
        }
    }

    /// The ports it listens on beyond the first node's.
    pub(super) fn extra_ports(self, http_port: u16) -> Result<Vec<u16>, LabError> {
        if self.lb().is_none() {
            return Ok(Vec::new());
        }
        (1..=4)
            .map(|k| {
                http_port
                    .checked_add(k)
                    .ok_or(LabError::PortsOutOfRange { port: http_port })
            })
            .collect()
    }
}

/// A node of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    A,
    B,
}

impl Node {
    pub fn unit(self) -> &'static str {
        match self {
            Node::A => PHP_FPM_UNIT,
            Node::B => PHP_FPM_UNIT_B,
        }
    }

    pub fn port(self, http_port: u16) -> u16 {
        match self {
            Node::A => http_port,
            Node::B => http_port + 1,
        }
    }

    /// `a` or `b`.
    pub fn name(self) -> &'static str {
        match self {
            Node::A => "a",
            Node::B => "b",
        }
    }

    /// Its server's name in the HAProxy backend.
    pub fn server(self) -> &'static str {
        match self {
            Node::A => "node-a",
            Node::B => "node-b",
        }
    }
}

impl FromStr for Node {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "a" => Ok(Node::A),
            "b" => Ok(Node::B),
            _ => Err(format!("unknown node \"{s}\": a or b")),
        }
    }
}

impl Layout {
    pub fn php_fpm_conf_b(&self) -> PathBuf {
        self.dir.join("php-fpm-b.conf")
    }
    pub fn php_fpm_log_b(&self) -> PathBuf {
        self.dir.join("php-fpm-b.log")
    }
    pub fn pool_dir_b(&self) -> PathBuf {
        self.dir.join("php-fpm-b.d")
    }
    pub fn nginx_site_b(&self) -> PathBuf {
        self.nginx_sites().join("node-b.conf")
    }
    /// The nginx load balancer's upstream and server, when nginx fronts the nodes.
    pub fn lb_site(&self) -> PathBuf {
        self.nginx_sites().join("lb.conf")
    }
    pub fn haproxy_cfg(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.dir.join("etcd-data")
    }
    pub fn php_fpm_conf_backup(&self) -> PathBuf {
        self.dir.join("php-fpm-backup.conf")
    }
    pub fn php_fpm_log_backup(&self) -> PathBuf {
        self.dir.join("php-fpm-backup.log")
    }
    pub fn pool_dir_backup(&self) -> PathBuf {
        self.dir.join("php-fpm-backup.d")
    }
}

/// Writes the second node's, the load balancer's and etcd's files and units (and, for
/// a single node, removes any a fleet lab left, so nginx does not serve them).
pub(super) fn write_all(l: &Layout, http_port: u16, topology: Topology) -> Result<(), LabError> {
    remove(&l.php_fpm_log_b())?;
    remove(&l.php_fpm_log_backup())?;
    let data = l.etcd_data();
    match std::fs::remove_dir_all(&data) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(LabError::io("remove", &data, e))
        }
        _ => {}
    }
    for unit in [PHP_FPM_UNIT_B, PHP_FPM_UNIT_BACKUP, HAPROXY_UNIT, ETCD_UNIT] {
        remove(&l.units().join(unit))?;
    }
    write_configs(l, http_port, topology)?;
    match topology {
        Topology::Single => return Ok(()),
        Topology::BackupPool => {
            return write(
                &l.units().join(PHP_FPM_UNIT_BACKUP),
                &files::php_fpm_unit_of(&l.s(l.php_fpm_conf_backup())),
                0o644,
            )
        }
        Topology::Fleet(_) => {}
    }
    write(
        &l.units().join(PHP_FPM_UNIT_B),
        &files::php_fpm_unit_of(&l.s(l.php_fpm_conf_b())),
        0o644,
    )?;
    write(&l.units().join(ETCD_UNIT), &etcd_unit(l, http_port), 0o644)?;
    if topology.lb() == Some(LbKind::Haproxy) {
        write(&l.units().join(HAPROXY_UNIT), &haproxy_unit(l), 0o644)?;
    }
    Ok(())
}

/// The configs as a fresh lab of this shape has them: what `repair` puts back.
pub(super) fn write_configs(
    l: &Layout,
    http_port: u16,
    topology: Topology,
) -> Result<(), LabError> {
    for stale in [l.nginx_site_b(), l.lb_site(), l.haproxy_cfg()] {
        remove(&stale)?;
    }
    if topology == Topology::BackupPool {
        return write_backup_pool(l, http_port);
    }
    let Topology::Fleet(lb) = topology else {
        return Ok(());
    };
    create_dir(&l.pool_dir_b())?;
    write(
        &l.nginx_site_b(),
        &files::nginx_site_on(l, Node::B.port(http_port), PHP_FPM_SOCKET_B),
        0o644,
    )?;
    write(
        &l.php_fpm_conf_b(),
        &files::php_fpm_conf_of(
            "/run/php/php8.2-fpm-b.pid",
            &l.s(l.php_fpm_log_b()),
            &l.s(l.pool_dir_b()),
        ),
        0o644,
    )?;
    write(
        &l.pool_dir_b().join("www-b.conf"),
        &files::pool_conf_of("www-b", PHP_FPM_SOCKET_B),
        0o644,
    )?;
    match lb {
        LbKind::Haproxy => write_haproxy_cfg(l, http_port, HaproxyChecks::BEST),
        LbKind::Nginx => write(&l.lb_site(), &nginx_lb_site(http_port), 0o644),
    }
}

/// The site passing PHP to the pool and its backup, and the backup pool's configs.
fn write_backup_pool(l: &Layout, http_port: u16) -> Result<(), LabError> {
    let site = files::nginx_site_passing(l, http_port, POOLS_UPSTREAM).replace(
        &format!("        fastcgi_pass {POOLS_UPSTREAM};\n"),
        &format!(
            "        fastcgi_pass {POOLS_UPSTREAM};\n        # A pool that refuses the connection (it crashed) is a retry on the next,\n        # never a 502; a request already inside the dead pool is not sent again.\n        fastcgi_next_upstream error timeout;\n"
        ),
    );
    let upstream = format!(
        "# salve lab: the pool, and a backup pool of its own unit nginx turns to when the\n# first refuses. max_fails=0: nginx never counts a pool out (for fail_timeout, 10 s\n# by default), so it goes back to the primary as soon as it is restarted, and a\n# crash of the backup meanwhile costs nothing.\nupstream {POOLS_UPSTREAM} {{\n    server unix:{primary} max_fails=0;\n    server unix:{PHP_FPM_SOCKET_BACKUP} backup max_fails=0;\n}}\n",
        primary = files::PHP_FPM_SOCKET,
    );
    write(&l.nginx_site(), &(upstream + &site), 0o644)?;
    create_dir(&l.pool_dir_backup())?;
    write(
        &l.php_fpm_conf_backup(),
        &files::php_fpm_conf_of(
            "/run/php/php8.2-fpm-backup.pid",
            &l.s(l.php_fpm_log_backup()),
            &l.s(l.pool_dir_backup()),
        ),
        0o644,
    )?;
    write(
        &l.pool_dir_backup().join("www-backup.conf"),
        &files::pool_conf_of("www-backup", PHP_FPM_SOCKET_BACKUP),
        0o644,
    )
}

fn remove(path: &std::path::Path) -> Result<(), LabError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// How haproxy finds a dead node on its own: the settings of the reference rows of
/// `make bench-lb`. The lab boots with [`HaproxyChecks::BEST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaproxyChecks {
    /// `option httpchk GET /ping.php` (else a TCP connect, which a node whose nginx
    /// still answers always passes).
    pub http: bool,
    pub inter: std::time::Duration,
    pub fall: u32,
    /// `retry-on all-retryable-errors` with `option redispatch`: a request that met a
    /// 502 or a refused connection is sent to another server.
    pub retry_on_errors: bool,
}

impl HaproxyChecks {
    pub const BEST: HaproxyChecks = HaproxyChecks {
        http: true,
        inter: std::time::Duration::from_millis(500),
        fall: 2,
        retry_on_errors: true,
    };
}

impl fmt::Display for HaproxyChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.http {
            "option httpchk"
        } else {
            "L4 check"
        };
        write!(
            f,
            "{kind} inter {}ms fall {}",
            self.inter.as_millis(),
            self.fall
        )?;
        if self.retry_on_errors {
            f.write_str(" + retry-on all-retryable-errors + redispatch")?;
        }
        Ok(())
    }
}

fn haproxy_cfg(http_port: u16, checks: HaproxyChecks) -> String {
    let (a, b, lb) = (
        Node::A.port(http_port),
        Node::B.port(http_port),
        http_port + 2,
    );
    let retries = if checks.retry_on_errors {
        "    retries 3\n    option redispatch\n    retry-on all-retryable-errors\n"
    } else {
        ""
    };
    let http_check = if checks.http {
        "    option httpchk GET /ping.php\n    http-check expect status 200\n"
    } else {
        ""
    };
    format!(
        "# salve lab: haproxy in front of the two nodes ({checks}).\n\
         global\n\
         \x20   stats socket {HAPROXY_SOCKET} mode 660 group haproxy level admin\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 1s\n\
         \x20   timeout client 10s\n\
         \x20   timeout server 10s\n\
         {retries}\
         \n\
         frontend web\n\
         \x20   bind 127.0.0.1:{lb}\n\
         \x20   default_backend {LB_BACKEND}\n\
         \n\
         backend {LB_BACKEND}\n\
         {http_check}\
         \x20   default-server inter {inter}ms fall {fall} rise 2\n\
         \x20   server node-a 127.0.0.1:{a} check weight {NODE_WEIGHT}\n\
         \x20   server node-b 127.0.0.1:{b} check weight {NODE_WEIGHT}\n",
        inter = checks.inter.as_millis(),
        fall = checks.fall,
    )
}

/// Rewrites haproxy.cfg with `checks` (the reference settings `make bench-lb`
/// measures haproxy alone with).
pub(super) fn write_haproxy_cfg(
    l: &Layout,
    http_port: u16,
    checks: HaproxyChecks,
) -> Result<(), LabError> {
    write(&l.haproxy_cfg(), &haproxy_cfg(http_port, checks), 0o644)
}

fn nginx_lb_site(http_port: u16) -> String {
    let (a, b, lb) = (
        Node::A.port(http_port),
        Node::B.port(http_port),
        http_port + 2,
    );
    format!(
        "# salve lab: nginx as the load balancer in front of the two nodes.\n\
         upstream {LB_BACKEND} {{\n\
         \x20   server 127.0.0.1:{a} weight={NODE_WEIGHT};\n\
         \x20   server 127.0.0.1:{b} weight={NODE_WEIGHT};\n\
         }}\n\
         server {{\n\
         \x20   listen 127.0.0.1:{lb};\n\
         \x20   location / {{\n\
         \x20       proxy_pass http://{LB_BACKEND};\n\
         \x20       # A GET that meets a dead node is tried on the other; a POST never is.\n\
         \x20       proxy_next_upstream error timeout http_502 http_503;\n\
         \x20   }}\n\
         }}\n"
    )
}

fn haproxy_unit(l: &Layout) -> String {
    format!(
        "# salve lab: haproxy in front of the two nodes, as Debian's unit runs it.\n\
         [Unit]\n\
         Description=HAProxy (salve lab)\n\
         \n\
         [Service]\n\
         Type=notify\n\
         ExecStartPre=/usr/sbin/haproxy -c -q -f {cfg}\n\
         ExecStart=/usr/sbin/haproxy -Ws -f {cfg} -p /run/haproxy.pid\n\
         ExecReload=/bin/kill -USR2 $MAINPID\n\
         RuntimeDirectory=haproxy\n\
         KillMode=mixed\n\
         TimeoutStopSec=5s\n\
         \n\
         [Install]\n\
         WantedBy=lab.target\n",
        cfg = l.s(l.haproxy_cfg()),
    )
}

fn etcd_unit(l: &Layout, http_port: u16) -> String {
    let (client, peer) = (
        format!("http://127.0.0.1:{}", http_port + 3),
        format!("http://127.0.0.1:{}", http_port + 4),
    );
    format!(
        "# salve lab: a one-member etcd for the fleet guard, its data in the lab directory.\n\
         [Unit]\n\
         Description=etcd (salve lab)\n\
         \n\
         [Service]\n\
         Type=notify\n\
         ExecStart=/usr/bin/etcd --name lab --data-dir {data} \
         --listen-client-urls {client} --advertise-client-urls {client} \
         --listen-peer-urls {peer} --initial-advertise-peer-urls {peer} \
         --initial-cluster lab={peer}\n\
         TimeoutStopSec=5s\n\
         \n\
         [Install]\n\
         WantedBy=lab.target\n",
        data = l.s(l.etcd_data()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_fleet_lab_uses_the_four_ports_after_its_own_and_only_those() {
        let t = Topology::Fleet(LbKind::Haproxy);
        assert_eq!(t.extra_ports(8480).unwrap(), [8481, 8482, 8483, 8484]);
        assert!(t.extra_ports(65533).is_err());
        assert!(Topology::Single.extra_ports(65535).unwrap().is_empty());
        let cfg = haproxy_cfg(8480, HaproxyChecks::BEST);
        assert!(cfg.contains("bind 127.0.0.1:8482\n"), "{cfg}");
        assert!(cfg.contains("    retry-on all-retryable-errors\n"), "{cfg}");
        assert!(
            cfg.contains("    default-server inter 500ms fall 2 rise 2\n"),
            "{cfg}"
        );
        let plain = haproxy_cfg(
            8480,
            HaproxyChecks {
                http: false,
                inter: std::time::Duration::from_secs(2),
                fall: 3,
                retry_on_errors: false,
            },
        );
        assert!(
            !plain.contains("retry-on") && !plain.contains("httpchk"),
            "{plain}"
        );
        assert!(
            plain.contains(
                "# salve lab: haproxy in front of the two nodes (L4 check inter 2000ms fall 3).\n"
            ),
            "{plain}"
        );
        assert!(
            cfg.contains("server node-b 127.0.0.1:8481 check weight 10\n"),
            "{cfg}"
        );
        let etcd = etcd_unit(&Layout::new(Path::new("/var/lib/salve-lab")), 8480);
        assert!(
            etcd.contains("--listen-client-urls http://127.0.0.1:8483 "),
            "{etcd}"
        );
        assert!(
            etcd.contains("--data-dir /var/lib/salve-lab/etcd-data "),
            "{etcd}"
        );
        let site = nginx_lb_site(8480);
        assert!(site.contains("server 127.0.0.1:8481 weight=10;"), "{site}");
    }

    #[test]
    fn topologies_and_nodes_read_as_the_cli_writes_them() {
        assert_eq!("nginx".parse::<LbKind>(), Ok(LbKind::Nginx));
        assert!("traefik".parse::<LbKind>().is_err());
        assert_eq!("b".parse::<Node>(), Ok(Node::B));
        assert_eq!(Node::B.port(8480), 8481);
        let json = serde_json::to_string(&Topology::Fleet(LbKind::Nginx)).unwrap();
        assert_eq!(json, r#"{"fleet":"nginx"}"#);
    }
}
