//! All repository I/O: immutable pack and snapshot objects, atomically
//! replaced refs, the journal, the writer lock, and the SQLite index that
//! caches it all (kept in line with the objects by `sync`). `read` is the
//! only way blobs come back out: decoded and verified against their ids. Its
//! functions take the `Layout`, so `ops/` names what it wants (a pack id, a
//! snapshot id) and never a path.
//!
//! Objects go through the `backend::Backend` of the `Layout` (its contract:
//! write-once `put`, `replace` for tags, streamed `upload`, `delete` made
//! durable by the `sync` barrier). The local directory (`LocalBackend`) is
//! laid out as below; the index, `locks/` and `tmp/` are always local files.
//!
//! ```text
//! .snap/
//!   config                 format version, repository id, chunker and codec parameters
//!   packs/XX/ID.pack       immutable packs (data or tree), named by their hash
//!   snapshots/ID           immutable snapshot records
//!   refs/tags/NAME         a tag: one snapshot id in hex, replaced atomically
//!   journal/ID             what retention forgot: the snapshot record, when and why
//!   index.sqlite           derived cache, rebuilt from the above by `snap reindex`
//!   locks/writer           flock-ed by the one writer; names its pid and host
//!   tmp/                   files being written; orphans are removed by the next writer
//! ```
//!
//! The order in which a commit makes its files durable lives in `publish`.

pub mod audit;
pub mod backend;
pub mod config;
pub mod durable;
pub mod failpoint;
pub mod index;
pub mod journal;
pub mod layout;
pub mod lock;
pub mod notes;
pub mod packs;
pub mod publish;
pub mod read;
pub mod refs;
pub mod remotes;
pub mod snapshots;
pub mod sync;

pub use layout::Layout;
