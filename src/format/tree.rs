//! Tree records: one directory's entries, content-addressed by `TreeId`, so an
//! unchanged subtree costs nothing in a new snapshot.
//!
//! Layout: envelope `SNPT` v1, bincode `Tree`. Entries are sorted by name
//! bytes and unique; names are single path components (no `/`, NUL, `.` or
//! `..`). The decoder enforces all of this, so a crafted tree can never make
//! restore write outside its target.
//!
//! Limits: a record is at most `MAX_RECORD` (commit refuses a directory whose
//! record would be larger), a chunk reference at most `MAX_CHUNK` bytes, and
//! a snapshot's trees nest at most `MAX_DEPTH` directories deep and hold at
//! most `MAX_ENTRIES` paths in all. The last two are properties of a whole
//! DAG of trees, so they are enforced by the walk (`ops::walk`) and by
//! commit, not by this decoder.

use serde::{Deserialize, Serialize};

use super::{decode_body, encode_record, split_envelope, unsupported_version, MAX_CHUNK};
use crate::error::{Error, Result};
use crate::id::{ChunkId, TreeId};

pub const MAGIC: &[u8; 4] = b"SNPT";
pub const VERSION: u16 = 1;

/// Directory levels a snapshot may nest below its root. Deeper trees are
/// refused by commit and by every walk (show, restore, diff, check), which
/// never recurse, so a crafted depth costs neither stack nor memory.
pub const MAX_DEPTH: usize = 1024;

/// Entries a snapshot may hold at every level together, counting each path
/// (a subtree shared by two directories counts twice, as restore writes it
/// twice). Refused by commit and by every walk before any path is built.
pub const MAX_ENTRIES: u64 = 100_000_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// One path component, raw bytes (Unix names need not be UTF-8).
    pub name: Vec<u8>,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Modification time, Unix nanoseconds.
    pub mtime_ns: i64,
    pub kind: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file: its bytes are the concatenation of `chunks`.
    File {
        size: u64,
        chunks: Vec<ChunkRef>,
    },
    Dir {
        tree: TreeId,
    },
    /// A symbolic link, stored as its target bytes and never followed.
    Symlink {
        target: Vec<u8>,
    },
}

/// A chunk of a file and its plain length, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

impl Entry {
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Checks that `name` is one safe path component.
pub fn validate_name(name: &[u8]) -> Result<()> {
    let why = if name.is_empty() {
        "empty name"
    } else if name == b"." || name == b".." {
        "relative component"
    } else if name.contains(&b'/') {
        "contains '/'"
    } else if name.contains(&0) {
        "contains NUL"
    } else {
        return Ok(());
    };
    Err(Error::UnsafePath {
        path: String::from_utf8_lossy(name).into_owned(),
        why: why.into(),
    })
}

impl Tree {
    /// Encodes the tree (entries must already be sorted) and returns its id.
    pub fn encode(&self) -> (TreeId, Vec<u8>) {
        let bytes = encode_record(MAGIC, VERSION, self);
        (TreeId::of(&bytes), bytes)
    }

    /// Decodes and validates a tree record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "tree";
        let (version, body) = split_envelope(WHAT, MAGIC, bytes)?;
        if version != VERSION {
            return Err(unsupported_version(WHAT, version, VERSION));
        }
        let tree: Tree = decode_body(WHAT, body)?;
        for (i, e) in tree.entries.iter().enumerate() {
            validate_name(&e.name).map_err(|err| Error::corrupt(WHAT, err.to_string()))?;
            if i > 0 && tree.entries[i - 1].name >= e.name {
                return Err(Error::corrupt(
                    WHAT,
                    format!("entries not sorted or duplicated at '{}'", e.name_lossy()),
                ));
            }
            if let EntryKind::File { size, chunks } = &e.kind {
                if let Some(c) = chunks.iter().find(|c| c.len > MAX_CHUNK) {
                    return Err(Error::corrupt(
                        WHAT,
                        format!(
                            "'{}': chunk {} of {} bytes, more than the {MAX_CHUNK} a chunk may hold",
                            e.name_lossy(),
                            c.id.short(),
                            c.len
                        ),
                    ));
                }
                let sum: u64 = chunks.iter().map(|c| c.len as u64).sum();
                if sum != *size {
                    return Err(Error::corrupt(
                        WHAT,
                        format!(
                            "'{}': chunk lengths do not add up to the size",
                            e.name_lossy()
                        ),
                    ));
                }
            }
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            mode: 0o644,
            mtime_ns: 1,
            kind: EntryKind::File {
                size: 0,
                chunks: vec![],
            },
        }
    }

    #[test]
    fn rejects_escaping_names() {
        for bad in ["..", ".", "a/b", ""] {
            let (_, bytes) = Tree {
                entries: vec![file(bad)],
            }
            .encode();
            assert!(Tree::decode(&bytes).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_duplicates() {
        let (_, bytes) = Tree {
            entries: vec![file("a"), file("a")],
        }
        .encode();
        assert!(Tree::decode(&bytes).is_err());
    }
}
