//! Format-aware segmenting: checkpoint files are cut into segments (the
//! header or wrapper, and one segment per tensor) so that chunk boundaries
//! fall on tensor boundaries and an unchanged tensor always dedups, whatever
//! changed before it in the file. Segmenting only moves cut points: the
//! file's bytes are stored and restored unchanged.
//!
//! Formats: safetensors (8-byte header length + JSON header with data
//! offsets), NumPy `.npy` (magic, header, data), and zip containers
//! (`ckpt::zip`): a PyTorch `.pt`/`.pth`/`.ckpt` has one segment per
//! storage, typed by the storage class its `data.pkl` names (`ckpt::pickle`),
//! an `.npz` one per stored array after its npy header; other zips one per
//! stored entry. Anything unknown, malformed or truncated gets one segment:
//! the whole file, plain CDC. Parsing never fails a commit, and reads at most
//! `MAX_HEADER` bytes of header (`MAX_PICKLE` of pickle).

use std::fs::File;
use std::os::unix::fs::FileExt;

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

/// The element type of a tensor segment, when the format says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    Other,
}

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
    let ranges = detect(file, size).unwrap_or_default();
    let mut out = cover(ranges, size);
    out = group(out, min_group);
    out
}

type Range = (u64, u64, Dtype);

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

/// Tensor ranges `(start, end, dtype)`, sorted and non-overlapping, or None.
fn detect<S: Source + ?Sized>(file: &S, size: u64) -> Option<Vec<Range>> {
    let head = read_at(file, 0, size.min(16))?;
    let mut ranges = if head.starts_with(b"\x93NUMPY") {
        npy(file, 0, size)?
    } else if head.starts_with(b"PK\x03\x04") {
        crate::ckpt::zip::ranges(file, size)?
    } else {
        safetensors(file, size)?
    };
    ranges.sort_unstable_by_key(|r| r.0);
    let ok = ranges.iter().all(|r| r.0 <= r.1 && r.1 <= size)
        && ranges.windows(2).all(|w| w[0].1 <= w[1].0);
    ok.then_some(ranges)
}

fn dtype_of(name: &str) -> Dtype {
    match name {
        "F32" | "<f4" | "float32" => Dtype::F32,
        "F16" | "<f2" | "float16" => Dtype::F16,
        "BF16" | "bfloat16" => Dtype::BF16,
        _ => Dtype::Other,
    }
}

/// safetensors: u64 LE header length N, N bytes of JSON, then the data;
/// each tensor's `data_offsets` are relative to the end of the header.
fn safetensors<S: Source + ?Sized>(file: &S, size: u64) -> Option<Vec<Range>> {
    let n = u64::from_le_bytes(read_at(file, 0, 8)?.try_into().ok()?);
    if n == 0 || n > MAX_HEADER || 8 + n > size || read_at(file, 8, 1)? != b"{" {
        return None;
    }
    let header = read_at(file, 8, n)?;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header).ok()?;
    let base = 8 + n;
    let mut out = Vec::new();
    for (name, t) in &json {
        if name == "__metadata__" {
            continue;
        }
        let offs = t.get("data_offsets")?.as_array()?;
        let (b, e) = (offs.first()?.as_u64()?, offs.get(1)?.as_u64()?);
        let dtype = dtype_of(t.get("dtype")?.as_str()?);
        out.push((base.checked_add(b)?, base.checked_add(e)?, dtype));
    }
    Some(out)
}

/// An npy header: "\x93NUMPY", version, header length (u16 v1, u32 v2/v3),
/// then a Python dict literal with 'descr', 'fortran_order' and 'shape'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Npy {
    /// Offset of the array data from the start of the npy.
    pub data: u64,
    pub dtype: Dtype,
    /// `F32`, `I64`, `BOOL` ..., or numpy's descr (`>f4`, `<U8`) otherwise.
    pub dtype_name: String,
    /// Bytes per element, when the descr says.
    pub elem: Option<u64>,
    /// None when the 'shape' is not a tuple of integers.
    pub shape: Option<Vec<u64>>,
}

/// `(offset of the dict, its length)` from the first 10 or 12 bytes.
fn npy_preamble(head: &[u8]) -> Option<(u64, u64)> {
    if head.len() < 10 || !head.starts_with(b"\x93NUMPY") {
        return None;
    }
    let (hlen, data) = match head[6] {
        1 => (u16::from_le_bytes([head[8], head[9]]) as u64, 10),
        2 | 3 if head.len() >= 12 => (u32::from_le_bytes(head[8..12].try_into().ok()?) as u64, 12),
        _ => return None,
    };
    (hlen <= MAX_HEADER).then_some((data, hlen))
}

/// Parses the header dict (`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`).
fn npy_dict(data: u64, dict: &[u8]) -> Option<Npy> {
    let dict = String::from_utf8_lossy(dict);
    let descr = dict.split("'descr':").nth(1)?.split('\'').nth(1)?;
    let shape = (|| {
        let t = dict
            .split("'shape':")
            .nth(1)?
            .trim_start()
            .strip_prefix('(')?;
        let t = &t[..t.find(')')?];
        t.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|x| x.trim_end_matches('L').parse().ok())
            .collect::<Option<Vec<u64>>>()
    })();
    let (name, elem) = numpy_dtype(descr);
    Some(Npy {
        data,
        dtype: dtype_of(descr),
        dtype_name: name,
        elem,
        shape,
    })
}

/// A numpy descr as `snap diff` names dtypes, and its element size.
fn numpy_dtype(descr: &str) -> (String, Option<u64>) {
    let little = descr.strip_prefix(['<', '|', '=']);
    let name = match little {
        Some("f2") => "F16",
        Some("f4") => "F32",
        Some("f8") => "F64",
        Some("i1") => "I8",
        Some("i2") => "I16",
        Some("i4") => "I32",
        Some("i8") => "I64",
        Some("u1") => "U8",
        Some("u2") => "U16",
        Some("u4") => "U32",
        Some("u8") => "U64",
        Some("b1") => "BOOL",
        Some("c8") => "C64",
        Some("c16") => "C128",
        _ => descr,
    };
    let digits = descr.trim_start_matches(|c: char| !c.is_ascii_digit());
    let elem = match descr.chars().nth(1) {
        Some('U') => digits.parse::<u64>().ok().and_then(|n| n.checked_mul(4)),
        _ => digits.parse().ok(),
    };
    (name.to_string(), elem)
}

/// The npy header of the array at `start` (ending at `end`) in `file`.
pub(crate) fn npy_header<S: Source + ?Sized>(file: &S, start: u64, end: u64) -> Option<Npy> {
    let head = read_at(file, start, 12.min(end.checked_sub(start)?))?;
    let (data, hlen) = npy_preamble(&head)?;
    let dict = read_at(file, start + data, hlen)?;
    let npy = npy_dict(data + hlen, &dict)?;
    (start.checked_add(npy.data)? <= end).then_some(npy)
}

/// The npy header at the start of a stream (an inflated npz entry).
pub(crate) fn npy_from_reader(mut r: impl std::io::Read) -> Option<Npy> {
    let mut head = [0u8; 10];
    r.read_exact(&mut head).ok()?;
    let mut head = head.to_vec();
    if head[6] != 1 {
        let mut more = [0u8; 2];
        r.read_exact(&mut more).ok()?;
        head.extend_from_slice(&more);
    }
    let (data, hlen) = npy_preamble(&head)?;
    let mut dict = Vec::new();
    std::io::Read::read_to_end(&mut r.take(hlen), &mut dict).ok()?;
    (dict.len() as u64 == hlen).then(|| npy_dict(data + hlen, &dict))?
}

/// npy: the header, then the data to the end of the array.
fn npy<S: Source + ?Sized>(file: &S, start: u64, size: u64) -> Option<Vec<Range>> {
    let h = npy_header(file, start, size)?;
    Some(vec![(start + h.data, size, h.dtype)])
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
    use std::io::Write;

    use super::*;

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

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
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
            for t in crate::ckpt::zip::tensors(&data[..], size, true).unwrap_or_default() {
                proptest::prop_assert!(t.start.checked_add(t.len).is_some_and(|e| e <= size));
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
