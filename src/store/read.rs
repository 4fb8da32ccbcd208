//! Reading blobs back: locate through the index, read the range from its
//! pack, decode, and verify the id. Every byte that leaves the repository
//! passes through `decode_verified`, the one place that decodes a stored
//! blob and checks it against its id (a chunk's BLAKE3 id, a tree's id).
//!
//! Readers never take the lock, so a prune may repack a blob while they run
//! and, after its grace period or with `--delete-now`, delete the pack they
//! located it in. A read that finds its pack gone (`is_gone`) therefore
//! looks the blob up in the index again (prune's transaction moved it to its
//! new pack) and reads it there; only if that fails too is it damage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::codec;
use crate::error::{Error, Result};
use crate::format::pack::{Codec, PackEntry, PackKind};
use crate::format::tree::Tree;
use crate::id::{ChunkId, PackId, TreeId};
use crate::store::backend::{self, Kind, Object};
use crate::store::index::{BlobLoc, Index};
use crate::store::{packs, Layout};

/// Open packs, shared between threads (reads are positional), for the
/// length of one use case.
pub struct PackFiles {
    layout: Layout,
    open: Mutex<HashMap<PackId, Arc<dyn Object>>>,
    /// Blobs of packs marked for deletion, read on the first blob the index
    /// does not have (see `in_marked`).
    marked: Mutex<Option<HashMap<(PackKind, ChunkId), BlobLoc>>>,
}

impl PackFiles {
    pub fn new(layout: &Layout) -> Self {
        PackFiles {
            layout: layout.clone(),
            open: Mutex::new(HashMap::new()),
            marked: Mutex::new(None),
        }
    }

    /// Where blob `id` of `kind` is in a pack marked for deletion: still on
    /// disk during its grace period, but no longer in the index. A reader
    /// that listed a snapshot before a forget and a prune finds its blobs
    /// there. The marked packs' trailers are read once per `PackFiles`;
    /// one that cannot be read is skipped.
    pub fn in_marked(&self, id: &ChunkId, kind: PackKind) -> Result<Option<BlobLoc>> {
        let mut marked = self.marked.lock().expect("marked pack map poisoned");
        if marked.is_none() {
            let mut map = HashMap::new();
            for pack in packs::list_marked(&self.layout)? {
                let Ok((kind, _, entries)) = packs::read_trailer(&self.layout, &pack) else {
                    continue;
                };
                for e in entries {
                    map.entry((kind, e.id)).or_insert(BlobLoc {
                        pack,
                        codec: e.codec,
                        offset: e.offset,
                        stored_len: e.stored_len,
                        raw_len: e.raw_len,
                        base: e.base,
                    });
                }
            }
            *marked = Some(map);
        }
        Ok(marked.as_ref().and_then(|m| m.get(&(kind, *id))).copied())
    }

    fn get(&self, id: &PackId) -> Result<Arc<dyn Object>> {
        let mut open = self.open.lock().expect("pack file map poisoned");
        if let Some(f) = open.get(id) {
            return Ok(f.clone());
        }
        let f = self.layout.backend().open(Kind::Pack, &id.to_hex())?;
        open.insert(*id, f.clone());
        Ok(f)
    }

    /// Reads `len` bytes at `offset` of pack `id`: all of them, or an error
    /// (`Object::read_at`).
    pub fn read_range(&self, id: &PackId, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.get(id)?.read_at(offset, len)
    }

    /// The trailer of pack `id` as its file holds it: kind, size, entries.
    pub fn read_trailer(&self, id: &PackId) -> Result<(PackKind, u64, Vec<PackEntry>)> {
        packs::read_trailer(&self.layout, id)
    }

    /// Reads one blob's stored bytes.
    pub fn read_stored(&self, loc: &BlobLoc) -> Result<Vec<u8>> {
        self.read_range(&loc.pack, loc.offset, loc.stored_len as usize)
    }

    /// Reads, decodes and verifies blob `id` of `kind`, which is not a float
    /// delta.
    pub fn read_verified(&self, loc: &BlobLoc, kind: PackKind, id: &ChunkId) -> Result<Vec<u8>> {
        let stored = self.read_stored(loc)?;
        decode_verified(kind, id, loc.codec, &stored, loc.raw_len, None)
    }
}

/// How errors name a blob: `chunk ID` or `tree ID`.
fn blob_name(kind: PackKind, id: &ChunkId) -> String {
    match kind {
        PackKind::Data => format!("chunk {}", id.short()),
        PackKind::Tree => format!("tree {}", TreeId(id.0).short()),
    }
}

/// Checks that `data` is blob `id` of `kind`: a chunk hashes to its
/// `ChunkId`, a tree record to its `TreeId`.
pub fn verify(kind: PackKind, id: &ChunkId, data: &[u8]) -> Result<()> {
    let (ok, detail) = match kind {
        PackKind::Data => (
            ChunkId::of(data) == *id,
            "content does not match its BLAKE3 id",
        ),
        PackKind::Tree => (TreeId::of(data).0 == id.0, "content does not match its id"),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::corrupt(blob_name(kind, id), detail))
    }
}

/// Decodes the stored bytes of blob `id` of `kind` (a float delta against
/// `base`, its base's decoded bytes) and verifies the result. Errors name
/// the blob. A declared length over what a blob of `kind` may hold is
/// refused before decoding allocates it.
pub fn decode_verified(
    kind: PackKind,
    id: &ChunkId,
    codec: Codec,
    stored: &[u8],
    raw_len: u32,
    base: Option<&[u8]>,
) -> Result<Vec<u8>> {
    if raw_len as usize > kind.max_raw_len() {
        return Err(Error::corrupt(
            blob_name(kind, id),
            format!(
                "declares {raw_len} plain bytes, more than the {} the format allows",
                kind.max_raw_len()
            ),
        ));
    }
    let decoded = match base {
        Some(b) if codec == Codec::FloatDelta => codec::decode_delta(stored, raw_len as usize, b),
        _ => codec::decode(codec, stored, raw_len as usize),
    }
    .map_err(|e| Error::corrupt(blob_name(kind, id), e.to_string()))?;
    verify(kind, id, &decoded)?;
    Ok(decoded)
}

/// True if `e` says a pack (or another object) is not there: deleted by a
/// prune since the reader located a blob in it.
pub fn is_gone(e: &Error) -> bool {
    backend::is_not_found(e)
}

/// Reads blob `id` of `kind` wherever the index says it is now, with `read`
/// (stored bytes and location in, decoded bytes out). If its pack is gone
/// by the time it is read, the index is asked once more: a prune that
/// deleted the pack had moved the blob first. `what` names the blob.
fn read_located(
    index: &Index,
    packs: &PackFiles,
    id: &ChunkId,
    kind: PackKind,
    what: &dyn Fn() -> String,
    mut read: impl FnMut(&BlobLoc) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let mut gone: Option<PackId> = None;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let loc = match index.blob(id, kind)? {
            Some(loc) => Some(loc),
            None => packs.in_marked(id, kind)?,
        };
        let missing = |why: String| Err(Error::corrupt(what(), why));
        let loc = match (loc, gone) {
            (None, None) => return missing("missing from every pack".into()),
            (Some(loc), Some(p)) if loc.pack != p && attempts <= 3 => loc,
            (Some(_) | None, Some(p)) => {
                return missing(format!(
                    "missing from every pack (its pack {} was deleted while this command ran)",
                    p.short()
                ))
            }
            (Some(loc), None) => loc,
        };
        match read(&loc) {
            Err(e) if is_gone(&e) => gone = Some(loc.pack),
            other => return other,
        }
    }
}

/// Locations of data chunks `ids` and of the float-delta bases they need
/// (`Index::blobs_with_bases`), and of those the index no longer has but a
/// pack marked for deletion still holds (`PackFiles::in_marked`): a restore
/// of a snapshot forgotten and pruned since it was resolved still finds
/// them during the grace period.
pub fn locate_chunks(
    index: &Index,
    packs: &PackFiles,
    ids: &[ChunkId],
) -> Result<HashMap<ChunkId, BlobLoc>> {
    let mut locs = index.blobs_with_bases(ids)?;
    let mut wanted: Vec<ChunkId> = ids
        .iter()
        .filter(|id| !locs.contains_key(id))
        .copied()
        .collect();
    while let Some(id) = wanted.pop() {
        if let Some(loc) = packs.in_marked(&id, PackKind::Data)? {
            if let Some(base) = loc.base.filter(|b| !locs.contains_key(b)) {
                match index.blob(&base, PackKind::Data)? {
                    Some(b) => {
                        locs.insert(base, b);
                    }
                    None => wanted.push(base),
                }
            }
            locs.insert(id, loc);
        }
    }
    Ok(locs)
}

/// Reads and verifies the base of a float delta. A base is never a delta
/// itself, so decoding a chunk reads at most two blobs.
pub fn read_base(index: &Index, packs: &PackFiles, base: &ChunkId) -> Result<Vec<u8>> {
    let what = || format!("chunk {} (the base of a float delta)", base.short());
    read_located(index, packs, base, PackKind::Data, &what, |loc| {
        if loc.base.is_some() {
            return Err(Error::corrupt(what(), "is itself a float delta"));
        }
        match packs.read_verified(loc, PackKind::Data, base) {
            Err(e) if is_gone(&e) => Err(e),
            other => other.map_err(|e| Error::corrupt(what(), e.to_string())),
        }
    })
}

/// Reads stored blob `id` of `kind` from `entry`'s place in pack `pack`,
/// reading its base first if it is a float delta, and verifies it. Returns
/// the stored bytes (to copy them unchanged) and the decoded ones.
pub fn read_entry(
    index: &Index,
    packs: &PackFiles,
    pack: &PackId,
    kind: PackKind,
    entry: &PackEntry,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let stored = packs.read_range(pack, entry.offset, entry.stored_len as usize)?;
    let base = entry
        .base
        .map(|b| read_base(index, packs, &b))
        .transpose()?;
    let plain = decode_verified(
        kind,
        &entry.id,
        entry.codec,
        &stored,
        entry.raw_len,
        base.as_deref(),
    )?;
    Ok((stored, plain))
}

/// Reads a chunk through the index and verifies it (looking it up again if
/// its pack is gone: see the module).
pub fn read_chunk(index: &Index, packs: &PackFiles, id: &ChunkId) -> Result<Vec<u8>> {
    let what = || format!("chunk {}", id.short());
    read_located(index, packs, id, PackKind::Data, &what, |loc| {
        let stored = match packs.read_stored(loc) {
            Err(e) if is_gone(&e) => return Err(e),
            other => other.map_err(|e| Error::corrupt(what(), e.to_string()))?,
        };
        let base = loc
            .base
            .map(|b| read_base(index, packs, &b))
            .transpose()
            .map_err(|e| Error::corrupt(what(), e.to_string()))?;
        decode_verified(
            PackKind::Data,
            id,
            loc.codec,
            &stored,
            loc.raw_len,
            base.as_deref(),
        )
    })
}

/// Reads, verifies and decodes a tree (looking it up again if its pack is
/// gone: see the module).
pub fn load_tree(index: &Index, packs: &PackFiles, id: &TreeId) -> Result<Tree> {
    let key = ChunkId(id.0);
    let what = || format!("tree {}", id.short());
    let bytes = read_located(index, packs, &key, PackKind::Tree, &what, |loc| {
        let stored = match packs.read_stored(loc) {
            Err(e) if is_gone(&e) => return Err(e),
            other => other.map_err(|e| Error::corrupt(what(), e.to_string()))?,
        };
        decode_verified(PackKind::Tree, &key, loc.codec, &stored, loc.raw_len, None)
    })?;
    Tree::decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob is checked against the id of its kind: chunk ids and tree ids
    /// of the same bytes differ, and neither passes for the other.
    #[test]
    fn decode_verified_checks_the_id_of_the_blobs_kind() {
        let data = b"a tree record or a chunk, the bytes alone do not say".repeat(20);
        let (codec, stored) = codec::encode(&data, 3);
        let raw_len = data.len() as u32;
        let chunk = ChunkId::of(&data);
        let tree = ChunkId(TreeId::of(&data).0);
        let check = |kind, id: &ChunkId| decode_verified(kind, id, codec, &stored, raw_len, None);
        assert_eq!(check(PackKind::Data, &chunk).unwrap(), data);
        assert_eq!(check(PackKind::Tree, &tree).unwrap(), data);
        let err = check(PackKind::Tree, &chunk).unwrap_err().to_string();
        assert!(err.contains(&format!("tree {}", chunk.short())), "{err}");
        let err = check(PackKind::Data, &tree).unwrap_err().to_string();
        assert!(err.contains("BLAKE3"), "{err}");
    }

    /// Bytes that do not decode are an error naming the blob, never data.
    #[test]
    fn undecodable_bytes_name_the_blob() {
        let id = ChunkId::of(b"x");
        let err = decode_verified(PackKind::Data, &id, Codec::Zstd, b"not zstd", 1, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("chunk {}", id.short())), "{err}");
    }
}
