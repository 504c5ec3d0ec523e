//! The nginx directives and PHP-FPM keys salve may raise, with nginx's built-in
//! defaults: raising a directive the config never sets starts from what nginx uses.

use super::quantity::{Size, Time};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Size,
    Time,
}

/// A directive whose argument at `arg` is a size or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaisableDirective {
    pub name: &'static str,
    pub unit: Unit,
    /// Which argument holds the quantity (`fastcgi_buffers 8 4k` raises the second).
    pub arg: usize,
    /// nginx 1.22's default arguments on x86-64 (one memory page is 4k).
    pub default: &'static [&'static str],
}

const fn size(
    name: &'static str,
    arg: usize,
    default: &'static [&'static str],
) -> RaisableDirective {
    RaisableDirective {
        name,
        unit: Unit::Size,
        arg,
        default,
    }
}

const fn time(name: &'static str) -> RaisableDirective {
    RaisableDirective {
        name,
        unit: Unit::Time,
        arg: 0,
        default: &["60s"],
    }
}

/// `*_busy_buffers_size` is left out on purpose: nginx derives it from the other two,
/// and setting it by hand is what turns a later raise into an `nginx -t` failure.
pub const RAISABLE_DIRECTIVES: &[RaisableDirective] = &[
    size("fastcgi_buffer_size", 0, &["4k"]),
    size("fastcgi_buffers", 1, &["8", "4k"]),
    size("proxy_buffer_size", 0, &["4k"]),
    size("proxy_buffers", 1, &["8", "4k"]),
    size("client_max_body_size", 0, &["1m"]),
    size("client_header_buffer_size", 0, &["1k"]),
    size("large_client_header_buffers", 1, &["4", "8k"]),
    time("fastcgi_read_timeout"),
    time("fastcgi_send_timeout"),
    time("fastcgi_connect_timeout"),
    time("proxy_read_timeout"),
    time("proxy_send_timeout"),
    time("proxy_connect_timeout"),
    time("client_body_timeout"),
    time("client_header_timeout"),
    time("send_timeout"),
];

pub fn raisable_directive(name: &str) -> Option<&'static RaisableDirective> {
    RAISABLE_DIRECTIVES.iter().find(|d| d.name == name)
}

pub fn raisable_directive_names() -> Vec<&'static str> {
    RAISABLE_DIRECTIVES.iter().map(|d| d.name).collect()
}

/// Integer pool keys; the rest of a pool is set, not raised.
pub const RAISABLE_FPM_KEYS: &[&str] = &[
    "pm.max_children",
    "pm.start_servers",
    "pm.max_spare_servers",
    "pm.max_requests",
    "listen.backlog",
];

impl RaisableDirective {
    /// The quantity in base units (bytes or milliseconds).
    pub fn parse(&self, text: &str) -> Result<u64, String> {
        match self.unit {
            Unit::Size => text.parse::<Size>().map(|s| s.0).map_err(|e| e.to_string()),
            Unit::Time => text.parse::<Time>().map(|t| t.0).map_err(|e| e.to_string()),
        }
    }

    pub fn format(&self, value: u64) -> String {
        match self.unit {
            Unit::Size => Size(value).to_string(),
            Unit::Time => Time(value).to_string(),
        }
    }
}

/// The next step of a raise: `current × factor`, rounded up to a whole kilobyte or
/// second so the config stays readable, and never past `max`. `None` when `current`
/// already is at (or above) the cap: there is no step left.
pub fn next_step(current: u64, factor: f64, max: u64, granule: u64) -> Option<u64> {
    if current >= max {
        return None;
    }
    let raw = (current as f64 * factor).ceil();
    let raised = if raw >= u64::MAX as f64 {
        u64::MAX
    } else {
        raw as u64
    };
    let rounded = if granule > 1 && raised >= granule {
        raised.div_ceil(granule).saturating_mul(granule)
    } else {
        raised
    };
    Some(rounded.max(current + 1).min(max))
}

impl Unit {
    /// The rounding unit of a raised value.
    pub fn granule(self) -> u64 {
        match self {
            Unit::Size => 1024,
            Unit::Time => 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raise_doubles_and_stops_at_the_cap() {
        assert_eq!(next_step(4096, 2.0, 65536, 1024), Some(8192));
        assert_eq!(next_step(32768, 2.0, 40960, 1024), Some(40960));
        assert_eq!(next_step(65536, 2.0, 65536, 1024), None);
        assert_eq!(next_step(100_000, 2.0, 65536, 1024), None);
    }

    #[test]
    fn a_raise_rounds_up_to_whole_kilobytes_and_always_moves() {
        assert_eq!(next_step(4096, 1.3, 1 << 20, 1024), Some(6144));
        assert_eq!(next_step(1, 1.1, 10, 1), Some(2));
    }

    #[test]
    fn every_raisable_default_parses_in_its_own_unit() {
        for d in RAISABLE_DIRECTIVES {
            let text = d.default[d.arg];
            assert!(d.parse(text).is_ok(), "{} default {text}", d.name);
        }
        assert_eq!(
            raisable_directive("fastcgi_buffers").map(|d| d.arg),
            Some(1)
        );
        assert_eq!(raisable_directive("fastcgi_busy_buffers_size"), None);
    }
}
