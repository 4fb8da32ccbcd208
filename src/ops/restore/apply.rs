//! Carrying out a restore plan.
//!
//! The target is opened once (`dirs::Root`) and every write goes through
//! directory handles reached from it, never through a symlink. Directories
//! first, then every file's temporary (`target`); then the chunks, in
//! parallel on rayon: each pack range of at most `BATCH_BYTES` read with
//! one request, each float-delta group with its base decoded once, every
//! chunk verified before its bytes are written to every place it goes.
//! Then each complete file gets its mode and mtime (`fchmod`, `futimens`)
//! and is renamed into place, without replacing anything unless
//! overwriting (`renameat2(RENAME_NOREPLACE)`): a file that appeared since
//! the plan is left as it is and reported. Symlinks, then directory modes
//! and times (deepest first), come last. A file whose chunk failed is not
//! restored and its temporary goes; any other error removes every
//! temporary not yet renamed. A chunk whose pack is gone by the time it is
//! read (a concurrent prune deleted it) is looked up again through the
//! index, one at a time, after the parallel part.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use super::dirs::{self, Placed, Root};
use super::target::create_temporaries;
use super::{ChunkJob, DeltaGroup, RestorePlan, RestoreSummary};
use crate::error::{Error, IoContext, Result};
use crate::format::pack::PackKind;
use crate::id::{ChunkId, PackId};
use crate::progress::Progress;
use crate::store::index::Index;
use crate::store::read::{self, PackFiles};

/// Stored bytes read from a pack in one request.
const BATCH_BYTES: u64 = 8 << 20;
/// A gap between two chunks of a pack larger than this starts a new request.
const BATCH_GAP: u64 = 1 << 20;

/// Carries out a plan.
pub fn apply(
    mut plan: RestorePlan,
    index: &Index,
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
    let root = Root::open(&plan.resolved, &plan.target, plan.protect.as_deref())?;
    let result = apply_inner(&mut plan, &root, index, packs, progress);
    if result.is_err() {
        // Leave nothing half-written behind: temporaries not yet renamed go.
        for f in &plan.files {
            remove_temporary(&root, f);
        }
    }
    result
}

fn apply_inner(
    plan: &mut RestorePlan,
    root: &Root,
    index: &Index,
    packs: &PackFiles,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let mut summary = RestoreSummary {
        failed: plan.damaged.clone(),
        ..RestoreSummary::default()
    };
    for d in &plan.dirs {
        root.dir(&d.rel, true)?;
    }
    summary.stale_temporaries_removed = create_temporaries(plan, root)?;
    let plan = &*plan;
    crate::store::failpoint::hit("restore:after-temporaries");

    progress.start("restore", plan.total_bytes());
    let failed_chunks = write_chunks(plan, root, index, packs, progress)?;
    // A signal during the writes: nothing has been renamed into place yet.
    plan.stop_if_cancelled()?;
    progress.finish();

    crate::store::failpoint::hit("restore:before-rename");
    finish_files(plan, root, &failed_chunks, &mut summary)?;
    make_symlinks(plan, root, &mut summary)?;
    crate::store::failpoint::hit("restore:before-dir-modes");
    finish_dirs(plan, root, &mut summary)?;
    Ok(summary)
}

/// Removes the temporary of `f`, if it has one and it is still there.
fn remove_temporary(root: &Root, f: &super::PlannedFile) {
    if let Some(t) = &f.tmp {
        if let Ok(dir) = root.dir(f.dir(), false) {
            let _ = dirs::remove(&dir, &t.name, &root.shown(&f.rel));
        }
    }
}

/// The directory handle used last, kept while consecutive entries share it.
struct DirCache<'a> {
    root: &'a Root,
    last: Option<(PathBuf, OwnedFd)>,
}

impl<'a> DirCache<'a> {
    fn new(root: &'a Root) -> Self {
        DirCache { root, last: None }
    }

    fn get(&mut self, rel: &Path, create: bool) -> Result<&OwnedFd> {
        if self.last.as_ref().is_none_or(|(r, _)| r != rel) {
            let fd = self.root.dir(rel, create)?;
            self.last = Some((rel.to_path_buf(), fd));
        }
        Ok(&self.last.as_ref().expect("set just above").1)
    }
}

/// Reads, decodes, verifies and writes every chunk of the plan into the
/// temporaries, in parallel. Returns the chunks that failed, with the
/// reason (those missing from the start included); an error writing a
/// temporary ends the restore.
fn write_chunks(
    plan: &RestorePlan,
    root: &Root,
    index: &Index,
    packs: &PackFiles,
    progress: &dyn Progress,
) -> Result<HashMap<ChunkId, String>> {
    let outcome = Outcome {
        failed_chunks: Mutex::new(plan.missing.clone()),
        write_err: Mutex::new(None),
        gone: Mutex::new(Vec::new()),
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
    let sink = Sink {
        plan,
        root,
        progress,
        outcome: &outcome,
    };
    work.par_iter().for_each(|w| {
        if plan.cancelled().is_some() {
            return;
        }
        match w {
            Work::Batch(pack, jobs) => restore_batch(&sink, packs, pack, jobs),
            Work::Deltas(group) => restore_deltas(&sink, packs, group),
        }
    });
    // Chunks whose pack went away: found again through the index (the
    // index is one connection, so one at a time).
    let gone = std::mem::take(&mut *outcome.gone.lock().expect("poisoned"));
    let mut open = None;
    for job in gone {
        if plan.cancelled().is_some() {
            break;
        }
        let data = read::read_chunk(index, packs, &job.id).map_err(|e| e.to_string());
        deliver(&sink, job, data, &mut open);
    }
    let Outcome {
        failed_chunks,
        write_err,
        ..
    } = outcome;
    if let Some(e) = write_err.into_inner().expect("poisoned") {
        return Err(e);
    }
    Ok(failed_chunks.into_inner().expect("poisoned"))
}

/// Gives each complete file its mode and mtime and renames it into place
/// (replacing nothing unless overwriting); a file with a failed chunk
/// loses its temporary and is reported, and so is one whose destination
/// was taken since the plan.
fn finish_files(
    plan: &RestorePlan,
    root: &Root,
    failed_chunks: &HashMap<ChunkId, String>,
    summary: &mut RestoreSummary,
) -> Result<()> {
    let mut dirs_open = DirCache::new(root);
    for f in &plan.files {
        let Some(tmp) = &f.tmp else { continue };
        if let Some(why) = f.chunks.iter().find_map(|c| failed_chunks.get(&c.id)) {
            remove_temporary(root, f);
            summary
                .failed
                .push((f.rel.display().to_string(), why.clone()));
            continue;
        }
        let dir = dirs_open.get(f.dir(), false)?;
        let shown = root.shown(&f.rel);
        let file = dirs::reopen(dir, &tmp.name, tmp.id, &shown)?;
        dirs::set_mode(&file, f.mode, &shown)?;
        dirs::set_mtime(&file, f.mtime_ns, &shown)?;
        drop(file);
        let placed = if plan.overwrite {
            dirs::rename_replacing(dir, &tmp.name, f.name(), &shown).map(|_| Placed::Done)?
        } else {
            dirs::rename_noreplace(dir, &tmp.name, f.name(), &shown)?
        };
        match placed {
            Placed::Done => {
                summary.files += 1;
                summary.bytes += f.size;
                summary.modes_stripped += f.stripped as u64;
            }
            Placed::Appeared => summary.appeared.push(f.rel.display().to_string()),
        }
    }
    Ok(())
}

/// Creates the symlinks (replacing what is there with `overwrite`, never a
/// directory) and sets their times.
fn make_symlinks(plan: &RestorePlan, root: &Root, summary: &mut RestoreSummary) -> Result<()> {
    let mut dirs_open = DirCache::new(root);
    for (rel, target, mtime_ns) in &plan.symlinks {
        let dir = dirs_open.get(rel.parent().unwrap_or(Path::new("")), true)?;
        let name = rel.file_name().unwrap_or_default();
        let shown = root.shown(rel);
        if plan.overwrite && dirs::exists(dir, name) && !dirs::is_dir(dir, name) {
            dirs::remove(dir, name, &shown)?;
        }
        match dirs::symlink(dir, target, name, &shown)? {
            Placed::Done => {
                dirs::set_symlink_times(dir, name, *mtime_ns, &shown)?;
                summary.symlinks += 1;
            }
            Placed::Appeared => summary.appeared.push(rel.display().to_string()),
        }
    }
    Ok(())
}

/// Directory modes and times last, deepest first, once nothing more is
/// written inside.
fn finish_dirs(plan: &RestorePlan, root: &Root, summary: &mut RestoreSummary) -> Result<()> {
    let mut dirs = plan.dirs.clone();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.rel.components().count()));
    for d in dirs {
        let shown = root.shown(&d.rel);
        let fd = dirs::readable(&root.dir(&d.rel, false)?, &shown)?;
        dirs::set_mode(&fd, d.mode, &shown)?;
        dirs::set_mtime(&fd, d.mtime_ns, &shown)?;
        summary.dirs += 1;
        summary.modes_stripped += d.stripped as u64;
    }
    Ok(())
}

/// Where the parallel part of `apply` writes, and what it reports.
struct Sink<'a, 'o> {
    plan: &'a RestorePlan,
    root: &'a Root,
    progress: &'a dyn Progress,
    outcome: &'o Outcome<'a>,
}

/// What the parallel part of `apply` reports.
struct Outcome<'a> {
    /// Chunks that could not be read, decoded or verified, with the reason.
    failed_chunks: Mutex<HashMap<ChunkId, String>>,
    /// The first error writing a temporary file: it ends the restore.
    write_err: Mutex<Option<Error>>,
    /// Chunks whose pack was gone when read, to look up again.
    gone: Mutex<Vec<&'a ChunkJob>>,
}

/// Reads one batch (a range of one pack) with one request into `buf`, then
/// decodes and verifies each chunk and writes it to every place it goes. Only
/// verified bytes are written.
fn restore_batch<'a>(sink: &Sink<'a, '_>, packs: &PackFiles, pack: &PackId, jobs: &'a [ChunkJob]) {
    let start = jobs[0].loc.offset;
    let last = jobs.last().expect("batches are non-empty");
    let end = last.loc.offset + last.loc.stored_len as u64;
    let range = packs.read_range(pack, start, (end - start) as usize);
    if range.as_ref().is_err_and(read::is_gone) {
        sink.outcome.gone.lock().expect("poisoned").extend(jobs);
        return;
    }
    // Consecutive chunks of a pack mostly belong to one file: keep the last
    // temporary file open rather than open it for every chunk (one
    // descriptor per worker, however many files the batch touches).
    let mut open: Option<(usize, File)> = None;
    for job in jobs {
        if sink.plan.cancelled().is_some() {
            return;
        }
        let data = range.as_ref().map_err(|e| e.to_string()).and_then(|r| {
            let off = (job.loc.offset - start) as usize;
            let stored = &r[off..off + job.loc.stored_len as usize];
            let loc = &job.loc;
            read::decode_verified(
                PackKind::Data,
                &job.id,
                loc.codec,
                stored,
                loc.raw_len,
                None,
            )
            .map_err(|e| e.to_string())
        });
        deliver(sink, job, data, &mut open);
    }
}

/// One unit of the parallel part of `apply`.
enum Work<'a> {
    Batch(&'a PackId, &'a [ChunkJob]),
    Deltas(&'a DeltaGroup),
}

/// Decodes a base once, writes it where the snapshot needs it, then decodes
/// each delta against it. If the base is damaged, so is every delta.
fn restore_deltas<'a>(sink: &Sink<'a, '_>, packs: &PackFiles, group: &'a DeltaGroup) {
    let base = &group.base;
    let decoded = packs.read_verified(&base.loc, PackKind::Data, &base.id);
    if decoded.as_ref().is_err_and(read::is_gone) {
        let mut gone = sink.outcome.gone.lock().expect("poisoned");
        gone.push(base);
        gone.extend(&group.deltas);
        return;
    }
    let decoded = decoded.map_err(|e| e.to_string());
    let mut open: Option<(usize, File)> = None;
    let base_data = match decoded {
        Ok(d) => d,
        Err(e) => {
            let why = format!("chunk {}: {e}", base.id.short());
            deliver(sink, base, Err(e), &mut open);
            let mut failed = sink.outcome.failed_chunks.lock().expect("poisoned");
            for d in &group.deltas {
                failed.insert(d.id, format!("its float-delta base {why}"));
            }
            return;
        }
    };
    for job in &group.deltas {
        if sink.plan.cancelled().is_some() {
            return;
        }
        let loc = &job.loc;
        let stored = packs.read_stored(loc);
        if stored.as_ref().is_err_and(read::is_gone) {
            sink.outcome.gone.lock().expect("poisoned").push(job);
            continue;
        }
        let data = stored
            .and_then(|stored| {
                let base = Some(&base_data[..]);
                read::decode_verified(
                    PackKind::Data,
                    &job.id,
                    loc.codec,
                    &stored,
                    loc.raw_len,
                    base,
                )
            })
            .map_err(|e| e.to_string());
        deliver(sink, job, data, &mut open);
    }
    deliver(sink, base, Ok(base_data), &mut open);
}

/// Writes a decoded and verified chunk to every place it goes, or records
/// why it could not be read. `open` is the temporary file written last.
fn deliver(
    sink: &Sink<'_, '_>,
    job: &ChunkJob,
    data: std::result::Result<Vec<u8>, String>,
    open: &mut Option<(usize, File)>,
) {
    let d = match data {
        Ok(d) => d,
        Err(e) => {
            sink.outcome
                .failed_chunks
                .lock()
                .expect("poisoned")
                .insert(job.id, format!("chunk {}: {e}", job.id.short()));
            return;
        }
    };
    for &(fi, off) in &job.dests {
        let f = &sink.plan.files[fi];
        let shown = || sink.root.shown(&f.rel);
        let file = match open.take() {
            Some((i, file)) if i == fi => Ok(file),
            _ => open_temporary(sink.root, f),
        };
        let res = file.and_then(|file| {
            file.write_all_at(&d, off)
                .ctx("write", shown())
                .map(|_| file)
        });
        match res {
            Ok(file) => *open = Some((fi, file)),
            Err(e) => {
                sink.outcome
                    .write_err
                    .lock()
                    .expect("poisoned")
                    .get_or_insert(e);
            }
        }
        sink.progress.advance(d.len() as u64);
    }
}

/// Opens the temporary of `f` again through the directory handles, and
/// only if it is still the file this restore created.
fn open_temporary(root: &Root, f: &super::PlannedFile) -> Result<File> {
    let tmp = f
        .tmp
        .as_ref()
        .ok_or_else(|| Error::Other(format!("{}: no temporary file", f.rel.display())))?;
    let dir = root.dir(f.dir(), false)?;
    dirs::reopen(&dir, &tmp.name, tmp.id, &root.shown(&f.rel))
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
                > BATCH_GAP;
        if done {
            out.push(&jobs[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::Codec;
    use crate::store::index::BlobLoc;

    fn job(offset: u64, stored_len: u32) -> ChunkJob {
        ChunkJob {
            id: ChunkId::of(&offset.to_le_bytes()),
            loc: BlobLoc {
                pack: PackId([1; 32]),
                codec: Codec::Zstd,
                offset,
                stored_len,
                raw_len: stored_len,
                base: None,
            },
            dests: vec![(0, 0)],
        }
    }

    /// The first offset of each batch.
    fn starts(jobs: &[ChunkJob]) -> Vec<u64> {
        split_batches(jobs)
            .iter()
            .map(|b| b[0].loc.offset)
            .collect()
    }

    #[test]
    fn batches_end_at_their_size_limit_and_at_large_gaps() {
        const MIB: u64 = 1 << 20;
        let jobs = [job(0, 100), job(100, 100), job(300, 100)];
        assert_eq!(starts(&jobs), [0]);
        // 8 MiB exactly fits; one byte more starts a new request.
        let jobs = [
            job(0, MIB as u32),
            job(MIB, 7 * MIB as u32),
            job(8 * MIB, 1),
        ];
        assert_eq!(starts(&jobs), [0, 8 * MIB]);
        // A gap of 1 MiB is read through; a larger one is not.
        let jobs = [job(0, 10), job(10 + MIB, 10), job(20 + 2 * MIB + 1, 10)];
        assert_eq!(starts(&jobs), [0, 20 + 2 * MIB + 1]);
        assert!(split_batches(&[]).is_empty());
    }
}
