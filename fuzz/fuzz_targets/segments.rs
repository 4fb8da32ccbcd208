//! The checkpoint segment parser on arbitrary bytes: never panics, and its
//! segments always cover the input exactly, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapstore::ckpt::segments;

fuzz_target!(|data: &[u8]| {
    let segs = segments(data, data.len() as u64, 256);
    let mut pos = 0;
    for s in &segs {
        assert_eq!(s.offset, pos);
        pos += s.len;
    }
    assert_eq!(pos, data.len() as u64);
});
