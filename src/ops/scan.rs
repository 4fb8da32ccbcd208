//! Listing what a commit tracks: walk the workspace (or the given paths),
//! honouring `.snapignore` and `snap.toml`, and stat every entry. Symlinks
//! are listed as links and never followed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
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
/// those paths; empty means the workspace's `track` list, or everything.
/// Returns the items sorted by path, and warnings for skipped entries.
pub fn scan(ws: &Workspace, paths: &[PathBuf]) -> Result<(Vec<Item>, Vec<String>)> {
    let roots: Vec<PathBuf> = if !paths.is_empty() {
        paths.to_vec()
    } else if !ws.config.track.is_empty() {
        ws.config
            .track
            .iter()
            .map(|p| workspace::absolute(&ws.root, Path::new(p)))
            .filter(|p| p.symlink_metadata().is_ok())
            .collect()
    } else {
        vec![ws.root.clone()]
    };
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    for root in &roots {
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
        let inside_repo = root != &ws.root && root.starts_with(&ws.repo);
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
            push_item(ws, &anc, &mut items, &mut warnings);
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
                    push_item(ws, rel, &mut items, &mut warnings);
                }
                Err(e) => warnings.push(format!("skipped: {e}")),
            }
        }
    }
    items.sort_by(|a, b| a.rel.cmp(&b.rel));
    items.dedup_by(|a, b| a.rel == b.rel);
    Ok((items, warnings))
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
