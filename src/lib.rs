//! salve: a self-healing controller. Signals become events, a pure engine turns events
//! into decisions under guardrails, actions carry them out, and the audit journal
//! records every step.

pub mod action;
pub mod agent;
pub mod audit;
pub mod config;
pub mod diagnose;
pub mod engine;
pub mod lab;
pub mod policy;
pub mod signal;
pub mod simulate;
pub mod webconf;
