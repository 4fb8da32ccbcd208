//! Pack files: immutable containers of compressed blobs.
//!
//! ```text
//! header   "SNPK" | version u16 LE | kind u8 | reserved u8          (8 bytes)
//! blobs    one encoded blob after another (a zstd frame, or raw bytes)
//! trailer  envelope "SNPX" v1, bincode Vec<PackEntry>
//! footer   trailer_len u64 LE | BLAKE3(trailer) [32] | "SNPKEND1"     (48 bytes)
//! ```
//!
//! The trailer lists every blob, so the index can be rebuilt from packs alone.
//! A pack's id is the keyed BLAKE3 of the whole file (`PackId::hasher`).

use serde::{Deserialize, Serialize};

use super::{decode_body, encode_record, split_envelope, unsupported_version};
use crate::error::{Error, Result};
use crate::id::ChunkId;

pub const HEADER_MAGIC: &[u8; 4] = b"SNPK";
pub const TRAILER_MAGIC: &[u8; 4] = b"SNPX";
pub const FOOTER_MAGIC: &[u8; 8] = b"SNPKEND1";
pub const VERSION: u16 = 1;
/// Trailer version: 2 added `Codec::Float`. Version-1 trailers (written
/// before it) are still read; an older snap rejects a version-2 trailer with
/// "upgrade snap" instead of failing on a codec it does not know.
pub const TRAILER_VERSION: u16 = 2;
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
}

impl Codec {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Group2Zstd),
            3 => Some(Codec::Group4Zstd),
            4 => Some(Codec::Float),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Zstd => "zstd",
            Codec::Group2Zstd => "group2+zstd",
            Codec::Group4Zstd => "group4+zstd",
            Codec::Float => "float",
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
    let mut entries: Vec<PackEntry> = decode_body(WHAT, body)?;
    if version < 2 && entries.iter().any(|e| e.codec == Codec::Float) {
        return Err(Error::corrupt(WHAT, "float codec in a version-1 trailer"));
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
        };
        let with_version = |entries: &[PackEntry], version: u16| {
            let t = encode_record(TRAILER_MAGIC, version, &entries);
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
        let (t, sum) = with_version(&[entry(Codec::Zstd)], 3);
        let err = decode_trailer(&t, &sum, 100).unwrap_err().to_string();
        assert!(err.contains("upgrade snap"), "{err}");
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
                "534e5058020001",
                "0b8b60248fad7ac6dfac221b7e01a8b91c772421a15b387dd1fb2d6a94aee438",
                "00080303",
                "2b00000000000000",
                "f110090dfea8e69b2145c5d224e786a4ffaa25f0f4ff1c8beb38dd3b08dba8b2",
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
        }];
        let bytes = encode_trailer(&entries);
        let (tlen, sum) =
            decode_footer(&bytes[bytes.len() - FOOTER_LEN..], 18 + bytes.len() as u64).unwrap();
        let got = decode_trailer(&bytes[..tlen as usize], &sum, 18).unwrap();
        assert_eq!(got, entries);
        assert!(decode_trailer(&bytes[..tlen as usize], &sum, 17).is_err());
    }
}
