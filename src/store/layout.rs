//! Paths inside a repository directory. Nothing else builds repository
//! paths, but for the lock files' names inside `locks/` (`store::lock`) and
//! the random names of temporaries in `tmp/`; `ops/` asks `store/` for the
//! files themselves and never opens one.

use std::path::{Path, PathBuf};

use crate::id::{PackId, SnapshotId};

#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config")
    }

    pub fn index(&self) -> PathBuf {
        self.root.join("index.sqlite")
    }

    pub fn packs_dir(&self) -> PathBuf {
        self.root.join("packs")
    }

    pub fn pack(&self, id: &PackId) -> PathBuf {
        let hex = id.to_hex();
        self.packs_dir().join(&hex[..2]).join(format!("{hex}.pack"))
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub fn snapshot(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots_dir().join(id.to_hex())
    }

    /// The retention journal (created by the first `forget` that removes
    /// something; older repositories have none).
    pub fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }

    pub fn journal_entry(&self, id: &SnapshotId) -> PathBuf {
        self.journal_dir().join(id.to_hex())
    }

    pub fn tags_dir(&self) -> PathBuf {
        self.root.join("refs").join("tags")
    }

    /// Tag `name` (already validated: `refs::validate_tag`); a `/` in it is
    /// a subdirectory.
    pub fn tag(&self, name: &str) -> PathBuf {
        name.split('/').fold(self.tags_dir(), |p, c| p.join(c))
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The index `snap reindex` keeps open while it deletes the real one.
    pub fn reindex_scratch(&self) -> PathBuf {
        self.tmp_dir().join("reindex.sqlite")
    }

    /// Every directory `init` creates.
    pub fn dirs(&self) -> Vec<PathBuf> {
        vec![
            self.packs_dir(),
            self.snapshots_dir(),
            self.tags_dir(),
            self.locks_dir(),
            self.tmp_dir(),
        ]
    }
}
