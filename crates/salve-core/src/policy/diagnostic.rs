//! Errors found in a policy file, each pinned to `file:line:col`.

use super::yaml::Pos;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The file, or for a custom resource its `namespace/name`.
    pub file: PathBuf,
    pub pos: Pos,
    /// Where in a custom resource (`spec.guard.cooldown`); it has no lines.
    pub path: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            return write!(f, "{}: {path}: {}", self.file.display(), self.message);
        }
        // Line 0 marks a problem with the file as a whole (unreadable, empty folder).
        if self.pos.line == 0 {
            return write!(f, "{}: {}", self.file.display(), self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

/// Every problem found while loading a set of policy files, in file order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
