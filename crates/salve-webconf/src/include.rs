//! `include` handling shared by nginx and PHP-FPM: glob expansion by hand (the crate
//! has no glob dependency) and loading a tree of files with loop detection.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::ConfError;

/// nginx has no nesting limit of its own; 16 is far beyond any real layout
/// (nginx.conf → sites-enabled → snippets) and stops include cycles that path
/// comparison cannot see, such as a symlink back to a parent file.
pub(crate) const MAX_INCLUDE_DEPTH: usize = 16;

/// One `include` found in a parsed file, with its position for error messages.
pub(crate) struct IncludeSite {
    pub pattern: String,
    pub line: u32,
    pub col: u32,
}

/// The path an include pattern names: relative patterns resolve against `base_dir`
/// (an absolute pattern replaces it, which is what `Path::join` does).
pub(crate) fn pattern_path(base_dir: &Path, pattern: &str) -> PathBuf {
    base_dir.join(pattern)
}

fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Files an include pattern names, sorted like glob(3) sorts them. A pattern without
/// wildcards is returned as is, so reading it reports a missing file; a pattern with
/// wildcards that matches nothing yields nothing, as in nginx (`gl.test = 1`).
pub(crate) fn expand(pattern: &Path) -> Vec<PathBuf> {
    if !has_wildcards(&pattern.to_string_lossy()) {
        return vec![pattern.to_path_buf()];
    }
    let components: Vec<Component> = pattern.components().collect();
    let mut candidates = vec![PathBuf::new()];
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let wildcard = match component {
            Component::Normal(name) => name.to_str().filter(|n| has_wildcards(n)),
            _ => None,
        };
        let Some(wildcard) = wildcard else {
            for candidate in &mut candidates {
                candidate.push(component);
            }
            continue;
        };
        let mut next = Vec::new();
        for dir in &candidates {
            next.extend(matching_entries(dir, wildcard, last));
        }
        candidates = next;
    }
    // Literal components after a wildcard one were joined without checking them.
    candidates.retain(|p| p.is_file());
    candidates.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    candidates
}

fn matching_entries(dir: &Path, wildcard: &str, last: bool) -> Vec<PathBuf> {
    let read_from = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // Unreadable directories match nothing, as glob(3) does without GLOB_ERR.
    let Ok(entries) = std::fs::read_dir(read_from) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| matches_component(wildcard, name))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|p| if last { p.is_file() } else { p.is_dir() })
        .collect()
}

/// Whether `path` is one of the files `pattern` names, compared component by
/// component so `*` never crosses a `/`.
pub(crate) fn matches_path(pattern: &Path, path: &Path) -> bool {
    let mut pattern_parts = pattern.components();
    let mut path_parts = path.components();
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return true,
            (Some(Component::Normal(p)), Some(Component::Normal(n))) => {
                let (p, n) = (p.to_string_lossy(), n.to_string_lossy());
                let same = if has_wildcards(&p) {
                    matches_component(&p, &n)
                } else {
                    p == n
                };
                if !same {
                    return false;
                }
            }
            (Some(p), Some(n)) if p == n => {}
            _ => return false,
        }
    }
}

/// `*` and `?` over one file name; a leading dot must be matched literally, as in
/// glob(3) without GLOB_PERIOD, so editor backups like `.default.swp` stay out.
fn matches_component(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some((star, start)) = backtrack {
            pi = star + 1;
            ni = start + 1;
            backtrack = Some((star, start + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Reads `main` and every file it includes, depth first in include order; each file
/// appears once even when several includes name it (nginx's `fastcgi_params`).
pub(crate) fn load_tree<F>(
    main: &Path,
    parse: fn(&Path, &str) -> Result<F, ConfError>,
    includes: fn(&F) -> Result<Vec<IncludeSite>, ConfError>,
) -> Result<Vec<F>, ConfError> {
    let mut loader = Loader {
        base_dir: main.parent().unwrap_or(Path::new("")).to_path_buf(),
        parse,
        includes,
        files: Vec::new(),
        done: HashMap::new(),
    };
    loader.visit(main, 0)?;
    Ok(loader.files)
}

struct Loader<F> {
    base_dir: PathBuf,
    parse: fn(&Path, &str) -> Result<F, ConfError>,
    includes: fn(&F) -> Result<Vec<IncludeSite>, ConfError>,
    files: Vec<F>,
    /// false while a file's includes are being read: meeting it again then is a cycle.
    done: HashMap<PathBuf, bool>,
}

impl<F> Loader<F> {
    fn visit(&mut self, path: &Path, depth: usize) -> Result<(), ConfError> {
        match self.done.get(path) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(ConfError::IncludeLoop {
                    path: path.to_path_buf(),
                })
            }
            None => {}
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file = (self.parse)(path, &text)?;
        let sites = (self.includes)(&file)?;
        self.done.insert(path.to_path_buf(), false);
        self.files.push(file);
        for site in sites {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(ConfError::Syntax {
                    path: path.to_path_buf(),
                    line: site.line,
                    col: site.col,
                    message: format!(
                        "includes are nested more than {MAX_INCLUDE_DEPTH} levels deep; \
                         look for a file that includes one of its parents"
                    ),
                });
            }
            for target in expand(&pattern_path(&self.base_dir, &site.pattern)) {
                self.visit(&target, depth + 1)?;
            }
        }
        self.done.insert(path.to_path_buf(), true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_question_mark_match_one_name() {
        assert!(matches_component("*.conf", "default.conf"));
        assert!(matches_component("*", "default"));
        assert!(matches_component("php?.conf", "php8.conf"));
        assert!(matches_component("a*b*c", "aXbYbZc"));
        assert!(!matches_component("*.conf", "default.conf.bak"));
        assert!(!matches_component("php?.conf", "php.conf"));
    }

    #[test]
    fn star_skips_hidden_files() {
        assert!(!matches_component("*", ".default.swp"));
        assert!(matches_component(".*", ".default.swp"));
    }

    #[test]
    fn path_matching_never_crosses_a_separator() {
        let pattern = Path::new("/etc/nginx/conf.d/*.conf");
        assert!(matches_path(pattern, Path::new("/etc/nginx/conf.d/a.conf")));
        assert!(!matches_path(
            pattern,
            Path::new("/etc/nginx/conf.d/x/a.conf")
        ));
        assert!(!matches_path(pattern, Path::new("/etc/nginx/a.conf")));
        assert!(matches_path(
            Path::new("/etc/*/sites/x"),
            Path::new("/etc/nginx/sites/x")
        ));
    }

    #[test]
    fn literal_pattern_is_returned_even_if_missing() {
        let p = Path::new("/nonexistent/salve/file.conf");
        assert_eq!(expand(p), vec![p.to_path_buf()]);
        assert!(expand(Path::new("/nonexistent/salve/*.conf")).is_empty());
    }
}
