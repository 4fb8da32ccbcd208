//! NumPy `.npz` archives: one `NAME.npy` per array in a zip, stored by
//! `np.savez`, deflated by `np.savez_compressed`; and every other zip that
//! is not a torch checkpoint, whose stored entries are ranges of their own.

use std::io::Read;

use super::npy;
use super::zip::{entry_range, Archive};
use super::{Dtype, Range, Source, Tensor, MAX_HEADER};

/// Tensor ranges for segmenting a zip that is not a torch checkpoint: every
/// stored entry is a range (`Other`), a stored `.npy` split into its header
/// and its data (with the npy dtype). Deflated entries are left to CDC.
pub(super) fn ranges<S: Source + ?Sized>(file: &S, z: &mut Archive<'_, S>) -> Option<Vec<Range>> {
    let mut out = Vec::new();
    for i in 0..z.len() {
        let Some((b, len, true)) = entry_range(z, i) else {
            continue;
        };
        let e = b.checked_add(len)?;
        let is_npy = z.name_for_index(i).is_some_and(|n| n.ends_with(".npy"));
        match is_npy.then(|| npy::header(file, b, e)).flatten() {
            Some(npy) => out.push((b + npy.data, e, npy.dtype)),
            None => out.push((b, e, Dtype::Other)),
        }
    }
    Some(out)
}

/// The arrays of an npz, in file order (see `ckpt::zip_tensors`); None if
/// any entry is not an `.npy` or does not parse.
pub(super) fn tensors<S: Source + ?Sized>(
    file: &S,
    z: &mut Archive<'_, S>,
    locate: bool,
) -> Option<Vec<Tensor>> {
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
        let (npy, start, len): (npy::Npy, u64, u64) = if stored {
            let npy = npy::header(file, b, end)?;
            let start = b + npy.data;
            (npy, start, end - start)
        } else {
            // Inflate just the header; the compressed entry is the range.
            let e = z.by_index(i).ok()?;
            (npy::from_reader(e.take(MAX_HEADER + 12))?, b, n)
        };
        let (start, len) = if locate { (start, len) } else { (0, 0) };
        let shape = npy.shape?;
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        out.push(Tensor {
            name: name.strip_suffix(".npy").unwrap_or(name).to_string(),
            bytes: match npy.elem {
                Some(e) => numel.checked_mul(e)?,
                None if stored => end - (b + npy.data),
                None => 0,
            },
            dtype: npy.dtype_name,
            shape,
            offset: start,
            len,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::{fixture, zip_entry as entry, zip_tensors as tensors};

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
            let range = &data[w.offset as usize..(w.offset + w.len) as usize];
            if name == "arrays.npz" {
                assert_eq!(range, &npy[npy.len() - 48..]);
            } else {
                assert!(w.len > 0 && w.len < npy.len() as u64 + 16);
            }
        }
    }
}
