//! Hash, claim and compress on rayon, with one pack-writer thread.
//!
//! The calling thread reads the files and cuts them into chunks (`read`,
//! sequential by nature); each chunk then becomes a rayon task that hashes
//! it, claims it (not in the index and not claimed by this commit) and, if
//! new, compresses it: as a float delta against its base when it has one
//! and that pays, else with the float codec for float tensor data, else
//! zstd or raw. One writer thread appends the encoded chunks to the open
//! data pack and finishes each pack at the config's `pack_target_size`. So
//! a single large checkpoint is hashed and compressed on every core, and
//! memory is bounded by `IN_FLIGHT_BYTES` of chunks, one pending batch and
//! the writer's channel.
//!
//! Small chunks (under `SMALL_CHUNK`: small files, mostly) are not a task
//! each: they are copied into one pending batch, which becomes one task once
//! it holds `BATCH_BYTES` or `BATCH_CHUNKS` (or when the reading thread is
//! about to wait for chunk ids, and at the end), and goes to the writer as
//! one message. A workspace of many small files thus costs one thread
//! hand-off per batch, not per file. Each chunk keeps its slot, so a file's
//! chunk list is in file order whatever order the tasks run in; which pack
//! and offset a chunk lands at was never fixed (tasks finish in any order).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::bases::Previous;
use super::read;
use super::scan::Files;
use crate::chunk::Chunker;
use crate::codec::{self, float::Layout as FloatLayout};
use crate::error::{Error, Result};
use crate::format::config::RepoConfig;
use crate::format::pack::{Codec, PackKind};
use crate::format::tree::ChunkRef;
use crate::id::ChunkId;
use crate::progress::Progress;
use crate::store::index::{BlobLoc, Index};
use crate::store::packs::{FinishedPack, PackWriter};
use crate::store::read::PackFiles;
use crate::store::Layout;

/// Chunk bytes that may be waiting for hashing/compression at once.
const IN_FLIGHT_BYTES: usize = 64 << 20;
/// Messages (a chunk, or a batch of small ones) waiting for the pack writer.
const WRITER_QUEUE: usize = 8;
/// Chunks shorter than this go into a batch rather than a task of their own.
const SMALL_CHUNK: usize = 64 << 10;
/// A batch becomes a task once it holds this many bytes ...
const BATCH_BYTES: usize = 1 << 20;
/// ... or this many chunks.
const BATCH_CHUNKS: usize = 256;

/// What the pipeline stored: the finished data packs and the new chunks.
pub(super) struct Written {
    pub packs: Vec<FinishedPack>,
    pub new_chunks: u64,
    pub new_raw_bytes: u64,
    pub new_stored_bytes: u64,
}

/// Reads every `Pending` file of `files` through the pipeline (each becomes
/// `Read` or `Skipped`) and waits until every new chunk is in a finished
/// pack. `seen` holds the chunks known to be stored already (the stat
/// cache's hits), `previous` the parent's trees, where float-delta bases
/// come from.
pub(super) fn run(
    layout: &Layout,
    config: &RepoConfig,
    index: &mut Index,
    seen: HashSet<ChunkId>,
    files: &mut Files,
    mut previous: Previous,
    progress: &dyn Progress,
) -> Result<Written> {
    let (tx, rx) = bounded::<Vec<Encoded>>(WRITER_QUEUE);
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
        seen: Mutex::new(seen),
        tx,
        level: config.zstd_level,
        budget: Budget {
            used: Mutex::new(0),
            freed: Condvar::new(),
        },
        packs: PackFiles::new(layout),
        batch: Mutex::new(Batch::default()),
        error: Mutex::new(None),
        new_chunks: AtomicU64::new(0),
        new_raw: AtomicU64::new(0),
        new_stored: AtomicU64::new(0),
        progress,
    };
    let chunker = Chunker::new(&config.chunker);
    let read_result: Result<()> = rayon::in_place_scope(|scope| {
        read::read_files(scope, &shared, &chunker, &mut previous, files)
    });
    let Shared {
        tx,
        error,
        new_chunks,
        new_raw,
        new_stored,
        ..
    } = shared;
    drop(tx);
    let data_packs = writer
        .join()
        .map_err(|_| Error::Other("the pack writer panicked".into()))?;
    // The writer's own error (a full disk, say) is the cause; the chunk
    // tasks only saw that it stopped.
    let data_packs = data_packs?;
    read_result?;
    if let Some(e) = error.into_inner().expect("error poisoned") {
        return Err(e);
    }
    Ok(Written {
        packs: data_packs,
        new_chunks: new_chunks.into_inner(),
        new_raw_bytes: new_raw.into_inner(),
        new_stored_bytes: new_stored.into_inner(),
    })
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
pub(super) struct Shared<'a> {
    pub index: Mutex<&'a mut Index>,
    /// Every chunk id this commit has seen, whether new or already stored.
    seen: Mutex<HashSet<ChunkId>>,
    tx: Sender<Vec<Encoded>>,
    level: i32,
    budget: Budget,
    /// Reads float-delta bases (and the parent's trees).
    pub packs: PackFiles,
    /// Small chunks not yet handed to a task (see the module's docs).
    batch: Mutex<Batch>,
    error: Mutex<Option<Error>>,
    new_chunks: AtomicU64,
    new_raw: AtomicU64,
    new_stored: AtomicU64,
    progress: &'a dyn Progress,
}

impl<'a> Shared<'a> {
    /// For each of `ids`, true if it is neither stored nor already claimed
    /// by this commit (nor earlier in `ids`); the caller then owns storing
    /// it. One lock of each for the lot.
    fn claim_all(&self, ids: &[ChunkId]) -> Result<Vec<bool>> {
        let mut fresh: Vec<bool> = {
            let mut seen = self.seen.lock().expect("seen poisoned");
            ids.iter().map(|id| seen.insert(*id)).collect()
        };
        if fresh.iter().any(|&f| f) {
            let index = self.index.lock().expect("index poisoned");
            for (id, f) in ids.iter().zip(fresh.iter_mut()) {
                if *f {
                    *f = !index.has_blob(id, PackKind::Data)?;
                }
            }
        }
        Ok(fresh)
    }

    fn fail(&self, e: Error) {
        self.error.lock().expect("error poisoned").get_or_insert(e);
    }

    /// True once a chunk task failed: the commit stops reading.
    pub fn failed(&self) -> bool {
        self.error.lock().expect("error poisoned").is_some()
    }

    /// Queues one chunk of a file, giving it the next slot of `slots`: a
    /// small chunk joins the pending batch (which is spawned once full), a
    /// larger one waits for room in the in-flight budget and becomes a task
    /// of its own. `float` and `base` as in `encode`.
    pub fn spawn_chunk<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        slots: &Slots,
        bytes: &[u8],
        float: Option<FloatLayout>,
        base: Option<(ChunkId, BlobLoc)>,
    ) where
        'a: 's,
    {
        let slot = slots.push(bytes.len() as u32);
        let part = Part {
            slots: slots.clone(),
            slot,
            range: 0..bytes.len(),
            float,
            base,
        };
        if bytes.len() < SMALL_CHUNK {
            let full = {
                let mut batch = self.batch.lock().expect("batch poisoned");
                batch.push(part, bytes);
                batch.bytes.len() >= BATCH_BYTES || batch.parts.len() >= BATCH_CHUNKS
            };
            if full {
                self.flush(scope);
            }
            return;
        }
        // Room first, then the copy: the budget bounds the copies.
        self.budget.acquire(bytes.len());
        let batch = Batch {
            bytes: bytes.to_vec(),
            parts: vec![part],
        };
        self.spawn_acquired(scope, batch);
    }

    /// Hands the pending batch of small chunks to a task. The reading
    /// thread calls this before it waits for chunk ids and once at the end,
    /// so every slot gets its id.
    pub fn flush<'s>(&'s self, scope: &rayon::Scope<'s>)
    where
        'a: 's,
    {
        let batch = std::mem::take(&mut *self.batch.lock().expect("batch poisoned"));
        if !batch.parts.is_empty() {
            self.budget.acquire(batch.bytes.len());
            self.spawn_acquired(scope, batch);
        }
    }

    /// Spawns the task that hashes every chunk of `batch` (whose bytes the
    /// budget already counts), fills its slot, claims it and encodes it if
    /// new, and sends the new ones to the writer in one message.
    fn spawn_acquired<'s>(&'s self, scope: &rayon::Scope<'s>, batch: Batch)
    where
        'a: 's,
    {
        let len = batch.bytes.len();
        scope.spawn(move |_| {
            let ids: Vec<ChunkId> = batch
                .parts
                .iter()
                .map(|p| {
                    let id = ChunkId::of(&batch.bytes[p.range.clone()]);
                    p.slots.fill(p.slot, id);
                    id
                })
                .collect();
            match self.claim_all(&ids) {
                Ok(fresh) => {
                    let encoded: Vec<Encoded> = batch
                        .parts
                        .iter()
                        .zip(ids)
                        .zip(fresh)
                        .filter(|(_, fresh)| *fresh)
                        .map(|((p, id), _)| self.encode_new(id, &batch.bytes[p.range.clone()], p))
                        .collect();
                    if !encoded.is_empty() && self.tx.send(encoded).is_err() {
                        self.fail(Error::Other("the pack writer stopped".into()));
                    }
                }
                Err(e) => self.fail(e),
            }
            self.budget.release(len);
            self.progress.advance(len as u64);
        });
    }

    /// Encodes a chunk this commit claimed, and counts it.
    fn encode_new(&self, id: ChunkId, data: &[u8], part: &Part) -> Encoded {
        let (codec, bytes, base) = self.encode(data, part.float, part.base.as_ref());
        self.new_chunks.fetch_add(1, Ordering::Relaxed);
        self.new_raw.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.new_stored
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Encoded {
            id,
            codec,
            bytes,
            raw_len: data.len() as u32,
            base,
        }
    }

    /// The codec, the stored bytes and the delta base of a new chunk. A
    /// base that cannot be read or does not verify is not used.
    fn encode(
        &self,
        data: &[u8],
        float: Option<FloatLayout>,
        base: Option<&(ChunkId, BlobLoc)>,
    ) -> (Codec, Vec<u8>, Option<ChunkId>) {
        let delta = match (float, base) {
            (Some(layout), Some((base_id, loc))) => self
                .packs
                .read_verified(loc, PackKind::Data, base_id)
                .ok()
                .and_then(|b| codec::encode_delta(data, &b, layout))
                .map(|d| (Codec::FloatDelta, d, Some(*base_id))),
            _ => None,
        };
        delta.unwrap_or_else(|| {
            let (codec, bytes) = match float {
                Some(layout) => codec::encode_tensor(data, self.level, layout),
                None => codec::encode(data, self.level),
            };
            (codec, bytes, None)
        })
    }
}

/// Chunks handed to one task: their bytes back to back, and where each
/// goes.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    parts: Vec<Part>,
}

impl Batch {
    fn push(&mut self, mut part: Part, bytes: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        part.range = start..self.bytes.len();
        self.parts.push(part);
    }
}

/// One chunk of a batch: its file's slot, its bytes in the batch, and how
/// to encode it (`float`, `base` as in `Shared::encode`).
struct Part {
    slots: Slots,
    slot: usize,
    range: std::ops::Range<usize>,
    float: Option<FloatLayout>,
    base: Option<(ChunkId, BlobLoc)>,
}

/// Chunk lengths and ids of one read of one file, in file order; the ids
/// are filled in by the chunk tasks.
#[derive(Default)]
pub(super) struct SlotList {
    slots: Mutex<Vec<(u32, Option<ChunkId>)>>,
    filled: Condvar,
}

pub(super) type Slots = Arc<SlotList>;

impl SlotList {
    /// Adds a slot for a chunk of `len` bytes; returns its number.
    fn push(&self, len: u32) -> usize {
        let mut s = self.slots.lock().expect("slots poisoned");
        s.push((len, None));
        s.len() - 1
    }

    /// The chunk lengths pushed so far, without waiting for their ids.
    pub fn lengths(&self) -> Vec<u32> {
        let s = self.slots.lock().expect("slots poisoned");
        s.iter().map(|&(len, _)| len).collect()
    }

    fn fill(&self, slot: usize, id: ChunkId) {
        self.slots.lock().expect("slots poisoned")[slot].1 = Some(id);
        self.filled.notify_all();
    }

    /// The chunks once every task of this read has hashed its chunk.
    /// (The tasks run on the rayon pool, never on the thread that waits.)
    pub fn wait_all(&self) -> Vec<ChunkRef> {
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

/// Appends encoded blobs to packs of `kind`, closing each at `target` bytes.
/// On an error the open pack is abandoned (its temporary removed), so a
/// failed commit leaves only whole packs behind, which prune collects.
fn write_packs(
    layout: &Layout,
    kind: PackKind,
    target: u64,
    rx: Receiver<Vec<Encoded>>,
) -> Result<Vec<FinishedPack>> {
    let mut done = Vec::new();
    let mut current: Option<PackWriter> = None;
    for enc in rx.into_iter().flatten() {
        let w = match current.as_mut() {
            Some(w) => w,
            None => current.insert(PackWriter::create(layout, kind)?),
        };
        if let Err(e) = w.add(enc.id, enc.codec, &enc.bytes, enc.raw_len, enc.base) {
            current.take().expect("just used").abandon();
            return Err(e);
        }
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
