//! The whole configuration: the main file plus everything reached through `include`.

use std::path::{Path, PathBuf};

use super::{parse, Directive, NginxFile};
use crate::include::{self, IncludeSite, MAX_INCLUDE_DEPTH};
use crate::ConfError;

/// The main file (`files[0]`) and every file reached through `include`, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxConfig {
    pub files: Vec<NginxFile>,
}

/// One directive with where it is: its file and the heads of the blocks around it,
/// outermost first, following includes back to where the `include` stood.
#[derive(Debug, Clone)]
pub struct Located<'a> {
    pub file: &'a NginxFile,
    pub directive: &'a Directive,
    pub contexts: Vec<String>,
}

/// Reads `main` and every file it includes. Relative include paths resolve against
/// the directory of `main`, which is nginx's conf prefix when started with `-c`;
/// a glob matching nothing is fine, a literal path that does not exist is
/// `ConfError::Io` naming that path.
pub fn load(main: &Path) -> Result<NginxConfig, ConfError> {
    let files = include::load_tree(main, parse, include_sites)?;
    Ok(NginxConfig { files })
}

fn include_sites(file: &NginxFile) -> Result<Vec<IncludeSite>, ConfError> {
    let mut sites = Vec::new();
    collect_includes(file, &file.directives, &mut sites)?;
    Ok(sites)
}

fn collect_includes(
    file: &NginxFile,
    directives: &[Directive],
    sites: &mut Vec<IncludeSite>,
) -> Result<(), ConfError> {
    for directive in directives {
        if let Some(block) = &directive.block {
            collect_includes(file, &block.children, sites)?;
        } else if directive.name == "include" {
            let [pattern] = directive.args.as_slice() else {
                // nginx: "invalid number of arguments in "include" directive".
                return Err(ConfError::Syntax {
                    path: file.path.clone(),
                    line: directive.line,
                    col: directive.col,
                    message: "\"include\" takes exactly one path or glob pattern".to_string(),
                });
            };
            sites.push(IncludeSite {
                pattern: pattern.clone(),
                line: directive.line,
                col: directive.col,
            });
        }
    }
    Ok(())
}

impl NginxConfig {
    /// Every directive, blocks and `include` directives too, in the order nginx reads
    /// them: an included file's directives follow its `include` in place, carrying
    /// the contexts of the include site.
    pub fn walk(&self) -> Vec<Located<'_>> {
        let mut out = Vec::new();
        if let Some(main) = self.files.first() {
            let base_dir = main.path.parent().unwrap_or(Path::new("")).to_path_buf();
            let walker = Walker {
                config: self,
                base_dir,
            };
            walker.walk(main, &main.directives, &mut Vec::new(), 0, &mut out);
        }
        out
    }

    pub fn file(&self, path: &Path) -> Option<&NginxFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Files an `include` names, found among the loaded files by matching the
    /// pattern again, so the walk needs no filesystem access.
    fn included_files(&self, base_dir: &Path, pattern: &str) -> Vec<&NginxFile> {
        let wanted: PathBuf = include::pattern_path(base_dir, pattern);
        let mut found: Vec<&NginxFile> = self
            .files
            .iter()
            .filter(|f| include::matches_path(&wanted, &f.path))
            .collect();
        found.sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
        found
    }
}

struct Walker<'a> {
    config: &'a NginxConfig,
    base_dir: PathBuf,
}

impl<'a> Walker<'a> {
    fn walk(
        &self,
        file: &'a NginxFile,
        directives: &'a [Directive],
        contexts: &mut Vec<String>,
        depth: usize,
        out: &mut Vec<Located<'a>>,
    ) {
        for directive in directives {
            out.push(Located {
                file,
                directive,
                contexts: contexts.clone(),
            });
            if let Some(block) = &directive.block {
                contexts.push(directive.head());
                self.walk(file, &block.children, contexts, depth, out);
                contexts.pop();
            } else if directive.name == "include" && depth < MAX_INCLUDE_DEPTH {
                if let [pattern] = directive.args.as_slice() {
                    for included in self.config.included_files(&self.base_dir, pattern) {
                        self.walk(included, &included.directives, contexts, depth + 1, out);
                    }
                }
            }
        }
    }
}
