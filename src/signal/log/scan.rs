//! Finding the lines of a chunk that may match, without visiting every line.
//!
//! Most lines of an error log match nothing, and asking each line in turn costs a regex
//! search setup per line: that kept salve below grep's rate. Every match of a pattern
//! starts with one of its *prefix literals* (`connect() `, `upstream sent too big
//! header`, `[pool `), which regex-syntax extracts. One multi-literal search (SIMD Teddy)
//! across the whole chunk finds each place a pattern could start; only the line around
//! it is handed on, with the position of each pattern's first possible start, so the
//! pattern runs once, from there (no match can start earlier in the line).
//!
//! A pattern with no finite prefix set (one starting with `.*` or a class) makes every
//! line a candidate: the scanner is then `None` and callers go line by line, as before.

use regex_automata::meta::Regex as MultiLiteral;
use regex_automata::Input;
use regex_syntax::hir::literal::{ExtractKind, Extractor};

pub struct LineScanner {
    literals: MultiLiteral,
    /// Each distinct literal and the patterns it may start. Several patterns can share
    /// one (`connect() ` starts two built-ins), and one literal can be a prefix of
    /// another at the same spot, so a hit is checked against all of them.
    owners: Vec<(String, Vec<usize>)>,
    patterns: usize,
}

/// A candidate line and, for each pattern that may match it, where in the line its
/// first prefix literal starts.
pub struct Candidate<'h> {
    pub line: &'h str,
    /// (pattern index, byte offset in `line`), in pattern order.
    pub starts: Vec<(usize, usize)>,
}

impl LineScanner {
    /// `None` when some pattern can start with anything (no literal to look for), or a
    /// pattern does not parse (the caller compiled it already, so it reports that).
    pub fn new(patterns: &[&str]) -> Option<Self> {
        let mut owners: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, pattern) in patterns.iter().enumerate() {
            let hir = regex_syntax::parse(pattern).ok()?;
            let mut seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
            seq.optimize_for_prefix_by_preference();
            for literal in seq.literals()? {
                // An empty prefix means "may start anywhere": nothing to search for.
                let text = std::str::from_utf8(literal.as_bytes()).ok()?;
                if text.is_empty() {
                    return None;
                }
                match owners.iter_mut().find(|(l, _)| l == text) {
                    Some((_, list)) if list.contains(&index) => {}
                    Some((_, list)) => list.push(index),
                    None => owners.push((text.to_string(), vec![index])),
                }
            }
        }
        if owners.is_empty() {
            return None;
        }
        let escaped: Vec<String> = owners
            .iter()
            .map(|(l, _)| regex_syntax::escape(l))
            .collect();
        let literals = MultiLiteral::new_many(&escaped).ok()?;
        Some(LineScanner {
            literals,
            owners,
            patterns: patterns.len(),
        })
    }

    /// Calls `f` with every line of `text` (without its `\n` or `\r\n`) where some
    /// pattern may match, in order.
    pub fn candidates<'h>(&self, text: &'h str, mut f: impl FnMut(Candidate<'h>)) {
        let mut at = 0;
        while at < text.len() {
            let Some(hit) = self.literals.search(&Input::new(text).span(at..text.len())) else {
                return;
            };
            let start = text[..hit.start()].rfind('\n').map_or(at, |i| i + 1);
            let end = text[hit.start()..]
                .find('\n')
                .map_or(text.len(), |i| hit.start() + i);
            let line = &text[start..end];
            let line = line.strip_suffix('\r').unwrap_or(line);
            let mut starts: Vec<(usize, usize)> = Vec::with_capacity(1);
            let mut next = Some(hit);
            while let Some(h) = next.filter(|h| h.start() < start + line.len()) {
                let here = &text[h.start()..start + line.len()];
                for (literal, patterns) in &self.owners {
                    if !here.starts_with(literal.as_str()) {
                        continue;
                    }
                    for &pattern in patterns {
                        if !starts.iter().any(|&(p, _)| p == pattern) {
                            starts.push((pattern, h.start() - start));
                        }
                    }
                }
                if starts.len() == self.patterns {
                    break;
                }
                // Overlapping literals of other patterns may start one byte later.
                next = self
                    .literals
                    .search(&Input::new(text).span(h.start() + 1..start + line.len()));
            }
            starts.sort_unstable();
            f(Candidate { line, starts });
            at = end + 1;
        }
    }

    /// Whether some pattern may match this single line.
    pub fn may_match(&self, line: &str) -> bool {
        self.literals.is_match(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect<'h>(scanner: &LineScanner, text: &'h str) -> Vec<(&'h str, Vec<(usize, usize)>)> {
        let mut out = Vec::new();
        scanner.candidates(text, |c| out.push((c.line, c.starts)));
        out
    }

    #[test]
    fn only_lines_with_a_prefix_literal_are_candidates_with_where_each_pattern_may_start() {
        let s = LineScanner::new(&[
            r"connect\(\) failed \((?P<errno>\d+)",
            r"too big header",
            r"connect\(\) failed \(13",
            r"too big",
        ])
        .unwrap();
        let text = "noise\nx connect() failed (13: denied)\nmore noise\nsent too big header\nx connect() failed (111: x)";
        assert_eq!(
            collect(&s, text),
            [
                ("x connect() failed (13: denied)", vec![(0, 2), (2, 2)]),
                ("sent too big header", vec![(1, 5), (3, 5)]),
                ("x connect() failed (111: x)", vec![(0, 2)]),
            ]
        );
    }

    #[test]
    fn crlf_endings_are_stripped_and_anchored_patterns_still_have_a_literal() {
        let s = LineScanner::new(&[r"^ERROR$"]).unwrap();
        assert_eq!(collect(&s, "ok\r\nERROR\r\nnot ERROR\r\n").len(), 2);
    }

    #[test]
    fn a_pattern_that_may_start_anywhere_gives_no_scanner() {
        assert!(LineScanner::new(&[r"\d+ errors", r"x"]).is_none());
        assert!(LineScanner::new(&[r".*failed"]).is_none());
    }
}
