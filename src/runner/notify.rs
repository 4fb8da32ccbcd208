//! Commits the training process makes itself, reported to its runner.
//!
//! A script under `snap run` may commit on its own (`snap commit`, the
//! Python API's `repo.commit()`); such a commit joins the run's session
//! through `SNAP_SESSION` and counts as an epoch signal, so `SESSION/best`
//! and `best` must follow it at once, not only when the run ends. The
//! runner binds a Unix datagram socket in a private temporary directory and
//! names it in `SNAP_RUN_NOTIFY`; a commit into the run's session sends the
//! new snapshot's id there once it is durable. The message only says "look
//! again": the runner re-reads the session's snapshots from the repository,
//! so a stray or forged datagram costs one re-read and changes nothing.
//! Sending never blocks and never fails a commit: without the socket, the
//! runner still ranks the snapshot at its next event or at the end.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming the runner's socket.
pub const ENV: &str = "SNAP_RUN_NOTIFY";

/// The runner's end: a bound socket, removed with its directory on drop.
pub struct Listener {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Listener {
    /// Binds the socket, or `None` when the temporary directory cannot hold
    /// one (then commits are ranked at the runner's next event instead).
    pub fn bind() -> Option<Listener> {
        let dir = tempfile::Builder::new()
            .prefix("snap-run-")
            .tempdir()
            .ok()?;
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).ok()?;
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .ok()?;
        Some(Listener {
            socket,
            path,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits up to 200 ms for one message; the snapshot id it names (as
    /// sent, at most 64 characters of hex), or `None` on timeout or junk.
    pub fn recv(&self) -> Option<String> {
        let mut buf = [0u8; 128];
        let n = self.socket.recv(&mut buf).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        (!text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| text.to_string())
    }
}

/// Tells the runner of `session` (if this process runs under one, for that
/// session) that snapshot `id` was committed. Best effort: errors are ignored.
pub fn committed(session: Option<&str>, id: &str) {
    let (Some(path), Ok(running)) = (std::env::var_os(ENV), std::env::var("SNAP_SESSION")) else {
        return;
    };
    if session != Some(running.as_str()) {
        return;
    }
    if let Ok(socket) = UnixDatagram::unbound() {
        let _ = socket.set_nonblocking(true);
        let _ = socket.send_to(id.as_bytes(), path);
    }
}
