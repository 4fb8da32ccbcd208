//! One writer at a time: an exclusive `flock` on `locks/writer`.
//!
//! The kernel releases a flock when its holder dies, so a lock left by a
//! killed process (kill -9, power loss) is never stale: the next writer simply
//! gets it. The file's content names the holder (pid, host, command, time) so
//! that a writer that gives up can say who holds the lock. Readers take no
//! lock at all.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;

use crate::error::{Error, IoContext, Result};

/// Opens (creating) a lock file without truncating what it says.
fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ctx("open lock file", path)
}

/// True if a writer holds the writer lock at this moment (a shared `flock`
/// on `locks/writer` cannot be had; taken and released at once if it can).
/// False when it cannot be told (no lock file, an error): callers use it
/// only to leave out what a running writer explains.
pub fn writer_active(locks_dir: &Path) -> bool {
    let Ok(file) = File::open(locks_dir.join("writer")) else {
        return false;
    };
    match FileExt::try_lock_shared(&file) {
        Ok(true) => {
            let _ = FileExt::unlock(&file);
            false
        }
        Ok(false) => true,
        Err(_) => false,
    }
}

/// Held while a writer runs; dropping it releases the lock.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
}

impl WriterLock {
    /// Takes the lock, retrying until `wait` has passed.
    pub fn acquire(locks_dir: &Path, what: &str, wait: Duration) -> Result<Self> {
        let path = locks_dir.join("writer");
        let mut file = open_lock_file(&path)?;
        let deadline = Instant::now() + wait;
        loop {
            if FileExt::try_lock_exclusive(&file).ctx("lock", &path)? {
                break;
            }
            if Instant::now() >= deadline {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    holder: if holder.is_empty() {
                        "another snap process".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let note = format!(
            "pid {} on host {} ({}) since {}\n",
            std::process::id(),
            gethostname::gethostname().to_string_lossy(),
            what,
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
        );
        file.set_len(0).ctx("truncate", &path)?;
        file.rewind().ctx("seek", &path)?;
        file.write_all(note.as_bytes()).ctx("write", &path)?;
        Ok(WriterLock { file })
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

/// Held by `snap run` for the life of a session, so that retention (in any
/// process) keeps every snapshot of a session that is still running. A flock,
/// like the writer lock: a killed runner's session stops counting as running.
///
/// The file `locks/session-<hash>` holds the session name and is deleted when
/// the session ends. Deleting a lock file is racy unless done in this order:
///
/// - The holder deletes the file *before* it unlocks. Whoever locks the
///   inode after that finds the path gone (or naming a new file).
/// - `acquire` opens the path, locks, and then checks that the path still
///   names the inode it locked; if not, it drops that lock and starts over.
///   A lock on an unlinked inode protects nothing, so it never counts.
///
/// Together: at any time at most one process holds a lock on the inode the
/// path names, so one session never has two runners.
///
/// `running_sessions` probes with a *shared* lock, which fails while a runner
/// holds the exclusive one. A probe holds its shared lock for a moment, and
/// `acquire` tells it apart from a runner: if the exclusive lock is refused
/// but a shared one is granted, nobody holds the exclusive lock, so it
/// retries (for at most [`SESSION_PROBE_PATIENCE`]) instead of reporting the
/// session as running.
#[derive(Debug)]
pub struct SessionLock {
    file: File,
    path: std::path::PathBuf,
}

/// How long `SessionLock::acquire` waits for probes of `running_sessions`
/// to let go of a session lock nobody holds exclusively.
pub const SESSION_PROBE_PATIENCE: Duration = Duration::from_secs(5);

fn session_lock_path(locks_dir: &Path, session: &str) -> std::path::PathBuf {
    let h = blake3::hash(session.as_bytes()).to_hex();
    locks_dir.join(format!("session-{}", &h[..16]))
}

/// True if `path` names the inode that `file` has open.
fn names_inode(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(p), Ok(f)) => p.dev() == f.dev() && p.ino() == f.ino(),
        _ => false,
    }
}

impl SessionLock {
    pub fn acquire(locks_dir: &Path, session: &str) -> Result<Self> {
        use std::os::unix::fs::FileExt as _;
        let path = session_lock_path(locks_dir, session);
        let deadline = Instant::now() + SESSION_PROBE_PATIENCE;
        let mut pause = Duration::from_millis(1);
        loop {
            let file = open_lock_file(&path)?;
            // The content is a function of the path (the session name), so it
            // is written before locking and never truncated: a probe that
            // finds the lock held always finds the name.
            if file.metadata().ctx("stat", &path)?.len() == 0 {
                file.write_all_at(session.as_bytes(), 0)
                    .ctx("write", &path)?;
            }
            if FileExt::try_lock_exclusive(&file).ctx("lock", &path)? {
                if names_inode(&path, &file) {
                    return Ok(SessionLock { file, path });
                }
                // The previous holder deleted this file: start over.
                continue;
            }
            // Refused. A runner holds it exclusively, or a probe holds it
            // shared for a moment: a shared lock is granted only in the
            // second case.
            if !FileExt::try_lock_shared(&file).ctx("lock", &path)? {
                return Err(Error::invalid(
                    "session",
                    session,
                    "is already running in another `snap run`",
                ));
            }
            drop(file);
            if Instant::now() >= deadline {
                return Err(Error::invalid(
                    "session",
                    session,
                    format!(
                        "its lock {} stayed busy (probed by other snap processes); try again",
                        path.display()
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        // Delete, then unlock (closing the file unlocks): see the type's docs.
        let _ = std::fs::remove_file(&self.path);
        let _ = FileExt::unlock(&self.file);
    }
}

/// Names of the sessions whose runner is alive. Probes each session lock
/// with a shared lock, which never makes `SessionLock::acquire` fail.
///
/// Fails closed, since retention forgets what is not running: a lock file
/// whose lock cannot be tested counts as running (its session is named in
/// it), and one that cannot be opened or whose session cannot be read is an
/// `Error::UncheckedSession`, so forget decides nothing. Only a lock file
/// gone between listing and opening (its run just ended) is skipped, and a
/// missing `locks/` means no run holds a lock.
pub fn running_sessions(locks_dir: &Path) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    let unchecked = |path: &Path, why: String| Error::UncheckedSession {
        path: path.to_path_buf(),
        why,
    };
    let rd = match std::fs::read_dir(locks_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(unchecked(locks_dir, format!("cannot list it: {e}"))),
    };
    for entry in rd {
        let entry = entry.map_err(|e| unchecked(locks_dir, format!("cannot list it: {e}")))?;
        if !entry.file_name().to_string_lossy().starts_with("session-") {
            continue;
        }
        let path = entry.path();
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(unchecked(&path, format!("cannot open it: {e}"))),
        };
        let held = match FileExt::try_lock_shared(&f) {
            Ok(true) => {
                let _ = FileExt::unlock(&f);
                false
            }
            Ok(false) => true,
            // Cannot test the lock: counts as held.
            Err(_) => true,
        };
        if !held {
            continue;
        }
        let mut name = String::new();
        match f.read_to_string(&mut name) {
            Ok(_) if !name.is_empty() => {
                out.insert(name);
            }
            Ok(_) => return Err(unchecked(&path, "it is held but names no session".into())),
            Err(e) => return Err(unchecked(&path, format!("cannot read its session: {e}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Runners of one session start and end in a loop on several threads
    /// (separate open files, so flock treats them like processes): never two
    /// holders at once, however the deletes and locks interleave.
    #[test]
    fn a_session_lock_has_one_holder_while_holders_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let holders = Arc::new(AtomicUsize::new(0));
        let overlaps = Arc::new(AtomicUsize::new(0));
        let taken = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (dir, holders, overlaps, taken) = (
                    dir.path().to_path_buf(),
                    holders.clone(),
                    overlaps.clone(),
                    taken.clone(),
                );
                std::thread::spawn(move || {
                    for _ in 0..3000 {
                        let Ok(lock) = SessionLock::acquire(&dir, "s") else {
                            continue;
                        };
                        taken.fetch_add(1, Ordering::SeqCst);
                        if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::yield_now();
                        holders.fetch_sub(1, Ordering::SeqCst);
                        drop(lock);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(taken.load(Ordering::SeqCst) > 0);
        assert_eq!(
            overlaps.load(Ordering::SeqCst),
            0,
            "two holders of one session lock at once"
        );
    }

    /// `running_sessions` probing in a loop never makes `acquire` of a
    /// session nobody runs fail. The lock file is left over from a runner
    /// that was killed, so the probes always find it.
    #[test]
    fn probing_running_sessions_never_makes_acquire_fail() {
        let dir = tempfile::tempdir().unwrap();
        let stale = session_lock_path(dir.path(), "s");
        let stop = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(AtomicUsize::new(0));
        let probers: Vec<_> = (0..2)
            .map(|_| {
                let (dir, stop, probes) = (dir.path().to_path_buf(), stop.clone(), probes.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let running = running_sessions(&dir).unwrap();
                        probes.fetch_add(1, Ordering::SeqCst);
                        assert!(running.is_empty() || running.contains("s"));
                    }
                })
            })
            .collect();
        let mut failures = Vec::new();
        for _ in 0..2000 {
            std::fs::write(&stale, b"s").unwrap();
            match SessionLock::acquire(dir.path(), "s") {
                Ok(lock) => drop(lock),
                Err(e) => failures.push(e.to_string()),
            }
        }
        stop.store(true, Ordering::SeqCst);
        for p in probers {
            p.join().unwrap();
        }
        assert!(probes.load(Ordering::SeqCst) > 0);
        assert!(
            failures.is_empty(),
            "{} of 2000 acquires failed while probed, e.g. {}",
            failures.len(),
            failures[0]
        );
    }

    /// Fail closed: a session lock that cannot be opened is an error naming
    /// it (its run may be alive), and a missing `locks/` is no run at all.
    #[test]
    fn a_session_lock_that_cannot_be_checked_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let held = SessionLock::acquire(dir.path(), "live").unwrap();
        let looped = dir.path().join("session-loop");
        std::os::unix::fs::symlink("session-loop", &looped).unwrap();
        match running_sessions(dir.path()) {
            Err(Error::UncheckedSession { path, .. }) => assert_eq!(path, looped),
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&looped).unwrap();
        assert!(running_sessions(dir.path()).unwrap().contains("live"));
        drop(held);
        assert!(running_sessions(&dir.path().join("none"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_held_session_is_running_and_refuses_a_second_runner() {
        let dir = tempfile::tempdir().unwrap();
        let lock = SessionLock::acquire(dir.path(), "exp-1").unwrap();
        assert!(running_sessions(dir.path()).unwrap().contains("exp-1"));
        let err = SessionLock::acquire(dir.path(), "exp-1").unwrap_err();
        assert!(err.to_string().contains("already running"), "{err}");
        drop(lock);
        assert!(running_sessions(dir.path()).unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(SessionLock::acquire(dir.path(), "exp-1").unwrap());
    }
}
