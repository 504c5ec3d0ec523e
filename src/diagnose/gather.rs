//! Gathering what a diagnosis looks at: both configs, the tails of both logs, the
//! accounts, the unit's boot state over D-Bus, memory and worker sizes from /proc, and
//! (when asked) probes of the public URL and the origin.

use super::{Accounts, EdgeProbe, Memory, UnitFacts};
use crate::systemd::{connect, Bus};
use crate::webconf::fpm::{self, FpmConfig};
use crate::webconf::nginx::{self, NginxConfig};
use crate::webconf::ConfError;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// "Recent" is the end of each log: enough for hours of errors on a busy site, and
/// bounded, so diagnosing a 10 GB log takes no longer than a small one.
const LOG_TAIL_BYTES: u64 = 1024 * 1024;
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const BUS_TIMEOUT: Duration = Duration::from_secs(5);

pub const DEFAULT_NGINX_ERROR_LOG: &str = "/var/log/nginx/error.log";
pub const DEFAULT_FPM_LOG: &str = "/var/log/php8.2-fpm.log";

#[derive(Debug, Clone)]
pub struct Options {
    pub nginx_conf: PathBuf,
    pub fpm_conf: PathBuf,
    pub error_log: Option<PathBuf>,
    pub fpm_log: Option<PathBuf>,
    pub fpm_unit: String,
    /// `None`: do not ask systemd.
    pub bus: Option<Bus>,
    pub public_url: Option<String>,
    pub origin_url: Option<String>,
    pub passwd: PathBuf,
    pub group: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Config(#[from] ConfError),
    #[error("--public-url and --origin-url go together: the edge is judged by comparing them")]
    HalfAnEdge,
}

pub struct Gathered {
    pub nginx: NginxConfig,
    pub fpm: FpmConfig,
    pub nginx_log: Vec<String>,
    pub fpm_log: Vec<String>,
    pub accounts: Accounts,
    pub unit: Option<Result<UnitFacts, String>>,
    pub memory: Option<Memory>,
    pub edge: Option<EdgeProbe>,
    pub skipped: Vec<String>,
    pub error_logs: Vec<PathBuf>,
    pub fpm_log_path: PathBuf,
}

pub async fn gather(options: &Options) -> Result<Gathered, GatherError> {
    let nginx = nginx::load(&options.nginx_conf)?;
    let fpm = fpm::load(&options.fpm_conf)?;
    let mut skipped = Vec::new();
    let error_logs = match &options.error_log {
        Some(path) => vec![path.clone()],
        None => nginx_error_logs(&nginx),
    };
    let fpm_log_path = options
        .fpm_log
        .clone()
        .unwrap_or_else(|| fpm_error_log(&fpm));
    let mut nginx_log = Vec::new();
    for path in &error_logs {
        nginx_log.extend(tail_lines(path, &mut skipped));
    }
    let fpm_log = tail_lines(&fpm_log_path, &mut skipped);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let accounts = Accounts::parse(&read(&options.passwd), &read(&options.group));
    let unit = match &options.bus {
        Some(bus) => Some(unit_facts(bus, &options.fpm_unit).await),
        None => None,
    };
    let memory = memory();
    let edge = match (&options.public_url, &options.origin_url) {
        (Some(public), Some(origin)) => Some(EdgeProbe {
            public_url: public.clone(),
            public: probe(public).await,
            origin_url: origin.clone(),
            origin: probe(origin).await,
        }),
        (None, None) => None,
        _ => return Err(GatherError::HalfAnEdge),
    };
    Ok(Gathered {
        nginx,
        fpm,
        nginx_log,
        fpm_log,
        accounts,
        unit,
        memory,
        edge,
        skipped,
        error_logs,
        fpm_log_path,
    })
}

/// Every file an `error_log` directive names, at any level: a site that logs to its own
/// file puts its upstream errors there. Debian's default when there is none.
fn nginx_error_logs(nginx: &NginxConfig) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for l in nginx.walk() {
        if l.directive.name != "error_log" {
            continue;
        }
        if let Some(path) = l.directive.args.first().filter(|p| p.starts_with('/')) {
            let path = PathBuf::from(path);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    if paths.is_empty() {
        paths.push(PathBuf::from(DEFAULT_NGINX_ERROR_LOG));
    }
    paths
}

fn fpm_error_log(fpm: &FpmConfig) -> PathBuf {
    fpm.global("error_log")
        .map(|(_, e)| e.value.clone())
        .filter(|p| p.starts_with('/'))
        .map_or_else(|| PathBuf::from(DEFAULT_FPM_LOG), PathBuf::from)
}

fn tail_lines(path: &Path, skipped: &mut Vec<String>) -> Vec<String> {
    let read = || -> std::io::Result<Vec<String>> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let start = len.saturating_sub(LOG_TAIL_BYTES);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        if start > 0 && !lines.is_empty() {
            // The first line was cut by the seek.
            lines.remove(0);
        }
        Ok(lines)
    };
    read().unwrap_or_else(|e| {
        skipped.push(format!("log {}: {e}", path.display()));
        Vec::new()
    })
}

async fn unit_facts(bus: &Bus, unit: &str) -> Result<UnitFacts, String> {
    let ask = async {
        let conn = connect(bus)
            .await
            .map_err(|e| format!("cannot reach the {bus} bus: {e}"))?;
        let manager = zbus_systemd::systemd1::ManagerProxy::new(&conn)
            .await
            .map_err(|e| e.to_string())?;
        let unit_file_state = manager
            .get_unit_file_state(unit.to_string())
            .await
            .map_err(|e| format!("systemd does not know {unit}: {e}"))?;
        let listed = manager
            .list_units_by_names(vec![unit.to_string()])
            .await
            .map_err(|e| e.to_string())?;
        let active_state = listed
            .into_iter()
            .next()
            .map_or_else(|| "unknown".to_string(), |u| u.3);
        Ok(UnitFacts {
            unit_file_state,
            active_state,
        })
    };
    tokio::time::timeout(BUS_TIMEOUT, ask)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer from the {bus} bus within {BUS_TIMEOUT:?}"
            ))
        })
}

/// MemAvailable, and the RSS of every process titled `php-fpm: pool NAME`.
fn memory() -> Option<Memory> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let mut workers = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let title = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let Some(pool) = title.trim().strip_prefix("php-fpm: pool ") else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        if let Some(kib) = rss_kib {
            workers.push((pool.trim().to_string(), kib * 1024));
        }
    }
    Some(Memory {
        available_bytes: available_kib * 1024,
        workers,
    })
}

async fn probe(url: &str) -> Result<u16, String> {
    let parsed = crate::policy::HttpUrl::parse(url)?;
    let result = crate::signal::http::probe(&parsed, PROBE_TIMEOUT).await;
    result.status.ok_or_else(|| result.describe())
}
