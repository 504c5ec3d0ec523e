//! PHP-FPM configuration (php-fpm.conf and pool files): ini-style sections and
//! `key = value` entries with byte spans, for reading pools and editing them
//! losslessly.

mod config;
mod edit;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use config::{load, FpmConfig, Pool};
pub use edit::{insert_entry, replace_value};

use crate::ConfError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpmFile {
    pub path: PathBuf,
    pub text: String,
    pub sections: Vec<Section>,
    pub entries_before_any_section: Vec<Entry>,
}

/// `[global]` or a pool such as `[www]`, with the entries under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: u32,
    /// `[name]`, brackets included.
    pub header_span: Range<usize>,
    pub entries: Vec<Entry>,
    /// Just after the last line belonging to the section: the next header's line
    /// start, or the end of the text.
    pub end: usize,
}

/// `key = value`; keys keep brackets, as in `php_admin_value[memory_limit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// The value with surrounding double quotes removed.
    pub value: String,
    /// 1-based line and byte column of the key.
    pub line: u32,
    pub col: u32,
    /// The raw value bytes, quotes included, without surrounding whitespace or a
    /// trailing `;` comment.
    pub value_span: Range<usize>,
    /// The whole line including its newline.
    pub line_span: Range<usize>,
}

/// Parses one PHP-FPM file. A line that is not blank, a `;`/`#` comment, a
/// `[section]` header or `key = value` is `ConfError::Syntax`.
pub fn parse(path: &Path, text: &str) -> Result<FpmFile, ConfError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut before = Vec::new();
    let mut offset = 0;
    for (number, raw) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += raw.len();
        let line = u32::try_from(number + 1).unwrap_or(u32::MAX);
        let content = raw.trim_end_matches(['\n', '\r']);
        let body = content.trim();
        if body.is_empty() || body.starts_with(';') || body.starts_with('#') {
            continue;
        }
        let body_start = line_start + (content.len() - content.trim_start().len());
        let col = u32::try_from(body_start - line_start + 1).unwrap_or(u32::MAX);
        let syntax = |col: u32, message: &str| ConfError::Syntax {
            path: path.to_path_buf(),
            line,
            col,
            message: message.to_string(),
        };
        if body.starts_with('[') {
            let name = parse_header(body).map_err(|m| syntax(col, m))?;
            if let Some(previous) = sections.last_mut() {
                previous.end = line_start;
            }
            sections.push(Section {
                name: name.to_string(),
                line,
                header_span: body_start..body_start + body.find(']').map_or(body.len(), |i| i + 1),
                entries: Vec::new(),
                end: text.len(),
            });
            continue;
        }
        let Some(eq) = body.find('=') else {
            return Err(syntax(
                col,
                "expected `key = value`, a `[section]` header or a `;` comment",
            ));
        };
        let key = body[..eq].trim_end();
        if key.is_empty() {
            return Err(syntax(col, "missing key before `=`"));
        }
        let after_eq = &body[eq + 1..];
        let value_start = body_start + eq + 1 + (after_eq.len() - after_eq.trim_start().len());
        let (raw_len, value) = split_value(after_eq.trim_start()).map_err(|m| {
            let value_col = u32::try_from(value_start - line_start + 1).unwrap_or(u32::MAX);
            syntax(value_col, m)
        })?;
        let entry = Entry {
            key: key.to_string(),
            value,
            line,
            col,
            value_span: value_start..value_start + raw_len,
            line_span: line_start..offset,
        };
        match sections.last_mut() {
            Some(section) => section.entries.push(entry),
            None => before.push(entry),
        }
    }
    Ok(FpmFile {
        path: path.to_path_buf(),
        text: text.to_string(),
        sections,
        entries_before_any_section: before,
    })
}

fn parse_header(body: &str) -> Result<&str, &'static str> {
    let Some(close) = body.find(']') else {
        return Err("section header is missing its closing `]`");
    };
    let rest = body[close + 1..].trim_start();
    if !(rest.is_empty() || rest.starts_with(';') || rest.starts_with('#')) {
        return Err("unexpected text after the section header");
    }
    let name = body[1..close].trim();
    if name.is_empty() {
        return Err("section header has no name");
    }
    Ok(name)
}

/// Raw length and value of the text after `=`. A `;` ends an unquoted value, as in
/// PHP's ini scanner, so `listen.mode = 0660 ; was 0666` has the value `0660`.
fn split_value(v: &str) -> Result<(usize, String), &'static str> {
    if let Some(inner) = v.strip_prefix('"') {
        return match inner.find('"') {
            Some(close) => Ok((close + 2, inner[..close].to_string())),
            None => Err("unterminated quoted value: add the closing \""),
        };
    }
    let raw = v.find(';').map_or(v, |i| &v[..i]).trim_end();
    Ok((raw.len(), raw.to_string()))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
