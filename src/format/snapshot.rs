//! Snapshot records: immutable, content-addressed by `SnapshotId`, one file
//! each under `snapshots/`. A snapshot names its root tree and carries the
//! metadata users query: time, session, epoch, metrics, message, and a
//! summary of what the commit stored.
//!
//! Layout: envelope `SNPS` v1, bincode `Snapshot`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{decode_body, encode_record, split_envelope, unsupported_version};
use crate::error::Result;
use crate::id::{SnapshotId, TreeId};

pub const MAGIC: &[u8; 4] = b"SNPS";
pub const VERSION: u16 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Commit time, Unix nanoseconds.
    pub time_ns: i64,
    pub host: String,
    /// Absolute path of the workspace that was committed.
    pub workspace: String,
    /// Paths given on the command line, relative to the workspace; empty for
    /// the whole workspace.
    pub paths: Vec<String>,
    pub session: Option<String>,
    pub epoch: Option<u64>,
    pub metrics: BTreeMap<String, f64>,
    pub message: Option<String>,
    /// Free-form labels (the runner records exit status here).
    pub labels: BTreeMap<String, String>,
    pub parent: Option<SnapshotId>,
    pub root: TreeId,
    pub summary: Summary,
}

/// What a commit saw and what it added to the repository.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Sum of the sizes of all files in the snapshot.
    pub logical_bytes: u64,
    /// Files read this time (not served by the stat cache).
    pub files_read: u64,
    pub bytes_read: u64,
    /// Chunks this commit added, their plain and stored sizes.
    pub new_chunks: u64,
    pub new_raw_bytes: u64,
    pub new_stored_bytes: u64,
}

impl Snapshot {
    pub fn encode(&self) -> (SnapshotId, Vec<u8>) {
        let bytes = encode_record(MAGIC, VERSION, self);
        (SnapshotId::of(&bytes), bytes)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "snapshot";
        let (version, body) = split_envelope(WHAT, MAGIC, bytes)?;
        if version != VERSION {
            return Err(unsupported_version(WHAT, version, VERSION));
        }
        decode_body(WHAT, body)
    }
}
