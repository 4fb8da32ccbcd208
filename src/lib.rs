//! # snapstore — the library behind `snap`
//!
//! A content-addressed, deduplicating versioning store for machine-learning
//! training artifacts. Files are cut into content-defined chunks (FastCDC),
//! named by their BLAKE3 hash, zstd-compressed and stored once in pack files;
//! directory trees and snapshots are content-addressed records; a SQLite index
//! caches everything and can be rebuilt from the files.
//!
//! ```
//! use snapstore::{ChunkerParams, CommitOptions, NoProgress, Repo, RestoreOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let ws_root = dir.path().join("ws");
//! std::fs::create_dir_all(ws_root.join("logs"))?;
//! std::fs::write(ws_root.join("logs/train.log"), b"epoch 1 loss 0.9\n")?;
//!
//! let mut repo = Repo::init(&ws_root.join(".snap"), ChunkerParams::default(), 0)?;
//! let ws = snapstore::workspace::discover(None, None, &ws_root)?;
//! let done = repo.commit(&ws, CommitOptions::default(), &NoProgress)?;
//! assert_eq!(done.snapshot.summary.files, 1);
//!
//! let target = dir.path().join("restored");
//! let opts = RestoreOptions { target: target.clone(), ..RestoreOptions::default() };
//! repo.restore("latest", opts, &NoProgress)?;
//! assert_eq!(std::fs::read(target.join("logs/train.log"))?, b"epoch 1 loss 0.9\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers, top to bottom: `repo` (one method per use case) -> `ops` (commit,
//! restore, check, ...) -> `store` (files, packs, lock, index), `ckpt`
//! (checkpoint formats), `chunk` (FastCDC) and `codec` -> `format` (pure
//! encode/decode of every on-disk record).

pub mod chunk;
pub mod ckpt;
pub mod codec;
pub mod error;
pub mod format;
pub mod id;
pub mod ops;
pub mod progress;
pub mod repo;
pub mod runner;
pub mod store;
pub mod track;
pub mod units;
pub mod workspace;

pub use error::{Error, Result};
pub use format::config::ChunkerParams;
pub use id::{ChunkId, PackId, SnapshotId, TreeId};
pub use ops::commit::{CommitOptions, CommitSummary};
pub use ops::prune::{PruneOptions, PrunePlan};
pub use ops::restore::{Action, PlannedEntry, RestoreOptions, RestorePlan, RestoreSummary};
pub use progress::{NoProgress, Progress};
pub use repo::{ForgetReport, Imported, InitReport, LogEntry, Repo};
