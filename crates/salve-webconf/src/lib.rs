//! Lossless readers and editors for nginx and PHP-FPM configuration.
//!
//! Parsers keep byte spans into the original text and every change is an [`Edit`] on
//! that text, so healing a 502 never reformats a file an operator wrote by hand:
//! comments, blank lines, indentation, quoting and line endings survive byte for byte.

pub mod fastcgi;
pub mod fpm;
mod include;
pub mod nginx;
pub mod quantity;
pub mod raisable;
#[cfg(test)]
mod test_support;
mod text;

use std::ops::Range;
use std::path::PathBuf;

/// One byte-range replacement in a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub range: Range<usize>,
    pub replacement: String,
}

/// Errors from reading, parsing or editing web server configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{}:{line}:{col}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: u32,
        col: u32,
        message: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: include loop: this file ends up including itself; remove one of the include directives on the cycle",
        path.display()
    )]
    IncludeLoop { path: PathBuf },
    #[error("edits overlap; refusing to apply any of them")]
    OverlappingEdits,
    #[error("edit range {start}..{end} does not fit the text ({len} bytes) or splits a character")]
    EditOutOfRange {
        start: usize,
        end: usize,
        len: usize,
    },
}

/// Applies non-overlapping edits (any order given) to `text`.
///
/// Insertions at the same offset keep the order they were given in, so callers can
/// add several lines at one spot predictably.
pub fn apply_edits(text: &str, edits: &[Edit]) -> Result<String, ConfError> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.range.start, e.range.end));
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for edit in sorted {
        let Range { start, end } = edit.range;
        let fits = start <= end
            && end <= text.len()
            && text.is_char_boundary(start)
            && text.is_char_boundary(end);
        if !fits {
            return Err(ConfError::EditOutOfRange {
                start,
                end,
                len: text.len(),
            });
        }
        if start < cursor {
            return Err(ConfError::OverlappingEdits);
        }
        out.push_str(&text[cursor..start]);
        out.push_str(&edit.replacement);
        cursor = end;
    }
    out.push_str(&text[cursor..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(range: Range<usize>, replacement: &str) -> Edit {
        Edit {
            range,
            replacement: replacement.to_string(),
        }
    }

    #[test]
    fn no_edits_returns_identical_text() {
        let text = "a\r\nb\n# c\n";
        assert_eq!(apply_edits(text, &[]).ok().as_deref(), Some(text));
    }

    #[test]
    fn edits_given_out_of_order_are_applied_by_position() {
        let text = "one two three";
        let edits = [edit(8..13, "3"), edit(0..3, "1"), edit(4..7, "2")];
        assert_eq!(apply_edits(text, &edits).ok().as_deref(), Some("1 2 3"));
    }

    #[test]
    fn insertions_at_one_offset_keep_given_order() {
        let edits = [edit(1..1, "x"), edit(1..1, "y"), edit(1..2, "B")];
        assert_eq!(apply_edits("abc", &edits).ok().as_deref(), Some("axyBc"));
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let edits = [edit(0..4, "x"), edit(3..5, "y")];
        assert!(matches!(
            apply_edits("abcdef", &edits),
            Err(ConfError::OverlappingEdits)
        ));
    }

    #[test]
    fn insertion_inside_a_replaced_range_is_an_overlap() {
        let edits = [edit(0..4, "x"), edit(2..2, "y")];
        assert!(matches!(
            apply_edits("abcdef", &edits),
            Err(ConfError::OverlappingEdits)
        ));
    }

    #[test]
    fn edit_past_the_end_is_refused_not_panicking() {
        let edits = [edit(2..9, "x")];
        assert!(matches!(
            apply_edits("abc", &edits),
            Err(ConfError::EditOutOfRange { .. })
        ));
        assert!(apply_edits("é", &[edit(1..1, "x")]).is_err());
    }

    #[test]
    fn syntax_error_reads_as_path_line_col() {
        let err = ConfError::Syntax {
            path: PathBuf::from("/etc/nginx/nginx.conf"),
            line: 3,
            col: 7,
            message: "unexpected \"}\"".to_string(),
        };
        assert_eq!(
            err.to_string(),
            "/etc/nginx/nginx.conf:3:7: unexpected \"}\""
        );
    }
}
