//! The target as directory handles: every write of a restore goes through
//! a descriptor of the directory it lands in, reached from the target's
//! descriptor one component at a time with `openat(O_NOFOLLOW |
//! O_DIRECTORY)`. A directory that is (or was swapped for) a symlink, or
//! that is the repository, is refused wherever it is met, so nothing can
//! redirect a write, a rename, a chmod or a time outside the target: files
//! are created with `O_EXCL | O_NOFOLLOW`, reopened with `O_NOFOLLOW` and
//! checked to be the same inode, modes set with `fchmod` and times with
//! `futimens` on those descriptors, symlinks' times with `utimensat(
//! AT_SYMLINK_NOFOLLOW)`, and files renamed within their directory's
//! descriptor: with `renameat2(RENAME_NOREPLACE)` when nothing may be
//! replaced, so a file that appeared after the plan is never clobbered.
//!
//! Where the file system does not support `RENAME_NOREPLACE` (`EINVAL`),
//! or the kernel lacks `renameat2` (`ENOSYS`), the temporary is hard-linked
//! to its name (`linkat` fails if the name exists) and then unlinked; where
//! hard links are not supported either, the name is checked with
//! `fstatat` just before a plain `renameat`. Only that last fallback leaves
//! a window (between the check and the rename) in which a file created by
//! someone else would be replaced.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, RenameFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};

/// A file's identity, to tell that a name still holds the file created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
}

fn id_of(st: &rfs::Stat) -> FileId {
    FileId {
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

fn io<T>(r: rustix::io::Result<T>) -> std::io::Result<T> {
    r.map_err(Into::into)
}

fn err(op: &'static str, path: impl AsRef<Path>, e: Errno) -> Error {
    Error::io(op, path, e.into())
}

/// How directories are opened: `O_PATH` handles (enough for every `*at`
/// call, and needing only search permission, as a path would), never
/// through a symlink. `readable` gives a full descriptor where one is
/// needed (listing, `fchmod`, `futimens`).
const WALK: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A full descriptor of the directory `dir` is a handle of (`.` is never
/// a symlink).
pub(super) fn readable(dir: &OwnedFd, shown: &Path) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    io(rfs::openat(dir, ".", flags, Mode::empty())).ctx("open directory", shown)
}

/// The restore target, open.
pub(super) struct Root {
    fd: OwnedFd,
    /// The target as the user gave it, for messages.
    shown: PathBuf,
    /// The repository's directory, never entered.
    repo: Option<FileId>,
}

/// What a rename that must not replace found.
pub(super) enum Placed {
    Done,
    /// Something appeared at the name since the plan: left as it is.
    Appeared,
}

impl Root {
    /// Creates `resolved` (the target with its symlinks resolved) if
    /// needed and opens it; refuses it if it is the repository `protect`.
    /// `shown` is the target as given, for messages.
    pub fn open(resolved: &Path, shown: &Path, protect: Option<&Path>) -> Result<Root> {
        std::fs::create_dir_all(resolved).ctx("create directory", shown)?;
        let fd = io(rfs::open(resolved, WALK, Mode::empty())).ctx("open directory", shown)?;
        let repo = protect.and_then(|p| rfs::stat(p).ok()).map(|st| id_of(&st));
        let root = Root {
            fd,
            shown: shown.to_path_buf(),
            repo,
        };
        root.refuse_repository(&root.fd, Path::new(""))?;
        Ok(root)
    }

    /// Where `rel` is, for messages.
    pub fn shown(&self, rel: &Path) -> PathBuf {
        self.shown.join(rel)
    }

    fn refuse_repository(&self, fd: &OwnedFd, rel: &Path) -> Result<()> {
        let st = io(rfs::fstat(fd)).ctx("stat", self.shown(rel))?;
        if self.repo == Some(id_of(&st)) {
            return Err(Error::UnsafePath {
                path: rel.display().to_string(),
                why: format!("{} is the repository", self.shown(rel).display()),
            });
        }
        Ok(())
    }

    /// The directory `rel` below the target, entered one component at a
    /// time and never through a symlink; missing components are created
    /// when `create` is set.
    pub fn dir(&self, rel: &Path, create: bool) -> Result<OwnedFd> {
        let flags = WALK;
        let mut cur: Option<OwnedFd> = None;
        let mut walked = PathBuf::new();
        for comp in rel.components() {
            let Component::Normal(name) = comp else {
                return Err(Error::UnsafePath {
                    path: rel.display().to_string(),
                    why: "not a plain relative path".into(),
                });
            };
            walked.push(name);
            let parent = cur.as_ref().unwrap_or(&self.fd);
            let mut opened = rfs::openat(parent, name, flags, Mode::empty());
            if create && matches!(opened, Err(Errno::NOENT)) {
                match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(err("create directory", self.shown(&walked), e)),
                }
                opened = rfs::openat(parent, name, flags, Mode::empty());
            }
            let fd = match opened {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let what = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if rfs::FileType::from_raw_mode(st.st_mode).is_symlink() => {
                            "is a symlink"
                        }
                        _ => "is not a directory",
                    };
                    return Err(Error::UnsafePath {
                        path: rel.display().to_string(),
                        why: format!("{} {what}", self.shown(&walked).display()),
                    });
                }
                Err(e) => return Err(err("open directory", self.shown(&walked), e)),
            };
            self.refuse_repository(&fd, &walked)?;
            cur = Some(fd);
        }
        match cur {
            Some(fd) => Ok(fd),
            None => io(rfs::openat(&self.fd, ".", flags, Mode::empty()))
                .ctx("open directory", &self.shown),
        }
    }
}

/// Creates a new file named `prefix` + 6 random characters in `dir`,
/// exclusively and never through a symlink, mode 0600; returns it, its
/// name and its identity.
pub(super) fn create_temp(
    dir: &OwnedFd,
    prefix: &str,
    shown_dir: &Path,
) -> Result<(File, OsString, FileId)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for _ in 0..100 {
        let seed = format!(
            "{}.{:?}.{}",
            std::process::id(),
            std::time::SystemTime::now(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let name = OsString::from(format!(
            "{prefix}{}",
            suffix(blake3::hash(seed.as_bytes()).as_bytes())
        ));
        match rfs::openat(dir, name.as_os_str(), flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => {
                let st = io(rfs::fstat(&fd)).ctx("stat", shown_dir.join(&name))?;
                return Ok((File::from(fd), name, id_of(&st)));
            }
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(err("create temporary file in", shown_dir, e)),
        }
    }
    Err(Error::io(
        "create temporary file in",
        shown_dir,
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "100 names taken"),
    ))
}

/// Six characters of `[A-Za-z0-9]` from `bytes`.
fn suffix(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    bytes[..6]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Opens the file `name` in `dir` for writing, never through a symlink,
/// and only if it is still the file `id` (not something put in its place).
pub(super) fn reopen(dir: &OwnedFd, name: &OsStr, id: FileId, shown: &Path) -> Result<File> {
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = io(rfs::openat(dir, name, flags, Mode::empty())).ctx("open", shown)?;
    let st = io(rfs::fstat(&fd)).ctx("stat", shown)?;
    if id_of(&st) != id {
        return Err(Error::UnsafePath {
            path: shown.display().to_string(),
            why: "the temporary file was replaced by another file".into(),
        });
    }
    Ok(File::from(fd))
}

/// Sets the permission bits of what `fd` is open on (never a symlink's target).
pub(super) fn set_mode(fd: &impl std::os::fd::AsFd, mode: u32, shown: &Path) -> Result<()> {
    io(rfs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))).ctx("set mode of", shown)
}

fn timespec(ns: i64) -> Timespec {
    Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    }
}

/// Sets the mtime of what `fd` is open on; the access time is left alone.
pub(super) fn set_mtime(fd: &impl std::os::fd::AsFd, mtime_ns: i64, shown: &Path) -> Result<()> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        last_modification: timespec(mtime_ns),
    };
    io(rfs::futimens(fd, &times)).ctx("set mtime of", shown)
}

/// Sets both times of the symlink `name` in `dir` itself.
pub(super) fn set_symlink_times(
    dir: &OwnedFd,
    name: &OsStr,
    mtime_ns: i64,
    shown: &Path,
) -> Result<()> {
    let t = timespec(mtime_ns);
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    io(rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)).ctx("set mtime of", shown)
}

/// Renames `from` to `to` in `dir`, replacing what is at `to`.
pub(super) fn rename_replacing(
    dir: &OwnedFd,
    from: &OsStr,
    to: &OsStr,
    shown: &Path,
) -> Result<()> {
    io(rfs::renameat(dir, from, dir, to)).ctx("rename into", shown)
}

/// Renames `from` to `to` in `dir` unless something is at `to` (see the
/// module documentation for the fallbacks). `from` is gone either way
/// once this returns `Ok`.
pub(super) fn rename_noreplace(
    dir: &OwnedFd,
    from: &OsStr,
    to: &OsStr,
    shown: &Path,
) -> Result<Placed> {
    match rfs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(Placed::Done),
        Err(Errno::EXIST) => remove(dir, from, shown).map(|_| Placed::Appeared),
        // The file system (EINVAL) or the kernel (ENOSYS) cannot.
        Err(Errno::INVAL | Errno::NOSYS) => link_noreplace(dir, from, to, shown),
        Err(e) => Err(err("rename into", shown, e)),
    }
}

/// `rename_noreplace` where `renameat2` cannot: a hard link fails if `to`
/// exists, then `from` is unlinked.
fn link_noreplace(dir: &OwnedFd, from: &OsStr, to: &OsStr, shown: &Path) -> Result<Placed> {
    match rfs::linkat(dir, from, dir, to, AtFlags::empty()) {
        Ok(()) => remove(dir, from, shown).map(|_| Placed::Done),
        Err(Errno::EXIST) => remove(dir, from, shown).map(|_| Placed::Appeared),
        // No hard links on this file system.
        Err(Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS | Errno::MLINK) => {
            checked_rename(dir, from, to, shown)
        }
        Err(e) => Err(err("link into", shown, e)),
    }
}

/// The last resort: `to` is checked just before a plain rename, so only a
/// file created between the two is replaced.
fn checked_rename(dir: &OwnedFd, from: &OsStr, to: &OsStr, shown: &Path) -> Result<Placed> {
    if exists(dir, to) {
        return remove(dir, from, shown).map(|_| Placed::Appeared);
    }
    rename_replacing(dir, from, to, shown).map(|_| Placed::Done)
}

/// Whether anything (a symlink included) is at `name` in `dir`.
pub(super) fn exists(dir: &OwnedFd, name: &OsStr) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// Whether `name` in `dir` is a directory (not following a symlink).
pub(super) fn is_dir(dir: &OwnedFd, name: &OsStr) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| rfs::FileType::from_raw_mode(st.st_mode).is_dir())
}

/// Removes the non-directory `name` from `dir`.
pub(super) fn remove(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<()> {
    io(rfs::unlinkat(dir, name, AtFlags::empty())).ctx("remove", shown)
}

/// Creates the symlink `name` -> `target` in `dir`; `Appeared` if the name
/// is taken.
pub(super) fn symlink(dir: &OwnedFd, target: &[u8], name: &OsStr, shown: &Path) -> Result<Placed> {
    match rfs::symlinkat(OsStr::from_bytes(target), dir, name) {
        Ok(()) => Ok(Placed::Done),
        Err(Errno::EXIST) => Ok(Placed::Appeared),
        Err(e) => Err(err("create symlink", shown, e)),
    }
}

/// The regular files in `dir` (names only), for removing stale temporaries.
pub(super) fn regular_files(dir: &OwnedFd) -> Vec<OsString> {
    let Ok(entries) = readable(dir, Path::new("."))
        .map_err(drop)
        .and_then(|fd| rfs::Dir::new(fd).map_err(drop))
    else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| match e.file_type() {
            rfs::FileType::RegularFile => true,
            // Some file systems do not fill in the type: ask.
            rfs::FileType::Unknown => rfs::statat(dir, e.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| rfs::FileType::from_raw_mode(st.st_mode).is_file()),
            _ => false,
        })
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rename = fn(&OwnedFd, &OsStr, &OsStr, &Path) -> Result<Placed>;

    #[test]
    fn every_no_replace_rename_keeps_what_is_there() {
        let renames: [(&str, Rename); 3] = [
            ("renameat2", rename_noreplace),
            ("link", link_noreplace),
            ("checked", checked_rename),
        ];
        for (how, rename) in renames {
            let tmp = tempfile::tempdir().unwrap();
            let root = Root::open(tmp.path(), tmp.path(), None).unwrap();
            let dir = root.dir(Path::new(""), false).unwrap();
            let (from, to) = (OsStr::new("tmp"), OsStr::new("dest"));
            std::fs::write(tmp.path().join("tmp"), b"new").unwrap();
            std::fs::write(tmp.path().join("dest"), b"theirs").unwrap();
            let placed = rename(&dir, from, to, Path::new("dest")).unwrap();
            assert!(matches!(placed, Placed::Appeared), "{how}");
            assert_eq!(std::fs::read(tmp.path().join("dest")).unwrap(), b"theirs");
            assert!(!tmp.path().join("tmp").exists(), "{how}: temporary left");

            std::fs::write(tmp.path().join("tmp"), b"new").unwrap();
            std::fs::remove_file(tmp.path().join("dest")).unwrap();
            std::os::unix::fs::symlink("nowhere", tmp.path().join("dest")).unwrap();
            let placed = rename(&dir, from, to, Path::new("dest")).unwrap();
            assert!(
                matches!(placed, Placed::Appeared),
                "{how}: a dangling symlink"
            );
            std::fs::remove_file(tmp.path().join("dest")).unwrap();

            std::fs::write(tmp.path().join("tmp"), b"new").unwrap();
            let placed = rename(&dir, from, to, Path::new("dest")).unwrap();
            assert!(matches!(placed, Placed::Done), "{how}");
            assert_eq!(std::fs::read(tmp.path().join("dest")).unwrap(), b"new");
            assert!(!tmp.path().join("tmp").exists(), "{how}");
        }
    }

    #[test]
    fn a_temporary_replaced_by_another_file_is_not_reopened() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::open(tmp.path(), tmp.path(), None).unwrap();
        let dir = root.dir(Path::new(""), false).unwrap();
        // Held open, so the new file cannot reuse its inode number.
        let (_held, name, id) = create_temp(&dir, ".t.", tmp.path()).unwrap();
        assert!(name.to_str().unwrap().starts_with(".t."));
        reopen(&dir, &name, id, tmp.path()).unwrap();
        std::fs::remove_file(tmp.path().join(&name)).unwrap();
        // A hard link to a file elsewhere, as a hostile user could plant.
        std::fs::write(tmp.path().join("elsewhere"), b"someone else's").unwrap();
        std::fs::hard_link(tmp.path().join("elsewhere"), tmp.path().join(&name)).unwrap();
        assert!(reopen(&dir, &name, id, tmp.path()).is_err());
        std::fs::remove_file(tmp.path().join(&name)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join(&name)).unwrap();
        assert!(reopen(&dir, &name, id, tmp.path()).is_err());
    }
}
