//! Choosing the float-delta base of a checkpoint being committed.
//!
//! The base is the file's previous version in the parent snapshot, the
//! first of (`Previous::version_of`):
//!
//! 1. the file at the same path;
//! 2. the file of the same name in the nearest lower-numbered sibling of
//!    its directory (`checkpoint-1000/optimizer.pt` after
//!    `checkpoint-500/optimizer.pt`, `epoch_4/` after `epoch_3/`: the
//!    directory names differ only in their last run of digits), which is
//!    how HF Trainer and most training loops lay out their saves;
//! 3. the newest file of the same directory with the same extension
//!    (`epoch_08.pt` after `epoch_07.pt`: `newest_like`).
//!
//! Each float chunk of the new file is then coded against the chunk of that
//! version that holds the same tensor (by name) at the same offset within
//! the tensor, with the same length: both files' tensors are listed by
//! `ckpt::tensors` (the previous one read from the store, only its header
//! chunks), so tensors added, removed or reordered between saves still find
//! their own past bytes. Where a tensor cannot be matched by name (npy, a
//! file whose tensors cannot be listed), the chunk at the same offset from
//! the first float chunk is used, as before (`Bases::get`). Deltas are one
//! level deep: a chunk of the previous version that is itself a delta gives
//! its own base.
//!
//! The parent's trees are loaded only as far as the committed files need
//! them (`Previous`); the choice itself is pure.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::ckpt::Tensor;
use crate::error::Result;
use crate::format::pack::{Codec, PackKind};
use crate::format::tree::{ChunkRef, EntryKind, Tree};
use crate::id::{ChunkId, TreeId};
use crate::store::index::{BlobLoc, Index};
use crate::store::read::{load_tree, PackFiles};

/// A base: the chunk to code against and where it is stored.
type Base = (ChunkId, BlobLoc);

/// Float-delta bases of one file.
#[derive(Debug, Default)]
pub(super) struct Bases {
    /// By (tensor name, offset of the chunk in the tensor, chunk length).
    by_tensor: HashMap<String, HashMap<(u64, u32), Base>>,
    /// By (offset from the first float chunk, chunk length).
    by_anchor: HashMap<(u64, u32), Base>,
}

impl Bases {
    /// The base of a new float chunk of `len` bytes lying `in_tensor`
    /// (its tensor's name and its offset in that tensor, when the new file's
    /// tensors are known) and `from_anchor` bytes after the new file's first
    /// float chunk: by tensor name first, else by offset.
    pub fn get(&self, in_tensor: Option<(&str, u64)>, from_anchor: u64, len: u32) -> Option<Base> {
        let named = in_tensor.and_then(|(name, off)| self.by_tensor.get(name)?.get(&(off, len)));
        named
            .or_else(|| self.by_anchor.get(&(from_anchor, len)))
            .copied()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tensor.is_empty() && self.by_anchor.is_empty()
    }

    /// Keys `entries` (float chunks of the previous version with their
    /// bases: start in the file, length, base if any; in file order) by anchor
    /// offset and, where `tensors` places them, by tensor.
    fn new(entries: Vec<(u64, u32, Option<Base>)>, tensors: &TensorMap) -> Self {
        let anchor = entries.first().map_or(0, |e| e.0);
        let mut out = Bases::default();
        for (start, len, base) in entries {
            let Some(base) = base else { continue };
            if let Some((name, off)) = tensors.find(start) {
                out.by_tensor
                    .entry(name.to_string())
                    .or_default()
                    .entry((off, len))
                    .or_insert(base);
            }
            out.by_anchor.insert((start - anchor, len), base);
        }
        out
    }
}

/// A file's tensors by byte range, to name the tensor a chunk lies in.
/// Ranges that overlap (views of one PyTorch storage) keep the widest of
/// those starting first, then the first by name, so the same storage gets
/// the same name in every save.
#[derive(Debug, Default)]
pub(super) struct TensorMap {
    /// (start, end, name), sorted by start, non-overlapping.
    ranges: Vec<(u64, u64, String)>,
}

impl TensorMap {
    pub fn new(tensors: Vec<Tensor>) -> Self {
        let mut all: Vec<(u64, u64, String)> = tensors
            .into_iter()
            .filter(|t| t.len > 0)
            .map(|t| (t.offset, t.offset.saturating_add(t.len), t.name))
            .collect();
        all.sort_by(|a, b| {
            (a.0, std::cmp::Reverse(a.1), &a.2).cmp(&(b.0, std::cmp::Reverse(b.1), &b.2))
        });
        let mut ranges: Vec<(u64, u64, String)> = Vec::with_capacity(all.len());
        for r in all {
            if ranges.last().is_none_or(|last| last.1 <= r.0) {
                ranges.push(r);
            }
        }
        TensorMap { ranges }
    }

    /// The tensor holding file offset `at`, and `at`'s offset within it.
    pub fn find(&self, at: u64) -> Option<(&str, u64)> {
        let i = self.ranges.partition_point(|r| r.0 <= at).checked_sub(1)?;
        let (start, end, name) = &self.ranges[i];
        (at < *end).then(|| (name.as_str(), at - start))
    }
}

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
    let entries = bases_of(&chunks, &locs, |b| index.blob(b, PackKind::Data))?;
    if entries.iter().all(|e| e.2.is_none()) {
        return Ok(Bases::default());
    }
    // The previous version's tensors, from its header chunks. One that
    // cannot be read or listed only loses the match by name.
    let size = chunks.iter().map(|c| c.len as u64).sum();
    let tensors = crate::ops::checkpoint::tensors(index, packs, &chunks, size, true)
        .ok()
        .flatten()
        .unwrap_or_default();
    Ok(Bases::new(entries, &TensorMap::new(tensors)))
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

    /// The chunks of `rel`'s previous version: the same path, else the same
    /// name in the nearest lower-numbered sibling directory, else the newest
    /// file with the same extension in its directory (see the module doc).
    pub fn version_of(&mut self, load: &mut Load<'_>, rel: &Path) -> Option<Vec<ChunkRef>> {
        let name = Path::new(rel.file_name()?);
        let dir = rel.parent().unwrap_or(Path::new(""));
        if let Some(chunks) = self.dir(load, dir).and_then(|t| same_name(t, name)) {
            return Some(chunks.to_vec());
        }
        if let Some(sibling) = self.numbered_sibling(load, dir) {
            if let Some(chunks) = self.dir(load, &sibling).and_then(|t| same_name(t, name)) {
                return Some(chunks.to_vec());
            }
        }
        newest_like(self.dir(load, dir)?, name).map(<[ChunkRef]>::to_vec)
    }

    /// The parent's directory beside `dir` whose name differs from `dir`'s
    /// only in its last run of digits, with the greatest number below
    /// `dir`'s: `checkpoints/checkpoint-500` for `checkpoints/checkpoint-1000`.
    fn numbered_sibling(&mut self, load: &mut Load<'_>, dir: &Path) -> Option<PathBuf> {
        let up = dir.parent()?;
        let own = numbered(dir.file_name()?.as_bytes())?;
        let tree = self.dir(load, up)?;
        let best = tree
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Dir { .. }))
            .filter_map(|e| {
                let (prefix, n, suffix) = numbered(&e.name)?;
                (prefix == own.0 && suffix == own.2 && n < own.1).then_some((n, &e.name))
            })
            .max()?;
        Some(up.join(std::ffi::OsStr::from_bytes(best.1)))
    }
}

/// A name split around its last run of ASCII digits: (before, number,
/// after); `None` without digits or with a number over `u64`.
fn numbered(name: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    let end = name.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = name[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let n = std::str::from_utf8(&name[start..end]).ok()?.parse().ok()?;
    Some((&name[..start], n, &name[end..]))
}

/// The files of `tree`, with their chunks.
fn files(tree: &Tree) -> impl Iterator<Item = (&crate::format::tree::Entry, &[ChunkRef])> + Clone {
    tree.entries.iter().filter_map(|e| match &e.kind {
        EntryKind::File { chunks, .. } => Some((e, chunks.as_slice())),
        _ => None,
    })
}

/// The chunks of the file `name` in `tree`. Only a name with an extension
/// has a previous version (a checkpoint has one; `weights` might be anything).
fn same_name<'t>(tree: &'t Tree, name: &Path) -> Option<&'t [ChunkRef]> {
    name.extension()?;
    let name = name.as_os_str().as_bytes();
    files(tree).find(|(e, _)| e.name == name).map(|(_, c)| c)
}

/// The chunks of the newest file of `tree` (by mtime, then name) with the
/// same extension as `name`. A name without an extension has none.
fn newest_like<'t>(tree: &'t Tree, name: &Path) -> Option<&'t [ChunkRef]> {
    let ext = name.extension()?;
    files(tree)
        .filter(|(e, _)| Path::new(std::ffi::OsStr::from_bytes(&e.name)).extension() == Some(ext))
        .max_by_key(|(e, _)| (e.mtime_ns, e.name.clone()))
        .map(|(_, c)| c)
}

/// The float chunks of a previous version (`chunks`, in file order, located
/// by `locs`) with the blob to code against: (start in the file, length,
/// base), in file order. A delta chunk gives its base, looked up with
/// `keyframe`, if that is not a delta itself; else it has none (but still
/// counts as the first float chunk, the anchor, if it is).
fn bases_of(
    chunks: &[ChunkRef],
    locs: &HashMap<ChunkId, BlobLoc>,
    mut keyframe: impl FnMut(&ChunkId) -> Result<Option<BlobLoc>>,
) -> Result<Vec<(u64, u32, Option<Base>)>> {
    let mut keyframes: HashMap<ChunkId, Option<BlobLoc>> = HashMap::new();
    let mut out = Vec::new();
    let mut off = 0u64;
    for c in chunks {
        let start = off;
        off += c.len as u64;
        let Some(loc) = locs.get(&c.id) else { continue };
        let base = match (loc.codec, loc.base) {
            (Codec::Float, _) => Some((c.id, *loc)),
            (Codec::FloatDelta, Some(b)) => {
                let found = match keyframes.entry(b) {
                    MapEntry::Occupied(e) => *e.get(),
                    MapEntry::Vacant(e) => *e.insert(keyframe(&b)?),
                };
                found.filter(|l| l.base.is_none()).map(|l| (b, l))
            }
            _ => continue,
        };
        out.push((start, c.len, base));
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

    fn tensor(name: &str, offset: u64, len: u64) -> Tensor {
        Tensor {
            name: name.into(),
            dtype: "F32".into(),
            shape: vec![len / 4],
            bytes: len,
            offset,
            len,
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
        let of = |name: &str| {
            let name = Path::new(name);
            same_name(&tree, name)
                .or_else(|| newest_like(&tree, name))
                .map(|c| c[0])
        };
        assert_eq!(of("b.pt"), Some(chunk(2, 8)));
        // Newest by mtime; a tie goes to the greater name; a directory is never one.
        assert_eq!(of("z.pt"), Some(chunk(4, 8)));
        assert_eq!(of("x.bin"), Some(chunk(3, 8)));
        assert_eq!(of("x.npy"), None);
        // Without an extension, not even the same name.
        let plain = Tree {
            entries: vec![file("weights", 1, vec![chunk(5, 8)])],
        };
        assert_eq!(same_name(&plain, Path::new("weights")), None);
        assert_eq!(newest_like(&plain, Path::new("weights")), None);
    }

    #[test]
    fn names_split_around_their_last_number() {
        assert_eq!(
            numbered(b"checkpoint-1000"),
            Some((&b"checkpoint-"[..], 1000, &b""[..]))
        );
        assert_eq!(
            numbered(b"run2_epoch_07.d"),
            Some((&b"run2_epoch_"[..], 7, &b".d"[..]))
        );
        assert_eq!(numbered(b"42"), Some((&b""[..], 42, &b""[..])));
        assert_eq!(numbered(b"final"), None);
        assert_eq!(numbered(b"x99999999999999999999999"), None);
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

    /// HF Trainer's layout: each save in a new numbered folder. The same
    /// name in the nearest lower-numbered sibling is the previous version,
    /// before any same-extension file of the folder itself.
    #[test]
    fn a_new_numbered_folder_finds_the_nearest_lower_sibling() {
        let save = |n: u8| Tree {
            entries: vec![
                file("model.safetensors", 1, vec![chunk(n, 16)]),
                file("optimizer.pt", 1, vec![chunk(n + 100, 16)]),
            ],
        };
        let (s500, s1000, s2000) = (save(5), save(10), save(20));
        let ids: Vec<TreeId> = [&s500, &s1000, &s2000].map(|t| t.encode().0).into();
        let other = Tree {
            entries: vec![file("model.safetensors", 1, vec![chunk(77, 16)])],
        };
        let (other_id, _) = other.encode();
        let ckpts = Tree {
            entries: vec![
                dir("checkpoint-1000", ids[1]),
                dir("checkpoint-2000", ids[2]),
                dir("checkpoint-500", ids[0]),
                dir("best-1500", other_id),
                file("checkpoint-1500", 1, vec![chunk(66, 16)]),
            ],
        };
        let (ckpts_id, _) = ckpts.encode();
        let root = Tree {
            entries: vec![dir("checkpoints", ckpts_id)],
        };
        let (root_id, _) = root.encode();
        let mut trees = HashMap::from([(root_id, root), (ckpts_id, ckpts), (other_id, other)]);
        trees.extend(ids.iter().copied().zip([s500, s1000, s2000]));
        let mut load = |id: &TreeId| trees.get(id).cloned();
        let mut prev = Previous::new(Some(root_id));
        let mut of = |p: &str| prev.version_of(&mut load, Path::new(p)).map(|c| c[0]);
        // 1500 sits between 1000 and 2000: the nearest lower is 1000.
        assert_eq!(
            of("checkpoints/checkpoint-1500/model.safetensors"),
            Some(chunk(10, 16))
        );
        assert_eq!(
            of("checkpoints/checkpoint-1500/optimizer.pt"),
            Some(chunk(110, 16))
        );
        assert_eq!(
            of("checkpoints/checkpoint-9000/model.safetensors"),
            Some(chunk(20, 16))
        );
        // The same path still wins; nothing lower than 500; another prefix
        // is not a sibling; a file is not a folder.
        assert_eq!(
            of("checkpoints/checkpoint-500/model.safetensors"),
            Some(chunk(5, 16))
        );
        assert_eq!(of("checkpoints/checkpoint-400/model.safetensors"), None);
        assert_eq!(of("checkpoints/checkpoint-1500/scheduler.pt"), None);
        assert_eq!(
            of("checkpoints/best-2500/model.safetensors"),
            Some(chunk(77, 16))
        );
        assert_eq!(of("checkpoints/final/model.safetensors"), None);
    }

    #[test]
    fn bases_are_keyed_from_the_first_float_chunk_and_one_level_deep() {
        let header = chunk(0, 40);
        let (d0, f1, f2, d3, d4, missing) = (
            chunk(6, 100),
            chunk(1, 100),
            chunk(2, 100),
            chunk(3, 100),
            chunk(4, 60),
            chunk(5, 100),
        );
        let keyframe = ChunkId::of(b"keyframe");
        let nested = ChunkId::of(b"nested");
        let gone = ChunkId::of(b"gone");
        let locs = HashMap::from([
            (header.id, loc(Codec::Zstd, 0, None)),
            (d0.id, loc(Codec::FloatDelta, 5, Some(gone))),
            (f1.id, loc(Codec::Float, 10, None)),
            (f2.id, loc(Codec::Float, 20, None)),
            (d3.id, loc(Codec::FloatDelta, 30, Some(keyframe))),
            (d4.id, loc(Codec::FloatDelta, 40, Some(nested))),
        ]);
        let mut lookups = Vec::new();
        let chunks = [header, d0, f1, f2, d3, missing, d4, d3];
        let entries = bases_of(&chunks, &locs, |id| {
            lookups.push(*id);
            Ok(if *id == keyframe {
                Some(loc(Codec::Float, 50, None))
            } else if *id == nested {
                Some(loc(Codec::FloatDelta, 60, Some(keyframe)))
            } else {
                None
            })
        })
        .unwrap();
        let bases = Bases::new(entries, &TensorMap::default());
        // The anchor is the first float chunk, even one without a base.
        let expected = HashMap::from([
            ((100, 100), (f1.id, locs[&f1.id])),
            ((200, 100), (f2.id, locs[&f2.id])),
            ((300, 100), (keyframe, loc(Codec::Float, 50, None))),
            ((560, 100), (keyframe, loc(Codec::Float, 50, None))),
        ]);
        assert_eq!(bases.by_anchor, expected);
        assert!(bases.by_tensor.is_empty());
        assert_eq!(
            bases.get(Some(("w", 0)), 100, 100),
            Some(expected[&(100, 100)])
        );
        assert_eq!(bases.get(None, 0, 100), None);
        // Each delta's base is looked up once, however often it is named.
        assert_eq!(lookups, vec![gone, keyframe, nested]);
        // A version without float chunks gives no bases.
        assert!(bases_of(&[header], &locs, |_| Ok(None)).unwrap().is_empty());
    }

    /// A tensor inserted before the others moves them all: by name each
    /// still finds its own bytes, where the offset from the first float
    /// chunk would pair it with another tensor.
    #[test]
    fn bases_by_tensor_name_survive_a_changed_layout() {
        let (a0, a1, b0) = (chunk(1, 100), chunk(2, 100), chunk(3, 100));
        let locs = HashMap::from([
            (a0.id, loc(Codec::Float, 0, None)),
            (a1.id, loc(Codec::Float, 1, None)),
            (b0.id, loc(Codec::Float, 2, None)),
        ]);
        // Previous: header 40 B, "a" 200 B, "b" 100 B.
        let chunks = [chunk(0, 40), a0, a1, b0];
        let previous = TensorMap::new(vec![tensor("b", 240, 100), tensor("a", 40, 200)]);
        let entries = bases_of(&chunks, &locs, |_| Ok(None)).unwrap();
        let bases = Bases::new(entries, &previous);
        // New file: "new" (100 B) first, then "a", then "b".
        let new = TensorMap::new(vec![
            tensor("new", 50, 100),
            tensor("a", 150, 200),
            tensor("b", 350, 100),
        ]);
        let base_at = |at: u64| bases.get(new.find(at), at - 50, 100).map(|b| b.0);
        assert_eq!(new.find(250), Some(("a", 100)));
        assert_eq!(base_at(150), Some(a0.id));
        assert_eq!(base_at(250), Some(a1.id));
        assert_eq!(base_at(350), Some(b0.id));
        // "new" has no past by name: the offset rule pairs it with a0.
        assert_eq!(base_at(50), Some(a0.id));
        // Overlapping ranges (views of one storage) keep the first.
        let views = TensorMap::new(vec![
            tensor("w.T", 0, 100),
            tensor("w", 0, 100),
            tensor("w.half", 0, 50),
            tensor("empty", 10, 0),
        ]);
        assert_eq!(views.find(60), Some(("w", 60)));
        assert_eq!(views.find(100), None);
    }
}
