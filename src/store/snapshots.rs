//! Snapshot record files: `snapshots/ID`, written once, never modified.

use std::fs;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;

/// Reads and verifies one snapshot record (its id must match its bytes).
pub fn read(path: &Path, id: &SnapshotId) -> Result<Snapshot> {
    let bytes = fs::read(path).ctx("read snapshot", path)?;
    if SnapshotId::of(&bytes) != *id {
        return Err(Error::corrupt(
            format!("snapshot {}", id.short()),
            "content does not match its id",
        ));
    }
    Snapshot::decode(&bytes)
}

/// Ids of all snapshot files present. Names that are not ids are skipped.
pub fn list(dir: &Path) -> Result<Vec<SnapshotId>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx("list snapshots in", dir)? {
        let entry = entry.ctx("list snapshots in", dir)?;
        if let Some(id) = entry.file_name().to_str().and_then(SnapshotId::from_hex) {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}
