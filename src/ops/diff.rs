//! Differences between two snapshots: files added, removed and changed, and
//! with `tensors`, for checkpoint files (safetensors, PyTorch zips, npz),
//! which tensors were added, removed or changed. Tensor lists come from
//! `ops::checkpoint` (the `ckpt` parsers over the stored chunks); a
//! tensor's bytes are compared by chunk ids, and read only where those
//! differ, never by restoring the files.
//!
//! With `content`, each changed file also gets what changed inside it
//! (`ops::filediff`: config keys, a unified text diff, or binary sizes),
//! read from the stored chunks with at most `filediff::MAX_TEXT_BYTES` of
//! each version in memory at a time. `paths` narrows the diff to the files
//! they name (in either snapshot).

use std::collections::{BTreeMap, HashMap};

use crate::ckpt::Tensor;
use crate::error::Result;
use crate::format::tree::{ChunkRef, Entry, EntryKind};
use crate::id::TreeId;
use crate::ops::filediff::{self, ContentDiff};
use crate::ops::pathspec::{self, PathSpec};
use crate::ops::{checkpoint, walk};
use crate::store::index::Index;
use crate::store::read::{read_chunk, PackFiles};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Diff {
    pub added: Vec<FileChange>,
    pub removed: Vec<FileChange>,
    pub changed: Vec<FileChange>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct FileChange {
    pub path: String,
    pub kind: &'static str,
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
    /// What differs for a changed entry: content, mode, kind, target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<&'static str>,
    /// Tensor changes (with `--tensors`, for checkpoint files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensors: Option<TensorDiff>,
    /// What changed inside the file (with `content`, for changed files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentDiff>,
}

/// A diff as asked for (`Repo::diff_with`): paths as given, relative to
/// `base`, a directory of the snapshots (empty: the root).
#[derive(Clone, Debug, Default)]
pub struct DiffRequest {
    pub tensors: bool,
    pub content: bool,
    pub paths: Vec<String>,
    pub base: std::path::PathBuf,
}

/// What `diff` compares besides the file list.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// Tensors inside checkpoint files.
    pub tensors: bool,
    /// The content of changed files (`ops::filediff`).
    pub content: bool,
    /// Only these paths (relative to the snapshot root, `.`/`..` folded,
    /// globs allowed: `ops::pathspec`); empty for every file.
    pub paths: Vec<PathSpec>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TensorDiff {
    pub added: Vec<Tensor>,
    pub removed: Vec<Tensor>,
    pub changed: Vec<Tensor>,
    pub unchanged: usize,
}

fn kind_name(e: &Entry) -> &'static str {
    match e.kind {
        EntryKind::File { .. } => "file",
        EntryKind::Dir { .. } => "dir",
        EntryKind::Symlink { .. } => "symlink",
    }
}

fn size_of(e: &Entry) -> Option<u64> {
    match &e.kind {
        EntryKind::File { size, .. } => Some(*size),
        _ => None,
    }
}

/// `old` and `new`: a snapshot's short id (for errors) and its root tree.
/// A path in `opts.paths` that names nothing in either snapshot is an error
/// (`PathNotInSnapshot`, with the nearest paths of `new`).
pub fn diff(
    index: &Index,
    packs: &PackFiles,
    old: (&str, &TreeId),
    new: (&str, &TreeId),
    opts: &DiffOptions,
) -> Result<Diff> {
    let tensors = opts.tensors;
    let wa = walk::walk_all(index, packs, old.1, &format!("snapshot {}", old.0))?;
    let wb = walk::walk_all(index, packs, new.1, &format!("snapshot {}", new.0))?;
    for spec in &opts.paths {
        if !wa.iter().chain(&wb).any(|w| spec.covers(&w.path)) {
            return Err(pathspec::not_found(spec, new.0, &wb));
        }
    }
    let wanted =
        |p: &std::path::Path| opts.paths.is_empty() || opts.paths.iter().any(|s| s.covers(p));
    let map = |w: Vec<walk::WalkEntry>| -> BTreeMap<String, Entry> {
        w.into_iter()
            .filter(|w| wanted(&w.path))
            .map(|w| (w.path.display().to_string(), w.entry))
            .collect()
    };
    let (a, b) = (map(wa), map(wb));
    let mut out = Diff::default();
    let change = |path: &str, e: &Entry, other: Option<&Entry>| FileChange {
        path: path.to_string(),
        kind: kind_name(e),
        old_size: other.and_then(size_of),
        new_size: size_of(e),
        what: Vec::new(),
        tensors: None,
        content: None,
    };
    for (path, e) in &a {
        if !b.contains_key(path) {
            out.removed.push(FileChange {
                old_size: size_of(e),
                new_size: None,
                ..change(path, e, None)
            });
        }
    }
    for (path, e) in &b {
        let Some(prev) = a.get(path) else {
            out.added.push(change(path, e, None));
            continue;
        };
        let mut what = Vec::new();
        match (&prev.kind, &e.kind) {
            (EntryKind::File { chunks: x, .. }, EntryKind::File { chunks: y, .. }) if x != y => {
                what.push("content")
            }
            (EntryKind::Symlink { target: x }, EntryKind::Symlink { target: y }) if x != y => {
                what.push("target")
            }
            (x, y) if std::mem::discriminant(x) != std::mem::discriminant(y) => what.push("kind"),
            _ => {}
        }
        if prev.mode != e.mode {
            what.push("mode");
        }
        if what.is_empty() {
            continue;
        }
        let mut c = change(path, e, Some(prev));
        if let (
            true,
            EntryKind::File {
                chunks: x,
                size: sx,
            },
            EntryKind::File {
                chunks: y,
                size: sy,
            },
        ) = (what.contains(&"content"), &prev.kind, &e.kind)
        {
            if tensors {
                c.tensors = tensor_diff(index, packs, x, *sx, y, *sy)?;
            }
            if opts.content {
                c.content = Some(content_diff(index, packs, path, (x, *sx), (y, *sy))?);
            }
        }
        c.what = what;
        out.changed.push(c);
    }
    Ok(out)
}

/// What changed inside one file: its whole bytes when both versions are
/// within `filediff::MAX_TEXT_BYTES`, else only their first bytes.
fn content_diff(
    index: &Index,
    packs: &PackFiles,
    path: &str,
    (old, old_size): (&[ChunkRef], u64),
    (new, new_size): (&[ChunkRef], u64),
) -> Result<ContentDiff> {
    if old_size.max(new_size) > filediff::MAX_TEXT_BYTES {
        let head = |c: &[ChunkRef], size: u64| {
            read_range(index, packs, c, 0, size.min(filediff::SNIFF_BYTES))
        };
        return Ok(filediff::too_large(
            &head(old, old_size)?,
            &head(new, new_size)?,
            old_size,
            new_size,
        ));
    }
    let a = read_range(index, packs, old, 0, old_size)?;
    let b = read_range(index, packs, new, 0, new_size)?;
    Ok(filediff::content(path, &a, &b))
}

/// A file's bytes `[start, end)`, read from its chunks.
fn read_range(
    index: &Index,
    packs: &PackFiles,
    chunks: &[ChunkRef],
    start: u64,
    end: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity((end - start) as usize);
    let mut pos = 0u64;
    for c in chunks {
        let (cs, ce) = (pos, pos + c.len as u64);
        pos = ce;
        if ce <= start || cs >= end {
            continue;
        }
        let data = read_chunk(index, packs, &c.id)?;
        let (from, to) = (start.max(cs) - cs, end.min(ce) - cs);
        out.extend_from_slice(&data[from as usize..to as usize]);
    }
    Ok(out)
}

/// The chunk slices `(chunk id, offset in chunk, length)` covering a range.
fn slices(chunks: &[ChunkRef], start: u64, end: u64) -> Vec<(crate::id::ChunkId, u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for c in chunks {
        let (cs, ce) = (pos, pos + c.len as u64);
        pos = ce;
        if ce > start && cs < end {
            out.push((c.id, start.max(cs) - cs, end.min(ce) - start.max(cs)));
        }
    }
    out
}

fn tensor_diff(
    index: &Index,
    packs: &PackFiles,
    old: &[ChunkRef],
    old_size: u64,
    new: &[ChunkRef],
    new_size: u64,
) -> Result<Option<TensorDiff>> {
    let (Some(a), Some(b)) = (
        checkpoint::tensors(index, packs, old, old_size, true)?,
        checkpoint::tensors(index, packs, new, new_size, true)?,
    ) else {
        return Ok(None);
    };
    let a: HashMap<&str, &Tensor> = a.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut d = TensorDiff::default();
    for t in &b {
        let Some(prev) = a.get(t.name.as_str()) else {
            d.added.push(t.clone());
            continue;
        };
        let same_meta = prev.dtype == t.dtype && prev.shape == t.shape && prev.bytes == t.bytes;
        let same = same_meta
            && prev.len == t.len
            && (slices(old, prev.offset, prev.offset + prev.len)
                == slices(new, t.offset, t.offset + t.len)
                || blake3::hash(&read_range(
                    index,
                    packs,
                    old,
                    prev.offset,
                    prev.offset + prev.len,
                )?) == blake3::hash(&read_range(
                    index,
                    packs,
                    new,
                    t.offset,
                    t.offset + t.len,
                )?));
        if same {
            d.unchanged += 1;
        } else {
            d.changed.push(t.clone());
        }
    }
    let names: std::collections::HashSet<&str> = b.iter().map(|t| t.name.as_str()).collect();
    d.removed = a
        .values()
        .filter(|t| !names.contains(t.name.as_str()))
        .map(|t| (*t).clone())
        .collect();
    d.removed.sort_by(|x, y| x.name.cmp(&y.name));
    Ok(Some(d))
}
