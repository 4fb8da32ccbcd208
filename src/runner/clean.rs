//! `--clean DIR`: after the archive snapshot, delete from `DIR` exactly what
//! that snapshot holds, and nothing else.
//!
//! A file (or symlink) is deleted only if the archive snapshot holds it at the
//! same path with the same identity as stored: size and mtime for a file (not
//! re-hashed), target for a symlink. Everything else stays where it is and is
//! reported with the reason it is not in the snapshot: ignored by
//! `.snapignore` or `snap.toml`, outside `track`, changed since the snapshot,
//! a name the check cannot match, and so on. A directory is removed only if
//! the snapshot holds it and it is empty once its contents are dealt with
//! (`rmdir`, never a recursive delete); `DIR` itself always stays.
//!
//! Plan, then apply: [`plan`] only reads; [`apply`] checks each file's
//! identity once more just before deleting it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::repo::FileInfo;
use crate::track::Track;
use crate::workspace::{self, Workspace};

/// What the archive snapshot holds at a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Held {
    File { size: u64, mtime_ns: i64 },
    Symlink(String),
    Dir,
    Other,
}

/// The archive snapshot's entries, by path relative to the workspace.
#[derive(Debug, Default)]
pub struct Archived(HashMap<String, Held>);

impl Archived {
    pub fn new(files: &[FileInfo]) -> Self {
        Archived(
            files
                .iter()
                .map(|f| {
                    let held = match f.kind {
                        "file" => Held::File {
                            size: f.size,
                            mtime_ns: f.mtime_ns,
                        },
                        "symlink" => Held::Symlink(f.target.clone().unwrap_or_default()),
                        "dir" => Held::Dir,
                        _ => Held::Other,
                    };
                    (f.path.clone(), held)
                })
                .collect(),
        )
    }

    /// What is held at `rel`. Paths are compared as UTF-8 text (that is how
    /// `Repo::files` names them); a name that is not UTF-8, or that contains
    /// U+FFFD (what a non-UTF-8 name turns into), matches nothing.
    fn get(&self, rel: &Path) -> Option<&Held> {
        let key = rel.to_str().filter(|k| !k.contains('\u{FFFD}'))?;
        self.0.get(key)
    }
}

/// Something `--clean` left in place, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// Relative to the workspace; directories end with `/`.
    pub path: String,
    /// Regular files inside a kept directory.
    pub files: Option<u64>,
    pub why: String,
}

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.files {
            Some(1) => write!(f, "kept {} (1 file): {}", self.path, self.why),
            Some(n) => write!(f, "kept {} ({n} files): {}", self.path, self.why),
            None => write!(f, "kept {}: {}", self.path, self.why),
        }
    }
}

/// The identity a file must still have when it is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Identity {
    File { size: u64, mtime_ns: i64 },
    Symlink(String),
}

/// What cleaning one directory will do.
#[derive(Debug, Default)]
pub struct Plan {
    /// The directory, relative to the workspace.
    pub dir: PathBuf,
    delete: Vec<(PathBuf, String, Identity)>,
    /// Directories the archive holds, deepest first: removed if empty.
    dirs: Vec<PathBuf>,
    pub kept: Vec<Kept>,
}

/// The result of cleaning one directory.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub deleted: u64,
    pub kept: Vec<Kept>,
}

/// Why paths are not tracked: the workspace's rules, and what the archive
/// commit skipped.
struct Rules<'a> {
    /// The workspace's `track` list (empty if it does not parse: the archive
    /// commit would have failed on it).
    track: Track,
    overrides: Option<ignore::overrides::Override>,
    /// Paths (relative) the workspace tracks under the directory right now.
    tracked_now: HashSet<PathBuf>,
    warnings: &'a [String],
}

/// Plans the cleaning of `dir`, an absolute directory inside the workspace
/// (checked by the caller), against the archive snapshot's entries.
/// `warnings` are the archive commit's (they name files it skipped).
pub fn plan(ws: &Workspace, dir: &Path, archived: &Archived, warnings: &[String]) -> Result<Plan> {
    let root = ws.root.canonicalize().ctx("resolve", &ws.root)?;
    let rel = dir.strip_prefix(&root).unwrap_or(dir).to_path_buf();
    let abs = ws.root.join(&rel);
    let rules = Rules::new(ws, &abs, warnings);
    let mut plan = Plan {
        dir: rel.clone(),
        ..Plan::default()
    };
    match archived.get(&rel) {
        Some(Held::Dir) => visit(&rules, archived, &rel, &abs, &mut plan)?,
        _ => {
            let meta = fs::symlink_metadata(&abs).ctx("stat", &abs)?;
            plan.kept.push(Kept {
                path: format!("{}/", rel.display()),
                files: Some(count_files(&abs)),
                why: rules.why_not_archived(&rel, &abs, &meta),
            });
        }
    }
    plan.dirs
        .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    Ok(plan)
}

fn visit(
    rules: &Rules,
    archived: &Archived,
    rel: &Path,
    abs: &Path,
    plan: &mut Plan,
) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(abs)
        .ctx("list", abs)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .ctx("list", abs)?;
    names.sort();
    for name in names {
        let (crel, cabs) = (rel.join(&name), abs.join(&name));
        let meta = match fs::symlink_metadata(&cabs) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                plan.kept.push(Kept {
                    path: crel.display().to_string(),
                    files: None,
                    why: format!("cannot be checked: {e}"),
                });
                continue;
            }
        };
        let ft = meta.file_type();
        let shown = if ft.is_dir() {
            format!("{}/", crel.display())
        } else {
            crel.display().to_string()
        };
        let why = match archived.get(&crel) {
            Some(Held::Dir) if ft.is_dir() => {
                plan.dirs.push(cabs.clone());
                visit(rules, archived, &crel, &cabs, plan)?;
                continue;
            }
            Some(Held::File { size, mtime_ns }) if ft.is_file() => {
                if meta.len() == *size && mtime_of(&meta) == *mtime_ns {
                    let id = Identity::File {
                        size: *size,
                        mtime_ns: *mtime_ns,
                    };
                    plan.delete.push((cabs, shown, id));
                    continue;
                }
                "changed since the archive snapshot (size or mtime differs)".to_string()
            }
            Some(Held::Symlink(target)) if ft.is_symlink() => match link_target(&cabs) {
                Some(t) if &t == target => {
                    plan.delete.push((cabs, shown, Identity::Symlink(t)));
                    continue;
                }
                _ => "changed since the archive snapshot (link target differs)".to_string(),
            },
            Some(_) => "replaced by another kind of entry since the archive snapshot".to_string(),
            None if crel.to_str().is_none_or(|s| s.contains('\u{FFFD}')) => {
                "its name is not UTF-8, so it cannot be matched against the archive snapshot"
                    .to_string()
            }
            None => rules.why_not_archived(&crel, &cabs, &meta),
        };
        plan.kept.push(Kept {
            path: shown,
            files: ft.is_dir().then(|| count_files(&cabs)),
            why,
        });
    }
    Ok(())
}

impl<'a> Rules<'a> {
    fn new(ws: &'a Workspace, dir: &Path, warnings: &'a [String]) -> Self {
        let mut b = ignore::overrides::OverrideBuilder::new(&ws.root);
        let ok = ws
            .config
            .ignore
            .iter()
            .all(|p| b.add(&format!("!{p}")).is_ok());
        let overrides = if ok { b.build().ok() } else { None };
        let tracked_now = match workspace::walker(ws, dir) {
            Ok(walk) => walk
                .flatten()
                .filter_map(|e| e.path().strip_prefix(&ws.root).ok().map(Path::to_path_buf))
                .collect(),
            Err(_) => HashSet::new(),
        };
        Rules {
            track: Track::of(ws).unwrap_or_default(),
            overrides,
            tracked_now,
            warnings,
        }
    }

    /// Why an entry is not in the archive snapshot, most specific rule first.
    fn why_not_archived(&self, rel: &Path, abs: &Path, meta: &fs::Metadata) -> String {
        let ft = meta.file_type();
        let name = rel.file_name().unwrap_or_default();
        let skipped = format!("skipped {}:", rel.display());
        let why = if name == ".git" || name == workspace::REPO_DIR {
            "snap never stores .git or .snap directories".to_string()
        } else if !(ft.is_file() || ft.is_dir() || ft.is_symlink()) {
            "not a regular file, directory or symlink".to_string()
        } else if !self.track.may_track(rel, ft.is_dir()) {
            "outside the track list of snap.toml".to_string()
        } else if self
            .overrides
            .as_ref()
            .is_some_and(|o| o.matched(abs, ft.is_dir()).is_ignore())
        {
            "ignored by the ignore list of snap.toml".to_string()
        } else if let Some(w) = self.warnings.iter().find(|w| w.starts_with(&skipped)) {
            format!("the archive commit could not read it ({w})")
        } else if self.tracked_now.contains(rel) {
            "created after the archive snapshot was taken".to_string()
        } else {
            format!("ignored by {}", workspace::IGNORE_FILE)
        };
        format!("{why}, not in the archive snapshot")
    }
}

/// Deletes what `plan` found in the archive snapshot, checking each entry's
/// identity again right before it goes; then removes emptied directories.
pub fn apply(plan: Plan) -> Cleaned {
    let mut out = Cleaned {
        deleted: 0,
        kept: plan.kept,
    };
    for (abs, shown, id) in plan.delete {
        let now = fs::symlink_metadata(&abs).ok().and_then(|m| {
            if m.file_type().is_file() {
                Some(Identity::File {
                    size: m.len(),
                    mtime_ns: mtime_of(&m),
                })
            } else if m.file_type().is_symlink() {
                link_target(&abs).map(Identity::Symlink)
            } else {
                None
            }
        });
        if now.as_ref() != Some(&id) {
            out.kept.push(Kept {
                path: shown,
                files: None,
                why: "changed while --clean ran, not in the archive snapshot".into(),
            });
            continue;
        }
        match fs::remove_file(&abs) {
            Ok(()) => out.deleted += 1,
            Err(e) => out.kept.push(Kept {
                path: shown,
                files: None,
                why: format!("could not be deleted: {e}"),
            }),
        }
    }
    // rmdir only: a directory that still holds anything stays.
    for d in plan.dirs {
        let _ = fs::remove_dir(&d);
    }
    out
}

fn mtime_of(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// A symlink's target as `Repo::files` shows it; None if it is not UTF-8.
fn link_target(path: &Path) -> Option<String> {
    let t = fs::read_link(path).ok()?;
    t.to_str()
        .filter(|s| !s.contains('\u{FFFD}'))
        .map(str::to_string)
}

/// Regular files below `dir` (not following symlinks), for messages.
fn count_files(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_lines_name_the_path_and_the_reason() {
        let k = Kept {
            path: "logs/debug.bin".into(),
            files: None,
            why: "ignored by .snapignore, not in the archive snapshot".into(),
        };
        assert_eq!(
            k.to_string(),
            "kept logs/debug.bin: ignored by .snapignore, not in the archive snapshot"
        );
        let d = Kept {
            path: "out/wandb/".into(),
            files: Some(3),
            why: "x".into(),
        };
        assert_eq!(d.to_string(), "kept out/wandb/ (3 files): x");
    }

    fn info(path: &str, kind: &'static str, size: u64, mtime_ns: i64) -> FileInfo {
        FileInfo {
            path: path.into(),
            kind,
            size,
            mode: 0o644,
            mtime_ns,
            chunks: 1,
            target: None,
            tensors: None,
        }
    }

    /// A workspace in a temporary directory; returns it and the real path of `out/`.
    fn workspace(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Workspace, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        for (rel, data) in files {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, data).unwrap();
        }
        fs::create_dir_all(root.join("out")).unwrap();
        let ws = Workspace {
            repo: root.join(".snap"),
            root: root.clone(),
            config: Default::default(),
        };
        let out = root.join("out").canonicalize().unwrap();
        (tmp, ws, out)
    }

    fn stat(path: &Path) -> (u64, i64) {
        let m = fs::symlink_metadata(path).unwrap();
        (m.len(), mtime_of(&m))
    }

    #[test]
    fn a_file_changed_since_the_archive_stays() {
        let (_tmp, ws, out) = workspace(&[("out/same.bin", b"same"), ("out/grew.bin", b"v1")]);
        let (size, mtime) = stat(&out.join("same.bin"));
        let (_, grew_mtime) = stat(&out.join("grew.bin"));
        let archived = Archived::new(&[
            info("out", "dir", 0, 0),
            info("out/same.bin", "file", size, mtime),
            // As the archive saw it: one byte shorter.
            info("out/grew.bin", "file", 1, grew_mtime),
        ]);
        let plan = plan(&ws, &out, &archived, &[]).unwrap();
        let done = apply(plan);
        assert_eq!(done.deleted, 1);
        assert!(!out.join("same.bin").exists());
        assert_eq!(fs::read(out.join("grew.bin")).unwrap(), b"v1");
        assert_eq!(
            done.kept,
            [Kept {
                path: "out/grew.bin".into(),
                files: None,
                why: "changed since the archive snapshot (size or mtime differs)".into(),
            }]
        );
    }

    #[test]
    fn a_file_changed_between_plan_and_apply_stays() {
        let (_tmp, ws, out) = workspace(&[("out/a.bin", b"abc")]);
        let (size, mtime) = stat(&out.join("a.bin"));
        let archived = Archived::new(&[
            info("out", "dir", 0, 0),
            info("out/a.bin", "file", size, mtime),
        ]);
        let plan = plan(&ws, &out, &archived, &[]).unwrap();
        fs::write(out.join("a.bin"), b"abcd").unwrap();
        let done = apply(plan);
        assert_eq!(done.deleted, 0);
        assert_eq!(fs::read(out.join("a.bin")).unwrap(), b"abcd");
        assert!(done.kept[0].why.starts_with("changed while --clean ran"));
    }

    #[test]
    fn symlinks_go_only_with_the_same_target_and_dirs_only_when_empty() {
        let (_tmp, ws, out) = workspace(&[("out/d/x.txt", b"x"), ("out/e/new.txt", b"n")]);
        std::os::unix::fs::symlink("d/x.txt", out.join("same")).unwrap();
        std::os::unix::fs::symlink("elsewhere", out.join("moved")).unwrap();
        let (size, mtime) = stat(&out.join("d/x.txt"));
        let mut archived = vec![
            info("out", "dir", 0, 0),
            info("out/d", "dir", 0, 0),
            info("out/e", "dir", 0, 0),
            info("out/d/x.txt", "file", size, mtime),
            info("out/same", "symlink", 0, 0),
            info("out/moved", "symlink", 0, 0),
        ];
        archived[4].target = Some("d/x.txt".into());
        archived[5].target = Some("somewhere".into());
        let done = apply(plan(&ws, &out, &Archived::new(&archived), &[]).unwrap());
        assert_eq!(done.deleted, 2);
        let mut left: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // d/ emptied and removed; e/ still holds a file the archive lacks.
        assert_eq!(left, ["e", "moved"]);
        let whys: Vec<&str> = done.kept.iter().map(|k| k.why.as_str()).collect();
        assert_eq!(
            whys,
            [
                "created after the archive snapshot was taken, not in the archive snapshot",
                "changed since the archive snapshot (link target differs)",
            ]
        );
    }

    #[test]
    fn a_directory_the_archive_lacks_is_kept_whole() {
        let (_tmp, ws, out) = workspace(&[("out/a.txt", b"a"), ("out/b/c.txt", b"c")]);
        let done = apply(plan(&ws, &out, &Archived::new(&[]), &[]).unwrap());
        assert_eq!(done.deleted, 0);
        assert!(out.join("a.txt").exists() && out.join("b/c.txt").exists());
        assert_eq!(done.kept.len(), 1);
        assert_eq!(done.kept[0].path, "out/");
        assert_eq!(done.kept[0].files, Some(2));
    }

    #[test]
    fn names_that_are_not_utf8_match_nothing() {
        let a = Archived::new(&[info("out/a\u{FFFD}", "file", 1, 0)]);
        assert_eq!(a.get(Path::new("out/a\u{FFFD}")), None);
    }
}
