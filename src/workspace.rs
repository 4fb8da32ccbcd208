//! Finding the repository and the workspace, and the workspace settings.
//!
//! The repository is `--repo`, else `SNAP_REPO`, else the `repo` key of the
//! nearest `snap.toml`, else the nearest `.snap/` upward from the current
//! directory. The workspace (what `commit` snapshots) is the directory that
//! holds that `snap.toml` or `.snap/`, else the current directory.
//!
//! `snap.toml` (optional):
//! ```toml
//! repo = "/mnt/archive/snap"      # a repository elsewhere, e.g. another disk
//! track = ["logs", "config", "*.pth"]   # default: everything; see `crate::track`
//! ignore = ["*.tmp", "wandb/"]    # gitignore syntax, like .snapignore
//! [retention]                     # defaults for `snap forget` and `snap run`
//! keep_sessions = 5               # training sessions whose pre-run, final, best, epochs stay
//! keep_epochs = 5                 # epoch snapshots kept in each of those
//! keep_commits = 10               # plain commits (no session) kept, newest first
//! keep_commits_within = "30d"     # and every plain commit younger than this
//! ```
//! `.snap/`, `.git/` and whatever `.snapignore` files exclude are never tracked.

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, IoContext, Result};

pub const CONFIG_FILE: &str = "snap.toml";
pub const IGNORE_FILE: &str = ".snapignore";
pub const REPO_DIR: &str = ".snap";

/// Contents of `snap.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// Repository directory, relative to the workspace or absolute.
    pub repo: Option<PathBuf>,
    /// Paths (from the workspace root) and patterns (gitignore-like) to
    /// track, parsed by `crate::track::Track`. Empty: everything.
    #[serde(default)]
    pub track: Vec<String>,
    /// Extra ignore patterns (gitignore syntax).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Retention defaults for `snap forget` (and the runner).
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// `[retention]` in `snap.toml`; command-line flags override each key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub keep_sessions: Option<usize>,
    pub keep_epochs: Option<usize>,
    pub keep_per_session: Option<usize>,
    pub keep_commits: Option<usize>,
    /// A duration such as "30d"; "none" keeps plain commits by count only.
    pub keep_commits_within: Option<String>,
    pub keep_tags: Option<Vec<String>>,
    /// A duration such as "7d".
    pub keep_within: Option<String>,
}

/// Where a command runs: the repository directory and the workspace.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub repo: PathBuf,
    pub root: PathBuf,
    pub config: WorkspaceConfig,
}

impl WorkspaceConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).ctx("read", path)?;
        toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            why: format!(
                "{}\n  see `snap help init` for the settings snap.toml accepts",
                e.message()
            ),
        })
    }
}

/// Nearest ancestor of `start` (inclusive) holding `snap.toml` or `.snap/`.
fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(CONFIG_FILE).is_file() || d.join(REPO_DIR).join("config").is_file())
        .map(Path::to_path_buf)
}

/// Resolves the repository and workspace for a command run in `cwd`.
pub fn discover(cli_repo: Option<&Path>, env_repo: Option<&Path>, cwd: &Path) -> Result<Workspace> {
    let root = find_root(cwd);
    let config = match &root {
        Some(r) if r.join(CONFIG_FILE).is_file() => WorkspaceConfig::load(&r.join(CONFIG_FILE))?,
        _ => WorkspaceConfig::default(),
    };
    let ws_root = root.clone().unwrap_or_else(|| cwd.to_path_buf());
    let repo = if let Some(p) = cli_repo.or(env_repo) {
        repo_dir_of(&absolute(cwd, p))
    } else if let Some(p) = &config.repo {
        repo_dir_of(&absolute(&ws_root, p))
    } else if let Some(r) = &root {
        r.join(REPO_DIR)
    } else {
        return Err(Error::NoRepository {
            start: cwd.to_path_buf(),
        });
    };
    Ok(Workspace {
        repo,
        root: ws_root,
        config,
    })
}

/// Accepts either a repository directory or a workspace holding `.snap/`.
fn repo_dir_of(p: &Path) -> PathBuf {
    if !p.join("config").is_file() && p.join(REPO_DIR).join("config").is_file() {
        p.join(REPO_DIR)
    } else {
        p.to_path_buf()
    }
}

/// `p` made absolute against `base`, with `.` and `..` folded lexically.
pub fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Where `cwd` sits in the workspace's snapshots: its path relative to
/// the workspace root, or empty (the snapshot root) when `cwd` is not inside
/// the workspace. Paths given to `snap cat` and `snap restore` (into the
/// workspace) are relative to it, as in git.
pub fn snapshot_dir(ws: &Workspace, cwd: &Path) -> PathBuf {
    cwd.strip_prefix(&ws.root)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the walker that lists what a commit tracks under `dir`.
pub fn walker(ws: &Workspace, dir: &Path) -> Result<ignore::Walk> {
    let mut overrides = ignore::overrides::OverrideBuilder::new(&ws.root);
    for pat in &ws.config.ignore {
        overrides
            .add(&format!("!{pat}"))
            .map_err(|e| Error::Config {
                path: ws.root.join(CONFIG_FILE),
                why: format!("ignore pattern '{pat}': {e}"),
            })?;
    }
    let overrides = overrides.build().map_err(|e| Error::Config {
        path: ws.root.join(CONFIG_FILE),
        why: e.to_string(),
    })?;
    let repo = ws.repo.clone();
    let mut b = ignore::WalkBuilder::new(dir);
    b.standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .parents(true)
        .add_custom_ignore_filename(IGNORE_FILE)
        .overrides(overrides)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let name = e.file_name();
            !(e.depth() > 0 && (name == REPO_DIR || name == ".git")) && e.path() != repo
        });
    Ok(b.build())
}

/// What `snap init` does about `snap.toml` so that commits in a workspace
/// reach its repository (`plan_pointer`, then `write_pointer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoPointer {
    /// The repository is the workspace's `.snap/`: nothing to write.
    NotNeeded,
    /// The workspace's `snap.toml` already names the repository.
    Present,
    /// Write a new `snap.toml` whose `repo` names the repository.
    Create,
    /// The existing `snap.toml` has no `repo` key: add one at its top.
    AddKey,
}

/// Decides how `snap.toml` in `ws_root` must point to `repo` (both
/// absolute). Refuses a repository that is the workspace itself, and a
/// `snap.toml` that already names another repository (it is the user's
/// setting: snap does not overwrite it).
pub fn plan_pointer(ws_root: &Path, repo: &Path) -> Result<RepoPointer> {
    if same_dir(ws_root, repo) {
        return Err(Error::invalid(
            "repository",
            repo.display().to_string(),
            format!(
                "is the workspace directory itself; use {} or a directory outside the workspace",
                ws_root.join(REPO_DIR).display()
            ),
        ));
    }
    let path = ws_root.join(CONFIG_FILE);
    if !path.exists() {
        return Ok(if same_dir(&ws_root.join(REPO_DIR), repo) {
            RepoPointer::NotNeeded
        } else {
            RepoPointer::Create
        });
    }
    let config = WorkspaceConfig::load(&path)?;
    match &config.repo {
        Some(p) if same_dir(&repo_dir_of(&absolute(ws_root, p)), repo) => Ok(RepoPointer::Present),
        Some(p) => Err(Error::Config {
            path,
            why: format!(
                "its `repo` names {}, so commits in {} go there, not to {}\n  \
                 remove that line first, or give `snap init --workspace` another directory",
                p.display(),
                ws_root.display(),
                repo.display()
            ),
        }),
        None if same_dir(&ws_root.join(REPO_DIR), repo) => Ok(RepoPointer::NotNeeded),
        None => Ok(RepoPointer::AddKey),
    }
}

/// Carries out `plan` for `ws_root`; returns the file written, if any. An
/// existing `snap.toml` is replaced atomically, its text kept below the
/// new `repo` line.
pub fn write_pointer(ws_root: &Path, repo: &Path, plan: RepoPointer) -> Result<Option<PathBuf>> {
    let path = ws_root.join(CONFIG_FILE);
    let line = format!(
        "repo = {}\n",
        toml::Value::String(repo.to_string_lossy().into_owned())
    );
    let (text, perms) = match plan {
        RepoPointer::NotNeeded | RepoPointer::Present => return Ok(None),
        RepoPointer::Create => (
            format!(
                "# snap workspace settings (see `snap help init`)\n{line}\
                 # track = [\"logs\", \"models\", \"*.pth\"]\n# ignore = [\"*.tmp\"]\n"
            ),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        ),
        RepoPointer::AddKey => {
            let old = fs::read_to_string(&path).ctx("read", &path)?;
            let perms = fs::metadata(&path).ctx("stat", &path)?.permissions();
            (format!("{line}{old}"), perms)
        }
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".snap.toml.")
        .tempfile_in(ws_root)
        .ctx("create a temporary file in", ws_root)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).ctx("write", tmp.path())?;
    fs::set_permissions(tmp.path(), perms).ctx("set permissions of", tmp.path())?;
    tmp.persist(&path)
        .map_err(|e| Error::io("write", &path, e.error))?;
    Ok(Some(path))
}

/// True if `a` and `b` name the same directory: equal paths, or equal once
/// symlinks are resolved (when both exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}
