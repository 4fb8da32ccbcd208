//! Walking a snapshot's trees: depth-first, parents before children, each
//! entry with its path relative to the snapshot root.
//!
//! Trees come from the repository, so a walk must stay bounded whatever a
//! crafted or damaged repository holds. Trees form a DAG (a subtree shared
//! by many directories is one record), so a walk happens in two passes,
//! both with explicit stacks, never recursion:
//!
//! 1. `Trees::load` reads every distinct tree below the root once, and
//!    computes for each how deep it nests and how many entries lie below
//!    it, counting every path. A snapshot nested deeper than `MAX_DEPTH` or
//!    holding more than `MAX_ENTRIES` paths is refused here, before any
//!    path is built: at that point memory holds only the distinct trees
//!    read, and no more than `MAX_ENTRIES` of their entries.
//! 2. `walk_all` then expands the paths from those trees, handing each
//!    tree's entries over on its last use, so the walk's memory is its
//!    output.
//!
//! `check` uses the first pass alone, across every snapshot: it is about
//! blobs, so a shared subtree is visited once however many paths lead to it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::id::TreeId;
use crate::store::index::Index;
use crate::store::read::{load_tree, PackFiles};

pub use crate::format::tree::{MAX_DEPTH, MAX_ENTRIES};

/// One entry of a snapshot with its relative path.
#[derive(Clone, Debug)]
pub struct WalkEntry {
    pub path: PathBuf,
    pub entry: Entry,
}

/// How a tree nests: directory levels below it (0 for one without
/// subdirectories) and entries below it at every level, counting each path
/// (saturating).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub depth: usize,
    pub entries: u64,
}

/// Distinct trees, each read once, with their shapes. `order` lists them
/// children before parents (the order they were completed in).
#[derive(Default)]
pub struct Trees {
    nodes: HashMap<TreeId, (Tree, Shape)>,
    order: Vec<TreeId>,
}

/// A tree being loaded and the index of its next entry to look at.
struct Frame {
    id: TreeId,
    tree: Tree,
    next: usize,
}

impl Trees {
    pub fn new() -> Self {
        Trees::default()
    }

    /// The tree `id` and its shape, if loaded.
    pub fn get(&self, id: &TreeId) -> Option<&(Tree, Shape)> {
        self.nodes.get(id)
    }

    /// Every loaded tree, children before parents.
    pub fn order(&self) -> &[TreeId] {
        &self.order
    }

    /// Reads every tree below `root` (itself included) not read yet, and
    /// returns `root`'s shape. Refuses, naming `label` (say "snapshot
    /// 1a2b3c4d") and the limit, a tree nested deeper than `MAX_DEPTH` or
    /// holding more than `MAX_ENTRIES` entries; a tree that cannot be read
    /// is an error naming it. Trees completed before an error stay loaded.
    pub fn load(
        &mut self,
        index: &Index,
        packs: &PackFiles,
        root: &TreeId,
        label: &str,
    ) -> Result<Shape> {
        if let Some((_, shape)) = self.nodes.get(root) {
            return within_limits(*shape, label);
        }
        // Entries of the trees this call read: all below `root`, so more
        // than `MAX_ENTRIES` of them is over the limit already.
        let mut read = 0u64;
        let mut read_tree = |id: &TreeId| -> Result<Tree> {
            let tree = load_tree(index, packs, id)?;
            read += tree.entries.len() as u64;
            if read > MAX_ENTRIES {
                return Err(too_many_entries(label));
            }
            Ok(tree)
        };
        let mut stack = vec![Frame {
            id: *root,
            tree: read_tree(root)?,
            next: 0,
        }];
        while let Some(top) = stack.last_mut() {
            let child = top.tree.entries[top.next..].iter().position(
                |e| matches!(e.kind, EntryKind::Dir { tree } if !self.nodes.contains_key(&tree)),
            );
            if let Some(i) = child {
                let at = top.next + i;
                top.next = at + 1;
                let EntryKind::Dir { tree: id } = top.tree.entries[at].kind else {
                    unreachable!("position found a directory");
                };
                // The child sits at depth `stack.len()` below the root.
                if stack.len() > MAX_DEPTH {
                    return Err(too_deep(label));
                }
                let tree = read_tree(&id)?;
                stack.push(Frame { id, tree, next: 0 });
                continue;
            }
            let Frame { id, tree, .. } = stack.pop().expect("the loop saw a top frame");
            let shape = self.shape_of(&tree);
            self.nodes.insert(id, (tree, shape));
            self.order.push(id);
        }
        within_limits(self.nodes[root].1, label)
    }

    /// The shape of `tree`, whose subdirectories are all loaded. A
    /// subdirectory that is not (only a tree that contains itself, which
    /// content addressing rules out) counts as over the limits.
    fn shape_of(&self, tree: &Tree) -> Shape {
        let mut shape = Shape {
            depth: 0,
            entries: tree.entries.len() as u64,
        };
        for e in &tree.entries {
            if let EntryKind::Dir { tree } = &e.kind {
                let below = self.nodes.get(tree).map_or(
                    Shape {
                        depth: usize::MAX,
                        entries: u64::MAX,
                    },
                    |(_, s)| *s,
                );
                shape.depth = shape.depth.max(below.depth.saturating_add(1));
                shape.entries = shape.entries.saturating_add(below.entries);
            }
        }
        shape
    }

    /// Every entry below loaded tree `root`, paths prefixed by `prefix`,
    /// parents first and siblings in name order; consumes the trees.
    fn expand(mut self, root: &TreeId, prefix: &Path, out: &mut Vec<WalkEntry>) {
        // How many times each tree is entered: once per path to it.
        let mut uses: HashMap<TreeId, u64> = HashMap::from([(*root, 1)]);
        for id in self.order.iter().rev() {
            let n = uses.get(id).copied().unwrap_or(0);
            if let Some((tree, _)) = self.nodes.get(id) {
                for e in &tree.entries {
                    if let EntryKind::Dir { tree } = &e.kind {
                        let u = uses.entry(*tree).or_insert(0);
                        *u = u.saturating_add(n);
                    }
                }
            }
        }
        let mut enter = |id: &TreeId| -> Vec<Entry> {
            let left = uses.get_mut(id).map_or(0, |u| {
                *u = u.saturating_sub(1);
                *u
            });
            if left == 0 {
                self.nodes.remove(id).map(|(t, _)| t.entries)
            } else {
                self.nodes.get(id).map(|(t, _)| t.entries.clone())
            }
            .unwrap_or_default()
        };
        let mut stack = vec![(enter(root).into_iter(), prefix.to_path_buf())];
        while let Some((entries, dir)) = stack.last_mut() {
            let Some(entry) = entries.next() else {
                stack.pop();
                continue;
            };
            let path = dir.join(OsStr::from_bytes(&entry.name));
            let sub = match &entry.kind {
                EntryKind::Dir { tree } => Some(*tree),
                _ => None,
            };
            out.push(WalkEntry {
                path: path.clone(),
                entry,
            });
            if let Some(sub) = sub {
                stack.push((enter(&sub).into_iter(), path));
            }
        }
    }
}

fn within_limits(shape: Shape, label: &str) -> Result<Shape> {
    if shape.depth > MAX_DEPTH {
        Err(too_deep(label))
    } else if shape.entries > MAX_ENTRIES {
        Err(too_many_entries(label))
    } else {
        Ok(shape)
    }
}

fn too_deep(label: &str) -> Error {
    Error::corrupt(
        label,
        format!(
            "its directory tree nests deeper than {MAX_DEPTH} levels, the format's limit \
             (docs/format.md, Tree records); snap never writes such a tree, so it is damaged \
             or crafted, and nothing of it is walked"
        ),
    )
}

fn too_many_entries(label: &str) -> Error {
    Error::corrupt(
        label,
        format!(
            "its directory tree holds more than {MAX_ENTRIES} entries (counting every path), \
             the format's limit (docs/format.md, Tree records); snap never writes such a tree, \
             so it is damaged or crafted, and nothing of it is walked"
        ),
    )
}

/// Every entry below `root`, parents first, siblings in name order. `label`
/// names the snapshot in errors ("snapshot 1a2b3c4d").
pub fn walk_all(
    index: &Index,
    packs: &PackFiles,
    root: &TreeId,
    label: &str,
) -> Result<Vec<WalkEntry>> {
    let mut out = Vec::new();
    walk_below(index, packs, root, Path::new(""), label, &mut out)?;
    Ok(out)
}

/// Appends every entry below tree `id` to `out`, paths prefixed by `prefix`.
fn walk_below(
    index: &Index,
    packs: &PackFiles,
    id: &TreeId,
    prefix: &Path,
    label: &str,
    out: &mut Vec<WalkEntry>,
) -> Result<()> {
    let mut trees = Trees::new();
    trees.load(index, packs, id, label)?;
    trees.expand(id, prefix, out);
    Ok(())
}

/// Appends `entry` at `path` to `out` and, for a directory, everything
/// below it, parents first.
pub fn push_with_subtree(
    index: &Index,
    packs: &PackFiles,
    path: PathBuf,
    entry: Entry,
    label: &str,
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
        walk_below(index, packs, &sub, &path, label, out)?;
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
