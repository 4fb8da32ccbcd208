//! `snap run`: run a training command as a session.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use snapstore::ops::retention::{parse_duration, Policy};
use snapstore::runner::{self, signals, RunOptions};

use crate::cli::progress::Bar;
use crate::cli::render::bytes;
use crate::cli::Ctx;

/// Run a training command as a session, with a snapshot per epoch
///
/// Run a training command as a session: snapshot the workspace first, commit
/// after every epoch (SNAP {"epoch": N, "metrics": {...}} lines on stdout or
/// stderr, --watch files, --metrics lines, or `snap commit` run by the command
/// itself), keep SESSION/best and best on the best metric, commit at the end
/// (also on failure or Ctrl-C), apply retention, and exit with the command's
/// status.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Session name (default: run-YYYYMMDD-HHMMSS).
    #[arg(long)]
    session: Option<String>,
    /// Checkpoint files that mark an epoch end when they appear or change and
    /// then stay unchanged (glob relative to the workspace, repeatable).
    #[arg(long, value_name = "GLOB")]
    watch: Vec<String>,
    /// Metric that decides the best snapshot: NAME, NAME:max or NAME:min
    /// (without a suffix, names with loss/err are minimised).
    #[arg(long, value_name = "METRIC[:max|min]")]
    best: Option<String>,
    /// JSON-lines file the command appends one line per epoch to.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// After the archive snapshot is durable, delete from this directory the
    /// files that snapshot holds unchanged; anything else stays, with a
    /// warning (repeatable; not with --no-archive).
    #[arg(long, value_name = "DIR")]
    clean: Vec<PathBuf>,
    /// Also write the command's output to this file (inside the workspace it
    /// is part of the snapshots).
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// Do not snapshot the workspace before the command starts.
    #[arg(long)]
    no_archive: bool,
    /// Sessions to keep at the end (default: snap.toml, else 5).
    #[arg(long)]
    keep_sessions: Option<usize>,
    /// Print the run report as one JSON line, the last line of stdout (the
    /// command's own output passes through before it).
    #[arg(long)]
    json: bool,
    /// The training command.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    // First, before anything that takes time: from here on Ctrl-C or SIGTERM
    // is recorded (and forwarded to the command) instead of killing snap run
    // without its final snapshot.
    let interrupts = runner::Interrupts::install()?;
    let (mut repo, ws) = ctx.open()?;
    let best = args
        .best
        .as_deref()
        .map(signals::parse_best)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--best: {e}"))?;
    if args.command.is_empty() {
        bail!("give the training command after --, e.g. snap run -- python train.py");
    }
    let cfg = &ws.config.retention;
    let d = Policy::default();
    let policy = Policy {
        keep_sessions: args
            .keep_sessions
            .or(cfg.keep_sessions)
            .unwrap_or(d.keep_sessions),
        keep_per_session: cfg.keep_per_session.unwrap_or(d.keep_per_session),
        keep_tags: cfg.keep_tags.clone().unwrap_or(d.keep_tags),
        keep_within_ns: cfg.keep_within.as_deref().map(parse_duration).transpose()?,
    };
    let session = args
        .session
        .unwrap_or_else(|| chrono::Local::now().format("run-%Y%m%d-%H%M%S").to_string());
    let opts = RunOptions {
        command: args.command,
        cwd: ctx.cwd.clone(),
        session,
        watch: args.watch,
        best,
        metrics_file: args.metrics.map(|p| ctx.abs(&p)),
        clean: args.clean.iter().map(|p| ctx.abs(p)).collect(),
        capture: args.capture.map(|p| ctx.abs(&p)),
        archive: !args.no_archive,
        policy,
        poll: Duration::from_millis(500),
    };
    // A bar for the archive snapshot of a large workspace, on a terminal only.
    let report = runner::run(&mut repo, &ws, opts, &interrupts, &Bar::new(), &|msg| {
        eprintln!("snap: {msg}")
    })?;
    if args.json {
        // One line, after everything the command printed: the last line of stdout.
        if report.stdout_ends_mid_line {
            println!();
        }
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "snap: session {} {}: {} snapshots{}; retention forgot {} snapshots, freed {}",
            report.session,
            report.outcome,
            report.snapshots.len(),
            report
                .best
                .as_ref()
                .map(|(id, v)| format!(", best {v} at {}", &id[..8]))
                .unwrap_or_default(),
            report.forgotten,
            bytes(report.bytes_freed)
        );
    }
    for e in &report.errors {
        eprintln!("snap: error during the run: {e}");
    }
    Ok(report.exit_code.clamp(0, 255) as u8)
}
