//! `snap check`: verify the repository; `--repair` fixes what can be fixed.

use anyhow::Result;
use snapstore::ops::check::CheckReport;
use snapstore::ops::retention::parse_duration;
use snapstore::PruneOptions;

use crate::cli::progress::Bar;
use crate::cli::render::{self, bytes};
use crate::cli::Ctx;

/// Verify the repository (with --read-data: every byte)
///
/// Verify the repository: every snapshot, tree and pack trailer, and that every
/// chunk a snapshot needs is stored. With --read-data, also read and verify
/// every byte and name the files each damaged chunk hurts. Exits 3 if anything
/// is damaged.
///
/// With --repair (a writer: takes the lock): remove orphan temporaries, rebuild
/// the index, mark packs no snapshot references for deletion (deleted by a
/// later prune or repair once the grace period has passed), then check and
/// report what could not be repaired. Never deletes a snapshot record, a tag
/// or a pack it cannot read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read and verify all data (slow: reads the whole repository).
    #[arg(long)]
    read_data: bool,
    /// Repair what can be repaired, then check.
    #[arg(long)]
    repair: bool,
    /// With --repair: how long a marked pack stays before it is deleted.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        requires = "repair"
    )]
    grace: String,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if args.repair {
        return repair(ctx, &args);
    }
    let (repo, _) = ctx.open()?;
    let r = repo.check(args.read_data, &Bar::new())?;
    let code = if r.ok() { 0 } else { 3 };
    if args.json {
        return render::print_json(&r).map(|_| code);
    }
    print_check(&r, args.read_data);
    if r.ok() {
        println!("no problems found");
    }
    Ok(code)
}

fn repair(ctx: &Ctx, args: &Args) -> Result<u8> {
    let opts = PruneOptions {
        grace_ns: parse_duration(&args.grace)?,
        ..PruneOptions::new(snapstore::ops::commit::now_ns())
    };
    let (mut repo, _) = ctx.open()?;
    let r = repo.repair(&opts, args.read_data, &Bar::new())?;
    let code = if r.ok() { 0 } else { 3 };
    if args.json {
        return render::print_json(&r).map(|_| code);
    }
    println!(
        "repair: removed {} orphan temporaries; index rebuilt ({} packs, {} snapshots, {} tags)",
        r.temporaries_removed, r.reindex.packs_added, r.reindex.snapshots_added, r.reindex.tags
    );
    if let Some(p) = &r.prune {
        println!(
            "repair: marked {} unreferenced packs for deletion, deleted {} whose grace period \
             had passed ({} freed), took back {} marked packs a snapshot needs; {} marked packs wait",
            p.delete.len(),
            p.due.len(),
            bytes(p.bytes_freed()),
            p.resurrect.len(),
            p.waiting
        );
    }
    print_check(&r.check, args.read_data);
    if r.ok() {
        println!("no problems found");
    } else {
        println!("could not be repaired:");
        for u in &r.unrepaired {
            println!("  {u}");
        }
    }
    Ok(code)
}

fn print_check(r: &CheckReport, read_data: bool) {
    let marked = match r.packs_marked {
        0 => String::new(),
        n => format!(" ({n} marked for deletion)"),
    };
    println!(
        "checked {} snapshots, {} packs{marked}{}",
        r.snapshots,
        r.packs,
        if read_data {
            format!(
                ", {} chunks ({} read)",
                r.chunks_checked,
                bytes(r.bytes_read)
            )
        } else {
            String::new()
        }
    );
    for e in &r.errors {
        println!("error: {e}");
    }
    if !r.damaged_files.is_empty() {
        println!("damaged files (cannot be restored):");
        for d in &r.damaged_files {
            println!("  snapshot {}  {}  ({})", d.snapshot, d.path, d.reason);
        }
    }
    if r.unreferenced_bytes > 0 {
        println!(
            "{} stored in chunks no snapshot uses",
            bytes(r.unreferenced_bytes)
        );
    }
}
