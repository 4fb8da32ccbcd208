//! `snap restore`: a snapshot (or some of its paths) back on disk.

use std::path::PathBuf;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use anyhow::Result;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use snapstore::RestoreOptions;

use crate::cli::progress::Bar;
use crate::cli::render;
use crate::cli::Ctx;

/// Restore a snapshot, whole or some paths, byte for byte with modes, mtimes
/// and symlinks.
///
/// Existing files are never replaced without --overwrite, and nothing is
/// written outside the target.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot: id or prefix, tag, `latest`, or SESSION@EPOCH.
    rev: String,
    /// Paths inside the snapshot (default: all of it).
    paths: Vec<String>,
    /// Directory to restore into (default: the workspace).
    #[arg(long, short)]
    target: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    overwrite: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// The first Ctrl-C or SIGTERM sets the returned value to its number, and
/// the restore stops cleanly (temporaries removed, nothing replaced); a
/// second one ends the process at once.
fn stop_on_signals() -> Result<Arc<AtomicUsize>> {
    let signal = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        flag::register_conditional_shutdown(sig, 128 + sig, stopping.clone())?;
        flag::register(sig, stopping.clone())?;
        flag::register_usize(sig, signal.clone(), sig as usize)?;
    }
    Ok(signal)
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (repo, ws) = ctx.open()?;
    let target = args
        .target
        .map(|t| ctx.abs(&t))
        .unwrap_or_else(|| ws.root.clone());
    let opts = RestoreOptions {
        paths: args.paths,
        target: target.clone(),
        overwrite: args.overwrite,
        protect: None,
        cancel: Some(stop_on_signals()?),
    };
    let s = repo.restore(&args.rev, opts, &Bar::new())?;
    if args.json {
        return render::print_json(&s).map(|_| 0);
    }
    println!(
        "restored {} files ({}), {} dirs, {} symlinks into {}",
        s.files,
        render::bytes(s.bytes),
        s.dirs,
        s.symlinks,
        target.display()
    );
    if s.stale_temporaries_removed > 0 {
        eprintln!(
            "snap: removed {} temporary file(s) left by an earlier restore that was killed",
            s.stale_temporaries_removed
        );
    }
    Ok(0)
}
