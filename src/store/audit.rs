//! Comparing every index row with the file it was derived from (`snap
//! check`). The index is a cache, and commands trust it for what they list
//! and where they read: an edited or damaged row must not go unnoticed. So
//! each snapshot row is compared with its record file (bytes and the columns
//! taken from it), each tag row with its ref file, and each pack row and its
//! blob rows with the pack's trailer; SQLite's `quick_check` covers pages no
//! query touched. Every disagreement is one sentence ending in what to do
//! (`snap reindex` rebuilds the index from the files).

use std::collections::{BTreeMap, HashSet};

use crate::error::Result;
use crate::format::pack::{PackEntry, PackKind};
use crate::format::snapshot::Snapshot;
use crate::id::{PackId, SnapshotId};
use crate::store::index::Index;
use crate::store::{lock, packs, refs, snapshots, Layout};

const REINDEX: &str = "`snap reindex` rebuilds the index from the files";

/// The trailer of every pack on disk, `None` where it does not read.
pub type Trailers = BTreeMap<PackId, Option<(PackKind, u64, Vec<PackEntry>)>>;

/// What the comparison found: the snapshots whose rows agree with their
/// files (oldest first, as `Index::snapshots` orders them), and a sentence
/// for each disagreement.
pub struct Audit {
    pub snapshots: Vec<(SnapshotId, Snapshot)>,
    pub problems: Vec<String>,
}

/// Compares the whole index with the files. `trailers` are the packs on
/// disk with the trailer each gave (a pack whose trailer does not read is
/// reported by `check` itself and only compared for presence here).
///
/// Readers run this while writers work: a commit between a listing and a
/// query, or a prune between deleting rows and files, looks like a
/// disagreement for a moment. So when the first comparison finds any, it is
/// made again from fresh listings and trailers, and only what both found is
/// reported: damage stays, a writer's step does not.
///
/// A writer's step can also outlast both comparisons (a commit's packs and
/// record are in place long before its index transaction). So while the
/// writer lock is held, around either comparison, a row without its file or
/// a file without its row is what that writer is doing, and is left out; a
/// row that disagrees with its file is reported all the same.
pub fn audit(layout: &Layout, index: &Index, trailers: &Trailers) -> Result<Audit> {
    let busy_before = lock::writer_active(&layout.locks_dir());
    let first = compare(layout, index, trailers)?;
    if first.problems.is_empty() {
        return Ok(first);
    }
    let mut fresh = Trailers::new();
    for id in packs::list_packs(layout)? {
        fresh.insert(id, packs::read_trailer(layout, &id).ok());
    }
    let busy_between = lock::writer_active(&layout.locks_dir());
    let second = compare(layout, index, &fresh)?.problems;
    let busy = busy_before || busy_between || lock::writer_active(&layout.locks_dir());
    Ok(Audit {
        snapshots: first.snapshots,
        problems: first
            .problems
            .into_iter()
            .filter(|p| second.contains(p) && !(busy && is_presence(p)))
            .collect(),
    })
}

/// True for a disagreement about presence only (a row without its file, a
/// file without its row), which a running writer explains.
fn is_presence(problem: &str) -> bool {
    [
        " is not in the index;",
        "is in the index but its file is not",
        "has no readable tag file",
    ]
    .iter()
    .any(|p| problem.contains(p))
}

/// One comparison of every row with its file.
fn compare(layout: &Layout, index: &Index, trailers: &Trailers) -> Result<Audit> {
    let mut problems = Vec::new();
    let name = index.path().display().to_string();
    if let Some(why) = index.damage()? {
        problems.push(format!("index {name} is damaged ({why}); {REINDEX}"));
    }
    let snapshots = audit_snapshots(layout, index, &mut problems)?;
    audit_tags(layout, index, &mut problems)?;
    audit_packs(layout, index, trailers, &mut problems)?;
    Ok(Audit {
        snapshots,
        problems,
    })
}

/// Snapshot rows against the records: same bytes, columns as decoded.
fn audit_snapshots(
    layout: &Layout,
    index: &Index,
    problems: &mut Vec<String>,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    let mut good = Vec::new();
    let mut seen = HashSet::new();
    for row in index.snapshot_rows()? {
        let Some(id) = SnapshotId::from_slice(&row.id) else {
            problems.push(format!(
                "index: a snapshot row has a {}-byte id; {REINDEX}",
                row.id.len()
            ));
            continue;
        };
        seen.insert(id);
        let bad = |why: &str| format!("index: snapshot {} {why}; {REINDEX}", id.short());
        let file = match snapshots::read_record(layout, &id) {
            Ok(bytes) => bytes,
            Err(e) => {
                problems.push(bad(&format!("is in the index but its file is not: {e}")));
                continue;
            }
        };
        if file != row.record || SnapshotId::of(&row.record) != id {
            problems.push(bad(&format!(
                "in the index holds another record than {}",
                snapshots::locate(layout, &id).display()
            )));
            continue;
        }
        let snap = match Snapshot::decode(&row.record) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("snapshot {}: {e}", id.short()));
                continue;
            }
        };
        let columns_agree = row.time_ns == snap.time_ns
            && row.session == snap.session
            && row.epoch.map(|e| e as u64) == snap.epoch
            && row.workspace == snap.workspace;
        if !columns_agree {
            problems.push(bad(
                "has index columns (time, session, epoch or workspace) that differ from its record",
            ));
        }
        good.push((id, snap));
    }
    for id in snapshots::list(layout)? {
        if !seen.contains(&id) && snapshots::read(layout, &id).is_ok() {
            problems.push(format!(
                "index: snapshot {} ({}) is not in the index; {REINDEX}",
                id.short(),
                snapshots::locate(layout, &id).display()
            ));
        }
    }
    good.sort_by_key(|s| (s.1.time_ns, s.0));
    Ok(good)
}

/// Tag rows against the tag files (unreadable tag files are `check`'s own
/// report; here only readable ones are compared).
fn audit_tags(layout: &Layout, index: &Index, problems: &mut Vec<String>) -> Result<()> {
    let (files, _) = refs::list_tags(layout)?;
    let files: BTreeMap<String, SnapshotId> = files.into_iter().collect();
    let rows: BTreeMap<String, SnapshotId> = index.tags()?.into_iter().collect();
    for (name, id) in &rows {
        match files.get(name) {
            Some(f) if f == id => {}
            Some(f) => problems.push(format!(
                "index: tag {name} names snapshot {} but {} names {}; {REINDEX}",
                id.short(),
                refs::locate(layout, name).display(),
                f.short()
            )),
            None => problems.push(format!(
                "index: tag {name} (snapshot {}) has no readable tag file {}",
                id.short(),
                refs::locate(layout, name).display()
            )),
        }
    }
    for (name, id) in &files {
        if !rows.contains_key(name) {
            problems.push(format!(
                "index: tag {name} (snapshot {}) is not in the index; {REINDEX}",
                id.short()
            ));
        }
    }
    Ok(())
}

/// Pack rows and their blob rows against the trailers.
fn audit_packs(
    layout: &Layout,
    index: &Index,
    trailers: &Trailers,
    problems: &mut Vec<String>,
) -> Result<()> {
    let rows: BTreeMap<PackId, (PackKind, u64)> = index
        .packs()?
        .into_iter()
        .map(|(id, kind, size)| (id, (kind, size)))
        .collect();
    for (id, (kind, size)) in &rows {
        let bad = |why: &str| format!("index: pack {} {why}; {REINDEX}", id.short());
        match trailers.get(id) {
            None => problems.push(bad("is in the index but its file is not in the repository")),
            // Its unreadable trailer is reported by `check`.
            Some(None) => {}
            Some(Some((t_kind, t_size, entries))) => {
                if (kind, size) != (t_kind, t_size) {
                    problems.push(bad(
                        "has a kind or size in the index that differs from its file",
                    ));
                } else if index.blobs_in_pack(id)? != *entries {
                    problems.push(bad("has blob rows that differ from its trailer"));
                }
            }
        }
    }
    // Packs prune marked for deletion are out of the index on purpose.
    let marked: HashSet<PackId> = packs::list_marked(layout)?.into_iter().collect();
    for (id, trailer) in trailers {
        if trailer.is_some() && !rows.contains_key(id) && !marked.contains(id) {
            problems.push(format!(
                "index: pack {} is not in the index; {REINDEX}",
                id.short()
            ));
        }
    }
    Ok(())
}
