//! The write path: scan -> stat cache -> chunk -> hash -> dedup -> compress
//! -> pack -> trees -> snapshot -> publish.
//!
//! Threads: the calling thread walks the files and cuts them into chunks
//! (sequential by nature), each chunk then becomes a rayon task that hashes
//! it, claims it against the index and this commit, and compresses it if
//! new; one writer thread appends encoded chunks to the open pack. So a
//! single large checkpoint is hashed and compressed on every core. Memory is
//! bounded by `IN_FLIGHT_BYTES` of chunks plus the writer's channel.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::chunk::{segment, Chunker, StreamError};
use crate::codec::{self, float::Layout as FloatLayout};
use crate::error::{Error, IoContext, Result};
use crate::format::config::RepoConfig;
use crate::format::pack::{Codec, PackKind};
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{ChunkRef, Entry, EntryKind, Tree};
use crate::id::{ChunkId, SnapshotId, TreeId};
use crate::ops::blobs::{load_tree, PackFiles};
use scan::{Item, ItemKind, Meta};
use crate::progress::Progress;
use crate::store::index::{BlobLoc, Index, StatEntry};
use crate::store::packs::{FinishedPack, PackWriter};
use crate::store::publish::{self, Publication};
use crate::store::Layout;
use crate::workspace::Workspace;

mod scan;

/// Chunk bytes that may be waiting for hashing/compression at once.
const IN_FLIGHT_BYTES: usize = 64 << 20;
/// How often a file that changes while being read is read again.
const READ_ATTEMPTS: u32 = 5;
/// A file modified less than this before it was read is not put in the stat
/// cache: file timestamps come from a coarse clock (one kernel tick, at most
/// 10 ms), so a change right after the read could keep the same mtime.
const RACY_MARGIN_NS: i64 = 50_000_000;

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
}

/// An encoded chunk on its way to the pack writer.
struct Encoded {
    id: ChunkId,
    codec: Codec,
    bytes: Vec<u8>,
    raw_len: u32,
    base: Option<ChunkId>,
}

/// Counting semaphore over bytes in flight.
struct Budget {
    used: Mutex<usize>,
    freed: Condvar,
}

impl Budget {
    fn acquire(&self, n: usize) {
        let mut used = self.used.lock().expect("budget poisoned");
        while *used > 0 && *used + n > IN_FLIGHT_BYTES {
            used = self.freed.wait(used).expect("budget poisoned");
        }
        *used += n;
    }

    fn release(&self, n: usize) {
        *self.used.lock().expect("budget poisoned") -= n;
        self.freed.notify_all();
    }
}

/// State shared by the chunk tasks of one commit.
struct Shared<'a> {
    index: Mutex<&'a mut Index>,
    /// Every chunk id this commit has seen, whether new or already stored.
    seen: Mutex<HashSet<ChunkId>>,
    tx: Sender<Encoded>,
    level: i32,
    budget: Budget,
    /// Reads float-delta bases.
    packs: PackFiles,
    error: Mutex<Option<Error>>,
    new_chunks: AtomicU64,
    new_raw: AtomicU64,
    new_stored: AtomicU64,
    progress: &'a dyn Progress,
}

impl Shared<'_> {
    /// True if `id` is neither stored nor already claimed by this commit;
    /// the caller then owns storing it.
    fn claim(&self, id: &ChunkId) -> Result<bool> {
        if !self.seen.lock().expect("seen poisoned").insert(*id) {
            return Ok(false);
        }
        let known = self
            .index
            .lock()
            .expect("index poisoned")
            .has_blob(id, PackKind::Data)?;
        Ok(!known)
    }

    /// True if every chunk is stored or claimed (a stat cache hit is only
    /// trusted if its chunks still exist).
    fn all_present(&self, chunks: &[ChunkRef]) -> Result<bool> {
        for c in chunks {
            if self.seen.lock().expect("seen poisoned").contains(&c.id) {
                continue;
            }
            if !self
                .index
                .lock()
                .expect("index poisoned")
                .has_blob(&c.id, PackKind::Data)?
            {
                return Ok(false);
            }
            self.seen.lock().expect("seen poisoned").insert(c.id);
        }
        Ok(true)
    }

    fn fail(&self, e: Error) {
        self.error.lock().expect("error poisoned").get_or_insert(e);
    }

    fn failed(&self) -> bool {
        self.error.lock().expect("error poisoned").is_some()
    }

    /// Stores the chunk if it is new. `float` is the element type of the
    /// float tensor it belongs to, if known (such chunks try the float
    /// codec), and `base` the same place of the file's previous version,
    /// if that is float data too (then a float delta is tried first).
    fn process_chunk(
        &self,
        id: ChunkId,
        data: &[u8],
        float: Option<FloatLayout>,
        base: Option<&(ChunkId, BlobLoc)>,
    ) {
        match self.claim(&id) {
            Ok(true) => {
                let delta = match (float, base) {
                    (Some(layout), Some((base_id, loc))) => self
                        .packs
                        .read_decoded(loc)
                        .ok()
                        .filter(|b| ChunkId::of(b) == *base_id)
                        .and_then(|b| codec::encode_delta(data, &b, layout))
                        .map(|d| (Codec::FloatDelta, d, Some(*base_id))),
                    _ => None,
                };
                let (codec, bytes, base) = delta.unwrap_or_else(|| {
                    let (codec, bytes) = match float {
                        Some(layout) => codec::encode_tensor(data, self.level, layout),
                        None => codec::encode(data, self.level),
                    };
                    (codec, bytes, None)
                });
                self.new_chunks.fetch_add(1, Ordering::Relaxed);
                self.new_raw.fetch_add(data.len() as u64, Ordering::Relaxed);
                self.new_stored
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let enc = Encoded {
                    id,
                    codec,
                    bytes,
                    raw_len: data.len() as u32,
                    base,
                };
                if self.tx.send(enc).is_err() {
                    self.fail(Error::Other("the pack writer stopped".into()));
                }
            }
            Ok(false) => {}
            Err(e) => self.fail(e),
        }
    }

    /// Float-delta bases for a file about to be read: for each chunk of its
    /// previous version (`Previous::version_of`) that holds float data, the
    /// blob to code against, keyed by the chunk's length and its offset from
    /// the file's first float chunk (so a header that grew or shrank does
    /// not misalign the tensors). A chunk that is itself a delta gives its
    /// own base: deltas are one level deep.
    fn bases_for(&self, chunks: &[ChunkRef]) -> Result<Bases> {
        let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
        let index = self.index.lock().expect("index poisoned");
        let locs = index.blobs(&ids, PackKind::Data)?;
        let mut keyframes: HashMap<ChunkId, Option<BlobLoc>> = HashMap::new();
        let mut out = HashMap::new();
        let mut off = 0u64;
        let mut anchor = None;
        for c in chunks {
            let start = off;
            off += c.len as u64;
            let Some(loc) = locs.get(&c.id) else { continue };
            if !matches!(loc.codec, Codec::Float | Codec::FloatDelta) {
                continue;
            }
            let key = (start - *anchor.get_or_insert(start), c.len);
            let base = match (loc.codec, loc.base) {
                (Codec::Float, _) => Some((c.id, *loc)),
                (Codec::FloatDelta, Some(b)) => {
                    let keyframe = match keyframes.entry(b) {
                        MapEntry::Occupied(e) => *e.get(),
                        MapEntry::Vacant(e) => *e.insert(index.blob(&b, PackKind::Data)?),
                    };
                    keyframe.filter(|l| l.base.is_none()).map(|l| (b, l))
                }
                _ => None,
            };
            out.extend(base.map(|b| (key, b)));
        }
        Ok(Arc::new(out))
    }
}

/// Float-delta bases of one file, by (offset from the first float chunk,
/// length) of the new chunk.
type Bases = Arc<HashMap<(u64, u32), (ChunkId, BlobLoc)>>;

/// The parent snapshot's trees, loaded as needed, to find the previous
/// version of a checkpoint being committed.
struct Previous {
    root: Option<TreeId>,
    dirs: HashMap<PathBuf, Option<Tree>>,
}

impl Previous {
    fn dir(&mut self, index: &Index, packs: &PackFiles, rel: &Path) -> Option<&Tree> {
        if !self.dirs.contains_key(rel) {
            let tree = match rel.parent() {
                None => self.root.and_then(|r| load_tree(index, packs, &r).ok()),
                Some(up) => {
                    let name = rel.file_name()?.as_bytes();
                    let up = self.dir(index, packs, up)?;
                    let sub = up.entries.iter().find_map(|e| match e.kind {
                        EntryKind::Dir { tree } if e.name == name => Some(tree),
                        _ => None,
                    });
                    sub.and_then(|t| load_tree(index, packs, &t).ok())
                }
            };
            self.dirs.insert(rel.to_path_buf(), tree);
        }
        self.dirs[rel].as_ref()
    }

    /// The chunks of `rel`'s previous version: the file at the same path in
    /// the parent snapshot or, for a new file (`epoch_08.pt` after
    /// `epoch_07.pt`), the newest file of the same directory with the same
    /// extension.
    fn version_of(
        &mut self,
        index: &Index,
        packs: &PackFiles,
        rel: &Path,
    ) -> Option<Vec<ChunkRef>> {
        let name = rel.file_name()?.as_bytes();
        let ext = rel.extension()?;
        let tree = self.dir(index, packs, rel.parent().unwrap_or(Path::new("")))?;
        let files = tree.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { chunks, .. } => Some((e, chunks)),
            _ => None,
        });
        let same = files.clone().find(|(e, _)| e.name == name);
        let newest = || {
            files
                .filter(|(e, _)| {
                    Path::new(std::ffi::OsStr::from_bytes(&e.name)).extension() == Some(ext)
                })
                .max_by_key(|(e, _)| (e.mtime_ns, e.name.clone()))
        };
        same.or_else(newest).map(|(_, chunks)| chunks.clone())
    }
}

/// Chunk lengths and ids of one read of one file, in file order; the ids
/// are filled in by the chunk tasks.
#[derive(Default)]
struct SlotList {
    slots: Mutex<Vec<(u32, Option<ChunkId>)>>,
    filled: Condvar,
}

type Slots = Arc<SlotList>;

impl SlotList {
    /// Adds a slot for a chunk of `len` bytes; returns its number.
    fn push(&self, len: u32) -> usize {
        let mut s = self.slots.lock().expect("slots poisoned");
        s.push((len, None));
        s.len() - 1
    }

    fn fill(&self, slot: usize, id: ChunkId) {
        self.slots.lock().expect("slots poisoned")[slot].1 = Some(id);
        self.filled.notify_all();
    }

    /// The chunks once every task of this read has hashed its chunk.
    /// (The tasks run on the rayon pool, never on the thread that waits.)
    fn wait_all(&self) -> Vec<ChunkRef> {
        let mut s = self.slots.lock().expect("slots poisoned");
        while s.iter().any(|(_, id)| id.is_none()) {
            s = self.filled.wait(s).expect("slots poisoned");
        }
        s.iter()
            .map(|&(len, id)| ChunkRef {
                id: id.expect("checked above"),
                len,
            })
            .collect()
    }
}

/// How a file's content was obtained.
enum FileData {
    Cached(Vec<ChunkRef>),
    Read {
        slots: Slots,
        read_start_ns: i64,
        /// Only the prefix the file had when first opened was stored (it
        /// grew while being read): never a stat cache entry.
        prefix: bool,
    },
    Skipped,
}

pub fn commit(
    layout: &Layout,
    config: &RepoConfig,
    index: &mut Index,
    ws: &Workspace,
    opts: CommitOptions,
    progress: &dyn Progress,
) -> Result<CommitSummary> {
    let workspace_key = opts
        .workspace_label
        .clone()
        .unwrap_or_else(|| ws.root.to_string_lossy().into_owned());
    let (mut items, mut warnings) = scan::scan(ws, &opts.paths)?;
    let latest = latest_of_workspace(index, &workspace_key)?;
    let parent = latest.map(|(id, _)| id);
    let mut previous = Previous {
        root: latest.map(|(_, root)| root),
        dirs: HashMap::new(),
    };

    let (tx, rx) = bounded::<Encoded>(8);
    let writer = {
        let layout = layout.clone();
        let target = config.pack_target_size;
        std::thread::Builder::new()
            .name("snap-pack-writer".into())
            .spawn(move || write_packs(&layout, PackKind::Data, target, rx))
            .map_err(|e| Error::io("start thread", "pack writer", e))?
    };
    let shared = Shared {
        index: Mutex::new(index),
        seen: Mutex::new(HashSet::new()),
        tx,
        level: config.zstd_level,
        budget: Budget {
            used: Mutex::new(0),
            freed: Condvar::new(),
        },
        packs: PackFiles::new(layout),
        error: Mutex::new(None),
        new_chunks: AtomicU64::new(0),
        new_raw: AtomicU64::new(0),
        new_stored: AtomicU64::new(0),
        progress,
    };
    let chunker = Chunker::new(&config.chunker);

    // Decide per file: stat cache hit, or read.
    let mut data: Vec<FileData> = Vec::with_capacity(items.len());
    let mut to_read_bytes = 0;
    for item in &items {
        if item.kind != ItemKind::File {
            data.push(FileData::Skipped);
            continue;
        }
        let cached = if opts.no_stat_cache {
            None
        } else {
            let key = item.rel.as_os_str().as_encoded_bytes();
            shared
                .index
                .lock()
                .expect("index poisoned")
                .stat_entry(&workspace_key, key)?
        };
        match cached {
            Some(c) if same_file(&c, &item.meta) && shared.all_present(&c.chunks)? => {
                data.push(FileData::Cached(c.chunks))
            }
            _ => {
                to_read_bytes += item.meta.size;
                data.push(FileData::Skipped);
            }
        }
    }

    progress.start("commit", to_read_bytes);
    let read_result: Result<()> = rayon::in_place_scope(|scope| {
        for (item, d) in items.iter_mut().zip(data.iter_mut()) {
            if item.kind != ItemKind::File || matches!(d, FileData::Cached(_)) {
                continue;
            }
            if shared.failed() {
                break;
            }
            match read_file(scope, &shared, &chunker, &mut previous, item)? {
                Some(r) => {
                    // A log that grows is the normal case; a checkpoint
                    // that grows is still being written.
                    let name = item.rel.as_os_str().as_encoded_bytes();
                    if r.prefix
                        && segment::CHECKPOINT_EXTENSIONS
                            .iter()
                            .any(|x| name.ends_with(x.as_bytes()))
                    {
                        warnings.push(format!(
                            "{} was still being written: stored its first {} bytes, the size \
                             it had when the commit opened it\n  commit again once it is complete",
                            item.rel.display(),
                            r.meta.size
                        ));
                    }
                    item.meta = r.meta;
                    *d = FileData::Read {
                        slots: r.slots,
                        read_start_ns: r.read_start_ns,
                        prefix: r.prefix,
                    };
                }
                None => warnings.push(format!(
                    "skipped {}: it vanished, or kept being rewritten while being read",
                    item.rel.display()
                )),
            }
        }
        Ok(())
    });
    let Shared {
        index,
        tx,
        error,
        new_chunks,
        new_raw,
        new_stored,
        ..
    } = shared;
    let index = index.into_inner().expect("index poisoned");
    drop(tx);
    let data_packs = writer
        .join()
        .map_err(|_| Error::Other("the pack writer panicked".into()))?;
    read_result?;
    if let Some(e) = error.into_inner().expect("error poisoned") {
        return Err(e);
    }
    let mut packs = data_packs?;
    progress.finish();

    // Files, stat cache rows and the summary.
    let mut summary = Summary {
        new_chunks: new_chunks.into_inner(),
        new_raw_bytes: new_raw.into_inner(),
        new_stored_bytes: new_stored.into_inner(),
        ..Summary::default()
    };
    let mut stat_entries = Vec::new();
    let mut entries: Vec<(PathBuf, Entry)> = Vec::with_capacity(items.len());
    for (item, d) in items.iter().zip(data) {
        let kind = match (&item.kind, d) {
            (ItemKind::Dir, _) => {
                summary.dirs += 1;
                EntryKind::Dir {
                    tree: TreeId([0; 32]),
                }
            }
            (ItemKind::Symlink(t), _) => {
                summary.symlinks += 1;
                EntryKind::Symlink { target: t.clone() }
            }
            (ItemKind::File, FileData::Skipped) => continue,
            (ItemKind::File, d) => {
                let (chunks, cacheable) = match d {
                    FileData::Cached(chunks) => (chunks, true),
                    FileData::Read {
                        slots,
                        read_start_ns,
                        prefix,
                    } => {
                        summary.files_read += 1;
                        summary.bytes_read += item.meta.size;
                        // Every task ran before the scope ended.
                        let chunks = slots.wait_all();
                        let newest = item.meta.mtime_ns.max(item.meta.ctime_ns);
                        (chunks, !prefix && newest < read_start_ns - RACY_MARGIN_NS)
                    }
                    FileData::Skipped => unreachable!("handled above"),
                };
                summary.files += 1;
                summary.logical_bytes += item.meta.size;
                if cacheable && !opts.no_stat_cache {
                    let m = &item.meta;
                    let entry = StatEntry {
                        size: m.size,
                        mtime_ns: m.mtime_ns,
                        ctime_ns: m.ctime_ns,
                        inode: m.inode,
                        dev: m.dev,
                        mode: m.mode,
                        chunks: chunks.clone(),
                    };
                    stat_entries.push((item.rel.as_os_str().as_encoded_bytes().to_vec(), entry));
                }
                EntryKind::File {
                    size: item.meta.size,
                    chunks,
                }
            }
        };
        let name = item
            .rel
            .file_name()
            .expect("relative paths have a name")
            .as_encoded_bytes()
            .to_vec();
        entries.push((
            item.rel.clone(),
            Entry {
                name,
                mode: item.meta.mode,
                mtime_ns: item.meta.mtime_ns,
                kind,
            },
        ));
    }

    crate::store::failpoint::hit("commit:before-trees");
    let (root, tree_pack) = build_trees(layout, config, index, entries)?;
    packs.extend(tree_pack);

    let snapshot = Snapshot {
        time_ns: opts.now_ns,
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        workspace: workspace_key.clone(),
        paths: opts
            .paths
            .iter()
            .filter_map(|p| p.strip_prefix(&ws.root).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        session: opts.session,
        epoch: opts.epoch,
        step: opts.step,
        metrics: opts.metrics,
        message: opts.message,
        labels: opts.labels,
        parent,
        root,
        summary,
    };
    let (id, record) = snapshot.encode();
    let packs_written = packs.len();
    publish::publish(
        layout,
        index,
        Publication {
            packs,
            snapshot_id: id,
            snapshot: snapshot.clone(),
            record,
            stat_workspace: workspace_key,
            stat_entries,
            stat_replace_all: opts.paths.is_empty() && !opts.no_stat_cache,
            tags: opts.tags,
        },
    )?;
    Ok(CommitSummary {
        id,
        snapshot,
        packs_written,
        warnings,
    })
}

fn same_file(c: &StatEntry, m: &Meta) -> bool {
    c.size == m.size
        && c.mtime_ns == m.mtime_ns
        && c.ctime_ns == m.ctime_ns
        && c.inode == m.inode
        && c.dev == m.dev
}

/// The workspace's newest snapshot and its root tree.
fn latest_of_workspace(index: &Index, workspace: &str) -> Result<Option<(SnapshotId, TreeId)>> {
    Ok(index
        .snapshots()?
        .into_iter()
        .rev()
        .find(|(_, s)| s.workspace == workspace)
        .map(|(id, s)| (id, s.root)))
}

/// A file read into chunk tasks.
struct FileRead {
    slots: Slots,
    /// What was stored: size, times and identity of the file as read.
    meta: Meta,
    read_start_ns: i64,
    /// The file grew while being read and its first `meta.size` bytes were
    /// stored (see `read_file`).
    prefix: bool,
}

/// Reads one file into chunk tasks. Returns `None` if the file vanished or
/// kept changing; nothing torn is ever stored. Exactly `size` bytes are
/// read, the size at the open's `fstat`, and the read is accepted if:
///
/// - the file is unchanged: identity, size, mode and times are the same
///   before and after the read, and the path still names it; or
/// - the file only grew: same inode, device and mode, a larger size, times
///   that only moved forward, the path still names it, and a second read of
///   the first `size` bytes yields the same chunks as the first (so no byte
///   of that prefix changed while it was read). The prefix is then what
///   the file held when it was opened, as long as its writer only appends,
///   and it is recorded with the first `fstat` (size `size`): the stat cache
///   never takes it for the grown file.
///
/// Anything else (shrunk, replaced, changed inside, or grown with its
/// prefix changing) is read again, up to `READ_ATTEMPTS` times.
fn read_file<'s, 'a: 's>(
    scope: &rayon::Scope<'s>,
    shared: &'s Shared<'a>,
    chunker: &Chunker,
    previous: &mut Previous,
    item: &Item,
) -> Result<Option<FileRead>> {
    for attempt in 0..READ_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(20 << attempt));
        }
        let file = match open_nofollow(&item.abs) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &item.abs, e)),
        };
        let stat = file.metadata().ctx("stat", &item.abs)?;
        if !stat.is_file() {
            return Ok(None);
        }
        let before = Meta::of(&stat);
        let read_start_ns = now_ns();
        let slots: Slots = Arc::default();
        // Checkpoint formats are cut at tensor boundaries first (header, one
        // segment per tensor); tensor data is then cut into fixed chunks
        // aligned to the tensor start, everything else by FastCDC.
        let segments = segment::segments(&file, before.size, chunker.min_size() as u64);
        let anchor = segments
            .iter()
            .find(|s| float_layout(s.dtype).is_some())
            .map(|s| s.offset);
        let bases: Bases = if anchor.is_some() {
            let chunks = {
                let index = shared.index.lock().expect("index poisoned");
                previous.version_of(&index, &shared.packs, &item.rel)
            };
            chunks
                .map(|c| shared.bases_for(&c))
                .transpose()?
                .unwrap_or_default()
        } else {
            Bases::default()
        };
        let emit = |seg: &segment::Segment, off: u64, bytes: &[u8]| {
            let float = float_layout(seg.dtype);
            let base = float
                .zip(anchor)
                .and_then(|(_, a)| bases.get(&(seg.offset + off - a, bytes.len() as u32)))
                .copied();
            if shared.failed() {
                return Err(());
            }
            let len = bytes.len();
            shared.budget.acquire(len);
            let data = bytes.to_vec();
            let slot = slots.push(len as u32);
            let slots = slots.clone();
            scope.spawn(move |_| {
                let id = ChunkId::of(&data);
                slots.fill(slot, id);
                shared.process_chunk(id, &data, float, base.as_ref());
                shared.budget.release(len);
                shared.progress.advance(len as u64);
            });
            Ok(())
        };
        let read = match stream_segments(&file, &item.abs, &segments, chunker, emit)? {
            Some(n) => n,
            None => return Ok(None),
        };
        let after = Meta::of(&file.metadata().ctx("stat", &item.abs)?);
        let now_at_path = item.abs.symlink_metadata().map(|m| Meta::of(&m)).ok();
        if read != before.size {
            continue; // shrunk while being read
        }
        if before == after && now_at_path == Some(after) {
            return Ok(Some(FileRead {
                slots,
                meta: before,
                read_start_ns,
                prefix: false,
            }));
        }
        let same_file = now_at_path.is_some_and(|m| m.inode == after.inode && m.dev == after.dev);
        if same_file && only_grew(&before, &after) {
            let mut again = Vec::new();
            let reread = stream_segments(&file, &item.abs, &segments, chunker, |_, _, b| {
                again.push(ChunkRef {
                    id: ChunkId::of(b),
                    len: b.len() as u32,
                });
                Ok::<(), ()>(())
            })?;
            if reread == Some(before.size) && again == slots.wait_all() {
                return Ok(Some(FileRead {
                    slots,
                    meta: before,
                    read_start_ns,
                    prefix: true,
                }));
            }
        }
    }
    Ok(None)
}

/// True if `after` is `before` with more bytes appended, as far as `fstat`
/// can tell: same file and mode, larger, and no time moved backwards.
fn only_grew(before: &Meta, after: &Meta) -> bool {
    after.inode == before.inode
        && after.dev == before.dev
        && after.mode == before.mode
        && after.size > before.size
        && after.mtime_ns >= before.mtime_ns
        && after.ctime_ns >= before.ctime_ns
}

/// Streams the bytes `segments` cover, from the start of `file`, through
/// the chunker: tensor segments in fixed chunks, the rest by FastCDC.
/// Calls `emit(segment, offset in the segment, chunk)` in file order and
/// returns the bytes read (fewer than the segments cover if the file
/// shrank), or `None` if `emit` stopped the read.
fn stream_segments<E>(
    file: &File,
    path: &Path,
    segments: &[segment::Segment],
    chunker: &Chunker,
    mut emit: impl FnMut(&segment::Segment, u64, &[u8]) -> std::result::Result<(), E>,
) -> Result<Option<u64>> {
    let mut reader = file;
    reader.seek(std::io::SeekFrom::Start(0)).ctx("seek", path)?;
    let mut read = 0;
    for seg in segments {
        let part = reader.take(seg.len);
        let streamed = if seg.dtype.is_some() {
            chunker.stream_fixed(part, |off, b| emit(seg, off, b))
        } else {
            chunker.stream(part, |off, b| emit(seg, off, b))
        };
        match streamed {
            Ok(n) => read += n,
            Err(StreamError::Io(e)) => return Err(Error::io("read", path, e)),
            Err(StreamError::Emit(_)) => return Ok(None),
        }
        if read < seg.offset + seg.len {
            break;
        }
    }
    Ok(Some(read))
}

/// The float codec layout of a segment's element type.
fn float_layout(dtype: Option<segment::Dtype>) -> Option<FloatLayout> {
    match dtype {
        Some(segment::Dtype::F32) => Some(FloatLayout::F32),
        Some(segment::Dtype::F16) => Some(FloatLayout::F16),
        Some(segment::Dtype::BF16) => Some(FloatLayout::BF16),
        _ => None,
    }
}

/// Opens without following a symlink swapped in after the scan.
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Appends encoded blobs to packs of `kind`, closing each at `target` bytes.
fn write_packs(
    layout: &Layout,
    kind: PackKind,
    target: u64,
    rx: Receiver<Encoded>,
) -> Result<Vec<FinishedPack>> {
    let mut done = Vec::new();
    let mut current: Option<PackWriter> = None;
    for enc in rx {
        let w = match current.as_mut() {
            Some(w) => w,
            None => current.insert(PackWriter::create(layout, kind)?),
        };
        w.add(enc.id, enc.codec, &enc.bytes, enc.raw_len, enc.base)?;
        if w.size() >= target {
            done.push(current.take().expect("just used").finish(layout)?);
            crate::store::failpoint::hit("commit:after-first-pack");
        }
    }
    if let Some(w) = current {
        done.push(w.finish(layout)?);
    }
    Ok(done)
}

/// Builds tree records bottom-up from entries sorted by path, storing the
/// new ones in one tree pack. Returns the root tree id.
fn build_trees(
    layout: &Layout,
    config: &RepoConfig,
    index: &Index,
    entries: Vec<(PathBuf, Entry)>,
) -> Result<(TreeId, Option<FinishedPack>)> {
    let mut dirs: HashMap<PathBuf, Vec<Entry>> = HashMap::new();
    dirs.insert(PathBuf::new(), Vec::new());
    for (path, entry) in &entries {
        if matches!(entry.kind, EntryKind::Dir { .. }) {
            dirs.entry(path.clone()).or_default();
        }
    }
    for (path, entry) in entries {
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        dirs.entry(parent).or_default().push(entry);
    }
    let mut order: Vec<PathBuf> = dirs.keys().cloned().collect();
    order.sort_by_key(|p| std::cmp::Reverse(p.components().count()));

    let mut writer: Option<PackWriter> = None;
    let mut stored: HashSet<TreeId> = HashSet::new();
    let mut root = None;
    let mut ids: HashMap<PathBuf, TreeId> = HashMap::new();
    for dir in order {
        let mut list = dirs.remove(&dir).expect("every dir listed once");
        for e in list.iter_mut() {
            if let EntryKind::Dir { tree } = &mut e.kind {
                let child = dir.join(std::ffi::OsStr::from_bytes(&e.name));
                *tree = *ids
                    .get(&child)
                    .expect("children are built before their parent");
            }
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let (id, bytes) = Tree { entries: list }.encode();
        let key = ChunkId(id.0);
        if !stored.contains(&id) && !index.has_blob(&key, PackKind::Tree)? {
            let (codec, enc) = codec::encode(&bytes, config.zstd_level);
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(PackWriter::create(layout, PackKind::Tree)?),
            };
            w.add(key, codec, &enc, bytes.len() as u32, None)?;
            stored.insert(id);
        }
        if dir.as_os_str().is_empty() {
            root = Some(id);
        }
        ids.insert(dir, id);
    }
    let pack = writer.map(|w| w.finish(layout)).transpose()?;
    Ok((root.expect("the root directory is always built"), pack))
}
