//! Snapshot record files: `snapshots/ID`, written once, never modified.

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::store::backend::Kind;
use crate::store::Layout;

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
    layout.backend().read(Kind::Snapshot, &id.to_hex())
}

/// Where snapshot `id` is kept, for messages.
pub fn locate(layout: &Layout, id: &SnapshotId) -> std::path::PathBuf {
    layout.backend().locate(Kind::Snapshot, &id.to_hex())
}

/// Writes a snapshot record, durably.
pub fn write(layout: &Layout, id: &SnapshotId, record: &[u8]) -> Result<()> {
    layout.backend().put(Kind::Snapshot, &id.to_hex(), record)
}

/// Deletes snapshot records (a missing one is already deleted) durably.
pub fn delete(layout: &Layout, ids: &[SnapshotId]) -> Result<()> {
    for id in ids {
        layout.backend().delete(Kind::Snapshot, &id.to_hex())?;
    }
    layout.backend().sync()
}

/// Ids of all snapshot records present. Names that are not ids are skipped.
pub fn list(layout: &Layout) -> Result<Vec<SnapshotId>> {
    let names = layout.backend().list(Kind::Snapshot)?;
    let mut out: Vec<SnapshotId> = names
        .iter()
        .filter_map(|n| SnapshotId::from_hex(n))
        .collect();
    out.sort();
    Ok(out)
}
