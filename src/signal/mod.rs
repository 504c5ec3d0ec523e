//! Signal sources: each turns one part of the outside world into engine `Event`s,
//! sent to the agent over a channel. The agent stamps them with its clock. systemd's
//! unit states come from the D-Bus link in `crate::systemd`, which also runs the unit
//! operations, on one connection (see there why).

pub mod http;
pub mod log;
