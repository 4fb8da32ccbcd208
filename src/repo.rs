//! `Repo`: opening and creating repositories, and one method per use case.
//! This is the whole API the CLI uses. Writers take the writer lock; readers
//! never do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::format::config::{ChunkerParams, RepoConfig};
use crate::format::note::Note;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::ops::cat;
use crate::ops::check::{self, CheckReport};
use crate::ops::commit::{self, CommitOptions, CommitSummary};
use crate::ops::diff::{self, Diff, DiffOptions, DiffRequest};
use crate::ops::forget;
use crate::ops::import;
use crate::ops::metrics::{self, Best, Direction, MetricRow, MetricsTable};
use crate::ops::pathspec::PathSpec;
use crate::ops::prune::{self, PruneOptions, PrunePlan};
use crate::ops::repair::{self, RepairReport};
use crate::ops::restore::{self, RestoreOptions, RestorePlan, RestoreSummary};
use crate::ops::retention::Policy;
use crate::ops::stats::{self, Stats};
use crate::ops::{resolve, show, suggest};
use crate::progress::Progress;
use crate::store::config as store_config;
use crate::store::index::{self, Backing, Index};
use crate::store::journal::{self, Journal};
use crate::store::lock::{SessionLock, WriterLock};
use crate::store::notes::{self, Notes};
use crate::store::publish;
use crate::store::read::PackFiles;
use crate::store::sync::{self, SyncReport};
use crate::store::{durable, refs, Layout};
use crate::workspace::{self, RepoPointer, Workspace};

mod remote;

pub use remote::{CloneReport, RemoteRepo};

/// Default time a writer waits for the lock before giving up.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

pub struct Repo {
    /// Repository files the index could not take in when opened (damaged
    /// snapshots, packs, tags): shown as warnings and reported by `check`.
    damaged: Vec<String>,
    layout: Layout,
    config: RepoConfig,
    index: Index,
    lock_wait: Duration,
}

/// A snapshot with the tags that name it.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub tags: Vec<String>,
}

/// The outcome of `forget`.
pub use crate::ops::forget::ForgetReport;

/// What `Repo::init_workspace` set up besides the repository.
#[derive(Clone, Debug)]
pub struct InitReport {
    /// The workspace a commit there snapshots.
    pub workspace: PathBuf,
    /// How its `snap.toml` points to the repository.
    pub pointer: RepoPointer,
    /// The `snap.toml` written (created or given a `repo` line), if any.
    pub wrote: Option<PathBuf>,
}

/// The outcome of importing one archive.
#[derive(Debug)]
pub struct Imported {
    pub zip: PathBuf,
    pub session: String,
    pub result: std::result::Result<CommitSummary, String>,
}

/// One entry of `snap show`, and its tensor count.
pub use crate::ops::show::{FileInfo, TensorCount};

/// Files whose tensors `snap show` counts, read from the stored header
/// (safetensors) or central directory and `data.pkl` / npy headers (zips).
pub use crate::ckpt::CHECKPOINT_EXTENSIONS;

impl Repo {
    /// Creates a repository at `path` (which must not already hold one).
    pub fn init(path: &Path, chunker: ChunkerParams, now_ns: i64) -> Result<Repo> {
        Repo::init_in(Layout::new(path), chunker, now_ns)
    }

    /// Creates a repository in `layout` (objects in its backend, which
    /// must not already hold one; local files in its root).
    pub fn init_in(layout: Layout, chunker: ChunkerParams, now_ns: i64) -> Result<Repo> {
        if store_config::exists(&layout) {
            return Err(Error::AlreadyExists {
                path: layout.root().to_path_buf(),
            });
        }
        chunker.validate()?;
        let mut rid = [0u8; 16];
        getrandom_fill(&mut rid);
        let config = RepoConfig {
            repo_id: rid.iter().map(|b| format!("{b:02x}")).collect(),
            created_ns: now_ns,
            chunker,
            zstd_level: 3,
            pack_target_size: 32 << 20,
        };
        store_config::create(&layout, &config)?;
        Repo::open_in(layout)
    }

    /// `snap init`: creates the repository at `path` for the workspace
    /// `ws_root` (both absolute; the workspace directory is created if
    /// missing) and, when the repository is not the workspace's `.snap/`,
    /// makes the workspace's `snap.toml` name it. The `snap.toml` check runs
    /// first, so a refusal creates nothing.
    pub fn init_workspace(
        path: &Path,
        ws_root: &Path,
        chunker: ChunkerParams,
        now_ns: i64,
    ) -> Result<(Repo, InitReport)> {
        let plan = workspace::plan_pointer(ws_root, path)?;
        if store_config::exists(&Layout::new(path)) {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        if !ws_root.is_dir() {
            std::fs::create_dir_all(ws_root).ctx("create the workspace directory", ws_root)?;
        }
        let repo = Repo::init(path, chunker, now_ns)?;
        let wrote = workspace::write_pointer(ws_root, path, plan)?;
        Ok((
            repo,
            InitReport {
                workspace: ws_root.to_path_buf(),
                pointer: plan,
                wrote,
            },
        ))
    }

    /// Opens an existing repository and brings its index up to date.
    pub fn open(path: &Path) -> Result<Repo> {
        Repo::open_in(Layout::new(path))
    }

    /// Opens the repository in `layout` and brings its index up to date.
    /// Opening is reading: it works on a read-only mount, a full disk and
    /// for a user who cannot write the repository (`open_index`).
    pub fn open_in(layout: Layout) -> Result<Repo> {
        let config = store_config::read(&layout)?;
        let (index, damaged) = open_index(&layout)?;
        Ok(Repo {
            damaged,
            layout,
            config,
            index,
            lock_wait: DEFAULT_LOCK_WAIT,
        })
    }

    /// Files found damaged when the repository was opened.
    pub fn damaged_on_open(&self) -> &[String] {
        &self.damaged
    }

    pub fn path(&self) -> &Path {
        self.layout.root()
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.lock_wait = wait;
    }

    /// Takes the writer lock, clears leftovers of crashed writers and
    /// re-syncs the index (another writer may have run since open). Missing
    /// `locks/` or `tmp/` are created first. Only here, holding the lock, is
    /// a damaged index file (or one of another schema) deleted and rebuilt:
    /// SQLite's `quick_check` runs first, since a damaged page a reader's
    /// queries did not touch shows only there, and every snapshot row must
    /// hold the record of its id.
    fn lock(&mut self, what: &str) -> Result<WriterLock> {
        Ok(self.lock_counting(what)?.0)
    }

    /// `lock`, also saying how many leftovers it removed from `tmp/`.
    fn lock_counting(&mut self, what: &str) -> Result<(WriterLock, usize)> {
        crate::store::failpoint::hit("repo:before-lock");
        for dir in self.layout.local_dirs() {
            if !dir.is_dir() {
                durable::create_dir_durable(&dir)?;
            }
        }
        let lock = WriterLock::acquire(&self.layout.locks_dir(), what, self.lock_wait)?;
        let removed = durable::clean_tmp(&self.layout.tmp_dir())?;
        let take = if self.writable_index()? {
            sync::Marked::Include
        } else {
            sync::Marked::Skip
        };
        sync::sync_with(&self.layout, &mut self.index, take)?;
        Ok((lock, removed))
    }

    /// Makes `self.index` the index file, open for writing and sound: a
    /// reader's fallback (read-only or in memory) is replaced by the file,
    /// and a damaged file is rebuilt. Called with the writer lock held.
    /// Returns true if the index was created anew (the sync that follows
    /// then takes in every pack, marked ones included: `sync::Marked`).
    fn writable_index(&mut self) -> Result<bool> {
        let path = self.layout.index();
        let mut created = false;
        if self.index.backing() != Backing::File {
            // A reader's fallback: open the file itself (migrating an index
            // of the previous schema, deleting and rebuilding a damaged or
            // older one, refusing a newer snap's), then check it like any
            // other: the fallback may have been for a damaged page.
            let (index, fresh) = Index::open(&path)?;
            self.index = index;
            created = fresh;
        }
        let damage = match self.index.damage()? {
            None if self.index.mismatched_snapshot_rows()? > 0 => {
                Some("snapshot rows that do not match their records".to_string())
            }
            found => found,
        };
        if damage.is_none() {
            return Ok(created);
        }
        // Release the file before deleting it; the sync that follows fills
        // the new one from the files.
        self.index = Index::in_memory(&path)?;
        Index::delete_files(&path)?;
        let (index, created) = Index::open(&path)?;
        self.index = index;
        Ok(created)
    }

    pub fn commit(
        &mut self,
        ws: &Workspace,
        opts: CommitOptions,
        progress: &dyn Progress,
    ) -> Result<CommitSummary> {
        for t in &opts.tags {
            refs::validate_tag(t)?;
        }
        let _lock = self.lock("commit")?;
        commit::commit(
            &self.layout,
            &self.config,
            &mut self.index,
            ws,
            opts,
            progress,
        )
    }

    /// Every snapshot, oldest first, with its tags.
    pub fn log(&self) -> Result<Vec<LogEntry>> {
        let tags = self.index.tags()?;
        Ok(self
            .index
            .snapshots()?
            .into_iter()
            .map(|(id, snapshot)| LogEntry {
                id,
                tags: tags
                    .iter()
                    .filter(|(_, t)| *t == id)
                    .map(|(n, _)| n.clone())
                    .collect(),
                snapshot,
            })
            .collect())
    }

    /// Resolves a REV. One that names only snapshots retention forgot says
    /// so: when, by which rule, and what is still there.
    pub fn resolve(&self, rev: &str) -> Result<(SnapshotId, Snapshot)> {
        let err = match resolve::resolve(rev, &self.index.snapshots()?, &self.index.tags()?) {
            Err(e @ Error::UnknownRev { .. }) => e,
            other => return other,
        };
        match self.forgotten() {
            Ok(journal) => Err(resolve::forgotten(rev, err, &journal.entries)),
            Err(_) => Err(err),
        }
    }

    /// The files of snapshot `id`.
    pub fn files(&self, id: &SnapshotId, snapshot: &Snapshot) -> Result<Vec<FileInfo>> {
        let packs = PackFiles::new(&self.layout);
        show::files(&self.index, &packs, &snapshot.root, &id.short())
    }

    /// How each file of snapshot `id` is stored: codecs, plain and stored
    /// bytes of its chunks (`snap ui`).
    pub fn file_storage(
        &self,
        id: &SnapshotId,
        snapshot: &Snapshot,
    ) -> Result<Vec<crate::ops::inspect::FileStorage>> {
        let packs = PackFiles::new(&self.layout);
        let label = format!("snapshot {}", id.short());
        crate::ops::inspect::file_storage(&self.index, &packs, &snapshot.root, &label)
    }

    /// The tensors of file `path` of snapshot `id`, or None when it is not a
    /// checkpoint snap can read (`snap ui`).
    pub fn tensors(
        &self,
        id: &SnapshotId,
        snapshot: &Snapshot,
        path: &str,
    ) -> Result<Option<Vec<crate::ckpt::Tensor>>> {
        let packs = PackFiles::new(&self.layout);
        crate::ops::inspect::tensors(&self.index, &packs, &snapshot.root, &id.short(), path)
    }

    /// Files added, removed and changed from `old` to `new`; with `tensors`,
    /// the tensors that changed inside checkpoint files.
    pub fn diff(&self, old: &str, new: &str, tensors: bool) -> Result<Diff> {
        self.diff_with(
            old,
            new,
            &DiffRequest {
                tensors,
                ..DiffRequest::default()
            },
        )
    }

    /// `diff` with what changed inside files (`req.content`: config keys,
    /// unified text, binary sizes) and only the paths `req.paths` names.
    pub fn diff_with(&self, old: &str, new: &str, req: &DiffRequest) -> Result<Diff> {
        let (a_id, a) = self.resolve(old)?;
        let (b_id, b) = self.resolve(new)?;
        let paths = req
            .paths
            .iter()
            .map(|p| PathSpec::parse(&req.base, p, &b_id.short()))
            .collect::<Result<Vec<_>>>()?;
        diff::diff(
            &self.index,
            &PackFiles::new(&self.layout),
            (&a_id.short(), &a.root),
            (&b_id.short(), &b.root),
            &DiffOptions {
                tensors: req.tensors,
                content: req.content,
                paths,
            },
        )
    }

    /// Adds a note to the snapshot `rev` names (`snap note`): a record of
    /// its own (`format::note`), durable when this returns. Empty text, or
    /// text over `format::note::MAX_TEXT` bytes, is refused.
    pub fn note(&mut self, rev: &str, text: &str, now_ns: i64) -> Result<(SnapshotId, Note)> {
        let what = "note";
        if text.trim().is_empty() {
            return Err(Error::Invalid {
                what,
                value: text.to_string(),
                why: "it is empty; give the text to attach, e.g. `snap note latest \"lr 1e-3 diverged\"`".into(),
            });
        }
        if text.len() > crate::format::note::MAX_TEXT {
            return Err(Error::Invalid {
                what,
                value: format!("{}...", text.chars().take(20).collect::<String>()),
                why: format!(
                    "{} bytes is over the {} byte limit; keep long notes in a file and commit it",
                    text.len(),
                    crate::format::note::MAX_TEXT
                ),
            });
        }
        let _lock = self.lock("note")?;
        let (id, _) = self.resolve(rev)?;
        let note = Note {
            snapshot: id,
            time_ns: now_ns,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            text: text.to_string(),
        };
        notes::write(&self.layout, &note)?;
        Ok((id, note))
    }

    /// Every note, by snapshot, and the note files that could not be read.
    pub fn notes(&self) -> Result<Notes> {
        notes::read_all(&self.layout)
    }

    /// Every snapshot with a metric, stored or forgotten by retention (from
    /// the journal), ordered by session start then epoch and step; and the
    /// journal files that could not be read (for a warning: their rows are
    /// missing).
    pub fn metric_rows(&self) -> Result<(Vec<MetricRow>, Vec<String>)> {
        let live = self.log()?;
        let journal = self.forgotten()?;
        Ok((metrics::all_rows(&live, &journal.entries), journal.damaged))
    }

    /// `snap metrics`: `sessions` (empty: all) by `names` (empty: every
    /// metric they have); unknown ones are an error listing what exists.
    pub fn metrics(
        &self,
        sessions: &[String],
        names: &[String],
    ) -> Result<(MetricsTable, Vec<String>)> {
        let (rows, damaged) = self.metric_rows()?;
        Ok((metrics::table(rows, sessions, names)?, damaged))
    }

    /// `snap best`: the best snapshot on `metric` over the sessions
    /// `session_glob` matches, stored or forgotten.
    pub fn best(
        &self,
        metric: &str,
        dir: Direction,
        session_glob: Option<&str>,
    ) -> Result<(Best, Vec<String>)> {
        let (rows, damaged) = self.metric_rows()?;
        Ok((metrics::best(&rows, metric, dir, session_glob)?, damaged))
    }

    /// Writes one file of a snapshot (`REV:PATH`) to `out`, chunk by chunk.
    /// `path` is relative to `base` (a directory of the snapshot, empty for
    /// the root) and may be a glob that matches exactly one file.
    pub fn cat(&self, rev: &str, base: &Path, path: &str, out: &mut dyn Write) -> Result<()> {
        let (id, snap) = self.resolve(rev)?;
        let packs = PackFiles::new(&self.layout);
        cat::cat(&self.index, &packs, (&id, &snap), base, path, out)
    }

    /// What restoring `rev` with `opts` would do, entry by entry; writes
    /// nothing (`snap restore --dry-run`).
    pub fn restore_plan(&self, rev: &str, mut opts: RestoreOptions) -> Result<RestorePlan> {
        let (id, snap) = self.resolve(rev)?;
        let packs = PackFiles::new(&self.layout);
        // A remote's view protects the local repository instead (`restore_from`).
        opts.protect
            .get_or_insert_with(|| self.layout.root().to_path_buf());
        restore::plan(&self.index, &packs, &snap.root, &id.short(), &opts)
    }

    /// Restores `rev` (whole or some paths) into `opts.target`.
    pub fn restore(
        &self,
        rev: &str,
        mut opts: RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreSummary> {
        let (id, snap) = self.resolve(rev)?;
        crate::store::failpoint::hit("restore:after-resolve");
        let packs = PackFiles::new(&self.layout);
        // A remote's view protects the local repository instead (`restore_from`).
        opts.protect
            .get_or_insert_with(|| self.layout.root().to_path_buf());
        let plan = restore::plan(&self.index, &packs, &snap.root, &id.short(), &opts)?;
        let summary = restore::apply(plan, &self.index, &packs, progress)?;
        let appeared = summary
            .appeared
            .iter()
            .map(|p| format!("  {p}: appeared after the restore started; not replaced"));
        if !summary.failed.is_empty() {
            return Err(Error::DamagedRestore {
                count: summary.failed.len(),
                list: summary
                    .failed
                    .iter()
                    .map(|(p, why)| format!("  {p} (snapshot {}): {why}", id.short()))
                    .chain(appeared)
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
        }
        if !summary.appeared.is_empty() {
            return Err(Error::Appeared {
                target: opts.target,
                count: summary.appeared.len(),
                list: appeared.collect::<Vec<_>>().join("\n"),
            });
        }
        Ok(summary)
    }

    /// Points tag `name` at `rev`; returns the snapshot id.
    pub fn tag(&mut self, name: &str, rev: &str) -> Result<SnapshotId> {
        refs::validate_tag(name)?;
        let _lock = self.lock("tag")?;
        let (id, _) = self.resolve(rev)?;
        publish::set_tag(&self.layout, &mut self.index, name, &id)?;
        Ok(id)
    }

    pub fn delete_tag(&mut self, name: &str) -> Result<()> {
        let _lock = self.lock("tag --delete")?;
        if !refs::delete_tag(&self.layout, name)? {
            let known: Vec<String> = self.index.tags()?.into_iter().map(|(n, _)| n).collect();
            return Err(suggest::no_such_tag(name, &known));
        }
        self.index.transaction(|tx| tx.delete_tag(name))
    }

    pub fn tags(&self) -> Result<Vec<(String, SnapshotId)>> {
        self.index.tags()
    }

    pub fn stats(&self) -> Result<Stats> {
        stats::stats(&self.index)
    }

    pub fn check(&self, read_data: bool, progress: &dyn Progress) -> Result<CheckReport> {
        let mut report = check::check(&self.layout, &self.index, read_data, progress)?;
        for d in &self.damaged {
            if !report.errors.contains(d) {
                report.errors.push(d.clone());
            }
        }
        Ok(report)
    }

    /// Applies a retention policy (`ops::forget`): computes the decision for
    /// every snapshot and, unless `dry_run`, journals the forgotten ones and
    /// then deletes their records (their data stays until `prune`).
    /// `this_run` is the session of the `snap run` applying retention: its
    /// pre-run, final and best stay.
    pub fn forget(
        &mut self,
        policy: &Policy,
        this_run: Option<&str>,
        dry_run: bool,
        now_ns: i64,
    ) -> Result<ForgetReport> {
        let _lock = if dry_run {
            None
        } else {
            Some(self.lock("forget")?)
        };
        sync::verify_complete(&self.layout, &self.index, "forget")?;
        forget::forget(
            &self.layout,
            &mut self.index,
            policy,
            this_run,
            dry_run,
            now_ns,
        )
    }

    /// What retention forgot, oldest first: journal entries whose snapshot
    /// is gone, each with the snapshot as it was, and the journal files that
    /// could not be read.
    pub fn forgotten(&self) -> Result<Journal> {
        let mut journal = journal::read_all(&self.layout)?;
        let live = self.index.snapshot_ids()?;
        journal.entries.retain(|(f, _)| !live.contains(&f.id));
        Ok(journal)
    }

    /// Marks packs no snapshot needs (deleting them once the grace period
    /// has passed since their mark) and repacks mostly-unused ones
    /// (`ops::prune`).
    pub fn prune(&mut self, opts: &PruneOptions, progress: &dyn Progress) -> Result<PrunePlan> {
        let _lock = if opts.dry_run {
            None
        } else {
            Some(self.lock("prune")?)
        };
        sync::verify_complete(&self.layout, &self.index, "prune")?;
        let roots: Vec<_> = self
            .index
            .snapshots()?
            .into_iter()
            .map(|(_, s)| s.root)
            .collect();
        let plan = prune::plan(&self.layout, &self.index, &roots, opts)?;
        if !opts.dry_run {
            prune::apply(
                self.config.pack_target_size,
                &self.layout,
                &mut self.index,
                &plan,
                opts.now_ns,
                progress,
            )?;
        }
        Ok(plan)
    }

    /// Imports zip archives, one snapshot and one session each, dated from
    /// the archive's name or else its newest entry. An archive that fails
    /// (damaged, unsafe paths) imports nothing and does not stop the others.
    pub fn import_zip(
        &mut self,
        ws: &Workspace,
        zips: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<Vec<Imported>> {
        let _lock = self.lock("import-zip")?;
        let mut out = Vec::new();
        for zip in zips {
            let session = import::session_name(zip);
            let result = import::import_zip(
                &self.layout,
                &self.config,
                &mut self.index,
                ws,
                zip,
                &session,
                progress,
            );
            out.push(Imported {
                zip: zip.clone(),
                session,
                result: result.map_err(|e| e.to_string()),
            });
        }
        Ok(out)
    }

    /// Marks `session` as running until the returned lock is dropped.
    pub fn lock_session(&self, session: &str) -> Result<SessionLock> {
        SessionLock::acquire(&self.layout.locks_dir(), session)
    }

    /// `snap check --repair` (`ops::repair`): under the writer lock, removes
    /// orphan temporaries, rebuilds the index, marks packs no snapshot
    /// references (deleting marked ones whose grace period in `opts` has
    /// passed), then checks; never deletes a snapshot record.
    pub fn repair(
        &mut self,
        opts: &PruneOptions,
        read_data: bool,
        progress: &dyn Progress,
    ) -> Result<RepairReport> {
        let (_lock, removed) = self.lock_counting("check --repair")?;
        let report = repair::repair(
            &self.layout,
            &self.config,
            &mut self.index,
            removed,
            opts,
            read_data,
            progress,
        )?;
        self.damaged = report.reindex.damaged.clone();
        Ok(report)
    }

    /// Rebuilds the index from packs, snapshots and refs and swaps it in.
    pub fn reindex(&mut self) -> Result<SyncReport> {
        let _lock = self.lock("reindex")?;
        sync::reindex(&self.layout, &mut self.index)
    }
}

/// A reader's index, in line with the files, and what the sync found
/// damaged. The file when it can be used: read-write, else read-only. A
/// reader never deletes it: if it is damaged or of another schema, or cannot
/// be reached, the command works from an index built in memory from the
/// files; if it is stale and cannot be written (read-only mount, full disk,
/// no permission), from a copy in memory brought up to date.
fn open_index(layout: &Layout) -> Result<(Index, Vec<String>)> {
    let path = layout.index();
    let mut notes = Vec::new();
    // An index built from nothing takes in every pack (`sync::Marked`).
    let (mut index, fresh) = match Index::open_shared(&path) {
        Ok(opened) => opened,
        Err(e @ Error::NewerIndex { .. }) => {
            notes.push(format!(
                "{e}\n  this command works from an index built in memory from the repository files"
            ));
            (Index::in_memory(&path)?, true)
        }
        Err(e) if index::is_damaged(&e) => {
            notes.push(format!(
                "index {} cannot be used ({e}); this command works from an index built in \
                 memory from the repository files, and the next writer (commit, or `snap \
                 reindex`) rebuilds the file",
                path.display()
            ));
            (Index::in_memory(&path)?, true)
        }
        Err(e) if index::cannot_write(&e) => (Index::in_memory(&path)?, true),
        Err(e) => return Err(e),
    };
    let take = if fresh {
        sync::Marked::Include
    } else {
        sync::Marked::Skip
    };
    let report = match sync::sync_with(layout, &mut index, take) {
        Err(e) if index.backing() != Backing::Memory && index::cannot_write(&e) => {
            index = index.copy_to_memory()?;
            sync::sync_with(layout, &mut index, take)?
        }
        Err(e) if index.backing() != Backing::Memory && index::is_damaged(&e) => {
            notes.push(format!(
                "index {} is damaged ({e}); this command works from an index built in memory \
                 from the repository files, and the next writer (commit, or `snap reindex`) \
                 rebuilds the file",
                path.display()
            ));
            index = Index::in_memory(&path)?;
            sync::sync_with(layout, &mut index, sync::Marked::Include)?
        }
        other => other?,
    };
    notes.extend(report.damaged);
    Ok((index, notes))
}

/// Fills `buf` with random bytes from the OS (for the repository id).
fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(buf).is_ok() {
            return;
        }
    }
    let seed = blake3::hash(
        format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes(),
    );
    buf.copy_from_slice(&seed.as_bytes()[..buf.len()]);
}
