//! salve: a self-healing controller. Signals become events, a pure engine turns events
//! into decisions under guardrails, actions carry them out, and the audit journal
//! records every step.

pub mod action;
pub mod agent;
pub mod audit;
pub mod config;
pub mod control;
pub mod controller;
pub mod diagnose;
pub mod fleet;
pub mod kubernetes;
pub mod lab;
pub mod loadbalancer;
pub mod metrics;
pub mod operator;
pub mod signal;
pub mod simulate;
pub mod systemd;
pub mod web;

// The pure core and the config editors are crates of their own (they build in seconds,
// which mutation testing needs); the paths `salve::policy`, `salve::engine` and
// `salve::webconf` stay as they were.
pub use salve_core::{engine, policy};
pub use salve_webconf as webconf;
