//! Polling for epoch signals on disk: checkpoint files matching `--watch`
//! that appear or change and then stay unchanged, and new lines in the
//! `--metrics` JSON-lines file. Polling (not inotify) works on every file
//! system, including network mounts where checkpoints often land.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::runner::signals::{epoch_from_name, parse_json, EpochEvent};
use crate::workspace::{self, Workspace};

/// A file must look the same for this long before it counts as written.
pub const STABLE_FOR: Duration = Duration::from_millis(1000);

pub struct Watcher {
    ws: Workspace,
    globs: Option<GlobSet>,
    /// path -> (size, mtime) last seen, when first seen so, and whether reported.
    files: HashMap<PathBuf, ((u64, SystemTime), std::time::Instant, bool)>,
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
            files: HashMap::new(),
            metrics,
        };
        // Files present before the run are not epoch signals until they change.
        for (path, sig) in w.matching() {
            w.files.insert(path, (sig, std::time::Instant::now(), true));
        }
        Ok(w)
    }

    fn matching(&self) -> Vec<(PathBuf, (u64, SystemTime))> {
        let Some(globs) = &self.globs else {
            return Vec::new();
        };
        let Ok(walk) = workspace::walker(&self.ws, &self.ws.root) else {
            return Vec::new();
        };
        walk.flatten()
            .filter_map(|e| {
                let rel = e.path().strip_prefix(&self.ws.root).ok()?.to_path_buf();
                if !globs.is_match(&rel) {
                    return None;
                }
                let m = e.path().symlink_metadata().ok().filter(|m| m.is_file())?;
                Some((rel, (m.len(), m.modified().ok()?)))
            })
            .collect()
    }

    /// One poll: the epoch events that became due since the last one.
    pub fn poll(&mut self) -> Vec<EpochEvent> {
        self.poll_with(false)
    }

    /// The last poll, once the command has exited: what it wrote after the
    /// previous poll still counts. Watched files that changed and were not
    /// reported yet count without waiting to be stable (their writer is
    /// gone), and the metrics file is read to its end.
    pub fn last_poll(&mut self) -> Vec<EpochEvent> {
        self.poll_with(true)
    }

    fn poll_with(&mut self, last: bool) -> Vec<EpochEvent> {
        let mut out = Vec::new();
        let now = std::time::Instant::now();
        for (path, sig) in self.matching() {
            let slot = self.files.entry(path.clone()).or_insert((sig, now, false));
            if slot.0 != sig {
                *slot = (sig, now, false);
            }
            if !slot.2 && (last || now.duration_since(slot.1) >= STABLE_FOR) {
                slot.2 = true;
                let name = path.to_string_lossy().into_owned();
                out.push(EpochEvent {
                    epoch: epoch_from_name(&name),
                    metrics: Default::default(),
                    source: format!("watch {name}"),
                });
            }
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
                }
            }
        }
        out
    }
}
