//! The repository's remotes: `remotes.toml` beside `config`, a local file
//! (never an object of the backend, never pushed) mapping a name to a URL.
//! It holds no secret: credentials come from the environment when a remote
//! is used (`backend::remote`). Each remote also has a cache directory,
//! `remotes/NAME/`, holding an index of what the remote holds (rebuilt from
//! the remote whenever it is missing; see `ops::remote`).
//!
//! ```toml
//! [remote.origin]
//! url = "s3://bucket/team/runs"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, IoContext, Result};
use crate::store::backend::remote::RemoteUrl;
use crate::store::{durable, Layout};

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct File {
    #[serde(default)]
    remote: BTreeMap<String, Entry>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    url: String,
}

fn path(layout: &Layout) -> PathBuf {
    layout.root().join("remotes.toml")
}

/// Where the cache of remote `name` lives (index, `tmp/`, `locks/`).
pub fn cache_dir(layout: &Layout, name: &str) -> PathBuf {
    layout.root().join("remotes").join(name)
}

/// Checks a remote name: letters, digits, `.`, `_`, `-`, not starting
/// with `.` (it names a directory of the cache).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "remote name",
            name,
            "use letters, digits and . _ - (not starting with .)",
        ))
    }
}

fn read_file(layout: &Layout) -> Result<File> {
    let p = path(layout);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => return Err(Error::io("read", &p, e)),
    };
    toml::from_str(&text).map_err(|e| Error::Config {
        path: p,
        why: e.to_string(),
    })
}

fn write_file(layout: &Layout, file: &File) -> Result<()> {
    let text = toml::to_string(file).map_err(|e| Error::Other(e.to_string()))?;
    durable::write_atomic(&layout.tmp_dir(), &path(layout), text.as_bytes())
}

/// Every remote, by name.
pub fn list(layout: &Layout) -> Result<Vec<(String, RemoteUrl)>> {
    let file = read_file(layout)?;
    file.remote
        .into_iter()
        .map(|(name, e)| {
            RemoteUrl::parse(&e.url)
                .map(|u| (name, u))
                .map_err(|err| Error::Config {
                    path: path(layout),
                    why: err.to_string(),
                })
        })
        .collect()
}

/// The URL of remote `name`.
pub fn get(layout: &Layout, name: &str) -> Result<RemoteUrl> {
    let all = list(layout)?;
    let known: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    all.iter()
        .find(|(n, _)| n == name)
        .map(|(_, u)| u.clone())
        .ok_or_else(|| {
            Error::invalid(
                "remote",
                name,
                if known.is_empty() {
                    "there are no remotes; add one with `snap remote add NAME URL`".to_string()
                } else {
                    format!("known remotes: {}", known.join(", "))
                },
            )
        })
}

/// Adds remote `name` (refused if it exists).
pub fn add(layout: &Layout, name: &str, url: &RemoteUrl) -> Result<()> {
    validate_name(name)?;
    let mut file = read_file(layout)?;
    if let Some(e) = file.remote.get(name) {
        return Err(Error::invalid(
            "remote",
            name,
            format!(
                "already exists ({}); remove it first with `snap remote remove {name}`",
                e.url
            ),
        ));
    }
    file.remote.insert(
        name.to_string(),
        Entry {
            url: url.to_string(),
        },
    );
    write_file(layout, &file)
}

/// Removes remote `name` and its cache; false if there was none.
pub fn remove(layout: &Layout, name: &str) -> Result<bool> {
    validate_name(name)?;
    let mut file = read_file(layout)?;
    if file.remote.remove(name).is_none() {
        return Ok(false);
    }
    write_file(layout, &file)?;
    let cache = cache_dir(layout, name);
    if cache.exists() {
        std::fs::remove_dir_all(&cache).ctx("remove the cache of the remote", &cache)?;
    }
    Ok(true)
}
