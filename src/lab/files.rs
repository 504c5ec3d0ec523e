//! Everything the lab writes into its own directory: nginx and PHP-FPM configs, the
//! two systemd units, the web root and boot.sh, the sandbox's first process.
//!
//! Every path a config names is inside the lab directory or under /run in the
//! sandbox (a private tmpfs), so nothing the lab's services do lands on the host.

use super::LabError;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Unit names are fixed: the project's policies name them.
pub const PHP_FPM_UNIT: &str = "php8.2-fpm.service";
pub const NGINX_UNIT: &str = "nginx.service";

/// Where the pool listens, inside the sandbox (its /run is a private tmpfs, and nginx
/// reaches the socket because both services share the sandbox's mount namespace).
pub const PHP_FPM_SOCKET: &str = "/run/php/php8.2-fpm.sock";

/// The pool is small on purpose: the hang scenario has to occupy every worker.
pub const MAX_CHILDREN: usize = 2;

/// Long enough to outlast any test or demo step; a pool restart ends it sooner.
pub const SLOW_SECONDS: u32 = 120;

/// About 18 KB of response headers: more than four times nginx's default buffer.
pub const BIG_HEADER_BYTES: usize = 18_000;
/// More headers than the shipped policy's 64k cap lets nginx accept.
pub const HUGE_HEADER_BYTES: usize = 100_000;
/// How long work.php holds a worker.
pub const WORK_MILLIS: u32 = 500;

/// The lab directory's layout: one place that knows every file name.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    pub fn record(&self) -> PathBuf {
        self.dir.join("lab.json")
    }
    pub fn boot_script(&self) -> PathBuf {
        self.dir.join("boot.sh")
    }
    pub fn boot_log(&self) -> PathBuf {
        self.dir.join("boot.log")
    }
    /// What the sandbox's systemd writes to its /dev/console.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn units(&self) -> PathBuf {
        self.dir.join("units")
    }
    /// The sandbox's own /etc/passwd, /etc/group and polkit rules (see `accounts`).
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn passwd(&self) -> PathBuf {
        self.etc().join("passwd")
    }
    pub fn group(&self) -> PathBuf {
        self.etc().join("group")
    }
    pub fn polkit_rules(&self) -> PathBuf {
        self.etc().join("polkit-rules.d")
    }
    pub fn nginx_conf(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }
    /// The site, in its own file as on a Debian host (`sites-enabled/`): the file the
    /// config-edit scenarios change, reached from nginx.conf through `include`.
    pub fn nginx_sites(&self) -> PathBuf {
        self.dir.join("sites-enabled")
    }
    pub fn nginx_site(&self) -> PathBuf {
        self.nginx_sites().join("app.conf")
    }
    pub fn nginx_error_log(&self) -> PathBuf {
        self.dir.join("nginx-error.log")
    }
    pub fn nginx_access_log(&self) -> PathBuf {
        self.dir.join("nginx-access.log")
    }
    pub fn nginx_temp(&self) -> PathBuf {
        self.dir.join("nginx-temp")
    }
    pub fn php_fpm_conf(&self) -> PathBuf {
        self.dir.join("php-fpm.conf")
    }
    pub fn php_fpm_log(&self) -> PathBuf {
        self.dir.join("php-fpm.log")
    }
    pub fn pool_dir(&self) -> PathBuf {
        self.dir.join("php-fpm.d")
    }
    pub fn pool_conf(&self) -> PathBuf {
        self.pool_dir().join("www.conf")
    }
    /// The pool file's original bytes while the crashloop scenario has broken it; kept
    /// outside php-fpm.d so the `*.conf` include never reads it.
    pub fn pool_backup(&self) -> PathBuf {
        self.dir.join("www.conf.orig")
    }
    pub fn web_root(&self) -> PathBuf {
        self.dir.join("www")
    }

    pub(crate) fn s(&self, path: PathBuf) -> String {
        path.to_string_lossy().into_owned()
    }
}

/// Writes every config, unit and script for a lab serving `http_port`, replacing what a
/// previous lab left, and clears old logs so a new lab starts with empty ones.
pub fn write_all(
    layout: &Layout,
    http_port: u16,
    topology: super::nodes::Topology,
) -> Result<(), LabError> {
    for dir in [
        layout.dir.clone(),
        layout.units(),
        layout.nginx_temp(),
        layout.pool_dir(),
        layout.web_root(),
        layout.nginx_sites(),
    ] {
        create_dir(&dir)?;
    }
    for stale in [
        layout.nginx_error_log(),
        layout.nginx_access_log(),
        layout.php_fpm_log(),
        layout.boot_log(),
        layout.console_log(),
        layout.pool_backup(),
    ] {
        match fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LabError::io("remove", stale, e))
            }
            _ => {}
        }
    }
    write_configs(layout, http_port, topology)?;
    write(
        &layout.web_root().join("ping.php"),
        "<?php\necho \"pong\\n\";\n",
        0o644,
    )?;
    // Response headers past nginx's default 4k fastcgi_buffer_size: nginx answers 502
    // with "upstream sent too big header while reading response header from upstream".
    for (page, bytes) in [
        ("big-header.php", BIG_HEADER_BYTES),
        ("huge-header.php", HUGE_HEADER_BYTES),
    ] {
        write(&layout.web_root().join(page), &header_page(bytes), 0o644)?;
    }
    write(
        &layout.web_root().join("work.php"),
        &format!("<?php\n// The exhaustion scenario's page: holds a worker for a moment.\nusleep({WORK_MILLIS} * 1000);\necho \"worked\\n\";\n"),
        0o644,
    )?;
    write(
        &layout.web_root().join("slow.php"),
        &format!("<?php\n// The hang scenario parks every worker here.\nsleep({SLOW_SECONDS});\necho \"done\\n\";\n"),
        0o644,
    )?;
    write(
        &layout.units().join(PHP_FPM_UNIT),
        &php_fpm_unit(layout),
        0o644,
    )?;
    write(&layout.units().join(NGINX_UNIT), &nginx_unit(layout), 0o644)?;
    for (name, text) in super::accounts::HELPER_UNITS {
        write(&layout.units().join(name), text, 0o644)?;
    }
    super::accounts::write_accounts(layout)?;
    super::nodes::write_all(layout, http_port, topology)?;
    write(&layout.boot_script(), &super::boot::script(layout), 0o755)?;
    Ok(())
}

/// The configs alone, as a fresh lab has them: what `repair` puts back after a
/// scenario (or salve) edited them. Leaves logs and pages alone.
pub fn write_configs(
    layout: &Layout,
    http_port: u16,
    topology: super::nodes::Topology,
) -> Result<(), LabError> {
    write(&layout.nginx_conf(), &nginx_conf(layout), 0o644)?;
    write(&layout.nginx_site(), &nginx_site(layout, http_port), 0o644)?;
    write(&layout.php_fpm_conf(), &php_fpm_conf(layout), 0o644)?;
    write(&layout.pool_conf(), &pool_conf(), 0o644)?;
    super::nodes::write_configs(layout, http_port, topology)
}

/// A page sending `bytes` of response headers as 1000-byte cookies.
fn header_page(bytes: usize) -> String {
    format!(
        "<?php\n// {bytes} bytes of response headers.\nfor ($i = 0; $i < {n}; $i++) {{\n    header(\"Set-Cookie: c$i=\" . str_repeat('x', 980), false);\n}}\necho \"headers sent\\n\";\n",
        n = bytes / 1000
    )
}

pub(crate) fn create_dir(dir: &Path) -> Result<(), LabError> {
    fs::create_dir_all(dir).map_err(|e| LabError::io("create directory", dir, e))?;
    // www-data (nginx and PHP-FPM workers) must traverse and read the lab directory,
    // whatever the caller's umask.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| LabError::io("set permissions on", dir, e))
}

/// Writes through a temporary file and a rename, so a reader (systemd, php-fpm) never
/// sees half a file.
pub(crate) fn write(path: &Path, contents: &str, mode: u32) -> Result<(), LabError> {
    write_bytes(path, contents.as_bytes(), mode)
}

/// The temporary is created new (`O_EXCL`) and never followed if it is a link
/// (`O_NOFOLLOW`): a link planted at that name cannot redirect root's write.
pub(crate) fn write_bytes(path: &Path, contents: &[u8], mode: u32) -> Result<(), LabError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".salve-tmp");
    let temporary = PathBuf::from(temporary);
    // A leftover of an interrupted write (ours: the directory is root's alone).
    match fs::remove_file(&temporary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(LabError::io("remove", &temporary, e))
        }
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temporary)
        .map_err(|e| LabError::io("create", &temporary, e))?;
    file.write_all(contents)
        .map_err(|e| LabError::io("write", &temporary, e))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io("set permissions on", &temporary, e))?;
    drop(file);
    fs::rename(&temporary, path).map_err(|e| LabError::io("rename into place", path, e))
}

fn nginx_conf(l: &Layout) -> String {
    let temp = l.s(l.nginx_temp());
    format!(
        r#"# salve lab: nginx in front of the PHP-FPM pool. Every path is in the lab directory.
user www-data;
worker_processes 1;
pid {pid};
error_log {error_log};

events {{
    worker_connections 256;
}}

http {{
    access_log {access_log};
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    default_type text/plain;

    include {sites}/*.conf;
}}
"#,
        pid = l.s(l.dir.join("nginx.pid")),
        error_log = l.s(l.nginx_error_log()),
        access_log = l.s(l.nginx_access_log()),
        sites = l.s(l.nginx_sites()),
    )
}

fn nginx_site(l: &Layout, port: u16) -> String {
    nginx_site_on(l, port, PHP_FPM_SOCKET)
}

/// The PHP site on `port`, in front of the pool listening on `socket`.
pub(super) fn nginx_site_on(l: &Layout, port: u16, socket: &str) -> String {
    nginx_site_passing(l, port, &format!("unix:{socket}"))
}

/// The PHP site on `port`, passing PHP requests to `pass` (a socket or an upstream).
pub(super) fn nginx_site_passing(l: &Layout, port: u16, pass: &str) -> String {
    format!(
        r#"# salve lab: the PHP site, included from nginx.conf. The fastcgi buffers are left
# at nginx's defaults (8 4k), as on a fresh Debian host.
server {{
    listen 127.0.0.1:{port};
    root {root};

    location ~ \.php$ {{
        fastcgi_pass {pass};
        # Short, so a pool whose workers are all stuck shows up as a 504 within
        # seconds instead of nginx's default minute.
        fastcgi_read_timeout 3s;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param SCRIPT_NAME $fastcgi_script_name;
        fastcgi_param QUERY_STRING $query_string;
        fastcgi_param REQUEST_METHOD $request_method;
        fastcgi_param CONTENT_TYPE $content_type;
        fastcgi_param CONTENT_LENGTH $content_length;
        fastcgi_param REQUEST_URI $request_uri;
        fastcgi_param DOCUMENT_URI $document_uri;
        fastcgi_param DOCUMENT_ROOT $document_root;
        fastcgi_param SERVER_PROTOCOL $server_protocol;
        fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        fastcgi_param SERVER_SOFTWARE nginx;
        fastcgi_param REMOTE_ADDR $remote_addr;
        fastcgi_param REMOTE_PORT $remote_port;
        fastcgi_param SERVER_ADDR $server_addr;
        fastcgi_param SERVER_PORT $server_port;
        fastcgi_param SERVER_NAME $server_name;
        fastcgi_param REDIRECT_STATUS 200;
    }}
}}
"#,
        root = l.s(l.web_root()),
    )
}

fn php_fpm_conf(l: &Layout) -> String {
    php_fpm_conf_of(
        "/run/php/php8.2-fpm.pid",
        &l.s(l.php_fpm_log()),
        &l.s(l.pool_dir()),
    )
}

/// A PHP-FPM master's config: its pid file, log and pool directory.
pub(super) fn php_fpm_conf_of(pid: &str, error_log: &str, pools: &str) -> String {
    format!(
        "; salve lab: PHP-FPM master. The pid file is under the sandbox's private /run.\n\
         [global]\n\
         pid = {pid}\n\
         error_log = {error_log}\n\
         include = {pools}/*.conf\n"
    )
}

fn pool_conf() -> String {
    pool_conf_of("www", PHP_FPM_SOCKET)
}

/// A pool named `name` listening on `socket`.
pub(super) fn pool_conf_of(name: &str, socket: &str) -> String {
    // pm = dynamic rather than static: only dynamic and ondemand pools log
    // "server reached pm.max_children setting (N), consider raising it", a signal the
    // project's policies match on. start_servers = max_children keeps every worker
    // forked up front, so the hang scenario finds them all ready.
    format!(
        "; salve lab: the pool nginx talks to.\n\
         [{name}]\n\
         user = www-data\n\
         group = www-data\n\
         listen = {socket}\n\
         listen.owner = www-data\n\
         listen.group = www-data\n\
         listen.mode = 0660\n\
         pm = dynamic\n\
         pm.max_children = {MAX_CHILDREN}\n\
         pm.start_servers = {MAX_CHILDREN}\n\
         pm.min_spare_servers = 1\n\
         pm.max_spare_servers = {MAX_CHILDREN}\n\
         ; The status page on a listener of its own: it answers while every worker is busy.\n\
         pm.status_path = /status\n\
         pm.status_listen = {status}\n",
        status = status_socket_of(socket)
    )
}

/// A pool's status listener, beside its socket: `/run/php/php8.2-fpm-status.sock`.
pub fn status_socket_of(socket: &str) -> String {
    match socket.strip_suffix(".sock") {
        Some(stem) => format!("{stem}-status.sock"),
        None => format!("{socket}-status"),
    }
}

fn php_fpm_unit(l: &Layout) -> String {
    php_fpm_unit_of(&l.s(l.php_fpm_conf()))
}

/// A pool's unit, its master reading `conf`.
pub(super) fn php_fpm_unit_of(conf: &str) -> String {
    format!(
        "# salve lab: the pool under test. Restart=no because the agent under test is the\n\
         # one that restarts it.\n\
         [Unit]\n\
         Description=PHP 8.2 FastCGI Process Manager (salve lab)\n\
         \n\
         [Service]\n\
         Type=notify\n\
         ExecStart=/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config {conf}\n\
         ExecReload=/bin/kill -USR2 $MAINPID\n\
         Restart=no\n\
         # Kept across stops, as Debian's own /run/php is: after a SIGKILL the socket\n\
         # stays behind and nginx logs (111: Connection refused), as on a real host.\n\
         RuntimeDirectory=php\n\
         RuntimeDirectoryPreserve=yes\n\
         TimeoutStopSec=10s\n\
         \n\
         [Install]\n\
         WantedBy=lab.target\n"
    )
}

fn nginx_unit(l: &Layout) -> String {
    let nginx = format!(
        "/usr/sbin/nginx -e {} -c {}",
        l.s(l.nginx_error_log()),
        l.s(l.nginx_conf())
    );
    format!(
        "# salve lab: nginx, started as Debian's unit starts it, with the lab's config.\n\
         [Unit]\n\
         Description=nginx (salve lab)\n\
         \n\
         [Service]\n\
         Type=forking\n\
         PIDFile={pid}\n\
         ExecStartPre={nginx} -t -q\n\
         ExecStart={nginx}\n\
         ExecReload={nginx} -s reload\n\
         KillSignal=SIGQUIT\n\
         KillMode=mixed\n\
         TimeoutStopSec=5s\n\
         \n\
         [Install]\n\
         WantedBy=lab.target\n",
        pid = l.s(l.dir.join("nginx.pid")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nginx_path_is_inside_the_lab_directory() {
        let layout = Layout::new(Path::new("/var/lib/salve-lab"));
        let conf = nginx_conf(&layout) + &nginx_site(&layout, 8480);
        for directive in [
            "pid ",
            "error_log ",
            "access_log ",
            "client_body_temp_path ",
            "proxy_temp_path ",
            "fastcgi_temp_path ",
            "uwsgi_temp_path ",
            "scgi_temp_path ",
            "root ",
        ] {
            let line = conf
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with(directive))
                .unwrap_or_else(|| panic!("no {directive} in nginx.conf"));
            assert!(line.contains(" /var/lib/salve-lab/"), "{line}");
        }
        assert!(conf.contains("listen 127.0.0.1:8480;"));
    }
}
