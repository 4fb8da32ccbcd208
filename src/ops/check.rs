//! Integrity checks. The structural check reads every snapshot record, every
//! tree and every pack trailer, and confirms every referenced chunk is
//! indexed in a pack that exists. `read_data` also reads every pack byte,
//! decodes and verifies every blob, and names the files and snapshots each
//! damaged chunk hurts.
//!
//! Check takes no lock, so a commit, forget or prune may run meanwhile: a
//! pack deleted since it was listed is not damage (the blobs the snapshots
//! need were moved first), a pack that appeared since is checked when a
//! chunk is found in it (and read with `read_data`), and a snapshot that
//! was forgotten while check ran is left out of the report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::pack::{PackEntry, PackKind, FOOTER_LEN};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Entry, EntryKind};
use crate::id::{ChunkId, PackId, SnapshotId, TreeId};
use crate::ops::restore::chunk_list_problem;
use crate::ops::walk::Trees;
use crate::progress::Progress;
use crate::store::index::{BlobLoc, Index};
use crate::store::read::{self, PackFiles};
use crate::store::{audit, failpoint, packs, refs, snapshots, Layout};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    /// Of `packs`, those marked for deletion by prune (not in the index,
    /// deleted by a prune once their grace period has passed).
    pub packs_marked: usize,
    pub chunks_checked: u64,
    pub bytes_read: u64,
    /// Problems, one sentence each.
    pub errors: Vec<String>,
    /// `(snapshot, path, reason)` for every file that cannot be restored.
    pub damaged_files: Vec<DamagedFile>,
    /// Stored bytes in packs no snapshot needs (reclaimable by prune).
    pub unreferenced_bytes: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct DamagedFile {
    pub snapshot: String,
    pub path: String,
    pub reason: String,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.damaged_files.is_empty()
    }
}

/// Damaged files named per snapshot; beyond, one line says how many more.
const NAMED_PER_SNAPSHOT: u64 = 10_000;

pub fn check(
    layout: &Layout,
    index: &Index,
    read_data: bool,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let pack_files = PackFiles::new(layout);
    let on_disk = packs::list_packs(layout)?;
    report.packs = on_disk.len();
    report.packs_marked = packs::list_marked(layout)?.len();
    failpoint::hit("check:before-audit");
    let trailers = check_trailers(&pack_files, &on_disk, &mut report);
    let mut trailer_ok: HashSet<PackId> = trailers
        .iter()
        .filter(|(_, t)| t.is_some())
        .map(|(id, _)| *id)
        .collect();
    // Every index row against its file; the snapshots checked below are
    // those whose rows agree with their records.
    let audit = audit::audit(layout, index, &trailers)?;
    report.errors.extend(audit.problems);
    let snapshots = audit.snapshots;
    report.snapshots = snapshots.len();
    failpoint::hit("check:after-listing");
    let mut chunks = Chunks::default();
    let walked = check_snapshots(
        layout,
        index,
        &pack_files,
        &snapshots,
        &mut trailer_ok,
        &mut chunks,
        &mut report,
    )?;
    check_tags(layout, &snapshots, &mut report)?;
    if read_data {
        read_every_pack(
            index,
            &pack_files,
            &on_disk,
            progress,
            &mut chunks,
            &mut report,
        )?;
        // Packs written since the listing (a concurrent prune's copies).
        let seen: HashSet<PackId> = on_disk.iter().copied().collect();
        let new: Vec<PackId> = packs::list_packs(layout)?
            .into_iter()
            .filter(|p| !seen.contains(p))
            .collect();
        read_every_pack(index, &pack_files, &new, progress, &mut chunks, &mut report)?;
    }
    name_damaged_files(&walked, &chunks, &mut report);
    leave_out_forgotten(index, &snapshots, &mut report)?;
    // Bases of float deltas are in use too: prune keeps them.
    let (_, _, stored) = index.data_totals()?;
    let ids: Vec<ChunkId> = chunks.used.iter().copied().collect();
    let locs = index.blobs_with_bases(&ids)?;
    let used_stored: u64 = locs.values().map(|l| l.stored_len as u64).sum();
    report.unreferenced_bytes = stored.saturating_sub(used_stored);
    Ok(report)
}

/// The chunks the snapshots need, and why each damaged one is.
#[derive(Default)]
struct Chunks {
    used: HashSet<ChunkId>,
    bad: HashMap<ChunkId, String>,
    /// The stored length of each indexed one, to check chunk lists.
    raw_len: HashMap<ChunkId, u32>,
    /// File entries (tree, entry number) whose chunk list is damaged.
    bad_lists: HashMap<(TreeId, usize), String>,
}

/// The trailer of every pack on disk (`None` where it does not read, which
/// is reported; a pack deleted since it was listed is left out).
fn check_trailers(
    pack_files: &PackFiles,
    on_disk: &[PackId],
    report: &mut CheckReport,
) -> audit::Trailers {
    let mut trailers = BTreeMap::new();
    for id in on_disk {
        match pack_files.read_trailer(id) {
            Ok(t) => {
                trailers.insert(*id, Some(t));
            }
            Err(e) if read::is_gone(&e) => {}
            Err(e) => {
                report.errors.push(format!("pack {}: {e}", id.short()));
                trailers.insert(*id, None);
            }
        }
    }
    trailers
}

/// The snapshots' trees, each read once however many snapshots and paths
/// share it, and the snapshots whose trees all read and are within the
/// walk's limits, with their roots.
struct Walked {
    trees: Trees,
    roots: Vec<(SnapshotId, TreeId)>,
}

/// True if pack `id`'s trailer was read, or reads now (a pack written since
/// check listed the packs).
fn trailer_reads(pack_files: &PackFiles, trailer_ok: &mut HashSet<PackId>, id: &PackId) -> bool {
    if !trailer_ok.contains(id) && pack_files.read_trailer(id).is_ok() {
        trailer_ok.insert(*id);
    }
    trailer_ok.contains(id)
}

/// Snapshots forgotten while check ran (their files gone, their data perhaps
/// pruned) are not damage: their problems are left out.
fn leave_out_forgotten(
    index: &Index,
    snapshots: &[(SnapshotId, Snapshot)],
    report: &mut CheckReport,
) -> Result<()> {
    let live = index.snapshot_ids()?;
    let gone: Vec<String> = snapshots
        .iter()
        .filter(|(id, _)| !live.contains(id))
        .map(|(id, _)| id.short())
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    report.damaged_files.retain(|d| !gone.contains(&d.snapshot));
    report
        .errors
        .retain(|e| !gone.iter().any(|g| e.starts_with(&format!("snapshot {g}"))));
    report.snapshots -= gone.len();
    Ok(())
}

/// Snapshot records, their trees, and whether every chunk they need is
/// indexed in a readable pack (with a usable base). Every distinct tree is
/// read once (`walk::Trees`), so a subtree shared by many directories or
/// snapshots costs one visit, and a snapshot over the walk's limits is
/// reported without its paths ever being built.
fn check_snapshots(
    layout: &Layout,
    index: &Index,
    pack_files: &PackFiles,
    snapshots: &[(SnapshotId, Snapshot)],
    trailer_ok: &mut HashSet<PackId>,
    chunks: &mut Chunks,
    report: &mut CheckReport,
) -> Result<Walked> {
    for (id, _) in snapshots {
        if let Err(e) = snapshots::read(layout, id) {
            report.errors.push(format!("snapshot {}: {e}", id.short()));
        }
    }
    let mut walked = Walked {
        trees: Trees::new(),
        roots: Vec::new(),
    };
    // Trees (a prefix of `trees.order()`) whose chunks are counted.
    let mut counted = 0;
    for (id, snap) in snapshots {
        let label = format!("snapshot {}", id.short());
        let loaded = walked.trees.load(index, pack_files, &snap.root, &label);
        // The chunks of every tree read, also when a tree below failed.
        let trees = &walked.trees;
        for t in &trees.order()[counted..] {
            let (tree, _) = trees.get(t).expect("ordered trees are loaded");
            for (i, e) in tree.entries.iter().enumerate() {
                let EntryKind::File { chunks: list, size } = &e.kind else {
                    continue;
                };
                for c in list.iter().map(|c| &c.id) {
                    if !chunks.used.insert(*c) {
                        continue;
                    }
                    let loc = index.blob(c, PackKind::Data)?;
                    if let Some(l) = &loc {
                        chunks.raw_len.insert(*c, l.raw_len);
                    }
                    if let Some((why, also_an_error)) =
                        chunk_problem(index, pack_files, trailer_ok, loc)?
                    {
                        if also_an_error {
                            report.errors.push(format!("chunk {}: {why}", c.short()));
                        }
                        chunks.bad.insert(*c, why);
                    }
                }
                // The same rule restore refuses a file by; its paths are
                // named with the other damaged files.
                let raw_len = |c: &ChunkId| chunks.raw_len.get(c).copied();
                if let Some(why) = chunk_list_problem(*size, list, raw_len) {
                    let name = String::from_utf8_lossy(&e.name);
                    report
                        .errors
                        .push(format!("{label}: a file named '{name}': {why}"));
                    chunks.bad_lists.insert((*t, i), why);
                }
            }
        }
        counted = trees.order().len();
        match loaded {
            Ok(_) => walked.roots.push((*id, snap.root)),
            Err(e) => {
                let e = e.to_string();
                report.errors.push(if e.contains(&label) {
                    e.clone()
                } else {
                    format!("{label}: {e}")
                });
                report.damaged_files.push(DamagedFile {
                    snapshot: id.short(),
                    path: "(its directory tree)".into(),
                    reason: e,
                });
            }
        }
    }
    Ok(walked)
}

/// Why a chunk located at `loc` (None: not indexed) cannot be read, if it
/// cannot, and whether that is an error of its own (a bad base) rather
/// than one already reported for its pack.
fn chunk_problem(
    index: &Index,
    pack_files: &PackFiles,
    trailer_ok: &mut HashSet<PackId>,
    loc: Option<BlobLoc>,
) -> Result<Option<(String, bool)>> {
    Ok(match loc {
        None => Some(("missing from every pack".into(), false)),
        Some(loc) if !trailer_reads(pack_files, trailer_ok, &loc.pack) => Some((
            format!("its pack {} is damaged or missing", loc.pack.short()),
            false,
        )),
        Some(loc) => base_problem(index, pack_files, trailer_ok, loc.base)?.map(|why| (why, true)),
    })
}

/// Every tag must name an existing snapshot; unreadable tags are reported.
fn check_tags(
    layout: &Layout,
    snapshots: &[(SnapshotId, Snapshot)],
    report: &mut CheckReport,
) -> Result<()> {
    let (tags, bad_tags) = refs::list_tags(layout)?;
    report.errors.extend(bad_tags);
    for (name, id) in tags {
        if !snapshots.iter().any(|(s, _)| *s == id) {
            report.errors.push(format!(
                "tag {name} names snapshot {} which does not exist",
                id.short()
            ));
        }
    }
    Ok(())
}

/// `--read-data`: every blob of every pack read and verified.
fn read_every_pack(
    index: &Index,
    pack_files: &PackFiles,
    on_disk: &[PackId],
    progress: &dyn Progress,
    chunks: &mut Chunks,
    report: &mut CheckReport,
) -> Result<()> {
    let total: u64 = index.packs()?.iter().map(|p| p.2).sum();
    progress.start("check", total);
    for id in on_disk {
        match verify_pack(index, pack_files, id, progress) {
            Ok(v) => {
                report.chunks_checked += v.blobs;
                report.bytes_read += v.bytes;
                if !v.hash_ok {
                    report.errors.push(format!(
                        "pack {}: content does not match its id",
                        id.short()
                    ));
                }
                for (chunk, why) in v.bad {
                    report.errors.push(format!(
                        "pack {}: chunk {}: {why}",
                        id.short(),
                        chunk.short()
                    ));
                    chunks.bad.entry(chunk).or_insert(why);
                }
            }
            // Deleted since it was listed, by a prune that moved what is
            // still needed first.
            Err(e) if read::is_gone(&e) => {}
            Err(e) => report.errors.push(format!("pack {}: {e}", id.short())),
        }
    }
    progress.finish();
    Ok(())
}

/// Names the files each bad chunk hurts, and those whose chunk list is
/// damaged, snapshot by snapshot in walk order, at most
/// `NAMED_PER_SNAPSHOT` each. The damaged files below each
/// tree are counted once per tree (children first), and only subtrees with
/// damage are entered, so this stays bounded by what it names.
fn name_damaged_files(walked: &Walked, chunks: &Chunks, report: &mut CheckReport) {
    let (bad, bad_lists) = (&chunks.bad, &chunks.bad_lists);
    if bad.is_empty() && bad_lists.is_empty() {
        return;
    }
    let trees = &walked.trees;
    // Entry `i` of tree `t`.
    let why = |t: &TreeId, i: usize, e: &Entry| match &e.kind {
        EntryKind::File { chunks, .. } => bad_lists
            .get(&(*t, i))
            .or_else(|| chunks.iter().find_map(|c| bad.get(&c.id))),
        _ => None,
    };
    let mut bad_below: HashMap<TreeId, u64> = HashMap::new();
    for t in trees.order() {
        let (tree, _) = trees.get(t).expect("ordered trees are loaded");
        let mut n = 0u64;
        for (i, e) in tree.entries.iter().enumerate() {
            n = n.saturating_add(match &e.kind {
                EntryKind::Dir { tree } => bad_below.get(tree).copied().unwrap_or(0),
                _ => u64::from(why(t, i, e).is_some()),
            });
        }
        bad_below.insert(*t, n);
    }
    let below = |t: &TreeId| bad_below.get(t).copied().unwrap_or(0);
    for (snap, root) in &walked.roots {
        let total = below(root);
        let mut named = 0u64;
        type Level<'t> = (
            TreeId,
            std::iter::Enumerate<std::slice::Iter<'t, Entry>>,
            PathBuf,
        );
        let mut stack: Vec<Level<'_>> = Vec::new();
        if total > 0 {
            let (tree, _) = trees.get(root).expect("walked roots are loaded");
            stack.push((*root, tree.entries.iter().enumerate(), PathBuf::new()));
        }
        while let Some((t, entries, dir)) = stack.last_mut() {
            if named == NAMED_PER_SNAPSHOT {
                break;
            }
            let Some((i, e)) = entries.next() else {
                stack.pop();
                continue;
            };
            let path = dir.join(OsStr::from_bytes(&e.name));
            if let EntryKind::Dir { tree } = &e.kind {
                if below(tree) > 0 {
                    let (sub, _) = trees.get(tree).expect("trees below a root are loaded");
                    stack.push((*tree, sub.entries.iter().enumerate(), path));
                }
            } else if let Some(reason) = why(t, i, e) {
                named += 1;
                report.damaged_files.push(DamagedFile {
                    snapshot: snap.short(),
                    path: path.display().to_string(),
                    reason: reason.clone(),
                });
            }
        }
        if total > named {
            report.damaged_files.push(DamagedFile {
                snapshot: snap.short(),
                path: format!("({} more files)", total - named),
                reason: "the same damage; `snap restore` names every file it cannot write".into(),
            });
        }
    }
}

/// Why a float delta's base cannot serve, if it cannot: it must be indexed,
/// in a readable pack, and not a delta itself.
fn base_problem(
    index: &Index,
    pack_files: &PackFiles,
    trailer_ok: &mut HashSet<PackId>,
    base: Option<ChunkId>,
) -> Result<Option<String>> {
    let Some(base) = base else { return Ok(None) };
    let b = base.short();
    Ok(match index.blob(&base, PackKind::Data)? {
        None => Some(format!(
            "its float-delta base {b} is missing from every pack"
        )),
        Some(l) if !trailer_reads(pack_files, trailer_ok, &l.pack) => Some(format!(
            "its float-delta base {b} is in pack {}, which is damaged or missing",
            l.pack.short()
        )),
        Some(l) if l.base.is_some() => Some(format!("its float-delta base {b} is itself a delta")),
        Some(_) => None,
    })
}

struct PackVerdict {
    blobs: u64,
    bytes: u64,
    hash_ok: bool,
    bad: BTreeSet<(ChunkId, String)>,
}

/// Reads a whole pack: checks its id, then decodes and verifies every blob.
fn verify_pack(
    index: &Index,
    pack_files: &PackFiles,
    id: &PackId,
    progress: &dyn Progress,
) -> Result<PackVerdict> {
    let (kind, len, entries) = pack_files.read_trailer(id)?;
    let mut hasher = PackId::hasher();
    let mut verdict = PackVerdict {
        blobs: entries.len() as u64,
        bytes: len,
        hash_ok: true,
        bad: BTreeSet::new(),
    };
    let mut pos = 0u64;
    let mut batch: Vec<(PackEntry, Vec<u8>)> = Vec::new();
    let flush = |batch: &mut Vec<(PackEntry, Vec<u8>)>, verdict: &mut PackVerdict| {
        // Float deltas decode against their bases, read (once each) first.
        let mut bases: HashMap<ChunkId, std::result::Result<Vec<u8>, String>> = HashMap::new();
        for b in batch.iter().filter_map(|(e, _)| e.base) {
            bases.entry(b).or_insert_with(|| {
                read::read_base(index, pack_files, &b).map_err(|e| e.to_string())
            });
        }
        let bad: Vec<(ChunkId, String)> = batch
            .par_iter()
            .filter_map(|(e, stored)| {
                let base = match e.base.map(|b| &bases[&b]) {
                    Some(Ok(base)) => Some(&base[..]),
                    Some(Err(why)) => {
                        let err = Error::corrupt("its float-delta base", why.clone());
                        return Some((e.id, err.to_string()));
                    }
                    None => None,
                };
                read::decode_verified(kind, &e.id, e.codec, stored, e.raw_len, base)
                    .err()
                    .map(|err| (e.id, err.to_string()))
            })
            .collect();
        verdict.bad.extend(bad);
        batch.clear();
    };
    let mut batch_bytes = 0usize;
    for e in &entries {
        if e.offset > pos {
            let gap = pack_files.read_range(id, pos, (e.offset - pos) as usize)?;
            hasher.update(&gap);
        }
        let stored = pack_files.read_range(id, e.offset, e.stored_len as usize)?;
        hasher.update(&stored);
        pos = e.offset + e.stored_len as u64;
        progress.advance(stored.len() as u64);
        batch_bytes += stored.len();
        batch.push((e.clone(), stored));
        if batch_bytes >= 16 << 20 {
            flush(&mut batch, &mut verdict);
            batch_bytes = 0;
        }
    }
    flush(&mut batch, &mut verdict);
    let rest = pack_files.read_range(id, pos, (len - pos) as usize)?;
    debug_assert!(rest.len() >= FOOTER_LEN);
    hasher.update(&rest);
    verdict.hash_ok = PackId::from_hasher(&hasher) == *id;
    Ok(verdict)
}
