//! What touches the destination directly: the target resolved and kept
//! out of the repository, the checks of what is there before anything is
//! written, and the temporaries files are written to.
//!
//! The target's symlinks are resolved before anything is compared (a
//! target given as a symlink to the workspace is the workspace, so its
//! `.snap/` stays out of reach). Temporaries are created through the
//! directory handles of `dirs` beside their destinations, with random
//! names and `O_EXCL | O_NOFOLLOW` (never a symlink someone planted, never
//! another file of the snapshot); the ones a killed restore left are
//! removed first.

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::dirs::{self, Root};
use super::{cancelled, interrupted, Action, RestorePlan, Temporary};
use crate::error::{Error, IoContext, Result};
use crate::format::tree::{Entry, EntryKind};

/// An entry's destination as the plan found it.
pub(super) struct Destination {
    /// Below the target as given, for messages.
    pub dest: PathBuf,
    pub action: Action,
    /// Something that is not a directory is there: replaced only with
    /// `overwrite`.
    pub conflict: bool,
}

/// `path` with every symlink resolved: its longest existing ancestor made
/// canonical, the rest (which does not exist, so holds no symlink yet)
/// appended with its `.` and `..` folded.
pub(super) fn resolve(path: &Path) -> Result<PathBuf> {
    let comps: Vec<Component> = path.components().collect();
    for i in (0..=comps.len()).rev() {
        let prefix: PathBuf = comps[..i].iter().collect();
        let prefix = if prefix.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            prefix
        };
        match fs::canonicalize(&prefix) {
            Ok(mut out) => {
                for c in &comps[i..] {
                    match c {
                        Component::ParentDir => {
                            out.pop();
                        }
                        Component::Normal(n) => out.push(n),
                        _ => {}
                    }
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("resolve", path, e)),
        }
    }
    Ok(path.to_path_buf())
}

/// Refuses a target that resolves into the repository `protect`.
pub(super) fn refuse_target_in_repository(
    shown: &Path,
    resolved: &Path,
    protect: Option<&Path>,
) -> Result<()> {
    match protect {
        Some(p) if resolved.starts_with(p) => Err(Error::invalid(
            "target",
            shown.display().to_string(),
            format!(
                "it is {}, inside the repository {}; restore somewhere else",
                resolved.display(),
                p.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Where the entry at `path` (relative to the snapshot root) goes below
/// the target (`resolved`: symlinks resolved; `shown`: as given), and what
/// restoring it with `mode` does there. Refused: a destination below
/// `protect` (the repository, resolved), and a file or symlink where a
/// directory is, even with `overwrite`.
pub(super) fn check_destination(
    resolved: &Path,
    shown: &Path,
    protect: Option<&Path>,
    path: &Path,
    entry: &Entry,
    mode: u32,
) -> Result<Destination> {
    let on_disk = resolved.join(path);
    if protect.is_some_and(|p| on_disk.starts_with(p)) {
        return Err(Error::UnsafePath {
            path: path.display().to_string(),
            why: "would write into the repository".into(),
        });
    }
    let existing = on_disk.symlink_metadata().ok();
    if !matches!(entry.kind, EntryKind::Dir { .. }) {
        refuse_dir_in_way(existing.as_ref(), path)?;
    }
    Ok(Destination {
        action: Action::of(entry, mode, existing.as_ref(), &on_disk),
        conflict: existing.as_ref().is_some_and(|m| !m.is_dir()),
        dest: shown.join(path),
    })
}

impl Action {
    fn of(entry: &Entry, mode: u32, existing: Option<&fs::Metadata>, dest: &Path) -> Action {
        use std::os::unix::fs::MetadataExt;
        let Some(m) = existing else {
            return Action::New;
        };
        let same = match &entry.kind {
            EntryKind::Dir { .. } => m.is_dir(),
            EntryKind::File { size, .. } => {
                m.is_file()
                    && m.len() == *size
                    && m.mode() & 0o7777 == mode & 0o7777
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

/// Creates every file's temporary beside its destination (creating the
/// directories on the way, never through a symlink), preallocated,
/// removing first the temporaries a killed restore left in those
/// directories; records each in the plan (so a failure removes it) and
/// returns how many stale ones went.
pub(super) fn create_temporaries(plan: &mut RestorePlan, root: &Root) -> Result<u64> {
    let host = host_tag();
    let prefix = format!(".snap-restore-{host}.{}.", std::process::id());
    let mut swept: HashSet<PathBuf> = HashSet::new();
    let mut stale = 0;
    let mut last: Option<(PathBuf, std::os::fd::OwnedFd)> = None;
    for f in plan.files.iter_mut() {
        let rel_dir = f.dir().to_path_buf();
        let dir = match last.take() {
            Some((rel, fd)) if rel == rel_dir => fd,
            _ => root.dir(&rel_dir, true)?,
        };
        let shown_dir = root.shown(&rel_dir);
        if swept.insert(rel_dir.clone()) {
            stale += remove_stale_temps(&dir, &host);
        }
        if let Some(signal) = cancelled(&plan.cancel) {
            return Err(interrupted(signal));
        }
        let (file, name, id) = dirs::create_temp(&dir, &prefix, &shown_dir)?;
        let shown = shown_dir.join(&name);
        f.tmp = Some(Temporary { name, id });
        file.set_len(f.size).ctx("allocate", &shown)?;
        last = Some((rel_dir, dir));
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
fn remove_stale_temps(dir: &std::os::fd::OwnedFd, host: &str) -> u64 {
    let ours = format!(".snap-restore-{host}.");
    let mut removed = 0;
    for name in dirs::regular_files(dir) {
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
        if gone && dirs::remove(dir, &name, Path::new(&name)).is_ok() {
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
            let shown = Path::new("/shown");
            check_destination(
                target,
                shown,
                protect.as_deref(),
                Path::new(path),
                entry,
                0o644,
            )
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
        assert_eq!(d.dest, Path::new("/shown/out"));
    }

    #[test]
    fn what_is_there_decides_the_action_and_the_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let path = target.join("f");
        fs::write(&path, b"abc").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mtime_ns = 1_600_000_000_123_456_789;
        filetime::set_file_mtime(
            &path,
            filetime::FileTime::from_unix_time(mtime_ns / 1_000_000_000, 123_456_789),
        )
        .unwrap();
        let check = |path: &str, entry: &Entry| {
            let d = check_destination(target, target, None, Path::new(path), entry, 0o644).unwrap();
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
        // The mode compared is the one the restore would set.
        let d = check_destination(
            target,
            target,
            None,
            Path::new("f"),
            &file_entry(3, mtime_ns),
            0o600,
        )
        .unwrap();
        assert_eq!(d.action, Action::Replace);
        // A file where a directory goes is replaced only with overwrite (and
        // then refused by `Root::dir`).
        assert_eq!(check("f", &dir_entry()), (Action::Replace, true));
    }

    #[test]
    fn a_target_resolves_through_its_symlinks_even_where_it_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(real.join("ws")).unwrap();
        std::os::unix::fs::symlink(real.join("ws"), real.join("link")).unwrap();
        assert_eq!(resolve(&real.join("link")).unwrap(), real.join("ws"));
        assert_eq!(
            resolve(&real.join("link/new/./deeper/../x")).unwrap(),
            real.join("ws/new/x")
        );
        assert_eq!(resolve(&real.join("link/..")).unwrap(), real);
        let repo = real.join("ws/.snap");
        let refused =
            |t: &Path| refuse_target_in_repository(t, &resolve(t).unwrap(), Some(&repo)).is_err();
        assert!(refused(&real.join("link/.snap")));
        assert!(refused(&real.join("link/.snap/restored")));
        assert!(!refused(&real.join("link/out")));
    }

    #[test]
    fn directories_are_never_created_through_a_symlink_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), target.join("link")).unwrap();
        fs::write(target.join("file"), b"").unwrap();
        fs::create_dir(target.join(".snap")).unwrap();
        let root = Root::open(target, target, Some(&target.join(".snap"))).unwrap();
        let why = |rel: &str| match root.dir(Path::new(rel), true) {
            Err(Error::UnsafePath { why, .. }) => why,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("not refused: {rel}"),
        };
        assert!(why("link/sub").ends_with("is a symlink"));
        assert!(why("link").ends_with("is a symlink"));
        assert!(why("file/sub").ends_with("is not a directory"));
        assert!(why(".snap/sub").ends_with("is the repository"));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        root.dir(Path::new("a/b/c"), true).unwrap();
        assert!(target.join("a/b/c").is_dir());
        assert!(root.dir(Path::new("a/x"), false).is_err());
        assert!(!target.join("a/x").exists());
    }
}
