//! End-to-end tests: the real `salve agent` binary against a real systemd, nginx and
//! php8.2-fpm in the lab. They need root and the lab packages; under CI they fail,
//! never skip, when they cannot run. One lab at a time: every test holds a lock.

mod agent;
mod alerts;
mod config_edits;
mod control;
mod durability;
mod fpm_status;
mod harness;
mod least_privilege;
mod load_balancer;
mod metrics;
mod stalled_journal;
