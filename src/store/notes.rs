//! Notes, `notes/SNAPSHOT.NOTE` (`format::note`): written once, read all
//! together for `snap log` and `snap show`. An unreadable note is reported
//! by name, never skipped silently. `forget` leaves notes in place: a note
//! of a forgotten snapshot stays readable beside its journal entry, and
//! costs a few hundred bytes.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::format::note::{Note, MAX_TEXT};
use crate::id::SnapshotId;
use crate::store::backend::Kind;
use crate::store::Layout;

/// Makes `note` durable; returns its name.
pub fn write(layout: &Layout, note: &Note) -> Result<String> {
    let (name, bytes) = note.encode();
    layout.backend().put(Kind::Note, &name, &bytes)?;
    Ok(name)
}

/// Every readable note by snapshot, oldest first; and the notes that could
/// not be read, each named with why.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    pub by_snapshot: BTreeMap<SnapshotId, Vec<Note>>,
    pub damaged: Vec<String>,
}

impl Notes {
    pub fn of(&self, id: &SnapshotId) -> &[Note] {
        self.by_snapshot.get(id).map_or(&[], Vec::as_slice)
    }
}

/// The note `notes/NAME` of snapshot `id`, read and checked (size,
/// decoding, the snapshot it names): `Ok(Err(why))` when it is unreadable,
/// `Err` when the store itself fails.
pub fn read_one(
    layout: &Layout,
    name: &str,
    id: &SnapshotId,
) -> Result<std::result::Result<Note, String>> {
    let bytes = match layout.backend().read(Kind::Note, name) {
        Ok(b) => b,
        Err(Error::Io { cause, .. }) => return Ok(Err(cause.to_string())),
        Err(e) => return Err(e),
    };
    if bytes.len() > MAX_TEXT + 4096 {
        return Ok(Err(format!(
            "{} bytes is larger than a note can be",
            bytes.len()
        )));
    }
    Ok(match Note::decode(&bytes) {
        Ok(n) if n.snapshot == *id => Ok(n),
        Ok(n) => Err(format!(
            "holds a note of snapshot {}, not {}",
            n.snapshot.short(),
            id.short()
        )),
        Err(e) => Err(e.to_string()),
    })
}

/// The snapshot a note's name `SNAPSHOT.NOTE` is of; None for strays.
pub fn snapshot_of(name: &str) -> Option<SnapshotId> {
    name.split_once('.')
        .and_then(|(s, _)| SnapshotId::from_hex(s))
}

pub fn read_all(layout: &Layout) -> Result<Notes> {
    let backend = layout.backend();
    let mut out = Notes::default();
    for name in backend.list(Kind::Note)? {
        // Temporaries and other strays are not notes.
        let Some(id) = snapshot_of(&name) else {
            continue;
        };
        match read_one(layout, &name, &id)? {
            Ok(n) => out.by_snapshot.entry(id).or_default().push(n),
            Err(why) => out.damaged.push(format!(
                "{}: {why}",
                backend.locate(Kind::Note, &name).display()
            )),
        }
    }
    for v in out.by_snapshot.values_mut() {
        v.sort_by(|a, b| (a.time_ns, &a.text).cmp(&(b.time_ns, &b.text)));
    }
    Ok(out)
}
