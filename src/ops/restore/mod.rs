//! The read path: plan, then apply.
//!
//! `plan` (writes nothing) walks the snapshot, checks every destination
//! against the target (no overwrite without permission, nothing in the
//! repository, never a file where a directory is, the target's symlinks
//! resolved first), refuses files whose chunk list disagrees with their
//! size, and groups the needed chunks by pack and offset, each chunk once
//! however many places it goes. `apply` reads each pack range once, decodes
//! and verifies the chunks in parallel, and writes them with positional
//! writes into preallocated temporary files that are renamed into place
//! when complete, never over a file that appeared since the plan unless
//! overwriting. A damaged chunk fails only the files that contain it;
//! every other file is restored. `target` holds the checks of what is there
//! and the temporaries; `dirs` the directory handles every write goes
//! through, so no symlink, met or swapped in, can redirect one.
//!
//! Modes: setuid and setgid bits and the world-write bit are stripped
//! (files and directories; the sticky bit is kept, it only restricts)
//! unless `keep_setuid`, so a snapshot from elsewhere cannot plant a
//! setuid program or a file anyone may change.
//!
//! This module holds the public types; `plan.rs`, `apply.rs`, `target.rs`
//! and `dirs.rs` the parts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::tree::ChunkRef;
use crate::id::{ChunkId, PackId};
use crate::store::index::BlobLoc;

mod apply;
mod dirs;
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
    /// Restore setuid, setgid and world-write bits as stored; without it
    /// they are stripped (`snap restore --keep-setuid`).
    pub keep_setuid: bool,
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
    /// Files and directories restored without their setuid, setgid or
    /// world-write bits (see `RestoreOptions::keep_setuid`).
    pub modes_stripped: u64,
    /// Files and symlinks not restored because something appeared at their
    /// destination after the plan found it free: left as they are.
    pub appeared: Vec<String>,
}

/// A file to restore: where it goes, its temporary once created, its data.
struct PlannedFile {
    rel: PathBuf,
    /// The temporary beside the destination, once created.
    tmp: Option<Temporary>,
    size: u64,
    /// The mode to set (stripped unless `keep_setuid`).
    mode: u32,
    /// Whether `mode` lost bits of the stored one.
    stripped: bool,
    mtime_ns: i64,
    chunks: Vec<ChunkRef>,
}

impl PlannedFile {
    /// The directory it goes in, relative to the target.
    fn dir(&self) -> &Path {
        self.rel.parent().unwrap_or(Path::new(""))
    }

    fn name(&self) -> &std::ffi::OsStr {
        self.rel.file_name().unwrap_or_default()
    }
}

/// A temporary file a restore writes: its name in its destination's
/// directory and its identity, checked whenever it is opened again.
struct Temporary {
    name: std::ffi::OsString,
    id: dirs::FileId,
}

/// A directory to restore; its mode and mtime are set last.
#[derive(Clone)]
struct PlannedDir {
    rel: PathBuf,
    mode: u32,
    stripped: bool,
    mtime_ns: i64,
}

/// The bits a restore drops unless told to keep them: setuid, setgid and
/// write for others.
const STRIPPED_BITS: u32 = 0o6002;

/// The mode to restore for `stored`, and whether bits were stripped.
fn restored_mode(stored: u32, keep_setuid: bool) -> (u32, bool) {
    let stored = stored & 0o7777;
    if keep_setuid {
        (stored, false)
    } else {
        (stored & !STRIPPED_BITS, stored & STRIPPED_BITS != 0)
    }
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

/// Why a file's chunk list cannot be its data, if it cannot: the chunk
/// lengths must add up to `size`, and each must be the stored length of
/// its chunk (`raw_len`; chunks it cannot locate are left to the reader).
/// Restore refuses such a file as damaged and `snap check` reports it.
pub(crate) fn chunk_list_problem(
    size: u64,
    chunks: &[ChunkRef],
    raw_len: impl Fn(&ChunkId) -> Option<u32>,
) -> Option<String> {
    let total = chunks
        .iter()
        .try_fold(0u64, |sum, c| sum.checked_add(c.len as u64));
    if total != Some(size) {
        let held = total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string());
        return Some(format!(
            "its chunk list holds {held} bytes but its size is {size} bytes"
        ));
    }
    chunks.iter().find_map(|c| {
        let stored = raw_len(&c.id)?;
        (stored != c.len).then(|| {
            format!(
                "chunk {} is {stored} bytes but its chunk list says {}",
                c.id.short(),
                c.len
            )
        })
    })
}

/// What a restore will do, computed by `plan` without writing anything;
/// `apply` carries it out.
pub struct RestorePlan {
    /// The target as given, for messages.
    target: PathBuf,
    /// The target with its symlinks resolved: where the restore writes.
    resolved: PathBuf,
    /// The repository (resolved), never written.
    protect: Option<PathBuf>,
    dirs: Vec<PlannedDir>,
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
    /// Files refused as damaged at plan time (a chunk list that disagrees
    /// with the size), with the reason: never created.
    damaged: Vec<(String, String)>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8], len: u32) -> ChunkRef {
        ChunkRef {
            id: ChunkId::of(data),
            len,
        }
    }

    #[test]
    fn a_chunk_list_must_add_up_to_the_size_and_match_each_chunk() {
        let stored = |id: &ChunkId| (*id == ChunkId::of(b"abc")).then_some(3);
        assert_eq!(chunk_list_problem(3, &[chunk(b"abc", 3)], stored), None);
        assert_eq!(chunk_list_problem(0, &[], stored), None);
        let why = chunk_list_problem(1 << 40, &[chunk(b"abc", 3)], stored).unwrap();
        assert_eq!(
            why,
            "its chunk list holds 3 bytes but its size is 1099511627776 bytes"
        );
        let why = chunk_list_problem(2, &[chunk(b"abc", 2)], stored).unwrap();
        assert!(
            why.ends_with("is 3 bytes but its chunk list says 2"),
            "{why}"
        );
        // A chunk that cannot be located is the reader's to report.
        assert_eq!(chunk_list_problem(5, &[chunk(b"zz", 5)], stored), None);
    }

    #[test]
    fn setuid_setgid_and_world_write_are_stripped_and_sticky_kept() {
        assert_eq!(restored_mode(0o4755, false), (0o755, true));
        assert_eq!(restored_mode(0o2775, false), (0o775, true));
        assert_eq!(restored_mode(0o666, false), (0o664, true));
        assert_eq!(restored_mode(0o1777, false), (0o1775, true));
        assert_eq!(restored_mode(0o640, false), (0o640, false));
        assert_eq!(restored_mode(0o106777, true), (0o6777, false));
    }
}
