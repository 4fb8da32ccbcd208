//! The repository's `config` file (`format::config`) and the directories
//! beside it: creating a repository, and recognising one when opening it.

use crate::error::{Error, Result};
use crate::format::config::{self, RepoConfig};
use crate::store::{durable, Layout};

/// True if a repository (its config file) exists at `layout`.
pub fn exists(layout: &Layout) -> bool {
    layout.config().exists()
}

/// Creates every repository directory, then the config file: a directory
/// without a config is not a repository yet.
pub fn create(layout: &Layout, config: &RepoConfig) -> Result<()> {
    for dir in layout.dirs() {
        durable::create_dir_durable(&dir)?;
    }
    durable::write_atomic(&layout.tmp_dir(), &layout.config(), &config.encode())
}

/// Reads the config of the repository at `layout` and checks that its
/// directories are there. A config of a newer format is refused by version
/// before anything else is decoded.
pub fn read(layout: &Layout) -> Result<RepoConfig> {
    let root = layout.root();
    let not_a_repo = |why: String| Error::NotARepository {
        path: root.to_path_buf(),
        why,
    };
    let cfg_path = layout.config();
    let bytes = match std::fs::read(&cfg_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_a_repo("no config file".into()))
        }
        Err(e) => return Err(Error::io("read", &cfg_path, e)),
    };
    let version = match bytes.get(..6) {
        Some(h) if &h[..4] == config::MAGIC => u16::from_le_bytes([h[4], h[5]]),
        _ => 0,
    };
    if version > config::VERSION {
        return Err(Error::NewerFormat {
            path: root.to_path_buf(),
            found: version,
            supported: config::VERSION,
        });
    }
    let config = RepoConfig::decode(&bytes).map_err(|e| match e {
        Error::Corrupt { detail, .. } => not_a_repo(detail),
        other => other,
    })?;
    for dir in layout.dirs() {
        if !dir.is_dir() {
            return Err(not_a_repo(format!("{} is missing", dir.display())));
        }
    }
    Ok(config)
}
