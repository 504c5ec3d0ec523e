//! Edits on PHP-FPM text that leave every other byte alone.

use super::{Entry, FpmFile, Section};
use crate::text::{line_ending, line_indent, next_line_start};
use crate::Edit;

/// Replaces an entry's raw value (quotes included) with `value`, written as given;
/// the key, spacing and any trailing `;` comment stay.
pub fn replace_value(entry: &Entry, value: &str) -> Edit {
    Edit {
        range: entry.value_span.clone(),
        replacement: value.to_string(),
    }
}

/// Inserts `key = value` on a new line right after the section's last entry (or its
/// header when it has none), indented like that entry, with the file's line ending.
pub fn insert_entry(file: &FpmFile, section: &Section, key: &str, value: &str) -> Edit {
    let text = file.text.as_str();
    let eol = line_ending(text);
    let (at, indent) = match section.entries.last() {
        Some(entry) => (
            entry.line_span.end,
            line_indent(text, entry.line_span.start),
        ),
        None => (next_line_start(text, section.header_span.end), ""),
    };
    let line = format!("{indent}{key} = {value}");
    // A last line without a newline gets one before the new line instead of after,
    // so the file keeps ending the way it did.
    let replacement = if at == 0 || text[..at].ends_with('\n') {
        format!("{line}{eol}")
    } else {
        format!("{eol}{line}")
    };
    Edit {
        range: at..at,
        replacement,
    }
}
