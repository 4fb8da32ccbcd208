//! Zip checkpoints: PyTorch `.pt`/`.pth`/`.ckpt` (torch.save since 1.6) and
//! NumPy `.npz`. Where each tensor's bytes lie in the file, for segmenting
//! (`ranges`: one range per stored storage or array, with its dtype) and for
//! `snap diff --tensors` / `snap show` (`tensors`: name, dtype, shape, bytes
//! and file range of every tensor).
//!
//! A torch zip holds `PREFIX/data.pkl` (the pickled object, see
//! `ckpt::pickle`) and one entry `PREFIX/data/KEY` per storage, stored
//! uncompressed and 64-byte aligned. An npz holds one `NAME.npy` per array,
//! stored by `np.savez`, deflated by `np.savez_compressed`.
//!
//! Only what is needed is read: the central directory, `data.pkl`, the local
//! header of each storage or array located, and npy headers. Anything
//! malformed gives None (segmenting then falls back to plain CDC).

use std::collections::HashMap;
use std::io::Read;

use crate::ckpt::pickle::{self, MAX_PICKLE};
use crate::ckpt::segment::{npy_from_reader, npy_header, Dtype, Npy, Source, MAX_HEADER};

/// A tensor of a zip checkpoint and the file range that holds its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The dotted path in the pickle (`model.fc1.weight`), or the array
    /// name in an npz (`weights` for `weights.npy`).
    pub name: String,
    /// `F32`, `F16`, `BF16`, `I64` ... (numpy's descr when it has no such name).
    pub dtype: String,
    pub shape: Vec<u64>,
    /// Elements times element size.
    pub bytes: u64,
    /// The file range holding the tensor's bytes (0, 0 unless located). A
    /// deflated npz array's range is its compressed entry.
    pub start: u64,
    pub len: u64,
}

/// A zip over a file of `size` bytes.
struct Archive<'a, S: Source + ?Sized> {
    zip: zip::ZipArchive<PosReader<'a, S>>,
    size: u64,
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

fn open<S: Source + ?Sized>(file: &S, size: u64) -> Option<Archive<'_, S>> {
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
fn entry_range<S: Source + ?Sized>(z: &mut Archive<'_, S>, i: usize) -> Option<(u64, u64, bool)> {
    let size = z.size;
    let e = z.by_index_raw(i).ok()?;
    if e.is_dir() || e.data_start().checked_add(e.compressed_size())? > size {
        return None;
    }
    let stored = e.compression() == zip::CompressionMethod::Stored;
    Some((e.data_start(), e.compressed_size(), stored))
}

/// The prefix (`archive/`) of a torch zip's `data.pkl`, and its index.
fn torch_pickle_entry<S: Source + ?Sized>(z: &Archive<'_, S>) -> Option<(usize, String)> {
    (0..z.len()).find_map(|i| {
        let name = z.name_for_index(i)?;
        let prefix = name.strip_suffix("data.pkl")?;
        let one_level = prefix.is_empty()
            || (prefix.ends_with('/') && prefix.matches('/').count() == 1 && prefix.len() > 1);
        one_level.then(|| (i, prefix.to_string()))
    })
}

/// Reads (and inflates, if it is deflated) a `data.pkl` of at most `MAX_PICKLE` bytes.
fn read_pickle<S: Source + ?Sized>(z: &mut Archive<'_, S>, i: usize) -> Option<Vec<u8>> {
    let e = z.by_index(i).ok()?;
    let mut out = Vec::new();
    e.take(MAX_PICKLE as u64 + 1).read_to_end(&mut out).ok()?;
    (out.len() <= MAX_PICKLE).then_some(out)
}

/// The storages of a torch zip: entry index by key.
fn storage_entries<S: Source + ?Sized>(z: &Archive<'_, S>, prefix: &str) -> HashMap<String, usize> {
    let dir = format!("{prefix}data/");
    (0..z.len())
        .filter_map(|i| {
            let key = z.name_for_index(i)?.strip_prefix(dir.as_str())?;
            (!key.is_empty() && !key.contains('/')).then(|| (key.to_string(), i))
        })
        .collect()
}

/// Tensor ranges `(start, end, dtype)` for segmenting. In a torch zip whose
/// `data.pkl` parses, each stored storage gets the dtype of its class and
/// the other entries are left to CDC; in any other zip every stored entry is
/// a range (`Other`), a stored `.npy` split into header and data.
pub(crate) fn ranges<S: Source + ?Sized>(file: &S, size: u64) -> Option<Vec<(u64, u64, Dtype)>> {
    let mut z = open(file, size)?;
    let torch = torch_pickle_entry(&z).and_then(|(i, prefix)| {
        let parsed = pickle::parse_torch(&read_pickle(&mut z, i)?)?;
        Some((prefix, parsed))
    });
    let mut out = Vec::new();
    if let Some((prefix, parsed)) = torch {
        for (key, i) in storage_entries(&z, &prefix) {
            let Some((b, len, true)) = entry_range(&mut z, i) else {
                continue;
            };
            let dtype = match parsed.storage(&key) {
                Some(Some(t)) => t.dtype,
                _ => Dtype::Other,
            };
            out.push((b, b.checked_add(len)?, dtype));
        }
        return Some(out);
    }
    for i in 0..z.len() {
        let Some((b, len, true)) = entry_range(&mut z, i) else {
            continue;
        };
        let e = b.checked_add(len)?;
        let is_npy = z.name_for_index(i).is_some_and(|n| n.ends_with(".npy"));
        match is_npy.then(|| npy_header(file, b, e)).flatten() {
            Some(npy) => out.push((b + npy.data, e, npy.dtype)),
            None => out.push((b, e, Dtype::Other)),
        }
    }
    Some(out)
}

/// The tensors of a torch zip or an npz, in file order for an npz and
/// pickle order for a torch zip; None for any other or a malformed file.
/// With `locate`, each tensor's file range is found (reading the local
/// header of its entry); without, only names, dtypes, shapes and sizes.
pub fn tensors<S: Source + ?Sized>(file: &S, size: u64, locate: bool) -> Option<Vec<Located>> {
    let mut z = open(file, size)?;
    if let Some((i, prefix)) = torch_pickle_entry(&z) {
        return torch_tensors(&mut z, i, &prefix, locate);
    }
    npz_tensors(file, &mut z, locate)
}

fn torch_tensors<S: Source + ?Sized>(
    z: &mut Archive<'_, S>,
    pickle_index: usize,
    prefix: &str,
    locate: bool,
) -> Option<Vec<Located>> {
    let parsed = pickle::parse_torch(&read_pickle(z, pickle_index)?)?;
    let entries = storage_entries(z, prefix);
    let mut ranges: HashMap<&str, (u64, u64, bool)> = HashMap::new();
    let mut out = Vec::with_capacity(parsed.tensors.len());
    for t in &parsed.tensors {
        let (mut start, mut len) = (0, 0);
        if locate {
            let &(b, n, stored) = match ranges.get(t.storage.as_str()) {
                Some(r) => r,
                None => {
                    let r = entry_range(z, *entries.get(&t.storage)?)?;
                    ranges.entry(t.storage.as_str()).or_insert(r)
                }
            };
            (start, len) = if stored {
                // The pickle and the entry must agree, or the file is damaged.
                if t.offset.checked_add(t.span)? > n {
                    return None;
                }
                (b + t.offset, t.span)
            } else {
                (b, n)
            };
        }
        out.push(Located {
            name: t.name.clone(),
            dtype: t.ty.name.to_string(),
            shape: t.shape.clone(),
            bytes: t.bytes,
            start,
            len,
        });
    }
    Some(out)
}

fn npz_tensors<S: Source + ?Sized>(
    file: &S,
    z: &mut Archive<'_, S>,
    locate: bool,
) -> Option<Vec<Located>> {
    let names: Vec<String> = (0..z.len())
        .map(|i| z.name_for_index(i).map(str::to_string))
        .collect::<Option<_>>()?;
    if names.is_empty() || !names.iter().all(|n| n.ends_with(".npy")) {
        return None;
    }
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let (b, n, stored) = entry_range(z, i)?;
        let end = b.checked_add(n)?;
        let (npy, start, len): (Npy, u64, u64) = if stored {
            let npy = npy_header(file, b, end)?;
            let start = b + npy.data;
            (npy, start, end - start)
        } else {
            // Inflate just the header; the compressed entry is the range.
            let e = z.by_index(i).ok()?;
            (npy_from_reader(e.take(MAX_HEADER + 12))?, b, n)
        };
        let (start, len) = if locate { (start, len) } else { (0, 0) };
        let shape = npy.shape?;
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        out.push(Located {
            name: name.strip_suffix(".npy").unwrap_or(name).to_string(),
            bytes: match npy.elem {
                Some(e) => numel.checked_mul(e)?,
                None if stored => end - (b + npy.data),
                None => 0,
            },
            dtype: npy.dtype_name,
            shape,
            start,
            len,
        });
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// An entry's uncompressed bytes, through the zip crate.
    fn entry(data: &[u8], name: &str) -> Vec<u8> {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(data)).unwrap();
        let mut out = Vec::new();
        z.by_name(name).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn torch_tensors_are_located_in_their_storages() {
        let data = fixture("small_v1.pt");
        let ts = tensors(&data[..], data.len() as u64, true).expect("a torch zip");
        assert_eq!(ts.len(), 13);
        let by_name = |n: &str| ts.iter().find(|t| t.name == n).unwrap();
        let storage0 = entry(&data, "small_v1/data/0");
        let w = by_name("model.fc1.weight");
        let range = |t: &Located| &data[t.start as usize..(t.start + t.len) as usize];
        assert_eq!(range(w), &storage0[..]);
        assert_eq!(w.start % 64, 0, "torch aligns storages to 64 bytes");
        let rows = by_name("model.fc1.rows");
        assert_eq!(range(rows), &storage0[64..128]);
        let emb = by_name("model.emb.weight");
        assert_eq!((emb.dtype.as_str(), emb.bytes), ("BF16", 64));
        assert_eq!(range(emb), &entry(&data, "small_v1/data/4")[..]);
        // Unlocated: the same list without ranges.
        let quick = tensors(&data[..], data.len() as u64, false).unwrap();
        assert_eq!(quick.len(), 13);
        assert!(quick.iter().all(|t| (t.start, t.len) == (0, 0)));
        assert_eq!(quick[0].name, ts[0].name);
    }

    #[test]
    fn npz_arrays_stored_and_deflated() {
        for name in ["arrays.npz", "compressed.npz"] {
            let data = fixture(name);
            let ts = tensors(&data[..], data.len() as u64, true).expect("an npz");
            let got: Vec<(&str, &str, Vec<u64>, u64)> = ts
                .iter()
                .map(|t| (t.name.as_str(), t.dtype.as_str(), t.shape.clone(), t.bytes))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("bias", "F16", vec![6], 12),
                    ("ids", "I64", vec![5], 40),
                    ("mask", "BOOL", vec![3], 3),
                    ("weights", "F32", vec![3, 4], 48),
                ],
                "{name}"
            );
            let w = &ts[3];
            let npy = entry(&data, "weights.npy");
            let range = &data[w.start as usize..(w.start + w.len) as usize];
            if name == "arrays.npz" {
                assert_eq!(range, &npy[npy.len() - 48..]);
            } else {
                assert!(w.len > 0 && w.len < npy.len() as u64 + 16);
            }
        }
    }

    #[test]
    fn segment_ranges_carry_storage_dtypes() {
        let data = fixture("small_v1.pt");
        let mut r = ranges(&data[..], data.len() as u64).unwrap();
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
        let r = ranges(&data[..], data.len() as u64).unwrap();
        let dtypes: Vec<Dtype> = r.iter().map(|x| x.2).collect();
        assert_eq!(dtypes, [Dtype::F16, Dtype::Other, Dtype::Other, Dtype::F32]);
        assert_eq!(r[3].1 - r[3].0, 48);
        // Deflated arrays are not ranges.
        let data = fixture("compressed.npz");
        assert_eq!(ranges(&data[..], data.len() as u64), Some(vec![]));
    }

    #[test]
    fn a_damaged_pickle_falls_back_to_whole_entries() {
        let mut data = fixture("small_v1.pt");
        let pkl = entry(&data, "small_v1/data.pkl");
        let at = data
            .windows(16)
            .position(|w| w == &pkl[..16])
            .expect("data.pkl is stored");
        data[at + 3] = b'\xff'; // the pickle no longer parses (and its CRC fails)
        assert!(tensors(&data[..], data.len() as u64, true).is_none());
        let r = ranges(&data[..], data.len() as u64).unwrap();
        // Every stored entry is a range of unknown dtype, as before pickles were read.
        assert_eq!(r.len(), 18);
        assert!(r.iter().all(|x| x.2 == Dtype::Other));
    }
}
