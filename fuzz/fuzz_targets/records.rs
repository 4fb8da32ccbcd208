//! Every record decoder on arbitrary bytes: none may panic or allocate beyond
//! what the input justifies, and whatever decodes must re-encode to a record
//! that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapstore::format::config::RepoConfig;
use snapstore::format::pack::{decode_footer, decode_header, decode_trailer, FOOTER_LEN};
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
    if data.len() >= FOOTER_LEN {
        let (body, footer) = data.split_at(data.len() - FOOTER_LEN);
        if let Ok((len, sum)) = decode_footer(footer, data.len() as u64) {
            let start = body.len().saturating_sub(len as usize);
            let _ = decode_trailer(&body[start..], &sum, start as u64);
        }
    }
});
