//! Durable file primitives, used by `LocalBackend` and for the local files:
//! write to a temporary file in `tmp/`, fsync it, rename it into place,
//! fsync the directory. A reader therefore sees either
//! the old file or the complete new one, and after a crash only orphan
//! temporaries remain (removed by the next writer).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::store::Layout;

/// Atomically writes `bytes` to `dest`, creating parent directories.
pub fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let parent = dest.parent().expect("repository paths have a parent");
    create_dir_durable(parent)?;
    let mut tmp = tempfile::Builder::new()
        .prefix("rec-")
        .suffix(".tmp")
        .tempfile_in(tmp_dir)
        .ctx("create temporary file in", tmp_dir)?;
    tmp.write_all(bytes).ctx("write", tmp.path())?;
    share(tmp.as_file(), tmp.path())?;
    tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
    tmp.persist(dest)
        .map_err(|e| e.error)
        .ctx("rename into", dest)?;
    sync_dir(parent)
}

/// Repository files are created 0600 by `tempfile`; make them 0644 like
/// the index, so a repository shared between users stays readable.
pub fn share(file: &std::fs::File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .ctx("set mode of", path)
}

/// Renames a complete, fsynced file into place and makes the rename durable.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().expect("repository paths have a parent");
    create_dir_durable(parent)?;
    fs::rename(from, to).ctx("rename into", to)?;
    sync_dir(parent)
}

/// Creates `dir` (and parents) and fsyncs its parent if it was new.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).ctx("create directory", dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// fsyncs a directory so that renames and creations inside it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx("fsync directory", dir)
}

/// A directory under the repository's `tmp/` for staging files (removed
/// when dropped, or by the next writer after a crash).
pub fn staging_dir(layout: &Layout, prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(layout.tmp_dir())
        .ctx("create staging directory in", layout.tmp_dir())
}

/// Removes leftovers of interrupted writers. Only called under the writer lock.
pub fn clean_tmp(tmp_dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let Ok(rd) = fs::read_dir(tmp_dir) else {
        return Ok(0);
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed += usize::from(gone.is_ok());
    }
    Ok(removed)
}
