//! salve's core: the policy contract (types, validation with located errors, the JSON
//! Schema) and the pure engine that turns events into decisions under guardrails.
//!
//! No I/O beyond reading the text it is handed, no async runtime, no clock: the agent,
//! `salve simulate`, the property tests and the reference model all drive this same
//! code. A crate of its own so that it builds in seconds, which mutation testing needs.

pub mod engine;
pub mod policy;
