//! The pure core of the log follower: bytes to lines, and where to read next after the
//! file changed under us. No I/O here, so every rotation case is tested as data.

use super::scan::LineScanner;

/// Lines longer than this are cut to their first `MAX_LINE` bytes. A log line is a few
/// hundred bytes; a writer that never ends its line (a binary dumped into the log) must
/// not make the follower grow its buffer without bound.
pub const MAX_LINE: usize = 64 * 1024;

/// Splits appended bytes into complete lines. The bytes after the last newline are kept
/// until their newline arrives, so a line written in two `write()`s is emitted once, whole.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    max: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        LineSplitter {
            partial: Vec::new(),
            max: max.max(1),
        }
    }

    /// Appends `bytes` and pushes every line they complete onto `out`, without its `\n`
    /// (or `\r\n`). Invalid UTF-8 is replaced, not dropped: the rest of the line is still
    /// evidence.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.keep(&rest[..end]);
            out.push(self.take());
            rest = &rest[end + 1..];
        }
        self.keep(rest);
    }

    /// Like `push`, but emits only the lines `scanner` says may match, and finds them
    /// with one search across the chunk instead of line by line. A chunk that is not
    /// valid UTF-8 falls back to asking line by line, on the lossy text `push` would emit.
    pub fn push_candidates(&mut self, bytes: &[u8], scanner: &LineScanner, out: &mut Vec<String>) {
        let Some(first) = bytes.iter().position(|&b| b == b'\n') else {
            self.keep(bytes);
            return;
        };
        let mut rest = bytes;
        if !self.partial.is_empty() {
            // The chunk starts mid-line: finish that line on its own.
            self.keep(&bytes[..first]);
            let line = self.take();
            if scanner.may_match(&line) {
                out.push(line);
            }
            rest = &bytes[first + 1..];
        }
        let complete = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let (lines, tail) = rest.split_at(complete);
        match std::str::from_utf8(lines) {
            Ok(text) => scanner.candidates(text, |candidate| {
                let line = candidate.line;
                let cut = &line.as_bytes()[..line.len().min(self.max)];
                out.push(String::from_utf8_lossy(cut).into_owned());
            }),
            Err(_) => {
                let mut all = Vec::new();
                self.push(lines, &mut all);
                out.extend(all.into_iter().filter(|l| scanner.may_match(l)));
            }
        }
        self.keep(tail);
    }

    /// The unfinished last line, if any, emptied. Used when its file is left behind for
    /// good (rotated away and drained): the newline will never come, the text is still
    /// something that was written.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    /// Forgets the unfinished line: after a truncation its start is gone from the file.
    pub fn reset(&mut self) {
        self.partial.clear();
    }

    /// Keeps at most `max` bytes of the current line; the rest is dropped until newline.
    fn keep(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn take(&mut self) -> String {
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        line
    }
}

/// Where to continue reading an open file whose size is now `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The file grew or stayed: read on from our offset.
    Offset(u64),
    /// The file is shorter than what we already read: it was truncated in place
    /// (`copytruncate`, `: > file`). Everything now in it is new: start at 0.
    Truncated,
}

pub fn read_from(offset: u64, size: u64) -> ReadFrom {
    if size < offset {
        ReadFrom::Truncated
    } else {
        ReadFrom::Offset(offset)
    }
}

/// Identity of a file: device and inode, as `stat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What to do after looking at what the watched path now names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathChange {
    /// Same file as the one open (or none at all): keep reading what is open.
    Keep,
    /// Another file now has the name (rotation, delete + recreate) or the file appeared:
    /// drain the open one to its end, then open this one at `from_end` or at 0.
    Switch { from_end: bool },
}

/// `open` is the file being read, `at_path` the one the path names now, `started` whether
/// the follower has finished its first look. Only a file that was there when following
/// began is read from its end (old lines are not news); any file that appears later is
/// new, so all of it is read.
pub fn path_change(open: Option<FileId>, at_path: Option<FileId>, started: bool) -> PathChange {
    match at_path {
        None => PathChange::Keep,
        Some(id) if Some(id) == open => PathChange::Keep,
        Some(_) => PathChange::Switch { from_end: !started },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_lines_push_would_emit_that_may_match() {
        let scanner = LineScanner::new(&[r"hit \d"]).unwrap();
        let chunks: [&[u8]; 4] = [
            b"a hit 1\nnoise\nhit",
            b" 2 split\nno",
            b"ise\nbad \xff hit 3\n",
            b"hit 4 unfinished",
        ];
        let mut splitter = LineSplitter::new(64);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push_candidates(chunk, &scanner, &mut out);
        }
        assert_eq!(out, ["a hit 1", "hit 2 split", "bad \u{fffd} hit 3"]);
        assert_eq!(splitter.finish().as_deref(), Some("hit 4 unfinished"));
    }

    fn split(splitter: &mut LineSplitter, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        splitter.push(bytes, &mut out);
        out
    }

    #[test]
    fn complete_lines_come_out_in_order_without_newlines() {
        let mut s = LineSplitter::default();
        assert_eq!(
            split(&mut s, b"one\ntwo\r\n\nthree\n"),
            ["one", "two", "", "three"]
        );
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn a_partial_line_is_emitted_once_when_its_newline_arrives() {
        let mut s = LineSplitter::default();
        assert!(split(&mut s, b"half of").is_empty());
        assert!(split(&mut s, b" a line").is_empty());
        assert_eq!(split(&mut s, b" done\nnext"), ["half of a line done"]);
        assert_eq!(s.finish().as_deref(), Some("next"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn an_overlong_line_keeps_its_head_and_the_buffer_stays_bounded() {
        let mut s = LineSplitter::new(8);
        for _ in 0..1000 {
            assert!(split(&mut s, b"0123456789").is_empty());
        }
        assert!(s.partial.len() <= 8);
        assert_eq!(split(&mut s, b"xyz\nok\n"), ["01234567", "ok"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut s = LineSplitter::default();
        assert_eq!(split(&mut s, b"bad \xff byte\n"), ["bad \u{fffd} byte"]);
    }

    #[test]
    fn reset_forgets_the_unfinished_line() {
        let mut s = LineSplitter::default();
        split(&mut s, b"gone with the truncation");
        s.reset();
        assert_eq!(split(&mut s, b"fresh\n"), ["fresh"]);
    }

    #[test]
    fn a_shorter_file_was_truncated_and_is_read_from_zero() {
        assert_eq!(read_from(100, 150), ReadFrom::Offset(100));
        assert_eq!(read_from(100, 100), ReadFrom::Offset(100));
        assert_eq!(read_from(100, 0), ReadFrom::Truncated);
        assert_eq!(read_from(100, 40), ReadFrom::Truncated);
    }

    #[test]
    fn only_a_file_present_at_start_is_read_from_its_end() {
        let a = FileId { dev: 1, ino: 10 };
        let b = FileId { dev: 1, ino: 11 };
        assert_eq!(
            path_change(None, Some(a), false),
            PathChange::Switch { from_end: true }
        );
        assert_eq!(
            path_change(None, Some(a), true),
            PathChange::Switch { from_end: false }
        );
        assert_eq!(
            path_change(Some(a), Some(b), true),
            PathChange::Switch { from_end: false }
        );
        assert_eq!(path_change(Some(a), Some(a), true), PathChange::Keep);
        // Renamed away or deleted, and nothing new yet: keep draining the open file,
        // because the writer may still be writing to it until it reopens.
        assert_eq!(path_change(Some(a), None, true), PathChange::Keep);
        assert_eq!(path_change(None, None, false), PathChange::Keep);
    }
}
