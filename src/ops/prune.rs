//! Reclaiming space: delete packs no snapshot needs, repack packs that are
//! mostly waste. Plan, then apply.
//!
//! Crash safety (the caller holds the writer lock, so no commit runs at the
//! same time):
//! 1. Repacked blobs are copied, verified, into new packs made durable first.
//! 2. One index transaction adds the new packs and drops the old ones.
//! 3. Only then are the old pack files deleted.
//!
//! A crash before 3 leaves extra copies (the index accepts a blob in several
//! packs); the next prune removes them. Nothing a kept snapshot needs is ever
//! deleted before its new copy is durable.

use std::collections::{HashMap, HashSet};

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

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PrunePlan {
    /// Packs nothing uses: deleted.
    pub delete: Vec<PackId>,
    /// Packs partly used: the used blobs are copied, then the pack deleted.
    pub repack: Vec<PackId>,
    pub packs_total: usize,
    pub bytes_total: u64,
    /// Bytes of the packs deleted or repacked.
    pub bytes_removed: u64,
    /// Bytes copied into new packs.
    pub bytes_copied: u64,
    #[serde(skip)]
    keep_blobs: HashMap<PackId, Vec<PackEntry>>,
    #[serde(skip)]
    kinds: HashMap<PackId, PackKind>,
}

impl PrunePlan {
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_removed.saturating_sub(self.bytes_copied)
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

/// Decides what to delete and repack so that only blobs reachable from
/// `roots` (the kept snapshots) remain, each stored once.
pub fn plan(layout: &Layout, index: &Index, roots: &[TreeId]) -> Result<PrunePlan> {
    let pack_files = PackFiles::new(layout);
    let (chunks, trees) = reachable(index, &pack_files, roots)?;
    let mut plan = PrunePlan::default();
    let mut packs: Vec<(PackId, PackKind, u64, Vec<PackEntry>, u64)> = Vec::new();
    for (id, kind, size) in index.packs()? {
        let entries = index.blobs_in_pack(&id)?;
        let wanted = match kind {
            PackKind::Data => &chunks,
            PackKind::Tree => &trees,
        };
        let used: u64 = entries
            .iter()
            .filter(|e| wanted.contains(&e.id))
            .map(|e| e.stored_len as u64)
            .sum();
        packs.push((id, kind, size, entries, used));
        plan.bytes_total += size;
    }
    plan.packs_total = packs.len();
    // A blob stored twice counts for the pack that is most used, so the
    // other copy can go: sort by used share, best first.
    packs.sort_by(|a, b| {
        (b.4 as f64 / b.2.max(1) as f64)
            .total_cmp(&(a.4 as f64 / a.2.max(1) as f64))
            .then(a.0.cmp(&b.0))
    });
    let mut claimed: HashSet<(PackKind, ChunkId)> = HashSet::new();
    for (id, kind, size, entries, _) in packs {
        let wanted = match kind {
            PackKind::Data => &chunks,
            PackKind::Tree => &trees,
        };
        let all_blobs: u64 = entries.iter().map(|e| e.stored_len as u64).sum();
        let keep: Vec<PackEntry> = entries
            .into_iter()
            .filter(|e| wanted.contains(&e.id) && claimed.insert((kind, e.id)))
            .collect();
        let used: u64 = keep.iter().map(|e| e.stored_len as u64).sum();
        let blobs: u64 = all_blobs;
        plan.kinds.insert(id, kind);
        if keep.is_empty() {
            plan.delete.push(id);
            plan.bytes_removed += size;
        } else if (blobs - used) as f64 > REPACK_THRESHOLD * size as f64 {
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
    Ok(plan)
}

/// Carries out a plan. Returns the new packs written.
pub fn apply(
    pack_target_size: u64,
    layout: &Layout,
    index: &mut Index,
    plan: &PrunePlan,
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
    failpoint::hit("prune:before-index");
    // Packs are named by their content: a new pack can have the id (and
    // path) of a pack being replaced. Such a pack is never deleted.
    let new_ids: HashSet<PackId> = new_packs.iter().map(|p| p.id).collect();
    let old: Vec<&PackId> = plan
        .delete
        .iter()
        .chain(&plan.repack)
        .filter(|id| !new_ids.contains(id))
        .collect();
    index.transaction(|tx| {
        for p in &new_packs {
            tx.insert_pack(p)?;
        }
        for id in &old {
            tx.delete_pack(id)?;
        }
        Ok(())
    })?;
    failpoint::hit("prune:before-delete");
    packs::delete(layout, &old, || failpoint::hit("prune:after-one-delete"))?;
    progress.finish();
    Ok(new_packs)
}
