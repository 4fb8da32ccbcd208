//! Bringing existing zip archives in as snapshots: the backups people made
//! before snap (`archives/training_backup_YYYYMMDD_HHMMSS.zip` holding
//! `logs/`, `models/`, `config/` and `root_checkpoints/`).
//!
//! Each archive is extracted completely into a staging directory first, every
//! entry CRC-checked and path-checked; only then is it committed. A damaged
//! archive therefore imports nothing. Files under `root_checkpoints/` go back
//! to the workspace root, where the backup script found them, so imported
//! snapshots line up (and dedup) with live ones.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{Local, NaiveDate, TimeZone};

use crate::error::{Error, IoContext, Result};
use crate::format::config::RepoConfig;
use crate::ops::commit::{self, CommitOptions, CommitSummary};
use crate::progress::Progress;
use crate::store::index::Index;
use crate::store::{durable, Layout};
use crate::workspace::Workspace;

/// The folder the backup script used for checkpoints from the workspace root.
pub const ROOT_CHECKPOINTS: &str = "root_checkpoints";

/// What extraction found.
#[derive(Debug)]
pub struct Extracted {
    pub files: u64,
    pub bytes: u64,
    /// Newest entry time, Unix nanoseconds.
    pub newest_ns: Option<i64>,
}

/// Imports one archive as one snapshot of `session` (the caller holds the
/// writer lock): extracts it into a staging directory under the
/// repository's `tmp/`, then commits that as the workspace `ws`, dated from
/// the archive's name or else its newest entry. The staging directory goes
/// when this returns.
pub fn import_zip(
    layout: &Layout,
    config: &RepoConfig,
    index: &mut Index,
    ws: &Workspace,
    zip: &Path,
    session: &str,
    progress: &dyn Progress,
) -> Result<CommitSummary> {
    let staging = durable::staging_dir(layout, "import-")?;
    let extracted = extract(zip, staging.path())?;
    let time_ns = zip
        .file_name()
        .and_then(|n| time_from_name(&n.to_string_lossy()))
        .or(extracted.newest_ns)
        .ok_or_else(|| {
            Error::invalid(
                "zip archive",
                zip.display().to_string(),
                "has no date in its name and no dated entries",
            )
        })?;
    let staged = Workspace {
        repo: ws.repo.clone(),
        root: staging.path().to_path_buf(),
        config: Default::default(),
    };
    let mut labels = BTreeMap::new();
    labels.insert("imported_from".to_string(), zip.display().to_string());
    let opts = CommitOptions {
        session: Some(session.to_string()),
        message: Some(format!("imported from {}", zip.display())),
        labels,
        now_ns: time_ns,
        workspace_label: Some(ws.root.to_string_lossy().into_owned()),
        no_stat_cache: true,
        ..CommitOptions::default()
    };
    commit::commit(layout, config, index, &staged, opts, progress)
}

/// The time in an archive's name: `..._YYYYMMDD_HHMMSS` (or `-` separated),
/// read as local time, like the `date` that named it.
pub fn time_from_name(name: &str) -> Option<i64> {
    let digits: Vec<char> = name.chars().collect();
    for i in 0..digits.len() {
        let window: String = digits.iter().skip(i).take(15).collect();
        let b = window.as_bytes();
        if b.len() == 15
            && b[..8].iter().all(u8::is_ascii_digit)
            && (b[8] == b'_' || b[8] == b'-')
            && b[9..].iter().all(u8::is_ascii_digit)
        {
            let n = |r: std::ops::Range<usize>| window[r].parse::<u32>().ok();
            let date = NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?)?;
            let t = date.and_hms_opt(n(9..11)?, n(11..13)?, n(13..15)?)?;
            return Local
                .from_local_datetime(&t)
                .earliest()?
                .timestamp_nanos_opt();
        }
    }
    None
}

/// A session name from an archive's file name: its stem, with characters a
/// tag cannot hold replaced by `-`.
pub fn session_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches('.').to_string();
    if clean.is_empty() {
        "import".into()
    } else {
        clean
    }
}

fn zip_time_ns(t: zip::DateTime) -> Option<i64> {
    let date = NaiveDate::from_ymd_opt(t.year() as i32, t.month() as u32, t.day() as u32)?;
    let dt = date.and_hms_opt(t.hour() as u32, t.minute() as u32, t.second() as u32)?;
    Local
        .from_local_datetime(&dt)
        .earliest()?
        .timestamp_nanos_opt()
}

/// Extracts `zip_path` into the empty directory `dest`.
pub fn extract(zip_path: &Path, dest: &Path) -> Result<Extracted> {
    let bad = |why: String| {
        Error::invalid(
            "zip archive",
            zip_path.display().to_string(),
            format!("{why}; nothing was imported from it"),
        )
    };
    let file = File::open(zip_path).ctx("open", zip_path)?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a readable zip archive ({e})")))?;
    let mut out = Extracted {
        files: 0,
        bytes: 0,
        newest_ns: None,
    };
    let mut times: Vec<(PathBuf, i64)> = Vec::new();
    let mut links: Vec<(PathBuf, String, String)> = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = entry.name().to_string();
        let rel = entry
            .enclosed_name()
            .ok_or_else(|| bad(format!("entry '{name}' points outside the archive")))?;
        let rel = match rel.strip_prefix(ROOT_CHECKPOINTS) {
            // The folder itself: its files go to the root, nothing to create.
            Ok(inner) if inner.as_os_str().is_empty() && entry.is_dir() => continue,
            Ok(inner) if !inner.as_os_str().is_empty() && !dest.join(inner).exists() => {
                inner.to_path_buf()
            }
            _ => rel,
        };
        let path = dest.join(&rel);
        let mtime = entry.last_modified().and_then(zip_time_ns);
        if let Some(t) = mtime {
            out.newest_ns = Some(out.newest_ns.map_or(t, |n| n.max(t)));
        }
        if entry.is_dir() {
            fs::create_dir_all(&path).ctx("create directory", &path)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).ctx("create directory", parent)?;
        }
        if entry.is_symlink() {
            // Created after every file, so no later entry can be written
            // through a link the archive itself planted.
            let mut target = Vec::new();
            io::copy(&mut entry, &mut target).map_err(|e| bad(format!("entry '{name}': {e}")))?;
            links.push((path, String::from_utf8_lossy(&target).into_owned(), name));
            continue;
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| bad(format!("entry '{name}' cannot be created ({e})")))?;
        // Reading to the end verifies the entry's CRC-32.
        let n = io::copy(&mut entry, &mut f)
            .map_err(|e| bad(format!("entry '{name}' is damaged ({e})")))?;
        let mode = entry
            .unix_mode()
            .map(|m| m & 0o7777)
            .filter(|m| *m != 0)
            .unwrap_or(0o644);
        f.set_permissions(fs::Permissions::from_mode(mode))
            .ctx("set mode of", &path)?;
        if let Some(t) = mtime {
            times.push((path.clone(), t));
        }
        out.files += 1;
        out.bytes += n;
    }
    for (path, target, name) in links {
        std::os::unix::fs::symlink(&target, &path)
            .map_err(|e| bad(format!("symlink entry '{name}' cannot be created ({e})")))?;
    }
    for (path, t) in times {
        let ft = filetime::FileTime::from_unix_time(t.div_euclid(1_000_000_000), 0);
        filetime::set_file_mtime(&path, ft).ctx("set mtime of", &path)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = time_from_name("training_backup_20250314_093000.zip").unwrap();
        let dt = Local.timestamp_nanos(t);
        assert_eq!(
            dt.format("%Y-%m-%d %H:%M:%S").to_string(),
            "2025-03-14 09:30:00"
        );
        assert!(time_from_name("backup.zip").is_none());
        assert!(time_from_name("x_20251399_000000.zip").is_none());
        assert_eq!(
            session_name(Path::new("a/training backup#1.zip")),
            "training-backup-1"
        );
    }
}
