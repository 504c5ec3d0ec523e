//! The polling loops the loaded policies need: one HTTP probe per distinct URL (the
//! agent's and the operator's alike), and one reader per PHP-FPM status page.

use crate::policy::{Condition, HttpUrl, Policy};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

pub struct Probes {
    stop: watch::Sender<bool>,
}

impl Probes {
    /// Starts one loop per URL. Two policies probing the same URL share a loop that
    /// runs at the shorter interval and timeout, so the service is not probed twice.
    pub fn start<'a>(
        policies: impl IntoIterator<Item = &'a Policy>,
        events: &crate::signal::EventSender,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let policies_again: Vec<&Policy> = policies.into_iter().collect();
        let mut wanted: BTreeMap<String, (HttpUrl, Duration, Duration)> = BTreeMap::new();
        for policy in policies_again.iter().copied() {
            for trigger in &policy.spec.trigger {
                if let Condition::Http(c) = &trigger.condition {
                    wanted
                        .entry(c.url.as_str().to_string())
                        .and_modify(|(_, interval, timeout)| {
                            *interval = (*interval).min(c.interval);
                            *timeout = (*timeout).min(c.timeout);
                        })
                        .or_insert((c.url.clone(), c.interval, c.timeout));
                }
            }
        }
        let mut pages: BTreeMap<String, (crate::policy::PhpFpmCondition, Duration, Duration)> =
            BTreeMap::new();
        for policy in policies_again.iter().copied() {
            for trigger in &policy.spec.trigger {
                if let Condition::PhpFpm(c) = &trigger.condition {
                    pages
                        .entry(c.source())
                        .and_modify(|(_, interval, timeout)| {
                            *interval = (*interval).min(c.interval);
                            *timeout = (*timeout).min(c.timeout);
                        })
                        .or_insert((c.clone(), c.interval, c.timeout));
                }
            }
        }
        for (source, (page, interval, timeout)) in pages {
            // Validation let only parseable addresses through.
            let Ok(address) = crate::policy::FpmStatusAddress::parse(&page.status) else {
                continue;
            };
            tracing::info!(status = %source, interval = ?interval, "reading PHP-FPM's status page");
            tokio::spawn(crate::signal::php_fpm::run_status_loop(
                source,
                address,
                page.path,
                interval,
                timeout,
                events.clone(),
                stopped.clone(),
            ));
        }
        for (url, interval, timeout) in wanted.into_values() {
            tracing::info!(url = %url, interval = ?interval, "probing");
            tokio::spawn(super::run_probe_loop(
                url,
                interval,
                timeout,
                events.clone(),
                stopped.clone(),
            ));
        }
        Probes { stop }
    }

    /// Stops the current loops and starts those `policies` need.
    pub fn restart<'a>(
        &mut self,
        policies: impl IntoIterator<Item = &'a Policy>,
        events: &crate::signal::EventSender,
    ) {
        self.stop();
        *self = Probes::start(policies, events);
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}
