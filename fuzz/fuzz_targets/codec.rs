//! Chunk codecs on arbitrary bytes: decoding a damaged blob of any codec is
//! an error, never a panic or a wrong length; and every float layout round
//! trips whatever the bytes, alone and as a delta against other bytes. The
//! declared plain length takes the whole u32 range a pack trailer can hold
//! (the input's bytes 1..5), so the caps on declared lengths are fuzzed too:
//! a length over `Codec::max_raw_len` must be refused, and nothing decodes
//! into more memory than that cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapstore::codec::{self, float::Layout};
use snapstore::format::pack::Codec;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let raw_len = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize;
    let body = &data[5..];
    if let Some(c) = Codec::from_u8(data[0] % 6) {
        if let Ok(out) = codec::decode(c, body, raw_len) {
            assert_eq!(out.len(), raw_len);
        }
        if raw_len > c.max_raw_len() {
            assert!(codec::decode(c, body, raw_len).is_err());
        }
    }
    // A base as long as declared when that is small, else a short one: the
    // length check must refuse it before anything of `raw_len` is built.
    let base_len = if raw_len <= 1 << 16 { raw_len } else { 1 << 16 };
    let base: Vec<u8> = body.iter().rev().cycle().take(base_len).copied().collect();
    if let Ok(out) = codec::decode_delta(body, raw_len, &base) {
        assert_eq!(out.len(), raw_len);
    }
    let layout = [Layout::F32, Layout::BF16, Layout::F16][usize::from(data[0] % 3)];
    let whole = &body[..body.len() / layout.elem() * layout.elem()];
    let (c, enc) = codec::encode_tensor(whole, 3, layout);
    assert_eq!(codec::decode(c, &enc, whole.len()).unwrap(), whole);
    let half = whole.len() / 2 / layout.elem() * layout.elem();
    let (a, b) = (&whole[..half], &whole[half..2 * half]);
    if let Some(enc) = codec::encode_delta(a, b, layout) {
        assert_eq!(codec::decode_delta(&enc, a.len(), b).unwrap(), a);
    }
});
