//! Writing and reading pack files.
//!
//! A `PackWriter` streams blobs into a temporary file under `tmp/`, hashing
//! as it goes; `finish` appends the trailer, fsyncs, and renames the file to
//! `packs/XX/ID.pack`. Only then may anything refer to its blobs.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::pack::{self, Codec, PackEntry, PackKind, FOOTER_LEN, HEADER_LEN};
use crate::id::{ChunkId, PackId};
use crate::store::{durable, Layout};

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
    tmp_path: PathBuf,
    out: BufWriter<File>,
    hasher: blake3::Hasher,
    offset: u64,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    pub fn create(layout: &Layout, kind: PackKind) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("pack-")
            .suffix(".tmp")
            .tempfile_in(layout.tmp_dir())
            .ctx("create pack in", layout.tmp_dir())?;
        durable::share(tmp.as_file(), tmp.path())?;
        let (file, tmp_path) = tmp
            .keep()
            .map_err(|e| Error::io("keep", layout.tmp_dir(), e.error))?;
        let mut w = PackWriter {
            kind,
            tmp_path,
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: PackId::hasher(),
            offset: 0,
            entries: Vec::new(),
        };
        w.write(&pack::encode_header(kind))?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .ctx("write pack", &self.tmp_path)?;
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

    /// Writes the trailer, fsyncs and renames the pack into place.
    pub fn finish(mut self, layout: &Layout) -> Result<FinishedPack> {
        let trailer = pack::encode_trailer(&self.entries);
        self.write(&trailer)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io("flush pack", &self.tmp_path, e.into_error()))?;
        file.sync_all().ctx("fsync pack", &self.tmp_path)?;
        drop(file);
        let id = PackId::from_hasher(&self.hasher);
        durable::rename_durable(&self.tmp_path, &layout.pack(&id))?;
        Ok(FinishedPack {
            id,
            kind: self.kind,
            size: self.offset,
            entries: self.entries,
        })
    }

    /// Abandons the pack, removing its temporary file.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.tmp_path);
    }
}

/// Reads the trailer of pack `id`: its kind, size and entries.
pub fn read_trailer(layout: &Layout, id: &PackId) -> Result<(PackKind, u64, Vec<PackEntry>)> {
    read_pack_index(&layout.pack(id))
}

/// Reads the trailer of a pack file: its kind, size and entries.
pub fn read_pack_index(path: &Path) -> Result<(PackKind, u64, Vec<PackEntry>)> {
    let what = || format!("pack {}", path.display());
    let file = File::open(path).ctx("open pack", path)?;
    let len = file.metadata().ctx("stat pack", path)?.len();
    if len < (HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(Error::corrupt(
            what(),
            "shorter than header and footer (truncated?)",
        ));
    }
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, 0).ctx("read pack", path)?;
    let kind = pack::decode_header(&header).map_err(|e| Error::corrupt(what(), e.to_string()))?;
    let mut footer = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut footer, len - FOOTER_LEN as u64)
        .ctx("read pack", path)?;
    let (tlen, sum) =
        pack::decode_footer(&footer, len).map_err(|e| Error::corrupt(what(), e.to_string()))?;
    let blob_end = len - FOOTER_LEN as u64 - tlen;
    let mut trailer = vec![0u8; tlen as usize];
    file.read_exact_at(&mut trailer, blob_end)
        .ctx("read pack", path)?;
    let entries = pack::decode_trailer(&trailer, &sum, blob_end)
        .map_err(|e| Error::corrupt(what(), e.to_string()))?;
    Ok((kind, len, entries))
}

/// Every pack file present, by the id its file name gives, in id order.
pub fn list_packs(layout: &Layout) -> Result<Vec<PackId>> {
    let mut out = Vec::new();
    let dir = layout.packs_dir();
    for sub in fs::read_dir(&dir).ctx("list packs in", &dir)? {
        let sub = sub.ctx("list packs in", &dir)?.path();
        if !sub.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&sub).ctx("list packs in", &sub)? {
            let path = entry.ctx("list packs in", &sub)?.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pack"))
                .and_then(PackId::from_hex);
            out.extend(id);
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes packs (a missing one is already deleted), calling `between`
/// after each, and makes the deletions durable.
pub fn delete(layout: &Layout, ids: &[&PackId], between: impl FnMut()) -> Result<()> {
    let paths: Vec<PathBuf> = ids.iter().map(|id| layout.pack(id)).collect();
    durable::remove_durable(paths.iter().map(PathBuf::as_path), between)
}

/// Reads `len` bytes at `offset` from an open pack: every byte, or an error
/// (a read past the end of the file is `UnexpectedEof`).
///
/// The buffer is not zeroed first: `pread` fills it directly. Restore reads
/// packs in ranges of up to 8 MiB, and zeroing them took 2-4 % of its CPU
/// time. It is a fresh buffer each time on purpose: one reused buffer per
/// thread made restore take about 20 % more CPU time, because glibc then
/// never frees a large block, its mmap threshold stays at 128 KiB, and the
/// buffers of every decoded chunk are mapped and faulted in anew.
///
/// `pread`, not `mmap`: a read error (a bad sector, a pack truncated under
/// us) must come back as an error that fails the chunks in the range; a
/// mapping would kill the process with SIGBUS instead, before it could
/// remove its temporary files.
pub fn read_at(file: &File, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let pos = offset
            .checked_add(done as u64)
            .and_then(|p| libc::off_t::try_from(p).ok())
            .ok_or_else(|| {
                Error::corrupt(format!("pack {}", path.display()), "offset out of range")
            })?;
        // SAFETY: the destination is the vector's spare capacity from `done`,
        // `len - done` bytes, all inside the allocation; pread writes at most
        // that many bytes there and nothing else.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(done).cast(),
                len - done,
                pos,
            )
        };
        match n {
            0 => {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
                    .ctx("read pack", path)
            }
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e).ctx("read pack", path);
                }
            }
            // SAFETY: pread returned n > 0: it initialised the n bytes after
            // `done`, and n <= len - done, so the length stays within capacity.
            n => unsafe { buf.set_len(done + n as usize) },
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_at_reads_exactly_the_range_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pack");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(read_at(&file, &path, 0, 0).unwrap(), b"");
        assert_eq!(
            read_at(&file, &path, 123, 45_678).unwrap(),
            &bytes[123..123 + 45_678]
        );
        assert_eq!(read_at(&file, &path, 99_990, 10).unwrap(), &bytes[99_990..]);
        // Past the end, as in a truncated pack: an error, never short data.
        let err = read_at(&file, &path, 99_990, 11).unwrap_err();
        assert!(err.to_string().contains("read pack"), "{err}");
        assert!(read_at(&file, &path, 200_000, 1).is_err());
        assert!(read_at(&file, &path, u64::MAX, 1).is_err());
    }
}
