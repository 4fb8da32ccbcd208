//! The storage seam: every repository object (config, packs, snapshot
//! records, journal entries, tags) is read and written through a `Backend`,
//! modelled on rustic_core's `ReadBackend`/`WriteBackend` and the
//! object_store crate's `ObjectStore`. What stays local whatever the
//! backend: the SQLite index (a cache, rebuilt from the objects), the
//! `flock` locks and the `tmp/` staging directory (`store::Layout`).
//!
//! Objects are named by a `Kind` and a name: a pack's and a snapshot's id in
//! hex, a journal entry's snapshot id, a tag's name (`run-7/best`), a pack
//! deletion mark's pack id, and the empty name for the one `config`.
//!
//! # The contract
//!
//! - `put` writes an object whole: a reader sees nothing or all of it, and
//!   it is durable when `put` returns. Objects are write-once in meaning:
//!   packs and snapshots are named by their content and a journal entry by
//!   the snapshot it records, so a second `put` of a name that exists
//!   stores the same thing again and is allowed (idempotent, not refused).
//! - `replace` is the one mutable write, for tags and pack deletion marks:
//!   atomic, durable on return.
//! - `upload` streams a pack to a temporary; `Upload::finish` names it and
//!   makes it visible and durable at once. Until then nothing is visible,
//!   and a crash leaves at most an orphan temporary.
//! - `delete` is visible at once but durable only after the next `sync`,
//!   the barrier that lets a batch of deletions cost one directory fsync.
//!
//! With these, the orders written down in `publish` (data durable ->
//! records -> index -> refs), `ops::forget` and `ops::prune` hold for every
//! backend; `MemoryBackend` checks them by losing power at each call.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};

pub mod local;
pub mod memory;
pub mod remote;

pub use local::LocalBackend;
pub use memory::MemoryBackend;
pub use remote::ObjectStoreBackend;

/// The kinds of repository object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Config,
    Pack,
    Snapshot,
    Journal,
    Tag,
    /// A pack's deletion mark (`format::mark`), named by the pack's id.
    Mark,
    /// A note added to a snapshot after the fact (`format::note`), named
    /// `SNAPSHOT.NOTE` (both ids in hex).
    Note,
}

impl Kind {
    /// How messages name an object of this kind.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Pack => "pack",
            Kind::Snapshot => "snapshot",
            Kind::Journal => "journal entry",
            Kind::Tag => "tag",
            Kind::Mark => "pack deletion mark",
            Kind::Note => "note",
        }
    }
}

/// Repository objects, wherever they are kept (see the module's contract).
pub trait Backend: Send + Sync + fmt::Debug {
    /// Where object `name` of `kind` lives, for messages (a path for the
    /// local directory).
    fn locate(&self, kind: Kind, name: &str) -> PathBuf;

    /// Creates what an empty repository needs (the local directories).
    fn create(&self) -> Result<()>;

    /// Why this is not a repository's storage (the first thing missing), if
    /// it is not.
    fn missing(&self) -> Option<String>;

    /// True if the object exists.
    fn exists(&self, kind: Kind, name: &str) -> bool;

    /// Names of every object of `kind`, unsorted. Names that are not valid
    /// for the kind may appear; callers skip them.
    fn list(&self, kind: Kind) -> Result<Vec<String>>;

    /// The whole object. A missing one is an `Error::Io` whose cause is
    /// `NotFound` (`is_not_found`).
    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;

    /// An open object for reading ranges of it (packs).
    fn open(&self, kind: Kind, name: &str) -> Result<Arc<dyn Object>>;

    /// Writes an object whole and durably (write-once; see the module).
    fn put(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<()>;

    /// Atomically and durably replaces (or creates) a tag or a mark.
    fn replace(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<()>;

    /// Deletes an object; false if it did not exist. Durable after `sync`.
    fn delete(&self, kind: Kind, name: &str) -> Result<bool>;

    /// The barrier: every deletion before it is durable when it returns.
    fn sync(&self) -> Result<()>;

    /// Starts streaming an object of `kind` to a temporary.
    fn upload(&self, kind: Kind) -> Result<Box<dyn Upload>>;
}

/// An object open for range reads, shared between threads.
pub trait Object: Send + Sync {
    /// Its size in bytes.
    fn size(&self) -> Result<u64>;

    /// Exactly `len` bytes at `offset`, or an error (never short data).
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>>;
}

/// An object being written, invisible until `finish`.
pub trait Upload: Send {
    fn write(&mut self, bytes: &[u8]) -> Result<()>;

    /// Makes the object visible as `name`, durably.
    fn finish(self: Box<Self>, name: &str) -> Result<()>;

    /// Drops the temporary.
    fn abandon(self: Box<Self>);
}

/// True if `e` says an object does not exist.
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound)
}
