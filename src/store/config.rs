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
    // The config carries its own checksum: one that fails means damage, and
    // a version read from damaged bytes means nothing.
    let sum_ok = bytes.len() >= 32 && {
        let (content, sum) = bytes.split_at(bytes.len() - 32);
        blake3::hash(content).as_bytes() == sum
    };
    // A config file beside the object directories is a repository's: if it
    // does not decode, the repository is damaged, not absent, and `snap
    // init` (which refuses) is no advice.
    let damaged = |why: String| match layout.backend().missing() {
        None => Error::DamagedConfig {
            path: layout.backend().locate(Kind::Config, ""),
            why,
        },
        Some(_) => not_a_repo(why),
    };
    if version > config::VERSION {
        if !sum_ok {
            return Err(damaged(format!(
                "checksum mismatch, or a newer snap's config (version {version}; this snap \
                 reads up to {}): if a newer snap wrote it, upgrade snap",
                config::VERSION
            )));
        }
        return Err(Error::NewerFormat {
            path: root.to_path_buf(),
            found: version,
            supported: config::VERSION,
        });
    }
    let config = RepoConfig::decode(&bytes).map_err(|e| match e {
        Error::Corrupt { detail, .. } => damaged(detail),
        other => other,
    })?;
    if let Some(why) = layout.backend().missing() {
        return Err(not_a_repo(why));
    }
    // `locks/` and `tmp/` hold nothing lasting: readers need neither, and a
    // writer creates them when it takes the lock (`Repo::lock`).
    Ok(config)
}
