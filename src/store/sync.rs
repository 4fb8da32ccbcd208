//! Bringing the index in line with the repository files. Run on every open
//! (cheap: directory listings) so that a commit interrupted after its files
//! were durable but before its index transaction is picked up by the next
//! command, and a full rebuild for `snap reindex`.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::format::pack::PackKind;
use crate::id::{PackId, SnapshotId};
use crate::store::backend;
use crate::store::index::{self, Index};
use crate::store::packs::{self, FinishedPack};
use crate::store::{durable, failpoint, refs, snapshots, Layout};

/// What a sync changed in the index.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncReport {
    pub packs_added: usize,
    pub packs_removed: usize,
    pub snapshots_added: usize,
    pub snapshots_removed: usize,
    pub tags: usize,
    /// Files that could not be read back, with the reason.
    pub damaged: Vec<String>,
}

impl SyncReport {
    pub fn changed(&self) -> bool {
        self.packs_added + self.packs_removed + self.snapshots_added + self.snapshots_removed > 0
    }
}

/// Which packs marked for deletion a sync takes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marked {
    /// None: prune dropped them from the index on purpose (every sync of an
    /// index that is kept up to date).
    Skip,
    /// All: an index built from nothing (a new or rebuilt one) cannot know
    /// which were dropped, and a marked pack may hold blobs a snapshot
    /// needs again. The next prune marks anew those nothing needs.
    Include,
}

/// Adds what is on disk but missing from the index and drops what is gone.
pub fn sync(layout: &Layout, index: &mut Index) -> Result<SyncReport> {
    sync_with(layout, index, Marked::Skip)
}

/// `sync`, taking in marked packs or not.
pub fn sync_with(layout: &Layout, index: &mut Index, take: Marked) -> Result<SyncReport> {
    let mut report = SyncReport::default();

    let on_disk = packs::list_packs(layout)?;
    let indexed = index.pack_ids()?;
    // Marked packs are on their way out and never taken back in. Listed
    // after the index is read: prune makes a mark durable before its
    // transaction drops the pack, so a pack this read finds unindexed
    // because prune dropped it has its mark by now.
    let marked: HashSet<PackId> = match take {
        Marked::Skip => packs::list_marked(layout)?.into_iter().collect(),
        Marked::Include => HashSet::new(),
    };
    failpoint::hit("sync:after-listing");
    let disk_ids: HashSet<PackId> = on_disk.iter().copied().collect();
    let mut new_packs = Vec::new();
    for id in &on_disk {
        if indexed.contains(id) || marked.contains(id) {
            continue;
        }
        match packs::read_trailer(layout, id) {
            Ok((kind, size, entries)) => new_packs.push(FinishedPack {
                id: *id,
                kind,
                size,
                entries,
            }),
            // Deleted since the listing (by a prune): gone, not damaged.
            Err(e) if backend::is_not_found(&e) => {}
            Err(e) => report
                .damaged
                .push(format!("{}: {e}", packs::locate(layout, id).display())),
        }
    }
    let gone_packs: Vec<PackId> = indexed.difference(&disk_ids).copied().collect();

    let snap_ids = snapshots::list(layout)?;
    let indexed_snaps = index.snapshot_ids()?;
    let mut new_snaps = Vec::new();
    for id in &snap_ids {
        if indexed_snaps.contains(id) {
            continue;
        }
        match snapshots::read(layout, id) {
            Ok((snap, bytes)) => new_snaps.push((*id, snap, bytes)),
            // Deleted since the listing (by a forget): gone, not damaged.
            Err(e) if backend::is_not_found(&e) => {}
            Err(e) => report
                .damaged
                .push(format!("{}: {e}", snapshots::locate(layout, id).display())),
        }
    }
    let snap_set: HashSet<_> = snap_ids.iter().copied().collect();
    let gone_snaps: Vec<_> = indexed_snaps.difference(&snap_set).copied().collect();

    let (tags, bad_tags) = refs::list_tags(layout)?;
    report.damaged.extend(bad_tags);
    let tags_changed = index.tags()? != tags;

    report.packs_added = new_packs.len();
    report.packs_removed = gone_packs.len();
    report.snapshots_added = new_snaps.len();
    report.snapshots_removed = gone_snaps.len();
    report.tags = tags.len();
    failpoint::hit("sync:before-transaction");
    if report.changed() || tags_changed {
        index.transaction(|tx| {
            for p in &new_packs {
                tx.insert_pack(p)?;
            }
            for id in &gone_packs {
                tx.delete_pack(id)?;
            }
            for (id, snap, bytes) in &new_snaps {
                tx.insert_snapshot(id, snap, bytes)?;
            }
            for id in &gone_snaps {
                tx.delete_snapshot(id)?;
            }
            if !gone_packs.is_empty() {
                // Cached chunk lists may name chunks that are gone.
                tx.clear_statcache()?;
            }
            tx.replace_tags(&tags)
        })?;
    }
    Ok(report)
}

/// Fails closed before forget or prune decide what to delete: every
/// snapshot file and every tag file is read again from the repository (not
/// from the index), and each must decode (a newer version does not), match
/// its id, and agree with the index; every tag must name a snapshot that
/// exists. Any problem is an `Error::Incomplete` naming each file and what
/// to do, so nothing is deleted on a partial view. The caller holds the
/// writer lock and has just synced the index.
pub fn verify_complete(layout: &Layout, index: &Index, op: &'static str) -> Result<()> {
    let mut problems = Vec::new();
    let on_disk: HashSet<SnapshotId> = snapshots::list(layout)?.into_iter().collect();
    let indexed = index.snapshot_ids()?;
    for id in &on_disk {
        if let Err(e) = snapshots::read(layout, id) {
            problems.push(format!("{}: {e}", snapshots::locate(layout, id).display()));
        } else if !indexed.contains(id) {
            problems.push(format!(
                "{}: not in the index",
                snapshots::locate(layout, id).display()
            ));
        }
    }
    for id in indexed.difference(&on_disk) {
        problems.push(format!(
            "snapshot {} is in the index but its file {} is gone",
            id.short(),
            snapshots::locate(layout, id).display()
        ));
    }
    let (tags, bad_tags) = refs::list_tags(layout)?;
    problems.extend(bad_tags);
    for (name, id) in &tags {
        if !on_disk.contains(id) {
            problems.push(format!(
                "tag {name} names snapshot {} which does not exist; fix it with \
                 `snap tag {name} REV` or remove it with `snap tag --delete {name}`",
                id.short()
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Incomplete {
        op,
        count: problems.len(),
        list: problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// Rebuilds the index from packs (marked ones included, see `Marked`),
/// snapshots and refs (`snap reindex`; the caller holds the writer lock, so
/// no other writer runs). The new index is built in `tmp/` and swapped in
/// with one transaction (`Index::replace_from`), so readers and writers that
/// have the index open, or open it meanwhile, never find it missing, empty
/// or half built. Only an index too damaged to take the new rows is deleted
/// and replaced by the new file.
pub fn reindex(layout: &Layout, index: &mut Index) -> Result<SyncReport> {
    let scratch = layout.reindex_scratch();
    Index::delete_files(&scratch)?;
    let (mut fresh, _) = Index::open(&scratch)?;
    let report = sync_with(layout, &mut fresh, Marked::Include)?;
    // Closing the last connection folds its WAL into the file.
    drop(fresh);
    failpoint::hit("reindex:before-swap");
    match index.replace_from(&scratch) {
        Ok(()) => Index::delete_files(&scratch)?,
        Err(e) if index::is_damaged(&e) => {
            let (placeholder, _) = Index::open(&layout.tmp_dir().join("reindex-old.sqlite"))?;
            drop(std::mem::replace(index, placeholder));
            Index::delete_files(&layout.index())?;
            durable::rename_durable(&scratch, &layout.index())?;
            *index = Index::open(&layout.index())?.0;
        }
        Err(e) => return Err(e),
    }
    durable::clean_tmp(&layout.tmp_dir())?;
    Ok(report)
}

/// Counts how many packs of each kind the index knows (for reports).
pub fn pack_counts(index: &Index) -> Result<(usize, usize)> {
    let packs = index.packs()?;
    let data = packs.iter().filter(|p| p.1 == PackKind::Data).count();
    Ok((data, packs.len() - data))
}
