//! Per-chunk codecs: each chunk is one zstd frame, or its raw bytes when
//! compression does not pay. The codec is recorded per blob in the pack
//! trailer, so new codecs (float byte-grouping) can be added without touching
//! old packs. Decoding checks the length; callers verify the BLAKE3 id.

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::format::pack::Codec;

/// Compression must save at least 1/64 of the chunk, otherwise the chunk is
/// stored raw: reading it back is then a plain copy.
const MIN_SAVING_DIVISOR: usize = 64;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Encodes one chunk, choosing zstd or raw. Returns the codec and the bytes.
pub fn encode(data: &[u8], level: i32) -> (Codec, Vec<u8>) {
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let c = zstd::bulk::Compressor::new(level).ok()?;
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress(data).ok()
    });
    match compressed {
        Some(c) if c.len() + data.len() / MIN_SAVING_DIVISOR < data.len() => (Codec::Zstd, c),
        _ => (Codec::Raw, data.to_vec()),
    }
}

/// Decodes one stored blob to exactly `raw_len` bytes.
pub fn decode(codec: Codec, stored: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let out = match codec {
        Codec::Raw => stored.to_vec(),
        Codec::Zstd => DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| Error::Other(format!("zstd: {e}")))?,
                );
            }
            let d = slot.as_mut().expect("set above");
            d.decompress(stored, raw_len).map_err(|e| {
                Error::corrupt("chunk data", format!("zstd frame does not decode: {e}"))
            })
        })?,
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
}
