//! The retention journal, `journal/ID`: one record per snapshot `forget`
//! removed (`format::journal`). Written before the snapshot file is deleted
//! (see `ops::forget`), so a forgotten snapshot is always journalled; an
//! entry whose snapshot file still exists (a forget that crashed midway)
//! describes a snapshot that is not forgotten, and readers skip it.

use crate::error::{Error, Result};
use crate::format::journal::Forgotten;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::store::backend::Kind;
use crate::store::Layout;

/// A journal file larger than this is damaged (a record is a few KiB).
const MAX_ENTRY: u64 = 16 << 20;

/// Makes every entry durable in `journal/`.
pub fn write(layout: &Layout, entries: &[Forgotten]) -> Result<()> {
    for e in entries {
        layout
            .backend()
            .put(Kind::Journal, &e.id.to_hex(), &e.encode())?;
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
    let backend = layout.backend();
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    for name in backend.list(Kind::Journal)? {
        let Some(id) = SnapshotId::from_hex(&name) else {
            continue;
        };
        match read_one(layout, &name, &id) {
            Ok(e) => out.push(e),
            Err(why) => damaged.push(format!(
                "{}: {why}",
                backend.locate(Kind::Journal, &name).display()
            )),
        }
    }
    out.sort_by_key(|(f, _)| (f.forgotten_ns, f.id));
    Ok(Journal {
        entries: out,
        damaged,
    })
}

/// The entry `journal/NAME` of snapshot `id`, read whole and checked (size,
/// decoding, the snapshot it names); the error says why it is unreadable.
pub fn read_one(
    layout: &Layout,
    name: &str,
    id: &SnapshotId,
) -> std::result::Result<(Forgotten, Snapshot), String> {
    let backend = layout.backend();
    let cause = |e: Error| match e {
        Error::Io { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    let object = backend.open(Kind::Journal, name).map_err(cause)?;
    let len = object.size().map_err(cause)?;
    if len > MAX_ENTRY {
        return Err(format!("{len} bytes is larger than a journal entry can be"));
    }
    let bytes = object.read_at(0, len as usize).map_err(cause)?;
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
