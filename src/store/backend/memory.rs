//! `MemoryBackend`: objects in memory, for tests, that can lose power.
//!
//! It keeps two states: what readers see, and what would survive a power
//! loss. Following the backend contract, `put`, `replace` and
//! `Upload::finish` change both; `delete` changes only the first until the
//! next `sync`; an upload in progress is in neither. `reboot` throws away
//! what was not durable.
//!
//! To crash a use case at its N-th write, `crash_at(N)` makes the N-th
//! counted call (every `put`, `replace`, `delete`, `sync`, `upload` and
//! `Upload::finish`) fail without effect, and every call after it, reads
//! included, as if the machine had stopped. `writes()` counts the calls of
//! a run that did not crash, so a test can enumerate the points.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Backend, Kind, Object, Upload};
use crate::error::{Error, Result};

type Objects = BTreeMap<(Kind, String), Arc<Vec<u8>>>;

#[derive(Default)]
struct State {
    visible: Objects,
    durable: Objects,
    /// Counted calls so far.
    writes: u64,
    /// The counted call that loses power.
    crash_at: Option<u64>,
    /// Power was lost: every call fails until `reboot`.
    down: bool,
}

#[derive(Default, Clone)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state();
        f.debug_struct("MemoryBackend")
            .field("objects", &s.visible.len())
            .field("writes", &s.writes)
            .field("down", &s.down)
            .finish()
    }
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("memory backend poisoned")
    }

    /// Loses power at the `n`-th counted call from now (1 is the next one).
    pub fn crash_at(&self, n: u64) {
        let mut s = self.state();
        s.crash_at = Some(s.writes + n);
    }

    /// Counted calls so far.
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    /// True once power was lost (and until `reboot`).
    pub fn is_down(&self) -> bool {
        self.state().down
    }

    /// Comes back up with only what was durable.
    pub fn reboot(&self) {
        let mut s = self.state();
        s.visible = s.durable.clone();
        s.crash_at = None;
        s.down = false;
    }

    /// The bytes of an object as readers see it (for tests that damage it).
    pub fn get(&self, kind: Kind, name: &str) -> Option<Vec<u8>> {
        let s = self.state();
        s.visible.get(&(kind, name.to_string())).map(|b| b.to_vec())
    }

    fn gone(kind: Kind, name: &str, op: &'static str, why: std::io::ErrorKind) -> Error {
        Error::io(op, locate(kind, name), std::io::Error::from(why))
    }

    /// Fails if power is out; otherwise counts a write and fails if it is
    /// the one that loses power.
    fn write_call(&self, kind: Kind, name: &str) -> Result<MutexGuard<'_, State>> {
        let mut s = self.state();
        if s.down {
            return Err(Self::gone(
                kind,
                name,
                "write",
                std::io::ErrorKind::BrokenPipe,
            ));
        }
        s.writes += 1;
        if s.crash_at == Some(s.writes) {
            s.down = true;
            return Err(Self::gone(
                kind,
                name,
                "write",
                std::io::ErrorKind::BrokenPipe,
            ));
        }
        Ok(s)
    }

    fn read_call(&self, kind: Kind, name: &str) -> Result<MutexGuard<'_, State>> {
        let s = self.state();
        if s.down {
            return Err(Self::gone(
                kind,
                name,
                "read",
                std::io::ErrorKind::BrokenPipe,
            ));
        }
        Ok(s)
    }
}

fn locate(kind: Kind, name: &str) -> PathBuf {
    PathBuf::from(format!("memory:{}/{name}", kind.noun()))
}

impl Backend for MemoryBackend {
    fn locate(&self, kind: Kind, name: &str) -> PathBuf {
        locate(kind, name)
    }

    fn create(&self) -> Result<()> {
        Ok(())
    }

    fn missing(&self) -> Option<String> {
        None
    }

    fn exists(&self, kind: Kind, name: &str) -> bool {
        let s = self.state();
        s.visible.contains_key(&(kind, name.to_string()))
    }

    fn list(&self, kind: Kind) -> Result<Vec<String>> {
        let s = self.read_call(kind, "")?;
        Ok(s.visible
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect())
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let s = self.read_call(kind, name)?;
        match s.visible.get(&(kind, name.to_string())) {
            Some(b) => Ok(b.to_vec()),
            None => Err(Self::gone(kind, name, "read", std::io::ErrorKind::NotFound)),
        }
    }

    fn open(&self, kind: Kind, name: &str) -> Result<Arc<dyn Object>> {
        let s = self.read_call(kind, name)?;
        match s.visible.get(&(kind, name.to_string())) {
            Some(b) => Ok(Arc::new(MemoryObject {
                bytes: b.clone(),
                path: locate(kind, name),
            })),
            None => Err(Self::gone(kind, name, "open", std::io::ErrorKind::NotFound)),
        }
    }

    fn put(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<()> {
        let mut s = self.write_call(kind, name)?;
        let bytes = Arc::new(bytes.to_vec());
        s.visible.insert((kind, name.to_string()), bytes.clone());
        s.durable.insert((kind, name.to_string()), bytes);
        Ok(())
    }

    fn replace(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<()> {
        self.put(kind, name, bytes)
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        let mut s = self.write_call(kind, name)?;
        Ok(s.visible.remove(&(kind, name.to_string())).is_some())
    }

    fn sync(&self) -> Result<()> {
        let mut s = self.write_call(Kind::Config, "")?;
        s.durable = s.visible.clone();
        Ok(())
    }

    fn upload(&self, kind: Kind) -> Result<Box<dyn Upload>> {
        drop(self.write_call(kind, "(temporary)")?);
        Ok(Box::new(MemoryUpload {
            backend: self.clone(),
            kind,
            bytes: Vec::new(),
        }))
    }
}

struct MemoryUpload {
    backend: MemoryBackend,
    kind: Kind,
    bytes: Vec<u8>,
}

impl Upload for MemoryUpload {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>, name: &str) -> Result<()> {
        self.backend.put(self.kind, name, &self.bytes)
    }

    fn abandon(self: Box<Self>) {}
}

struct MemoryObject {
    bytes: Arc<Vec<u8>>,
    path: PathBuf,
}

impl Object for MemoryObject {
    fn size(&self) -> Result<u64> {
        Ok(self.bytes.len() as u64)
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        usize::try_from(offset)
            .ok()
            .and_then(|o| Some(o..o.checked_add(len)?))
            .and_then(|r| self.bytes.get(r))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::io(
                    "read",
                    &self.path,
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deletion not yet synced comes back after a power loss; a put and a
    /// finished upload stay; an unfinished upload is gone.
    #[test]
    fn reboot_keeps_only_what_was_durable() {
        let b = MemoryBackend::new();
        b.put(Kind::Snapshot, "a", b"A").unwrap();
        b.put(Kind::Snapshot, "b", b"B").unwrap();
        b.delete(Kind::Snapshot, "a").unwrap();
        let mut up = b.upload(Kind::Pack).unwrap();
        up.write(b"pack").unwrap();
        up.finish("p").unwrap();
        let mut half = b.upload(Kind::Pack).unwrap();
        half.write(b"half").unwrap();
        assert!(!b.exists(Kind::Snapshot, "a"));
        b.crash_at(1);
        assert!(b.delete(Kind::Snapshot, "b").is_err());
        assert!(b.read(Kind::Snapshot, "b").is_err(), "power is out");
        assert!(half.finish("q").is_err());
        b.reboot();
        assert_eq!(b.read(Kind::Snapshot, "a").unwrap(), b"A");
        assert_eq!(b.read(Kind::Snapshot, "b").unwrap(), b"B");
        assert_eq!(b.read(Kind::Pack, "p").unwrap(), b"pack");
        assert!(!b.exists(Kind::Pack, "q"));
        b.delete(Kind::Snapshot, "a").unwrap();
        b.sync().unwrap();
        b.reboot();
        assert!(!b.exists(Kind::Snapshot, "a"));
    }

    #[test]
    fn range_reads_are_whole_or_fail() {
        let b = MemoryBackend::new();
        b.put(Kind::Pack, "p", b"0123456789").unwrap();
        let o = b.open(Kind::Pack, "p").unwrap();
        assert_eq!(o.read_at(2, 3).unwrap(), b"234");
        assert!(o.read_at(8, 3).is_err());
        assert!(o.read_at(u64::MAX, 1).is_err());
    }
}
