//! `snap check`: verify the repository.

use anyhow::Result;

use crate::cli::progress::Bar;
use crate::cli::render::{self, bytes};
use crate::cli::Ctx;

/// Verify the repository (with --read-data: every byte)
///
/// Verify the repository: every snapshot, tree and pack trailer, and that every
/// chunk a snapshot needs is stored. With --read-data, also read and verify
/// every byte and name the files each damaged chunk hurts. Exits 3 if anything
/// is damaged.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read and verify all data (slow: reads the whole repository).
    #[arg(long)]
    read_data: bool,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (repo, _) = ctx.open()?;
    let r = repo.check(args.read_data, &Bar::new())?;
    let code = if r.ok() { 0 } else { 3 };
    if args.json {
        return render::print_json(&r).map(|_| code);
    }
    println!(
        "checked {} snapshots, {} packs{}",
        r.snapshots,
        r.packs,
        if args.read_data {
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
    if r.ok() {
        println!("no problems found");
    }
    Ok(code)
}
