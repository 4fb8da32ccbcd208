//! Command-line interface: clap argument types, one module per verb under
//! `cmd/`, and `render` for human and `--json` output. Commands only parse,
//! call `Repo`, and render.

mod cmd;
mod progress;
pub(crate) mod render;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use snapstore::workspace::{self, Workspace};
use snapstore::Repo;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (bad input, I/O failure, ...)
  2  usage error
  3  damaged data found (check, restore, cat); forget or prune refused on unreadable files
  4  the repository is locked by another writer
  5  no repository, unknown revision or path
  6  commit: the snapshot was stored, but without some entries that could not
     be read or vanished while read (each named by a warning)
  128+N  stopped by signal N (130: Ctrl-C)

Environment:
  SNAP_REPO       repository to use (like --repo)
  SNAP_SESSION    session of new snapshots (like commit --session)
  SNAP_LOCK_WAIT  seconds a writer waits for the lock (default 10)";

/// snap: keep every config, log and checkpoint of your training runs,
/// deduplicated and compressed, and get any of them back byte for byte.
#[derive(Debug, Parser)]
#[command(name = "snap", version, about, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    /// Repository directory (default: SNAP_REPO, then snap.toml's `repo`,
    /// then the nearest .snap/ upward).
    #[arg(long, global = true, value_name = "PATH", env = "SNAP_REPO")]
    repo: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(cmd::init::Args),
    Commit(cmd::commit::Args),
    Log(cmd::log::Args),
    Show(cmd::show::Args),
    Cat(cmd::cat::Args),
    Restore(cmd::restore::Args),
    Diff(cmd::diff::Args),
    Metrics(cmd::metrics::Args),
    Best(cmd::best::Args),
    Note(cmd::note::Args),
    Tag(cmd::tag::Args),
    Tags(cmd::tag::TagsArgs),
    Stats(cmd::stats::Args),
    Run(cmd::run::Args),
    ImportZip(cmd::import_zip::Args),
    Forget(cmd::forget::Args),
    Prune(cmd::prune::Args),
    Check(cmd::check::Args),
    Reindex(cmd::reindex::Args),
    Remote(cmd::remote::Args),
    Push(cmd::push::Args),
    Pull(cmd::pull::Args),
    Clone(cmd::clone::Args),
    Ui(cmd::ui::Args),
    #[command(hide = true)]
    Locate(cmd::locate::Args),
    Completions(cmd::completions::Args),
    Man(cmd::man::Args),
}

/// What every command needs to find the repository.
pub struct Ctx {
    repo_flag: Option<PathBuf>,
    cwd: PathBuf,
}

impl Ctx {
    fn workspace(&self) -> Result<Workspace> {
        Ok(workspace::discover(
            self.repo_flag.as_deref(),
            None,
            &self.cwd,
        )?)
    }

    /// Opens the repository of the current workspace.
    fn open(&self) -> Result<(Repo, Workspace)> {
        let ws = self.workspace()?;
        let mut repo = Repo::open(&ws.repo)?;
        for d in repo.damaged_on_open() {
            eprintln!("snap: warning: {d}\n  run `snap check` for the full report");
        }
        if let Ok(raw) = std::env::var("SNAP_LOCK_WAIT") {
            let secs: f64 = raw
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .with_context(|| {
                    format!("SNAP_LOCK_WAIT='{raw}' must be a number of seconds, e.g. 30")
                })?;
            repo.set_lock_wait(Duration::from_secs_f64(secs));
        }
        Ok((repo, ws))
    }

    /// Opens remote `name` of `repo` for reading (`--from`), with a warning
    /// for each of its objects its cache could not take in.
    fn open_remote(&self, repo: &Repo, name: &str) -> Result<snapstore::repo::RemoteRepo> {
        let remote = repo.open_remote(name)?;
        for d in remote.repo().damaged_on_open() {
            eprintln!("snap: warning: damaged object on remote {name} left out: {d}");
        }
        Ok(remote)
    }

    /// The repository a reading command reads: this one, or with
    /// `--from NAME` the remote's (through its cached index).
    fn open_reading(&self, from: Option<&str>) -> Result<Reading> {
        let (local, _) = self.open()?;
        let remote = from.map(|n| self.open_remote(&local, n)).transpose()?;
        Ok(Reading { local, remote })
    }

    fn abs(&self, p: &Path) -> PathBuf {
        workspace::absolute(&self.cwd, p)
    }
}

/// What `Ctx::open_reading` opened.
struct Reading {
    local: Repo,
    remote: Option<snapstore::repo::RemoteRepo>,
}

impl Reading {
    fn repo(&self) -> &Repo {
        self.remote.as_ref().map_or(&self.local, |r| r.repo())
    }
}

impl Cli {
    /// True for `snap run`, which keeps SIGPIPE ignored.
    pub fn is_run(&self) -> bool {
        matches!(self.command, Command::Run(_))
    }
}

/// A usage error found after parsing, reported the way clap reports its
/// own (with the command's usage line) and with exit code 2.
fn usage_error(subcommand: &str, msg: &str) -> clap::Error {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(clap::error::ErrorKind::ArgumentConflict, msg),
        None => cli.error(clap::error::ErrorKind::ArgumentConflict, msg),
    }
}

pub fn run(cli: Cli) -> Result<u8> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let ctx = Ctx {
        repo_flag: cli.repo,
        cwd,
    };
    match cli.command {
        Command::Init(a) => cmd::init::run(&ctx, a),
        Command::Commit(a) => cmd::commit::run(&ctx, a),
        Command::Log(a) => cmd::log::run(&ctx, a),
        Command::Show(a) => cmd::show::run(&ctx, a),
        Command::Cat(a) => cmd::cat::run(&ctx, a),
        Command::Restore(a) => cmd::restore::run(&ctx, a),
        Command::Diff(a) => cmd::diff::run(&ctx, a),
        Command::Metrics(a) => cmd::metrics::run(&ctx, a),
        Command::Best(a) => cmd::best::run(&ctx, a),
        Command::Note(a) => cmd::note::run(&ctx, a),
        Command::Tag(a) => cmd::tag::run(&ctx, a),
        Command::Tags(a) => cmd::tag::run_list(&ctx, a),
        Command::Stats(a) => cmd::stats::run(&ctx, a),
        Command::Run(a) => cmd::run::run(&ctx, a),
        Command::ImportZip(a) => cmd::import_zip::run(&ctx, a),
        Command::Forget(a) => cmd::forget::run(&ctx, a),
        Command::Prune(a) => cmd::prune::run(&ctx, a),
        Command::Check(a) => cmd::check::run(&ctx, a),
        Command::Reindex(a) => cmd::reindex::run(&ctx, a),
        Command::Remote(a) => cmd::remote::run(&ctx, a),
        Command::Push(a) => cmd::push::run(&ctx, a),
        Command::Pull(a) => cmd::pull::run(&ctx, a),
        Command::Clone(a) => cmd::clone::run(&ctx, a),
        Command::Ui(a) => cmd::ui::run(&ctx, a),
        Command::Locate(a) => cmd::locate::run(&ctx, a),
        Command::Completions(a) => cmd::completions::run(&ctx, a),
        Command::Man(a) => cmd::man::run(&ctx, a),
    }
}
