//! Choosing the float-delta base of a checkpoint being committed.
//!
//! The base is the file's previous version in the parent snapshot: the file
//! at the same path or, for a new file (`epoch_08.pt` after `epoch_07.pt`),
//! the newest file of the same directory with the same extension
//! (`previous_in`). Each float chunk of the new file is then coded against
//! the chunk of that version at the same offset from the first float chunk,
//! with the same length (`bases_of`). Deltas are one level deep: a chunk of
//! the previous version that is itself a delta gives its own base.
//!
//! The parent's trees are loaded only as far as the committed files need
//! them (`Previous`); the choice itself is pure.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;
use crate::format::pack::{Codec, PackKind};
use crate::format::tree::{ChunkRef, EntryKind, Tree};
use crate::id::{ChunkId, TreeId};
use crate::store::index::{BlobLoc, Index};
use crate::store::read::{load_tree, PackFiles};

/// Float-delta bases of one file, by (offset from the first float chunk,
/// length) of the new chunk.
pub(super) type Bases = Arc<HashMap<(u64, u32), (ChunkId, BlobLoc)>>;

/// The bases for the file at `rel` (relative to the workspace): none if it
/// has no previous version or that holds no float data.
pub(super) fn for_file(
    index: &Index,
    packs: &PackFiles,
    previous: &mut Previous,
    rel: &Path,
) -> Result<Bases> {
    let mut load = |id: &TreeId| load_tree(index, packs, id).ok();
    let Some(chunks) = previous.version_of(&mut load, rel) else {
        return Ok(Bases::default());
    };
    let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
    let locs = index.blobs(&ids, PackKind::Data)?;
    let bases = bases_of(&chunks, &locs, |b| index.blob(b, PackKind::Data))?;
    Ok(Arc::new(bases))
}

/// The parent snapshot's trees, loaded as needed, to find the previous
/// version of a checkpoint being committed. A tree that cannot be loaded
/// counts as absent: the file then has no base.
pub(super) struct Previous {
    root: Option<TreeId>,
    dirs: HashMap<PathBuf, Option<Tree>>,
}

/// Loads a tree by id, `None` if it cannot be read.
type Load<'l> = dyn FnMut(&TreeId) -> Option<Tree> + 'l;

impl Previous {
    /// `root`: the parent snapshot's root tree, if there is a parent.
    pub fn new(root: Option<TreeId>) -> Self {
        Previous {
            root,
            dirs: HashMap::new(),
        }
    }

    /// The parent's tree of directory `rel` ("" is the root).
    fn dir(&mut self, load: &mut Load<'_>, rel: &Path) -> Option<&Tree> {
        if !self.dirs.contains_key(rel) {
            let tree = match rel.parent() {
                None => self.root.and_then(|r| load(&r)),
                Some(up) => {
                    let name = rel.file_name()?.as_bytes();
                    let up = self.dir(load, up)?;
                    let sub = up.entries.iter().find_map(|e| match e.kind {
                        EntryKind::Dir { tree } if e.name == name => Some(tree),
                        _ => None,
                    });
                    sub.and_then(|t| load(&t))
                }
            };
            self.dirs.insert(rel.to_path_buf(), tree);
        }
        self.dirs[rel].as_ref()
    }

    /// The chunks of `rel`'s previous version (`previous_in` its
    /// directory's tree in the parent snapshot).
    pub fn version_of(&mut self, load: &mut Load<'_>, rel: &Path) -> Option<Vec<ChunkRef>> {
        let name = Path::new(rel.file_name()?);
        let tree = self.dir(load, rel.parent().unwrap_or(Path::new("")))?;
        previous_in(tree, name).map(<[ChunkRef]>::to_vec)
    }
}

/// The chunks of the previous version of the file `name` among the files of
/// `tree`: the file of the same name or else the newest (by mtime, then
/// name) with the same extension. A name without an extension has none.
fn previous_in<'t>(tree: &'t Tree, name: &Path) -> Option<&'t [ChunkRef]> {
    let ext = name.extension()?;
    let name = name.as_os_str().as_bytes();
    let files = tree.entries.iter().filter_map(|e| match &e.kind {
        EntryKind::File { chunks, .. } => Some((e, chunks)),
        _ => None,
    });
    let same = files.clone().find(|(e, _)| e.name == name);
    let newest = || {
        files
            .filter(|(e, _)| {
                Path::new(std::ffi::OsStr::from_bytes(&e.name)).extension() == Some(ext)
            })
            .max_by_key(|(e, _)| (e.mtime_ns, e.name.clone()))
    };
    same.or_else(newest).map(|(_, chunks)| chunks.as_slice())
}

/// For each chunk of a previous version (`chunks`, in file order, located
/// by `locs`) that holds float data, the blob to code against, keyed by the
/// chunk's length and its offset from the first float chunk (so a header
/// that grew or shrank does not misalign the tensors). A delta chunk gives
/// its base, looked up with `keyframe`, if that is not a delta itself.
fn bases_of(
    chunks: &[ChunkRef],
    locs: &HashMap<ChunkId, BlobLoc>,
    mut keyframe: impl FnMut(&ChunkId) -> Result<Option<BlobLoc>>,
) -> Result<HashMap<(u64, u32), (ChunkId, BlobLoc)>> {
    let mut keyframes: HashMap<ChunkId, Option<BlobLoc>> = HashMap::new();
    let mut out = HashMap::new();
    let mut off = 0u64;
    let mut anchor = None;
    for c in chunks {
        let start = off;
        off += c.len as u64;
        let Some(loc) = locs.get(&c.id) else { continue };
        if !matches!(loc.codec, Codec::Float | Codec::FloatDelta) {
            continue;
        }
        let key = (start - *anchor.get_or_insert(start), c.len);
        let base = match (loc.codec, loc.base) {
            (Codec::Float, _) => Some((c.id, *loc)),
            (Codec::FloatDelta, Some(b)) => {
                let found = match keyframes.entry(b) {
                    MapEntry::Occupied(e) => *e.get(),
                    MapEntry::Vacant(e) => *e.insert(keyframe(&b)?),
                };
                found.filter(|l| l.base.is_none()).map(|l| (b, l))
            }
            _ => None,
        };
        out.extend(base.map(|b| (key, b)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::Entry;
    use crate::id::PackId;

    fn chunk(n: u8, len: u32) -> ChunkRef {
        ChunkRef {
            id: ChunkId::of(&[n]),
            len,
        }
    }

    fn file(name: &str, mtime_ns: i64, chunks: Vec<ChunkRef>) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            mode: 0o644,
            mtime_ns,
            kind: EntryKind::File {
                size: chunks.iter().map(|c| c.len as u64).sum(),
                chunks,
            },
        }
    }

    fn dir(name: &str, tree: TreeId) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            mode: 0o755,
            mtime_ns: 0,
            kind: EntryKind::Dir { tree },
        }
    }

    fn loc(codec: Codec, offset: u64, base: Option<ChunkId>) -> BlobLoc {
        BlobLoc {
            pack: PackId([1; 32]),
            codec,
            offset,
            stored_len: 10,
            raw_len: 100,
            base,
        }
    }

    #[test]
    fn the_same_name_wins_then_the_newest_file_with_the_same_extension() {
        let tree = Tree {
            entries: vec![
                file("a.pt", 30, vec![chunk(1, 8)]),
                file("b.pt", 10, vec![chunk(2, 8)]),
                file("c.bin", 99, vec![chunk(3, 8)]),
                file("d.pt", 30, vec![chunk(4, 8)]),
                dir("e.pt", TreeId([7; 32])),
            ],
        };
        let of = |name: &str| previous_in(&tree, Path::new(name)).map(|c| c[0]);
        assert_eq!(of("b.pt"), Some(chunk(2, 8)));
        // Newest by mtime; a tie goes to the greater name; a directory is never one.
        assert_eq!(of("z.pt"), Some(chunk(4, 8)));
        assert_eq!(of("x.bin"), Some(chunk(3, 8)));
        assert_eq!(of("x.npy"), None);
        // Without an extension, not even the same name.
        let plain = Tree {
            entries: vec![file("weights", 1, vec![chunk(5, 8)])],
        };
        assert_eq!(previous_in(&plain, Path::new("weights")), None);
    }

    #[test]
    fn previous_walks_the_parent_trees_and_loads_each_once() {
        let sub = Tree {
            entries: vec![file("epoch_07.pt", 5, vec![chunk(1, 16)])],
        };
        let (sub_id, _) = sub.encode();
        let root = Tree {
            entries: vec![
                dir("ckpt", sub_id),
                file("epoch_01.pt", 1, vec![chunk(9, 16)]),
            ],
        };
        let (root_id, _) = root.encode();
        let trees = HashMap::from([(root_id, root), (sub_id, sub)]);
        let mut loads = Vec::new();
        let mut load = |id: &TreeId| {
            loads.push(*id);
            trees.get(id).cloned()
        };
        let mut prev = Previous::new(Some(root_id));
        let got = prev.version_of(&mut load, Path::new("ckpt/epoch_08.pt"));
        assert_eq!(got, Some(vec![chunk(1, 16)]));
        let got = prev.version_of(&mut load, Path::new("ckpt/epoch_07.pt"));
        assert_eq!(got, Some(vec![chunk(1, 16)]));
        assert_eq!(
            prev.version_of(&mut load, Path::new("epoch_02.pt")),
            Some(vec![chunk(9, 16)])
        );
        assert_eq!(prev.version_of(&mut load, Path::new("other/x.pt")), None);
        assert_eq!(loads, vec![root_id, sub_id]);
        // No parent: no previous version.
        let mut none = Previous::new(None);
        let mut never = |_: &TreeId| -> Option<Tree> { panic!("nothing to load") };
        assert_eq!(none.version_of(&mut never, Path::new("epoch_01.pt")), None);
    }

    #[test]
    fn bases_are_keyed_from_the_first_float_chunk_and_one_level_deep() {
        let header = chunk(0, 40);
        let (f1, f2, d3, d4, missing) = (
            chunk(1, 100),
            chunk(2, 100),
            chunk(3, 100),
            chunk(4, 60),
            chunk(5, 100),
        );
        let keyframe = ChunkId::of(b"keyframe");
        let nested = ChunkId::of(b"nested");
        let locs = HashMap::from([
            (header.id, loc(Codec::Zstd, 0, None)),
            (f1.id, loc(Codec::Float, 10, None)),
            (f2.id, loc(Codec::Float, 20, None)),
            (d3.id, loc(Codec::FloatDelta, 30, Some(keyframe))),
            (d4.id, loc(Codec::FloatDelta, 40, Some(nested))),
        ]);
        let mut lookups = Vec::new();
        let chunks = [header, f1, f2, d3, missing, d4, d3];
        let bases = bases_of(&chunks, &locs, |id| {
            lookups.push(*id);
            Ok(if *id == keyframe {
                Some(loc(Codec::Float, 50, None))
            } else {
                Some(loc(Codec::FloatDelta, 60, Some(keyframe)))
            })
        })
        .unwrap();
        let expected = HashMap::from([
            ((0, 100), (f1.id, locs[&f1.id])),
            ((100, 100), (f2.id, locs[&f2.id])),
            ((200, 100), (keyframe, loc(Codec::Float, 50, None))),
            ((460, 100), (keyframe, loc(Codec::Float, 50, None))),
        ]);
        assert_eq!(bases, expected);
        // Each delta's base is looked up once, however often it is named.
        assert_eq!(lookups, vec![keyframe, nested]);
        // A version without float chunks gives no bases.
        assert!(bases_of(&[header], &locs, |_| Ok(None)).unwrap().is_empty());
    }
}
