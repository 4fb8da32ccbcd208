//! `snap push`: sending the remote what it lacks, in the durability order
//! (`store::publish`), so a remote never names data it does not hold:
//!
//! 1. `config`, if the remote has none (write-once).
//! 2. Packs holding blobs the pushed snapshots reach and the remote lacks,
//!    each uploaded whole (multipart) under its own name. What the remote
//!    has is decided from its index (`super::RemoteView`: its listed packs'
//!    trailers), by blob, so chunks already there are not sent again even
//!    in a pack of another name. A local pack that also holds blobs no
//!    pushed snapshot needs is still sent whole (`unneeded_bytes`): the
//!    known cost until push repacks.
//! 3. Snapshot records (write-once, named by their hash).
//! 4. Tags, each with a conditional put (`put_tag_if`).
//!
//! An interrupted push leaves at most packs nothing names; the next push
//! finds them listed and sends only the rest.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::error::{Error, Result};
use crate::format::pack::PackKind;
use crate::format::snapshot::Snapshot;
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::ops::prune::reachable;
use crate::store::backend::remote::{ObjectStoreBackend, TagWrite};
use crate::store::backend::Kind;
use crate::store::index::Index;
use crate::store::packs::FinishedPack;
use crate::store::read::PackFiles;
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
    /// Of those, bytes of blobs no pushed snapshot needs (sent because
    /// packs go whole).
    pub unneeded_bytes: u64,
    /// Every byte sent (packs, records, tags, config).
    pub bytes_uploaded: u64,
    pub requests: u64,
    /// Tags created or moved on the remote.
    pub tags: Vec<String>,
    /// Tags left as they are on the remote, with the reason.
    pub tag_conflicts: Vec<String>,
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
    for (kind, wanted) in [(PackKind::Data, chunks), (PackKind::Tree, trees)] {
        let ids: Vec<ChunkId> = wanted.into_iter().collect();
        let on_remote = vindex.blobs(&ids, kind)?;
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
    for (pack, blobs) in &sending {
        let (kind, size) = *pack_info.get(pack).ok_or_else(|| {
            Error::corrupt(format!("pack {}", pack.short()), "not in the local index")
        })?;
        upload_pack(local, backend, pack, size)?;
        let entries = index.blobs_in_pack(pack)?;
        let wanted: HashSet<ChunkId> = blobs.iter().map(|(_, id)| *id).collect();
        let needed: u64 = entries
            .iter()
            .filter(|e| wanted.contains(&e.id))
            .map(|e| e.stored_len as u64)
            .sum();
        let blob_bytes: u64 = entries.iter().map(|e| e.stored_len as u64).sum();
        vindex.transaction(|tx| {
            tx.insert_pack(&FinishedPack {
                id: *pack,
                kind,
                size,
                entries,
            })
        })?;
        report.packs += 1;
        report.chunks += blobs.len();
        report.pack_bytes += size;
        report.unneeded_bytes += blob_bytes - needed;
        failpoint::hit("push:between-packs");
    }

    failpoint::hit("push:before-records");
    for (id, _) in &to_send {
        let (snap, record) = snapshots::read(local, id)?;
        view.backend().put(Kind::Snapshot, &id.to_hex(), &record)?;
        vindex.transaction(|tx| tx.insert_snapshot(id, &snap, &record))?;
        report.snapshots += 1;
    }

    failpoint::hit("push:before-tags");
    push_tags(index, vindex, backend, snaps, report)?;

    let after = backend.traffic().totals();
    report.requests = after.0 - before.0;
    report.bytes_uploaded = after.2 - before.2;
    Ok(())
}

fn kind_noun(kind: PackKind) -> &'static str {
    match kind {
        PackKind::Data => "chunk",
        PackKind::Tree => "tree",
    }
}

/// Streams local pack `id` to the remote under its own name.
fn upload_pack(local: &Layout, backend: &ObjectStoreBackend, id: &PackId, size: u64) -> Result<()> {
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
    for (name, id) in index.tags()? {
        if !pushed.contains(&id) {
            continue;
        }
        let bytes = format!("{}\n", id.to_hex());
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
        match backend.put_tag_if(&name, bytes.as_bytes(), current.as_ref())? {
            TagWrite::Written => {
                vindex.transaction(|tx| tx.set_tag(&name, &id))?;
                report.tags.push(name);
            }
            TagWrite::Conflict => report.tag_conflicts.push(format!(
                "tag {name}: changed on the remote while this push ran; `snap pull`, then push again"
            )),
        }
    }
    Ok(())
}
