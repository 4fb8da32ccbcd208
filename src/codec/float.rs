//! The float codec (`Codec::Float`): a tensor chunk is split into its
//! exponent plane and the rest. The exponent plane, skewed and small, is
//! rANS-coded (or zstd when it is nearly constant, where LZ matching wins);
//! the rest, sign and mantissa bytes that are close to random, is grouped by
//! significance and given to zstd -1, or kept raw when that does not pay.
//!
//! Layouts (the first byte of the blob):
//!
//! | layout | dtype | exponent plane      | rest, plane after plane          |
//! |--------|-------|---------------------|----------------------------------|
//! | 1      | fp32  | bits 30..23         | (m22..16 << 1 \| sign), m15..8, m7..0 |
//! | 2      | bf16  | bits 14..7          | (m6..0 << 1 \| sign)             |
//! | 3      | fp16  | high byte (s, e, m) | low byte                          |
//!
//! Moving the sign next to the mantissa gives the exponent a byte of its
//! own: its entropy is then that of the exponent alone, not of exponent and
//! sign mixed, which is most of ZipNN's gain on fp32 and bf16.

use super::rans;
use crate::error::{Error, Result};

/// The element type of a float chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    F32 = 1,
    BF16 = 2,
    F16 = 3,
}

impl Layout {
    pub fn elem(self) -> usize {
        match self {
            Layout::F32 => 4,
            Layout::BF16 | Layout::F16 => 2,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Layout::F32),
            2 => Some(Layout::BF16),
            3 => Some(Layout::F16),
            _ => None,
        }
    }
}

/// How a plane is stored.
const RAW: u8 = 0;
const ZSTD: u8 = 1;
const RANS: u8 = 2;

/// An exponent plane whose rANS estimate is under this many bits per symbol
/// is nearly constant (zeros, a LayerNorm weight of ones): zstd's matches
/// may then beat any order-0 coder, so both are tried.
const TRY_ZSTD_BELOW_BITS: usize = 1;

/// zstd level for the rest planes: they are close to random, so only
/// entropy coding finds anything and level 1 is as good as any.
const REST_LEVEL: i32 = 1;

/// Header: layout, exponent mode, rest mode, exponent stream length (u32 LE).
const HEADER: usize = 7;

/// Splits `data` (whole elements) into its exponent plane and the rest.
fn split(data: &[u8], layout: Layout) -> (Vec<u8>, Vec<u8>) {
    match layout {
        Layout::F32 => {
            let n = data.len() / 4;
            let mut exp = vec![0u8; n];
            let mut rest = vec![0u8; 3 * n];
            let (top, low) = rest.split_at_mut(n);
            let (mid, low) = low.split_at_mut(n);
            for (i, e) in data.chunks_exact(4).enumerate() {
                let u = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                exp[i] = (u >> 23) as u8;
                top[i] = ((u >> 15) as u8 & 0xfe) | (u >> 31) as u8;
                mid[i] = e[1];
                low[i] = e[0];
            }
            (exp, rest)
        }
        Layout::BF16 => {
            let n = data.len() / 2;
            let mut exp = vec![0u8; n];
            let mut rest = vec![0u8; n];
            for (i, e) in data.chunks_exact(2).enumerate() {
                let v = u16::from_le_bytes([e[0], e[1]]);
                exp[i] = (v >> 7) as u8;
                rest[i] = ((v << 1) as u8) | (v >> 15) as u8;
            }
            (exp, rest)
        }
        Layout::F16 => {
            let n = data.len() / 2;
            let mut exp = vec![0u8; n];
            let mut rest = vec![0u8; n];
            for (i, e) in data.chunks_exact(2).enumerate() {
                exp[i] = e[1];
                rest[i] = e[0];
            }
            (exp, rest)
        }
    }
}

/// The inverse of `split`.
fn join(exp: &[u8], rest: &[u8], layout: Layout) -> Vec<u8> {
    let n = exp.len();
    let mut out = vec![0u8; n * layout.elem()];
    match layout {
        Layout::F32 => {
            let (top, low) = rest.split_at(n);
            let (mid, low) = low.split_at(n);
            for (i, o) in out.chunks_exact_mut(4).enumerate() {
                let u = (u32::from(top[i] & 1) << 31)
                    | (u32::from(exp[i]) << 23)
                    | (u32::from(top[i] >> 1) << 16)
                    | (u32::from(mid[i]) << 8)
                    | u32::from(low[i]);
                o.copy_from_slice(&u.to_le_bytes());
            }
        }
        Layout::BF16 => {
            for (i, o) in out.chunks_exact_mut(2).enumerate() {
                let r = u16::from(rest[i]);
                let v = ((r & 1) << 15) | (u16::from(exp[i]) << 7) | (r >> 1);
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        Layout::F16 => {
            for (i, o) in out.chunks_exact_mut(2).enumerate() {
                o[0] = rest[i];
                o[1] = exp[i];
            }
        }
    }
    out
}

/// zstd if it saves at least 1/64, else raw.
fn pack_plane(plane: &[u8], level: i32) -> (u8, Vec<u8>) {
    match super::zstd_compress(plane, level) {
        Some(c) if c.len() + plane.len() / 64 < plane.len() => (ZSTD, c),
        _ => (RAW, plane.to_vec()),
    }
}

/// Encodes whole elements of `layout`; None if `data` is not whole elements.
pub fn encode(data: &[u8], layout: Layout) -> Option<Vec<u8>> {
    if data.len() % layout.elem() != 0 {
        return None;
    }
    let (exp, rest) = split(data, layout);
    let counts = rans::histogram(&exp);
    let model = rans::Model::of(&counts);
    let estimate = rans::estimate(&counts, &model);
    let mut exp_mode = RANS;
    let mut exp_stream = Vec::with_capacity(estimate + 64);
    rans::encode(&exp, &model, &mut exp_stream);
    if estimate * 8 < exp.len() * TRY_ZSTD_BELOW_BITS {
        if let Some(z) = super::zstd_compress(&exp, REST_LEVEL) {
            if z.len() < exp_stream.len() {
                exp_mode = ZSTD;
                exp_stream = z;
            }
        }
    }
    let (rest_mode, rest_stream) = pack_plane(&rest, REST_LEVEL);
    let mut out = Vec::with_capacity(HEADER + exp_stream.len() + rest_stream.len());
    out.extend_from_slice(&[layout as u8, exp_mode, rest_mode]);
    out.extend_from_slice(&u32::try_from(exp_stream.len()).ok()?.to_le_bytes());
    out.extend_from_slice(&exp_stream);
    out.extend_from_slice(&rest_stream);
    Some(out)
}

fn damaged(why: impl Into<String>) -> Error {
    Error::corrupt("chunk data", why.into())
}

fn unpack_plane(mode: u8, stream: &[u8], len: usize) -> Result<Vec<u8>> {
    let plane = match mode {
        RAW => stream.to_vec(),
        ZSTD => super::zstd_decompress(stream, len)?,
        RANS => rans::decode(stream, len).map_err(damaged)?,
        _ => return Err(damaged(format!("unknown float plane mode {mode}"))),
    };
    if plane.len() != len {
        return Err(damaged(format!(
            "float plane decoded to {} bytes, expected {len}",
            plane.len()
        )));
    }
    Ok(plane)
}

/// Decodes a blob made by `encode` to exactly `raw_len` bytes.
pub fn decode(stored: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    if stored.len() < HEADER {
        return Err(damaged("float chunk header is truncated"));
    }
    let layout = Layout::from_u8(stored[0])
        .ok_or_else(|| damaged(format!("unknown float layout {}", stored[0])))?;
    let elem = layout.elem();
    if raw_len % elem != 0 {
        return Err(damaged(
            "float chunk length is not a whole number of elements",
        ));
    }
    let n = raw_len / elem;
    let exp_len = u32::from_le_bytes([stored[3], stored[4], stored[5], stored[6]]) as usize;
    let body = &stored[HEADER..];
    if exp_len > body.len() {
        return Err(damaged("float chunk exponent stream is truncated"));
    }
    let (exp_stream, rest_stream) = body.split_at(exp_len);
    let exp = unpack_plane(stored[1], exp_stream, n)?;
    let rest = unpack_plane(stored[2], rest_stream, raw_len - n)?;
    Ok(join(&exp, &rest, layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_join_round_trip_every_layout() {
        let data: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        for layout in [Layout::F32, Layout::BF16, Layout::F16] {
            let (e, r) = split(&data, layout);
            assert_eq!(join(&e, &r, layout), data, "{layout:?}");
            let enc = encode(&data, layout).unwrap();
            assert_eq!(decode(&enc, data.len()).unwrap(), data, "{layout:?}");
        }
    }

    #[test]
    fn fp32_exponent_is_its_own_byte() {
        let x = -1.5f32; // sign 1, exponent 127, mantissa 0x400000
        let (e, r) = split(&x.to_le_bytes(), Layout::F32);
        assert_eq!(e, [127]);
        assert_eq!(r, [(0x40 << 1) | 1, 0, 0]);
        let y = half_bits(-1.5); // bf16 of -1.5: 0xbfc0
        let (e, r) = split(&y.to_le_bytes(), Layout::BF16);
        assert_eq!(e, [127]);
        assert_eq!(r, [(0x40 << 1) | 1]);
    }

    fn half_bits(x: f32) -> u16 {
        (x.to_bits() >> 16) as u16
    }

    #[test]
    fn constant_tensors_use_zstd_for_the_exponent() {
        let ones: Vec<u8> = std::iter::repeat_n(1.0f32.to_le_bytes(), 50_000)
            .flatten()
            .collect();
        let enc = encode(&ones, Layout::F32).unwrap();
        assert!(enc.len() < 200, "{} bytes for 50k ones", enc.len());
        assert_eq!(decode(&enc, ones.len()).unwrap(), ones);
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        let data: Vec<u8> = (0..8000u32).map(|i| (i * 31 % 251) as u8).collect();
        let enc = encode(&data, Layout::F32).unwrap();
        assert!(decode(&enc[..3], data.len()).is_err());
        assert!(decode(&enc, data.len() + 4).is_err());
        assert!(decode(&enc, data.len() + 1).is_err());
        let mut bad = enc.clone();
        bad[0] = 9;
        assert!(decode(&bad, data.len()).is_err());
        let mut bad = enc.clone();
        bad[3] = 0xff;
        bad[6] = 0xff;
        assert!(decode(&bad, data.len()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000), l in 1u8..4) {
            let layout = Layout::from_u8(l).unwrap();
            let data = &data[..data.len() / layout.elem() * layout.elem()];
            let enc = encode(data, layout).unwrap();
            proptest::prop_assert_eq!(decode(&enc, data.len()).unwrap(), data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), n in 0usize..4000) {
            let _ = decode(&data, n);
        }
    }
}
