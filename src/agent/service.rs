//! systemd service protocol: readiness and the watchdog (`Type=notify`,
//! `WatchdogSec=`). Both are no-ops when not started by systemd.

use std::time::Duration;
use tokio::time::Interval;

pub fn ready() {
    notify(sd_notify::NotifyState::Ready);
}

pub fn stopping() {
    notify(sd_notify::NotifyState::Stopping);
}

pub fn watchdog_ping() {
    notify(sd_notify::NotifyState::Watchdog);
}

fn notify(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// A ticker at half the watchdog period (as sd_watchdog_enabled(3) advises), or `None`
/// when no watchdog is configured.
pub fn watchdog() -> Option<Interval> {
    let period = sd_notify::watchdog_enabled()?;
    let half = (period / 2).max(Duration::from_millis(10));
    Some(tokio::time::interval(half))
}

pub async fn tick(watchdog: &mut Option<Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
