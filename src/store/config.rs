//! The repository's `config` file (`format::config`) and the directories
//! beside it: creating a repository, and recognising one when opening it.

use crate::error::{Error, Result};
use crate::format::config::{self, RepoConfig};
use crate::store::backend::{is_not_found, Kind};
use crate::store::{durable, Layout};

/// True if a repository (its config file) exists at `layout`.
pub fn exists(layout: &Layout) -> bool {
    layout.backend().exists(Kind::Config, "")
}

/// Creates every repository directory, then the config file: a directory
/// without a config is not a repository yet.
pub fn create(layout: &Layout, config: &RepoConfig) -> Result<()> {
    layout.backend().create()?;
    for dir in layout.local_dirs() {
        durable::create_dir_durable(&dir)?;
    }
    layout.backend().put(Kind::Config, "", &config.encode())
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
    let bytes = match layout.backend().read(Kind::Config, "") {
        Ok(b) => b,
        Err(e) if is_not_found(&e) => return Err(not_a_repo("no config file".into())),
        Err(e) => return Err(e),
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
    if let Some(why) = layout.backend().missing() {
        return Err(not_a_repo(why));
    }
    for dir in layout.local_dirs() {
        if !dir.is_dir() {
            return Err(not_a_repo(format!("{} is missing", dir.display())));
        }
    }
    Ok(config)
}
