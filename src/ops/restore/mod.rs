//! The read path: plan, then apply.
//!
//! `plan` walks the snapshot, checks every destination against the target
//! (no overwrite without permission, nothing outside the target, never through
//! a symlink) and groups the needed chunks by pack and offset. `apply` reads
//! each pack range once, decodes and verifies the chunks in parallel, and
//! writes them with positional writes into preallocated temporary files that
//! are renamed into place when complete. A damaged chunk fails only the files
//! that contain it; every other file is restored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::codec;
use crate::error::{Error, IoContext, Result};
use crate::format::tree::{ChunkRef, Entry, EntryKind};
use crate::id::{ChunkId, PackId, TreeId};
use crate::ops::blobs::{self, PackFiles};
use crate::ops::pathspec::{self, PathSpec};
use crate::ops::walk::WalkEntry;
use crate::progress::Progress;
use crate::store::index::{BlobLoc, Index};
use crate::store::packs;

/// Stored bytes read from a pack in one request.
const BATCH_BYTES: u64 = 8 << 20;

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
    fn of(entry: &Entry, existing: Option<&fs::Metadata>, dest: &Path) -> Action {
        use std::os::unix::fs::MetadataExt;
        let Some(m) = existing else {
            return Action::New;
        };
        let same = match &entry.kind {
            EntryKind::Dir { .. } => m.is_dir(),
            EntryKind::File { size, .. } => {
                m.is_file()
                    && m.len() == *size
                    && m.mode() & 0o7777 == entry.mode & 0o7777
                    && m.mtime()
                        .saturating_mul(1_000_000_000)
                        .saturating_add(m.mtime_nsec())
                        == entry.mtime_ns
            }
            EntryKind::Symlink { target } => {
                m.file_type().is_symlink()
                    && fs::read_link(dest).is_ok_and(|t| t.as_os_str().as_bytes() == &target[..])
            }
        };
        if same {
            Action::Unchanged
        } else {
            Action::Replace
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::New => "new",
            Action::Replace => "replace",
            Action::Unchanged => "unchanged",
        }
    }
}

fn kind_name(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::File { .. } => "file",
        EntryKind::Dir { .. } => "dir",
        EntryKind::Symlink { .. } => "symlink",
    }
}

/// A file or symlink cannot replace a real directory, even with --overwrite.
fn refuse_dir_in_way(existing: Option<&fs::Metadata>, path: &Path) -> Result<()> {
    if existing.is_some_and(|m| m.is_dir()) {
        return Err(Error::UnsafePath {
            path: path.display().to_string(),
            why: "a directory is in the way; remove it or restore elsewhere".into(),
        });
    }
    Ok(())
}

/// Computes what a restore will do, without writing anything.
pub fn plan(
    index: &Index,
    packs: &PackFiles,
    root: &TreeId,
    snapshot: &str,
    opts: &RestoreOptions,
) -> Result<RestorePlan> {
    let specs = opts
        .paths
        .iter()
        .map(|p| PathSpec::parse(&opts.base, p, snapshot))
        .collect::<Result<Vec<_>>>()?;
    let entries = pathspec::select(index, packs, root, &specs, snapshot)?;

    let mut plan = RestorePlan {
        target: opts.target.clone(),
        dirs: Vec::new(),
        files: Vec::new(),
        symlinks: Vec::new(),
        by_pack: BTreeMap::new(),
        deltas: Vec::new(),
        missing: HashMap::new(),
        overwrite: opts.overwrite,
        cancel: opts.cancel.clone(),
        entries: Vec::new(),
        conflicts: Vec::new(),
    };
    let mut chunk_dests: HashMap<ChunkId, Vec<(usize, u64)>> = HashMap::new();
    for WalkEntry { path, entry } in entries {
        let dest = opts.target.join(&path);
        if let Some(protect) = &opts.protect {
            if dest.starts_with(protect) {
                return Err(Error::UnsafePath {
                    path: path.display().to_string(),
                    why: "would write into the repository".into(),
                });
            }
        }
        let existing = dest.symlink_metadata().ok();
        if existing.as_ref().is_some_and(|m| !m.is_dir()) {
            plan.conflicts.push(dest.clone());
        }
        plan.entries.push(PlannedEntry {
            path: path.display().to_string(),
            kind: kind_name(&entry.kind),
            action: Action::of(&entry, existing.as_ref(), &dest),
            size: match &entry.kind {
                EntryKind::File { size, .. } => *size,
                _ => 0,
            },
            dest: dest.clone(),
        });
        match entry.kind {
            EntryKind::Dir { .. } => {
                plan.dirs.push((path, entry.mode, entry.mtime_ns));
            }
            EntryKind::File { size, chunks } => {
                refuse_dir_in_way(existing.as_ref(), &path)?;
                let idx = plan.files.len();
                let mut off = 0;
                for c in &chunks {
                    chunk_dests.entry(c.id).or_default().push((idx, off));
                    off += c.len as u64;
                }
                plan.files.push(PlannedFile {
                    rel: path,
                    dest,
                    tmp: PathBuf::new(),
                    size,
                    mode: entry.mode,
                    mtime_ns: entry.mtime_ns,
                    chunks,
                });
            }
            EntryKind::Symlink { target } => {
                refuse_dir_in_way(existing.as_ref(), &path)?;
                plan.symlinks.push((path, target, entry.mtime_ns));
            }
        }
    }
    let ids: Vec<ChunkId> = chunk_dests.keys().copied().collect();
    // Float deltas are decoded with their bases, which the snapshot may not
    // hold itself: those are located too.
    let locs = index.blobs_with_bases(&ids)?;
    let mut groups: BTreeMap<ChunkId, Vec<ChunkJob>> = BTreeMap::new();
    for (id, dests) in chunk_dests.iter() {
        let Some(loc) = locs.get(id).copied() else {
            plan.missing
                .insert(*id, "chunk missing from every pack".to_string());
            continue;
        };
        let job = ChunkJob {
            id: *id,
            loc,
            dests: dests.clone(),
        };
        match loc.base {
            Some(base) => match locs.get(&base) {
                Some(b) if b.base.is_none() => groups.entry(base).or_default().push(job),
                found => {
                    let why = if found.is_some() {
                        "is itself a float delta"
                    } else {
                        "is missing from every pack"
                    };
                    plan.missing.insert(
                        *id,
                        format!(
                            "chunk {}: its base chunk {} {why}",
                            id.short(),
                            base.short()
                        ),
                    );
                }
            },
            None => plan.by_pack.entry(loc.pack).or_default().push(job),
        }
    }
    // A base the snapshot needs itself is written by its group, not read twice.
    for (base, deltas) in groups {
        let dests = chunk_dests.remove(&base).unwrap_or_default();
        if !dests.is_empty() {
            if let Some(jobs) = plan.by_pack.get_mut(&locs[&base].pack) {
                jobs.retain(|j| j.id != base);
            }
        }
        plan.deltas.push(DeltaGroup {
            base: ChunkJob {
                id: base,
                loc: locs[&base],
                dests,
            },
            deltas,
        });
    }
    plan.by_pack.retain(|_, jobs| !jobs.is_empty());
    for jobs in plan.by_pack.values_mut() {
        jobs.sort_by_key(|j| j.loc.offset);
    }
    Ok(plan)
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

/// Creates `rel` below `target` one component at a time, refusing to pass
/// through a symlink or a non-directory.
fn ensure_dir(target: &Path, rel: &Path) -> Result<()> {
    let mut cur = target.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        match cur.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::UnsafePath {
                    path: rel.display().to_string(),
                    why: format!("{} is a symlink", cur.display()),
                })
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::UnsafePath {
                    path: rel.display().to_string(),
                    why: format!("{} is not a directory", cur.display()),
                })
            }
            Err(_) => fs::create_dir(&cur).ctx("create directory", &cur)?,
        }
    }
    Ok(())
}

fn set_mtime(file: &File, path: &Path, mtime_ns: i64) -> Result<()> {
    let d = std::time::Duration::from_nanos(mtime_ns.unsigned_abs());
    let t = if mtime_ns >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    };
    file.set_modified(t).ctx("set mtime of", path)
}

/// Carries out a plan.
pub fn apply(
    mut plan: RestorePlan,
    packs: &PackFiles,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    if !plan.conflicts.is_empty() && !plan.overwrite {
        return Err(Error::TargetExists {
            target: plan.target.clone(),
            count: plan.conflicts.len(),
            first: plan.conflicts[0].clone(),
        });
    }
    let result = apply_inner(&mut plan, packs, progress);
    if result.is_err() {
        // Leave nothing half-written behind: temporaries not yet renamed go.
        for f in &plan.files {
            if !f.tmp.as_os_str().is_empty() {
                let _ = fs::remove_file(&f.tmp);
            }
        }
    }
    result
}

fn apply_inner(
    plan: &mut RestorePlan,
    packs: &PackFiles,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let mut summary = RestoreSummary::default();
    fs::create_dir_all(&plan.target).ctx("create directory", &plan.target)?;
    for (rel, _, _) in &plan.dirs {
        ensure_dir(&plan.target, rel)?;
    }
    // Temporary files beside their destinations, preallocated. Random names
    // created with O_EXCL: never a symlink someone planted, never another
    // file of the snapshot, whatever the destination's name. Temporaries a
    // killed restore left in these directories go first.
    let host = host_tag();
    let prefix = format!(".snap-restore-{host}.{}.", std::process::id());
    let mut swept: HashSet<PathBuf> = HashSet::new();
    for f in plan.files.iter_mut() {
        let rel_dir = f.rel.parent().unwrap_or(Path::new(""));
        ensure_dir(&plan.target, rel_dir)?;
        let dir = plan.target.join(rel_dir);
        if swept.insert(dir.clone()) {
            summary.stale_temporaries_removed += remove_stale_temps(&dir, &host);
        }
        if let Some(signal) = cancelled(&plan.cancel) {
            return Err(interrupted(signal));
        }
        let (file, tmp) = tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(&dir)
            .and_then(|t| t.keep().map_err(|e| e.error))
            .ctx("create temporary file in", &dir)?;
        f.tmp = tmp;
        file.set_len(f.size).ctx("allocate", &f.tmp)?;
    }
    let plan = &*plan;
    crate::store::failpoint::hit("restore:after-temporaries");

    progress.start("restore", plan.total_bytes());
    let outcome = Outcome {
        failed_chunks: Mutex::new(plan.missing.clone()),
        write_err: Mutex::new(None),
    };
    let batches: Vec<(&PackId, &[ChunkJob])> = plan
        .by_pack
        .iter()
        .flat_map(|(pack, jobs)| split_batches(jobs).into_iter().map(move |b| (pack, b)))
        .collect();
    // Deltas first: their groups are the largest units of work.
    let work: Vec<Work<'_>> = plan
        .deltas
        .iter()
        .map(Work::Deltas)
        .chain(batches.into_iter().map(|(p, b)| Work::Batch(p, b)))
        .collect();
    work.par_iter().for_each(|w| {
        if plan.cancelled().is_some() {
            return;
        }
        match w {
            Work::Batch(pack, jobs) => restore_batch(plan, packs, pack, jobs, progress, &outcome),
            Work::Deltas(group) => restore_deltas(plan, packs, group, progress, &outcome),
        }
    });
    let Outcome {
        failed_chunks,
        write_err,
    } = outcome;
    if let Some(e) = write_err.into_inner().expect("poisoned") {
        return Err(e);
    }
    // A signal during the writes: nothing has been renamed into place yet.
    plan.stop_if_cancelled()?;
    progress.finish();

    let failed_chunks = failed_chunks.into_inner().expect("poisoned");
    for f in &plan.files {
        if let Some(why) = f.chunks.iter().find_map(|c| failed_chunks.get(&c.id)) {
            let _ = fs::remove_file(&f.tmp);
            summary
                .failed
                .push((f.rel.display().to_string(), why.clone()));
            continue;
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&f.tmp)
            .ctx("open", &f.tmp)?;
        file.set_permissions(fs::Permissions::from_mode(f.mode))
            .ctx("set mode of", &f.tmp)?;
        set_mtime(&file, &f.tmp, f.mtime_ns)?;
        drop(file);
        fs::rename(&f.tmp, &f.dest).ctx("rename into", &f.dest)?;
        summary.files += 1;
        summary.bytes += f.size;
    }
    for (rel, target, mtime_ns) in &plan.symlinks {
        ensure_dir(&plan.target, rel.parent().unwrap_or(Path::new("")))?;
        let dest = plan.target.join(rel);
        if plan.overwrite && dest.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(&dest).ctx("replace", &dest)?;
        }
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &dest)
            .ctx("create symlink", &dest)?;
        let t = filetime::FileTime::from_unix_time(
            mtime_ns.div_euclid(1_000_000_000),
            mtime_ns.rem_euclid(1_000_000_000) as u32,
        );
        filetime::set_symlink_file_times(&dest, t, t).ctx("set mtime of", &dest)?;
        summary.symlinks += 1;
    }
    // Directory modes and times last, deepest first, once nothing more is written inside.
    let mut dirs = plan.dirs.clone();
    dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
    for (rel, mode, mtime_ns) in dirs {
        let path = plan.target.join(&rel);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).ctx("set mode of", &path)?;
        let dir = File::open(&path).ctx("open", &path)?;
        set_mtime(&dir, &path, mtime_ns)?;
        summary.dirs += 1;
    }
    Ok(summary)
}

/// Temporaries are named `.snap-restore-HOST.PID.XXXXXX`: the restoring
/// process's host (this tag: 8 hex digits of the BLAKE3 of its name) and
/// pid, so that a later restore can tell the ones a killed restore left.
fn host_tag() -> String {
    let host = gethostname::gethostname();
    blake3::hash(host.as_encoded_bytes()).to_hex()[..8].to_string()
}

/// Removes the temporaries in `dir` that a restore on this host (`host`,
/// from `host_tag`) left when it was killed (its pid no longer runs).
/// Returns how many. Anything else, including a temporary of a restore
/// still running or of another host, is left alone.
fn remove_stale_temps(dir: &Path, host: &str) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let ours = format!(".snap-restore-{host}.");
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&ours)) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only checks whether `pid` exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if gone && is_file && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// What the parallel part of `apply` reports.
struct Outcome {
    /// Chunks that could not be read, decoded or verified, with the reason.
    failed_chunks: Mutex<HashMap<ChunkId, String>>,
    /// The first error writing a temporary file: it ends the restore.
    write_err: Mutex<Option<Error>>,
}

/// Reads one batch (a range of one pack) with one request into `buf`, then
/// decodes and verifies each chunk and writes it to every place it goes. Only
/// verified bytes are written.
fn restore_batch(
    plan: &RestorePlan,
    packs: &PackFiles,
    pack: &PackId,
    jobs: &[ChunkJob],
    progress: &dyn Progress,
    outcome: &Outcome,
) {
    let start = jobs[0].loc.offset;
    let last = jobs.last().expect("batches are non-empty");
    let end = last.loc.offset + last.loc.stored_len as u64;
    let range = packs
        .get(pack)
        .and_then(|f| packs::read_at(&f, &packs.path(pack), start, (end - start) as usize));
    // Consecutive chunks of a pack mostly belong to one file: keep the last
    // temporary file open rather than open it for every chunk (one
    // descriptor per worker, however many files the batch touches).
    let mut open: Option<(usize, File)> = None;
    for job in jobs {
        if plan.cancelled().is_some() {
            return;
        }
        let data = range.as_ref().map_err(|e| e.to_string()).and_then(|r| {
            let off = (job.loc.offset - start) as usize;
            let stored = &r[off..off + job.loc.stored_len as usize];
            codec::decode(job.loc.codec, stored, job.loc.raw_len as usize)
                .and_then(|d| blobs::verify_chunk(&job.id, &d).map(|_| d))
                .map_err(|e| e.to_string())
        });
        deliver(plan, job, data, &mut open, progress, outcome);
    }
}

/// One unit of the parallel part of `apply`.
enum Work<'a> {
    Batch(&'a PackId, &'a [ChunkJob]),
    Deltas(&'a DeltaGroup),
}

/// Decodes a base once, writes it where the snapshot needs it, then decodes
/// each delta against it. If the base is damaged, so is every delta.
fn restore_deltas(
    plan: &RestorePlan,
    packs: &PackFiles,
    group: &DeltaGroup,
    progress: &dyn Progress,
    outcome: &Outcome,
) {
    let base = &group.base;
    let decoded = packs
        .read_decoded(&base.loc)
        .and_then(|d| blobs::verify_chunk(&base.id, &d).map(|_| d))
        .map_err(|e| e.to_string());
    let mut open: Option<(usize, File)> = None;
    let base_data = match decoded {
        Ok(d) => d,
        Err(e) => {
            let why = format!("chunk {}: {e}", base.id.short());
            deliver(plan, base, Err(e), &mut open, progress, outcome);
            let mut failed = outcome.failed_chunks.lock().expect("poisoned");
            for d in &group.deltas {
                failed.insert(d.id, format!("its float-delta base {why}"));
            }
            return;
        }
    };
    for job in &group.deltas {
        if plan.cancelled().is_some() {
            return;
        }
        let data = packs
            .read_stored(&job.loc)
            .and_then(|stored| codec::decode_delta(&stored, job.loc.raw_len as usize, &base_data))
            .and_then(|d| blobs::verify_chunk(&job.id, &d).map(|_| d))
            .map_err(|e| e.to_string());
        deliver(plan, job, data, &mut open, progress, outcome);
    }
    deliver(plan, base, Ok(base_data), &mut open, progress, outcome);
}

/// Writes a decoded and verified chunk to every place it goes, or records
/// why it could not be read. `open` is the temporary file written last.
fn deliver(
    plan: &RestorePlan,
    job: &ChunkJob,
    data: std::result::Result<Vec<u8>, String>,
    open: &mut Option<(usize, File)>,
    progress: &dyn Progress,
    outcome: &Outcome,
) {
    let d = match data {
        Ok(d) => d,
        Err(e) => {
            outcome
                .failed_chunks
                .lock()
                .expect("poisoned")
                .insert(job.id, format!("chunk {}: {e}", job.id.short()));
            return;
        }
    };
    for &(fi, off) in &job.dests {
        let tmp = &plan.files[fi].tmp;
        let file = match open.take() {
            Some((i, file)) if i == fi => Ok(file),
            _ => OpenOptions::new().write(true).open(tmp),
        };
        let res = file
            .and_then(|file| file.write_all_at(&d, off).map(|_| file))
            .ctx("write", tmp);
        match res {
            Ok(file) => *open = Some((fi, file)),
            Err(e) => {
                outcome.write_err.lock().expect("poisoned").get_or_insert(e);
            }
        }
        progress.advance(d.len() as u64);
    }
}

/// Splits one pack's jobs (sorted by offset) into ranges of at most
/// `BATCH_BYTES`, each read with one request.
fn split_batches(jobs: &[ChunkJob]) -> Vec<&[ChunkJob]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=jobs.len() {
        let done = i == jobs.len()
            || jobs[i].loc.offset + jobs[i].loc.stored_len as u64 - jobs[start].loc.offset
                > BATCH_BYTES
            || jobs[i].loc.offset - (jobs[i - 1].loc.offset + jobs[i - 1].loc.stored_len as u64)
                > (1 << 20);
        if done {
            out.push(&jobs[start..i]);
            start = i;
        }
    }
    out
}
