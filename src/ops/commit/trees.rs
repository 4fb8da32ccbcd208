//! From the committed files to tree records.
//!
//! `entries` turns the scanned items and their chunks into tree entries
//! (with the stat cache rows and the counts of the summary); `tree_records`
//! builds the directory records bottom-up, each directory's entries sorted
//! by name and pointing to its subdirectories' ids (pure); `build_trees`
//! stores the records not yet stored in one tree pack. An unchanged
//! directory has the same id and costs nothing.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::scan::{self, FileData, Item, ItemKind};
use crate::codec;
use crate::error::Result;
use crate::format::config::RepoConfig;
use crate::format::pack::PackKind;
use crate::format::snapshot::Summary;
use crate::format::tree::{ChunkRef, Entry, EntryKind, Tree};
use crate::id::{ChunkId, TreeId};
use crate::store::index::{Index, StatEntry};
use crate::store::packs::{FinishedPack, PackWriter};
use crate::store::Layout;

/// A tree entry with its path relative to the workspace.
pub(super) type PathEntry = (PathBuf, Entry);
/// A stat cache row with its path relative to the workspace.
pub(super) type StatRow = (Vec<u8>, StatEntry);

/// The tree entries of the committed items (files skipped while read are
/// left out; a directory's tree id is filled in by `tree_records`), and the
/// stat cache rows of the files that may have one when `stat_cache` is on.
/// Adds the counts of files, directories, symlinks and bytes to `summary`.
pub(super) fn entries(
    items: &[Item],
    data: Vec<FileData>,
    stat_cache: bool,
    summary: &mut Summary,
) -> (Vec<PathEntry>, Vec<StatRow>) {
    let mut stat_rows = Vec::new();
    let mut entries = Vec::with_capacity(items.len());
    for (item, d) in items.iter().zip(data) {
        let (kind, cacheable) = match (&item.kind, d) {
            (ItemKind::Dir, _) => {
                summary.dirs += 1;
                let tree = TreeId([0; 32]);
                (EntryKind::Dir { tree }, false)
            }
            (ItemKind::Symlink(t), _) => {
                summary.symlinks += 1;
                (EntryKind::Symlink { target: t.clone() }, false)
            }
            (ItemKind::File, FileData::Skipped | FileData::Pending) => continue,
            (ItemKind::File, FileData::Cached(chunks)) => (file_kind(item, chunks, summary), true),
            (
                ItemKind::File,
                FileData::Read {
                    slots,
                    read_start_ns,
                    prefix,
                },
            ) => {
                summary.files_read += 1;
                summary.bytes_read += item.meta.size;
                // Every task ran before the pipeline returned.
                let chunks = slots.wait_all();
                let cacheable = scan::cacheable(&item.meta, read_start_ns, prefix);
                (file_kind(item, chunks, summary), cacheable)
            }
        };
        if let (true, EntryKind::File { chunks, .. }) = (cacheable && stat_cache, &kind) {
            let path = item.rel.as_os_str().as_encoded_bytes().to_vec();
            stat_rows.push((path, scan::stat_row(&item.meta, chunks.clone())));
        }
        entries.push(entry(item, kind));
    }
    (entries, stat_rows)
}

fn file_kind(item: &Item, chunks: Vec<ChunkRef>, summary: &mut Summary) -> EntryKind {
    summary.files += 1;
    summary.logical_bytes += item.meta.size;
    EntryKind::File {
        size: item.meta.size,
        chunks,
    }
}

fn entry(item: &Item, kind: EntryKind) -> PathEntry {
    let name = item
        .rel
        .file_name()
        .expect("relative paths have a name")
        .as_encoded_bytes()
        .to_vec();
    let entry = Entry {
        name,
        mode: item.meta.mode,
        mtime_ns: item.meta.mtime_ns,
        kind,
    };
    (item.rel.clone(), entry)
}

/// One directory's tree record.
#[derive(Debug)]
pub(super) struct TreeRecord {
    /// Relative to the workspace; empty for the root.
    pub path: PathBuf,
    pub id: TreeId,
    pub bytes: Vec<u8>,
}

/// The tree records of `entries` (sorted by path), deepest directories
/// first and the root last, so each directory's record names its
/// subdirectories' ids. The root is always built, even with no entries.
pub(super) fn tree_records(entries: Vec<PathEntry>) -> Vec<TreeRecord> {
    let mut dirs: HashMap<PathBuf, Vec<Entry>> = HashMap::new();
    dirs.insert(PathBuf::new(), Vec::new());
    for (path, entry) in &entries {
        if matches!(entry.kind, EntryKind::Dir { .. }) {
            dirs.entry(path.clone()).or_default();
        }
    }
    for (path, entry) in entries {
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        dirs.entry(parent).or_default().push(entry);
    }
    let mut order: Vec<PathBuf> = dirs.keys().cloned().collect();
    order.sort_by(|a, b| {
        let depth = |p: &Path| p.components().count();
        depth(b).cmp(&depth(a)).then_with(|| a.cmp(b))
    });

    let mut ids: HashMap<PathBuf, TreeId> = HashMap::new();
    let mut records = Vec::with_capacity(order.len());
    for dir in order {
        let mut list = dirs.remove(&dir).expect("every dir listed once");
        for e in list.iter_mut() {
            if let EntryKind::Dir { tree } = &mut e.kind {
                let child = dir.join(std::ffi::OsStr::from_bytes(&e.name));
                *tree = *ids
                    .get(&child)
                    .expect("children are built before their parent");
            }
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let (id, bytes) = Tree { entries: list }.encode();
        ids.insert(dir.clone(), id);
        records.push(TreeRecord {
            path: dir,
            id,
            bytes,
        });
    }
    records
}

/// Builds the tree records of `entries` and stores the ones the index does
/// not hold in one tree pack. Returns the root tree id and that pack.
pub(super) fn build_trees(
    layout: &Layout,
    config: &RepoConfig,
    index: &Index,
    entries: Vec<PathEntry>,
) -> Result<(TreeId, Option<FinishedPack>)> {
    let records = tree_records(entries);
    let root = records
        .iter()
        .find(|r| r.path.as_os_str().is_empty())
        .expect("the root directory is always built")
        .id;
    let mut writer: Option<PackWriter> = None;
    let mut stored: HashSet<TreeId> = HashSet::new();
    for TreeRecord { id, bytes, .. } in records {
        let key = ChunkId(id.0);
        if stored.contains(&id) || index.has_blob(&key, PackKind::Tree)? {
            continue;
        }
        let (codec, enc) = codec::encode(&bytes, config.zstd_level);
        let w = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(PackWriter::create(layout, PackKind::Tree)?),
        };
        w.add(key, codec, &enc, bytes.len() as u32, None)?;
        stored.insert(id);
    }
    let pack = writer.map(|w| w.finish(layout)).transpose()?;
    Ok((root, pack))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, byte: u8) -> PathEntry {
        let chunks = vec![ChunkRef {
            id: ChunkId::of(&[byte]),
            len: 1,
        }];
        let name = Path::new(path).file_name().unwrap().as_bytes().to_vec();
        let kind = EntryKind::File { size: 1, chunks };
        let entry = Entry {
            name,
            mode: 0o644,
            mtime_ns: 7,
            kind,
        };
        (PathBuf::from(path), entry)
    }

    fn dir(path: &str) -> PathEntry {
        let name = Path::new(path).file_name().unwrap().as_bytes().to_vec();
        let kind = EntryKind::Dir {
            tree: TreeId([0; 32]),
        };
        let entry = Entry {
            name,
            mode: 0o755,
            mtime_ns: 3,
            kind,
        };
        (PathBuf::from(path), entry)
    }

    fn decoded(records: &[TreeRecord], path: &str) -> Tree {
        let r = records.iter().find(|r| r.path == Path::new(path)).unwrap();
        assert_eq!(Tree::decode(&r.bytes).unwrap().encode().0, r.id);
        Tree::decode(&r.bytes).unwrap()
    }

    fn names(tree: &Tree) -> Vec<&[u8]> {
        tree.entries.iter().map(|e| &e.name[..]).collect()
    }

    #[test]
    fn an_empty_commit_has_an_empty_root() {
        let records = tree_records(Vec::new());
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, Tree::default().encode().0);
        assert!(records[0].path.as_os_str().is_empty());
    }

    #[test]
    fn records_go_bottom_up_and_name_their_children() {
        let records = tree_records(vec![
            dir("a"),
            dir("a/b"),
            file("a/b/x", 1),
            file("a/y", 2),
            dir("c"),
            file("z", 3),
        ]);
        let paths: Vec<&Path> = records.iter().map(|r| r.path.as_path()).collect();
        let order: Vec<&Path> = ["a/b", "a", "c", ""].iter().map(Path::new).collect();
        assert_eq!(paths, order);
        let root = decoded(&records, "");
        assert_eq!(names(&root), [&b"a"[..], b"c", b"z"]);
        let a = decoded(&records, "a");
        assert_eq!(
            root.entries[0].kind,
            EntryKind::Dir {
                tree: records[1].id
            }
        );
        assert_eq!(
            a.entries[0].kind,
            EntryKind::Dir {
                tree: records[0].id
            }
        );
        assert_eq!(names(&decoded(&records, "a/b")), [&b"x"[..]]);
        assert_eq!(
            root.entries[1].kind,
            EntryKind::Dir {
                tree: Tree::default().encode().0
            }
        );
    }

    #[test]
    fn entries_are_sorted_by_name_whatever_the_input_order() {
        let sorted = tree_records(vec![file("a", 1), file("b", 2), file("c", 3)]);
        let shuffled = tree_records(vec![file("c", 3), file("a", 1), file("b", 2)]);
        assert_eq!(sorted[0].id, shuffled[0].id);
        assert_eq!(names(&decoded(&shuffled, "")), [&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn an_unchanged_directory_keeps_its_id() {
        let before = tree_records(vec![dir("d"), file("d/w", 1), file("log", 2)]);
        let after = tree_records(vec![dir("d"), file("d/w", 1), file("log", 9)]);
        assert_eq!(before[0].path, Path::new("d"));
        assert_eq!(before[0].id, after[0].id);
        assert_ne!(before[1].id, after[1].id);
        // The same contents under two names: one record, stored once.
        let twins = tree_records(vec![dir("p"), file("p/w", 1), dir("q"), file("q/w", 1)]);
        assert_eq!(twins[0].id, twins[1].id);
        assert_eq!(twins[0].id, before[0].id);
    }
}
