//! `snap prune`: reclaim the space of forgotten snapshots.

use anyhow::Result;

use crate::cli::progress::Bar;
use crate::cli::render::{self, bytes};
use crate::cli::Ctx;

/// Reclaim the space of forgotten snapshots
///
/// Delete packs no snapshot needs and repack packs that are mostly unused (more
/// than 30% waste). Safe against crashes: new copies are durable before
/// anything is deleted.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only show what would be done.
    #[arg(long)]
    dry_run: bool,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, _) = ctx.open()?;
    let plan = repo.prune(args.dry_run, &Bar::new())?;
    if args.json {
        let mut v = serde_json::to_value(&plan)?;
        let hex = |ids: &[snapstore::PackId]| ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>();
        v["delete"] = hex(&plan.delete).into();
        v["repack"] = hex(&plan.repack).into();
        v["bytes_freed"] = plan.bytes_freed().into();
        v["dry_run"] = args.dry_run.into();
        return render::print_json(&v).map(|_| 0);
    }
    println!(
        "{} {} of {} packs, repack {} ({} copied); {} {} of {}",
        if args.dry_run {
            "would delete"
        } else {
            "deleted"
        },
        plan.delete.len(),
        plan.packs_total,
        plan.repack.len(),
        bytes(plan.bytes_copied),
        if args.dry_run { "would free" } else { "freed" },
        bytes(plan.bytes_freed()),
        bytes(plan.bytes_total)
    );
    Ok(0)
}
