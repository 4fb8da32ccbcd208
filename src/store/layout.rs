//! Where a repository lives: its objects behind a `Backend` (a
//! `LocalBackend` in the directory itself unless told otherwise), and the
//! files that are always local: the index, the locks and `tmp/`. Nothing
//! else builds repository paths, but for the lock files' names inside
//! `locks/` (`store::lock`) and the random names of temporaries in `tmp/`;
//! `ops/` asks `store/` for the objects themselves and never opens one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::id::{PackId, SnapshotId};
use crate::store::backend::local::{kind_dir, object_path};
use crate::store::backend::{Backend, Kind, LocalBackend};

#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
    backend: Arc<dyn Backend>,
}

impl Layout {
    /// The repository in directory `root`, objects included.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Layout {
            backend: Arc::new(LocalBackend::new(root.clone())),
            root,
        }
    }

    /// A repository whose objects live in `backend`, with its local files
    /// (index, locks, `tmp/`) in `root`.
    pub fn with_backend(root: impl Into<PathBuf>, backend: Arc<dyn Backend>) -> Self {
        Layout {
            root: root.into(),
            backend,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The repository's objects.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    pub fn index(&self) -> PathBuf {
        self.root.join("index.sqlite")
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The index `snap reindex` builds before it swaps its rows in.
    pub fn reindex_scratch(&self) -> PathBuf {
        self.tmp_dir().join("reindex.sqlite")
    }

    /// Where a `LocalBackend` in `root` keeps pack `id` (for tools and
    /// tests that work on the files; the store goes through `backend`).
    pub fn pack(&self, id: &PackId) -> PathBuf {
        object_path(&self.root, Kind::Pack, &id.to_hex())
    }

    /// Where a `LocalBackend` in `root` keeps snapshot record `id`.
    pub fn snapshot(&self, id: &SnapshotId) -> PathBuf {
        object_path(&self.root, Kind::Snapshot, &id.to_hex())
    }

    /// Every directory `init` creates for a repository kept in `root`.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = [Kind::Pack, Kind::Snapshot, Kind::Tag]
            .into_iter()
            .map(|k| kind_dir(&self.root, k))
            .collect();
        dirs.extend(self.local_dirs());
        dirs
    }

    /// The local directories `init` creates, after the backend's.
    pub fn local_dirs(&self) -> Vec<PathBuf> {
        vec![self.locks_dir(), self.tmp_dir()]
    }
}
