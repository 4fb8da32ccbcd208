//! Reading single blobs back: locate through the index, read the range from
//! its pack, decode, and verify the id. Every byte that leaves the repository
//! passes through `verify_chunk` or `load_tree`.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::codec;
use crate::error::{Error, IoContext, Result};
use crate::format::pack::{Codec, PackKind};
use crate::format::tree::Tree;
use crate::id::{ChunkId, PackId, TreeId};
use crate::store::index::{BlobLoc, Index};
use crate::store::{packs, Layout};

/// Open pack files, shared between threads (reads are positional).
pub struct PackFiles {
    layout: Layout,
    open: Mutex<HashMap<PackId, Arc<File>>>,
}

impl PackFiles {
    pub fn new(layout: &Layout) -> Self {
        PackFiles {
            layout: layout.clone(),
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn path(&self, id: &PackId) -> PathBuf {
        self.layout.pack(id)
    }

    pub fn get(&self, id: &PackId) -> Result<Arc<File>> {
        let mut open = self.open.lock().expect("pack file map poisoned");
        if let Some(f) = open.get(id) {
            return Ok(f.clone());
        }
        let path = self.layout.pack(id);
        let f = Arc::new(File::open(&path).ctx("open pack", &path)?);
        open.insert(*id, f.clone());
        Ok(f)
    }

    /// Reads one blob's stored bytes.
    pub fn read_stored(&self, loc: &BlobLoc) -> Result<Vec<u8>> {
        let file = self.get(&loc.pack)?;
        packs::read_at(
            &file,
            &self.path(&loc.pack),
            loc.offset,
            loc.stored_len as usize,
        )
    }

    /// Reads and decodes one blob that is not a float delta, without
    /// verifying its id.
    pub fn read_decoded(&self, loc: &BlobLoc) -> Result<Vec<u8>> {
        codec::decode(loc.codec, &self.read_stored(loc)?, loc.raw_len as usize)
    }
}

/// Reads and verifies the base of a float delta. A base is never a delta
/// itself, so decoding a chunk reads at most two blobs.
pub fn read_base(index: &Index, packs: &PackFiles, base: &ChunkId) -> Result<Vec<u8>> {
    let what = || format!("chunk {} (the base of a float delta)", base.short());
    let loc = index
        .blob(base, PackKind::Data)?
        .ok_or_else(|| Error::corrupt(what(), "missing from every pack"))?;
    if loc.base.is_some() {
        return Err(Error::corrupt(what(), "is itself a float delta"));
    }
    let data = packs
        .read_decoded(&loc)
        .map_err(|e| Error::corrupt(what(), e.to_string()))?;
    verify_chunk(base, &data).map_err(|e| Error::corrupt(what(), e.to_string()))?;
    Ok(data)
}

/// Decodes a blob's stored bytes, reading its base first if it is a float
/// delta. The caller verifies the result against the blob's id.
pub fn decode_stored(
    index: &Index,
    packs: &PackFiles,
    codec: Codec,
    stored: &[u8],
    raw_len: u32,
    base: Option<&ChunkId>,
) -> Result<Vec<u8>> {
    match base {
        Some(b) if codec == Codec::FloatDelta => {
            codec::decode_delta(stored, raw_len as usize, &read_base(index, packs, b)?)
        }
        _ => codec::decode(codec, stored, raw_len as usize),
    }
}

/// Checks that `data` hashes to `id`.
pub fn verify_chunk(id: &ChunkId, data: &[u8]) -> Result<()> {
    if ChunkId::of(data) == *id {
        Ok(())
    } else {
        Err(Error::corrupt(
            format!("chunk {}", id.short()),
            "content does not match its BLAKE3 id",
        ))
    }
}

/// Reads a chunk through the index and verifies it.
pub fn read_chunk(index: &Index, packs: &PackFiles, id: &ChunkId) -> Result<Vec<u8>> {
    let loc = index.blob(id, PackKind::Data)?.ok_or_else(|| {
        Error::corrupt(format!("chunk {}", id.short()), "missing from every pack")
    })?;
    let data = packs
        .read_stored(&loc)
        .and_then(|stored| {
            decode_stored(
                index,
                packs,
                loc.codec,
                &stored,
                loc.raw_len,
                loc.base.as_ref(),
            )
        })
        .map_err(|e| Error::corrupt(format!("chunk {}", id.short()), e.to_string()))?;
    verify_chunk(id, &data)?;
    Ok(data)
}

/// Reads, verifies and decodes a tree.
pub fn load_tree(index: &Index, packs: &PackFiles, id: &TreeId) -> Result<Tree> {
    let key = ChunkId(id.0);
    let loc = index
        .blob(&key, PackKind::Tree)?
        .ok_or_else(|| Error::corrupt(format!("tree {}", id.short()), "missing from every pack"))?;
    let bytes = packs
        .read_decoded(&loc)
        .map_err(|e| Error::corrupt(format!("tree {}", id.short()), e.to_string()))?;
    if TreeId::of(&bytes) != *id {
        return Err(Error::corrupt(
            format!("tree {}", id.short()),
            "content does not match its id",
        ));
    }
    Tree::decode(&bytes)
}
