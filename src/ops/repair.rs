//! `snap check --repair`: bring a repository back to a state `check` finds
//! clean, as far as that can be done without losing anything. In order,
//! under the writer lock (the caller takes it, which also empties `tmp/`:
//! orphan temporaries and half-written packs of crashed writers):
//!
//! 1. Rebuild the index from the files (`store::sync::reindex`, swapped in
//!    atomically). Files that cannot be read are named, never deleted.
//! 2. Packs no snapshot references are *marked*, as prune marks them
//!    (without repacking), and marked packs whose grace period has passed are
//!    deleted; a marked pack a snapshot needs is taken back. This step is
//!    skipped, with the reason, when forget and prune would refuse (a
//!    snapshot or tag file that cannot be read): deciding what is
//!    unreferenced needs every root.
//! 3. `check` runs on the result; what it still finds is what could not be
//!    repaired, each with what to do.
//!
//! Repair never deletes a snapshot record, a tag or a pack it cannot read.

use crate::error::Result;
use crate::format::config::RepoConfig;
use crate::ops::check::{self, CheckReport};
use crate::ops::prune::{self, PruneOptions, PrunePlan};
use crate::progress::Progress;
use crate::store::index::Index;
use crate::store::sync::{self, SyncReport};
use crate::store::Layout;

#[derive(Clone, Debug, serde::Serialize)]
pub struct RepairReport {
    /// Orphan temporaries removed from `tmp/` (crashed writers' leftovers).
    pub temporaries_removed: usize,
    /// The rebuilt index.
    pub reindex: SyncReport,
    /// Unreferenced packs marked, marked packs deleted or taken back.
    pub prune: Option<PrunePlan>,
    /// Why unreferenced packs were not marked, if they were not.
    pub prune_skipped: Option<String>,
    /// `check` after the repair.
    pub check: CheckReport,
    /// What could not be repaired, each with what to do.
    pub unrepaired: Vec<String>,
}

impl RepairReport {
    /// True if the repository is clean after the repair.
    pub fn ok(&self) -> bool {
        self.unrepaired.is_empty()
    }
}

/// Runs the repair (see the module). `temporaries_removed` is what taking
/// the lock removed from `tmp/`; `opts.grace_ns` decides which marked packs
/// are deleted.
#[allow(clippy::too_many_arguments)]
pub fn repair(
    layout: &Layout,
    config: &RepoConfig,
    index: &mut Index,
    temporaries_removed: usize,
    opts: &PruneOptions,
    read_data: bool,
    progress: &dyn Progress,
) -> Result<RepairReport> {
    let reindex = sync::reindex(layout, index)?;
    let mut unrepaired: Vec<String> = reindex
        .damaged
        .iter()
        .map(|d| {
            format!(
                "{d}: kept; restore it from a copy of the repository, or move it away if \
                 nothing needs it (`snap check` names the snapshots that do)"
            )
        })
        .collect();
    let opts = PruneOptions {
        dry_run: false,
        repack: false,
        ..*opts
    };
    let (prune, prune_skipped) = match sync::verify_complete(layout, index, "check --repair") {
        Err(e) => (None, Some(e.to_string())),
        Ok(()) => {
            let roots: Vec<_> = index
                .snapshots()?
                .into_iter()
                .map(|(_, s)| s.root)
                .collect();
            match prune::plan(layout, index, &roots, &opts) {
                Ok(plan) => {
                    prune::apply(
                        config.pack_target_size,
                        layout,
                        index,
                        &plan,
                        opts.now_ns,
                        progress,
                    )?;
                    unrepaired.extend(plan.unreadable.iter().cloned());
                    (Some(plan), None)
                }
                Err(e) => (None, Some(e.to_string())),
            }
        }
    };
    if let Some(why) = &prune_skipped {
        unrepaired.push(format!("unreferenced packs were not marked: {why}"));
    }
    let check = check::check(layout, index, read_data, progress)?;
    for e in &check.errors {
        if !unrepaired.iter().any(|u| u.starts_with(e.as_str())) {
            unrepaired.push(e.clone());
        }
    }
    for d in &check.damaged_files {
        unrepaired.push(format!(
            "snapshot {} {}: cannot be restored ({}); its record is kept",
            d.snapshot, d.path, d.reason
        ));
    }
    Ok(RepairReport {
        temporaries_removed,
        reindex,
        prune,
        prune_skipped,
        check,
        unrepaired,
    })
}
