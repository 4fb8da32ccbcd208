//! Per-chunk codecs: each chunk is one zstd frame, or its raw bytes when
//! compression does not pay, or, for float tensor data, the float codec
//! (`float`: exponent plane rANS-coded, sign and mantissa planes zstd or
//! raw), or the float codec applied to its XOR with the same tensor chunk
//! of the previous checkpoint (`encode_delta`). The codec is recorded per
//! blob in the pack trailer, so codecs can be added without touching old
//! packs. Decoding checks the length; callers
//! verify the BLAKE3 id.
//!
//! Bounded decoding: a blob's plain length comes from a pack trailer or the
//! index, so from the repository, and a hostile one could declare gigabytes
//! for a few stored bytes. `decode` refuses a declared length over the
//! format's limit for its codec (`Codec::max_raw_len`) before allocating anything,
//! and a zstd frame larger than a chunk is decoded through a reader that
//! grows its output only as the frame really produces it.
//!
//! Why splitting helps: in trained fp32/fp16/bf16 weights the exponent takes
//! few values while the low mantissa bytes are close to random. Mixed
//! together, zstd finds little to model; split, the exponent plane
//! compresses well and the rest is left alone (the idea of ZipNN). The old
//! grouped codecs (`Group2Zstd`, `Group4Zstd`: bytes grouped by
//! significance, one zstd frame) are still decoded; new chunks no longer use
//! them.

pub mod float;
pub mod rans;

use std::cell::RefCell;

use std::io::Read;

use crate::error::{Error, Result};
use crate::format::pack::Codec;
use crate::format::MAX_CHUNK;

/// Compression must save at least 1/64 of the chunk, otherwise the chunk is
/// stored raw: reading it back is then a plain copy.
const MIN_SAVING_DIVISOR: usize = 64;

/// Bytes of a tensor chunk compressed plain to estimate plain zstd.
const SAMPLE: usize = 64 << 10;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn zstd_compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress(data).ok()
    })
}

/// Decodes one zstd frame to at most `raw_len` bytes. Up to a chunk's
/// length, into a buffer of exactly `raw_len` (the fast path every chunk
/// takes); above, only tree records, through a reader, so the memory used is
/// what the frame produces and never merely what the trailer declares.
fn zstd_decompress(stored: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let damaged = |e: std::io::Error| {
        Error::corrupt("chunk data", format!("zstd frame does not decode: {e}"))
    };
    if raw_len > MAX_CHUNK as usize {
        let mut out = Vec::new();
        zstd::stream::read::Decoder::with_buffer(stored)
            .map_err(damaged)?
            .take(raw_len as u64 + 1)
            .read_to_end(&mut out)
            .map_err(damaged)?;
        return Ok(out);
    }
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new().map_err(|e| Error::Other(format!("zstd: {e}")))?,
            );
        }
        let d = slot.as_mut().expect("set above");
        d.decompress(stored, raw_len)
            .map_err(|e| Error::corrupt("chunk data", format!("zstd frame does not decode: {e}")))
    })
}

/// `compressed` if it saves enough, else the raw bytes.
fn choose(codec: Codec, compressed: Option<Vec<u8>>, data: &[u8]) -> (Codec, Vec<u8>) {
    match compressed {
        Some(c) if c.len() + data.len() / MIN_SAVING_DIVISOR < data.len() => (codec, c),
        _ => (Codec::Raw, data.to_vec()),
    }
}

/// Encodes one chunk of opaque data: zstd or raw.
pub fn encode(data: &[u8], level: i32) -> (Codec, Vec<u8>) {
    choose(Codec::Zstd, zstd_compress(data, level), data)
}

/// Encodes one chunk of float tensor data with the float codec. Plain zstd
/// is estimated from a 64 KiB sample (a good estimator on float data), and
/// only if the float codec loses to that estimate is the chunk compressed
/// plain as well.
pub fn encode_tensor(data: &[u8], level: i32, layout: float::Layout) -> (Codec, Vec<u8>) {
    if data.len() < 4 * layout.elem() {
        return encode(data, level);
    }
    // None for a partial last element: stored plain.
    let Some(split) = float::encode(data, layout) else {
        return encode(data, level);
    };
    let sample = &data[..SAMPLE.min(data.len())];
    let plain_estimate =
        zstd_compress(sample, level).map_or(usize::MAX, |c| c.len() * (data.len() / sample.len()));
    if split.len() > plain_estimate {
        let (plain_codec, plain) = encode(data, level);
        if plain.len() < split.len() {
            return (plain_codec, plain);
        }
    }
    choose(Codec::Float, Some(split), data)
}

/// Bytes compared from each end of a chunk before a delta is tried.
const DELTA_PROBE: usize = 32 << 10;

/// `a ^ b`, byte by byte (equal lengths).
fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Encodes a float tensor chunk as its XOR with `base`, the same tensor's
/// bytes at the same place in an earlier checkpoint, coded by the float
/// codec (`Codec::FloatDelta`). Returns `None` when that does not pay: the
/// lengths differ, or a probe (the first and the last 32 KiB) codes smaller
/// alone than as a delta, or the delta does not save 1/64 over raw. Between
/// consecutive checkpoints most weights keep their sign, exponent and high
/// mantissa bits, so those planes of the XOR are zeros.
pub fn encode_delta(data: &[u8], base: &[u8], layout: float::Layout) -> Option<Vec<u8>> {
    if data.len() != base.len() || data.len() % layout.elem() != 0 || data.is_empty() {
        return None;
    }
    let probe = DELTA_PROBE.min(data.len() / 2) / layout.elem() * layout.elem();
    if probe > 0 {
        let ends = [0..probe, data.len() - probe..data.len()];
        let cost = |f: &dyn Fn(std::ops::Range<usize>) -> Vec<u8>| -> usize {
            ends.iter()
                .map(|r| float::encode(&f(r.clone()), layout).map_or(usize::MAX / 4, |e| e.len()))
                .sum()
        };
        let alone = cost(&|r| data[r].to_vec());
        let delta = cost(&|r| xor(&data[r.clone()], &base[r]));
        if delta >= alone {
            return None;
        }
    }
    let delta = float::encode(&xor(data, base), layout)?;
    (delta.len() + data.len() / MIN_SAVING_DIVISOR < data.len()).then_some(delta)
}

/// Refuses a declared plain length over `Codec::max_raw_len`, before
/// allocating.
fn check_raw_len(codec: Codec, raw_len: usize) -> Result<()> {
    let max = codec.max_raw_len();
    if raw_len > max {
        return Err(Error::corrupt(
            "chunk data",
            format!(
                "a {} blob declares {raw_len} plain bytes, more than the {max} the format allows",
                codec.name()
            ),
        ));
    }
    Ok(())
}

/// Decodes a `Codec::FloatDelta` blob against its base's bytes.
pub fn decode_delta(stored: &[u8], raw_len: usize, base: &[u8]) -> Result<Vec<u8>> {
    check_raw_len(Codec::FloatDelta, raw_len)?;
    if base.len() != raw_len {
        return Err(Error::corrupt(
            "chunk data",
            format!(
                "float delta of {raw_len} bytes against a base of {} bytes",
                base.len()
            ),
        ));
    }
    let mut out = decode(Codec::Float, stored, raw_len)?;
    for (o, b) in out.iter_mut().zip(base) {
        *o ^= b;
    }
    Ok(out)
}

/// Undoes the byte grouping of the old `Group2Zstd`/`Group4Zstd` codecs:
/// byte `j` of element `i` is at `data[j * n + i]` (`n` elements).
pub fn ungroup(data: &[u8], elem: usize) -> Vec<u8> {
    let n = data.len() / elem;
    let mut out = vec![0u8; data.len()];
    for (i, e) in out.chunks_exact_mut(elem).enumerate() {
        for (j, b) in e.iter_mut().enumerate() {
            *b = data[j * n + i];
        }
    }
    out
}

/// Decodes one stored blob to exactly `raw_len` bytes (a `FloatDelta` blob
/// goes through `decode_delta`). A `raw_len` over `codec.max_raw_len()` is
/// refused before anything is allocated.
pub fn decode(codec: Codec, stored: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    check_raw_len(codec, raw_len)?;
    let out = match codec {
        Codec::Raw => stored.to_vec(),
        Codec::Zstd => zstd_decompress(stored, raw_len)?,
        Codec::Group2Zstd | Codec::Group4Zstd => {
            let elem = if codec == Codec::Group2Zstd { 2 } else { 4 };
            if raw_len % elem != 0 {
                return Err(Error::corrupt(
                    "chunk data",
                    "grouped chunk length is not a whole number of elements",
                ));
            }
            ungroup(&zstd_decompress(stored, raw_len)?, elem)
        }
        Codec::Float => float::decode(stored, raw_len)?,
        Codec::FloatDelta => {
            return Err(Error::corrupt(
                "chunk data",
                "a float delta can only be decoded with its base",
            ))
        }
    };
    if out.len() != raw_len {
        return Err(Error::corrupt(
            "chunk data",
            format!("decoded {} bytes, expected {raw_len}", out.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte `j` of element `i` goes to `out[j * n + i]` (`n` elements).
    fn group(data: &[u8], elem: usize) -> Vec<u8> {
        let n = data.len() / elem;
        let mut out = vec![0u8; data.len()];
        for (i, e) in data.chunks_exact(elem).enumerate() {
            for (j, b) in e.iter().enumerate() {
                out[j * n + i] = *b;
            }
        }
        out
    }

    /// Seeded fp32 values around N(0, 0.02), like trained weights.
    fn weights(n: usize) -> Vec<u8> {
        let mut s = 0x9e3779b97f4a7c15u64;
        let mut out = Vec::with_capacity(n * 4);
        for _ in 0..n {
            let mut u = 0.0;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                u += (s >> 11) as f64 / (1u64 << 53) as f64;
            }
            out.extend_from_slice(&(((u - 2.0) * 0.035) as f32).to_le_bytes());
        }
        out
    }

    #[test]
    fn compressible_uses_zstd_and_random_stays_raw() {
        let text = b"epoch 1 loss 0.5\n".repeat(1000);
        let (codec, bytes) = encode(&text, 3);
        assert_eq!(codec, Codec::Zstd);
        assert_eq!(decode(codec, &bytes, text.len()).unwrap(), text);

        let noise: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let (codec, bytes) = encode(&noise, 3);
        assert_eq!(decode(codec, &bytes, noise.len()).unwrap(), noise);
    }

    #[test]
    fn wrong_length_is_corrupt() {
        let (codec, bytes) = encode(&[7u8; 4096], 3);
        assert!(decode(codec, &bytes, 4095).is_err());
    }

    /// A few stored bytes declaring a huge plain length are refused before
    /// any allocation of that size, and a frame that produces more than it
    /// declared is damaged whichever path decodes it.
    #[test]
    fn declared_lengths_are_capped() {
        let (_, zeros) = encode(&[0u8; 4096], 3);
        for codec in [Codec::Raw, Codec::Zstd, Codec::Float, Codec::Group4Zstd] {
            let too_big = codec.max_raw_len() + 1;
            let err = decode(codec, &zeros, too_big).unwrap_err().to_string();
            assert!(err.contains("more than"), "{codec:?}: {err}");
        }
        assert!(decode_delta(&zeros, MAX_CHUNK as usize + 1, &[]).is_err());
        // Tree-sized zstd goes through the reader: right length decodes,
        // a frame longer or shorter than declared does not.
        let big = vec![7u8; MAX_CHUNK as usize + 10];
        let (codec, enc) = encode(&big, 3);
        assert_eq!(codec, Codec::Zstd);
        assert_eq!(decode(codec, &enc, big.len()).unwrap(), big);
        assert!(decode(codec, &enc, big.len() - 1).is_err());
        assert!(decode(codec, &enc, big.len() + 1).is_err());
        // A small frame declaring a tree-sized length: an error, not 256 MiB.
        let tree_sized = crate::format::MAX_RECORD_BYTES;
        assert!(decode(Codec::Zstd, &zeros, tree_sized).is_err());
    }

    #[test]
    fn grouping_beats_zstd_on_fp32_weights() {
        let w = weights(256 << 10);
        let (plain_codec, plain) = encode(&w, 3);
        let (codec, grouped) = encode_tensor(&w, 3, float::Layout::F32);
        assert_eq!(codec, Codec::Float);
        assert!(
            grouped.len() < plain.len(),
            "grouped {} vs {plain_codec:?} {}",
            grouped.len(),
            plain.len()
        );
        assert_eq!(decode(codec, &grouped, w.len()).unwrap(), w);
        // bf16: the top two bytes of each fp32.
        let bf16: Vec<u8> = w.chunks_exact(4).flat_map(|e| [e[2], e[3]]).collect();
        let (codec, enc) = encode_tensor(&bf16, 3, float::Layout::BF16);
        assert_eq!(decode(codec, &enc, bf16.len()).unwrap(), bf16);
    }

    proptest::proptest! {
        #[test]
        fn group_round_trips(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000), elem in 1usize..9) {
            let data = &data[..data.len() / elem * elem];
            proptest::prop_assert_eq!(ungroup(&group(data, elem), elem), data);
        }

        #[test]
        fn tensor_chunks_round_trip(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000), l in 0usize..3) {
            let layout = [float::Layout::F32, float::Layout::BF16, float::Layout::F16][l];
            let data = &data[..data.len() / layout.elem() * layout.elem()];
            let (codec, enc) = encode_tensor(data, 3, layout);
            proptest::prop_assert_eq!(decode(codec, &enc, data.len()).unwrap(), data);
        }
    }
}
