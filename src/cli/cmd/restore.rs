//! `snap restore`: a snapshot (or some of its paths) back on disk.

use std::path::PathBuf;

use anyhow::Result;
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
