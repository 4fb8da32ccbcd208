//! Snapshot records: immutable, content-addressed by `SnapshotId`, one file
//! each under `snapshots/`. A snapshot names its root tree and carries the
//! metadata users query: time, session, epoch, step, metrics, message, and a
//! summary of what the commit stored.
//!
//! Layout: envelope `SNPS` v2, bincode `Snapshot`. Version 1 is the same
//! record without `step`; it is still read (with `step: None`), and since an
//! id is the hash of the file's bytes, a v1 snapshot keeps its id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{decode_body, encode_record, split_envelope, unsupported_version};
use crate::error::Result;
use crate::id::{SnapshotId, TreeId};

pub const MAGIC: &[u8; 4] = b"SNPS";
/// The version written; `decode` reads 1 and 2.
pub const VERSION: u16 = 2;

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
    /// Training step (optimizer steps so far), independent of `epoch`:
    /// either, both or neither may be known. Since version 2.
    pub step: Option<u64>,
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

/// The version 1 body: `Snapshot` without `step`, fields in the same order.
/// Read by `Snapshot::decode`; written only to test that old repositories
/// still read (`encode`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotV1 {
    pub time_ns: i64,
    pub host: String,
    pub workspace: String,
    pub paths: Vec<String>,
    pub session: Option<String>,
    pub epoch: Option<u64>,
    pub metrics: BTreeMap<String, f64>,
    pub message: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub parent: Option<SnapshotId>,
    pub root: TreeId,
    pub summary: Summary,
}

impl SnapshotV1 {
    /// The record as a snap before version 2 wrote it.
    pub fn encode(&self) -> Vec<u8> {
        encode_record(MAGIC, 1, self)
    }
}

impl From<SnapshotV1> for Snapshot {
    fn from(v: SnapshotV1) -> Self {
        Snapshot {
            time_ns: v.time_ns,
            host: v.host,
            workspace: v.workspace,
            paths: v.paths,
            session: v.session,
            epoch: v.epoch,
            step: None,
            metrics: v.metrics,
            message: v.message,
            labels: v.labels,
            parent: v.parent,
            root: v.root,
            summary: v.summary,
        }
    }
}

impl Snapshot {
    pub fn encode(&self) -> (SnapshotId, Vec<u8>) {
        let bytes = encode_record(MAGIC, VERSION, self);
        (SnapshotId::of(&bytes), bytes)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "snapshot";
        let (version, body) = split_envelope(WHAT, MAGIC, bytes)?;
        match version {
            1 => decode_body::<SnapshotV1>(WHAT, body).map(Snapshot::from),
            VERSION => decode_body(WHAT, body),
            _ => Err(unsupported_version(WHAT, version, VERSION)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1 record as snap 0.1 wrote it, byte for byte.
    const V1: &[u8] = &[
        b'S', b'N', b'P', b'S', 1, 0, // magic, version 1
        0xfd, 0x00, 0xca, 0xee, 0xa7, 0xfc, 0x39, 0x2f, 0x2f, // time_ns 1700000000500000000
        1, b'h', // host "h"
        2, b'/', b'w', // workspace "/w"
        0,    // paths []
        1, 1, b's', // session Some("s")
        1, 3, // epoch Some(3)
        1, 3, b'a', b'c', b'c', 0, 0, 0, 0, 0, 0, 0xe0, 0x3f, // metrics {acc: 0.5}
        0,    // message None
        0,    // labels {}
        0,    // parent None
        7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // root
        7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
        1, 0, 0, 3, 1, 3, 1, 3, 3, // summary
    ];

    fn expected() -> Snapshot {
        Snapshot {
            time_ns: 1_700_000_000_500_000_000,
            host: "h".into(),
            workspace: "/w".into(),
            paths: vec![],
            session: Some("s".into()),
            epoch: Some(3),
            step: None,
            metrics: BTreeMap::from([("acc".to_string(), 0.5)]),
            message: None,
            labels: BTreeMap::new(),
            parent: None,
            root: TreeId([7; 32]),
            summary: Summary {
                files: 1,
                logical_bytes: 3,
                files_read: 1,
                bytes_read: 3,
                new_chunks: 1,
                new_raw_bytes: 3,
                new_stored_bytes: 3,
                ..Summary::default()
            },
        }
    }

    #[test]
    fn version_1_records_decode_with_no_step() {
        assert_eq!(Snapshot::decode(V1).unwrap(), expected());
    }

    #[test]
    fn version_2_is_version_1_with_the_step_after_the_epoch() {
        let at = 6 + 9 + 2 + 3 + 1 + 3 + 2; // envelope .. epoch
        let mut v2 = V1.to_vec();
        v2[4] = 2;
        v2.insert(at, 0); // step None
        assert_eq!(expected().encode().1, v2);
        let with_step = Snapshot {
            step: Some(300),
            ..expected()
        };
        let (_, bytes) = with_step.encode();
        assert_eq!(&bytes[at..at + 4], &[1, 0xfb, 0x2c, 0x01]);
        assert_eq!(Snapshot::decode(&bytes).unwrap(), with_step);
    }

    #[test]
    fn newer_versions_are_refused() {
        let mut v3 = expected().encode().1;
        v3[4] = 3;
        let err = Snapshot::decode(&v3).unwrap_err().to_string();
        assert!(
            err.contains("record version 3 is not supported (this snap reads up to 2)"),
            "{err}"
        );
    }
}
