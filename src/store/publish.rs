//! The durability order of a commit, in one place.
//!
//! 1. Pack data: every pack is written to `tmp/`, fsynced, renamed to
//!    `packs/XX/ID.pack`, and its directory fsynced (`PackWriter::finish`;
//!    a `FinishedPack` exists only once that has happened).
//! 2. Records: the snapshot record is written atomically to `snapshots/ID`
//!    (temporary file, fsync, rename, directory fsync). From here on the
//!    snapshot exists: everything it references is already durable.
//! 3. Index: one SQLite transaction adds the packs, the snapshot and the stat
//!    cache entries. The index is a cache; if the process dies before this
//!    step, the next open finds the pack and snapshot files and indexes them.
//! 4. Refs: tags are written last, each atomically, so a tag never names a
//!    snapshot that is not durable.
//!
//! A crash between any two steps leaves every earlier snapshot intact; the
//! worst case is packs no snapshot references, which `prune` reclaims.
//!
//! In backend terms (`store::backend`): step 1 is `Upload::finish`, step 2
//! a `put`, step 4 a `replace`; each is durable when it returns, which is
//! the barrier the next step relies on. For the local directory that is the
//! temporary, fsync, rename and directory fsync above.

use crate::error::Result;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::store::index::{Index, StatEntry};
use crate::store::packs::FinishedPack;
use crate::store::{failpoint, snapshots};
use crate::store::{refs, Layout};

/// Everything a commit makes visible at once.
pub struct Publication {
    pub packs: Vec<FinishedPack>,
    pub snapshot_id: SnapshotId,
    pub snapshot: Snapshot,
    pub record: Vec<u8>,
    /// Stat cache rows of the workspace to put (new or changed ones), and
    /// paths whose rows go (files gone, or not cacheable this time).
    pub stat_workspace: String,
    pub stat_entries: Vec<(Vec<u8>, StatEntry)>,
    pub stat_stale: Vec<Vec<u8>>,
    pub tags: Vec<String>,
}

/// Carries out steps 2 to 4 (step 1 is done by the time a `FinishedPack`
/// exists).
pub fn publish(layout: &Layout, index: &mut Index, p: Publication) -> Result<()> {
    failpoint::hit("publish:before-record");
    snapshots::write(layout, &p.snapshot_id, &p.record)?;
    failpoint::hit("publish:before-index");
    index.transaction(|tx| {
        for pack in &p.packs {
            tx.insert_pack(pack)?;
        }
        tx.insert_snapshot(&p.snapshot_id, &p.snapshot, &p.record)?;
        for path in &p.stat_stale {
            tx.delete_stat(&p.stat_workspace, path)?;
        }
        for (path, entry) in &p.stat_entries {
            tx.put_stat(&p.stat_workspace, path, entry)?;
        }
        Ok(())
    })?;
    failpoint::hit("publish:before-tags");
    for name in &p.tags {
        set_tag(layout, index, name, &p.snapshot_id)?;
    }
    Ok(())
}

/// Points tag `name` at a durable snapshot: the ref file first, then the index.
pub fn set_tag(layout: &Layout, index: &mut Index, name: &str, id: &SnapshotId) -> Result<()> {
    refs::write_tag(layout, name, id)?;
    index.transaction(|tx| tx.set_tag(name, id))
}
