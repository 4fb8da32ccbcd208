//! The read path: plan, then apply.
//!
//! `plan` (writes nothing) walks the snapshot, checks every destination
//! against the target (no overwrite without permission, nothing in the
//! repository, never a file where a directory is) and groups the needed
//! chunks by pack and offset, each chunk once however many places it goes.
//! `apply` reads each pack range once, decodes and verifies the chunks in
//! parallel, and writes them with positional writes into preallocated
//! temporary files that are renamed into place when complete. A damaged
//! chunk fails only the files that contain it; every other file is
//! restored. `target` holds what touches the destination directly: the
//! checks of what is there, directories created never through a symlink,
//! and the temporaries.
//!
//! This module holds the public types; `plan.rs`, `apply.rs` and
//! `target.rs` the parts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::tree::ChunkRef;
use crate::id::{ChunkId, PackId};
use crate::store::index::BlobLoc;

mod apply;
mod plan;
mod target;

pub use apply::apply;
pub use plan::plan;

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Paths inside the snapshot, relative to `base`, globs allowed
    /// (`ops::pathspec`); empty for all of it.
    pub paths: Vec<String>,
    /// The directory of the snapshot `paths` are relative to (empty: the root).
    pub base: PathBuf,
    pub target: PathBuf,
    pub overwrite: bool,
    /// Never write below this directory (the repository, when it lives in the target).
    pub protect: Option<PathBuf>,
    /// Set to a signal number to stop: the restore then removes its
    /// temporaries, replaces nothing, and fails with `Error::Interrupted`.
    pub cancel: Option<Arc<AtomicUsize>>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Files not restored because their data is damaged, with the reason.
    pub failed: Vec<(String, String)>,
    /// Temporaries of an earlier restore that was killed, removed from the
    /// directories this one wrote to.
    pub stale_temporaries_removed: u64,
}

/// A file to restore: where it goes, its temporary once created, its data.
struct PlannedFile {
    rel: PathBuf,
    dest: PathBuf,
    tmp: PathBuf,
    size: u64,
    mode: u32,
    mtime_ns: i64,
    chunks: Vec<ChunkRef>,
}

/// A chunk to read and every place it goes.
struct ChunkJob {
    id: ChunkId,
    loc: BlobLoc,
    /// (file index, offset in file)
    dests: Vec<(usize, u64)>,
}

/// A float delta base and the deltas decoded against it. The base's own
/// `dests` are empty unless the snapshot holds it too.
struct DeltaGroup {
    base: ChunkJob,
    deltas: Vec<ChunkJob>,
}

/// What a restore will do, computed by `plan` without writing anything;
/// `apply` carries it out.
pub struct RestorePlan {
    target: PathBuf,
    dirs: Vec<(PathBuf, u32, i64)>,
    files: Vec<PlannedFile>,
    symlinks: Vec<(PathBuf, Vec<u8>, i64)>,
    /// Chunk jobs grouped by pack, each group sorted by offset.
    by_pack: BTreeMap<PackId, Vec<ChunkJob>>,
    /// Float deltas, grouped by their base so each base is decoded once.
    deltas: Vec<DeltaGroup>,
    /// Chunks that cannot be located (or whose base cannot), with the
    /// reason: files needing them fail.
    missing: HashMap<ChunkId, String>,
    overwrite: bool,
    cancel: Option<Arc<AtomicUsize>>,
    /// Every entry with what restoring it does, in snapshot order.
    entries: Vec<PlannedEntry>,
    /// Destinations that exist and are not directories: refused without `overwrite`.
    conflicts: Vec<PathBuf>,
}

/// One entry of a plan, for `--dry-run`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlannedEntry {
    /// Relative to the snapshot root.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: &'static str,
    pub action: Action,
    /// Bytes of a file; 0 for directories and symlinks.
    pub size: u64,
    pub dest: PathBuf,
}

/// What restoring an entry does to its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing is there yet.
    New,
    /// Something different is there; only with `overwrite`.
    Replace,
    /// Already there, as far as a stat (and for a symlink, its target)
    /// tells: a directory; a file of the same size, mode and mtime; a
    /// symlink to the same target. A file or symlink is still rewritten
    /// (needs `overwrite`); its bytes are not read to compare.
    Unchanged,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::New => "new",
            Action::Replace => "replace",
            Action::Unchanged => "unchanged",
        }
    }
}

impl RestorePlan {
    /// Every entry the restore writes, with what it does there.
    pub fn entries(&self) -> &[PlannedEntry] {
        &self.entries
    }

    /// Existing destinations the restore would replace, so refuses without
    /// `overwrite`.
    pub fn conflicts(&self) -> &[PathBuf] {
        &self.conflicts
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The signal that asked this restore to stop, if one did.
    fn cancelled(&self) -> Option<i32> {
        cancelled(&self.cancel)
    }

    fn stop_if_cancelled(&self) -> Result<()> {
        self.cancelled()
            .map_or(Ok(()), |signal| Err(interrupted(signal)))
    }
}

fn cancelled(cancel: &Option<Arc<AtomicUsize>>) -> Option<i32> {
    let sig = cancel.as_ref()?.load(Ordering::Relaxed);
    (sig != 0).then_some(sig as i32)
}

fn interrupted(signal: i32) -> Error {
    Error::Interrupted {
        signal,
        what: "the restore stopped; its temporary files were removed and no file was replaced"
            .into(),
    }
}
