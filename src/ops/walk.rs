//! Walking a snapshot's trees: depth-first, parents before children, each
//! entry with its path relative to the snapshot root.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::format::tree::{Entry, EntryKind};
use crate::id::TreeId;
use crate::store::index::Index;
use crate::store::read::{load_tree, PackFiles};

/// One entry of a snapshot with its relative path.
#[derive(Clone, Debug)]
pub struct WalkEntry {
    pub path: PathBuf,
    pub entry: Entry,
}

/// Every entry below `root`, parents first, siblings in name order.
pub fn walk_all(index: &Index, packs: &PackFiles, root: &TreeId) -> Result<Vec<WalkEntry>> {
    let mut out = Vec::new();
    walk_into(index, packs, root, Path::new(""), &mut out)?;
    Ok(out)
}

/// Appends every entry below tree `id` to `out`, paths prefixed by `prefix`.
fn walk_into(
    index: &Index,
    packs: &PackFiles,
    id: &TreeId,
    prefix: &Path,
    out: &mut Vec<WalkEntry>,
) -> Result<()> {
    let tree = load_tree(index, packs, id)?;
    for entry in tree.entries {
        let path = prefix.join(std::ffi::OsStr::from_bytes(&entry.name));
        push_with_subtree(index, packs, path, entry, out)?;
    }
    Ok(())
}

/// Appends `entry` at `path` to `out` and, for a directory, everything
/// below it, parents first.
pub fn push_with_subtree(
    index: &Index,
    packs: &PackFiles,
    path: PathBuf,
    entry: Entry,
    out: &mut Vec<WalkEntry>,
) -> Result<()> {
    let sub = match &entry.kind {
        EntryKind::Dir { tree } => Some(*tree),
        _ => None,
    };
    out.push(WalkEntry {
        path: path.clone(),
        entry,
    });
    if let Some(sub) = sub {
        walk_into(index, packs, &sub, &path, out)?;
    }
    Ok(())
}

/// Finds the entry at `path` (relative, `/`-separated) below `root`.
pub fn find(index: &Index, packs: &PackFiles, root: &TreeId, path: &Path) -> Result<Option<Entry>> {
    let mut tree_id = *root;
    let comps: Vec<_> = path.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let name = comp.as_os_str().as_encoded_bytes();
        let tree = load_tree(index, packs, &tree_id)?;
        let Some(entry) = tree.entries.into_iter().find(|e| e.name == name) else {
            return Ok(None);
        };
        if i + 1 == comps.len() {
            return Ok(Some(entry));
        }
        match entry.kind {
            EntryKind::Dir { tree } => tree_id = tree,
            _ => return Ok(None),
        }
    }
    Ok(None)
}
