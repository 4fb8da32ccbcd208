//! Pack files: immutable containers of compressed blobs.
//!
//! ```text
//! header   "SNPK" | version u16 LE | kind u8 | reserved u8          (8 bytes)
//! blobs    one encoded blob after another (a zstd frame, or raw bytes)
//! trailer  envelope "SNPX" v3 (v1 and v2 still read), bincode Vec<PackEntry>
//! footer   trailer_len u64 LE | BLAKE3(trailer) [32] | "SNPKEND1"     (48 bytes)
//! ```
//!
//! The trailer lists every blob, so the index can be rebuilt from packs alone.
//! A pack's id is the keyed BLAKE3 of the whole file (`PackId::hasher`).

use serde::{Deserialize, Serialize};

use super::{
    decode_body, encode_record, split_envelope, unsupported_version, MAX_CHUNK, MAX_RECORD_BYTES,
};
use crate::error::{Error, Result};
use crate::id::ChunkId;

pub const HEADER_MAGIC: &[u8; 4] = b"SNPK";
pub const TRAILER_MAGIC: &[u8; 4] = b"SNPX";
pub const FOOTER_MAGIC: &[u8; 8] = b"SNPKEND1";
pub const VERSION: u16 = 1;
/// Trailer version: 2 added `Codec::Float`, 3 added `Codec::FloatDelta` and
/// the entry's `base`. Older trailers (no `base` field) are still read; an
/// older snap rejects a newer trailer with "upgrade snap" instead of failing
/// on a codec it does not know.
pub const TRAILER_VERSION: u16 = 3;
pub const HEADER_LEN: usize = 8;
pub const FOOTER_LEN: usize = 48;

/// What a pack holds. File data and tree records never share a pack, so
/// pruning file data never rewrites metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PackKind {
    Data = 0,
    Tree = 1,
}

impl PackKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(PackKind::Data),
            1 => Some(PackKind::Tree),
            _ => None,
        }
    }

    /// The largest plain length a blob of this kind may declare: a chunk
    /// at most `MAX_CHUNK`, a tree record at most `MAX_RECORD_BYTES`.
    pub fn max_raw_len(self) -> usize {
        match self {
            PackKind::Data => MAX_CHUNK as usize,
            PackKind::Tree => MAX_RECORD_BYTES,
        }
    }
}

/// How one blob is stored. Recorded per blob so codecs can be added without
/// rewriting old packs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    /// The plain bytes (compression did not pay).
    Raw = 0,
    /// One zstd frame.
    Zstd = 1,
    /// Bytes of 2-byte elements (fp16, bf16) grouped by significance (all
    /// first bytes, then all second bytes), then one zstd frame.
    Group2Zstd = 2,
    /// The same for 4-byte elements (fp32).
    Group4Zstd = 3,
    /// Float tensor data split into an rANS-coded exponent plane and zstd
    /// (or raw) sign and mantissa planes; layout in `codec::float`.
    Float = 4,
    /// Float tensor data stored as its XOR with an earlier chunk of the same
    /// tensor (the entry's `base`, itself never a delta), the XOR coded by
    /// the float codec. Consecutive checkpoints share most sign, exponent
    /// and high mantissa bits, so the XOR is mostly zero bytes.
    FloatDelta = 5,
}

impl Codec {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Group2Zstd),
            3 => Some(Codec::Group4Zstd),
            4 => Some(Codec::Float),
            5 => Some(Codec::FloatDelta),
            _ => None,
        }
    }

    /// The largest plain length a blob of this codec may declare: the
    /// codecs only float tensor chunks use (grouped, float, float delta) at
    /// most `MAX_CHUNK`; raw and zstd, which also store tree records, at
    /// most `MAX_RECORD_BYTES`. What a blob of a given kind may declare is
    /// narrower still (`PackKind::max_raw_len`).
    pub fn max_raw_len(self) -> usize {
        match self {
            Codec::Raw | Codec::Zstd => MAX_RECORD_BYTES,
            Codec::Group2Zstd | Codec::Group4Zstd | Codec::Float | Codec::FloatDelta => {
                MAX_CHUNK as usize
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Zstd => "zstd",
            Codec::Group2Zstd => "group2+zstd",
            Codec::Group4Zstd => "group4+zstd",
            Codec::Float => "float",
            Codec::FloatDelta => "float-delta",
        }
    }
}

/// One blob of a pack. For data packs the id is the chunk id; for tree packs
/// it is the tree id's bytes (stored in the same field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    pub id: ChunkId,
    pub codec: Codec,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    /// The chunk a `FloatDelta` blob is decoded against; `None` for every
    /// other codec. Kept in the trailer so that the index (and pruning,
    /// which must keep every base a kept chunk needs) can be rebuilt from
    /// packs alone.
    pub base: Option<ChunkId>,
}

/// A trailer entry of versions 1 and 2, before `base`.
#[derive(Deserialize)]
struct PackEntryV2 {
    id: ChunkId,
    codec: Codec,
    offset: u64,
    stored_len: u32,
    raw_len: u32,
}

pub fn encode_header(kind: PackKind) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(HEADER_MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[6] = kind as u8;
    h
}

pub fn decode_header(bytes: &[u8]) -> Result<PackKind> {
    const WHAT: &str = "pack header";
    if bytes.len() < HEADER_LEN || &bytes[..4] != HEADER_MAGIC {
        return Err(Error::corrupt(WHAT, "missing SNPK magic"));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(unsupported_version(WHAT, version, VERSION));
    }
    PackKind::from_u8(bytes[6])
        .ok_or_else(|| Error::corrupt(WHAT, format!("unknown pack kind {}", bytes[6])))
}

/// Encodes the trailer and footer that close a pack.
pub fn encode_trailer(entries: &[PackEntry]) -> Vec<u8> {
    let trailer = encode_record(TRAILER_MAGIC, TRAILER_VERSION, &entries);
    let mut out = Vec::with_capacity(trailer.len() + FOOTER_LEN);
    out.extend_from_slice(&trailer);
    out.extend_from_slice(&(trailer.len() as u64).to_le_bytes());
    out.extend_from_slice(blake3::hash(&trailer).as_bytes());
    out.extend_from_slice(FOOTER_MAGIC);
    out
}

/// Reads the footer (the last `FOOTER_LEN` bytes of a pack of `pack_len`
/// bytes) and returns the trailer's length.
pub fn decode_footer(footer: &[u8], pack_len: u64) -> Result<(u64, [u8; 32])> {
    const WHAT: &str = "pack footer";
    if footer.len() != FOOTER_LEN || &footer[40..48] != FOOTER_MAGIC {
        return Err(Error::corrupt(
            WHAT,
            "missing SNPKEND1 magic (truncated pack?)",
        ));
    }
    let len = u64::from_le_bytes(footer[..8].try_into().expect("8-byte slice"));
    let max = pack_len.saturating_sub((HEADER_LEN + FOOTER_LEN) as u64);
    if len > max {
        return Err(Error::corrupt(
            WHAT,
            format!("trailer length {len} exceeds the pack"),
        ));
    }
    let sum: [u8; 32] = footer[8..40].try_into().expect("32-byte slice");
    Ok((len, sum))
}

/// Decodes and validates a trailer: checksum, and every entry inside the
/// blob area `[HEADER_LEN, blob_end)` without overlaps.
pub fn decode_trailer(trailer: &[u8], sum: &[u8; 32], blob_end: u64) -> Result<Vec<PackEntry>> {
    const WHAT: &str = "pack trailer";
    if blake3::hash(trailer).as_bytes() != sum {
        return Err(Error::corrupt(WHAT, "checksum mismatch"));
    }
    let (version, body) = split_envelope(WHAT, TRAILER_MAGIC, trailer)?;
    if version == 0 || version > TRAILER_VERSION {
        return Err(unsupported_version(WHAT, version, TRAILER_VERSION));
    }
    let mut entries: Vec<PackEntry> = if version < 3 {
        let old: Vec<PackEntryV2> = decode_body(WHAT, body)?;
        old.into_iter()
            .map(|e| PackEntry {
                id: e.id,
                codec: e.codec,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
                base: None,
            })
            .collect()
    } else {
        decode_body(WHAT, body)?
    };
    for e in &entries {
        let introduced = match e.codec {
            Codec::Float => 2,
            Codec::FloatDelta => 3,
            _ => 1,
        };
        if version < introduced {
            return Err(Error::corrupt(
                WHAT,
                format!("codec {} in a version-{version} trailer", e.codec.name()),
            ));
        }
        if (e.codec == Codec::FloatDelta) != e.base.is_some() {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "entry {}: a base goes with the float-delta codec and only with it",
                    e.id.short()
                ),
            ));
        }
        if e.raw_len as usize > e.codec.max_raw_len() {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "entry {} declares {} plain bytes, more than the {} a {} blob may hold",
                    e.id.short(),
                    e.raw_len,
                    e.codec.max_raw_len(),
                    e.codec.name()
                ),
            ));
        }
        if e.base == Some(e.id) {
            return Err(Error::corrupt(
                WHAT,
                format!("entry {} is a delta against itself", e.id.short()),
            ));
        }
    }
    entries.sort_by_key(|e| e.offset);
    let mut pos = HEADER_LEN as u64;
    for e in &entries {
        let end = e.offset.checked_add(e.stored_len as u64);
        if e.offset < pos || end.is_none_or(|end| end > blob_end) {
            return Err(Error::corrupt(
                WHAT,
                format!("entry {} out of bounds", e.id.short()),
            ));
        }
        pos = e.offset + e.stored_len as u64;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trailers written before codec 4 (version 1) still read; a version-1
    /// trailer that names codec 4 is damaged, and a newer version is refused
    /// with "upgrade snap".
    #[test]
    fn trailer_versions() {
        let entry = |codec| PackEntry {
            id: ChunkId::of(b"a"),
            codec,
            offset: 8,
            stored_len: 10,
            raw_len: 20,
            base: None,
        };
        // Versions 1 and 2 have no `base` field.
        let with_version = |entries: &[PackEntry], version: u16| {
            let t = if version < 3 {
                let old: Vec<_> = entries
                    .iter()
                    .map(|e| (e.id, e.codec, e.offset, e.stored_len, e.raw_len))
                    .collect();
                encode_record(TRAILER_MAGIC, version, &old)
            } else {
                encode_record(TRAILER_MAGIC, version, &entries)
            };
            let sum = *blake3::hash(&t).as_bytes();
            (t, sum)
        };
        let (t, sum) = with_version(&[entry(Codec::Zstd)], 1);
        assert_eq!(decode_trailer(&t, &sum, 100).unwrap(), [entry(Codec::Zstd)]);
        let (t, sum) = with_version(&[entry(Codec::Float)], 1);
        assert!(decode_trailer(&t, &sum, 100).is_err());
        let (t, sum) = with_version(&[entry(Codec::Float)], 2);
        assert_eq!(
            decode_trailer(&t, &sum, 100).unwrap(),
            [entry(Codec::Float)]
        );
        let delta = PackEntry {
            codec: Codec::FloatDelta,
            base: Some(ChunkId::of(b"b")),
            ..entry(Codec::FloatDelta)
        };
        let (t, sum) = with_version(std::slice::from_ref(&delta), 3);
        assert_eq!(
            decode_trailer(&t, &sum, 100).unwrap(),
            std::slice::from_ref(&delta)
        );
        // A delta without a base, a base on another codec, a delta against
        // itself: damaged.
        for bad in [
            PackEntry {
                base: None,
                ..delta.clone()
            },
            PackEntry {
                codec: Codec::Float,
                ..delta.clone()
            },
            PackEntry {
                base: Some(delta.id),
                ..delta.clone()
            },
        ] {
            let (t, sum) = with_version(&[bad], 3);
            assert!(decode_trailer(&t, &sum, 100).is_err());
        }
        let (t, sum) = with_version(&[entry(Codec::Zstd)], 4);
        let err = decode_trailer(&t, &sum, 100).unwrap_err().to_string();
        assert!(err.contains("upgrade snap"), "{err}");
    }

    /// A declared plain length over what the entry's codec may hold is
    /// damage, refused with the trailer; at the limit it reads.
    #[test]
    fn declared_lengths_are_capped_per_codec() {
        let entry = |codec, raw_len| PackEntry {
            id: ChunkId::of(b"a"),
            codec,
            offset: 8,
            stored_len: 10,
            raw_len,
            base: None,
        };
        let read = |e: PackEntry| {
            let t = encode_record(TRAILER_MAGIC, TRAILER_VERSION, &vec![e]);
            decode_trailer(&t, blake3::hash(&t).as_bytes(), 100)
        };
        for codec in [Codec::Raw, Codec::Zstd, Codec::Float, Codec::Group2Zstd] {
            let max = codec.max_raw_len() as u32;
            assert!(read(entry(codec, max)).is_ok(), "{codec:?}");
            let err = read(entry(codec, max + 1)).unwrap_err().to_string();
            assert!(err.contains("declares"), "{codec:?}: {err}");
        }
        assert_eq!(Codec::Float.max_raw_len(), MAX_CHUNK as usize);
        assert_eq!(PackKind::Data.max_raw_len(), MAX_CHUNK as usize);
        assert_eq!(PackKind::Tree.max_raw_len(), MAX_RECORD_BYTES);
    }

    /// The example pack of docs/format.md, byte for byte.
    #[test]
    fn documented_example_pack() {
        let entries = vec![PackEntry {
            id: ChunkId::of(b"hi\n"),
            codec: Codec::Raw,
            offset: 8,
            stored_len: 3,
            raw_len: 3,
            base: None,
        }];
        let mut pack = encode_header(PackKind::Data).to_vec();
        pack.extend_from_slice(b"hi\n");
        pack.extend_from_slice(&encode_trailer(&entries));
        let hex: String = pack.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "534e504b01000000",
                "68690a",
                "534e5058030001",
                "0b8b60248fad7ac6dfac221b7e01a8b91c772421a15b387dd1fb2d6a94aee438",
                "0008030300",
                "2c00000000000000",
                "56b3a15af1540828e5a6188840c43baf5037fb8882cd0dd19943ff0ec978a6ae",
                "534e504b454e4431",
            )
        );
    }

    #[test]
    fn trailer_round_trip() {
        let entries = vec![PackEntry {
            id: ChunkId::of(b"a"),
            codec: Codec::Zstd,
            offset: 8,
            stored_len: 10,
            raw_len: 20,
            base: None,
        }];
        let bytes = encode_trailer(&entries);
        let (tlen, sum) =
            decode_footer(&bytes[bytes.len() - FOOTER_LEN..], 18 + bytes.len() as u64).unwrap();
        let got = decode_trailer(&bytes[..tlen as usize], &sum, 18).unwrap();
        assert_eq!(got, entries);
        assert!(decode_trailer(&bytes[..tlen as usize], &sum, 17).is_err());
    }
}
