//! Chunk codecs on arbitrary bytes: decoding a damaged blob of any codec is
//! an error, never a panic or a wrong length; and every float layout round
//! trips whatever the bytes, alone and as a delta against other bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapstore::codec::{self, float::Layout};
use snapstore::format::pack::Codec;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let raw_len = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let body = &data[3..];
    if let Some(c) = Codec::from_u8(data[0] % 6) {
        if let Ok(out) = codec::decode(c, body, raw_len) {
            assert_eq!(out.len(), raw_len);
        }
    }
    let base: Vec<u8> = body.iter().rev().cycle().take(raw_len).copied().collect();
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
