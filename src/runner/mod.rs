//! `snap run`: the training runner.
//!
//! 0. The caller has installed SIGINT, SIGTERM and SIGHUP handlers (`interrupt`)
//!    before opening the repository: from then on a signal never kills the
//!    runner, it is recorded (and later forwarded to the child).
//! 1. Archive: commit the workspace as the session's first snapshot (what the
//!    zip archive did), then delete from the `--clean` directories exactly
//!    what that snapshot holds (`clean`). A signal before this point: the
//!    child is not started, the final snapshot records that.
//! 2. Start the child (`child`) in its own process group with `SNAP_SESSION` and
//!    `SNAP_REPO` set, stdin from /dev/null if ours is a terminal. Its stdout
//!    and stderr pass through byte for byte as they arrive (and into
//!    `--capture`); `SNAP {...}` lines are epoch signals. A watcher thread
//!    polls `--watch` files and `--metrics` lines.
//! 3. This thread turns epoch signals into commits, in arrival order, while
//!    the child keeps training; `SESSION/best` and `best` follow the best
//!    metric. SIGINT and SIGTERM are forwarded to the child.
//! 4. When the child ends: a final snapshot records the outcome, retention
//!    (forget + prune) runs, and the caller exits with the child's status.
//!
//! While it runs, the session is marked running (a flock), so retention in
//! any process keeps all its snapshots.

pub mod child;
pub mod clean;
pub mod global_best;
pub mod interrupt;
pub mod notify;
pub mod signals;
pub mod watch;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::id::SnapshotId;
use crate::ops::commit::{now_ns, CommitOptions};
use crate::ops::prune::PruneOptions;
use crate::ops::retention::{self, Policy};
use crate::progress::{NoProgress, Progress};
use crate::repo::Repo;
use crate::store::lock::SessionLock;
use crate::store::refs;
use crate::units;
use crate::workspace::Workspace;
use child::command_line;
pub use interrupt::Interrupts;
use signals::{improves, Direction, EpochEvent};

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub command: Vec<OsString>,
    /// Directory the child starts in.
    pub cwd: PathBuf,
    pub session: String,
    pub watch: Vec<String>,
    pub best: Option<(String, Direction)>,
    pub metrics_file: Option<PathBuf>,
    /// Absolute directories inside the workspace to empty after the archive.
    pub clean: Vec<PathBuf>,
    /// Absolute path of a file that also receives the child's output.
    pub capture: Option<PathBuf>,
    pub archive: bool,
    /// Retention at the end; `None` for `--no-retention`.
    pub policy: Option<Policy>,
    /// How often the watcher polls.
    pub poll: Duration,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunReport {
    pub session: String,
    pub exit_code: i32,
    pub outcome: String,
    pub interrupted: bool,
    pub snapshots: Vec<String>,
    pub best: Option<(String, f64)>,
    /// Whether the repository-wide `best` tag now names this run's best.
    pub global_best: bool,
    /// What retention did: "applied", or why it was skipped.
    pub retention: String,
    pub forgotten: usize,
    /// The snapshots retention forgot, oldest first.
    pub forgotten_snapshots: Vec<ForgottenSnapshot>,
    pub bytes_freed: u64,
    /// Commits or steps that failed; the run went on.
    pub errors: Vec<String>,
    /// The command's stdout did not end with a newline (the CLI starts its
    /// own output on a new line).
    #[serde(skip)]
    pub stdout_ends_mid_line: bool,
}

/// One snapshot retention forgot at the end of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ForgottenSnapshot {
    pub id: String,
    pub session: Option<String>,
    pub epoch: Option<u64>,
    pub logical_bytes: u64,
    pub reason: String,
}

/// At most this many "kept" warnings per --clean directory.
const MAX_KEPT_LINES: usize = 50;

/// Runs a training command as a session. `interrupts` must be installed
/// before the repository is opened (see `interrupt`). `progress` sees the
/// archive commit (the others are quick or happen while the command prints).
/// `note` receives progress lines for the user (the CLI prints them to
/// stderr).
pub fn run(
    repo: &mut Repo,
    ws: &Workspace,
    opts: RunOptions,
    interrupts: &Interrupts,
    progress: &dyn Progress,
    note: &dyn Fn(&str),
) -> Result<RunReport> {
    let clean = check_options(ws, &opts)?;
    let running = repo.lock_session(&opts.session)?;
    let mut r = Runner::new(repo, ws, &opts)?;
    if let Some(sig) = interrupts.received() {
        note(&format!(
            "interrupted by signal {sig} before the run started: nothing was committed"
        ));
        r.report.exit_code = 128 + sig;
        r.report.outcome = "interrupted before the run started".into();
        r.report.interrupted = true;
        return Ok(r.report);
    }
    if opts.archive {
        r.archive(&clean, interrupts, progress, note)?;
    }
    if let Some(sig) = interrupts.received() {
        note(&format!(
            "interrupted by signal {sig} before the command started: not starting it"
        ));
        let outcome = "interrupted before the command started".to_string();
        return Ok(r.finish(running, 128 + sig, outcome, true, note));
    }

    let capture = opts
        .capture
        .as_ref()
        .map(|p| {
            File::create(p)
                .ctx("create", p)
                .map(|f| Arc::new(Mutex::new(f)))
        })
        .transpose()?;
    // Before the command starts, so that nothing it writes counts as "already there".
    let watcher = watch::Watcher::new(ws, &opts.watch, opts.metrics_file.clone())?;
    let listener = notify::Listener::bind();
    let mut cmd = child::command(&opts, r.repo.path());
    if let Some(l) = &listener {
        cmd.env(notify::ENV, l.path());
    }
    let spawned = match cmd.spawn() {
        Ok(spawned) => spawned,
        Err(e) => {
            // Recorded, but no session for retention, and no retention.
            note(&format!(
                "error: cannot start {}: {e}",
                command_line(&opts.command)
            ));
            r.not_started = true;
            let code = child::spawn_error_code(&e);
            return Ok(r.finish(running, code, format!("could not start: {e}"), false, note));
        }
    };
    let ended = child::supervise(
        spawned,
        watcher,
        listener,
        &opts,
        capture,
        interrupts,
        &mut |e| match e {
            child::Event::Epoch(e) => r.epoch(e, note),
            // The command committed into the session itself: rank it now.
            child::Event::Committed(_) => r.update_best(note),
        },
    )?;
    let was_interrupted = interrupts.received().is_some();
    let (code, outcome) = child::describe(ended.status, was_interrupted);
    r.report.stdout_ends_mid_line = ended.stdout_ends_mid_line;
    Ok(r.finish(running, code, outcome, was_interrupted, note))
}

/// Checks what can be checked before anything is committed or started:
/// the session name, the command, and every `--clean` directory (returned
/// as real paths).
fn check_options(ws: &Workspace, opts: &RunOptions) -> Result<Vec<PathBuf>> {
    refs::validate_tag(&format!("{}/best", opts.session)).map_err(|_| {
        Error::invalid(
            "session",
            &opts.session,
            "use letters, digits and . _ - (it names the tag SESSION/best)",
        )
    })?;
    if opts.command.is_empty() {
        return Err(Error::invalid(
            "command",
            "",
            "give the training command after --, e.g. snap run -- python train.py",
        ));
    }
    if !opts.archive && !opts.clean.is_empty() {
        return Err(Error::invalid(
            "--clean",
            display_dirs(&opts.clean),
            "cannot be used with --no-archive: --clean deletes only files the archive \
             snapshot holds; drop --no-archive, or empty the directory yourself",
        ));
    }
    opts.clean.iter().map(|d| clean_target(ws, d)).collect()
}

struct Runner<'a> {
    repo: &'a mut Repo,
    ws: &'a Workspace,
    opts: &'a RunOptions,
    report: RunReport,
    last_epoch: Option<u64>,
    best: Option<(SnapshotId, f64)>,
    /// The command could not be started.
    not_started: bool,
    /// The session's snapshots from earlier runs of the same name.
    before: HashSet<SnapshotId>,
}

/// Label of a run's pre-run and final snapshots: the `--best` metric and
/// its direction (`val_loss:min`), so a later run knows on what the
/// repository-wide `best` was chosen.
pub const BEST_METRIC_LABEL: &str = "best_metric";

fn best_label(opts: &RunOptions) -> Option<String> {
    opts.best.as_ref().map(|(metric, dir)| {
        let d = match dir {
            Direction::Max => "max",
            Direction::Min => "min",
        };
        format!("{metric}:{d}")
    })
}

/// Where in training a snapshot is taken; either may be unknown.
#[derive(Clone, Copy, Debug, Default)]
struct At {
    epoch: Option<u64>,
    step: Option<u64>,
}

impl At {
    /// `epoch 3`, `step 500`, `epoch 0, step 300`; None when neither is known.
    fn describe(&self) -> Option<String> {
        match (self.epoch, self.step) {
            (Some(e), Some(s)) => Some(format!("epoch {e}, step {s}")),
            (Some(e), None) => Some(format!("epoch {e}")),
            (None, Some(s)) => Some(format!("step {s}")),
            (None, None) => None,
        }
    }
}

impl<'a> Runner<'a> {
    fn new(repo: &'a mut Repo, ws: &'a Workspace, opts: &'a RunOptions) -> Result<Self> {
        let before = repo
            .log()?
            .into_iter()
            .filter(|e| e.snapshot.session.as_deref() == Some(opts.session.as_str()))
            .map(|e| e.id)
            .collect();
        Ok(Runner {
            repo,
            ws,
            opts,
            report: RunReport {
                session: opts.session.clone(),
                ..Default::default()
            },
            last_epoch: None,
            best: None,
            not_started: false,
            before,
        })
    }

    /// The pre-run snapshot (what the zip archive did), then `--clean`.
    fn archive(
        &mut self,
        clean: &[PathBuf],
        interrupts: &Interrupts,
        progress: &dyn Progress,
        note: &dyn Fn(&str),
    ) -> Result<()> {
        let opts = self.opts;
        let mut labels = BTreeMap::new();
        labels.insert(
            retention::SIGNAL_LABEL.to_string(),
            retention::ARCHIVE_SIGNAL.to_string(),
        );
        if let Some(best) = best_label(opts) {
            labels.insert(BEST_METRIC_LABEL.to_string(), best);
        }
        if !clean.is_empty() {
            // The only copy of what --clean deletes: retention keeps it as
            // long as its session is kept.
            labels.insert(
                retention::CLEANED_LABEL.to_string(),
                display_dirs(&opts.clean),
            );
        }
        let (id, warnings) = self.commit_at(
            At::default(),
            BTreeMap::new(),
            labels,
            Some(format!("before run: {}", command_line(&opts.command))),
            progress,
            note,
        )?;
        if !clean.is_empty() {
            self.clean(clean, id, &warnings, interrupts, note)?;
        }
        Ok(())
    }
}

impl Runner<'_> {
    /// The end of every run that got as far as the archive: the final
    /// snapshot with the outcome, best tags, then (with the session no longer
    /// marked running) retention.
    fn finish(
        mut self,
        running: SessionLock,
        code: i32,
        outcome: String,
        interrupted: bool,
        note: &dyn Fn(&str),
    ) -> RunReport {
        self.report.exit_code = code;
        self.report.outcome = outcome.clone();
        self.report.interrupted = interrupted;
        let mut labels = BTreeMap::new();
        labels.insert("outcome".to_string(), outcome.clone());
        labels.insert("exit_code".to_string(), code.to_string());
        labels.insert("interrupted".to_string(), interrupted.to_string());
        labels.insert("command".to_string(), command_line(&self.opts.command));
        if self.not_started {
            labels.insert(retention::STARTED_LABEL.to_string(), "false".to_string());
        }
        if let Some(best) = best_label(self.opts) {
            labels.insert(BEST_METRIC_LABEL.to_string(), best);
        }
        if let Err(e) = self.commit_labelled(
            None,
            BTreeMap::new(),
            labels,
            Some(format!("run {outcome}")),
            note,
        ) {
            self.report.errors.push(format!("final snapshot: {e}"));
            note(&format!("error: final snapshot failed: {e}"));
        }
        self.update_best(note);
        drop(running);
        let policy = match (&self.opts.policy, self.not_started) {
            (_, true) => {
                self.report.retention = "skipped: the command did not start".into();
                return self.report;
            }
            (None, _) => {
                self.report.retention = "skipped: --no-retention".into();
                return self.report;
            }
            (Some(p), false) => p,
        };
        match self
            .repo
            .forget(policy, Some(&self.opts.session), false, now_ns())
        {
            Ok(f) => {
                self.report.retention = "applied".into();
                for (id, s) in &f.snapshots {
                    let Some(d) = f.decisions.iter().find(|d| d.id == *id && !d.keep) else {
                        continue;
                    };
                    self.report.forgotten_snapshots.push(ForgottenSnapshot {
                        id: id.to_hex(),
                        session: s.session.clone(),
                        epoch: s.epoch,
                        logical_bytes: s.summary.logical_bytes,
                        reason: d.reasons[0].to_string(),
                    });
                }
                self.report.forgotten = self.report.forgotten_snapshots.len();
                match self.repo.prune(&PruneOptions::new(now_ns()), &NoProgress) {
                    Ok(p) => self.report.bytes_freed = p.bytes_freed(),
                    Err(e) => self.report.errors.push(format!("prune: {e}")),
                }
            }
            Err(e) => {
                self.report.retention = format!("failed: {e}");
                self.report.errors.push(format!("retention: {e}"));
            }
        }
        self.report
    }

    /// Empties the `--clean` directories of what the archive snapshot
    /// `archive` holds; everything else stays, with a warning. Nothing
    /// more is deleted once a signal has arrived.
    fn clean(
        &mut self,
        dirs: &[PathBuf],
        archive: SnapshotId,
        warnings: &[String],
        interrupts: &Interrupts,
        note: &dyn Fn(&str),
    ) -> Result<()> {
        if interrupts.received().is_some() {
            return Ok(());
        }
        let (_, snapshot) = self.repo.resolve(&archive.to_hex())?;
        let archived = clean::Archived::new(&self.repo.files(&archive, &snapshot)?);
        for dir in dirs {
            // After Ctrl-C or SIGTERM, no further directory is touched.
            if interrupts.received().is_some() {
                break;
            }
            let plan = clean::plan(self.ws, dir, &archived, warnings)?;
            let shown = plan.dir.display().to_string();
            let done = clean::apply(plan);
            if done.kept.is_empty() {
                note(&format!(
                    "emptied {shown}: deleted {}, all held by the archive snapshot",
                    units::count(done.deleted as u64, "file")
                ));
                continue;
            }
            note(&format!(
                "cleaned {shown}: deleted {} held by the archive snapshot, \
                 kept {} it does not hold (warnings below)",
                units::count(done.deleted as u64, "file"),
                units::count(done.kept.len() as u64, "entry")
            ));
            for k in done.kept.iter().take(MAX_KEPT_LINES) {
                note(&format!("warning: --clean {k}"));
            }
            if done.kept.len() > MAX_KEPT_LINES {
                note(&format!(
                    "warning: --clean kept {} more under {shown}",
                    units::count((done.kept.len() - MAX_KEPT_LINES) as u64, "entry")
                ));
            }
        }
        Ok(())
    }

    /// Commits an epoch signal. A signal without an epoch number gets the
    /// previous epoch + 1, unless it names a step: a step-only checkpoint
    /// (`checkpoint-500/`, `SNAP {"step": 500}`) says nothing about epochs.
    fn epoch(&mut self, e: EpochEvent, note: &dyn Fn(&str)) {
        let epoch = match (e.epoch, e.step) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(self.last_epoch.map_or(1, |x| x + 1)),
        };
        let at = At {
            epoch,
            step: e.step,
        };
        let mut labels = BTreeMap::new();
        labels.insert("signal".to_string(), e.source.clone());
        match self.commit_at(at, e.metrics, labels, None, &NoProgress, note) {
            Ok(_) => self.update_best(note),
            Err(err) => {
                let what = at.describe().unwrap_or_else(|| "epoch".into());
                note(&format!("error: {what} snapshot failed: {err}"));
                self.report.errors.push(format!("{what}: {err}"));
            }
        }
    }

    fn commit_labelled(
        &mut self,
        epoch: Option<u64>,
        metrics: BTreeMap<String, f64>,
        labels: BTreeMap<String, String>,
        message: Option<String>,
        note: &dyn Fn(&str),
    ) -> Result<(SnapshotId, Vec<String>)> {
        let at = At { epoch, step: None };
        self.commit_at(at, metrics, labels, message, &NoProgress, note)
    }

    /// Commits the workspace as a snapshot of the session; `progress` sees
    /// the commit (the CLI's bar for the archive, which may be large).
    fn commit_at(
        &mut self,
        at: At,
        metrics: BTreeMap<String, f64>,
        labels: BTreeMap<String, String>,
        message: Option<String>,
        progress: &dyn Progress,
        note: &dyn Fn(&str),
    ) -> Result<(SnapshotId, Vec<String>)> {
        let opts = CommitOptions {
            session: Some(self.opts.session.clone()),
            epoch: at.epoch,
            step: at.step,
            metrics,
            labels,
            message,
            now_ns: now_ns(),
            ..CommitOptions::default()
        };
        let done = self.repo.commit(self.ws, opts, progress)?;
        for w in &done.warnings {
            note(&format!("warning: {w}"));
        }
        if at.epoch.is_some() {
            self.last_epoch = at.epoch;
        }
        let s = &done.snapshot.summary;
        note(&format!(
            "snapshot {}{}: {}, {} new",
            done.id.short(),
            at.describe().map(|d| format!(" ({d})")).unwrap_or_default(),
            units::count(s.files, "file"),
            units::bytes(s.new_stored_bytes)
        ));
        self.list_run_snapshots(done.id);
        Ok((done.id, done.warnings))
    }

    /// Sets the report's snapshots to every snapshot of this run, oldest
    /// first: the session's snapshots that were not there when the run
    /// started, so the command's own `snap commit`s (which join the session
    /// through SNAP_SESSION) count too. `just` was committed a moment ago.
    fn list_run_snapshots(&mut self, just: SnapshotId) {
        let session = Some(self.opts.session.as_str());
        if let Ok(log) = self.repo.log() {
            self.report.snapshots = log
                .iter()
                .filter(|e| e.snapshot.session.as_deref() == session)
                .filter(|e| !self.before.contains(&e.id))
                .map(|e| e.id.to_hex())
                .collect();
        }
        let just = just.to_hex();
        if !self.report.snapshots.contains(&just) {
            self.report.snapshots.push(just);
        }
    }

    /// Moves `SESSION/best` to the session's best snapshot (counting
    /// snapshots the child committed itself), and `best` with it only when
    /// that beats the snapshot `best` names now on the same metric and
    /// direction (`global_best::decide`).
    fn update_best(&mut self, note: &dyn Fn(&str)) {
        let Some((metric, dir)) = &self.opts.best else {
            return;
        };
        let Ok(log) = self.repo.log() else { return };
        let mut best: Option<(SnapshotId, f64)> = None;
        for e in log
            .iter()
            .filter(|e| e.snapshot.session.as_deref() == Some(self.opts.session.as_str()))
        {
            if let Some(v) = e.snapshot.metrics.get(metric) {
                if improves(*dir, *v, best.map(|b| b.1)) {
                    best = Some((e.id, *v));
                }
            }
        }
        let Some((id, value)) = best else { return };
        if self.best.map(|b| b.0) == Some(id) {
            return;
        }
        let session_tag = format!("{}/best", self.opts.session);
        if let Err(e) = self.repo.tag(&session_tag, &id.to_hex()) {
            self.report.errors.push(format!("tag {session_tag}: {e}"));
        }
        let spec = best_label(self.opts).expect("--best is set");
        let verdict = global_best::decide(&log, &self.opts.session, &spec, *dir, metric, value);
        let moved = match &verdict {
            global_best::Verdict::Move => match self.repo.tag("best", &id.to_hex()) {
                Ok(_) => true,
                Err(e) => {
                    self.report.errors.push(format!("tag best: {e}"));
                    false
                }
            },
            global_best::Verdict::Keep(_) => false,
        };
        let global = match (&verdict, moved) {
            (global_best::Verdict::Keep(why), _) => format!("; best stays: {why}"),
            (_, true) => " and best".to_string(),
            (_, false) => String::new(),
        };
        self.report.global_best = moved;
        note(&format!(
            "best {metric} = {value} -> tagged {session_tag}{global} ({})",
            id.short()
        ));
        self.best = Some((id, value));
        self.report.best = Some((id.to_hex(), value));
    }
}

/// Checks a `--clean` directory, following symlinks: it must exist and really
/// be a directory inside the workspace (not the workspace) that does not hold
/// the repository. Returns its real path.
fn clean_target(ws: &Workspace, dir: &Path) -> Result<PathBuf> {
    let bad = |why: &str| Error::invalid("--clean", dir.display().to_string(), why);
    let inside = "must be a directory inside the workspace that does not hold the repository";
    let real = match dir.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(
                "does not exist (nothing to clean): create it or drop this --clean",
            ))
        }
        Err(_) => return Err(bad(inside)),
    };
    let root = ws.root.canonicalize().map_err(|_| bad(inside))?;
    let repo = ws.repo.canonicalize().unwrap_or_else(|_| ws.repo.clone());
    if !real.is_dir() || !real.starts_with(&root) || real == root || repo.starts_with(&real) {
        return Err(bad(inside));
    }
    Ok(real)
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
