//! Forgetting snapshots by a retention policy: `retention::plan` decides,
//! then, unless it is a dry run, `forget` carries the decision out in this
//! order, so a snapshot is never gone without a journal entry saying when
//! and by which rule:
//!
//! 1. the journal entries (`store::journal`, each holding the forgotten
//!    snapshot's record) are durable;
//! 2. tags naming a forgotten snapshot are deleted;
//! 3. the snapshot files are deleted;
//! 4. one index transaction drops the snapshots and the tags.
//!
//! Their data stays until `prune`. The caller holds the writer lock unless
//! it is a dry run.

use crate::error::{Error, Result};
use crate::format::journal::Forgotten;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::ops::retention::{self, Decision, Policy};
use crate::store::index::Index;
use crate::store::lock::running_sessions;
use crate::store::{failpoint, journal, refs, snapshots, Layout};

/// The outcome of `forget`: a decision for every snapshot.
#[derive(Clone, Debug)]
pub struct ForgetReport {
    pub decisions: Vec<Decision>,
    /// The snapshots the decisions are about, oldest first.
    pub snapshots: Vec<(SnapshotId, Snapshot)>,
    pub dropped_tags: Vec<String>,
    pub dry_run: bool,
}

/// Applies `policy` at `now_ns`: plans, and unless `dry_run` forgets (see
/// the module's order). Tags of forgotten snapshots (possible only when
/// `keep_tags` is narrowed) are deleted with them and listed. `this_run` is
/// the session of the `snap run` applying retention.
pub fn forget(
    layout: &Layout,
    index: &mut Index,
    policy: &Policy,
    this_run: Option<&str>,
    dry_run: bool,
    now_ns: i64,
) -> Result<ForgetReport> {
    let snapshots = index.snapshots()?;
    let tags = index.tags()?;
    let running = running_sessions(&layout.locks_dir())?;
    let decisions = retention::plan(&snapshots, &tags, &running, this_run, policy, now_ns)?;
    let forgotten: Vec<&Decision> = decisions.iter().filter(|d| !d.keep).collect();
    let dropped_tags: Vec<String> = tags
        .iter()
        .filter(|(_, id)| forgotten.iter().any(|d| d.id == *id))
        .map(|(n, _)| n.clone())
        .collect();
    if !dry_run && !forgotten.is_empty() {
        let entries = forgotten
            .iter()
            .map(|d| journal_entry(layout, d, &tags, policy, now_ns))
            .collect::<Result<Vec<_>>>()?;
        apply(layout, index, &entries, &dropped_tags)?;
    }
    Ok(ForgetReport {
        decisions,
        snapshots,
        dropped_tags,
        dry_run,
    })
}

/// The journal entry for a forgotten snapshot, holding its record as stored.
fn journal_entry(
    layout: &Layout,
    d: &Decision,
    tags: &[(String, SnapshotId)],
    policy: &Policy,
    now_ns: i64,
) -> Result<Forgotten> {
    let record = snapshots::read_record(layout, &d.id).map_err(|e| {
        Error::Other(format!(
            "cannot read {} to journal it before forgetting it: {}\n  \
             nothing was forgotten; run `snap check`",
            snapshots::locate(layout, &d.id).display(),
            io_cause(&e)
        ))
    })?;
    let why = &d.reasons[0];
    Ok(Forgotten {
        id: d.id,
        forgotten_ns: now_ns,
        rule: why.rule(policy),
        reason: why.to_string(),
        tags: tags
            .iter()
            .filter(|(_, t)| *t == d.id)
            .map(|(n, _)| n.clone())
            .collect(),
        record,
    })
}

/// An I/O error's cause without the path (the message names it already).
fn io_cause(e: &Error) -> String {
    match e {
        Error::Io { cause, .. } => cause.to_string(),
        other => other.to_string(),
    }
}

/// Steps 1 to 4 of the module's order.
fn apply(
    layout: &Layout,
    index: &mut Index,
    entries: &[Forgotten],
    dropped_tags: &[String],
) -> Result<()> {
    // The journal first: a snapshot is never gone without a word.
    journal::write(layout, entries)?;
    for name in dropped_tags {
        refs::delete_tag(layout, name)?;
    }
    let ids: Vec<SnapshotId> = entries.iter().map(|e| e.id).collect();
    snapshots::delete(layout, &ids)?;
    failpoint::hit("forget:before-index");
    index.transaction(|tx| {
        for id in &ids {
            tx.delete_snapshot(id)?;
        }
        for name in dropped_tags {
            tx.delete_tag(name)?;
        }
        Ok(())
    })
}
