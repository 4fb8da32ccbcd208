//! `snap cat REV:PATH`: one file of a snapshot, written out chunk by chunk,
//! every chunk verified before it is written.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::EntryKind;
use crate::id::SnapshotId;
use crate::ops::pathspec::{self, PathSpec};
use crate::store::index::Index;
use crate::store::read::{self, PackFiles};

/// Writes the file `path` of snapshot `id` to `out`. `path` is relative to
/// `base` (a directory of the snapshot, empty for the root) and may be a
/// glob that matches exactly one file.
pub fn cat(
    index: &Index,
    packs: &PackFiles,
    (id, snap): (&SnapshotId, &Snapshot),
    base: &Path,
    path: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let spec = PathSpec::parse(base, path, &id.short())?;
    let found = pathspec::select_file(index, packs, &snap.root, &spec, &id.short())?;
    let shown = found.path.display().to_string();
    match found.entry.kind {
        EntryKind::File { chunks, .. } => {
            for c in chunks {
                let data = read::read_chunk(index, packs, &c.id).map_err(|e| {
                    Error::corrupt(format!("{shown} in snapshot {}", id.short()), e.to_string())
                })?;
                out.write_all(&data).ctx("write", "standard output")?;
            }
            Ok(())
        }
        EntryKind::Dir { .. } => Err(Error::invalid(
            "path",
            shown,
            format!("is a directory; list it with `snap show {}`", id.short()),
        )),
        EntryKind::Symlink { target } => Err(Error::invalid(
            "path",
            shown,
            format!("is a symlink to {}", String::from_utf8_lossy(&target)),
        )),
    }
}
