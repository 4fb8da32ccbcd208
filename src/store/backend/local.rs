//! `LocalBackend`: the repository as a local directory, as `snap` has always
//! kept it (`store`'s module doc has the tree). Writes go to a temporary in
//! `tmp/`, are fsynced, renamed into place, and the directory fsynced
//! (`durable`); deletions are made durable by `sync`, which fsyncs the
//! directories that lost a file.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Backend, Kind, Object, Upload};
use crate::error::{Error, IoContext, Result};
use crate::store::durable;

#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
    /// Directories with deletions not yet fsynced.
    deleted_in: Mutex<BTreeSet<PathBuf>>,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend {
            root: root.into(),
            deleted_in: Mutex::new(BTreeSet::new()),
        }
    }

    fn dir(&self, kind: Kind) -> PathBuf {
        kind_dir(&self.root, kind)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        object_path(&self.root, kind, name)
    }

    /// The directories of a repository, in the order `missing` checks them.
    fn dirs(&self) -> [PathBuf; 3] {
        [
            self.dir(Kind::Pack),
            self.dir(Kind::Snapshot),
            self.dir(Kind::Tag),
        ]
    }
}

/// The directory holding objects of `kind`.
pub fn kind_dir(root: &Path, kind: Kind) -> PathBuf {
    match kind {
        Kind::Config => root.to_path_buf(),
        Kind::Pack | Kind::Mark => root.join("packs"),
        Kind::Snapshot => root.join("snapshots"),
        Kind::Journal => root.join("journal"),
        Kind::Note => root.join("notes"),
        Kind::Tag => root.join("refs").join("tags"),
    }
}

/// The path of an object: `packs/XX/ID.pack`, `packs/XX/ID.doomed`, `snapshots/ID`, `journal/ID`,
/// `refs/tags/NAME` (validated by `refs` first; a `/` in it is a
/// subdirectory), `config`.
pub fn object_path(root: &Path, kind: Kind, name: &str) -> PathBuf {
    let dir = kind_dir(root, kind);
    match kind {
        Kind::Config => root.join("config"),
        Kind::Pack => {
            let prefix = name.get(..2).unwrap_or(name);
            dir.join(prefix).join(format!("{name}.pack"))
        }
        // Beside the pack it marks.
        Kind::Mark => {
            let prefix = name.get(..2).unwrap_or(name);
            dir.join(prefix).join(format!("{name}.doomed"))
        }
        Kind::Snapshot | Kind::Journal | Kind::Note => dir.join(name),
        Kind::Tag => name.split('/').fold(dir, |p, c| p.join(c)),
    }
}

fn open_op(kind: Kind) -> &'static str {
    match kind {
        Kind::Pack => "open pack",
        Kind::Snapshot => "open snapshot",
        Kind::Journal => "open journal entry",
        Kind::Note => "open note",
        Kind::Tag => "open tag",
        Kind::Mark => "open pack deletion mark",
        Kind::Config => "open",
    }
}

fn read_op(kind: Kind) -> &'static str {
    match kind {
        Kind::Pack => "read pack",
        Kind::Snapshot => "read snapshot",
        Kind::Journal => "read journal entry",
        Kind::Note => "read note",
        Kind::Tag => "read tag",
        Kind::Mark => "read pack deletion mark",
        Kind::Config => "read",
    }
}

fn list_op(kind: Kind) -> &'static str {
    match kind {
        Kind::Pack | Kind::Mark => "list packs in",
        Kind::Snapshot => "list snapshots in",
        Kind::Tag => "list tags in",
        Kind::Journal | Kind::Note | Kind::Config => "list",
    }
}

impl Backend for LocalBackend {
    fn locate(&self, kind: Kind, name: &str) -> PathBuf {
        self.path(kind, name)
    }

    fn create(&self) -> Result<()> {
        for dir in self.dirs() {
            durable::create_dir_durable(&dir)?;
        }
        Ok(())
    }

    fn missing(&self) -> Option<String> {
        self.dirs()
            .into_iter()
            .find(|d| !d.is_dir())
            .map(|d| format!("{} is missing", d.display()))
    }

    fn exists(&self, kind: Kind, name: &str) -> bool {
        self.path(kind, name).exists()
    }

    fn list(&self, kind: Kind) -> Result<Vec<String>> {
        let dir = self.dir(kind);
        let mut out = Vec::new();
        match kind {
            Kind::Config => {}
            // Packs and their marks sit one directory down, in `packs/XX/`.
            Kind::Pack | Kind::Mark => {
                let suffix = if kind == Kind::Pack {
                    ".pack"
                } else {
                    ".doomed"
                };
                for sub in fs::read_dir(&dir).ctx(list_op(kind), &dir)? {
                    let sub = sub.ctx(list_op(kind), &dir)?.path();
                    if !sub.is_dir() {
                        continue;
                    }
                    for entry in fs::read_dir(&sub).ctx(list_op(kind), &sub)? {
                        let path = entry.ctx(list_op(kind), &sub)?.path();
                        let name = path.file_name().and_then(|n| n.to_str());
                        out.extend(name.and_then(|n| n.strip_suffix(suffix)).map(String::from));
                    }
                }
            }
            Kind::Snapshot => {
                for entry in fs::read_dir(&dir).ctx(list_op(kind), &dir)? {
                    let entry = entry.ctx(list_op(kind), &dir)?;
                    out.extend(entry.file_name().to_str().map(String::from));
                }
            }
            // Older repositories have no journal or notes: empty ones.
            Kind::Journal | Kind::Note => {
                let rd = match fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(Error::io(list_op(kind), &dir, e)),
                };
                for entry in rd {
                    let entry = entry.ctx(list_op(kind), &dir)?;
                    out.extend(entry.file_name().to_str().map(String::from));
                }
            }
            Kind::Tag => walk_tags(&dir, String::new(), &mut out)?,
        }
        Ok(out)
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let path = self.path(kind, name);
        fs::read(&path).ctx(read_op(kind), &path)
    }

    fn open(&self, kind: Kind, name: &str) -> Result<Arc<dyn Object>> {
        Ok(Arc::new(open_file(&self.path(kind, name), kind)?))
    }

    fn put(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<()> {
        durable::write_atomic(&self.tmp_dir(), &self.path(kind, name), bytes)
    }

    fn replace(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<()> {
        durable::write_atomic(&self.tmp_dir(), &self.path(kind, name), bytes)
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        let path = self.path(kind, name);
        let op = if kind == Kind::Tag {
            "delete tag"
        } else {
            "delete"
        };
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(op, &path, e)),
        }
        let parent = path.parent().expect("repository paths have a parent");
        self.deleted_in
            .lock()
            .expect("deleted directory set poisoned")
            .insert(parent.to_path_buf());
        Ok(true)
    }

    fn sync(&self) -> Result<()> {
        let dirs = std::mem::take(&mut *self.deleted_in.lock().expect("deleted set poisoned"));
        for dir in dirs {
            durable::sync_dir(&dir)?;
        }
        Ok(())
    }

    fn upload(&self, kind: Kind) -> Result<Box<dyn Upload>> {
        let tmp_dir = self.tmp_dir();
        let tmp = tempfile::Builder::new()
            .prefix("pack-")
            .suffix(".tmp")
            .tempfile_in(&tmp_dir)
            .ctx("create pack in", &tmp_dir)?;
        durable::share(tmp.as_file(), tmp.path())?;
        let (file, tmp_path) = tmp
            .keep()
            .map_err(|e| Error::io("keep", &tmp_dir, e.error))?;
        Ok(Box::new(LocalUpload {
            root: self.root.clone(),
            kind,
            tmp_path,
            out: BufWriter::with_capacity(1 << 20, file),
        }))
    }
}

/// A pack being streamed to `tmp/`.
struct LocalUpload {
    root: PathBuf,
    kind: Kind,
    tmp_path: PathBuf,
    out: BufWriter<File>,
}

impl Upload for LocalUpload {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).ctx("write pack", &self.tmp_path)
    }

    /// fsyncs the temporary, renames it into place, fsyncs the directory.
    /// On a failure (a full disk while flushing, say) the temporary is
    /// removed.
    fn finish(self: Box<Self>, name: &str) -> Result<()> {
        let tmp_path = self.tmp_path;
        let flushed = self
            .out
            .into_inner()
            .map_err(|e| Error::io("flush pack", &tmp_path, e.into_error()))
            .and_then(|file| file.sync_all().ctx("fsync pack", &tmp_path));
        if let Err(e) = flushed {
            let _ = fs::remove_file(&tmp_path);
            return Err(e);
        }
        let dest = object_path(&self.root, self.kind, name);
        let placed = durable::rename_durable(&tmp_path, &dest);
        if placed.is_err() {
            // Gone already if the rename itself succeeded.
            let _ = fs::remove_file(&tmp_path);
        }
        placed
    }

    fn abandon(self: Box<Self>) {
        let _ = fs::remove_file(&self.tmp_path);
    }
}

/// Tag names below `dir`, `/`-joined: files are tags, directories nest.
fn walk_tags(dir: &Path, prefix: String, out: &mut Vec<String>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list tags in", dir, e)),
    };
    for entry in rd {
        let entry = entry.ctx("list tags in", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let ft = entry.file_type().ctx("stat", &path)?;
        if ft.is_dir() {
            walk_tags(&path, full, out)?;
        } else if ft.is_file() {
            out.push(full);
        }
    }
    Ok(())
}

/// Opens the file at `path` as an object of `kind` (to read a pack file
/// wherever it is).
pub fn open_file(path: &Path, kind: Kind) -> Result<LocalObject> {
    let file = File::open(path).ctx(open_op(kind), path)?;
    Ok(LocalObject {
        file,
        path: path.to_path_buf(),
        kind,
    })
}

/// A local object open for positional reads.
pub struct LocalObject {
    file: File,
    path: PathBuf,
    kind: Kind,
}

impl Object for LocalObject {
    fn size(&self) -> Result<u64> {
        let op = if self.kind == Kind::Pack {
            "stat pack"
        } else {
            "stat"
        };
        Ok(self.file.metadata().ctx(op, &self.path)?.len())
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        read_at(&self.file, &self.path, offset, len)
    }
}

/// Reads `len` bytes at `offset` from an open pack: every byte, or an error
/// (a read past the end of the file is `UnexpectedEof`).
///
/// The buffer is not zeroed first: `pread` fills it directly. Restore reads
/// packs in ranges of up to 8 MiB, and zeroing them took 2-4 % of its CPU
/// time. It is a fresh buffer each time on purpose: one reused buffer per
/// thread made restore take about 20 % more CPU time, because glibc then
/// never frees a large block, its mmap threshold stays at 128 KiB, and the
/// buffers of every decoded chunk are mapped and faulted in anew.
///
/// `pread`, not `mmap`: a read error (a bad sector, a pack truncated under
/// us) must come back as an error that fails the chunks in the range; a
/// mapping would kill the process with SIGBUS instead, before it could
/// remove its temporary files.
pub fn read_at(file: &File, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let pos = offset
            .checked_add(done as u64)
            .and_then(|p| libc::off_t::try_from(p).ok())
            .ok_or_else(|| {
                Error::corrupt(format!("pack {}", path.display()), "offset out of range")
            })?;
        // SAFETY: the destination is the vector's spare capacity from `done`,
        // `len - done` bytes, all inside the allocation; pread writes at most
        // that many bytes there and nothing else.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(done).cast(),
                len - done,
                pos,
            )
        };
        match n {
            0 => {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
                    .ctx("read pack", path)
            }
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e).ctx("read pack", path);
                }
            }
            // SAFETY: pread returned n > 0: it initialised the n bytes after
            // `done`, and n <= len - done, so the length stays within capacity.
            n => unsafe { buf.set_len(done + n as usize) },
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_at_reads_exactly_the_range_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pack");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(read_at(&file, &path, 0, 0).unwrap(), b"");
        assert_eq!(
            read_at(&file, &path, 123, 45_678).unwrap(),
            &bytes[123..123 + 45_678]
        );
        assert_eq!(read_at(&file, &path, 99_990, 10).unwrap(), &bytes[99_990..]);
        // Past the end, as in a truncated pack: an error, never short data.
        let err = read_at(&file, &path, 99_990, 11).unwrap_err();
        assert!(err.to_string().contains("read pack"), "{err}");
        assert!(read_at(&file, &path, 200_000, 1).is_err());
        assert!(read_at(&file, &path, u64::MAX, 1).is_err());
    }
}
