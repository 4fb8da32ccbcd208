//! `snap pull` (and `snap clone`): bringing snapshots from a remote into
//! the local repository, in the local durability order: packs (each
//! verified, then made durable), then snapshot records, then tags; the
//! caller then syncs the index.
//!
//! A remote can be hostile, so a pack is verified while it streams in:
//! every blob is decoded and checked against its id
//! (`read::decode_verified`), the trailer that arrives must be the one the
//! remote's index was built from, and the whole pack must hash to its
//! name. A pack that fails is never placed: the pull stops, naming it.

use std::collections::{BTreeSet, HashSet};

use crate::error::{Error, Result};
use crate::format::pack::{self, PackEntry, PackKind, FOOTER_LEN};
use crate::format::snapshot::Snapshot;
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::ops::prune::reachable;
use crate::progress::Progress;
use crate::store::backend::{Kind, Upload};
use crate::store::index::Index;
use crate::store::read::{self, PackFiles};
use crate::store::{failpoint, publish, refs, snapshots, Layout};

/// Most bytes fetched with one range request.
const FETCH_BLOCK: u64 = 8 << 20;

/// What a pull brought in.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PullReport {
    pub remote: String,
    pub url: String,
    pub snapshots: usize,
    pub snapshots_present: usize,
    pub packs: usize,
    pub pack_bytes: u64,
    pub bytes_fetched: u64,
    pub requests: u64,
    pub tags: Vec<String>,
    /// Remote tags that differ from local ones: the local tag is kept.
    pub tag_conflicts: Vec<String>,
    /// Notes and journal entries brought in.
    #[serde(flatten)]
    pub history: super::HistoryCopied,
}

/// Pulls `snaps` (resolved on the remote) into the local repository. The
/// caller holds the local writer lock and syncs the index afterwards.
pub fn pull(
    local: &Layout,
    index: &mut Index,
    view: &Layout,
    vindex: &Index,
    snaps: &[(SnapshotId, Snapshot)],
    progress: &dyn Progress,
    report: &mut PullReport,
) -> Result<()> {
    let present = index.snapshot_ids()?;
    let to_get: Vec<&(SnapshotId, Snapshot)> = snaps
        .iter()
        .filter(|(id, _)| !present.contains(id))
        .collect();
    report.snapshots_present = snaps.len() - to_get.len();
    let remote_packs = PackFiles::new(view);
    let roots: Vec<_> = to_get.iter().map(|(_, s)| s.root).collect();
    let (chunks, trees) = reachable(vindex, &remote_packs, &roots)?;
    let mut wanted: BTreeSet<PackId> = BTreeSet::new();
    for (kind, ids) in [(PackKind::Data, chunks), (PackKind::Tree, trees)] {
        let ids: Vec<ChunkId> = ids.into_iter().collect();
        let here = index.blobs(&ids, kind)?;
        let missing: Vec<ChunkId> = ids.into_iter().filter(|i| !here.contains_key(i)).collect();
        let there = vindex.blobs(&missing, kind)?;
        for id in &missing {
            let loc = there.get(id).ok_or_else(|| {
                Error::corrupt(
                    format!("{} {} on the remote", noun(kind), id.short()),
                    "named by a snapshot but in none of the remote's packs",
                )
            })?;
            wanted.insert(loc.pack);
        }
    }
    let sizes: std::collections::HashMap<PackId, (PackKind, u64)> = vindex
        .packs()?
        .into_iter()
        .map(|(id, k, s)| (id, (k, s)))
        .collect();
    let local_packs = PackFiles::new(local);
    progress.start("pull", wanted.iter().map(|id| sizes[id].1).sum());
    for id in &wanted {
        let (kind, size) = sizes[id];
        let entries = vindex.blobs_in_pack(id)?;
        let bases = Bases {
            local: (index, &local_packs),
            remote: (vindex, &remote_packs),
        };
        fetch_pack(local, view, id, kind, size, entries, &bases, progress)?;
        report.packs += 1;
        report.pack_bytes += size;
        failpoint::hit("pull:between-packs");
    }
    progress.finish();
    for (id, _) in &to_get {
        let (_, record) = snapshots::read(view, id)?;
        snapshots::write(local, id, &record)?;
        report.snapshots += 1;
    }
    let pulled: HashSet<SnapshotId> = snaps.iter().map(|(id, _)| *id).collect();
    super::copy_history(view, local, &pulled, &mut report.history)?;
    let local_tags: std::collections::HashMap<String, SnapshotId> =
        index.tags()?.into_iter().collect();
    for (name, id) in vindex.tags()? {
        if !pulled.contains(&id) {
            continue;
        }
        // A remote's listing may hold any name; only valid ones come in.
        if let Err(e) = refs::validate_tag(&name) {
            report
                .tag_conflicts
                .push(format!("remote tag skipped: {e}"));
            continue;
        }
        match local_tags.get(&name) {
            Some(l) if *l == id => {}
            Some(l) => report.tag_conflicts.push(format!(
                "tag {name}: here it names {}, on the remote {}; kept here (`snap tag {name} {}` takes the remote's)",
                l.short(),
                id.short(),
                id.short()
            )),
            None => {
                publish::set_tag(local, index, &name, &id)?;
                report.tags.push(name);
            }
        }
    }
    Ok(())
}

fn noun(kind: PackKind) -> &'static str {
    match kind {
        PackKind::Data => "chunk",
        PackKind::Tree => "tree",
    }
}

/// Where the bases of float deltas are read from: here first, else the
/// remote.
struct Bases<'a> {
    local: (&'a Index, &'a PackFiles),
    remote: (&'a Index, &'a PackFiles),
}

impl Bases<'_> {
    fn read(&self, id: &ChunkId) -> Result<Vec<u8>> {
        if self.local.0.has_blob(id, PackKind::Data)? {
            return read::read_base(self.local.0, self.local.1, id);
        }
        read::read_base(self.remote.0, self.remote.1, id)
    }
}

/// Streams remote pack `id` into a local upload, verifying every blob, the
/// trailer and the pack's hash before it is placed.
#[allow(clippy::too_many_arguments)]
fn fetch_pack(
    local: &Layout,
    view: &Layout,
    id: &PackId,
    kind: PackKind,
    size: u64,
    mut entries: Vec<PackEntry>,
    bases: &Bases<'_>,
    progress: &dyn Progress,
) -> Result<()> {
    entries.sort_by_key(|e| e.offset);
    let object = view.backend().open(Kind::Pack, &id.to_hex())?;
    let name = || {
        format!(
            "pack {} ({})",
            id.short(),
            view.backend().locate(Kind::Pack, &id.to_hex()).display()
        )
    };
    let mut up = local.backend().upload(Kind::Pack)?;
    let result = (|| {
        let mut hasher = PackId::hasher();
        let mut write = |up: &mut Box<dyn Upload>, bytes: &[u8]| -> Result<()> {
            hasher.update(bytes);
            up.write(bytes)
        };
        let mut pos = 0u64;
        let mut i = 0;
        while i < entries.len() {
            // One request: from `pos` to the end of as many blobs as fit.
            let mut j = i;
            let mut end = pos;
            while j < entries.len() {
                let e_end = entries[j].offset + entries[j].stored_len as u64;
                if j > i && e_end - pos > FETCH_BLOCK {
                    break;
                }
                end = e_end.max(end);
                j += 1;
            }
            if end > size {
                return Err(Error::corrupt(
                    name(),
                    "a blob runs past the end of the pack",
                ));
            }
            let block = object.read_at(pos, (end - pos) as usize)?;
            for e in &entries[i..j] {
                let at = e
                    .offset
                    .checked_sub(pos)
                    .ok_or_else(|| Error::corrupt(name(), "blobs overlap"))?
                    as usize;
                let stored = &block[at..at + e.stored_len as usize];
                let base = e.base.map(|b| bases.read(&b)).transpose()?;
                read::decode_verified(kind, &e.id, e.codec, stored, e.raw_len, base.as_deref())
                    .map_err(|err| Error::corrupt(name(), err.to_string()))?;
            }
            write(&mut up, &block)?;
            progress.advance(block.len() as u64);
            pos = end;
            i = j;
        }
        // The trailer and footer: the entries verified above must be the
        // ones the pack itself lists.
        let tail = object.read_at(pos, (size - pos) as usize)?;
        if tail.len() < FOOTER_LEN {
            return Err(Error::corrupt(name(), "shorter than its footer"));
        }
        let (tlen, sum) = pack::decode_footer(&tail[tail.len() - FOOTER_LEN..], size)
            .map_err(|e| Error::corrupt(name(), e.to_string()))?;
        let blob_end = size - FOOTER_LEN as u64 - tlen;
        let listed = match blob_end.checked_sub(pos) {
            Some(0) => pack::decode_trailer(&tail[..tlen as usize], &sum, blob_end)
                .map_err(|e| Error::corrupt(name(), e.to_string()))?,
            _ => {
                return Err(Error::corrupt(
                    name(),
                    "unlisted bytes between blobs and trailer",
                ))
            }
        };
        let mut listed = listed;
        listed.sort_by_key(|e| e.offset);
        if listed != entries {
            return Err(Error::corrupt(
                name(),
                "its trailer changed since the remote's index was built; run the command again",
            ));
        }
        write(&mut up, &tail)?;
        if PackId::from_hasher(&hasher) != *id {
            return Err(Error::corrupt(name(), "content does not match its name"));
        }
        Ok(())
    })();
    match result {
        Ok(()) => up.finish(&id.to_hex()),
        Err(e) => {
            up.abandon();
            Err(e)
        }
    }
}
