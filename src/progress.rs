//! Progress reporting is passed into long operations, never global. The CLI
//! supplies a terminal bar (or nothing when output is piped); tests and the
//! library default use `NoProgress`.

/// Receives progress of a long operation, in bytes (or items).
pub trait Progress: Sync {
    /// A new phase starts with `total` units of work (0 if unknown).
    fn start(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _done: u64) {}
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
