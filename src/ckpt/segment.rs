//! Format-aware segmenting: checkpoint files are cut into segments (the
//! header or wrapper, and one segment per tensor) so that chunk boundaries
//! fall on tensor boundaries and an unchanged tensor always dedups, whatever
//! changed before it in the file. Segmenting only moves cut points: the
//! file's bytes are stored and restored unchanged.
//!
//! The tensor ranges come from the format parsers (`ckpt::ranges`):
//! safetensors, npy, and zip containers (a PyTorch `.pt`/`.pth`/`.ckpt` has
//! one segment per storage, typed by the storage class its `data.pkl` names,
//! an `.npz` one per stored array after its npy header; other zips one per
//! stored entry). The gaps between them are untyped segments. Anything
//! unknown, malformed or truncated gets one segment: the whole file, plain
//! CDC. Parsing never fails a commit.

use super::{Dtype, Range, Source};

/// A byte range of a file that chunking must not straddle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub len: u64,
    /// Set for tensor data.
    pub dtype: Option<Dtype>,
}

/// Segments of a file of `size` bytes: contiguous, in order, covering it
/// exactly. Segments shorter than `min_group` are grouped with their
/// neighbours so that models with many tiny tensors do not become many tiny
/// chunks.
pub fn segments<S: Source + ?Sized>(file: &S, size: u64, min_group: u64) -> Vec<Segment> {
    let ranges = super::ranges(file, size).unwrap_or_default();
    let mut out = cover(ranges, size);
    out = group(out, min_group);
    out
}

/// Fills the gaps between tensor ranges with untyped segments.
fn cover(ranges: Vec<Range>, size: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut pos = 0;
    for (b, e, dtype) in ranges {
        if b > pos {
            out.push(Segment {
                offset: pos,
                len: b - pos,
                dtype: None,
            });
        }
        if e > b {
            out.push(Segment {
                offset: b,
                len: e - b,
                dtype: Some(dtype),
            });
        }
        pos = pos.max(e);
    }
    if size > pos || out.is_empty() {
        out.push(Segment {
            offset: pos,
            len: size - pos,
            dtype: None,
        });
    }
    out
}

/// Merges runs of small segments (each below `min_group`) into one; a large
/// segment always stands alone, so large tensors keep their own boundaries.
fn group(segs: Vec<Segment>, min_group: u64) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segs.len());
    for s in segs {
        match out.last_mut() {
            Some(last) if last.len < min_group && s.len < min_group => {
                last.len += s.len;
                if last.dtype != s.dtype {
                    last.dtype = None;
                }
            }
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;

    use super::*;
    use crate::ckpt::fixture;

    fn file_with(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn safetensors_bytes(tensors: &[(&str, usize)]) -> Vec<u8> {
        let mut header = String::from("{");
        let mut off = 0;
        for (i, (name, len)) in tensors.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&format!(
                r#""{name}":{{"dtype":"F32","shape":[{}],"data_offsets":[{off},{}]}}"#,
                len / 4,
                off + len
            ));
            off += len;
        }
        header.push('}');
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(7u8, off));
        out
    }

    #[test]
    fn safetensors_tensors_are_segments() {
        let bytes = safetensors_bytes(&[("a", 1000), ("b", 4000), ("c", 8000)]);
        let f = file_with(&bytes);
        let segs = segments(&f, bytes.len() as u64, 0);
        assert_eq!(segs.len(), 4);
        assert_eq!(segs[1].len, 1000);
        assert_eq!(segs[3].len, 8000);
        assert_eq!(segs[3].dtype, Some(Dtype::F32));
        assert_eq!(segs.iter().map(|s| s.len).sum::<u64>(), bytes.len() as u64);
        // Small tensors group together; the large one stands alone.
        let grouped = segments(&f, bytes.len() as u64, 5000);
        assert_eq!(
            grouped.iter().map(|s| s.len).sum::<u64>(),
            bytes.len() as u64
        );
        assert_eq!(grouped.last().unwrap().len, 8000);
    }

    #[test]
    fn malformed_falls_back_to_one_segment() {
        let mut bytes = safetensors_bytes(&[("a", 1000)]);
        bytes.truncate(bytes.len() - 10);
        for b in [
            &bytes[..],
            b"",
            b"\x93NUMPY\x01",
            b"PK\x03\x04garbage",
            &[0xffu8; 64][..],
        ] {
            let f = file_with(b);
            let segs = segments(&f, b.len() as u64, 0);
            assert_eq!(
                segs,
                vec![Segment {
                    offset: 0,
                    len: b.len() as u64,
                    dtype: None
                }]
            );
        }
    }

    #[test]
    fn torch_storages_are_typed_segments() {
        let data = fixture("small_v1.pt");
        let segs = segments(&data[..], data.len() as u64, 0);
        let typed: Vec<Dtype> = segs.iter().filter_map(|s| s.dtype).collect();
        assert_eq!(typed.len(), 12);
        for d in [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::Other] {
            assert!(typed.contains(&d), "{d:?} missing in {typed:?}");
        }
        assert_eq!(segs.iter().map(|s| s.len).sum::<u64>(), data.len() as u64);
    }

    proptest::proptest! {
        /// Byte flips and truncations of real torch and npz files: segments
        /// always cover the file, and listing tensors never panics.
        #[test]
        fn mutated_checkpoints_always_cover(
            which in 0usize..3,
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..6),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let mut data = fixture(["small_v1.pt", "arrays.npz", "compressed.npz"][which]);
            for (at, b) in flips {
                let n = data.len();
                data[at % n] = b;
            }
            if cut % 3 == 0 {
                data.truncate(cut % data.len());
            }
            let size = data.len() as u64;
            let segs = segments(&data[..], size, 64);
            let mut pos = 0;
            for s in &segs {
                proptest::prop_assert_eq!(s.offset, pos);
                pos += s.len;
            }
            proptest::prop_assert_eq!(pos, size);
            for t in crate::ckpt::tensors(&data[..], size, true).unwrap_or_default() {
                proptest::prop_assert!(t.offset.checked_add(t.len).is_some_and(|e| e <= size));
            }
        }

        #[test]
        fn never_panics_and_always_covers(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), prefix in 0usize..3) {
            let mut data = match prefix {
                0 => b"\x93NUMPY\x01\x00".to_vec(),
                1 => b"PK\x03\x04".to_vec(),
                _ => (bytes.len() as u64 / 2).to_le_bytes().to_vec(),
            };
            data.extend(bytes);
            let f = file_with(&data);
            let segs = segments(&f, data.len() as u64, 64);
            let mut pos = 0;
            for s in &segs {
                proptest::prop_assert_eq!(s.offset, pos);
                pos += s.len;
            }
            proptest::prop_assert_eq!(pos, data.len() as u64);
        }
    }
}
