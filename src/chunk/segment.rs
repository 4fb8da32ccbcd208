//! Format-aware segmenting: checkpoint files are cut into segments (the
//! header or wrapper, and one segment per tensor) so that chunk boundaries
//! fall on tensor boundaries and an unchanged tensor always dedups, whatever
//! changed before it in the file. Segmenting only moves cut points: the
//! file's bytes are stored and restored unchanged.
//!
//! Formats: safetensors (8-byte header length + JSON header with data
//! offsets), NumPy `.npy` (magic, header, data), and zip containers (PyTorch
//! `.pt`/`.pth`/`.ckpt`, NumPy `.npz`), whose stored entries are tensor
//! storages. Anything unknown, malformed or truncated gets one segment: the
//! whole file, plain CDC. Parsing never fails a commit, and reads at most
//! `MAX_HEADER` bytes of header.

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

fn read_at<S: Source + ?Sized>(file: &S, offset: u64, len: u64) -> Option<Vec<u8>> {
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
        zip_entries(file, size)?
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

/// npy: "\x93NUMPY", version, header length (u16 v1, u32 v2/v3), a dict
/// with 'descr', then the data to the end of the array.
fn npy<S: Source + ?Sized>(file: &S, start: u64, size: u64) -> Option<Vec<Range>> {
    let head = read_at(file, start, 12.min(size.checked_sub(start)?))?;
    if head.len() < 10 {
        return None;
    }
    let (hlen, data) = match head[6] {
        1 => (u16::from_le_bytes([head[8], head[9]]) as u64, 10),
        2 | 3 if head.len() >= 12 => (u32::from_le_bytes(head[8..12].try_into().ok()?) as u64, 12),
        _ => return None,
    };
    if hlen > MAX_HEADER {
        return None;
    }
    let dict = read_at(file, start + data, hlen)?;
    let dict = String::from_utf8_lossy(&dict);
    let descr = dict
        .split("'descr':")
        .nth(1)?
        .split('\'')
        .nth(1)?
        .to_string();
    let begin = start.checked_add(data + hlen)?;
    (begin <= size).then(|| vec![(begin, size, dtype_of(&descr))])
}

/// zip (PyTorch checkpoints, npz): every stored (uncompressed) entry's data
/// is a segment; a stored `.npy` inside an npz is split further.
fn zip_entries<S: Source + ?Sized>(file: &S, len: u64) -> Option<Vec<Range>> {
    let mut archive = zip::ZipArchive::new(PosReader { file, pos: 0, len }).ok()?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).ok()?;
        if entry.compression() != zip::CompressionMethod::Stored || entry.is_dir() {
            continue;
        }
        let (b, len) = (entry.data_start(), entry.compressed_size());
        let e = b.checked_add(len)?;
        let is_npy = entry.name().ends_with(".npy");
        drop(entry);
        match is_npy.then(|| npy(file, b, e)).flatten() {
            Some(inner) => out.extend(inner),
            None => out.push((b, e, Dtype::Other)),
        }
    }
    Some(out)
}

/// `Read + Seek` over a file through positional reads, with its own offset:
/// parsing never moves the file's cursor, which the chunker reads from.
struct PosReader<'a, S: Source + ?Sized> {
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

    proptest::proptest! {
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
