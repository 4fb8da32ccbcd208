//! Every record decoder on arbitrary bytes: none may panic or allocate beyond
//! what the input justifies, and whatever decodes must re-encode to a record
//! that decodes to the same value. A pack trailer is also built from the
//! input with its declared lengths (`offset` u64, `stored_len` and `raw_len`
//! u32, the blob area's end u64) over their full ranges, so the bounds and
//! the caps on declared lengths are fuzzed, not only the bincode layer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapstore::format::config::RepoConfig;
use snapstore::format::pack::{
    decode_footer, decode_header, decode_trailer, encode_trailer, Codec, PackEntry, FOOTER_LEN,
};
use snapstore::format::snapshot::Snapshot;
use snapstore::format::tree::Tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(data) {
        let (_, bytes) = tree.encode();
        assert_eq!(Tree::decode(&bytes).expect("re-encoded tree decodes"), tree);
    }
    if let Ok(snap) = Snapshot::decode(data) {
        let (_, bytes) = snap.encode();
        assert!(Snapshot::decode(&bytes).is_ok());
    }
    if let Ok(cfg) = RepoConfig::decode(data) {
        assert_eq!(
            RepoConfig::decode(&cfg.encode()).expect("re-encoded config decodes"),
            cfg
        );
    }
    let _ = decode_header(data);
    trailer_of_declared_lengths(data);
    if data.len() >= FOOTER_LEN {
        let (body, footer) = data.split_at(data.len() - FOOTER_LEN);
        if let Ok((len, sum)) = decode_footer(footer, data.len() as u64) {
            let start = body.len().saturating_sub(len as usize);
            let _ = decode_trailer(&body[start..], &sum, start as u64);
        }
    }
});

/// Reads up to 8 little-endian bytes from `data` at `*at` (zeros past the end).
fn take(data: &[u8], at: &mut usize, n: usize) -> u64 {
    let mut v = [0u8; 8];
    for (i, b) in v.iter_mut().take(n).enumerate() {
        *b = data.get(*at + i).copied().unwrap_or(0);
    }
    *at += n;
    u64::from_le_bytes(v)
}

/// A trailer of entries whose lengths and offsets come from the input;
/// whatever decodes is inside the blob area, without overlaps, and within
/// the codec's cap.
fn trailer_of_declared_lengths(data: &[u8]) {
    let mut at = 0;
    let blob_end = take(data, &mut at, 8);
    let mut entries = Vec::new();
    while at < data.len() && entries.len() < 8 {
        let codec = Codec::from_u8((take(data, &mut at, 1) % 6) as u8).expect("codecs 0..6");
        let id = snapstore::ChunkId::of(&at.to_le_bytes());
        entries.push(PackEntry {
            id,
            codec,
            offset: take(data, &mut at, 8),
            stored_len: take(data, &mut at, 4) as u32,
            raw_len: take(data, &mut at, 4) as u32,
            base: (codec == Codec::FloatDelta).then(|| snapstore::ChunkId::of(b"base")),
        });
    }
    let closing = encode_trailer(&entries);
    let (trailer, footer) = closing.split_at(closing.len() - FOOTER_LEN);
    let pack_len = blob_end.saturating_add(closing.len() as u64);
    let Ok((_, sum)) = decode_footer(footer, pack_len.max(closing.len() as u64 + 8)) else {
        return;
    };
    if let Ok(read) = decode_trailer(trailer, &sum, blob_end) {
        let mut pos = 8u64;
        for e in &read {
            assert!(e.offset >= pos && e.offset + e.stored_len as u64 <= blob_end);
            assert!(e.raw_len as usize <= e.codec.max_raw_len());
            pos = e.offset + e.stored_len as u64;
        }
    }
}
