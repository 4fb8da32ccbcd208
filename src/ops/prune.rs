//! Reclaiming space: packs no snapshot needs go, packs that are mostly waste
//! are repacked. Plan, then apply.
//!
//! Deletion has two phases, as in rustic's keep-delete: a pack this prune no
//! longer needs is *marked* (`packs/XX/ID.doomed`, with the time) and
//! dropped from the index, and only a later prune, once the grace period has
//! passed since the mark, deletes it. A reader that located a blob in the
//! pack before the prune (a restore that planned first, a `check --read-data`
//! that listed the packs) still finds the file; one that finds it gone all
//! the same re-resolves the blob through the index (`store::read`).
//!
//! A marked pack can be needed again: an index sync that read its trailer
//! before the mark and wrote after the prune's transaction puts it back, and
//! a commit may then deduplicate against it. So deletion is decided from the
//! snapshots, not from the index: before a marked pack is deleted, its
//! trailer is read and if any blob a kept snapshot reaches is in no live pack,
//! the pack is *resurrected* (indexed again, its mark removed). A marked pack
//! found in the index (a rebuilt index takes them all back) loses its mark
//! if a snapshot uses it, and otherwise keeps the time of its first mark.
//!
//! Crash safety (the caller holds the writer lock, so no commit runs at the
//! same time):
//! 1. Repacked blobs are copied, verified, into new packs made durable first.
//! 2. The packs to drop are marked, each mark durable.
//! 3. One index transaction adds the new and resurrected packs and drops the
//!    marked ones.
//! 4. Resurrected packs lose their marks.
//! 5. Packs whose grace has passed (all marked ones with `delete_now`) are
//!    deleted, then their marks.
//!
//! A crash before 3 leaves extra copies and marks on indexed packs (the next
//! prune refreshes or removes them); after 3, marked packs the next prune
//! deletes in time. Nothing a kept snapshot needs is ever deleted.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::error::Result;
use crate::format::pack::{PackEntry, PackKind};
use crate::format::tree::EntryKind;
use crate::id::{ChunkId, PackId, TreeId};
use crate::progress::Progress;
use crate::store::index::Index;
use crate::store::packs::{self, FinishedPack, PackWriter};
use crate::store::read::{self, load_tree, PackFiles};
use crate::store::{failpoint, Layout};

/// A pack is repacked when more than this share of its bytes is unused.
pub const REPACK_THRESHOLD: f64 = 0.3;

/// How long a marked pack stays before a prune deletes it: one hour.
pub const DEFAULT_GRACE_NS: i64 = 3600 * 1_000_000_000;

/// What a prune may do, and when it runs.
#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// Plan only.
    pub dry_run: bool,
    /// How long a pack stays marked before it is deleted.
    pub grace_ns: i64,
    /// Delete every marked pack now, those this prune marks included
    /// (readers running now may then fail to find a pack).
    pub delete_now: bool,
    /// Repack mostly-unused packs (`check --repair` only marks unused ones).
    pub repack: bool,
    /// The time of this prune, Unix nanoseconds.
    pub now_ns: i64,
}

impl PruneOptions {
    /// A prune at `now_ns` with the default grace period.
    pub fn new(now_ns: i64) -> Self {
        PruneOptions {
            dry_run: false,
            grace_ns: DEFAULT_GRACE_NS,
            delete_now: false,
            repack: true,
            now_ns,
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PrunePlan {
    /// Packs nothing uses: marked for deletion.
    #[serde(serialize_with = "hex_ids")]
    pub delete: Vec<PackId>,
    /// Packs partly used: the used blobs are copied, then the pack marked.
    #[serde(serialize_with = "hex_ids")]
    pub repack: Vec<PackId>,
    pub packs_total: usize,
    pub bytes_total: u64,
    /// Bytes of the packs marked (deleted or repacked).
    pub bytes_removed: u64,
    /// Bytes copied into new packs.
    pub bytes_copied: u64,
    /// Packs marked by an earlier prune whose grace period has passed (all
    /// marked packs with `delete_now`, those marked now included): deleted.
    #[serde(serialize_with = "hex_ids")]
    pub due: Vec<PackId>,
    /// Bytes of the packs deleted now.
    pub bytes_deleted: u64,
    /// Marked packs that stay until their grace period has passed.
    pub waiting: usize,
    pub bytes_waiting: u64,
    /// When the first waiting pack may be deleted, Unix nanoseconds.
    pub next_delete_ns: Option<i64>,
    /// Marked packs a kept snapshot needs, or that the index holds: their
    /// marks are removed and they are indexed again.
    #[serde(serialize_with = "hex_ids")]
    pub resurrect: Vec<PackId>,
    /// Marked packs (or their marks) that could not be read: kept, named.
    pub unreadable: Vec<String>,
    /// Packs left alone because they are newer than the grace period (a
    /// remote prune: a push elsewhere may be about to name them).
    pub spared: usize,
    pub bytes_spared: u64,
    #[serde(skip)]
    keep_blobs: HashMap<PackId, Vec<PackEntry>>,
    #[serde(skip)]
    kinds: HashMap<PackId, PackKind>,
    #[serde(skip)]
    resurrected: Vec<FinishedPack>,
    /// Packs to drop that already carry a mark: it is kept, not renewed.
    #[serde(skip)]
    kept_marks: HashSet<PackId>,
}

/// Pack ids in JSON as hex, as everywhere users see them.
fn hex_ids<S: serde::Serializer>(ids: &[PackId], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(ids.iter().map(|id| id.to_hex()))
}

impl PrunePlan {
    /// Bytes this prune frees on disk: what it deletes less what it copies.
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_deleted.saturating_sub(self.bytes_copied)
    }
}

/// Every chunk and tree the given snapshot roots reach (also what a push
/// or pull of those snapshots must transfer, `ops::remote`).
pub(crate) fn reachable(
    index: &Index,
    packs: &PackFiles,
    roots: &[TreeId],
) -> Result<(HashSet<ChunkId>, HashSet<ChunkId>)> {
    let mut chunks = HashSet::new();
    let mut trees = HashSet::new();
    let mut stack: Vec<TreeId> = roots.to_vec();
    while let Some(t) = stack.pop() {
        if !trees.insert(ChunkId(t.0)) {
            continue;
        }
        for e in load_tree(index, packs, &t)?.entries {
            match e.kind {
                EntryKind::Dir { tree } => stack.push(tree),
                EntryKind::File { chunks: list, .. } => chunks.extend(list.iter().map(|c| c.id)),
                EntryKind::Symlink { .. } => {}
            }
        }
    }
    // A float delta needs its base: keep the bases of every kept chunk
    // (bases are never deltas, so one step is enough).
    let ids: Vec<ChunkId> = chunks.iter().copied().collect();
    chunks.extend(index.blobs_with_bases(&ids)?.into_keys());
    Ok((chunks, trees))
}

/// Decides what to mark, repack, delete and resurrect so that only blobs
/// reachable from `roots` (the kept snapshots) remain, each stored once.
pub fn plan(
    layout: &Layout,
    index: &Index,
    roots: &[TreeId],
    opts: &PruneOptions,
) -> Result<PrunePlan> {
    plan_sparing(layout, index, roots, opts, &HashSet::new())
}

/// `plan`, leaving the packs in `spare` alone: neither marked nor repacked,
/// and their blobs not counted as stored (another copy stays where it is).
/// A remote prune spares the packs written within its grace period, which
/// a push running on another machine may be about to name.
pub fn plan_sparing(
    layout: &Layout,
    index: &Index,
    roots: &[TreeId],
    opts: &PruneOptions,
    spare: &HashSet<PackId>,
) -> Result<PrunePlan> {
    let pack_files = PackFiles::new(layout);
    let (chunks, trees) = reachable(index, &pack_files, roots)?;
    let wanted = |kind: PackKind| match kind {
        PackKind::Data => &chunks,
        PackKind::Tree => &trees,
    };
    let mut plan = PrunePlan::default();
    let mut packs: Vec<(PackId, PackKind, u64, Vec<PackEntry>, u64)> = Vec::new();
    for (id, kind, size) in index.packs()? {
        if spare.contains(&id) {
            plan.spared += 1;
            plan.bytes_spared += size;
            plan.bytes_total += size;
            continue;
        }
        let entries = index.blobs_in_pack(&id)?;
        let used: u64 = entries
            .iter()
            .filter(|e| wanted(kind).contains(&e.id))
            .map(|e| e.stored_len as u64)
            .sum();
        packs.push((id, kind, size, entries, used));
        plan.bytes_total += size;
    }
    plan.packs_total = packs.len() + plan.spared;
    let live: HashSet<PackId> = packs
        .iter()
        .map(|p| p.0)
        .chain(spare.iter().copied())
        .collect();
    // A blob stored twice counts for the pack that is most used, so the
    // other copy can go: sort by used share, best first.
    packs.sort_by(|a, b| {
        (b.4 as f64 / b.2.max(1) as f64)
            .total_cmp(&(a.4 as f64 / a.2.max(1) as f64))
            .then(a.0.cmp(&b.0))
    });
    let mut claimed: HashSet<(PackKind, ChunkId)> = HashSet::new();
    for (id, kind, size, entries, _) in packs {
        let all_blobs: u64 = entries.iter().map(|e| e.stored_len as u64).sum();
        let keep: Vec<PackEntry> = entries
            .into_iter()
            .filter(|e| wanted(kind).contains(&e.id) && claimed.insert((kind, e.id)))
            .collect();
        let used: u64 = keep.iter().map(|e| e.stored_len as u64).sum();
        plan.kinds.insert(id, kind);
        if keep.is_empty() {
            plan.delete.push(id);
            plan.bytes_removed += size;
        } else if opts.repack && (all_blobs - used) as f64 > REPACK_THRESHOLD * size as f64 {
            // Waste is unused blob bytes; header and trailer are not waste,
            // or every small pack would be rewritten forever.
            plan.repack.push(id);
            plan.bytes_removed += size;
            plan.bytes_copied += used;
            plan.keep_blobs.insert(id, keep);
        }
    }
    plan.delete.sort();
    plan.repack.sort();
    let marked: BTreeSet<PackId> = packs::list_marked(layout)?.into_iter().collect();
    let sizes: HashMap<PackId, u64> = index.packs()?.into_iter().map(|p| (p.0, p.2)).collect();
    let marking: Vec<PackId> = plan.delete.iter().chain(&plan.repack).copied().collect();
    for id in &marking {
        // An earlier mark stands (a rebuilt index takes marked packs back
        // in); otherwise the mark is made now.
        let since = marked
            .contains(id)
            .then(|| packs::read_mark(layout, id).ok().map(|m| m.marked_ns))
            .flatten();
        if since.is_some() {
            plan.kept_marks.insert(*id);
        }
        let size = sizes.get(id).copied().unwrap_or(0);
        schedule(&mut plan, id, size, since.unwrap_or(opts.now_ns), opts);
    }
    let marking: HashSet<PackId> = marking.into_iter().collect();
    for id in marked {
        if live.contains(&id) {
            // Indexed, so readers may use it: no mark if it stays.
            if !marking.contains(&id) {
                plan.resurrect.push(id);
            }
            continue;
        }
        plan_marked(layout, &id, opts, &wanted, &mut claimed, &mut plan);
    }
    plan.due.sort();
    plan.resurrect.sort();
    Ok(plan)
}

/// Decides about pack `id`, marked by an earlier prune and not indexed:
/// resurrected if it holds a blob the kept snapshots reach that no live
/// pack has, else deleted once its grace has passed. What cannot be read
/// is kept and named.
fn plan_marked<'a>(
    layout: &Layout,
    id: &PackId,
    opts: &PruneOptions,
    wanted: &impl Fn(PackKind) -> &'a HashSet<ChunkId>,
    claimed: &mut HashSet<(PackKind, ChunkId)>,
    plan: &mut PrunePlan,
) {
    if !packs::exists(layout, id) {
        // A prune deleted the pack and stopped before its mark.
        plan.due.push(*id);
        return;
    }
    let (kind, size, entries) = match packs::read_trailer(layout, id) {
        Ok(t) => t,
        Err(e) => {
            plan.unreadable.push(format!(
                "{}: {e}; kept (marked for deletion)",
                packs::locate(layout, id).display()
            ));
            return;
        }
    };
    let needed = entries
        .iter()
        .any(|e| wanted(kind).contains(&e.id) && !claimed.contains(&(kind, e.id)));
    if needed {
        for e in &entries {
            if wanted(kind).contains(&e.id) {
                claimed.insert((kind, e.id));
            }
        }
        plan.resurrect.push(*id);
        plan.resurrected.push(FinishedPack {
            id: *id,
            kind,
            size,
            entries,
        });
        return;
    }
    let marked_ns = match packs::read_mark(layout, id) {
        Ok(m) => m.marked_ns,
        Err(e) => {
            plan.unreadable.push(format!(
                "{e}; pack {} kept: remove the mark and run `snap prune` again to mark it anew",
                id.short()
            ));
            return;
        }
    };
    schedule(plan, id, size, marked_ns, opts);
}

/// Puts pack `id` (of `size` bytes, marked at `marked_ns`) in the plan's
/// deletions if its grace period has passed (or `delete_now`), else among
/// the packs that wait.
fn schedule(plan: &mut PrunePlan, id: &PackId, size: u64, marked_ns: i64, opts: &PruneOptions) {
    let due_at = marked_ns.saturating_add(opts.grace_ns);
    if opts.delete_now || opts.now_ns >= due_at {
        plan.due.push(*id);
        plan.bytes_deleted += size;
    } else {
        plan.waiting += 1;
        plan.bytes_waiting += size;
        plan.next_delete_ns = Some(plan.next_delete_ns.map_or(due_at, |t| t.min(due_at)));
    }
}

/// Carries out a plan. Returns the new packs written.
pub fn apply(
    pack_target_size: u64,
    layout: &Layout,
    index: &mut Index,
    plan: &PrunePlan,
    now_ns: i64,
    progress: &dyn Progress,
) -> Result<Vec<FinishedPack>> {
    let pack_files = PackFiles::new(layout);
    progress.start("prune", plan.bytes_copied);
    let mut new_packs = Vec::new();
    for kind in [PackKind::Data, PackKind::Tree] {
        let mut writer: Option<PackWriter> = None;
        for id in plan.repack.iter().filter(|id| plan.kinds[*id] == kind) {
            for e in &plan.keep_blobs[id] {
                // Copied only once verified: a damaged blob stops the prune.
                let (stored, _) = read::read_entry(index, &pack_files, id, kind, e)?;
                let w = match writer.as_mut() {
                    Some(w) => w,
                    None => writer.insert(PackWriter::create(layout, kind)?),
                };
                w.add(e.id, e.codec, &stored, e.raw_len, e.base)?;
                progress.advance(stored.len() as u64);
                if w.size() >= pack_target_size {
                    new_packs.push(writer.take().expect("just used").finish(layout)?);
                }
            }
        }
        if let Some(w) = writer {
            new_packs.push(w.finish(layout)?);
        }
    }
    // Packs are named by their content: a new pack can have the id (and
    // path) of a pack being replaced, or of a marked one. Such a pack is
    // live: never marked, never deleted.
    let new_ids: HashSet<PackId> = new_packs.iter().map(|p| p.id).collect();
    let old: Vec<&PackId> = plan
        .delete
        .iter()
        .chain(&plan.repack)
        .filter(|id| !new_ids.contains(id))
        .collect();
    for id in old.iter().filter(|id| !plan.kept_marks.contains(id)) {
        packs::mark(layout, id, now_ns)?;
    }
    failpoint::hit("prune:before-index");
    index.transaction(|tx| {
        for p in new_packs.iter().chain(&plan.resurrected) {
            tx.insert_pack(p)?;
        }
        for id in &old {
            tx.delete_pack(id)?;
        }
        Ok(())
    })?;
    let live_again: Vec<&PackId> = plan
        .resurrect
        .iter()
        .chain(plan.due.iter().filter(|id| new_ids.contains(id)))
        .collect();
    packs::unmark(layout, &live_again)?;
    failpoint::hit("prune:before-delete");
    let due: Vec<&PackId> = plan.due.iter().filter(|id| !new_ids.contains(id)).collect();
    packs::delete(layout, &due, || failpoint::hit("prune:after-one-delete"))?;
    progress.finish();
    Ok(new_packs)
}
