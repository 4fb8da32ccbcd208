//! Retention journal records: one per snapshot that `forget` removed, so a
//! forgotten revision can say what happened to it and its metrics outlive
//! it. Each holds the snapshot record exactly as it was (with its own magic
//! and version, verified against the id), the time it was forgotten, the
//! rule and the reason, and the tags deleted with it.
//!
//! Layout: envelope `SNPF` v1, bincode `Forgotten`.

use serde::{Deserialize, Serialize};

use super::snapshot::Snapshot;
use super::{decode_body, encode_record, split_envelope, unsupported_version};
use crate::error::{Error, Result};
use crate::id::SnapshotId;

pub const MAGIC: &[u8; 4] = b"SNPF";
pub const VERSION: u16 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forgotten {
    pub id: SnapshotId,
    /// When `forget` removed it, Unix nanoseconds.
    pub forgotten_ns: i64,
    /// The setting that decided, as `snap.toml` spells it (`keep_epochs = 5`).
    pub rule: String,
    /// Why, in words (`epoch snapshot #6 newest of session #1, beyond keep_epochs`).
    pub reason: String,
    /// Tags deleted with it (only when `keep_tags` was narrowed).
    pub tags: Vec<String>,
    /// The snapshot record file's bytes.
    pub record: Vec<u8>,
}

impl Forgotten {
    pub fn encode(&self) -> Vec<u8> {
        encode_record(MAGIC, VERSION, self)
    }

    /// Decodes and checks that the embedded record is the snapshot `id` names.
    pub fn decode(bytes: &[u8]) -> Result<(Self, Snapshot)> {
        const WHAT: &str = "retention journal entry";
        let (version, body) = split_envelope(WHAT, MAGIC, bytes)?;
        if version != VERSION {
            return Err(unsupported_version(WHAT, version, VERSION));
        }
        let f: Forgotten = decode_body(WHAT, body)?;
        if SnapshotId::of(&f.record) != f.id {
            return Err(Error::corrupt(
                WHAT,
                format!("its snapshot record does not match id {}", f.id.short()),
            ));
        }
        let snapshot = Snapshot::decode(&f.record)?;
        Ok((f, snapshot))
    }
}
