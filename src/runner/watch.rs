//! Polling for epoch signals on disk: checkpoint files and directories
//! matching `--watch` that appear or change and then stay unchanged, and new
//! lines in the `--metrics` JSON-lines file. Polling (not inotify) works on
//! every file system, including network mounts where checkpoints often land.
//!
//! A watched directory (the Hugging Face Trainer's `checkpoint-500/`) is
//! one signal: it counts as written once it holds a file and none of its
//! files changed for `STABLE_FOR`. Files inside it are part of it, not
//! signals of their own.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::runner::signals::{parse_json, position_from_name, EpochEvent};
use crate::workspace::{self, Workspace};

/// A file must look the same for this long before it counts as written.
pub const STABLE_FOR: Duration = Duration::from_millis(1000);

/// How a watched entry looks: size and mtime of every file in it, by path
/// relative to it (a watched file is one entry with an empty path).
type Look = Vec<(PathBuf, u64, SystemTime)>;

/// A watched entry as last polled.
struct Seen {
    look: Look,
    /// When it last changed (or was first seen).
    since: Instant,
    reported: bool,
    dir: bool,
}

pub struct Watcher {
    ws: Workspace,
    globs: Option<GlobSet>,
    /// Watched files and directories by path relative to the workspace.
    seen: HashMap<PathBuf, Seen>,
    metrics: Option<(PathBuf, u64, Vec<u8>)>,
}

impl Watcher {
    /// `patterns` are globs relative to the workspace; `metrics_file` is read
    /// from its current end (earlier lines belong to earlier runs). Call it
    /// before the command starts: what exists now is the state "before the
    /// run", and a file that does not exist yet is read from its first line.
    pub fn new(ws: &Workspace, patterns: &[String], metrics_file: Option<PathBuf>) -> Result<Self> {
        let globs = if patterns.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                b.add(
                    Glob::new(p)
                        .map_err(|e| Error::invalid("--watch pattern", p, e.to_string()))?,
                );
            }
            Some(b.build().map_err(|e| {
                Error::invalid("--watch pattern", patterns.join(","), e.to_string())
            })?)
        };
        let metrics = metrics_file.map(|p| {
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p, len, Vec::new())
        });
        let mut w = Watcher {
            ws: ws.clone(),
            globs,
            seen: HashMap::new(),
            metrics,
        };
        // What is present before the run is not an epoch signal until it changes.
        let now = Instant::now();
        for (path, dir, look) in w.matching() {
            let seen = Seen {
                look,
                since: now,
                reported: true,
                dir,
            };
            w.seen.insert(path, seen);
        }
        Ok(w)
    }

    /// Every watched entry now: `(path, is a directory, look)`. Directories
    /// without a file yet are left out (a trainer creates the directory
    /// first and fills it afterwards).
    fn matching(&self) -> Vec<(PathBuf, bool, Look)> {
        let Some(globs) = &self.globs else {
            return Vec::new();
        };
        let Ok(walk) = workspace::walker(&self.ws, &self.ws.root) else {
            return Vec::new();
        };
        let mut files = Vec::new();
        // The walk lists a directory before what it holds.
        let mut dirs: BTreeMap<PathBuf, Look> = BTreeMap::new();
        for e in walk.flatten() {
            let Ok(rel) = e.path().strip_prefix(&self.ws.root) else {
                continue;
            };
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            let watched_dir = rel.ancestors().skip(1).find(|a| dirs.contains_key(*a));
            if m.is_dir() {
                if watched_dir.is_none() && !rel.as_os_str().is_empty() && globs.is_match(rel) {
                    dirs.insert(rel.to_path_buf(), Vec::new());
                }
                continue;
            }
            let (true, Ok(mtime)) = (m.is_file(), m.modified()) else {
                continue;
            };
            match watched_dir {
                Some(dir) => {
                    let inner = rel.strip_prefix(dir).unwrap_or(rel).to_path_buf();
                    let dir = dir.to_path_buf();
                    dirs.entry(dir).or_default().push((inner, m.len(), mtime));
                }
                None if globs.is_match(rel) => files.push((
                    rel.to_path_buf(),
                    false,
                    vec![(PathBuf::new(), m.len(), mtime)],
                )),
                None => {}
            }
        }
        files.extend(
            dirs.into_iter()
                .filter(|(_, look)| !look.is_empty())
                .map(|(path, look)| (path, true, look)),
        );
        files
    }

    /// One poll: the epoch events that became due since the last one.
    pub fn poll(&mut self) -> Vec<EpochEvent> {
        self.poll_with(false)
    }

    /// The last poll, once the command has exited: what it wrote after the
    /// previous poll still counts. Watched entries that changed and were not
    /// reported yet count without waiting to be stable (their writer is
    /// gone), and the metrics file is read to its end.
    pub fn last_poll(&mut self) -> Vec<EpochEvent> {
        self.poll_with(true)
    }

    fn poll_with(&mut self, last: bool) -> Vec<EpochEvent> {
        let mut out = Vec::new();
        let now = Instant::now();
        let mut due = Vec::new();
        for (path, dir, look) in self.matching() {
            let seen = self.seen.entry(path.clone()).or_insert_with(|| Seen {
                look: Vec::new(),
                since: now,
                reported: false,
                dir,
            });
            if seen.look != look || seen.dir != dir {
                *seen = Seen {
                    look,
                    since: now,
                    reported: false,
                    dir,
                };
            }
            if !seen.reported && (last || now.duration_since(seen.since) >= STABLE_FOR) {
                seen.reported = true;
                due.push((path, dir));
            }
        }
        // In path order, so that checkpoints found in one poll are committed
        // oldest name first.
        due.sort();
        for (path, dir) in due {
            let mut name = path.to_string_lossy().into_owned();
            if dir {
                name.push('/');
            }
            let (epoch, step) = position_from_name(&name);
            out.push(EpochEvent {
                epoch,
                step,
                metrics: Default::default(),
                source: format!("watch {name}"),
            });
        }
        if let Some((path, offset, partial)) = &mut self.metrics {
            if let Ok(mut f) = File::open(&*path) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                if len < *offset {
                    *offset = 0; // truncated and rewritten
                    partial.clear();
                }
                let mut buf = Vec::new();
                if f.seek(SeekFrom::Start(*offset)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                    *offset += buf.len() as u64;
                    partial.extend_from_slice(&buf);
                    while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = partial.drain(..=nl).collect();
                        if let Some(e) =
                            parse_json(String::from_utf8_lossy(&line).trim(), "metrics-file")
                        {
                            out.push(e);
                        }
                    }
                    // The command has exited: a last line without its newline counts.
                    if last && !partial.is_empty() {
                        let line = String::from_utf8_lossy(partial).trim().to_string();
                        partial.clear();
                        out.extend(parse_json(&line, "metrics-file"));
                    }
                }
            }
        }
        out
    }
}
