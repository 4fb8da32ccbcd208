//! The `track` list of `snap.toml`: which parts of the workspace a commit
//! snapshots.
//!
//! Each entry is either a **path** or a **pattern**:
//!
//! - An entry without a wildcard (`*`, `?`, `[`, `{`) is a path from the
//!   workspace root, file or directory (`logs`, `models/best.pt`), as it
//!   always was. A leading `/` changes nothing; a trailing `/` asks for a
//!   directory.
//! - An entry with a wildcard follows `.gitignore`: without a `/` (other
//!   than a trailing one) it matches a name at any depth (`*.pth` is
//!   `best.pth` and `runs/3/epoch_07.pth`); with one it matches the whole
//!   path from the workspace root (`logs/*.log` is not `old/logs/a.log`;
//!   `**/` stands for any number of directories). `*` and `?` never match
//!   `/`; a trailing `/` matches directories only.
//!
//! A matched directory is taken whole, a matched file with the directories
//! above it. Plain names at any depth are written `**/logs`. Ignore rules
//! (`.snapignore`, `ignore`) still apply to whatever `track` selects.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};
use crate::workspace::{self, Workspace, CONFIG_FILE};

/// The parsed `track` list of a workspace. Empty: everything is tracked.
#[derive(Clone, Debug, Default)]
pub struct Track {
    entries: Vec<TrackEntry>,
}

/// One `track` entry.
#[derive(Clone, Debug)]
pub struct TrackEntry {
    /// As written in `snap.toml`, for messages.
    pub text: String,
    pub kind: TrackKind,
    /// Written with a trailing `/`: matches directories only.
    pub dir_only: bool,
}

#[derive(Clone, Debug)]
pub enum TrackKind {
    /// No wildcard: this path, relative to the workspace root.
    Path(PathBuf),
    /// A wildcard pattern, matched against paths relative to the root.
    Pattern {
        matcher: GlobMatcher,
        /// The directory below which every match lies (the pattern's
        /// leading components without wildcards; empty for a pattern
        /// that matches at any depth): a commit walks only that.
        base: PathBuf,
    },
}

const WILDCARDS: &[char] = &['*', '?', '[', '{'];

impl Track {
    /// Parses `ws`'s `track` list; a malformed pattern is an error naming it.
    pub fn of(ws: &Workspace) -> Result<Track> {
        let entries = ws
            .config
            .track
            .iter()
            .map(|t| TrackEntry::parse(ws, t))
            .collect::<Result<_>>()?;
        Ok(Track { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[TrackEntry] {
        &self.entries
    }

    /// True if `rel` may be tracked or hold tracked entries: it, one of its
    /// directories or one of its contents is selected by some entry. An
    /// empty list tracks everything.
    pub fn may_track(&self, rel: &Path, is_dir: bool) -> bool {
        self.is_empty()
            || self.entries.iter().any(|e| match &e.kind {
                TrackKind::Path(p) => rel.starts_with(p) || p.starts_with(rel),
                TrackKind::Pattern { base, .. } => {
                    e.selects(rel, is_dir)
                        || rel.ancestors().skip(1).any(|a| e.selects(a, true))
                        || (is_dir && (base.starts_with(rel) || rel.starts_with(base)))
                }
            })
    }
}

impl TrackEntry {
    fn parse(ws: &Workspace, text: &str) -> Result<TrackEntry> {
        let bad = |why: String| Error::Config {
            path: ws.root.join(CONFIG_FILE),
            why: format!("track pattern '{text}': {why}"),
        };
        if text.starts_with('!') {
            return Err(bad(
                "track cannot exclude; put the pattern (without '!') in `ignore`".into(),
            ));
        }
        let dir_only = text.len() > 1 && text.ends_with('/');
        let body = text.trim_end_matches('/');
        if body.is_empty() {
            return Err(bad(
                "names nothing; leave `track` out to track everything".into()
            ));
        }
        if !body.contains(WILDCARDS) {
            let abs = workspace::absolute(&ws.root, Path::new(body));
            let rel = match abs.strip_prefix(&ws.root) {
                Ok(r) => r.to_path_buf(),
                // `/logs`: anchored at the root, as in .gitignore.
                Err(_) if body.starts_with('/') => {
                    workspace::absolute(&ws.root, Path::new(body.trim_start_matches('/')))
                        .strip_prefix(&ws.root)
                        .map(Path::to_path_buf)
                        .map_err(|_| {
                            bad(format!("is outside the workspace {}", ws.root.display()))
                        })?
                }
                Err(_) => {
                    return Err(bad(format!(
                        "is outside the workspace {}",
                        ws.root.display()
                    )))
                }
            };
            return Ok(TrackEntry {
                text: text.to_string(),
                kind: TrackKind::Path(rel),
                dir_only,
            });
        }
        let anchored = body.contains('/');
        let body = body.trim_start_matches('/');
        let glob = if anchored {
            body.to_string()
        } else {
            format!("**/{body}")
        };
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| bad(e.kind().to_string()))?
            .compile_matcher();
        let mut base = PathBuf::new();
        if anchored {
            let comps: Vec<&str> = body.split('/').collect();
            for c in &comps[..comps.len() - 1] {
                if c.contains(WILDCARDS) {
                    break;
                }
                base.push(c);
            }
        }
        Ok(TrackEntry {
            text: text.to_string(),
            kind: TrackKind::Pattern { matcher, base },
            dir_only,
        })
    }

    /// True if this entry selects `rel` itself (not counting its parents).
    pub fn selects(&self, rel: &Path, is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        match &self.kind {
            TrackKind::Path(p) => rel == p,
            TrackKind::Pattern { matcher, .. } => matcher.is_match(rel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::WorkspaceConfig;

    fn track(list: &[&str]) -> Track {
        let ws = Workspace {
            repo: PathBuf::from("/w/.snap"),
            root: PathBuf::from("/w"),
            config: WorkspaceConfig {
                track: list.iter().map(|s| s.to_string()).collect(),
                ..WorkspaceConfig::default()
            },
        };
        Track::of(&ws).expect("valid track list")
    }

    fn selects(t: &Track, rel: &str, is_dir: bool) -> bool {
        t.entries()
            .iter()
            .any(|e| e.selects(Path::new(rel), is_dir))
    }

    #[test]
    fn gitignore_rules_for_patterns() {
        let t = track(&["*.pth"]);
        assert!(selects(&t, "a.pth", false));
        assert!(selects(&t, "runs/3/epoch_07.pth", false));
        assert!(!selects(&t, "a.pth.tmp", false));
        let t = track(&["logs/*.log", "/top*"]);
        assert!(selects(&t, "logs/a.log", false));
        assert!(!selects(&t, "logs/sub/a.log", false), "* never crosses /");
        assert!(
            !selects(&t, "old/logs/a.log", false),
            "anchored at the root"
        );
        assert!(selects(&t, "top.txt", false));
        assert!(!selects(&t, "sub/top.txt", false));
        let t = track(&["**/ckpt", "run?/"]);
        assert!(selects(&t, "ckpt", true) && selects(&t, "a/b/ckpt", true));
        assert!(selects(&t, "run1", true));
        assert!(
            !selects(&t, "run1", false),
            "a trailing / is directories only"
        );
    }

    #[test]
    fn plain_paths_are_from_the_root() {
        let t = track(&["logs", "/models/best.pt", "cfg/"]);
        assert!(selects(&t, "logs", true));
        assert!(
            !selects(&t, "sub/logs", true),
            "no wildcard: not at any depth"
        );
        assert!(selects(&t, "models/best.pt", false));
        assert!(!selects(&t, "cfg", false));
        assert!(t.may_track(Path::new("logs/x/y"), false));
        assert!(t.may_track(Path::new("models"), true));
        assert!(!t.may_track(Path::new("data"), true));
    }

    #[test]
    fn may_track_sees_into_directories_a_pattern_can_reach() {
        let t = track(&["*.pth", "models/*/best.pt"]);
        assert!(t.may_track(Path::new("anything"), true));
        assert!(!t.may_track(Path::new("notes.txt"), false));
        let t = track(&["models/*/best.pt"]);
        assert!(t.may_track(Path::new("models/run1"), true));
        assert!(!t.may_track(Path::new("data"), true));
        assert!(t.may_track(Path::new("models/run1/best.pt"), false));
    }

    #[test]
    fn bad_entries_are_named() {
        let ws = Workspace {
            repo: PathBuf::from("/w/.snap"),
            root: PathBuf::from("/w"),
            config: WorkspaceConfig {
                track: vec!["[unclosed".into()],
                ..WorkspaceConfig::default()
            },
        };
        let e = Track::of(&ws).unwrap_err().to_string();
        assert!(e.contains("[unclosed"), "{e}");
        for bad in ["!*.tmp", "/", "../elsewhere"] {
            let ws = Workspace {
                config: WorkspaceConfig {
                    track: vec![bad.into()],
                    ..WorkspaceConfig::default()
                },
                ..ws.clone()
            };
            let e = Track::of(&ws).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
