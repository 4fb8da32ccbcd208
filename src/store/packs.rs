//! Writing, reading, marking and deleting pack files.
//!
//! A `PackWriter` streams blobs into a backend upload (a temporary file
//! under `tmp/` for the local directory), hashing as it goes; `finish`
//! appends the trailer and makes the pack durable and visible as
//! `packs/XX/ID.pack`. Only then may anything refer to its blobs.
//!
//! Deletion has two phases (`ops::prune`): a pack is first *marked*
//! (`packs/XX/ID.doomed`, `format::mark`) and dropped from the index, and
//! only a later prune, after the grace period, deletes it and then its
//! mark. The index sync never takes a marked pack back in.

use crate::error::{Error, Result};
use crate::format::mark::{self, PackMark};
use crate::format::pack::{self, Codec, PackEntry, PackKind, FOOTER_LEN, HEADER_LEN};
use crate::id::{ChunkId, PackId};
use std::path::Path;

use crate::store::backend::{local, Kind, Object, Upload};
use crate::store::Layout;

/// A pack that is durable and in place.
#[derive(Clone, Debug)]
pub struct FinishedPack {
    pub id: PackId,
    pub kind: PackKind,
    pub size: u64,
    pub entries: Vec<PackEntry>,
}

pub struct PackWriter {
    kind: PackKind,
    out: Box<dyn Upload>,
    hasher: blake3::Hasher,
    offset: u64,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    pub fn create(layout: &Layout, kind: PackKind) -> Result<Self> {
        let mut w = PackWriter {
            kind,
            out: layout.backend().upload(Kind::Pack)?,
            hasher: PackId::hasher(),
            offset: 0,
            entries: Vec::new(),
        };
        w.write(&pack::encode_header(kind))?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write(bytes)?;
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Appends one encoded blob (`base`: the chunk a float delta is coded
    /// against).
    pub fn add(
        &mut self,
        id: ChunkId,
        codec: Codec,
        stored: &[u8],
        raw_len: u32,
        base: Option<ChunkId>,
    ) -> Result<()> {
        let entry = PackEntry {
            id,
            codec,
            offset: self.offset,
            stored_len: stored.len() as u32,
            raw_len,
            base,
        };
        self.write(stored)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the trailer and makes the pack durable and visible in the
    /// backend of `layout`, the one it was created in (the upload already
    /// knows it), and removes a deletion mark of the same pack.
    pub fn finish(mut self, layout: &Layout) -> Result<FinishedPack> {
        let trailer = pack::encode_trailer(&self.entries);
        self.write(&trailer)?;
        let id = PackId::from_hasher(&self.hasher);
        self.out.finish(&id.to_hex())?;
        // Packs are named by their content: this may be a pack a prune
        // marked, written again. It is live now, so the mark goes before
        // anything refers to its blobs.
        if layout.backend().exists(Kind::Mark, &id.to_hex()) {
            unmark(layout, &[&id])?;
        }
        Ok(FinishedPack {
            id,
            kind: self.kind,
            size: self.offset,
            entries: self.entries,
        })
    }

    /// Abandons the pack, removing its temporary.
    pub fn abandon(self) {
        self.out.abandon();
    }
}

/// Reads the trailer of pack `id`: its kind, size and entries.
pub fn read_trailer(layout: &Layout, id: &PackId) -> Result<(PackKind, u64, Vec<PackEntry>)> {
    let object = layout.backend().open(Kind::Pack, &id.to_hex())?;
    read_object_trailer(&*object, || locate(layout, id).display().to_string())
}

/// Where pack `id` is kept, for messages.
pub fn locate(layout: &Layout, id: &PackId) -> std::path::PathBuf {
    layout.backend().locate(Kind::Pack, &id.to_hex())
}

/// Reads the trailer of the pack file at `path`, wherever it is: its kind,
/// size and entries.
pub fn read_pack_index(path: &Path) -> Result<(PackKind, u64, Vec<PackEntry>)> {
    let object = local::open_file(path, Kind::Pack)?;
    read_object_trailer(&object, || path.display().to_string())
}

/// Reads the trailer of an open pack (`name` says where it is, for
/// messages): its kind, size and entries.
pub fn read_object_trailer(
    object: &dyn Object,
    name: impl Fn() -> String,
) -> Result<(PackKind, u64, Vec<PackEntry>)> {
    let what = || format!("pack {}", name());
    let len = object.size()?;
    if len < (HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(Error::corrupt(
            what(),
            "shorter than header and footer (truncated?)",
        ));
    }
    let header = object.read_at(0, HEADER_LEN)?;
    let kind = pack::decode_header(&header).map_err(|e| Error::corrupt(what(), e.to_string()))?;
    let footer = object.read_at(len - FOOTER_LEN as u64, FOOTER_LEN)?;
    let (tlen, sum) =
        pack::decode_footer(&footer, len).map_err(|e| Error::corrupt(what(), e.to_string()))?;
    let blob_end = len - FOOTER_LEN as u64 - tlen;
    let trailer = object.read_at(blob_end, tlen as usize)?;
    let entries = pack::decode_trailer(&trailer, &sum, blob_end)
        .map_err(|e| Error::corrupt(what(), e.to_string()))?;
    Ok((kind, len, entries))
}

/// Every pack present, by the id its name gives, in id order.
pub fn list_packs(layout: &Layout) -> Result<Vec<PackId>> {
    let names = layout.backend().list(Kind::Pack)?;
    let mut out: Vec<PackId> = names.iter().filter_map(|n| PackId::from_hex(n)).collect();
    out.sort();
    Ok(out)
}

/// Deletes packs (a missing one is already deleted), calling `between`
/// after each, and makes the deletions durable; then removes their marks
/// (durably too). A crash in between leaves marks without packs, which the
/// next prune removes. A pack whose mark is gone by the time it would be
/// deleted was taken back (on a remote, by a push that needs it:
/// `ops::remote::push`) and is kept.
pub fn delete(layout: &Layout, ids: &[&PackId], mut between: impl FnMut()) -> Result<()> {
    for id in ids {
        if !layout.backend().exists(Kind::Mark, &id.to_hex()) {
            continue;
        }
        layout.backend().delete(Kind::Pack, &id.to_hex())?;
        between();
    }
    layout.backend().sync()?;
    unmark(layout, ids)
}

/// Marks pack `id` for deletion at `now_ns` (replacing an older mark):
/// durable on return.
pub fn mark(layout: &Layout, id: &PackId, now_ns: i64) -> Result<()> {
    let record = PackMark {
        pack: *id,
        marked_ns: now_ns,
    };
    layout
        .backend()
        .replace(Kind::Mark, &id.to_hex(), &record.encode())
}

/// Removes the marks of `ids` (a missing one is already removed), durably.
pub fn unmark(layout: &Layout, ids: &[&PackId]) -> Result<()> {
    for id in ids {
        layout.backend().delete(Kind::Mark, &id.to_hex())?;
    }
    layout.backend().sync()
}

/// Every pack that has a deletion mark, by the id its name gives.
pub fn list_marked(layout: &Layout) -> Result<Vec<PackId>> {
    let names = layout.backend().list(Kind::Mark)?;
    let mut out: Vec<PackId> = names.iter().filter_map(|n| PackId::from_hex(n)).collect();
    out.sort();
    Ok(out)
}

/// Reads the mark of pack `id`. Errors name the mark's file.
pub fn read_mark(layout: &Layout, id: &PackId) -> Result<PackMark> {
    let name = id.to_hex();
    let bytes = layout.backend().read(Kind::Mark, &name)?;
    if bytes.len() > mark::MAX_LEN {
        return Err(Error::corrupt(
            locate_mark(layout, id).display().to_string(),
            "too long for a pack deletion mark",
        ));
    }
    PackMark::decode(&bytes, id)
        .map_err(|e| Error::corrupt(locate_mark(layout, id).display().to_string(), e.to_string()))
}

/// Where the mark of pack `id` is kept, for messages.
pub fn locate_mark(layout: &Layout, id: &PackId) -> std::path::PathBuf {
    layout.backend().locate(Kind::Mark, &id.to_hex())
}

/// True if pack `id`'s file exists.
pub fn exists(layout: &Layout, id: &PackId) -> bool {
    layout.backend().exists(Kind::Pack, &id.to_hex())
}
