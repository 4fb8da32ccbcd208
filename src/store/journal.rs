//! The retention journal, `journal/ID`: one record per snapshot `forget`
//! removed (`format::journal`). Written before the snapshot file is deleted
//! (see `ops::forget`), so a forgotten snapshot is always journalled; an
//! entry whose snapshot file still exists (a forget that crashed midway)
//! describes a snapshot that is not forgotten, and readers skip it.

use std::fs;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::format::journal::Forgotten;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::store::{durable, Layout};

/// A journal file larger than this is damaged (a record is a few KiB).
const MAX_ENTRY: u64 = 16 << 20;

/// Makes every entry durable in `journal/`.
pub fn write(layout: &Layout, entries: &[Forgotten]) -> Result<()> {
    let dir = layout.journal_dir();
    durable::create_dir_durable(&dir)?;
    for e in entries {
        durable::write_atomic(&layout.tmp_dir(), &layout.journal_entry(&e.id), &e.encode())?;
    }
    Ok(())
}

/// The journal as read: entries with their snapshots decoded.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    /// Readable entries, oldest forgotten first.
    pub entries: Vec<(Forgotten, Snapshot)>,
    /// Files that could not be read, named, for a warning.
    pub damaged: Vec<String>,
}

/// Every entry of the journal.
pub fn read_all(layout: &Layout) -> Result<Journal> {
    let dir = layout.journal_dir();
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Journal::default()),
        Err(e) => return Err(crate::error::Error::io("list", &dir, e)),
    };
    for entry in rd {
        let entry = entry.ctx("list", &dir)?;
        let path = entry.path();
        let Some(id) = entry.file_name().to_str().and_then(SnapshotId::from_hex) else {
            continue;
        };
        match read_one(&path, &id) {
            Ok(e) => out.push(e),
            Err(why) => damaged.push(format!("{}: {why}", path.display())),
        }
    }
    out.sort_by_key(|(f, _)| (f.forgotten_ns, f.id));
    Ok(Journal {
        entries: out,
        damaged,
    })
}

fn read_one(path: &Path, id: &SnapshotId) -> std::result::Result<(Forgotten, Snapshot), String> {
    let len = fs::symlink_metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_ENTRY {
        return Err(format!("{len} bytes is larger than a journal entry can be"));
    }
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let (f, s) = Forgotten::decode(&bytes).map_err(|e| e.to_string())?;
    if f.id != *id {
        return Err(format!(
            "holds snapshot {}, not {}",
            f.id.short(),
            id.short()
        ));
    }
    Ok((f, s))
}
