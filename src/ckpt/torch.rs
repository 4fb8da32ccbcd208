//! PyTorch zip checkpoints (torch.save since 1.6): `PREFIX/data.pkl`, the
//! pickled object (read by `ckpt::pickle`), and one entry `PREFIX/data/KEY`
//! per storage, stored uncompressed and 64-byte aligned. Each storage is a
//! range typed by its class; each tensor a name, dtype, shape and the bytes
//! of its storage it spans.

use std::collections::HashMap;
use std::io::Read;

use super::pickle::{self, TorchPickle, MAX_PICKLE};
use super::zip::{entry_range, Archive};
use super::{Dtype, Range, Source, Tensor};

/// The prefix (`archive/`) of a torch zip's `data.pkl`, and its index.
pub(super) fn pickle_entry<S: Source + ?Sized>(z: &Archive<'_, S>) -> Option<(usize, String)> {
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

/// The prefix and parsed `data.pkl` of a torch zip, or None (not a torch
/// zip, or its pickle does not parse).
pub(super) fn pickle<S: Source + ?Sized>(z: &mut Archive<'_, S>) -> Option<(String, TorchPickle)> {
    let (i, prefix) = pickle_entry(z)?;
    let parsed = pickle::parse_torch(&read_pickle(z, i)?)?;
    Some((prefix, parsed))
}

/// Tensor ranges `(start, end, dtype)` for segmenting: each stored storage
/// gets the dtype of its class; the other entries are left to CDC.
pub(super) fn ranges<S: Source + ?Sized>(
    z: &mut Archive<'_, S>,
    prefix: &str,
    parsed: &TorchPickle,
) -> Option<Vec<Range>> {
    let mut out = Vec::new();
    for (key, i) in storage_entries(z, prefix) {
        let Some((b, len, true)) = entry_range(z, i) else {
            continue;
        };
        let dtype = match parsed.storage(&key) {
            Some(Some(t)) => t.dtype,
            _ => Dtype::Other,
        };
        out.push((b, b.checked_add(len)?, dtype));
    }
    Some(out)
}

/// The tensors of a torch zip, in pickle order (see `ckpt::zip_tensors`).
pub(super) fn tensors<S: Source + ?Sized>(
    z: &mut Archive<'_, S>,
    pickle_index: usize,
    prefix: &str,
    locate: bool,
) -> Option<Vec<Tensor>> {
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
        out.push(Tensor {
            name: t.name.clone(),
            dtype: t.ty.name.to_string(),
            shape: t.shape.clone(),
            bytes: t.bytes,
            offset: start,
            len,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::{fixture, zip_entry as entry, zip_tensors as tensors};
    use super::*;

    #[test]
    fn torch_tensors_are_located_in_their_storages() {
        let data = fixture("small_v1.pt");
        let ts = tensors(&data[..], data.len() as u64, true).expect("a torch zip");
        assert_eq!(ts.len(), 13);
        let by_name = |n: &str| ts.iter().find(|t| t.name == n).unwrap();
        let storage0 = entry(&data, "small_v1/data/0");
        let w = by_name("model.fc1.weight");
        let range = |t: &Tensor| &data[t.offset as usize..(t.offset + t.len) as usize];
        assert_eq!(range(w), &storage0[..]);
        assert_eq!(w.offset % 64, 0, "torch aligns storages to 64 bytes");
        let rows = by_name("model.fc1.rows");
        assert_eq!(range(rows), &storage0[64..128]);
        let emb = by_name("model.emb.weight");
        assert_eq!((emb.dtype.as_str(), emb.bytes), ("BF16", 64));
        assert_eq!(range(emb), &entry(&data, "small_v1/data/4")[..]);
        // Unlocated: the same list without ranges.
        let quick = tensors(&data[..], data.len() as u64, false).unwrap();
        assert_eq!(quick.len(), 13);
        assert!(quick.iter().all(|t| (t.offset, t.len) == (0, 0)));
        assert_eq!(quick[0].name, ts[0].name);
    }
}
