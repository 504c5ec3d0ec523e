//! Signal sources: each turns one part of the outside world into engine `Event`s,
//! sent to the agent over a channel. The agent stamps them with its clock.

pub mod http;
pub mod log;
pub mod systemd;
