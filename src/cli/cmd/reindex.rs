//! `snap reindex`: rebuild index.sqlite from the repository files.

use anyhow::Result;

use crate::cli::render;
use crate::cli::Ctx;

/// Rebuild index.sqlite from packs, snapshots and refs.
///
/// Safe at any time: the index is only a cache.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, _) = ctx.open()?;
    let r = repo.reindex()?;
    if args.json {
        return render::print_json(&r).map(|_| 0);
    }
    println!(
        "index rebuilt: {} packs, {} snapshots, {} tags",
        r.packs_added, r.snapshots_added, r.tags
    );
    for d in &r.damaged {
        println!("skipped damaged file: {d}");
    }
    Ok(if r.damaged.is_empty() { 0 } else { 3 })
}
