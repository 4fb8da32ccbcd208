//! Listing what a commit tracks, and the stat cache.
//!
//! `scan` walks the workspace (or the given paths, or what `snap.toml`'s
//! `track` selects), honouring `.snapignore` and `ignore`, and stats every
//! entry. Symlinks are listed as links and never followed.
//!
//! `use_stat_cache` then decides per file whether it must be read: a file
//! whose size, times, inode and device equal its `statcache` row, and whose
//! chunks are all still stored, reuses the row's chunk list unopened.
//! `cacheable` and `stat_row` decide which files read by this commit get a
//! row.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::pipeline::Slots;
use super::trees::StatRow;
use crate::error::{Error, Result};
use crate::format::pack::PackKind;
use crate::format::tree::ChunkRef;
use crate::id::ChunkId;
use crate::store::index::{Index, StatEntry};
use crate::track::{Track, TrackKind};
use crate::workspace::{self, Workspace};

/// A file modified less than this before it was read is not put in the stat
/// cache: file timestamps come from a coarse clock (one kernel tick, at most
/// 10 ms), so a change right after the read could keep the same mtime.
const RACY_MARGIN_NS: i64 = 50_000_000;

/// What `lstat`/`fstat` says of an entry; the stat cache stores the same.
pub use crate::store::index::Meta;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    File,
    Dir,
    Symlink(Vec<u8>),
}

/// One entry to commit, with its path relative to the workspace.
#[derive(Clone, Debug)]
pub struct Item {
    pub rel: PathBuf,
    pub abs: PathBuf,
    pub kind: ItemKind,
    pub meta: Meta,
}

/// Lists the entries to commit. `paths` (absolute) restrict the snapshot to
/// those paths; empty means the workspace's `track` list (`crate::track`),
/// or everything. Returns the items sorted by path, and notes on skipped
/// entries and on `track` entries that match nothing.
pub fn scan(ws: &Workspace, paths: &[PathBuf]) -> Result<(Vec<Item>, Notes)> {
    let mut items = Vec::new();
    let mut notes = Notes::default();
    let track = if paths.is_empty() {
        Track::of(ws)?
    } else {
        Track::default()
    };
    let roots: Vec<PathBuf> = if !paths.is_empty() {
        paths.to_vec()
    } else if !track.is_empty() {
        let mut roots = Vec::new();
        for e in track.entries() {
            let TrackKind::Path(rel) = &e.kind else {
                continue;
            };
            let abs = ws.root.join(rel);
            match abs.symlink_metadata() {
                Ok(m) if !e.dir_only || m.is_dir() => roots.push(abs),
                _ => notes.warn(nothing_matched(&e.text)),
            }
        }
        roots
    } else {
        vec![ws.root.clone()]
    };
    for root in &roots {
        scan_root(ws, root, &mut items, &mut notes)?;
    }
    scan_patterns(ws, &track, &mut items, &mut notes)?;
    items.sort_by(|a, b| a.rel.cmp(&b.rel));
    items.dedup_by(|a, b| a.rel == b.rel);
    Ok((items, notes))
}

/// Warnings of a commit, and how many entries it left out because they
/// could not be read (`snap commit` then exits 6).
#[derive(Debug, Default)]
pub struct Notes {
    pub warnings: Vec<String>,
    pub skipped: u64,
}

impl Notes {
    pub fn warn(&mut self, w: String) {
        self.warnings.push(w);
    }

    /// A warning about `n` entries left out of the snapshot.
    pub fn skip(&mut self, n: u64, w: String) {
        self.skipped += n;
        self.warnings.push(w);
    }
}

fn nothing_matched(text: &str) -> String {
    format!(
        "track entry '{text}' in {} matches nothing in the workspace",
        workspace::CONFIG_FILE
    )
}

/// Everything at and below `root` (absolute), and the directories above it.
fn scan_root(ws: &Workspace, root: &Path, items: &mut Vec<Item>, notes: &mut Notes) -> Result<()> {
    let rel_root = root.strip_prefix(&ws.root).map_err(|_| {
        Error::invalid(
            "path",
            root.display().to_string(),
            format!("is outside the workspace {}", ws.root.display()),
        )
    })?;
    // A root inside the repository is refused; a root that holds the
    // repository is fine (the walker leaves the repository out), and so is
    // the workspace root itself (an import's staging directory).
    let inside_repo = root != ws.root && root.starts_with(&ws.repo);
    if inside_repo
        || rel_root
            .components()
            .any(|c| c.as_os_str() == ".git" || c.as_os_str() == ".snap")
    {
        return Err(Error::invalid(
            "path",
            root.display().to_string(),
            "is or holds the repository or a .git directory, which snap never stores",
        ));
    }
    if root.symlink_metadata().is_err() {
        return Err(Error::invalid(
            "path",
            root.display().to_string(),
            "does not exist",
        ));
    }
    // Ancestors of a path given explicitly become directories of the tree.
    let mut anc = PathBuf::new();
    for comp in rel_root.parent().into_iter().flat_map(|p| p.components()) {
        anc.push(comp);
        push_item(ws, &anc, items, notes);
    }
    for entry in workspace::walker(ws, root)? {
        match entry {
            Ok(e) => {
                let Ok(rel) = e.path().strip_prefix(&ws.root) else {
                    continue;
                };
                if rel.as_os_str().is_empty() {
                    continue;
                }
                push_item(ws, rel, items, notes);
            }
            Err(e) => notes.skip(1, format!("skipped: {e}")),
        }
    }
    Ok(())
}

/// The entries the wildcard `track` patterns select: one walk below each
/// pattern's base directory (the whole workspace for a pattern that
/// matches at any depth), keeping what a pattern matches, everything inside
/// a matched directory, and the directories above each match.
fn scan_patterns(
    ws: &Workspace,
    track: &Track,
    items: &mut Vec<Item>,
    notes: &mut Notes,
) -> Result<()> {
    let patterns: Vec<_> = track
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            TrackKind::Pattern { base, .. } => Some((e, base)),
            TrackKind::Path(_) => None,
        })
        .collect();
    if patterns.is_empty() {
        return Ok(());
    }
    let mut bases: Vec<&PathBuf> = patterns.iter().map(|(_, b)| *b).collect();
    bases.sort();
    bases.dedup_by(|b, a| b.starts_with(a));
    let mut matched = vec![false; patterns.len()];
    let mut matched_dirs: HashSet<PathBuf> = HashSet::new();
    let mut listed: HashSet<PathBuf> = HashSet::new();
    for base in bases {
        let dir = ws.root.join(base);
        if !dir.is_dir() || dir.starts_with(&ws.repo) {
            continue;
        }
        for entry in workspace::walker(ws, &dir)? {
            let e = match entry {
                Ok(e) => e,
                Err(e) => {
                    notes.skip(1, format!("skipped: {e}"));
                    continue;
                }
            };
            let Ok(rel) = e.path().strip_prefix(&ws.root) else {
                continue;
            };
            if rel.as_os_str().is_empty() {
                continue;
            }
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            let mut hit = false;
            for (i, (p, _)) in patterns.iter().enumerate() {
                if p.selects(rel, is_dir) {
                    matched[i] = true;
                    hit = true;
                }
            }
            let inside = rel.ancestors().skip(1).any(|a| matched_dirs.contains(a));
            if !hit && !inside {
                continue;
            }
            if hit && is_dir {
                matched_dirs.insert(rel.to_path_buf());
            }
            let parents: Vec<&Path> = rel
                .ancestors()
                .skip(1)
                .take_while(|a| !a.as_os_str().is_empty() && !listed.contains(*a))
                .collect();
            for a in parents.into_iter().rev() {
                push_item(ws, a, items, notes);
                listed.insert(a.to_path_buf());
            }
            if listed.insert(rel.to_path_buf()) {
                push_item(ws, rel, items, notes);
            }
        }
    }
    for ((p, _), m) in patterns.iter().zip(matched) {
        if !m {
            notes.warn(nothing_matched(&p.text));
        }
    }
    Ok(())
}

fn push_item(ws: &Workspace, rel: &Path, items: &mut Vec<Item>, notes: &mut Notes) {
    let abs = ws.root.join(rel);
    let meta = match abs.symlink_metadata() {
        Ok(m) => m,
        Err(e) => {
            notes.skip(1, format!("skipped {}: {e}", rel.display()));
            return;
        }
    };
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        ItemKind::File
    } else if ft.is_dir() {
        ItemKind::Dir
    } else if ft.is_symlink() {
        match fs::read_link(&abs) {
            Ok(t) => ItemKind::Symlink(t.into_os_string().into_encoded_bytes()),
            Err(e) => {
                notes.skip(1, format!("skipped {}: {e}", rel.display()));
                return;
            }
        }
    } else {
        // Sockets and pipes cannot be stored: a warning, not a failure.
        notes.warn(format!(
            "skipped {}: not a regular file, directory or symlink",
            rel.display()
        ));
        return;
    };
    items.push(Item {
        rel: rel.to_path_buf(),
        abs,
        kind,
        meta: Meta::of(&meta),
    });
}

/// The entries of one commit, from the scan on: what each is, how its
/// content was obtained, and what was skipped on the way.
pub(super) struct Files {
    pub items: Vec<Item>,
    /// One per item, in the same order.
    pub data: Vec<FileData>,
    pub notes: Notes,
}

/// How a file's content was obtained.
pub(super) enum FileData {
    /// From the stat cache, unopened.
    Cached(Vec<ChunkRef>),
    /// To be read by the pipeline.
    Pending,
    Read {
        slots: Slots,
        read_start_ns: i64,
        /// Only the prefix the file had when first opened was stored (it
        /// grew while being read): never a stat cache entry.
        prefix: bool,
    },
    /// Not a file, or a file that vanished or kept changing while read.
    Skipped,
}

/// The workspace's stat cache rows, by path (read once per commit).
pub(super) type StatCache = HashMap<Vec<u8>, StatEntry>;

/// Decides per item: a stat cache hit (`Cached`), a file to read
/// (`Pending`) or nothing to read (`Skipped`). Chunks of a hit are added
/// to `seen`, the chunks this commit knows to be stored. Returns the
/// decisions and the bytes to read.
pub(super) fn use_stat_cache(
    index: &Index,
    cache: &StatCache,
    items: &[Item],
    seen: &mut HashSet<ChunkId>,
) -> Result<(Vec<FileData>, u64)> {
    let mut data = Vec::with_capacity(items.len());
    let mut to_read_bytes = 0;
    for item in items {
        if item.kind != ItemKind::File {
            data.push(FileData::Skipped);
            continue;
        }
        match cache.get(item.rel.as_os_str().as_encoded_bytes()) {
            Some(c) if same_file(c, &item.meta) && all_present(index, seen, &c.chunks)? => {
                data.push(FileData::Cached(c.chunks.clone()))
            }
            _ => {
                to_read_bytes += item.meta.size;
                data.push(FileData::Pending);
            }
        }
    }
    Ok((data, to_read_bytes))
}

fn same_file(c: &StatEntry, m: &Meta) -> bool {
    let c = &c.meta;
    c.size == m.size
        && c.mtime_ns == m.mtime_ns
        && c.ctime_ns == m.ctime_ns
        && c.inode == m.inode
        && c.dev == m.dev
}

/// True if every chunk is stored or already seen (a stat cache hit is only
/// trusted if its chunks still exist).
fn all_present(index: &Index, seen: &mut HashSet<ChunkId>, chunks: &[ChunkRef]) -> Result<bool> {
    for c in chunks {
        if seen.contains(&c.id) {
            continue;
        }
        if !index.has_blob(&c.id, PackKind::Data)? {
            return Ok(false);
        }
        seen.insert(c.id);
    }
    Ok(true)
}

/// True if a file read by this commit may get a stat cache row: all of it
/// was stored, and it had not been modified within `RACY_MARGIN_NS` of the
/// start of the read.
pub(super) fn cacheable(meta: &Meta, read_start_ns: i64, prefix: bool) -> bool {
    let newest = meta.mtime_ns.max(meta.ctime_ns);
    !prefix && newest < read_start_ns - RACY_MARGIN_NS
}

/// The stat cache row of a file as committed.
pub(super) fn stat_row(m: &Meta, chunks: Vec<ChunkRef>) -> StatEntry {
    StatEntry { meta: *m, chunks }
}

/// What the index transaction changes in the stat cache, given the rows it
/// held (`cache`) and the rows of every cacheable file of this commit
/// (`rows`): the rows to put (new or different), and, if `replace_all`
/// (the whole workspace was committed), the paths whose rows go (gone, or
/// not cacheable this time). An unchanged workspace changes nothing.
pub(super) fn stat_changes(
    cache: &StatCache,
    rows: Vec<StatRow>,
    replace_all: bool,
) -> (Vec<StatRow>, Vec<Vec<u8>>) {
    let stale = match replace_all {
        true => {
            let listed: HashSet<&[u8]> = rows.iter().map(|(p, _)| p.as_slice()).collect();
            let mut stale: Vec<Vec<u8>> = cache
                .keys()
                .filter(|p| !listed.contains(p.as_slice()))
                .cloned()
                .collect();
            stale.sort();
            stale
        }
        false => Vec::new(),
    };
    let put = rows
        .into_iter()
        .filter(|(p, e)| cache.get(p) != Some(e))
        .collect();
    (put, stale)
}
