//! Carrying out a restore plan.
//!
//! Directories first (one component at a time, never through a symlink),
//! then every file's temporary (`target`); then the chunks, in parallel on
//! rayon: each pack range of at most `BATCH_BYTES` read with one request,
//! each float-delta group with its base decoded once, every chunk verified
//! before its bytes are written to every place it goes. Then each complete
//! file gets its mode and mtime and is renamed into place; symlinks, then
//! directory modes and times (deepest first), come last. A file whose
//! chunk failed is not restored and its temporary goes; any other error
//! removes every temporary not yet renamed.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

use rayon::prelude::*;

use super::target::{create_temporaries, ensure_dir, set_mtime};
use super::{ChunkJob, DeltaGroup, RestorePlan, RestoreSummary};
use crate::error::{Error, IoContext, Result};
use crate::format::pack::PackKind;
use crate::id::{ChunkId, PackId};
use crate::progress::Progress;
use crate::store::read::{self, PackFiles};

/// Stored bytes read from a pack in one request.
const BATCH_BYTES: u64 = 8 << 20;
/// A gap between two chunks of a pack larger than this starts a new request.
const BATCH_GAP: u64 = 1 << 20;

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
    summary.stale_temporaries_removed = create_temporaries(plan)?;
    let plan = &*plan;
    crate::store::failpoint::hit("restore:after-temporaries");

    progress.start("restore", plan.total_bytes());
    let failed_chunks = write_chunks(plan, packs, progress)?;
    // A signal during the writes: nothing has been renamed into place yet.
    plan.stop_if_cancelled()?;
    progress.finish();

    crate::store::failpoint::hit("restore:before-rename");
    finish_files(plan, &failed_chunks, &mut summary)?;
    make_symlinks(plan, &mut summary)?;
    crate::store::failpoint::hit("restore:before-dir-modes");
    finish_dirs(plan, &mut summary)?;
    Ok(summary)
}

/// Reads, decodes, verifies and writes every chunk of the plan into the
/// temporaries, in parallel. Returns the chunks that failed, with the
/// reason (those missing from the start included); an error writing a
/// temporary ends the restore.
fn write_chunks(
    plan: &RestorePlan,
    packs: &PackFiles,
    progress: &dyn Progress,
) -> Result<HashMap<ChunkId, String>> {
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
    Ok(failed_chunks.into_inner().expect("poisoned"))
}

/// Gives each complete file its mode and mtime and renames it into place;
/// a file with a failed chunk loses its temporary and is reported.
fn finish_files(
    plan: &RestorePlan,
    failed_chunks: &HashMap<ChunkId, String>,
    summary: &mut RestoreSummary,
) -> Result<()> {
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
    Ok(())
}

/// Creates the symlinks (replacing what is there with `overwrite`, never a
/// directory) and sets their times.
fn make_symlinks(plan: &RestorePlan, summary: &mut RestoreSummary) -> Result<()> {
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
    Ok(())
}

/// Directory modes and times last, deepest first, once nothing more is
/// written inside.
fn finish_dirs(plan: &RestorePlan, summary: &mut RestoreSummary) -> Result<()> {
    let mut dirs = plan.dirs.clone();
    dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
    for (rel, mode, mtime_ns) in dirs {
        let path = plan.target.join(&rel);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).ctx("set mode of", &path)?;
        let dir = File::open(&path).ctx("open", &path)?;
        set_mtime(&dir, &path, mtime_ns)?;
        summary.dirs += 1;
    }
    Ok(())
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
    let range = packs.read_range(pack, start, (end - start) as usize);
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
        .read_verified(&base.loc, PackKind::Data, &base.id)
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
        let loc = &job.loc;
        let data = packs
            .read_stored(loc)
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
