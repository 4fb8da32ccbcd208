//! The zip container of PyTorch `.pt`/`.pth`/`.ckpt` files (torch.save
//! since 1.6) and NumPy `.npz` archives: the archive over a `Source`, read
//! through positional reads, and where each entry's bytes lie. What the
//! entries mean is `ckpt::torch`'s and `ckpt::npz`'s business.
//!
//! Only what is asked for is read: the central directory, and the local
//! header of an entry whose range is wanted.

use super::Source;

/// The first bytes of a zip (a local file header).
pub(super) const MAGIC: &[u8] = b"PK\x03\x04";

/// A zip over a file of `size` bytes.
pub(super) struct Archive<'a, S: Source + ?Sized> {
    zip: zip::ZipArchive<PosReader<'a, S>>,
    pub(super) size: u64,
}

impl<'a, S: Source + ?Sized> std::ops::Deref for Archive<'a, S> {
    type Target = zip::ZipArchive<PosReader<'a, S>>;
    fn deref(&self) -> &Self::Target {
        &self.zip
    }
}

impl<S: Source + ?Sized> std::ops::DerefMut for Archive<'_, S> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.zip
    }
}

pub(super) fn open<S: Source + ?Sized>(file: &S, size: u64) -> Option<Archive<'_, S>> {
    let zip = zip::ZipArchive::new(PosReader {
        file,
        pos: 0,
        len: size,
    })
    .ok()?;
    Some(Archive { zip, size })
}

/// `(data start, stored length, stored uncompressed)` of entry `i`; reads
/// its local header. None for a directory or an entry that does not fit in
/// the file (the zip crate does not check).
pub(super) fn entry_range<S: Source + ?Sized>(
    z: &mut Archive<'_, S>,
    i: usize,
) -> Option<(u64, u64, bool)> {
    let size = z.size;
    let e = z.by_index_raw(i).ok()?;
    if e.is_dir() || e.data_start().checked_add(e.compressed_size())? > size {
        return None;
    }
    let stored = e.compression() == zip::CompressionMethod::Stored;
    Some((e.data_start(), e.compressed_size(), stored))
}

/// `Read + Seek` over a file through positional reads, with its own offset:
/// parsing never moves the file's cursor, which the chunker reads from.
pub(crate) struct PosReader<'a, S: Source + ?Sized> {
    file: &'a S,
    pos: u64,
    len: u64,
}

impl<S: Source + ?Sized> std::io::Read for PosReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<S: Source + ?Sized> std::io::Seek for PosReader<'_, S> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::End(d) => self.len.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before start")
        })?;
        Ok(self.pos)
    }
}
