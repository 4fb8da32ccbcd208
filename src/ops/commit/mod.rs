//! The write path: scan -> stat cache -> chunk -> hash -> dedup -> compress
//! -> pack -> trees -> snapshot -> publish, one part per step:
//!
//! - `scan`: the file walk, and the stat cache that spares unchanged files;
//! - `read`: reading each other file without storing a torn read, cut into
//!   chunks at tensor boundaries;
//! - `pipeline`: hash, claim and compress on rayon within a bounded
//!   in-flight window, one pack-writer thread;
//! - `bases`: the float-delta base of a checkpoint (its previous version);
//! - `trees`: tree entries and records, built bottom-up;
//! - `publish`: the snapshot record, handed to `store::publish`.
//!
//! Threads: the calling thread walks the files and cuts them into chunks
//! (sequential by nature), each chunk then becomes a rayon task (small
//! chunks a batch per task) that hashes it, claims it against the index and
//! this commit, and compresses it if new; one writer thread appends encoded
//! chunks to the open pack. So a single large checkpoint is hashed and
//! compressed on every core, and many small files cost a task per batch.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::config::RepoConfig;
use crate::format::snapshot::{Snapshot, Summary};
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::store::index::Index;
use crate::store::Layout;
use crate::units;
use crate::workspace::Workspace;

mod bases;
mod pipeline;
mod publish;
mod read;
mod scan;
mod trees;

/// What to commit and the metadata to attach.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// Absolute paths inside the workspace; empty for the whole workspace.
    pub paths: Vec<PathBuf>,
    pub message: Option<String>,
    pub session: Option<String>,
    pub epoch: Option<u64>,
    pub step: Option<u64>,
    pub metrics: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// Commit time, Unix nanoseconds (passed in, never read from a global).
    pub now_ns: i64,
    /// Record this as the workspace instead of the scanned directory (imports).
    pub workspace_label: Option<String>,
    /// Neither use nor update the stat cache (imports from staging copies).
    pub no_stat_cache: bool,
}

#[derive(Clone, Debug)]
pub struct CommitSummary {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub packs_written: usize,
    pub warnings: Vec<String>,
    /// Entries left out because they could not be read or vanished while
    /// read (each has a warning); `snap commit` exits 6 when not zero.
    pub skipped: u64,
}

/// Commits the workspace (or `opts.paths`) as a new snapshot of it, whose
/// parent is the workspace's newest snapshot, and publishes it.
pub fn commit(
    layout: &Layout,
    config: &RepoConfig,
    index: &mut Index,
    ws: &Workspace,
    opts: CommitOptions,
    progress: &dyn Progress,
) -> Result<CommitSummary> {
    let workspace = opts
        .workspace_label
        .clone()
        .unwrap_or_else(|| ws.root.to_string_lossy().into_owned());
    let (items, notes) = scan::scan(ws, &opts.paths)?;
    trees::check_shape(&items)?;
    let latest = publish::latest_of_workspace(index, &workspace)?;
    let previous = bases::Previous::new(latest.map(|(_, root)| root));

    let mut seen = HashSet::new();
    let use_cache = !opts.no_stat_cache;
    let cache = match use_cache {
        true => index.stat_entries(&workspace)?,
        false => scan::StatCache::new(),
    };
    let (data, to_read) = scan::use_stat_cache(index, &cache, &items, &mut seen)?;
    let mut files = scan::Files { items, data, notes };
    crate::store::failpoint::hit("commit:after-scan");
    progress.start("commit", to_read);
    let written = pipeline::run(layout, config, index, seen, &mut files, previous, progress)
        .map_err(|e| with_needed(e, to_read))?;
    progress.finish();

    let mut summary = Summary {
        new_chunks: written.new_chunks,
        new_raw_bytes: written.new_raw_bytes,
        new_stored_bytes: written.new_stored_bytes,
        ..Summary::default()
    };
    let (entries, stat_rows) = trees::entries(&files.items, files.data, use_cache, &mut summary);
    let replace_all = opts.paths.is_empty() && use_cache;
    let (stat_rows, stat_stale) = scan::stat_changes(&cache, stat_rows, replace_all);
    drop(cache);
    crate::store::failpoint::hit("commit:before-trees");
    let (root, tree_pack) = trees::build_trees(layout, config, index, entries)?;
    let mut packs = written.packs;
    packs.extend(tree_pack);

    let draft = publish::Draft {
        workspace,
        parent: latest.map(|(id, _)| id),
        root,
        summary,
        packs,
        stat_rows,
        stat_stale,
        warnings: files.notes.warnings,
    };
    let mut done = publish::publish(layout, index, ws, opts, draft)?;
    done.skipped = files.notes.skipped;
    Ok(done)
}

/// Says how much a commit that ran out of space had to store: at most
/// `to_read` bytes of changed files (less after deduplication and
/// compression), and what the disk has free.
fn with_needed(e: Error, to_read: u64) -> Error {
    match e {
        Error::DiskFull { op, path, .. } => {
            let free = fs4::available_space(&path)
                .or_else(|_| path.parent().map_or(Ok(0), fs4::available_space))
                .map(|n| format!("; {} free there now", units::bytes(n)))
                .unwrap_or_default();
            let needed = format!(
                "\n  this commit had up to {} of changed files to store (less once deduplicated and compressed){free}",
                units::bytes(to_read)
            );
            Error::DiskFull { op, path, needed }
        }
        e => e,
    }
}

/// The current time, Unix nanoseconds.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}
