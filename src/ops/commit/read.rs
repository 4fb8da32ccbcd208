//! Reading the files a commit stores, never storing a torn read.
//!
//! Each file is opened with `O_NOFOLLOW` and exactly the size of its first
//! `fstat` is streamed through the chunker, cut at tensor boundaries first
//! when it is a checkpoint (`ckpt::segments`); every chunk goes to the
//! pipeline as it is cut. The stat before and after the read must agree,
//! or show that the file only grew and a second read of the prefix give the
//! same chunks; otherwise the file is read again (`read_file`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::bases::{self, Bases, Previous, TensorMap};
use super::pipeline::{Shared, Slots};
use super::scan::{FileData, Files, Item, Meta, Notes};
use crate::chunk::{Chunker, StreamError};
use crate::ckpt;
use crate::codec::float::Layout as FloatLayout;
use crate::error::{Error, IoContext, Result};
use crate::id::ChunkId;
use crate::units;

/// How often a file that changes while being read is read again.
const READ_ATTEMPTS: u32 = 5;

/// A file whose mtime or ctime is this recent when its read starts is read
/// twice (see `read_file`): 45 s covers the kernel's default writeback of
/// dirty pages (30 s expiry, 5 s interval), after which a write through a
/// shared mmap moves the mtime again.
const RECENT_NS: i64 = 45_000_000_000;

/// Reads every `Pending` file into chunk tasks on `scope`, turning it into
/// `Read` (with the metadata of what was stored) or `Skipped` with a
/// warning. Stops early once a chunk task failed.
pub(super) fn read_files<'s, 'a: 's>(
    scope: &rayon::Scope<'s>,
    shared: &'s Shared<'a>,
    chunker: &Chunker,
    previous: &mut Previous,
    files: &mut Files,
) -> Result<()> {
    let mut vanished = Vanished::default();
    let mut rechecks = Vec::new();
    let cut = &mut Cut {
        chunker,
        window: Vec::new(),
    };
    for (i, (item, d)) in files
        .items
        .iter_mut()
        .zip(files.data.iter_mut())
        .enumerate()
    {
        if !matches!(d, FileData::Pending) {
            continue;
        }
        if shared.failed() {
            break;
        }
        let Some(mut r) = read_file(scope, shared, cut, previous, item)? else {
            *d = FileData::Skipped;
            vanished.add(item);
            continue;
        };
        if let Some(ids) = r.recheck.take() {
            rechecks.push((i, ids));
        }
        // A log that grows is the normal case; a checkpoint that grows is
        // still being written.
        let name = item.rel.as_os_str().as_encoded_bytes();
        if r.prefix
            && ckpt::CHECKPOINT_EXTENSIONS
                .iter()
                .any(|x| name.ends_with(x.as_bytes()))
        {
            files.notes.warn(format!(
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
    // The second reads of recently modified files are compared once their
    // first reads' chunks are hashed, here at the end, so that waiting for
    // them never stalls the pipeline.
    for (i, mut want) in rechecks {
        let (item, d) = (&mut files.items[i], &mut files.data[i]);
        let mut attempts = 1;
        while let FileData::Read { slots, .. } = d {
            // Its chunks may still wait in the pending batch.
            shared.flush(scope);
            if same_ids(slots, &want) || shared.failed() {
                break;
            }
            if attempts == READ_ATTEMPTS {
                // Every read disagreed with its second read.
                *d = FileData::Skipped;
                vanished.add(item);
                break;
            }
            attempts += 1;
            let Some(mut r) = read_file(scope, shared, cut, previous, item)? else {
                *d = FileData::Skipped;
                vanished.add(item);
                break;
            };
            let next = r.recheck.take();
            item.meta = r.meta;
            *d = FileData::Read {
                slots: r.slots,
                read_start_ns: r.read_start_ns,
                prefix: r.prefix,
            };
            match next {
                Some(ids) => want = ids,
                None => break,
            }
        }
    }
    // Every slot gets its id: the last small chunks go to a task too.
    shared.flush(scope);
    vanished.report(&mut files.notes);
    Ok(())
}

/// Files that vanished (or never held still) while the commit read them,
/// grouped under the topmost directory that vanished with them, so a
/// directory renamed during a commit is one warning, not one per file.
#[derive(Default)]
struct Vanished {
    /// Files whose directory is still there.
    files: Vec<PathBuf>,
    /// Directory that is gone -> how many files were lost with it.
    dirs: BTreeMap<PathBuf, u64>,
}

impl Vanished {
    fn add(&mut self, item: &Item) {
        let depth = item.rel.components().count();
        let root = item.abs.ancestors().nth(depth).unwrap_or(Path::new("/"));
        let mut dirs: Vec<&Path> = item.rel.ancestors().skip(1).collect();
        dirs.reverse();
        match dirs
            .into_iter()
            .filter(|d| !d.as_os_str().is_empty())
            .find(|d| root.join(d).symlink_metadata().is_err())
        {
            Some(gone) => *self.dirs.entry(gone.to_path_buf()).or_default() += 1,
            None => self.files.push(item.rel.clone()),
        }
    }

    fn report(self, notes: &mut Notes) {
        for (dir, n) in self.dirs {
            notes.skip(
                n,
                format!(
                    "skipped {} under {}/: the directory vanished (moved or deleted) while the commit read it",
                    units::count(n, "file"),
                    dir.display()
                ),
            );
        }
        for rel in self.files {
            notes.skip(
                1,
                format!(
                    "skipped {}: it vanished, or kept being rewritten while being read",
                    rel.display()
                ),
            );
        }
    }
}

/// The chunker and its window, one buffer reused for every file of the
/// commit (grown to the largest segment read, at most `chunk::WINDOW`),
/// so reading a small file costs no more memory than its size.
struct Cut<'c> {
    chunker: &'c Chunker,
    window: Vec<u8>,
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
    /// For a recently modified file, the chunk ids of a second read, which
    /// must equal the first read's.
    recheck: Option<Vec<ChunkId>>,
}

/// Reads one file into chunk tasks. Returns `None` if the file vanished or
/// kept changing; nothing torn is ever stored. Exactly `size` bytes are
/// read, the size at the open's `fstat`, and the read is accepted if:
///
/// - the file is unchanged: identity, size, mode and times are the same
///   before and after the read, and the path still names it, and, if it
///   was modified within `RECENT_NS` of the read, a second read yields the
///   same chunks (writes through a shared mmap may not move the mtime); or
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
    cut: &mut Cut<'_>,
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
        let read_start_ns = super::now_ns();
        let slots: Slots = Arc::default();
        // Checkpoint formats are cut at tensor boundaries first (header, one
        // segment per tensor); tensor data is then cut into fixed chunks
        // aligned to the tensor start, everything else by FastCDC.
        let segments = ckpt::segments(&file, before.size, cut.chunker.min_size() as u64);
        let anchor = segments
            .iter()
            .find(|s| float_layout(s.dtype).is_some())
            .map(|s| s.offset);
        let bases: Bases = if anchor.is_some() {
            let index = shared.index.lock().expect("index poisoned");
            bases::for_file(&index, &shared.packs, previous, &item.rel)?
        } else {
            Bases::default()
        };
        // The tensor each float chunk lies in, to find its base by name.
        let tensors = match bases.is_empty() {
            true => TensorMap::default(),
            false => TensorMap::new(ckpt::tensors(&file, before.size, true).unwrap_or_default()),
        };
        let mut first = true;
        let emit = |seg: &ckpt::Segment, off: u64, bytes: &[u8]| {
            if std::mem::take(&mut first) {
                crate::store::failpoint::hit("commit:mid-file");
            }
            let float = float_layout(seg.dtype);
            let at = seg.offset + off;
            let base = float
                .zip(anchor)
                .and_then(|(_, a)| bases.get(tensors.find(at), at - a, bytes.len() as u32));
            if shared.failed() {
                return Err(());
            }
            shared.spawn_chunk(scope, &slots, bytes, float, base);
            Ok(())
        };
        let read = match stream_segments(&file, &item.abs, &segments, cut, emit)? {
            Some(n) => n,
            None => return Ok(None),
        };
        let after = Meta::of(&file.metadata().ctx("stat", &item.abs)?);
        let now_at_path = item.abs.symlink_metadata().map(|m| Meta::of(&m)).ok();
        if read != before.size {
            continue; // shrunk while being read
        }
        if before == after && now_at_path == Some(after) {
            // A write through a shared mmap moves the mtime only at the
            // first write to a page since its last writeback, so a file
            // modified shortly before may be changing unseen: read it twice.
            // The second read's chunk ids go back with the first read, to
            // be compared by `read_files` once the first read is hashed.
            let recheck = if before.mtime_ns.max(before.ctime_ns) < read_start_ns - RECENT_NS {
                None
            } else {
                match reread_ids(&file, &item.abs, &slots.lengths())? {
                    Some(ids) => Some(ids),
                    None => continue, // shrunk
                }
            };
            return Ok(Some(FileRead {
                slots,
                meta: before,
                read_start_ns,
                prefix: false,
                recheck,
            }));
        }
        let same_file = now_at_path.is_some_and(|m| m.inode == after.inode && m.dev == after.dev);
        if same_file && only_grew(&before, &after) {
            // The first read's ids are waited for: its chunks must not stay
            // in the pending batch.
            shared.flush(scope);
            if reads_the_same(&file, &item.abs, &slots)? {
                return Ok(Some(FileRead {
                    slots,
                    meta: before,
                    read_start_ns,
                    prefix: true,
                    recheck: None,
                }));
            }
        }
    }
    Ok(None)
}

/// A second read of the first read's chunks (same lengths) gives the same
/// ids, once the first read's chunks are hashed.
fn reads_the_same(file: &File, path: &Path, slots: &Slots) -> Result<bool> {
    let again = reread_ids(file, path, &slots.lengths())?;
    Ok(again.is_some_and(|ids| same_ids(slots, &ids)))
}

/// The first read's chunk ids (waited for) are `ids`.
fn same_ids(slots: &Slots, ids: &[ChunkId]) -> bool {
    slots
        .wait_all()
        .iter()
        .map(|c| c.id)
        .eq(ids.iter().copied())
}

/// The ids of the chunks of `lengths`, read again from the start of
/// `file`; `None` if it is shorter now.
fn reread_ids(file: &File, path: &Path, lengths: &[u32]) -> Result<Option<Vec<ChunkId>>> {
    let mut reader = file;
    reader.seek(std::io::SeekFrom::Start(0)).ctx("seek", path)?;
    let mut buf = Vec::new();
    let mut ids = Vec::with_capacity(lengths.len());
    for &len in lengths {
        buf.resize(len as usize, 0);
        match reader.read_exact(&mut buf) {
            Ok(()) => ids.push(ChunkId::of(&buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(Some(ids))
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
    segments: &[ckpt::Segment],
    cut: &mut Cut<'_>,
    mut emit: impl FnMut(&ckpt::Segment, u64, &[u8]) -> std::result::Result<(), E>,
) -> Result<Option<u64>> {
    let mut reader = file;
    reader.seek(std::io::SeekFrom::Start(0)).ctx("seek", path)?;
    let mut read = 0;
    for seg in segments {
        let streamed = if seg.dtype.is_some() {
            cut.chunker
                .stream_fixed(reader, seg.len, &mut cut.window, |off, b| emit(seg, off, b))
        } else {
            cut.chunker
                .stream(reader, seg.len, &mut cut.window, |off, b| emit(seg, off, b))
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
fn float_layout(dtype: Option<ckpt::Dtype>) -> Option<FloatLayout> {
    match dtype {
        Some(ckpt::Dtype::F32) => Some(FloatLayout::F32),
        Some(ckpt::Dtype::F16) => Some(FloatLayout::F16),
        Some(ckpt::Dtype::BF16) => Some(FloatLayout::BF16),
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
