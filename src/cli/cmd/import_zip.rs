//! `snap import-zip`: bring existing zip backups in as snapshots.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::progress::Bar;
use crate::cli::render::{self, bytes};
use crate::cli::Ctx;

/// Import zip backups as dated snapshots, one session per archive
///
/// Import zip archives (e.g. archives/training_backup_YYYYMMDD_HHMMSS.zip with
/// logs/, models/, config/, root_checkpoints/) as snapshots: one session per
/// archive, dated from its name (else its newest entry), deduplicated against
/// everything stored. Files under root_checkpoints/ return to the workspace
/// root. A damaged archive imports nothing; the others go on. Exits 1 if any
/// archive failed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Zip archives, oldest first is best (sessions rank by their dates anyway).
    #[arg(required = true)]
    zips: Vec<PathBuf>,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, ws) = ctx.open()?;
    let zips: Vec<PathBuf> = args.zips.iter().map(|z| ctx.abs(z)).collect();
    let results = repo.import_zip(&ws, &zips, &Bar::new())?;
    let failed = results.iter().filter(|r| r.result.is_err()).count();
    if args.json {
        let v: Vec<_> = results
            .iter()
            .map(|r| match &r.result {
                Ok(c) => serde_json::json!({"zip": r.zip, "session": r.session, "snapshot": c.id.to_hex(),
                    "time": render::time_rfc3339(c.snapshot.time_ns), "summary": c.snapshot.summary}),
                Err(e) => serde_json::json!({"zip": r.zip, "session": r.session, "error": e}),
            })
            .collect();
        render::print_json(&v)?;
    } else {
        for r in &results {
            match &r.result {
                Ok(c) => println!(
                    "{}: snapshot {} ({}), {}, {}, new {} stored",
                    r.zip.display(),
                    c.id.short(),
                    render::time(c.snapshot.time_ns),
                    render::count(c.snapshot.summary.files, "file"),
                    bytes(c.snapshot.summary.logical_bytes),
                    bytes(c.snapshot.summary.new_stored_bytes)
                ),
                Err(e) => eprintln!("snap: error: {e}"),
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
