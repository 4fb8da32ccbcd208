//! Note records: text added to a snapshot after it was committed (`snap
//! note REV TEXT`). A snapshot record is immutable (its id is its hash), so
//! a note is a record of its own, `notes/SNAPSHOT.NOTE`, named by the
//! snapshot's id and the note's own id (the BLAKE3 of its bytes): two
//! machines adding notes at once never write the same name.
//!
//! Layout: envelope `SNPN` v1, bincode `Note`.

use serde::{Deserialize, Serialize};

use super::{decode_body, encode_record, split_envelope, unsupported_version};
use crate::error::Result;
use crate::id::SnapshotId;

pub const MAGIC: &[u8; 4] = b"SNPN";
pub const VERSION: u16 = 1;

/// A note longer than this is refused when added, and a record larger than
/// this plus its envelope is damaged.
pub const MAX_TEXT: usize = 64 << 10;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub snapshot: SnapshotId,
    /// When it was added, Unix nanoseconds.
    pub time_ns: i64,
    pub host: String,
    pub text: String,
}

impl Note {
    /// The record's bytes and its name under `notes/`.
    pub fn encode(&self) -> (String, Vec<u8>) {
        let bytes = encode_record(MAGIC, VERSION, self);
        let id = blake3::hash(&bytes).to_hex();
        (format!("{}.{}", self.snapshot.to_hex(), id), bytes)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "note";
        let (version, body) = split_envelope(WHAT, MAGIC, bytes)?;
        if version != VERSION {
            return Err(unsupported_version(WHAT, version, VERSION));
        }
        decode_body(WHAT, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_named_by_snapshot_and_content() {
        let n = Note {
            snapshot: SnapshotId([3; 32]),
            time_ns: 5,
            host: "h".into(),
            text: "lr 1e-3 diverged".into(),
        };
        let (name, bytes) = n.encode();
        assert!(name.starts_with(&format!("{}.", SnapshotId([3; 32]).to_hex())));
        assert_eq!(name.len(), 64 + 1 + 64);
        assert_eq!(Note::decode(&bytes).unwrap(), n);
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert!(Note::decode(&v2)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
        let other = Note {
            text: "x".into(),
            ..n
        };
        assert_ne!(other.encode().0, name);
    }
}
