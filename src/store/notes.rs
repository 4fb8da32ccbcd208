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

pub fn read_all(layout: &Layout) -> Result<Notes> {
    let backend = layout.backend();
    let mut out = Notes::default();
    for name in backend.list(Kind::Note)? {
        // Temporaries and other strays are not notes.
        let Some(id) = name
            .split_once('.')
            .and_then(|(s, _)| SnapshotId::from_hex(s))
        else {
            continue;
        };
        let damaged =
            |why: String| format!("{}: {why}", backend.locate(Kind::Note, &name).display());
        let bytes = match backend.read(Kind::Note, &name) {
            Ok(b) => b,
            Err(Error::Io { cause, .. }) => {
                out.damaged.push(damaged(cause.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        if bytes.len() > MAX_TEXT + 4096 {
            out.damaged.push(damaged(format!(
                "{} bytes is larger than a note can be",
                bytes.len()
            )));
            continue;
        }
        match Note::decode(&bytes) {
            Ok(n) if n.snapshot == id => out.by_snapshot.entry(id).or_default().push(n),
            Ok(n) => out.damaged.push(damaged(format!(
                "holds a note of snapshot {}, not {}",
                n.snapshot.short(),
                id.short()
            ))),
            Err(e) => out.damaged.push(damaged(e.to_string())),
        }
    }
    for v in out.by_snapshot.values_mut() {
        v.sort_by(|a, b| (a.time_ns, &a.text).cmp(&(b.time_ns, &b.text)));
    }
    Ok(out)
}
