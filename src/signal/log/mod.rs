//! The `log` signal: follows a log file across rotation and truncation (`follow`) and
//! matches its lines against named patterns, built-in ones for nginx and PHP-FPM among
//! them (`patterns`). The engine counts matches within a window; this module only
//! delivers lines and tells which patterns they match.

pub mod follow;
pub mod lines;
pub mod patterns;
pub mod scan;

pub use follow::{follow, follow_filtered};
pub use patterns::{builtin, builtin_names, BuiltinPattern, Match, PatternError, PatternSet};
pub use scan::LineScanner;
