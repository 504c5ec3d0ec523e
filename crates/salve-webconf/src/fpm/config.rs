//! The whole PHP-FPM configuration and the pools php-fpm builds from it.

use std::path::{Path, PathBuf};

use super::{parse, Entry, FpmFile, Section};
use crate::include::{self, IncludeSite, MAX_INCLUDE_DEPTH};
use crate::ConfError;

/// php-fpm.conf (`files[0]`) and every file reached through `include`, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpmConfig {
    pub files: Vec<FpmFile>,
}

/// A pool as php-fpm sees it. `file` and `section` are where it is first declared;
/// php-fpm merges later sections with the same name into the same pool, so lookups
/// go through all of them and the last value of a key wins.
#[derive(Debug, Clone)]
pub struct Pool<'a> {
    pub name: String,
    pub file: &'a FpmFile,
    pub section: &'a Section,
    parts: Vec<(&'a FpmFile, &'a Section)>,
}

impl<'a> Pool<'a> {
    /// The value php-fpm uses for `key`: the last one written.
    pub fn get(&self, key: &str) -> Option<&'a Entry> {
        self.locate(key).map(|(_, entry)| entry)
    }

    /// Like `get`, with the file the winning entry is in, for `file:line` reports.
    pub fn locate(&self, key: &str) -> Option<(&'a FpmFile, &'a Entry)> {
        self.parts.iter().rev().find_map(|&(file, section)| {
            let entry = section.entries.iter().rev().find(|e| e.key == key)?;
            Some((file, entry))
        })
    }
}

/// Reads `main` and every file it includes (`include = /etc/php/8.2/fpm/pool.d/*.conf`).
/// Relative include paths resolve against the directory of `main`. php-fpm itself
/// resolves them against its prefix (`--prefix`, `-p`), but packaged setups always
/// use absolute paths and the main file's directory is what an operator expects;
/// a glob matching nothing is fine, a missing literal path is `ConfError::Io`.
pub fn load(main: &Path) -> Result<FpmConfig, ConfError> {
    let files = include::load_tree(main, parse, include_sites)?;
    Ok(FpmConfig { files })
}

fn include_sites(file: &FpmFile) -> Result<Vec<IncludeSite>, ConfError> {
    let sites = all_entries(file)
        .filter(|e| e.key == "include")
        .map(|e| IncludeSite {
            pattern: e.value.clone(),
            line: e.line,
            col: e.col,
        })
        .collect();
    Ok(sites)
}

fn all_entries(file: &FpmFile) -> impl Iterator<Item = &Entry> {
    file.entries_before_any_section
        .iter()
        .chain(file.sections.iter().flat_map(|s| s.entries.iter()))
}

/// Where a run of entries sits in config order.
#[derive(Clone, Copy)]
struct Part<'a> {
    file: &'a FpmFile,
    /// None for entries before any section header.
    section: Option<&'a Section>,
}

impl FpmConfig {
    /// Every pool (every section except `[global]`), in order of first declaration.
    pub fn pools(&self) -> Vec<Pool<'_>> {
        let mut pools: Vec<Pool<'_>> = Vec::new();
        for part in self.ordered_parts() {
            let Some(section) = part.section.filter(|s| s.name != "global") else {
                continue;
            };
            match pools.iter_mut().find(|p| p.name == section.name) {
                Some(pool) => pool.parts.push((part.file, section)),
                None => pools.push(Pool {
                    name: section.name.clone(),
                    file: part.file,
                    section,
                    parts: vec![(part.file, section)],
                }),
            }
        }
        pools
    }

    /// The effective global setting: the last `key` in a `[global]` section or
    /// before any section of the main file (php-fpm treats those as global too).
    pub fn global(&self, key: &str) -> Option<(&FpmFile, &Entry)> {
        let main = self.files.first()?;
        let mut found = None;
        for part in self.ordered_parts() {
            let entries = match part.section {
                Some(section) if section.name == "global" => &section.entries,
                None if std::ptr::eq(part.file, main) => &part.file.entries_before_any_section,
                _ => continue,
            };
            if let Some(entry) = entries.iter().rev().find(|e| e.key == key) {
                found = Some((part.file, entry));
            }
        }
        found
    }

    /// Sections in the order php-fpm reads them, an included file's sections following
    /// the section that includes it. Entries after an `include` in the same section
    /// are still counted before the included files: php-fpm configs put `include`
    /// last in `[global]`, so the finer order has not been worth modelling.
    fn ordered_parts(&self) -> Vec<Part<'_>> {
        let mut parts = Vec::new();
        if let Some(main) = self.files.first() {
            let base_dir = main.path.parent().unwrap_or(Path::new("")).to_path_buf();
            self.collect_parts(main, &base_dir, 0, &mut parts);
        }
        parts
    }

    fn collect_parts<'a>(
        &'a self,
        file: &'a FpmFile,
        base_dir: &Path,
        depth: usize,
        parts: &mut Vec<Part<'a>>,
    ) {
        let runs = std::iter::once((None, file.entries_before_any_section.as_slice())).chain(
            file.sections
                .iter()
                .map(|s| (Some(s), s.entries.as_slice())),
        );
        for (section, entries) in runs {
            parts.push(Part { file, section });
            if depth >= MAX_INCLUDE_DEPTH {
                continue;
            }
            for entry in entries.iter().filter(|e| e.key == "include") {
                let wanted: PathBuf = include::pattern_path(base_dir, &entry.value);
                let mut included: Vec<&FpmFile> = self
                    .files
                    .iter()
                    .filter(|f| include::matches_path(&wanted, &f.path))
                    .collect();
                included.sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
                for next in included {
                    self.collect_parts(next, base_dir, depth + 1, parts);
                }
            }
        }
    }
}
