//! `snap cat`: one file of a snapshot to standard output.

use std::io::Write;

use anyhow::{bail, Result};
use snapstore::workspace;

use crate::cli::Ctx;

/// Write one file of a snapshot to standard output, verified chunk by chunk.
///
/// Inside the workspace PATH is relative to the current directory, as in
/// git; outside it, to the snapshot root. PATH may be a glob that matches
/// exactly one file (`best:'checkpoints/*best*.pt'`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// REV:PATH, e.g. best:config/train.yaml
    spec: String,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let Some((rev, path)) = args.spec.split_once(':') else {
        bail!(
            "'{}' must look like REV:PATH, e.g. latest:logs/train.log",
            args.spec
        );
    };
    let (repo, ws) = ctx.open()?;
    let base = workspace::snapshot_dir(&ws, &ctx.cwd);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    repo.cat(rev, &base, path, &mut out)?;
    out.flush()?;
    Ok(0)
}
