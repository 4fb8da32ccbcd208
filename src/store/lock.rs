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
#[derive(Debug)]
pub struct SessionLock {
    file: File,
    path: std::path::PathBuf,
}

fn session_lock_path(locks_dir: &Path, session: &str) -> std::path::PathBuf {
    let h = blake3::hash(session.as_bytes()).to_hex();
    locks_dir.join(format!("session-{}", &h[..16]))
}

impl SessionLock {
    pub fn acquire(locks_dir: &Path, session: &str) -> Result<Self> {
        let path = session_lock_path(locks_dir, session);
        let mut file = open_lock_file(&path)?;
        if !FileExt::try_lock_exclusive(&file).ctx("lock", &path)? {
            return Err(Error::invalid(
                "session",
                session,
                "is already running in another `snap run`",
            ));
        }
        file.set_len(0).ctx("truncate", &path)?;
        file.write_all(session.as_bytes()).ctx("write", &path)?;
        Ok(SessionLock { file, path })
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Names of the sessions whose runner is alive.
pub fn running_sessions(locks_dir: &Path) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    let Ok(rd) = std::fs::read_dir(locks_dir) else {
        return Ok(out);
    };
    for entry in rd.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("session-") {
            continue;
        }
        let Ok(mut f) = OpenOptions::new().read(true).write(true).open(entry.path()) else {
            continue;
        };
        match FileExt::try_lock_exclusive(&f) {
            Ok(true) => {
                let _ = FileExt::unlock(&f);
            }
            Ok(false) => {
                let mut name = String::new();
                if f.read_to_string(&mut name).is_ok() && !name.is_empty() {
                    out.insert(name);
                }
            }
            Err(_) => {}
        }
    }
    Ok(out)
}
