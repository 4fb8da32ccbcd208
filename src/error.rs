//! Typed errors of the library. Each variant says what went wrong and carries
//! enough context (a path, a revision, an object) for the CLI to tell the user
//! what to do next. The CLI maps them to exit codes (see `Error::exit_code`).

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The cause is part of the message and deliberately not a `#[source]`,
    // so error chains do not print it twice.
    #[error("{op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    /// An I/O error that was "no space left on device" (ENOSPC, EDQUOT).
    /// `needed` says how much more the command needed, when it knows.
    #[error("no space left on device: {op} {path}{needed}\n  free space on that disk (or move the repository elsewhere), then run the command again; nothing stored before it is affected")]
    DiskFull {
        op: &'static str,
        path: PathBuf,
        needed: String,
    },

    #[error("no snap repository found from {start} upward (looked for .snap/ and snap.toml)\n  create one here with `snap init`, or point to one with --repo PATH or SNAP_REPO")]
    NoRepository { start: PathBuf },

    #[error(
        "{path} is not a snap repository ({why})\n  create one with `snap init --repo {path}`"
    )]
    NotARepository { path: PathBuf, why: String },

    /// The config file is there but does not decode or fails its checksum:
    /// a repository, damaged, so `snap init` (which refuses) is no advice.
    #[error("the repository config {path} is damaged ({why})\n  this is a snap repository whose `config` file is damaged; `snap init` cannot help (it refuses an existing repository), and the packs, snapshots and tags are not touched\n  restore `config` from a backup or another copy of this repository; without one, create a repository elsewhere with the same chunker settings (`snap init --repo NEW`) and copy its `config` here")]
    DamagedConfig { path: PathBuf, why: String },

    #[error("a snap repository already exists at {path}")]
    AlreadyExists { path: PathBuf },

    #[error("repository format version {found} at {path} is newer than this snap understands (up to {supported}); upgrade snap")]
    NewerFormat {
        path: PathBuf,
        found: u16,
        supported: u16,
    },

    #[error("unknown revision '{rev}'\n  {hint}")]
    UnknownRev { rev: String, hint: String },

    /// `detail` starts with the date: "2026-12-02 14:03: snapshot ... (rule ...)".
    #[error("revision '{rev}' was forgotten by retention on {detail}")]
    Forgotten { rev: String, detail: String },

    #[error("revision '{rev}' is ambiguous: it matches {candidates}\n  {hint}")]
    AmbiguousRev {
        rev: String,
        candidates: String,
        hint: String,
    },

    /// `path` as the user gave it; `hint` starts with a newline (or is empty).
    #[error("'{path}' is not in snapshot {snapshot}{hint}")]
    PathNotInSnapshot {
        path: String,
        snapshot: String,
        hint: String,
    },

    /// A glob given where one file is needed (`snap cat`) matched several.
    #[error("'{pattern}' matches {count} files in snapshot {snapshot}, and only one can be written:\n{list}\n  give a pattern or path that names one file")]
    ManyMatches {
        pattern: String,
        snapshot: String,
        count: usize,
        list: String,
    },

    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },

    #[error("the repository is locked by {holder}\n  wait for that command to finish; if it is gone, the lock frees itself")]
    Locked { holder: String },

    /// A remote's prune lock is held (`snap prune --remote`).
    #[error("remote {remote} is locked by a prune: {holder}\n  ({lock})\n  wait for that prune to finish; if it is not running any more (a killed prune leaves its lock), check on the host it names, then `snap prune --remote {remote} --break-lock`")]
    RemoteLocked {
        remote: String,
        holder: String,
        lock: String,
    },

    #[error("refusing to overwrite {count} existing path(s) in {target}, first: {first}\n  pass --overwrite to replace them, or restore into an empty --target DIR")]
    TargetExists {
        target: PathBuf,
        count: usize,
        first: PathBuf,
    },

    #[error("unsafe path '{path}': {why}; nothing is written outside the target")]
    UnsafePath { path: String, why: String },

    #[error("invalid {what} '{value}': {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },

    #[error("{path}: {why}")]
    Config { path: PathBuf, why: String },

    #[error("index database {path}: {cause}\n  the index is a cache; `snap reindex` rebuilds it from the repository files")]
    Index {
        path: PathBuf,
        cause: rusqlite::Error,
    },

    /// `index.sqlite` of a newer snap: refused, never deleted (fail closed).
    #[error("index {path} has schema version {found}, newer than this snap's {supported}: a newer snap wrote it, and this one neither uses nor deletes it\n  run the newer snap; if no newer snap uses this repository any more, delete {path} (a cache: the next command rebuilds it from the repository files, only the stat cache is lost)")]
    NewerIndex {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("{count} file(s) could not be restored because their data is damaged:\n{list}\n  run `snap check --read-data` for the full damage report")]
    DamagedRestore { count: usize, list: String },

    /// Paths that were free when the restore planned and taken before it
    /// renamed its file there: left as they are.
    #[error("{count} path(s) appeared in {target} while the restore ran and were left as they are:\n{list}\n  every other file was restored; look at them, then restore them again with --overwrite to replace them")]
    Appeared {
        target: PathBuf,
        count: usize,
        list: String,
    },

    /// Forget or prune found files it cannot read or that disagree with the
    /// index, and refused to delete anything.
    #[error("{op} refused: it decides only from every snapshot and tag, and {count} of them could not be read or do not agree:\n{list}\n  nothing was deleted; repair or remove the files named (a newer snap's record: upgrade snap), then run `snap check`")]
    Incomplete {
        op: &'static str,
        count: usize,
        list: String,
    },

    /// A commit refused before storing something readers would refuse: a
    /// directory whose record is over the record limit, a tree nested too
    /// deep or holding too many entries (docs/format.md, Limits).
    #[error("{what} cannot be committed: {why}\n  nothing was committed; {hint}")]
    TooLarge {
        what: String,
        why: String,
        hint: String,
    },

    /// A remote's store said no, or could not be reached after retries.
    /// `what` is a URL (never a credential); `hint` starts with a newline
    /// or is empty.
    #[error("remote {what}: {op} failed: {cause}{hint}")]
    Remote {
        op: &'static str,
        what: String,
        cause: String,
        hint: String,
    },

    /// A session lock whose run cannot be told alive or gone: retention
    /// refuses rather than forget a live run's snapshots.
    #[error("cannot tell whether the `snap run` holding {path} is still running ({why})\n  nothing was forgotten, so no running session loses a snapshot; if no `snap run` is running on this repository, delete {path}")]
    UncheckedSession { path: PathBuf, why: String },

    #[error("interrupted by signal {signal}: {what}")]
    Interrupted { signal: i32, what: String },

    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(op: &'static str, path: impl AsRef<Path>, cause: std::io::Error) -> Self {
        if matches!(cause.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
            return Error::DiskFull {
                op,
                path: path.as_ref().to_path_buf(),
                needed: String::new(),
            };
        }
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            cause,
        }
    }

    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub fn invalid(what: &'static str, value: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            value: value.into(),
            why: why.into(),
        }
    }

    /// Process exit code for this error, documented in `snap --help`:
    /// 1 general failure, 3 damaged data, 4 repository locked, 5 not found,
    /// 128+N stopped by signal N.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { signal, .. } => 128 + signal,
            Error::Corrupt { .. }
            | Error::DamagedConfig { .. }
            | Error::UncheckedSession { .. }
            | Error::DamagedRestore { .. }
            | Error::Incomplete { .. } => 3,
            Error::Locked { .. } | Error::RemoteLocked { .. } => 4,
            Error::NoRepository { .. }
            | Error::NotARepository { .. }
            | Error::UnknownRev { .. }
            | Error::Forgotten { .. }
            | Error::PathNotInSnapshot { .. } => 5,
            _ => 1,
        }
    }
}

/// Attaches a path and an operation name to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
