//! Differences between two snapshots: files added, removed and changed, and
//! with `tensors`, for checkpoint files (safetensors, PyTorch zips, npz),
//! which tensors were added, removed or changed. Tensors are read from the
//! stored chunks (the safetensors header; a zip's central directory,
//! `data.pkl`, local headers and npy headers; and only those tensors whose
//! chunks differ), never by restoring the files.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::ckpt::Source;
use crate::error::{Error, Result};
use crate::format::tree::{ChunkRef, Entry, EntryKind};
use crate::id::TreeId;
use crate::ops::blobs::{read_chunk, PackFiles};
use crate::ops::walk;
use crate::store::index::Index;

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
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TensorDiff {
    pub added: Vec<TensorInfo>,
    pub removed: Vec<TensorInfo>,
    pub changed: Vec<TensorInfo>,
    pub unchanged: usize,
}

/// A tensor as a checkpoint header describes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub bytes: u64,
    /// The file range holding the tensor's bytes (for a strided PyTorch
    /// view, all it spans; for a deflated npz array, its compressed entry).
    #[serde(skip)]
    pub offset: u64,
    #[serde(skip)]
    pub len: u64,
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

pub fn diff(
    index: &Index,
    packs: &PackFiles,
    old: &TreeId,
    new: &TreeId,
    tensors: bool,
) -> Result<Diff> {
    let map = |root: &TreeId| -> Result<BTreeMap<String, Entry>> {
        Ok(walk::walk_all(index, packs, root)?
            .into_iter()
            .map(|w| (w.path.display().to_string(), w.entry))
            .collect())
    };
    let (a, b) = (map(old)?, map(new)?);
    let mut out = Diff::default();
    let change = |path: &str, e: &Entry, other: Option<&Entry>| FileChange {
        path: path.to_string(),
        kind: kind_name(e),
        old_size: other.and_then(size_of),
        new_size: size_of(e),
        what: Vec::new(),
        tensors: None,
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
        if tensors && what.contains(&"content") {
            if let (
                EntryKind::File {
                    chunks: x,
                    size: sx,
                },
                EntryKind::File {
                    chunks: y,
                    size: sy,
                },
            ) = (&prev.kind, &e.kind)
            {
                c.tensors = tensor_diff(index, packs, x, *sx, y, *sy)?;
            }
        }
        c.what = what;
        out.changed.push(c);
    }
    Ok(out)
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

/// The tensors of a stored safetensors file, from its header, or None.
pub fn safetensors_tensors(
    index: &Index,
    packs: &PackFiles,
    chunks: &[ChunkRef],
    size: u64,
) -> Result<Option<Vec<TensorInfo>>> {
    if size < 8 {
        return Ok(None);
    }
    let n = u64::from_le_bytes(
        read_range(index, packs, chunks, 0, 8)?
            .try_into()
            .expect("8 bytes"),
    );
    if n == 0 || n > crate::ckpt::MAX_HEADER || 8 + n > size {
        return Ok(None);
    }
    let header = read_range(index, packs, chunks, 8, 8 + n)?;
    let Ok(json) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&header)
    else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (name, t) in &json {
        if name == "__metadata__" {
            continue;
        }
        let offs: Option<(u64, u64)> = t
            .get("data_offsets")
            .and_then(|o| Some((o.get(0)?.as_u64()?, o.get(1)?.as_u64()?)));
        let Some((b, e)) = offs.filter(|(b, e)| b <= e && 8 + n + e <= size) else {
            return Ok(None);
        };
        out.push(TensorInfo {
            name: name.clone(),
            dtype: t
                .get("dtype")
                .and_then(|d| d.as_str())
                .unwrap_or("?")
                .to_string(),
            shape: t
                .get("shape")
                .and_then(|s| s.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
                .unwrap_or_default(),
            bytes: e - b,
            offset: 8 + n + b,
            len: e - b,
        });
    }
    Ok(Some(out))
}

/// The tensors of a stored checkpoint (safetensors, a PyTorch zip or an
/// npz, told apart by content), or None. With `locate`, each tensor's file
/// range is filled in (`offset`, `len`); without, a zip is read less (its
/// storages' local headers are skipped) and the ranges are 0.
pub fn checkpoint_tensors(
    index: &Index,
    packs: &PackFiles,
    chunks: &[ChunkRef],
    size: u64,
    locate: bool,
) -> Result<Option<Vec<TensorInfo>>> {
    let file = StoredFile::new(index, packs, chunks);
    let mut magic = [0u8; 4];
    let zip = size >= 4 && file.read_at(&mut magic, 0).is_ok() && magic == *b"PK\x03\x04";
    if let Some(e) = file.error.take() {
        return Err(e);
    }
    if zip {
        let found = crate::ckpt::zip_tensors(&file, size, locate);
        if let Some(e) = file.error.into_inner() {
            return Err(e);
        }
        return Ok(found.map(|ts| {
            ts.into_iter()
                .map(|t| TensorInfo {
                    name: t.name,
                    dtype: t.dtype,
                    shape: t.shape,
                    bytes: t.bytes,
                    offset: t.start,
                    len: t.len,
                })
                .collect()
        }));
    }
    safetensors_tensors(index, packs, chunks, size)
}

/// A stored file readable at any offset, chunk by chunk: parsers read only
/// the chunks they touch (the last few decoded are kept). A chunk that cannot
/// be read fails the read and is kept in `error`, so that a damaged
/// repository is reported, not taken for a malformed checkpoint.
struct StoredFile<'a> {
    index: &'a Index,
    packs: &'a PackFiles,
    chunks: &'a [ChunkRef],
    /// Offset of each chunk in the file.
    starts: Vec<u64>,
    cache: RefCell<Vec<(usize, Rc<Vec<u8>>)>>,
    error: RefCell<Option<Error>>,
}

impl<'a> StoredFile<'a> {
    const CACHED: usize = 4;

    fn new(index: &'a Index, packs: &'a PackFiles, chunks: &'a [ChunkRef]) -> Self {
        let starts = chunks
            .iter()
            .scan(0u64, |pos, c| {
                let s = *pos;
                *pos += c.len as u64;
                Some(s)
            })
            .collect();
        StoredFile {
            index,
            packs,
            chunks,
            starts,
            cache: RefCell::new(Vec::new()),
            error: RefCell::new(None),
        }
    }

    fn chunk(&self, i: usize) -> std::io::Result<Rc<Vec<u8>>> {
        let mut cache = self.cache.borrow_mut();
        if let Some((_, data)) = cache.iter().find(|(j, _)| *j == i) {
            return Ok(data.clone());
        }
        match read_chunk(self.index, self.packs, &self.chunks[i].id) {
            Ok(data) => {
                if cache.len() == Self::CACHED {
                    cache.remove(0);
                }
                let data = Rc::new(data);
                cache.push((i, data.clone()));
                Ok(data)
            }
            Err(e) => {
                let msg = e.to_string();
                self.error.borrow_mut().get_or_insert(e);
                Err(std::io::Error::other(msg))
            }
        }
    }
}

impl Source for StoredFile<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let i = match self.starts.partition_point(|&s| s <= offset) {
            0 => return Ok(0),
            n => n - 1,
        };
        let data = self.chunk(i)?;
        let within = (offset - self.starts[i]) as usize;
        let n = buf.len().min(data.len().saturating_sub(within));
        buf[..n].copy_from_slice(&data[within..within + n]);
        Ok(n)
    }
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
        checkpoint_tensors(index, packs, old, old_size, true)?,
        checkpoint_tensors(index, packs, new, new_size, true)?,
    ) else {
        return Ok(None);
    };
    let a: HashMap<&str, &TensorInfo> = a.iter().map(|t| (t.name.as_str(), t)).collect();
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
