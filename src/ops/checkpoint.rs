//! The tensors of a stored checkpoint, for `snap show` (how many, and their
//! bytes) and `snap diff --tensors` (which changed). The formats are
//! `ckpt`'s; this module makes a stored file a `ckpt::Source`, read from its
//! chunks (only those the parser touches: a safetensors header; a zip's
//! central directory, `data.pkl`, local headers and npy headers), never by
//! restoring the file.

use std::cell::RefCell;
use std::rc::Rc;

use crate::ckpt::{self, Source, Tensor};
use crate::error::{Error, Result};
use crate::format::tree::ChunkRef;
use crate::store::index::Index;
use crate::store::read::{read_chunk, PackFiles};

/// The tensors of a stored file of `size` bytes made of `chunks`
/// (`ckpt::tensors`: safetensors, a PyTorch zip or an npz, told apart by
/// content), or None when it is none of them. With `locate`, each tensor's
/// file range is filled in (`offset`, `len`); without, a zip is read less
/// (its storages' local headers are skipped) and its ranges are 0. A chunk
/// that cannot be read is an error, not a malformed checkpoint.
pub fn tensors(
    index: &Index,
    packs: &PackFiles,
    chunks: &[ChunkRef],
    size: u64,
    locate: bool,
) -> Result<Option<Vec<Tensor>>> {
    let file = StoredFile::new(index, packs, chunks);
    let found = ckpt::tensors(&file, size, locate);
    match file.error.into_inner() {
        Some(e) => Err(e),
        None => Ok(found),
    }
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
