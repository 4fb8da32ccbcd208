//! `snap run`: run a training command as a session.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use snapstore::ops::retention::Policy;
use snapstore::runner::{self, signals, RunOptions};

use crate::cli::progress::Bar;
use crate::cli::render;
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
    /// Training sessions whose pre-run, final, best and last epochs
    /// retention keeps (default: snap.toml `keep_sessions`, else 5).
    #[arg(long, value_name = "N")]
    keep_sessions: Option<usize>,
    /// Epoch snapshots kept in each of those sessions (default: snap.toml
    /// `keep_epochs`, else 5).
    #[arg(long, value_name = "N")]
    keep_epochs: Option<usize>,
    /// Apply no retention at the end: every snapshot stays.
    #[arg(long, conflicts_with_all = ["keep_sessions", "keep_epochs"])]
    no_retention: bool,
    /// After each commit, push the session (its snapshots and the tags
    /// naming them) to this remote in the background, without holding up
    /// training; at the end, wait for the final push. A failed push is
    /// retried and reported, never fatal: the exit status stays the
    /// command's.
    #[arg(long, value_name = "REMOTE")]
    push: Option<String>,
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
    let mut policy = Policy::from_config(&ws.config.retention)?;
    policy.keep_sessions = args.keep_sessions.unwrap_or(policy.keep_sessions);
    policy.keep_epochs = args.keep_epochs.unwrap_or(policy.keep_epochs);
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
        policy: (!args.no_retention).then_some(policy),
        poll: Duration::from_millis(500),
        push: args.push.as_deref().map(runner::push::PushOptions::new),
    };
    // A bar for the archive snapshot of a large workspace, on a terminal only.
    let report = runner::run(&mut repo, &ws, opts, &interrupts, &Bar::new(), &|msg| {
        note(&format!("snap: {msg}"))
    })?;
    // The summary goes to stderr with the runner's other notes, also with
    // --json, whose report is the last line of stdout.
    note(&format!("snap: {}", summary(&report)));
    if args.json {
        // One line, after everything the command printed.
        let nl = if report.stdout_ends_mid_line {
            "\n"
        } else {
            ""
        };
        let json = serde_json::to_string(&report)?;
        let _ = writeln!(std::io::stdout(), "{nl}{json}");
    }
    for e in &report.errors {
        note(&format!("snap: error during the run: {e}"));
    }
    Ok(report.exit_code.clamp(0, 255) as u8)
}

/// A line to stderr. A run outlives its readers: with `snap run ... 2>&1 |
/// head` gone, the run still takes its final snapshot and exits with the
/// command's status, so a write error here is ignored (`eprintln!` would
/// panic, and SIGPIPE stays ignored for `snap run`, see main.rs).
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The run's last line: what it stored, its best, and what retention did.
fn summary(r: &runner::RunReport) -> String {
    let mut out = format!(
        "session {} {}: {}",
        r.session,
        r.outcome,
        render::count(r.snapshots.len() as u64, "snapshot")
    );
    if let Some((id, v)) = &r.best {
        let global = if r.global_best { ", tagged best" } else { "" };
        out.push_str(&format!(
            ", best {} at {}{global}",
            render::num(*v),
            &id[..8]
        ));
    }
    if let Some(p) = &r.push {
        match p.final_pushed {
            true => out.push_str(&format!(", pushed to {}", p.remote)),
            false => out.push_str(&format!(", NOT pushed to {} (see above)", p.remote)),
        }
    }
    if r.retention != "applied" {
        out.push_str(&format!("; retention {}", r.retention));
        return out;
    }
    if r.forgotten_snapshots.is_empty() {
        out.push_str("; retention forgot nothing");
    } else {
        let logical: u64 = r.forgotten_snapshots.iter().map(|f| f.logical_bytes).sum();
        out.push_str(&format!(
            "; retention forgot {} ({}; {} of files; `snap log --forgotten` lists them)",
            render::count(r.forgotten_snapshots.len() as u64, "snapshot"),
            forgotten_by_session(&r.forgotten_snapshots),
            render::bytes(logical)
        ));
    }
    out.push_str(&format!(", prune freed {}", render::bytes(r.bytes_freed)));
    out
}

/// `lr3e-4 epochs 1-3, 2 plain commits`: the forgotten snapshots grouped.
fn forgotten_by_session(list: &[runner::ForgottenSnapshot]) -> String {
    let mut groups: Vec<(Option<&str>, Vec<&runner::ForgottenSnapshot>)> = Vec::new();
    for f in list {
        match groups.iter_mut().find(|(s, _)| *s == f.session.as_deref()) {
            Some((_, v)) => v.push(f),
            None => groups.push((f.session.as_deref(), vec![f])),
        }
    }
    groups
        .iter()
        .map(|(session, v)| {
            let epochs: Vec<u64> = v.iter().filter_map(|f| f.epoch).collect();
            match session {
                None => render::count(v.len() as u64, "plain commit"),
                Some(name) => match (epochs.iter().min(), epochs.iter().max()) {
                    (Some(lo), Some(hi)) if epochs.len() == v.len() && lo == hi => {
                        format!("{name} epoch {lo}")
                    }
                    (Some(lo), Some(hi)) if epochs.len() == v.len() => {
                        format!("{name} epochs {lo}-{hi}")
                    }
                    _ => format!("{name}: {}", render::count(v.len() as u64, "snapshot")),
                },
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
