//! `snap prune --remote`: reclaiming space on a remote that several
//! machines push to without a server. The local prune's plan and its two
//! phases (`ops::prune`: mark, then delete once the grace period has passed
//! since the mark, resurrecting a marked pack a snapshot needs again) run on
//! the remote's objects through its cache, with three additions for writers
//! that take no lock:
//!
//! - **A remote lock** (`locks/prune`, created with `If-None-Match: *`): one
//!   prune at a time. A held lock is a refusal naming its holder; a killed
//!   prune's lock stays until `--break-lock` (snap cannot tell whether a
//!   process on another machine still runs, so it does not guess).
//! - **Young packs are spared**: a pack the store wrote within the grace
//!   period is neither marked nor repacked, since a push elsewhere may have
//!   sent it and not yet its snapshot records (packs go first).
//! - **Pushes check the marks before their records** (`push`): a push that
//!   counts on a pack, or sent one, that a prune marked meanwhile stops
//!   before naming it, and the next push sends those chunks again; caches
//!   drop marked packs (`store::sync::drop_marked`), so no push counts on
//!   one.
//!
//! Why this deletes nothing a snapshot names: a push's records land at most
//! moments after its check of the marks. A pack marked before that check
//! stops the push; one marked after it is deleted only a grace period after
//! its mark, by a prune whose listing of the snapshot records, made then,
//! already shows the push's records, so the pack is resurrected instead. A
//! pack that push sent itself is at least a grace period old when marked.
//! This holds while the machines' clocks agree to well within the grace
//! period, and while no push spends a grace period between that check and
//! its last record (seconds).
//!
//! Everything is decided from every snapshot record and tag on the remote,
//! each read and checked (`sync::verify_complete`); one that cannot be
//! read, or a pack trailer that cannot be read, refuses the whole prune:
//! nothing is marked or deleted.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::id::PackId;
use crate::ops::prune::{self, PruneOptions, PrunePlan};
use crate::progress::Progress;
use crate::store::backend::remote::ObjectStoreBackend;
use crate::store::backend::{Backend, Kind};
use crate::store::index::Index;
use crate::store::{sync, Layout};

/// The name of the lock object, `locks/prune`.
pub const LOCK: &str = "prune";

/// What a remote prune did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RemotePruneReport {
    pub remote: String,
    pub url: String,
    #[serde(flatten)]
    pub plan: PrunePlan,
    /// Temporaries of uploads (`tmp/upload-*`) older than the grace
    /// period, deleted (or, dry run, that would be).
    pub temporaries_deleted: usize,
    /// Younger ones, left (even with `--delete-now`): an upload may be
    /// writing them.
    pub temporaries_waiting: usize,
    /// The holder of a lock removed by `--break-lock`.
    pub lock_broken: Option<String>,
    pub requests: u64,
    pub bytes_fetched: u64,
    pub bytes_uploaded: u64,
}

impl RemotePruneReport {
    /// Bytes this prune frees on the remote.
    pub fn bytes_freed(&self) -> u64 {
        self.plan.bytes_freed()
    }
}

/// Prunes the remote behind `backend`, read through its cache (`view`,
/// `vindex`, synced since the lock was taken). The caller holds the remote
/// lock unless `opts.dry_run`.
pub fn prune(
    view: &Layout,
    vindex: &mut Index,
    backend: &ObjectStoreBackend,
    pack_target_size: u64,
    opts: &PruneOptions,
    progress: &dyn Progress,
    report: &mut RemotePruneReport,
) -> Result<()> {
    let before = backend.traffic().totals();
    sync::verify_complete(view, vindex, "prune --remote")?;
    let (listed, marked) = backend.list_packs_and_marks()?;
    let young_after = opts.now_ns.saturating_sub(opts.grace_ns);
    let spare: HashSet<PackId> = listed
        .iter()
        .filter(|(_, written)| *written > young_after)
        .map(|(id, _)| *id)
        .collect();
    let unreadable: Vec<String> = {
        let indexed = vindex.pack_ids()?;
        listed
            .iter()
            .map(|(id, _)| *id)
            // A young pack may have come after the cache's sync.
            .filter(|id| !indexed.contains(id) && !marked.contains(id) && !spare.contains(id))
            .map(|id| {
                backend
                    .locate(Kind::Pack, &id.to_hex())
                    .display()
                    .to_string()
            })
            .collect()
    };
    if !unreadable.is_empty() {
        // Its trailer could not be read (the sync named why): what it holds
        // is unknown, so which other copies are needed is too.
        return Err(Error::Incomplete {
            op: "prune --remote",
            count: unreadable.len(),
            list: unreadable
                .iter()
                .map(|p| format!("  {p}: its trailer could not be read"))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    let roots: Vec<_> = vindex
        .snapshots()?
        .into_iter()
        .map(|(_, s)| s.root)
        .collect();
    let plan = prune::plan_sparing(view, vindex, &roots, opts, &spare)?;
    if !opts.dry_run {
        prune::apply(pack_target_size, view, vindex, &plan, opts.now_ns, progress)?;
    }
    for (name, written) in backend.list_temporaries()? {
        if written > young_after {
            report.temporaries_waiting += 1;
            continue;
        }
        if !opts.dry_run {
            backend.delete_temporary(&name)?;
        }
        report.temporaries_deleted += 1;
    }
    report.plan = plan;
    let after = backend.traffic().totals();
    report.requests = after.0 - before.0;
    report.bytes_fetched = after.1 - before.1;
    report.bytes_uploaded = after.2 - before.2;
    Ok(())
}
