//! Bringing the index in line with the repository files. Run on every open
//! (cheap: directory listings) so that a commit interrupted after its files
//! were durable but before its index transaction is picked up by the next
//! command, and a full rebuild for `snap reindex`. Readers run it without
//! the writer lock, so it removes a row only for a file it finds gone inside
//! its own index transaction (`sync`). Before forget and prune delete
//! anything, `verify_complete` reads every snapshot and tag file again.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::format::pack::PackKind;
use crate::id::{PackId, SnapshotId};
use crate::store::backend::{is_not_found, Kind};
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
///
/// Readers run this too, without the writer lock, so it never removes a row
/// on the strength of a listing alone: a listing made before a commit and a
/// transaction made after it would drop the new snapshot (and a prune
/// planning then would delete its data). Every change is decided again
/// inside one transaction that holds SQLite's write lock from its start
/// (`Index::transaction_immediate`): a pack, snapshot or tag row is dropped
/// only if its file is found gone *then* (a `NotFound`, not any error), new
/// rows are added only for files still there, and the tags are listed again.
/// Every writer makes its files durable before its own index transaction,
/// and no index transaction runs during this one, so a file seen gone inside
/// it is gone for good, not yet to come. A tag row whose file is there but
/// cannot be read (replaced by a directory, say) is kept, so it still
/// protects its snapshot, and is named in `damaged`.
///
/// A pack marked for deletion (`Marked::Skip`) is not taken in, and that too
/// is decided again inside the transaction: prune makes its marks durable
/// before its own transaction drops the packs, so a sync that read a pack's
/// trailer before the mark and writes after the prune does not put it back.
/// A file that is gone by the time it is read (a prune or forget deleted it
/// since the listing) is gone, not damaged.
pub fn sync(layout: &Layout, index: &mut Index) -> Result<SyncReport> {
    sync_with(layout, index, Marked::Skip)
}

/// `sync`, taking in packs marked for deletion or not.
pub fn sync_with(layout: &Layout, index: &mut Index, take: Marked) -> Result<SyncReport> {
    let mut report = SyncReport::default();

    // The files first, then the index: a commit in between is in the index
    // but not in these listings, and must not be dropped for that.
    let on_disk = packs::list_packs(layout)?;
    let snap_ids = snapshots::list(layout)?;
    let (tags, bad_tags) = refs::list_tags(layout)?;
    failpoint::hit("sync:listed");

    let indexed = index.pack_ids()?;
    let skip_marked = take == Marked::Skip;
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
            Err(e) if is_not_found(&e) => {}
            Err(e) => report
                .damaged
                .push(format!("{}: {e}", packs::locate(layout, id).display())),
        }
    }
    let gone_packs: Vec<PackId> = indexed
        .difference(&disk_ids)
        .filter(|id| pack_gone(layout, id))
        .copied()
        .collect();

    let indexed_snaps = index.snapshot_ids()?;
    let mut new_snaps = Vec::new();
    for id in &snap_ids {
        if indexed_snaps.contains(id) {
            continue;
        }
        match snapshots::read(layout, id) {
            Ok((snap, bytes)) => new_snaps.push((*id, snap, bytes)),
            // Deleted since the listing (by a forget): gone, not damaged.
            Err(e) if is_not_found(&e) => {}
            Err(e) => report
                .damaged
                .push(format!("{}: {e}", snapshots::locate(layout, id).display())),
        }
    }
    let snap_set: HashSet<_> = snap_ids.iter().copied().collect();
    let gone_snaps: Vec<_> = indexed_snaps
        .difference(&snap_set)
        .filter(|id| snapshot_gone(layout, id))
        .copied()
        .collect();

    report.damaged.extend(bad_tags);
    let indexed_tags = index.tags()?;
    let tag_plan = plan_tags(layout, &indexed_tags, &tags);
    report.damaged.extend(tag_plan.messages.iter().cloned());
    report.tags = tags.len() + tag_plan.kept;

    let changes = !new_packs.is_empty()
        || !gone_packs.is_empty()
        || !new_snaps.is_empty()
        || !gone_snaps.is_empty()
        || !tag_plan.set.is_empty()
        || !tag_plan.gone.is_empty();
    if !changes {
        return Ok(report);
    }
    failpoint::hit("sync:before-transaction");
    let applied = index.transaction_immediate(|tx| {
        let mut applied = SyncReport::default();
        // Decided again under SQLite's write lock: see the function's docs.
        let left_out = |id: &PackId| skip_marked && pack_marked(layout, id);
        let take_in = |id: &PackId| !pack_gone(layout, id) && !left_out(id);
        for p in new_packs.iter().filter(|p| take_in(&p.id)) {
            tx.insert_pack(p)?;
            applied.packs_added += 1;
        }
        for id in gone_packs.iter().filter(|id| pack_gone(layout, id)) {
            tx.delete_pack(id)?;
            applied.packs_removed += 1;
        }
        for (id, snap, bytes) in new_snaps.iter().filter(|s| !snapshot_gone(layout, &s.0)) {
            tx.insert_snapshot(id, snap, bytes)?;
            applied.snapshots_added += 1;
        }
        for id in gone_snaps.iter().filter(|id| snapshot_gone(layout, id)) {
            tx.delete_snapshot(id)?;
            applied.snapshots_removed += 1;
        }
        if applied.packs_removed > 0 {
            // Cached chunk lists may name chunks that are gone.
            tx.clear_statcache()?;
        }
        let (tags, _) = refs::list_tags(layout)?;
        let plan = plan_tags(layout, &tx.tags()?, &tags);
        for (name, id) in &plan.set {
            tx.set_tag(name, id)?;
        }
        for name in &plan.gone {
            tx.delete_tag(name)?;
        }
        applied.tags = tags.len() + plan.kept;
        Ok(applied)
    })?;
    report.packs_added = applied.packs_added;
    report.packs_removed = applied.packs_removed;
    report.snapshots_added = applied.snapshots_added;
    report.snapshots_removed = applied.snapshots_removed;
    report.tags = applied.tags;
    Ok(report)
}

/// Drops from `index` the packs that carry a deletion mark: for the cache
/// of a remote (`repo::remote`), where another machine's prune marks packs
/// this cache had taken in. A push must not count on a marked pack (its
/// chunks are sent again instead), and a remote prune decides about marked
/// packs from their marks and the snapshots (`ops::prune`). Returns how
/// many rows were dropped. Never used on a repository's own index, whose
/// only marker is its own prune, which drops the rows itself.
pub fn drop_marked(layout: &Layout, index: &mut Index) -> Result<usize> {
    let marked: HashSet<PackId> = packs::list_marked(layout)?.into_iter().collect();
    let indexed = index.pack_ids()?;
    let drop: Vec<PackId> = indexed.intersection(&marked).copied().collect();
    if drop.is_empty() {
        return Ok(0);
    }
    index.transaction(|tx| {
        for id in &drop {
            tx.delete_pack(id)?;
        }
        tx.clear_statcache()
    })?;
    Ok(drop.len())
}

/// True only if pack `id`'s file is certainly gone (any other failure to
/// open it keeps its rows).
fn pack_gone(layout: &Layout, id: &PackId) -> bool {
    matches!(layout.backend().open(Kind::Pack, &id.to_hex()), Err(e) if is_not_found(&e))
}

/// True if pack `id` has a deletion mark.
fn pack_marked(layout: &Layout, id: &PackId) -> bool {
    layout.backend().exists(Kind::Mark, &id.to_hex())
}

/// True only if snapshot `id`'s file is certainly gone.
fn snapshot_gone(layout: &Layout, id: &SnapshotId) -> bool {
    matches!(snapshots::read_record(layout, id), Err(e) if is_not_found(&e))
}

/// How the tag rows must change to match the tag files.
struct TagPlan {
    /// Rows to add or point elsewhere.
    set: Vec<(String, SnapshotId)>,
    /// Rows whose tag file is gone.
    gone: Vec<String>,
    /// How many rows are kept although no tag could be read from their file.
    kept: usize,
    /// Why, for each kept row whose file could not be read at all.
    messages: Vec<String>,
}

/// Compares tag rows with the tags read from the files. A row whose file
/// does not give a tag is dropped only if the file is gone; if it is there
/// but cannot be read as a tag file (a directory, unreadable), the row is
/// kept and named. A file that reads but holds no id is already reported by
/// `refs::list_tags`; its row is kept silently.
fn plan_tags(
    layout: &Layout,
    indexed: &[(String, SnapshotId)],
    files: &[(String, SnapshotId)],
) -> TagPlan {
    let on_disk: std::collections::HashMap<&str, &SnapshotId> =
        files.iter().map(|(n, id)| (n.as_str(), id)).collect();
    let rows: std::collections::HashMap<&str, &SnapshotId> =
        indexed.iter().map(|(n, id)| (n.as_str(), id)).collect();
    let mut plan = TagPlan {
        set: Vec::new(),
        gone: Vec::new(),
        kept: 0,
        messages: Vec::new(),
    };
    for (name, id) in files {
        if rows.get(name.as_str()) != Some(&id) {
            plan.set.push((name.clone(), *id));
        }
    }
    for (name, id) in indexed {
        if on_disk.contains_key(name.as_str()) {
            continue;
        }
        match refs::read_tag_file(layout, name) {
            Err(e) if is_not_found(&e) => plan.gone.push(name.clone()),
            Ok(_) => plan.kept += 1,
            Err(e) => {
                plan.kept += 1;
                plan.messages.push(format!(
                    "tag {name}: {e}; the index still holds it (snapshot {}), so it still \
                     protects that snapshot, and forget and prune refuse until {} is a tag \
                     file again: `snap tag {name} {}` puts it back (if a directory is in its \
                     place, empty it first)",
                    id.short(),
                    refs::locate(layout, name).display(),
                    id.short()
                ));
            }
        }
    }
    plan
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
    // A tag row the sync kept because its file is there but unreadable (a
    // directory in its place, say) still protects its snapshot in the
    // index, but the files no longer say so: refuse rather than guess.
    for (name, id) in index.tags()? {
        if !tags.iter().any(|(n, _)| *n == name) {
            let path = refs::locate(layout, &name);
            let why = match refs::read_tag_file(layout, &name) {
                Err(e) => e.to_string(),
                // Reported above by `list_tags`.
                Ok(_) => continue,
            };
            problems.push(format!(
                "tag {name} is in the index (snapshot {}) but its file {} cannot be read: \
                 {why}; `snap tag {name} {}` puts it back (if a directory is in its place, \
                 empty it first)",
                id.short(),
                path.display(),
                id.short()
            ));
        }
    }
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
