//! The remote use cases of `Repo`: the list of remotes, push, pull, clone,
//! and `RemoteRepo`, a remote opened for reading (`log`, `show`, `restore
//! --from`) through its cache (`ops::remote`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Repo;
use crate::error::{Error, Result};
use crate::format::config::{self, RepoConfig};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::ops::prune::PruneOptions;
use crate::ops::remote::{prune, pull, push, PullReport, PushReport, RemotePruneReport};
use crate::ops::restore::{RestoreOptions, RestoreSummary};
use crate::progress::Progress;
use crate::store::backend::remote::{ObjectStoreBackend, RemoteUrl};
use crate::store::backend::{is_not_found, Backend, Kind};
use crate::store::lock::WriterLock;
use crate::store::{config as store_config, durable, remotes, sync, Layout};

/// A remote opened for reading: a `Repo` whose objects are the remote's
/// and whose index is the remote's cache.
pub struct RemoteRepo {
    pub name: String,
    pub url: RemoteUrl,
    repo: Repo,
    backend: ObjectStoreBackend,
}

impl RemoteRepo {
    /// The remote as a repository: `log`, `resolve`, `files`, `restore`.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// Bytes fetched from the remote since it was opened (the cache's
    /// sync included).
    pub fn bytes_fetched(&self) -> u64 {
        self.backend.traffic().bytes_fetched.load(Ordering::Relaxed)
    }

    /// Requests sent since it was opened.
    pub fn requests(&self) -> u64 {
        self.backend.traffic().requests.load(Ordering::Relaxed)
    }
}

/// What `snap clone` did.
#[derive(Debug)]
pub struct CloneReport {
    pub workspace: PathBuf,
    pub repository: PathBuf,
    pub pull: PullReport,
    /// The latest snapshot restored into the workspace, if there is one.
    pub restored: Option<(SnapshotId, RestoreSummary)>,
}

/// Connects to `url` and checks that it answers.
fn connect(url: &RemoteUrl, create: bool) -> Result<ObjectStoreBackend> {
    let backend = ObjectStoreBackend::connect(url, create)?;
    backend.probe()?;
    Ok(backend)
}

fn no_repository(name: &str, url: &RemoteUrl) -> Error {
    Error::Other(format!(
        "remote {name} ({url}) holds no snap repository yet\n  push to it first with `snap push {name}`"
    ))
}

/// Opens the cache `cache` of the remote behind `backend` as a repository.
fn open_view(name: &str, cache: PathBuf, backend: &ObjectStoreBackend) -> Result<Repo> {
    let layout = Layout::with_backend(cache, Arc::new(backend.clone()));
    for dir in layout.local_dirs() {
        durable::create_dir_durable(&dir)?;
    }
    if !store_config::exists(&layout) {
        return Err(no_repository(name, backend.url()));
    }
    let mut repo = Repo::open_in(layout)?;
    // Another machine's prune may have marked packs this cache took in.
    sync::drop_marked(&repo.layout, &mut repo.index)?;
    Ok(repo)
}

/// The remote prune lock, held until dropped (`ops::remote::prune`).
struct RemoteLockGuard<'a> {
    backend: &'a ObjectStoreBackend,
}

impl Drop for RemoteLockGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.backend.drop_lock(prune::LOCK) {
            eprintln!(
                "warning: could not release the remote lock {}: {e}\n  the next `snap prune --remote` will refuse until it is removed with --break-lock",
                self.backend.lock_location(prune::LOCK)
            );
        }
    }
}

/// Takes the prune lock of remote `name`, breaking a held one if
/// `break_lock` (returning its holder).
fn take_prune_lock<'a>(
    name: &str,
    backend: &'a ObjectStoreBackend,
    break_lock: bool,
) -> Result<(RemoteLockGuard<'a>, Option<String>)> {
    let body = format!(
        "snap prune --remote on host {}, pid {}, since {}\n",
        gethostname::gethostname().to_string_lossy(),
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let holder = |b: &[u8]| match String::from_utf8_lossy(b).trim() {
        "" => "a holder that left no name".to_string(),
        h => h.to_string(),
    };
    let mut broken = None;
    for attempt in 0..2 {
        match backend.take_lock(prune::LOCK, body.as_bytes())? {
            None => return Ok((RemoteLockGuard { backend }, broken)),
            Some(held) if break_lock && attempt == 0 => {
                broken = Some(holder(&held));
                backend.drop_lock(prune::LOCK)?;
            }
            Some(held) => {
                return Err(Error::RemoteLocked {
                    remote: name.to_string(),
                    holder: holder(&held),
                    lock: backend.lock_location(prune::LOCK),
                })
            }
        }
    }
    unreachable!("the loop returns on its second attempt")
}

impl Repo {
    /// `snap remote add`: remembers `url` as remote `name` (nothing is sent).
    pub fn remote_add(&self, name: &str, url: &str) -> Result<RemoteUrl> {
        let url = RemoteUrl::parse(url)?;
        remotes::add(&self.layout, name, &url)?;
        Ok(url)
    }

    /// The URL of remote `name`; an error naming the known remotes if there
    /// is no such remote.
    pub fn remote_url(&self, name: &str) -> Result<RemoteUrl> {
        remotes::get(&self.layout, name)
    }

    /// Every remote, by name.
    pub fn remotes(&self) -> Result<Vec<(String, RemoteUrl)>> {
        remotes::list(&self.layout)
    }

    /// `snap remote remove`: forgets remote `name` and drops its cache
    /// (nothing on the remote is touched).
    pub fn remote_remove(&self, name: &str) -> Result<()> {
        if remotes::remove(&self.layout, name)? {
            return Ok(());
        }
        remotes::get(&self.layout, name).map(|_| ())
    }

    /// Opens remote `name` for reading, its cache brought up to date.
    pub fn open_remote(&self, name: &str) -> Result<RemoteRepo> {
        let url = remotes::get(&self.layout, name)?;
        let backend = connect(&url, false)?;
        let repo = open_view(name, remotes::cache_dir(&self.layout, name), &backend)?;
        Ok(RemoteRepo {
            name: name.to_string(),
            url,
            repo,
            backend,
        })
    }

    /// The snapshots `revs` name here (all of them when empty).
    fn resolve_all(&self, revs: &[String]) -> Result<Vec<(SnapshotId, Snapshot)>> {
        if revs.is_empty() {
            return self.index.snapshots();
        }
        let mut out: Vec<(SnapshotId, Snapshot)> = Vec::new();
        for rev in revs {
            let found = self.resolve(rev)?;
            if !out.iter().any(|(id, _)| *id == found.0) {
                out.push(found);
            }
        }
        Ok(out)
    }

    /// `snap push`: sends remote `name` the snapshots `revs` name (all when
    /// empty), what they need that it lacks, and the tags naming them.
    pub fn push(&mut self, name: &str, revs: &[String]) -> Result<PushReport> {
        self.push_with(name, revs, &crate::progress::NoProgress)
    }

    /// `push`, reporting the bytes of packs sent to `progress`.
    pub fn push_with(
        &mut self,
        name: &str,
        revs: &[String],
        progress: &dyn Progress,
    ) -> Result<PushReport> {
        remotes::get(&self.layout, name)?;
        let _lock = self.lock("push")?;
        self.push_beside_commits_with(name, revs, progress)
    }

    /// The push of `snap run --push`: `push` without the writer lock, so
    /// that the runner's commits go on while it uploads. That is safe
    /// because a push only reads local data and writes the remote and its
    /// cache (serialised by the cache's own lock, which `push` takes too):
    /// commits only add packs, and a local prune marks packs before it
    /// deletes them (docs/remotes.md, "snap run --push"). A pack that a
    /// `prune --delete-now` deletes under it makes this push fail before
    /// it names anything, and the runner retries.
    pub fn push_beside_commits(&mut self, name: &str, revs: &[String]) -> Result<PushReport> {
        self.push_beside_commits_with(name, revs, &crate::progress::NoProgress)
    }

    /// `push_beside_commits`, reporting the bytes of packs sent to
    /// `progress`.
    fn push_beside_commits_with(
        &mut self,
        name: &str,
        revs: &[String],
        progress: &dyn Progress,
    ) -> Result<PushReport> {
        let url = remotes::get(&self.layout, name)?;
        let snaps = self.resolve_all(revs)?;
        let backend = connect(&url, true)?;
        if !backend.exists(Kind::Config, "") {
            let config = self.layout.backend().read(Kind::Config, "")?;
            backend.put(Kind::Config, "", &config)?;
        }
        let cache = remotes::cache_dir(&self.layout, name);
        let locks = Layout::new(&cache).locks_dir();
        std::fs::create_dir_all(&locks).map_err(|e| Error::io("create", &locks, e))?;
        let _cache_lock = WriterLock::acquire(&locks, "push", self.lock_wait)?;
        let mut view = open_view(name, cache, &backend)?;
        let mut report = PushReport {
            remote: name.to_string(),
            url: url.to_string(),
            ..PushReport::default()
        };
        push::push(
            &self.layout,
            &self.index,
            &view.layout,
            &mut view.index,
            &backend,
            &snaps,
            self.config.pack_target_size,
            progress,
            &mut report,
        )?;
        Ok(report)
    }

    /// `snap pull`: brings the snapshots `revs` name on remote `name` (all
    /// when empty) into this repository, with the data they need and the
    /// tags naming them, then syncs the index.
    pub fn pull(&mut self, name: &str, revs: &[String]) -> Result<PullReport> {
        self.pull_with(name, revs, &crate::progress::NoProgress)
    }

    /// `pull`, reporting the bytes of packs fetched to `progress`.
    pub fn pull_with(
        &mut self,
        name: &str,
        revs: &[String],
        progress: &dyn Progress,
    ) -> Result<PullReport> {
        let remote = self.open_remote(name)?;
        let _lock = self.lock("pull")?;
        let snaps = remote.repo.resolve_all(revs)?;
        let mut report = PullReport {
            remote: name.to_string(),
            url: remote.url.to_string(),
            ..PullReport::default()
        };
        pull::pull(
            &self.layout,
            &mut self.index,
            &remote.repo.layout,
            &remote.repo.index,
            &snaps,
            progress,
            &mut report,
        )?;
        self.damaged = sync::sync(&self.layout, &mut self.index)?.damaged;
        report.bytes_fetched = remote.bytes_fetched();
        report.requests = remote.requests();
        Ok(report)
    }

    /// `snap clone`: a workspace in `dir` (created; it must be empty) with
    /// its repository in `dir/.snap`, a copy of the remote at `url`
    /// (remembered as `origin`), its latest snapshot restored.
    pub fn clone_remote(url: &str, dir: &Path, progress: &dyn Progress) -> Result<CloneReport> {
        let parsed = RemoteUrl::parse(url)?;
        if dir.exists()
            && std::fs::read_dir(dir)
                .map_err(|e| Error::io("list", dir, e))?
                .next()
                .is_some()
        {
            return Err(Error::invalid(
                "clone directory",
                dir.display().to_string(),
                "exists and is not empty; name a new or empty directory",
            ));
        }
        let backend = connect(&parsed, false)?;
        let bytes = match backend.read(Kind::Config, "") {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Err(no_repository("origin", &parsed)),
            Err(e) => return Err(e),
        };
        let version = match bytes.get(..6) {
            Some(h) if &h[..4] == config::MAGIC => u16::from_le_bytes([h[4], h[5]]),
            _ => 0,
        };
        if version > config::VERSION {
            return Err(Error::NewerFormat {
                path: PathBuf::from(parsed.to_string()),
                found: version,
                supported: config::VERSION,
            });
        }
        let config = RepoConfig::decode(&bytes)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let repo_path = dir.join(".snap");
        store_config::create(&Layout::new(&repo_path), &config)?;
        let mut repo = Repo::open(&repo_path)?;
        repo.remote_add("origin", url)?;
        let pull = repo.pull_with("origin", &[], progress)?;
        let restored = match repo.index.snapshots()?.is_empty() {
            true => None,
            false => {
                let (id, _) = repo.resolve("latest")?;
                let opts = RestoreOptions {
                    target: dir.to_path_buf(),
                    ..RestoreOptions::default()
                };
                Some((id, repo.restore(&id.to_hex(), opts, progress)?))
            }
        };
        Ok(CloneReport {
            workspace: dir.to_path_buf(),
            repository: repo_path,
            pull,
            restored,
        })
    }

    /// `snap prune --remote`: marks the packs of remote `name` that no
    /// snapshot on it needs and deletes those marked a grace period ago,
    /// under the remote's prune lock (`ops::remote::prune`).
    pub fn prune_remote(
        &self,
        name: &str,
        opts: &PruneOptions,
        break_lock: bool,
        progress: &dyn Progress,
    ) -> Result<RemotePruneReport> {
        let url = remotes::get(&self.layout, name)?;
        let backend = connect(&url, false)?;
        if !backend.exists(Kind::Config, "") {
            return Err(no_repository(name, &url));
        }
        let cache = remotes::cache_dir(&self.layout, name);
        let locks = Layout::new(&cache).locks_dir();
        std::fs::create_dir_all(&locks).map_err(|e| Error::io("create", &locks, e))?;
        let _cache_lock = WriterLock::acquire(&locks, "prune --remote", self.lock_wait)?;
        let (_lock, lock_broken) = if opts.dry_run {
            (None, None)
        } else {
            let (guard, broken) = take_prune_lock(name, &backend, break_lock)?;
            (Some(guard), broken)
        };
        // Opened (and synced) with the lock held.
        let mut view = open_view(name, cache, &backend)?;
        if !view.damaged.is_empty() {
            return Err(Error::Incomplete {
                op: "prune --remote",
                count: view.damaged.len(),
                list: view
                    .damaged
                    .iter()
                    .map(|d| format!("  {d}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
        }
        let mut report = RemotePruneReport {
            remote: name.to_string(),
            url: url.to_string(),
            lock_broken,
            ..RemotePruneReport::default()
        };
        prune::prune(
            &view.layout,
            &mut view.index,
            &backend,
            view.config.pack_target_size,
            opts,
            progress,
            &mut report,
        )?;
        Ok(report)
    }

    /// `snap restore --from`: restores `rev` of `remote` into
    /// `opts.target`, fetching only the blobs the chosen files need (range
    /// reads of the remote's packs), each verified. Nothing is written into
    /// this repository.
    pub fn restore_from(
        &self,
        remote: &RemoteRepo,
        rev: &str,
        mut opts: RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreSummary> {
        opts.protect = Some(self.layout.root().to_path_buf());
        remote.repo.restore(rev, opts, progress)
    }
}
