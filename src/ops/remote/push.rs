//! `snap push`: sending the remote what it lacks, in the durability order
//! (`store::publish`), so a remote never names data it does not hold:
//!
//! 1. `config`, if the remote has none (write-once).
//! 2. Packs holding blobs the pushed snapshots reach and the remote lacks.
//!    What the remote has is decided from its cache (its listed packs'
//!    trailers), by blob, so chunks already there are not sent again even
//!    in a pack of another name. A local pack of which at least 90% (by
//!    stored bytes) is needed goes whole, streamed (multipart) under its
//!    own name (`unneeded_bytes` counts the rest); a pack needed less is
//!    repacked: its needed blobs, each read and verified, go into new packs
//!    written straight to the remote (`send_whole` says why 90%).
//! 3. The packs counted on are settled with a remote prune running
//!    elsewhere (`settle_marked`): marks removed, or the push stopped if
//!    one is gone. Then snapshot records (write-once, named by their hash).
//! 4. Tags, each with a conditional put (`put_tag_if`).
//!
//! An interrupted push leaves at most packs nothing names; the next push
//! finds them listed and sends only the rest.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::error::{Error, Result};
use crate::format::pack::{PackEntry, PackKind};
use crate::format::snapshot::Snapshot;
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::ops::prune::reachable;
use crate::progress::Progress;
use crate::store::backend::remote::{ObjectStoreBackend, TagWrite};
use crate::store::backend::Kind;
use crate::store::index::Index;
use crate::store::packs::{self, FinishedPack, PackWriter};
use crate::store::read::{self, PackFiles};
use crate::store::{failpoint, snapshots, Layout};

/// Bytes read from a local pack per write to the upload.
const COPY_BLOCK: usize = 8 << 20;

/// What a push sent.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PushReport {
    pub remote: String,
    pub url: String,
    /// Snapshot records sent.
    pub snapshots: usize,
    /// Snapshots asked for that the remote already had.
    pub snapshots_present: usize,
    pub packs: usize,
    /// Chunks and trees sent that the remote did not have.
    pub chunks: usize,
    /// Bytes of the packs sent.
    pub pack_bytes: u64,
    /// Of those, bytes of blobs no pushed snapshot needs, in packs sent
    /// whole because at least 90% of them was needed (`send_whole`).
    pub unneeded_bytes: u64,
    /// Local packs whose needed blobs were copied into new packs instead.
    pub repacked: usize,
    /// Bytes of the blobs so copied (verified on the way).
    pub repacked_bytes: u64,
    /// Every byte sent (packs, records, tags, config).
    pub bytes_uploaded: u64,
    pub requests: u64,
    /// Packs this push needs that a remote prune had marked for deletion:
    /// their marks were removed, so they stay.
    pub packs_taken_back: usize,
    /// Tags created or moved on the remote.
    pub tags: Vec<String>,
    /// Tags left as they are on the remote, with the reason.
    pub tag_conflicts: Vec<String>,
    /// Notes and journal entries sent.
    #[serde(flatten)]
    pub history: super::HistoryCopied,
}

/// Pushes `snaps` (with the tags naming them) from the local repository
/// (`local`, `index`) to the remote (`view`, `vindex`: its cache, synced;
/// `backend`: its store). The remote's cache is updated with what was sent.
#[allow(clippy::too_many_arguments)]
pub fn push(
    local: &Layout,
    index: &Index,
    view: &Layout,
    vindex: &mut Index,
    backend: &ObjectStoreBackend,
    snaps: &[(SnapshotId, Snapshot)],
    pack_target_size: u64,
    progress: &dyn Progress,
    report: &mut PushReport,
) -> Result<()> {
    let before = backend.traffic().totals();
    let present = vindex.snapshot_ids()?;
    let to_send: Vec<&(SnapshotId, Snapshot)> = snaps
        .iter()
        .filter(|(id, _)| !present.contains(id))
        .collect();
    report.snapshots_present = snaps.len() - to_send.len();

    let roots: Vec<_> = to_send.iter().map(|(_, s)| s.root).collect();
    let local_packs = PackFiles::new(local);
    let (chunks, trees) = reachable(index, &local_packs, &roots)?;
    let mut sending: BTreeMap<PackId, Vec<(PackKind, ChunkId)>> = BTreeMap::new();
    // The remote packs this push counts on, and then those it sends: a
    // remote prune must not have marked any of them when the records go.
    let mut counted_on: HashSet<PackId> = HashSet::new();
    for (kind, wanted) in [(PackKind::Data, chunks), (PackKind::Tree, trees)] {
        let ids: Vec<ChunkId> = wanted.into_iter().collect();
        let on_remote = vindex.blobs(&ids, kind)?;
        counted_on.extend(on_remote.values().map(|loc| loc.pack));
        let missing: Vec<ChunkId> = ids
            .into_iter()
            .filter(|id| !on_remote.contains_key(id))
            .collect();
        let here = index.blobs(&missing, kind)?;
        for id in &missing {
            let loc = here.get(id).ok_or_else(|| {
                Error::corrupt(
                    format!("{} {}", kind_noun(kind), id.short()),
                    "needed by a pushed snapshot but missing from every local pack; run `snap check`",
                )
            })?;
            sending.entry(loc.pack).or_default().push((kind, *id));
        }
    }

    let pack_info: BTreeMap<PackId, (PackKind, u64)> = index
        .packs()?
        .into_iter()
        .map(|(id, kind, size)| (id, (kind, size)))
        .collect();
    // Decide per pack (`send_whole`): whole, or only its needed blobs,
    // copied into new packs.
    let mut whole: Vec<(PackId, PackKind, u64, Vec<PackEntry>, usize, u64)> = Vec::new();
    let mut repack: Vec<(PackId, PackKind, Vec<PackEntry>)> = Vec::new();
    let mut total = 0u64;
    for (pack, blobs) in &sending {
        let (kind, size) = *pack_info.get(pack).ok_or_else(|| {
            Error::corrupt(format!("pack {}", pack.short()), "not in the local index")
        })?;
        let entries = index.blobs_in_pack(pack)?;
        let wanted: HashSet<ChunkId> = blobs.iter().map(|(_, id)| *id).collect();
        let (needed, rest): (Vec<PackEntry>, Vec<PackEntry>) = entries
            .iter()
            .cloned()
            .partition(|e| wanted.contains(&e.id));
        let needed_bytes: u64 = needed.iter().map(|e| e.stored_len as u64).sum();
        let unneeded: u64 = rest.iter().map(|e| e.stored_len as u64).sum();
        if send_whole(needed_bytes, needed_bytes + unneeded) {
            total += size;
            whole.push((*pack, kind, size, entries, blobs.len(), unneeded));
        } else {
            total += needed_bytes;
            repack.push((*pack, kind, needed));
        }
    }

    progress.start("push", total);
    for (pack, kind, size, entries, blobs, unneeded) in whole {
        upload_pack(local, backend, &pack, size, progress)?;
        counted_on.insert(pack);
        vindex.transaction(|tx| {
            tx.insert_pack(&FinishedPack {
                id: pack,
                kind,
                size,
                entries,
            })
        })?;
        report.packs += 1;
        report.chunks += blobs;
        report.pack_bytes += size;
        report.unneeded_bytes += unneeded;
        failpoint::hit("push:between-packs");
    }
    counted_on.extend(repack_to_remote(
        index,
        &local_packs,
        view,
        vindex,
        &repack,
        pack_target_size,
        progress,
        report,
    )?);
    progress.finish();

    failpoint::hit("push:before-records");
    settle_marked(view, vindex, backend, &counted_on, report)?;
    for (id, _) in &to_send {
        let (snap, record) = snapshots::read(local, id)?;
        view.backend().put(Kind::Snapshot, &id.to_hex(), &record)?;
        vindex.transaction(|tx| tx.insert_snapshot(id, &snap, &record))?;
        report.snapshots += 1;
    }

    // After the records: a note goes where its snapshot already is.
    let ids = snaps.iter().map(|(id, _)| *id).collect();
    super::copy_history(local, view, &ids, &mut report.history)?;

    failpoint::hit("push:before-tags");
    push_tags(index, vindex, backend, snaps, report)?;

    let after = backend.traffic().totals();
    report.requests = after.0 - before.0;
    report.bytes_uploaded = after.2 - before.2;
    Ok(())
}

/// Settles, just before the records go, the packs this push counts on or
/// sent with a remote prune running elsewhere (`ops::remote::prune`): a
/// pack marked for deletion meanwhile has its mark removed (a prune
/// deletes a pack only while its mark is there, and resurrects one a
/// snapshot names, so it stays), and a pack already deleted stops the
/// push before it names it. Such packs leave the cache, so the next push
/// sends their chunks again. Costs one listing of the remote's packs, and
/// a delete per mark removed.
fn settle_marked(
    view: &Layout,
    vindex: &mut Index,
    backend: &ObjectStoreBackend,
    counted_on: &HashSet<PackId>,
    report: &mut PushReport,
) -> Result<()> {
    let (listed, doomed) = backend.list_packs_and_marks()?;
    let listed: HashSet<PackId> = listed.into_iter().map(|(id, _)| id).collect();
    let mut gone: Vec<PackId> = counted_on
        .iter()
        .filter(|id| !listed.contains(id))
        .copied()
        .collect();
    gone.sort();
    let taken_back: Vec<&PackId> = counted_on
        .iter()
        .filter(|id| listed.contains(id) && doomed.contains(id))
        .collect();
    packs::unmark(view, &taken_back)?;
    report.packs_taken_back = taken_back.len();
    if gone.is_empty() {
        return Ok(());
    }
    vindex.transaction(|tx| {
        for id in &gone {
            tx.delete_pack(id)?;
        }
        Ok(())
    })?;
    Err(Error::Other(format!(
        "a prune of the remote deleted {} pack(s) this push needs while it ran (first: {}), \
         so no snapshot record was sent\n  run the push again: it sends those chunks itself",
        gone.len(),
        view.backend()
            .locate(Kind::Pack, &gone[0].to_hex())
            .display()
    )))
}

/// Whether a pack goes whole: when at least 90% of its blob bytes are
/// needed. Repacking costs, for the needed bytes, a local read, a decode and
/// a BLAKE3 check (GB/s on one core), and for a pack over 8 MiB a
/// server-side copy from its temporary name; sending whole costs the
/// unneeded bytes on the network (tens to hundreds of MB/s). With the
/// network ten times slower than the check, the two break even near a
/// tenth unneeded; below that the byte-identical copy is kept.
fn send_whole(needed: u64, blob_bytes: u64) -> bool {
    needed * 10 >= blob_bytes * 9
}

/// Copies the needed blobs of `repack` (local packs mostly unneeded) into
/// new packs written straight to the remote, each blob verified (decoded
/// and checked against its id) on the way; the new packs are entered into
/// the remote's cache as each is finished.
#[allow(clippy::too_many_arguments)]
fn repack_to_remote(
    index: &Index,
    local_packs: &PackFiles,
    view: &Layout,
    vindex: &mut Index,
    repack: &[(PackId, PackKind, Vec<PackEntry>)],
    pack_target_size: u64,
    progress: &dyn Progress,
    report: &mut PushReport,
) -> Result<Vec<PackId>> {
    let mut written = Vec::new();
    let mut done = |vindex: &mut Index, w: PackWriter, report: &mut PushReport| -> Result<()> {
        let p = w.finish(view)?;
        vindex.transaction(|tx| tx.insert_pack(&p))?;
        report.packs += 1;
        report.chunks += p.entries.len();
        report.pack_bytes += p.size;
        written.push(p.id);
        failpoint::hit("push:between-packs");
        Ok(())
    };
    for kind in [PackKind::Data, PackKind::Tree] {
        let mut writer: Option<PackWriter> = None;
        for (pack, _, entries) in repack.iter().filter(|(_, k, _)| *k == kind) {
            report.repacked += 1;
            for e in entries {
                let (stored, _) = read::read_entry(index, local_packs, pack, kind, e)?;
                let w = match writer.as_mut() {
                    Some(w) => w,
                    None => writer.insert(PackWriter::create(view, kind)?),
                };
                w.add(e.id, e.codec, &stored, e.raw_len, e.base)?;
                report.repacked_bytes += stored.len() as u64;
                progress.advance(stored.len() as u64);
                if w.size() >= pack_target_size {
                    done(vindex, writer.take().expect("just used"), report)?;
                }
            }
        }
        if let Some(w) = writer {
            done(vindex, w, report)?;
        }
    }
    Ok(written)
}

fn kind_noun(kind: PackKind) -> &'static str {
    match kind {
        PackKind::Data => "chunk",
        PackKind::Tree => "tree",
    }
}

/// Streams local pack `id` to the remote under its own name.
fn upload_pack(
    local: &Layout,
    backend: &ObjectStoreBackend,
    id: &PackId,
    size: u64,
    progress: &dyn Progress,
) -> Result<()> {
    let object = local.backend().open(Kind::Pack, &id.to_hex())?;
    let mut up = backend.upload_as(Kind::Pack, &id.to_hex());
    let mut offset = 0u64;
    while offset < size {
        let n = (size - offset).min(COPY_BLOCK as u64) as usize;
        let block = match object.read_at(offset, n) {
            Ok(b) => b,
            Err(e) => {
                up.abandon();
                return Err(e);
            }
        };
        if let Err(e) = up.write(&block) {
            up.abandon();
            return Err(e);
        }
        offset += n as u64;
        progress.advance(n as u64);
    }
    up.finish(&id.to_hex())
}

/// Creates or moves the remote tags naming pushed snapshots. A remote tag
/// is moved only if it names a snapshot this repository has (so it was
/// seen here before it was replaced), and only if nobody moved it since it
/// was read (`If-Match`); otherwise it is left and reported.
fn push_tags(
    index: &Index,
    vindex: &mut Index,
    backend: &ObjectStoreBackend,
    snaps: &[(SnapshotId, Snapshot)],
    report: &mut PushReport,
) -> Result<()> {
    let pushed: BTreeSet<SnapshotId> = snaps.iter().map(|(id, _)| *id).collect();
    let known = index.snapshot_ids()?;
    // Read every tag to move with its version first, then write each only
    // if it is still that version: a writer in between wins, and this push
    // is told (the `push:tags-read` barrier lets a test put one there).
    let mut writes = Vec::new();
    for (name, id) in index.tags()? {
        if !pushed.contains(&id) {
            continue;
        }
        let current = backend.read_versioned(Kind::Tag, &name)?;
        let theirs = current.as_ref().map(|v| {
            String::from_utf8_lossy(&v.bytes)
                .trim()
                .parse::<String>()
                .ok()
                .and_then(|t| SnapshotId::from_hex(&t))
        });
        match theirs {
            Some(Some(t)) if t == id => continue,
            Some(Some(t)) if !known.contains(&t) => {
                report.tag_conflicts.push(format!(
                    "tag {name}: the remote's names snapshot {}, which this repository does not have (another machine moved it); `snap pull` first",
                    t.short()
                ));
                continue;
            }
            _ => {}
        }
        writes.push((name, id, current));
    }
    failpoint::hit("push:tags-read");
    for (name, id, current) in writes {
        let bytes = format!("{}\n", id.to_hex());
        match backend.put_tag_if(&name, bytes.as_bytes(), current.as_ref())? {
            TagWrite::Written => {
                vindex.transaction(|tx| tx.set_tag(&name, &id))?;
                report.tags.push(name);
            }
            TagWrite::Conflict => report.tag_conflicts.push(format!(
                "tag {name}: another push moved it on the remote while this one ran, so it was left as that push set it; `snap pull`, decide with `snap tag {name} REV`, then push again"
            )),
        }
    }
    Ok(())
}
