//! NumPy `.npy`: "\x93NUMPY", a version, a header length (u16 in version
//! 1, u32 in 2 and 3), a Python dict literal with 'descr', 'fortran_order'
//! and 'shape', then the array data. Read on its own (a `.npy` file) and
//! inside npz archives (`ckpt::npz`), from a `Source` or, for a deflated npz
//! entry, from the inflating stream.

use super::{read_at, Dtype, Range, Source, MAX_HEADER};

/// The first bytes of every npy.
pub(super) const MAGIC: &[u8] = b"\x93NUMPY";

/// An npy header, as parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Npy {
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
fn preamble(head: &[u8]) -> Option<(u64, u64)> {
    if head.len() < 10 || !head.starts_with(MAGIC) {
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
fn parse_dict(data: u64, dict: &[u8]) -> Option<Npy> {
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
        dtype: Dtype::of_name(descr),
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
pub(super) fn header<S: Source + ?Sized>(file: &S, start: u64, end: u64) -> Option<Npy> {
    let head = read_at(file, start, 12.min(end.checked_sub(start)?))?;
    let (data, hlen) = preamble(&head)?;
    let dict = read_at(file, start + data, hlen)?;
    let npy = parse_dict(data + hlen, &dict)?;
    (start.checked_add(npy.data)? <= end).then_some(npy)
}

/// The npy header at the start of a stream (an inflated npz entry).
pub(super) fn from_reader(mut r: impl std::io::Read) -> Option<Npy> {
    let mut head = [0u8; 10];
    r.read_exact(&mut head).ok()?;
    let mut head = head.to_vec();
    if head[6] != 1 {
        let mut more = [0u8; 2];
        r.read_exact(&mut more).ok()?;
        head.extend_from_slice(&more);
    }
    let (data, hlen) = preamble(&head)?;
    let mut dict = Vec::new();
    std::io::Read::read_to_end(&mut r.take(hlen), &mut dict).ok()?;
    (dict.len() as u64 == hlen).then(|| parse_dict(data + hlen, &dict))?
}

/// npy: the header, then the data to the end of the array.
pub(super) fn ranges<S: Source + ?Sized>(file: &S, start: u64, size: u64) -> Option<Vec<Range>> {
    let h = header(file, start, size)?;
    Some(vec![(start + h.data, size, h.dtype)])
}
