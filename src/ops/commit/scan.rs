//! Listing what a commit tracks: walk the workspace (or the given paths, or
//! what `snap.toml`'s `track` selects), honouring `.snapignore` and
//! `ignore`, and stat every entry. Symlinks
//! are listed as links and never followed.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::track::{Track, TrackKind};
use crate::workspace::{self, Workspace};

/// The identity and attributes of a file system entry, from `lstat`/`fstat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
    pub mode: u32,
}

impl Meta {
    pub fn of(m: &fs::Metadata) -> Self {
        Meta {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            inode: m.ino(),
            dev: m.dev(),
            mode: m.mode() & 0o7777,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    File,
    Dir,
    Symlink(Vec<u8>),
}

/// One entry to commit, with its path relative to the workspace.
#[derive(Clone, Debug)]
pub struct Item {
    pub rel: PathBuf,
    pub abs: PathBuf,
    pub kind: ItemKind,
    pub meta: Meta,
}

/// Lists the entries to commit. `paths` (absolute) restrict the snapshot to
/// those paths; empty means the workspace's `track` list (`crate::track`),
/// or everything. Returns the items sorted by path, and warnings for
/// skipped entries and for `track` entries that match nothing.
pub fn scan(ws: &Workspace, paths: &[PathBuf]) -> Result<(Vec<Item>, Vec<String>)> {
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    let track = if paths.is_empty() {
        Track::of(ws)?
    } else {
        Track::default()
    };
    let roots: Vec<PathBuf> = if !paths.is_empty() {
        paths.to_vec()
    } else if !track.is_empty() {
        let mut roots = Vec::new();
        for e in track.entries() {
            let TrackKind::Path(rel) = &e.kind else {
                continue;
            };
            let abs = ws.root.join(rel);
            match abs.symlink_metadata() {
                Ok(m) if !e.dir_only || m.is_dir() => roots.push(abs),
                _ => warnings.push(nothing_matched(&e.text)),
            }
        }
        roots
    } else {
        vec![ws.root.clone()]
    };
    for root in &roots {
        scan_root(ws, root, &mut items, &mut warnings)?;
    }
    scan_patterns(ws, &track, &mut items, &mut warnings)?;
    items.sort_by(|a, b| a.rel.cmp(&b.rel));
    items.dedup_by(|a, b| a.rel == b.rel);
    Ok((items, warnings))
}

fn nothing_matched(text: &str) -> String {
    format!(
        "track entry '{text}' in {} matches nothing in the workspace",
        workspace::CONFIG_FILE
    )
}

/// Everything at and below `root` (absolute), and the directories above it.
fn scan_root(
    ws: &Workspace,
    root: &Path,
    items: &mut Vec<Item>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let rel_root = root.strip_prefix(&ws.root).map_err(|_| {
        Error::invalid(
            "path",
            root.display().to_string(),
            format!("is outside the workspace {}", ws.root.display()),
        )
    })?;
    // A root inside the repository is refused; a root that holds the
    // repository is fine (the walker leaves the repository out), and so is
    // the workspace root itself (an import's staging directory).
    let inside_repo = root != ws.root && root.starts_with(&ws.repo);
    if inside_repo
        || rel_root
            .components()
            .any(|c| c.as_os_str() == ".git" || c.as_os_str() == ".snap")
    {
        return Err(Error::invalid(
            "path",
            root.display().to_string(),
            "is or holds the repository or a .git directory, which snap never stores",
        ));
    }
    if root.symlink_metadata().is_err() {
        return Err(Error::invalid(
            "path",
            root.display().to_string(),
            "does not exist",
        ));
    }
    // Ancestors of a path given explicitly become directories of the tree.
    let mut anc = PathBuf::new();
    for comp in rel_root.parent().into_iter().flat_map(|p| p.components()) {
        anc.push(comp);
        push_item(ws, &anc, items, warnings);
    }
    for entry in workspace::walker(ws, root)? {
        match entry {
            Ok(e) => {
                let Ok(rel) = e.path().strip_prefix(&ws.root) else {
                    continue;
                };
                if rel.as_os_str().is_empty() {
                    continue;
                }
                push_item(ws, rel, items, warnings);
            }
            Err(e) => warnings.push(format!("skipped: {e}")),
        }
    }
    Ok(())
}

/// The entries the wildcard `track` patterns select: one walk below each
/// pattern's base directory (the whole workspace for a pattern that
/// matches at any depth), keeping what a pattern matches, everything inside
/// a matched directory, and the directories above each match.
fn scan_patterns(
    ws: &Workspace,
    track: &Track,
    items: &mut Vec<Item>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let patterns: Vec<_> = track
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            TrackKind::Pattern { base, .. } => Some((e, base)),
            TrackKind::Path(_) => None,
        })
        .collect();
    if patterns.is_empty() {
        return Ok(());
    }
    let mut bases: Vec<&PathBuf> = patterns.iter().map(|(_, b)| *b).collect();
    bases.sort();
    bases.dedup_by(|b, a| b.starts_with(a));
    let mut matched = vec![false; patterns.len()];
    let mut matched_dirs: HashSet<PathBuf> = HashSet::new();
    let mut listed: HashSet<PathBuf> = HashSet::new();
    for base in bases {
        let dir = ws.root.join(base);
        if !dir.is_dir() || dir.starts_with(&ws.repo) {
            continue;
        }
        for entry in workspace::walker(ws, &dir)? {
            let e = match entry {
                Ok(e) => e,
                Err(e) => {
                    warnings.push(format!("skipped: {e}"));
                    continue;
                }
            };
            let Ok(rel) = e.path().strip_prefix(&ws.root) else {
                continue;
            };
            if rel.as_os_str().is_empty() {
                continue;
            }
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            let mut hit = false;
            for (i, (p, _)) in patterns.iter().enumerate() {
                if p.selects(rel, is_dir) {
                    matched[i] = true;
                    hit = true;
                }
            }
            let inside = rel.ancestors().skip(1).any(|a| matched_dirs.contains(a));
            if !hit && !inside {
                continue;
            }
            if hit && is_dir {
                matched_dirs.insert(rel.to_path_buf());
            }
            let parents: Vec<&Path> = rel
                .ancestors()
                .skip(1)
                .take_while(|a| !a.as_os_str().is_empty() && !listed.contains(*a))
                .collect();
            for a in parents.into_iter().rev() {
                push_item(ws, a, items, warnings);
                listed.insert(a.to_path_buf());
            }
            if listed.insert(rel.to_path_buf()) {
                push_item(ws, rel, items, warnings);
            }
        }
    }
    for ((p, _), m) in patterns.iter().zip(matched) {
        if !m {
            warnings.push(nothing_matched(&p.text));
        }
    }
    Ok(())
}

fn push_item(ws: &Workspace, rel: &Path, items: &mut Vec<Item>, warnings: &mut Vec<String>) {
    let abs = ws.root.join(rel);
    let meta = match abs.symlink_metadata() {
        Ok(m) => m,
        Err(e) => {
            warnings.push(format!("skipped {}: {e}", rel.display()));
            return;
        }
    };
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        ItemKind::File
    } else if ft.is_dir() {
        ItemKind::Dir
    } else if ft.is_symlink() {
        match fs::read_link(&abs) {
            Ok(t) => ItemKind::Symlink(t.into_os_string().into_encoded_bytes()),
            Err(e) => {
                warnings.push(format!("skipped {}: {e}", rel.display()));
                return;
            }
        }
    } else {
        warnings.push(format!(
            "skipped {}: not a regular file, directory or symlink",
            rel.display()
        ));
        return;
    };
    items.push(Item {
        rel: rel.to_path_buf(),
        abs,
        kind,
        meta: Meta::of(&meta),
    });
}
