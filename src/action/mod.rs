//! Executors: each carries out one kind of action and reports how it went.

pub mod exec;
pub mod notify;
pub mod systemd;
