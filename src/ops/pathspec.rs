//! Paths of a snapshot as users give them to `snap restore REV PATH...` and
//! `snap cat REV:PATH`.
//!
//! A given path is relative to a base directory of the snapshot (the CLI
//! passes where the current directory sits in the workspace, or the root;
//! see `workspace::snapshot_dir`). `.` and `..` are folded lexically and may
//! not climb above the snapshot root; absolute paths are refused. A path
//! holding `*`, `?`, `[` or `{` is a glob (globset syntax: `*` and `?` stay
//! within one component, `**` crosses them), unless the snapshot holds that
//! exact path. Globs match every entry of the snapshot: files, directories
//! and symlinks.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};
use crate::format::tree::EntryKind;
use crate::id::TreeId;
use crate::ops::suggest;
use crate::ops::walk::{self, WalkEntry};
use crate::store::index::Index;
use crate::store::read::PackFiles;

const GLOB_CHARS: &[char] = &['*', '?', '[', '{'];

/// One path as given, resolved against its base.
#[derive(Clone, Debug)]
pub struct PathSpec {
    /// As the user wrote it.
    pub given: String,
    /// Relative to the snapshot root, `.`/`..` folded; empty for the root.
    pub path: PathBuf,
    /// The base, relative to the snapshot root (empty: the root).
    base: PathBuf,
    glob: Option<GlobMatcher>,
}

impl PathSpec {
    /// Resolves `given` against `base` (relative to the snapshot root). A
    /// path that is absolute or climbs above the root names nothing in any
    /// snapshot: `PathNotInSnapshot`.
    pub fn parse(base: &Path, given: &str, snapshot: &str) -> Result<PathSpec> {
        let outside = |why: &str| Error::PathNotInSnapshot {
            path: given.into(),
            snapshot: snapshot.into(),
            hint: format!(
                " ({why})\n  paths inside a snapshot are relative: to the current directory \
                 inside the workspace, else to the snapshot root"
            ),
        };
        if given.starts_with('/') {
            return Err(outside("it is absolute"));
        }
        // Components as strings: the base's literally, the given ones as written.
        let mut literal: Vec<String> = Vec::new();
        let mut pattern: Vec<String> = Vec::new();
        for c in base.iter() {
            let c = c.to_string_lossy();
            literal.push(c.to_string());
            pattern.push(globset::escape(&c));
        }
        for c in given.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if literal.pop().is_none() {
                        return Err(outside("it climbs above the snapshot root"));
                    }
                    pattern.pop();
                }
                c => {
                    literal.push(c.to_string());
                    pattern.push(c.to_string());
                }
            }
        }
        let path: PathBuf = literal.iter().collect();
        let glob = if given.contains(GLOB_CHARS) {
            let matcher = GlobBuilder::new(&pattern.join("/"))
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::invalid("glob", given, e.kind().to_string()))?
                .compile_matcher();
            Some(matcher)
        } else {
            None
        };
        Ok(PathSpec {
            given: given.into(),
            path,
            base: base.to_path_buf(),
            glob,
        })
    }

    pub fn is_glob(&self) -> bool {
        self.glob.is_some()
    }

    fn matches(&self, path: &Path) -> bool {
        self.glob.as_ref().is_some_and(|g| g.is_match(path))
    }

    /// True if `path` (relative to the snapshot root) is what this names:
    /// the path itself, anything below it, or a glob match.
    pub fn covers(&self, path: &Path) -> bool {
        path.starts_with(&self.path) || self.matches(path)
    }
}

/// The entries `specs` name, each directory with everything below it, in
/// the order given, without duplicates. Empty `specs`: the whole snapshot.
pub fn select(
    index: &Index,
    packs: &PackFiles,
    root: &TreeId,
    specs: &[PathSpec],
    snapshot: &str,
) -> Result<Vec<WalkEntry>> {
    let label = format!("snapshot {snapshot}");
    if specs.is_empty() || specs.iter().any(|s| s.path.as_os_str().is_empty()) {
        return walk::walk_all(index, packs, root, &label);
    }
    // The whole walk, only once a glob or an error needs it.
    let mut all: Option<Vec<WalkEntry>> = None;
    let mut out = Vec::new();
    for spec in specs {
        if let Some(entry) = walk::find(index, packs, root, &spec.path)? {
            walk::push_with_subtree(index, packs, spec.path.clone(), entry, &label, &mut out)?;
            continue;
        }
        let all = match &mut all {
            Some(all) => all,
            None => all.insert(walk::walk_all(index, packs, root, &label)?),
        };
        if !spec.is_glob() {
            return Err(not_found(spec, snapshot, all));
        }
        let before = out.len();
        for (i, w) in all.iter().enumerate() {
            if spec.matches(&w.path) {
                out.push(w.clone());
                if matches!(w.entry.kind, EntryKind::Dir { .. }) {
                    let below = all[i + 1..]
                        .iter()
                        .take_while(|d| d.path.starts_with(&w.path));
                    out.extend(below.cloned());
                }
            }
        }
        if out.len() == before {
            return Err(not_found(spec, snapshot, all));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|e| seen.insert(e.path.clone()));
    Ok(out)
}

/// The one file `spec` names: its path, or the single file a glob matches.
pub fn select_file(
    index: &Index,
    packs: &PackFiles,
    root: &TreeId,
    spec: &PathSpec,
    snapshot: &str,
) -> Result<WalkEntry> {
    if let Some(entry) = walk::find(index, packs, root, &spec.path)? {
        return Ok(WalkEntry {
            path: spec.path.clone(),
            entry,
        });
    }
    let all = walk::walk_all(index, packs, root, &format!("snapshot {snapshot}"))?;
    if !spec.is_glob() {
        return Err(not_found(spec, snapshot, &all));
    }
    let files: Vec<&WalkEntry> = all
        .iter()
        .filter(|w| spec.matches(&w.path) && matches!(w.entry.kind, EntryKind::File { .. }))
        .collect();
    match files.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(not_found(spec, snapshot, &all)),
        many => {
            const SHOWN: usize = 10;
            let mut list: Vec<String> = many
                .iter()
                .take(SHOWN)
                .map(|w| format!("  {}", w.path.display()))
                .collect();
            if many.len() > SHOWN {
                list.push(format!("  ... and {} more", many.len() - SHOWN));
            }
            Err(Error::ManyMatches {
                pattern: spec.given.clone(),
                snapshot: snapshot.into(),
                count: many.len(),
                list: list.join("\n"),
            })
        }
    }
}

/// `spec` names nothing in the snapshot whose entries are `all`: say where
/// it was looked for and what is near.
pub(crate) fn not_found(spec: &PathSpec, snapshot: &str, all: &[WalkEntry]) -> Error {
    let mut lines = Vec::new();
    let shown = spec.path.display().to_string();
    if !spec.base.as_os_str().is_empty() {
        lines.push(format!(
            "paths are relative to the current directory: this is '{shown}' in the snapshot"
        ));
    }
    let paths: Vec<String> = all.iter().map(|w| w.path.display().to_string()).collect();
    let near = if spec.is_glob() {
        near_glob(spec, all, &paths)
    } else {
        let near = suggest::nearest_paths(&shown, paths.iter().map(String::as_str));
        suggest::did_you_mean(&from_base(&spec.base, &near))
    };
    lines.extend(near);
    lines.push(format!("`snap show {snapshot}` lists its paths"));
    let verb = if spec.is_glob() {
        "no path matches it"
    } else {
        "no such path"
    };
    Error::PathNotInSnapshot {
        path: spec.given.clone(),
        snapshot: snapshot.into(),
        hint: format!(" ({verb})\n  {}", lines.join("\n  ")),
    }
}

/// For a glob that matches nothing: the paths it matches ignoring case,
/// else the directories near its literal directory part, else a few
/// entries of that directory.
fn near_glob(spec: &PathSpec, all: &[WalkEntry], paths: &[String]) -> Option<String> {
    let pattern = spec.glob.as_ref().map(|g| g.glob().glob()).unwrap_or("");
    if let Ok(g) = GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .case_insensitive(true)
        .build()
    {
        let m = g.compile_matcher();
        let hits: Vec<String> = paths
            .iter()
            .filter(|p| m.is_match(p.as_str()))
            .take(suggest::MAX_SUGGESTIONS)
            .cloned()
            .collect();
        if !hits.is_empty() {
            return suggest::did_you_mean(&from_base(&spec.base, &hits));
        }
    }
    // The directory part before the first component holding a glob character.
    let dir: PathBuf = spec
        .path
        .iter()
        .take_while(|c| !c.to_string_lossy().contains(GLOB_CHARS))
        .collect();
    let is_dir = |w: &WalkEntry| matches!(w.entry.kind, EntryKind::Dir { .. });
    let dir_exists = dir.as_os_str().is_empty() || all.iter().any(|w| w.path == dir && is_dir(w));
    if !dir_exists {
        let dirs: Vec<String> = all
            .iter()
            .filter(|w| is_dir(w))
            .map(|w| w.path.display().to_string())
            .collect();
        let near =
            suggest::nearest_paths(&dir.display().to_string(), dirs.iter().map(String::as_str));
        return Some(match suggest::did_you_mean(&from_base(&spec.base, &near)) {
            Some(dym) => format!("the snapshot has no directory '{}'; {dym}", dir.display()),
            None => format!("the snapshot has no directory '{}'", dir.display()),
        });
    }
    const SHOWN: usize = 5;
    let inside: Vec<String> = all
        .iter()
        .filter(|w| w.path.parent() == Some(dir.as_path()))
        .map(|w| {
            let name = w.path.file_name().unwrap_or_default().to_string_lossy();
            if is_dir(w) {
                format!("{name}/")
            } else {
                name.into_owned()
            }
        })
        .collect();
    let place = if dir.as_os_str().is_empty() {
        "the snapshot root".to_string()
    } else {
        format!("'{}/'", dir.display())
    };
    let more = match inside.len() {
        n if n > SHOWN => format!(", ... ({n} entries)"),
        _ => String::new(),
    };
    Some(format!(
        "{place} holds: {}{more}",
        inside[..inside.len().min(SHOWN)].join(", ")
    ))
}

/// Snapshot paths as written from `base`.
fn from_base(base: &Path, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| relative_to(base, Path::new(p)))
        .collect()
}

/// `path` (relative to the snapshot root) as written from `base`.
fn relative_to(base: &Path, path: &Path) -> String {
    let common = base
        .iter()
        .zip(path.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let up = base.iter().count() - common;
    let mut out: Vec<String> = vec!["..".to_string(); up];
    out.extend(
        path.iter()
            .skip(common)
            .map(|c| c.to_string_lossy().into_owned()),
    );
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fold_against_the_base() {
        let base = Path::new("models");
        assert_eq!(
            PathSpec::parse(base, "model.pt", "s").unwrap().path,
            Path::new("models/model.pt")
        );
        assert_eq!(
            PathSpec::parse(base, "../config/./a", "s").unwrap().path,
            Path::new("config/a")
        );
        assert_eq!(
            PathSpec::parse(base, ".", "s").unwrap().path,
            Path::new("models")
        );
        assert_eq!(
            PathSpec::parse(base, "..", "s").unwrap().path,
            Path::new("")
        );
        assert!(PathSpec::parse(base, "../../x", "s").is_err());
        assert!(PathSpec::parse(Path::new(""), "/etc/passwd", "s").is_err());
        assert!(PathSpec::parse(Path::new(""), "a/../../x", "s").is_err());
    }

    #[test]
    fn globs_stay_within_components_and_escape_the_base() {
        let spec = PathSpec::parse(Path::new("ru[n]"), "*best*", "s").unwrap();
        assert!(spec.matches(Path::new("ru[n]/a_best.pt")));
        assert!(!spec.matches(Path::new("run/a_best.pt")));
        assert!(!spec.matches(Path::new("ru[n]/sub/a_best.pt")));
        let deep = PathSpec::parse(Path::new(""), "**/*.pt", "s").unwrap();
        assert!(deep.matches(Path::new("a/b/c.pt")));
        assert!(!PathSpec::parse(Path::new(""), "plain", "s")
            .unwrap()
            .is_glob());
    }

    #[test]
    fn suggestions_are_written_from_the_base() {
        assert_eq!(relative_to(Path::new(""), Path::new("a/b")), "a/b");
        assert_eq!(relative_to(Path::new("a"), Path::new("a/b")), "b");
        assert_eq!(relative_to(Path::new("a/c"), Path::new("a/b")), "../b");
    }
}
