//! Position and layout helpers shared by the nginx and PHP-FPM parsers and editors.

/// Byte offsets of line starts, for turning a span into the `line:col` an operator
/// can open in an editor.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    /// 1-based line and 1-based byte column of `offset`.
    pub(crate) fn line_col(&self, offset: usize) -> (u32, u32) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let col = offset - self.starts[line - 1] + 1;
        (to_u32(line), to_u32(col))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The line ending new lines should use: CRLF when the file's first line ends that
/// way (files edited on Windows), LF otherwise.
pub(crate) fn line_ending(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Offset of the start of the line containing `offset`.
pub(crate) fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// The leading spaces and tabs of the line containing `offset`.
pub(crate) fn line_indent(text: &str, offset: usize) -> &str {
    let start = line_start(text, offset);
    let rest = &text[start..];
    let len = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    &rest[..len]
}

/// Offset just after the newline ending the line that contains `offset`, or the end
/// of the text when that line has no newline.
pub(crate) fn next_line_start(text: &str, offset: usize) -> usize {
    text[offset..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based() {
        let index = LineIndex::new("ab\ncd\n");
        assert_eq!(index.line_col(0), (1, 1));
        assert_eq!(index.line_col(1), (1, 2));
        assert_eq!(index.line_col(3), (2, 1));
        assert_eq!(index.line_col(6), (3, 1));
    }

    #[test]
    fn crlf_is_detected_from_the_first_line() {
        assert_eq!(line_ending("a\r\nb\r\n"), "\r\n");
        assert_eq!(line_ending("a\nb\r\n"), "\n");
        assert_eq!(line_ending("no newline"), "\n");
    }

    #[test]
    fn indent_is_taken_from_the_line_start() {
        let text = "x\n\t  server {\n";
        assert_eq!(line_indent(text, 6), "\t  ");
        assert_eq!(next_line_start(text, 6), text.len());
    }
}
