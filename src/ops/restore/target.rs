//! What touches the destination directly: the checks of what is there
//! before anything is written, directories created one component at a time
//! and never through a symlink, the temporaries files are written to, and
//! times set on what was restored.
//!
//! Temporaries are created beside their destinations with random names
//! and `O_EXCL` (never a symlink someone planted, never another file of
//! the snapshot); the ones a killed restore left are removed first.

use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{cancelled, interrupted, Action, RestorePlan};
use crate::error::{Error, IoContext, Result};
use crate::format::tree::{Entry, EntryKind};

/// An entry's destination as the plan found it.
pub(super) struct Destination {
    pub dest: PathBuf,
    pub action: Action,
    /// Something that is not a directory is there: replaced only with
    /// `overwrite`.
    pub conflict: bool,
}

/// Where the entry at `path` (relative to the snapshot root) goes below
/// `target`, and what restoring it does there. Refused: a destination
/// below `protect` (the repository), and a file or symlink where a
/// directory is, even with `overwrite`.
pub(super) fn check_destination(
    target: &Path,
    path: &Path,
    entry: &Entry,
    protect: Option<&Path>,
) -> Result<Destination> {
    let dest = target.join(path);
    if protect.is_some_and(|p| dest.starts_with(p)) {
        return Err(Error::UnsafePath {
            path: path.display().to_string(),
            why: "would write into the repository".into(),
        });
    }
    let existing = dest.symlink_metadata().ok();
    if !matches!(entry.kind, EntryKind::Dir { .. }) {
        refuse_dir_in_way(existing.as_ref(), path)?;
    }
    Ok(Destination {
        action: Action::of(entry, existing.as_ref(), &dest),
        conflict: existing.as_ref().is_some_and(|m| !m.is_dir()),
        dest,
    })
}

impl Action {
    fn of(entry: &Entry, existing: Option<&fs::Metadata>, dest: &Path) -> Action {
        use std::os::unix::fs::MetadataExt;
        let Some(m) = existing else {
            return Action::New;
        };
        let same = match &entry.kind {
            EntryKind::Dir { .. } => m.is_dir(),
            EntryKind::File { size, .. } => {
                m.is_file()
                    && m.len() == *size
                    && m.mode() & 0o7777 == entry.mode & 0o7777
                    && m.mtime()
                        .saturating_mul(1_000_000_000)
                        .saturating_add(m.mtime_nsec())
                        == entry.mtime_ns
            }
            EntryKind::Symlink { target } => {
                m.file_type().is_symlink()
                    && fs::read_link(dest).is_ok_and(|t| t.as_os_str().as_bytes() == &target[..])
            }
        };
        if same {
            Action::Unchanged
        } else {
            Action::Replace
        }
    }
}

/// A file or symlink cannot replace a real directory, even with --overwrite.
fn refuse_dir_in_way(existing: Option<&fs::Metadata>, path: &Path) -> Result<()> {
    if existing.is_some_and(|m| m.is_dir()) {
        return Err(Error::UnsafePath {
            path: path.display().to_string(),
            why: "a directory is in the way; remove it or restore elsewhere".into(),
        });
    }
    Ok(())
}

/// Creates `rel` below `target` one component at a time, refusing to pass
/// through a symlink or a non-directory.
pub(super) fn ensure_dir(target: &Path, rel: &Path) -> Result<()> {
    let mut cur = target.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        match cur.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::UnsafePath {
                    path: rel.display().to_string(),
                    why: format!("{} is a symlink", cur.display()),
                })
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::UnsafePath {
                    path: rel.display().to_string(),
                    why: format!("{} is not a directory", cur.display()),
                })
            }
            Err(_) => fs::create_dir(&cur).ctx("create directory", &cur)?,
        }
    }
    Ok(())
}

pub(super) fn set_mtime(file: &File, path: &Path, mtime_ns: i64) -> Result<()> {
    let d = std::time::Duration::from_nanos(mtime_ns.unsigned_abs());
    let t = if mtime_ns >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    };
    file.set_modified(t).ctx("set mtime of", path)
}

/// Creates every file's temporary beside its destination, preallocated,
/// removing first the temporaries a killed restore left in those
/// directories; records each in the plan (so a failure removes it) and
/// returns how many stale ones went.
pub(super) fn create_temporaries(plan: &mut RestorePlan) -> Result<u64> {
    let host = host_tag();
    let prefix = format!(".snap-restore-{host}.{}.", std::process::id());
    let mut swept: HashSet<PathBuf> = HashSet::new();
    let mut stale = 0;
    for f in plan.files.iter_mut() {
        let rel_dir = f.rel.parent().unwrap_or(Path::new(""));
        ensure_dir(&plan.target, rel_dir)?;
        let dir = plan.target.join(rel_dir);
        if swept.insert(dir.clone()) {
            stale += remove_stale_temps(&dir, &host);
        }
        if let Some(signal) = cancelled(&plan.cancel) {
            return Err(interrupted(signal));
        }
        let (file, tmp) = tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(&dir)
            .and_then(|t| t.keep().map_err(|e| e.error))
            .ctx("create temporary file in", &dir)?;
        f.tmp = tmp;
        file.set_len(f.size).ctx("allocate", &f.tmp)?;
    }
    Ok(stale)
}

/// Temporaries are named `.snap-restore-HOST.PID.XXXXXX`: the restoring
/// process's host (this tag: 8 hex digits of the BLAKE3 of its name) and
/// pid, so that a later restore can tell the ones a killed restore left.
fn host_tag() -> String {
    let host = gethostname::gethostname();
    blake3::hash(host.as_encoded_bytes()).to_hex()[..8].to_string()
}

/// Removes the temporaries in `dir` that a restore on this host (`host`,
/// from `host_tag`) left when it was killed (its pid no longer runs).
/// Returns how many. Anything else, including a temporary of a restore
/// still running or of another host, is left alone.
fn remove_stale_temps(dir: &Path, host: &str) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let ours = format!(".snap-restore-{host}.");
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&ours)) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only checks whether `pid` exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if gone && is_file && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::format::tree::ChunkRef;
    use crate::id::ChunkId;

    fn file_entry(size: u64, mtime_ns: i64) -> Entry {
        let chunks = vec![ChunkRef {
            id: ChunkId::of(b"x"),
            len: size as u32,
        }];
        Entry {
            name: b"f".to_vec(),
            mode: 0o644,
            mtime_ns,
            kind: EntryKind::File { size, chunks },
        }
    }

    fn dir_entry() -> Entry {
        Entry {
            name: b"d".to_vec(),
            mode: 0o755,
            mtime_ns: 0,
            kind: EntryKind::Dir {
                tree: crate::id::TreeId([0; 32]),
            },
        }
    }

    fn refusal(r: Result<Destination>) -> String {
        match r {
            Err(Error::UnsafePath { why, .. }) => why,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("not refused"),
        }
    }

    #[test]
    fn the_repository_and_a_directory_in_the_way_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        fs::create_dir_all(target.join(".snap/packs")).unwrap();
        fs::create_dir(target.join("out")).unwrap();
        let protect = Some(target.join(".snap"));
        let check = |path: &str, entry: &Entry| {
            check_destination(target, Path::new(path), entry, protect.as_deref())
        };
        let why = refusal(check(".snap/packs/x", &file_entry(1, 0)));
        assert_eq!(why, "would write into the repository");
        assert_eq!(refusal(check(".snap", &dir_entry())), why);
        let why = refusal(check("out", &file_entry(1, 0)));
        assert!(why.starts_with("a directory is in the way"), "{why}");
        let link = Entry {
            kind: EntryKind::Symlink {
                target: b"elsewhere".to_vec(),
            },
            ..file_entry(0, 0)
        };
        assert!(refusal(check("out", &link)).starts_with("a directory is in the way"));
        // A directory where one is: nothing to refuse, no conflict.
        let d = check("out", &dir_entry()).unwrap();
        assert_eq!((d.action, d.conflict), (Action::Unchanged, false));
        assert_eq!(d.dest, target.join("out"));
    }

    #[test]
    fn what_is_there_decides_the_action_and_the_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let path = target.join("f");
        fs::write(&path, b"abc").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mtime_ns = 1_600_000_000_123_456_789;
        let f = File::options().write(true).open(&path).unwrap();
        set_mtime(&f, &path, mtime_ns).unwrap();
        let check = |path: &str, entry: &Entry| {
            let d = check_destination(target, Path::new(path), entry, None).unwrap();
            (d.action, d.conflict)
        };
        assert_eq!(
            check("f", &file_entry(3, mtime_ns)),
            (Action::Unchanged, true)
        );
        assert_eq!(
            check("f", &file_entry(3, mtime_ns + 1)),
            (Action::Replace, true)
        );
        assert_eq!(
            check("f", &file_entry(4, mtime_ns)),
            (Action::Replace, true)
        );
        assert_eq!(check("g", &file_entry(3, mtime_ns)), (Action::New, false));
        // A file where a directory goes is replaced only with overwrite (and
        // then refused by `ensure_dir`).
        assert_eq!(check("f", &dir_entry()), (Action::Replace, true));
    }

    #[test]
    fn directories_are_never_created_through_a_symlink_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), target.join("link")).unwrap();
        fs::write(target.join("file"), b"").unwrap();
        let why = |rel: &str| match ensure_dir(target, Path::new(rel)) {
            Err(Error::UnsafePath { why, .. }) => why,
            other => panic!("not refused: {other:?}"),
        };
        assert!(why("link/sub").ends_with("is a symlink"));
        assert!(why("file/sub").ends_with("is not a directory"));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        ensure_dir(target, Path::new("a/b/c")).unwrap();
        assert!(target.join("a/b/c").is_dir());
    }
}
