//! Unified diffs for the journal: what an edit changed, in the form every operator reads.

use std::path::Path;

/// `diff -u`-style text of `before` → `after`, three lines of context, headed by the
/// file's path.
pub fn unified(file: &Path, before: &str, after: &str) -> String {
    let name = file.display().to_string();
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&name, &name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_line_change_shows_as_one_hunk_with_context() {
        let before = "a\nb\nc\nd\ne\nf\ng\n";
        let after = "a\nb\nc\nD\ne\nf\ng\n";
        let diff = unified(Path::new("/etc/x.conf"), before, after);
        assert!(
            diff.starts_with("--- /etc/x.conf\n+++ /etc/x.conf\n"),
            "{diff}"
        );
        assert!(diff.contains("@@ -1,7 +1,7 @@"), "{diff}");
        assert!(diff.contains("\n-d\n+D\n"), "{diff}");
    }
}
