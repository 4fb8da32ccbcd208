//! From the committed files to tree records.
//!
//! `entries` turns the scanned items and their chunks into tree entries
//! (with the stat cache rows and the counts of the summary); `tree_records`
//! builds the directory records bottom-up, each directory's entries sorted
//! by name and pointing to its subdirectories' ids (pure); `build_trees`
//! stores the records not yet stored in one tree pack. An unchanged
//! directory has the same id and costs nothing.
//!
//! Limits are enforced here, at write time, so that a commit never stores a
//! snapshot that show, restore or check would refuse: `check_shape` refuses
//! a workspace nested deeper than `MAX_DEPTH` or with more than
//! `MAX_ENTRIES` entries before any file is read, and `tree_records` a
//! directory whose record would be over the record limit (docs/format.md,
//! Limits). Such a commit fails and stores no snapshot; splitting a huge
//! directory into subdirectories is left to the user.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::scan::{self, FileData, Item, ItemKind};
use crate::codec;
use crate::error::{Error, Result};
use crate::format::config::RepoConfig;
use crate::format::pack::PackKind;
use crate::format::snapshot::Summary;
use crate::format::tree::{ChunkRef, Entry, EntryKind, Tree, MAX_DEPTH, MAX_ENTRIES};
use crate::format::{fits_limit, MAX_RECORD};
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

/// Refuses, before anything is read, a commit of `items` that would nest
/// deeper than `MAX_DEPTH` directories or hold more than `MAX_ENTRIES`
/// entries: no reader would walk the snapshot.
pub(super) fn check_shape(items: &[Item]) -> Result<()> {
    if items.len() as u64 > MAX_ENTRIES {
        return Err(Error::TooLarge {
            what: "the workspace".into(),
            why: format!(
                "{} entries, more than the {MAX_ENTRIES} a snapshot may hold",
                items.len()
            ),
            hint: "commit it in parts (snap commit PATH...) or leave some of it out (.snapignore)"
                .into(),
        });
    }
    let deep = items
        .iter()
        .find(|i| matches!(i.kind, ItemKind::Dir) && i.rel.components().count() > MAX_DEPTH);
    if let Some(item) = deep {
        return Err(Error::TooLarge {
            what: format!("directory {}", item.rel.display()),
            why: format!(
                "it is nested more than {MAX_DEPTH} directories deep, the limit of a snapshot"
            ),
            hint: "leave it out (.snapignore) or move it up".into(),
        });
    }
    Ok(())
}

/// The largest tree record body a commit writes: `MAX_RECORD`, which every
/// reader decodes. Debug builds only (the test suite) may lower it with
/// `SNAP_TEST_RECORD_LIMIT`, so that a test reaches it with small fixtures;
/// release builds ignore that variable.
pub(super) fn record_limit() -> usize {
    #[cfg(debug_assertions)]
    if let Some(l) = std::env::var("SNAP_TEST_RECORD_LIMIT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return l.min(MAX_RECORD);
    }
    MAX_RECORD
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
/// A directory whose record body would be over `limit` bytes, or would not
/// decode, is refused, naming it.
pub(super) fn tree_records(entries: Vec<PathEntry>, limit: usize) -> Result<Vec<TreeRecord>> {
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
        let count = list.len();
        let (id, bytes) = Tree { entries: list }.encode();
        if !fits_limit::<Tree>(&bytes, limit) {
            return Err(too_large_record(&dir, count, bytes.len(), limit));
        }
        ids.insert(dir.clone(), id);
        records.push(TreeRecord {
            path: dir,
            id,
            bytes,
        });
    }
    Ok(records)
}

fn too_large_record(dir: &Path, count: usize, len: usize, limit: usize) -> Error {
    let what = if dir.as_os_str().is_empty() {
        "the workspace's top directory".to_string()
    } else {
        format!("directory {}", dir.display())
    };
    Error::TooLarge {
        what,
        why: format!(
            "its {count} entries make a tree record of {len} bytes, over the {limit} bytes \
             a record may hold (a file's record grows with its chunks)"
        ),
        hint: "split it into subdirectories, or leave some of it out (.snapignore)".into(),
    }
}

/// Builds the tree records of `entries` and stores the ones the index does
/// not hold in one tree pack. Returns the root tree id and that pack.
pub(super) fn build_trees(
    layout: &Layout,
    config: &RepoConfig,
    index: &Index,
    entries: Vec<PathEntry>,
) -> Result<(TreeId, Option<FinishedPack>)> {
    let records = tree_records(entries, record_limit())?;
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
        let records = tree_records(Vec::new(), MAX_RECORD).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, Tree::default().encode().0);
        assert!(records[0].path.as_os_str().is_empty());
    }

    #[test]
    fn records_go_bottom_up_and_name_their_children() {
        let records = tree_records(
            vec![
                dir("a"),
                dir("a/b"),
                file("a/b/x", 1),
                file("a/y", 2),
                dir("c"),
                file("z", 3),
            ],
            MAX_RECORD,
        )
        .unwrap();
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
        let sorted =
            tree_records(vec![file("a", 1), file("b", 2), file("c", 3)], MAX_RECORD).unwrap();
        let shuffled =
            tree_records(vec![file("c", 3), file("a", 1), file("b", 2)], MAX_RECORD).unwrap();
        assert_eq!(sorted[0].id, shuffled[0].id);
        assert_eq!(names(&decoded(&shuffled, "")), [&b"a"[..], b"b", b"c"]);
    }

    /// A directory whose record would be over the limit is refused, naming
    /// it; at the limit it is stored.
    #[test]
    fn an_oversized_directory_is_refused_at_write_time() {
        let mut entries = vec![dir("big")];
        entries.extend((0..50u8).map(|i| file(&format!("big/{i:03}-{}", "n".repeat(40)), i)));
        let records = tree_records(entries.clone(), MAX_RECORD).unwrap();
        let body = records[0].bytes.len() - 6;
        assert!(tree_records(entries.clone(), body).is_ok());
        let err = tree_records(entries, body - 1).unwrap_err().to_string();
        assert!(err.contains("directory big"), "{err}");
        assert!(err.contains("split it"), "{err}");
    }

    #[test]
    fn an_unchanged_directory_keeps_its_id() {
        let before =
            tree_records(vec![dir("d"), file("d/w", 1), file("log", 2)], MAX_RECORD).unwrap();
        let after =
            tree_records(vec![dir("d"), file("d/w", 1), file("log", 9)], MAX_RECORD).unwrap();
        assert_eq!(before[0].path, Path::new("d"));
        assert_eq!(before[0].id, after[0].id);
        assert_ne!(before[1].id, after[1].id);
        // The same contents under two names: one record, stored once.
        let twins = tree_records(
            vec![dir("p"), file("p/w", 1), dir("q"), file("q/w", 1)],
            MAX_RECORD,
        )
        .unwrap();
        assert_eq!(twins[0].id, twins[1].id);
        assert_eq!(twins[0].id, before[0].id);
    }
}
