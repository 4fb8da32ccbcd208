//! One snapshot in detail, for `snap ui`: how each file is stored (its
//! chunks' codecs, plain and stored bytes, from the index) and the tensors of
//! one checkpoint file (`ops::checkpoint`, read from the stored chunks).
//! Read-only: nothing here writes.

use std::collections::BTreeMap;

use crate::ckpt::Tensor;
use crate::error::{Error, Result};
use crate::format::pack::PackKind;
use crate::format::tree::EntryKind;
use crate::id::{ChunkId, TreeId};
use crate::ops::{checkpoint, walk};
use crate::store::index::Index;
use crate::store::read::PackFiles;

/// How one file of a snapshot is stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileStorage {
    pub path: String,
    /// Per codec (`Codec::name`), the file's chunks stored with it; a chunk
    /// the file holds twice counts twice.
    pub codecs: Vec<CodecUse>,
    /// Chunks the index does not locate (damaged or pruned away): `snap
    /// check` says more.
    pub missing_chunks: usize,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CodecUse {
    pub codec: &'static str,
    pub chunks: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// Every file below `root`, in walk order, with its codecs. One batched
/// index lookup for all the snapshot's chunks (`Index::blobs`).
pub fn file_storage(
    index: &Index,
    packs: &PackFiles,
    root: &TreeId,
    label: &str,
) -> Result<Vec<FileStorage>> {
    let files: Vec<(String, Vec<ChunkId>)> = walk::walk_all(index, packs, root, label)?
        .into_iter()
        .filter_map(|w| match w.entry.kind {
            EntryKind::File { chunks, .. } => Some((
                w.path.display().to_string(),
                chunks.iter().map(|c| c.id).collect(),
            )),
            _ => None,
        })
        .collect();
    let mut ids: Vec<ChunkId> = files.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    let locs = index.blobs(&ids, PackKind::Data)?;
    Ok(files
        .into_iter()
        .map(|(path, chunks)| {
            let mut by: BTreeMap<&'static str, CodecUse> = BTreeMap::new();
            let mut missing = 0;
            for id in &chunks {
                let Some(loc) = locs.get(id) else {
                    missing += 1;
                    continue;
                };
                let u = by.entry(loc.codec.name()).or_default();
                u.codec = loc.codec.name();
                u.chunks += 1;
                u.raw_bytes += u64::from(loc.raw_len);
                u.stored_bytes += u64::from(loc.stored_len);
            }
            FileStorage {
                path,
                codecs: by.into_values().collect(),
                missing_chunks: missing,
            }
        })
        .collect())
}

/// The tensors of the file at `path` (as `snap show` lists it) below
/// `root`, or None when it is not a checkpoint `ckpt` can read. A path that
/// is not a file of the snapshot is `Error::PathNotInSnapshot`.
pub fn tensors(
    index: &Index,
    packs: &PackFiles,
    root: &TreeId,
    label: &str,
    path: &str,
) -> Result<Option<Vec<Tensor>>> {
    for w in walk::walk_all(index, packs, root, label)? {
        if w.path.display().to_string() != path {
            continue;
        }
        if let EntryKind::File { size, chunks } = &w.entry.kind {
            return checkpoint::tensors(index, packs, chunks, *size, false);
        }
        break;
    }
    Err(Error::PathNotInSnapshot {
        path: path.to_string(),
        snapshot: label.to_string(),
        hint: String::new(),
    })
}
