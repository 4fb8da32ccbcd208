//! Checkpoint formats: where the tensors of a safetensors file, an npy
//! array, a PyTorch zip (and the pickle inside it) or an npz lie, read from
//! any [`Source`] of bytes (a file being committed, a file read back out of
//! the store, a slice in tests and fuzzing).
//!
//! This module owns the shared types ([`Source`], [`Dtype`], the header
//! limit), the dispatch by content (magic bytes, never the name), and one
//! parser per format:
//!
//! - `safetensors` (8-byte header length, JSON header), `npy` (magic,
//!   header dict, data);
//! - `zip` (the container: entries, their ranges, positional reads),
//!   `torch` (a torch.save zip: `data.pkl` and its storages), `npz` (arrays
//!   in a zip, and any other zip), `pickle` (a bounded reader of `data.pkl`);
//! - `segment`: a file's tensor ranges as the segments commit chunks.
//!
//! Dependencies go one way: the formats use only the shared types here (and
//! each other: `torch` and `npz` read through `zip`, `npz` reads npy
//! headers, `torch` reads its pickle); the dispatch here calls the formats;
//! `segment` calls the dispatch. Nothing here uses the rest of the crate:
//! `chunk/` is FastCDC over bytes and knows no format, and `ops::commit`
//! joins the two (it asks this module for segments and streams each one
//! through `chunk::Chunker`). Segments live here, not in `chunk/`, because
//! they are a fact about a file's format (where its tensors are, and of
//! which dtype), while chunking only needs their lengths; so neither module
//! depends on the other.
//!
//! Every parser returns `None` for anything unknown, malformed or truncated
//! (never an error, never a panic) and allocates only what the input can
//! justify: at most `MAX_HEADER` bytes of a header, `pickle::MAX_PICKLE` of
//! a pickle.

use std::fs::File;
use std::os::unix::fs::FileExt;

mod npy;
mod npz;
pub mod pickle;
mod safetensors;
pub mod segment;
mod torch;
mod zip;

pub use segment::{segments, Segment};

/// Bytes the parsers can read at any offset: a file (positional reads, the
/// file's cursor never moves) or a slice (tests and fuzzing).
pub trait Source {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl Source for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Name endings of checkpoint files: `snap show` counts their tensors, and a
/// commit warns when it stores one that was still being written.
pub const CHECKPOINT_EXTENSIONS: &[&str] = &[".safetensors", ".pt", ".pth", ".ckpt", ".npz"];

/// Largest header (safetensors JSON, npy dict) that is parsed.
pub const MAX_HEADER: u64 = 64 << 20;

/// The element type of a tensor, as far as the codecs care: the float
/// layouts the float codec knows, and everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    Other,
}

impl Dtype {
    /// From a dtype as a header spells it (safetensors `F32`, numpy `<f4`).
    pub(crate) fn of_name(name: &str) -> Dtype {
        match name {
            "F32" | "<f4" | "float32" => Dtype::F32,
            "F16" | "<f2" | "float16" => Dtype::F16,
            "BF16" | "bfloat16" => Dtype::BF16,
            _ => Dtype::Other,
        }
    }
}

/// A tensor as its checkpoint describes it, and where its bytes are. The
/// one tensor type of every format; `snap diff --tensors` shows it as is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tensor {
    /// safetensors: the header's key; torch zip: the dotted path in the
    /// pickle (`model.fc1.weight`); npz: the array name (`weights` for
    /// `weights.npy`).
    pub name: String,
    /// `F32`, `F16`, `BF16`, `I64` ...: safetensors' spelling, which torch
    /// storage classes and numpy descrs are mapped to (numpy's descr when
    /// it has no such name); a safetensors header's own string otherwise.
    pub dtype: String,
    pub shape: Vec<u64>,
    /// Elements times element size (safetensors: the `data_offsets` extent).
    pub bytes: u64,
    /// The file range holding the tensor's bytes: for a strided PyTorch
    /// view all it spans, for a deflated npz array its compressed entry;
    /// (0, 0) when not located.
    #[serde(skip)]
    pub offset: u64,
    #[serde(skip)]
    pub len: u64,
}

/// A tensor's bytes `(start, end, dtype)` in a file, for segmenting.
pub(crate) type Range = (u64, u64, Dtype);

/// Exactly `len` bytes at `offset`, or None (a short read, an I/O error, a
/// length that does not fit in memory).
pub(crate) fn read_at<S: Source + ?Sized>(file: &S, offset: u64, len: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) | Err(_) => return None,
            Ok(n) => done += n,
        }
    }
    Some(buf)
}

/// Tensor ranges of a file told apart by content, sorted and
/// non-overlapping, or None.
pub(crate) fn ranges<S: Source + ?Sized>(file: &S, size: u64) -> Option<Vec<Range>> {
    let head = read_at(file, 0, size.min(16))?;
    let mut ranges = if head.starts_with(npy::MAGIC) {
        npy::ranges(file, 0, size)?
    } else if head.starts_with(zip::MAGIC) {
        zip_ranges(file, size)?
    } else {
        safetensors::ranges(file, size)?
    };
    ranges.sort_unstable_by_key(|r| r.0);
    let ok = ranges.iter().all(|r| r.0 <= r.1 && r.1 <= size)
        && ranges.windows(2).all(|w| w[0].1 <= w[1].0);
    ok.then_some(ranges)
}

/// A torch zip whose `data.pkl` parses: its storages; any other zip: its
/// stored entries.
fn zip_ranges<S: Source + ?Sized>(file: &S, size: u64) -> Option<Vec<Range>> {
    let mut z = zip::open(file, size)?;
    match torch::pickle(&mut z) {
        Some((prefix, parsed)) => torch::ranges(&mut z, &prefix, &parsed),
        None => npz::ranges(file, &mut z),
    }
}

/// The tensors of a checkpoint told apart by content: a torch zip or an npz
/// (in pickle order for a torch zip, file order for an npz), or a
/// safetensors file (header order, always located); None for anything else
/// or a malformed file. npy files are segmented but not listed. With
/// `locate`, each tensor's file range is found (for a zip, reading the
/// local header of its entry); without, a zip's ranges are 0.
pub fn tensors<S: Source + ?Sized>(file: &S, size: u64, locate: bool) -> Option<Vec<Tensor>> {
    if read_at(file, 0, 4).is_some_and(|m| m == zip::MAGIC) {
        zip_tensors(file, size, locate)
    } else {
        safetensors::tensors(file, size)
    }
}

/// The tensors of a torch zip (when it has a `data.pkl`) or an npz.
fn zip_tensors<S: Source + ?Sized>(file: &S, size: u64, locate: bool) -> Option<Vec<Tensor>> {
    let mut z = zip::open(file, size)?;
    match torch::pickle_entry(&z) {
        Some((i, prefix)) => torch::tensors(&mut z, i, &prefix, locate),
        None => npz::tensors(file, &mut z, locate),
    }
}

/// A test fixture from `tests/fixtures/` (written by `make_pt.py`).
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A zip entry's uncompressed bytes, through the zip crate.
#[cfg(test)]
pub(crate) fn zip_entry(data: &[u8], name: &str) -> Vec<u8> {
    let mut z = ::zip::ZipArchive::new(std::io::Cursor::new(data)).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name(name).unwrap(), &mut out).unwrap();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_ranges_carry_storage_dtypes() {
        let data = fixture("small_v1.pt");
        let mut r = zip_ranges(&data[..], data.len() as u64).unwrap();
        r.sort_unstable_by_key(|x| x.0);
        // Twelve storages, nothing else (data.pkl and the small entries are CDC).
        assert_eq!(r.len(), 12);
        let dtypes: Vec<Dtype> = r.iter().map(|x| x.2).collect();
        assert_eq!(
            &dtypes[..6],
            &[
                Dtype::F32,
                Dtype::F32,
                Dtype::F16,
                Dtype::F16,
                Dtype::BF16,
                Dtype::Other
            ]
        );
        assert_eq!(r[0].1 - r[0].0, 512);
        // npz: the data of each stored array, after its header.
        let data = fixture("arrays.npz");
        let r = zip_ranges(&data[..], data.len() as u64).unwrap();
        let dtypes: Vec<Dtype> = r.iter().map(|x| x.2).collect();
        assert_eq!(dtypes, [Dtype::F16, Dtype::Other, Dtype::Other, Dtype::F32]);
        assert_eq!(r[3].1 - r[3].0, 48);
        // Deflated arrays are not ranges.
        let data = fixture("compressed.npz");
        assert_eq!(zip_ranges(&data[..], data.len() as u64), Some(vec![]));
    }

    #[test]
    fn a_damaged_pickle_falls_back_to_whole_entries() {
        let mut data = fixture("small_v1.pt");
        let pkl = zip_entry(&data, "small_v1/data.pkl");
        let at = data
            .windows(16)
            .position(|w| w == &pkl[..16])
            .expect("data.pkl is stored");
        data[at + 3] = b'\xff'; // the pickle no longer parses (and its CRC fails)
        assert!(zip_tensors(&data[..], data.len() as u64, true).is_none());
        let r = zip_ranges(&data[..], data.len() as u64).unwrap();
        // Every stored entry is a range of unknown dtype, as before pickles were read.
        assert_eq!(r.len(), 18);
        assert!(r.iter().all(|x| x.2 == Dtype::Other));
    }
}
