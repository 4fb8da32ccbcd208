//! The end of a commit: the snapshot record and the handoff to
//! `store::publish`, which makes it durable in the one order written down
//! there (packs, record, index transaction, tags).

use super::trees::StatRow;
use super::{CommitOptions, CommitSummary};
use crate::error::Result;
use crate::format::snapshot::{Snapshot, Summary};
use crate::id::{SnapshotId, TreeId};
use crate::store::index::Index;
use crate::store::packs::FinishedPack;
use crate::store::publish::{self, Publication};
use crate::store::Layout;
use crate::workspace::Workspace;

/// The workspace's newest snapshot and its root tree: the parent of the
/// next commit, and where its float-delta bases come from.
pub(super) fn latest_of_workspace(
    index: &Index,
    workspace: &str,
) -> Result<Option<(SnapshotId, TreeId)>> {
    Ok(index
        .snapshots()?
        .into_iter()
        .rev()
        .find(|(_, s)| s.workspace == workspace)
        .map(|(id, s)| (id, s.root)))
}

/// What a commit stored, ready to become a snapshot.
pub(super) struct Draft {
    /// The workspace key: its root, or the import's label.
    pub workspace: String,
    pub parent: Option<SnapshotId>,
    pub root: TreeId,
    pub summary: Summary,
    /// Data packs, then the tree pack (if any tree was new).
    pub packs: Vec<FinishedPack>,
    /// Stat cache rows to put, and paths whose rows go (`scan::stat_changes`).
    pub stat_rows: Vec<StatRow>,
    pub stat_stale: Vec<Vec<u8>>,
    pub warnings: Vec<String>,
}

/// Writes the snapshot record of `draft` with the metadata of `opts` and
/// publishes it with its packs, stat cache rows and tags.
pub(super) fn publish(
    layout: &Layout,
    index: &mut Index,
    ws: &Workspace,
    opts: CommitOptions,
    draft: Draft,
) -> Result<CommitSummary> {
    let snapshot = Snapshot {
        time_ns: opts.now_ns,
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        workspace: draft.workspace.clone(),
        paths: opts
            .paths
            .iter()
            .filter_map(|p| p.strip_prefix(&ws.root).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        session: opts.session,
        epoch: opts.epoch,
        step: opts.step,
        metrics: opts.metrics,
        message: opts.message,
        labels: opts.labels,
        parent: draft.parent,
        root: draft.root,
        summary: draft.summary,
    };
    let (id, record) = snapshot.encode();
    let packs_written = draft.packs.len();
    publish::publish(
        layout,
        index,
        Publication {
            packs: draft.packs,
            snapshot_id: id,
            snapshot: snapshot.clone(),
            record,
            stat_workspace: draft.workspace,
            stat_entries: draft.stat_rows,
            stat_stale: draft.stat_stale,
            tags: opts.tags,
        },
    )?;
    Ok(CommitSummary {
        id,
        snapshot,
        packs_written,
        warnings: draft.warnings,
        skipped: 0,
    })
}
