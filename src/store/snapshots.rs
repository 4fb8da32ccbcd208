//! Snapshot record files: `snapshots/ID`, written once, never modified.

use std::fs;

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::store::{durable, Layout};

/// Reads and verifies one snapshot record: its bytes must hash to its id and
/// decode. Returns the snapshot and the record as stored.
pub fn read(layout: &Layout, id: &SnapshotId) -> Result<(Snapshot, Vec<u8>)> {
    let bytes = read_record(layout, id)?;
    if SnapshotId::of(&bytes) != *id {
        return Err(Error::corrupt(
            format!("snapshot {}", id.short()),
            "content does not match its id",
        ));
    }
    Ok((Snapshot::decode(&bytes)?, bytes))
}

/// The bytes of snapshot file `id`, unverified (to journal them as they are).
pub fn read_record(layout: &Layout, id: &SnapshotId) -> Result<Vec<u8>> {
    let path = layout.snapshot(id);
    fs::read(&path).ctx("read snapshot", &path)
}

/// Writes a snapshot record atomically (`durable::write_atomic`).
pub fn write(layout: &Layout, id: &SnapshotId, record: &[u8]) -> Result<()> {
    durable::write_atomic(&layout.tmp_dir(), &layout.snapshot(id), record)
}

/// Deletes snapshot files (a missing one is already deleted) durably.
pub fn delete(layout: &Layout, ids: &[SnapshotId]) -> Result<()> {
    let paths: Vec<_> = ids.iter().map(|id| layout.snapshot(id)).collect();
    durable::remove_durable(paths.iter().map(|p| p.as_path()), || {})
}

/// Ids of all snapshot files present. Names that are not ids are skipped.
pub fn list(layout: &Layout) -> Result<Vec<SnapshotId>> {
    let dir = layout.snapshots_dir();
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).ctx("list snapshots in", &dir)? {
        let entry = entry.ctx("list snapshots in", &dir)?;
        if let Some(id) = entry.file_name().to_str().and_then(SnapshotId::from_hex) {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}
